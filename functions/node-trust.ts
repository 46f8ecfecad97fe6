// Node trust (opt-in, kustomize/node-trust): every node's container runtime trusts the CA of each
// registry, so the kubelet can pull Pod images from registries whose certificate the operator's own
// CA signed. A short Job pinned to each node writes, per registry hostname:
//
//   /etc/containerd/certs.d/<host>/hosts.toml + ca.crt   containerd (re-read at every pull when its
//                                                        registry config_path points there)
//   /etc/containers/certs.d/<host>/ca.crt                CRI-O, podman, skopeo, buildah
//   /etc/docker/certs.d/<host>/ca.crt                    Docker
//
// and, for each image host a pull-through cache mirrors (spec.proxy.mirrorFor), containerd's
// certs.d/<host>/hosts.toml with the caches first and the upstream as the fallback — merged into a
// hosts.toml someone else keeps there (mergeMirrorBlock) —
// and a marker file in every host directory it creates: only directories with the marker are ever
// replaced or removed, so a user's own certs.d entries stay untouched. Each Job carries the whole
// set (hostnames and CAs, no secrets), so it needs no Kubernetes API access at all; the set's digest
// names the Job and, once a Job completed, is recorded on its Node (NODE_TRUST_ANNOTATION), which is
// what the next reconcile compares.
import { createHash } from 'node:crypto';
import type { OperatorConfig } from './types.ts';
import { API_GROUP } from './types.ts';

export interface TrustedRegistry {
  /** the registry's hostname, as in image references (status.hostname) */
  hostname: string;
  /** PEM: the CA that signed the registry's serving certificate (the TLS Secret's ca.crt) */
  caPem: string;
  /** a pull-through cache's spec.proxy.mirrorFor, and its upstream (the fallback of those pulls) */
  mirror?: { hosts: string[]; server: string };
}

/** An image host the nodes pull through pull-through caches first (in order), the upstream `server` last. */
export interface MirrorEntry {
  host: string;
  server: string;
  caches: string[];
}

export type TrustRoot = 'containerd' | 'containers' | 'docker';

/** Where each runtime looks for per-registry certificates, on the node (the Job mounts them at the same paths). */
export const TRUST_ROOTS: Readonly<Record<TrustRoot, string>> = {
  containerd: '/etc/containerd/certs.d',
  containers: '/etc/containers/certs.d',
  docker: '/etc/docker/certs.d',
};

/** In each host directory we wrote; its presence is what lets a later run replace or remove the directory. */
export const NODE_TRUST_MARKER = '.managed-by-image-registry-operator';
/** On each Node: the digest of the trust set its last completed node-trust Job wrote. */
export const NODE_TRUST_ANNOTATION = `${API_GROUP}/node-trust`;
/** On each node-trust Job: the Node it writes (the label is a hash, node names may be 253 characters). */
export const NODE_TRUST_NODE_ANNOTATION = `${API_GROUP}/node`;
export const NODE_TRUST_NODE_LABEL = `${API_GROUP}/node-hash`;
export const NODE_TRUST_COMMAND = ['node', '/app/dist/node-trust.js'];
/** The env variable of the node-trust Job that carries the set (encodeTrustSet). */
export const NODE_TRUST_SET_ENV = 'NODE_TRUST_SET';
export const NODE_TRUST_SERVICE_ACCOUNT = 'image-registry-operator-node-trust';

// A registry host as a directory name: a DNS name, optionally with a port. Nothing else may reach a path.
const HOST = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$/;
const PEM_CERTIFICATE = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?/;

export function isTrustHost(host: string): boolean {
  return host.length <= 253 && HOST.test(host);
}

/**
 * The set as the Jobs write it: one entry per hostname (sorted), the CA text with one trailing
 * newline. Throws on a hostname that could not be a directory name or a CA that is not PEM.
 */
export function normalizeTrustSet(registries: readonly TrustedRegistry[]): TrustedRegistry[] {
  const byHost = new Map<string, string>();
  const mirrors = new Map<string, { hosts: string[]; server: string }>();
  for (const { hostname, caPem, mirror } of registries) {
    const host = hostname.toLowerCase();
    if (!isTrustHost(host)) throw new Error(`node trust: ${JSON.stringify(hostname)} is not a registry hostname`);
    const ca = `${caPem.trim()}\n`;
    if (!PEM_CERTIFICATE.test(ca)) throw new Error(`node trust: the CA of ${host} is not a PEM certificate`);
    const before = byHost.get(host);
    if (before !== undefined && before !== ca) throw new Error(`node trust: two registries claim ${host} with different CAs`);
    byHost.set(host, ca);
    if (mirror && mirror.hosts.length > 0) {
      const hosts = [...new Set(mirror.hosts.map((h) => h.toLowerCase()))].sort();
      for (const h of hosts) if (!isTrustHost(h)) throw new Error(`node trust: ${JSON.stringify(h)} (mirrorFor of ${host}) is not an image host`);
      if (!/^https?:\/\/[^\s"'\\]+$/.test(mirror.server)) throw new Error(`node trust: the upstream of ${host} is not a URL`);
      mirrors.set(host, { hosts, server: mirror.server });
    }
  }
  return [...byHost].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([hostname, caPem]) => {
    const mirror = mirrors.get(hostname);
    return { hostname, caPem, ...(mirror ? { mirror } : {}) };
  });
}

/**
 * Per mirrored image host: the caches that serve it (by hostname), the first cache's upstream as
 * containerd's fallback. A host that is one of the registries' own hostnames is never mirrored.
 */
export function mirrorEntries(registries: readonly TrustedRegistry[]): MirrorEntry[] {
  const set = normalizeTrustSet(registries);
  const own = new Set(set.map((r) => r.hostname));
  const byHost = new Map<string, MirrorEntry>();
  for (const { hostname, mirror } of set) {
    for (const host of mirror?.hosts ?? []) {
      if (own.has(host)) continue;
      const entry = byHost.get(host) ?? { host, server: mirror?.server ?? '', caches: [] };
      entry.caches.push(hostname);
      byHost.set(host, entry);
    }
  }
  return [...byHost.values()].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/** sha256 of the normalized set: equal sets, in any order, have equal digests; any change of a host or a CA changes it. */
export function trustSetDigest(registries: readonly TrustedRegistry[]): string {
  const hash = createHash('sha256');
  for (const { hostname, caPem, mirror } of normalizeTrustSet(registries)) {
    hash.update(`${hostname.length}:${hostname}${caPem.length}:${caPem}`);
    // only where there is one: the digest of a set without caches stays what it was
    if (mirror) hash.update(`mirror:${JSON.stringify(mirror)}`);
  }
  return hash.digest('hex');
}

/**
 * containerd's hosts.toml for a registry that serves on https://<host>: pull and resolve there,
 * verifying with the ca.crt beside it (a relative `ca` is resolved against the hosts.toml's directory).
 */
export function containerdHostsToml(host: string): string {
  return [
    '# Written by image-registry-operator (node trust). Replaced when the registry\'s CA changes, removed with the registry.',
    `server = "https://${host}"`,
    '',
    `[host."https://${host}"]`,
    '  capabilities = ["pull", "resolve"]',
    '  ca = "ca.crt"',
    '',
  ].join('\n');
}

/** The lines that open and close our part of a hosts.toml someone else keeps (mergeMirrorBlock). */
export const MIRROR_BLOCK_BEGIN = '# BEGIN image-registry-operator pull-through caches (node trust): this part is replaced and removed by it';
export const MIRROR_BLOCK_END = '# END image-registry-operator pull-through caches';

/** The [host] tables of the caches, in order: pull and resolve there, verified with each cache's own ca.crt. */
function mirrorHostTables(entry: MirrorEntry): string[] {
  return entry.caches.flatMap((cache) => [
    `[host."https://${cache}"]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = "${TRUST_ROOTS.containerd}/${cache}/ca.crt"`,
    '',
  ]);
}

/**
 * containerd's hosts.toml for an image host mirrored by pull-through caches: each cache first (a
 * pull tries them in order), then `server`, the upstream, when every cache failed.
 */
export function mirrorHostsToml(entry: MirrorEntry): string {
  return [
    `# Written by image-registry-operator (node trust): pulls of ${entry.host} go through its pull-through caches first, the upstream last. Removed with them.`,
    `server = "${entry.server}"`,
    '',
    ...mirrorHostTables(entry),
  ].join('\n');
}

/**
 * Someone else's hosts.toml for the host (e.g. Spegel's) with our caches in it: their text kept
 * as it is, our tables between MIRROR_BLOCK_BEGIN / _END inserted before their first table, so
 * our caches are tried first (containerd tries hosts in file order) and their top-level keys
 * (server, ...) stay top-level. A block of ours already there is replaced.
 */
export function mergeMirrorBlock(foreign: string | undefined, entry: MirrorEntry): string {
  const lines = (stripMirrorBlock(foreign ?? '') ?? '').split('\n');
  const block = [MIRROR_BLOCK_BEGIN, ...mirrorHostTables(entry), MIRROR_BLOCK_END];
  const firstTable = lines.findIndex((line) => /^\s*\[/.test(line));
  const at = firstTable < 0 ? lines.length : firstTable;
  const before = lines.slice(0, at);
  while (before.length > 0 && before.at(-1) === '') before.pop();
  return [...before, ...(before.length ? [''] : []), ...block, '', ...lines.slice(at)].join('\n').replace(/\n{3,}/g, '\n\n').replace(/\n*$/, '\n');
}

/** The text without our block; undefined when nothing else is left (the file was only ours). */
export function stripMirrorBlock(text: string): string | undefined {
  const lines = text.split('\n');
  const begin = lines.indexOf(MIRROR_BLOCK_BEGIN);
  const end = lines.indexOf(MIRROR_BLOCK_END, begin);
  const kept = begin < 0 || end < 0 ? lines : [...lines.slice(0, begin), ...lines.slice(end + 1)];
  const result = kept.join('\n').replace(/\n{3,}/g, '\n\n');
  return result.trim() === '' ? undefined : result.replace(/\n*$/, '\n');
}

/** Whether a hosts.toml holds our block. */
export function hasMirrorBlock(text: string): boolean {
  return text.split('\n').includes(MIRROR_BLOCK_BEGIN);
}

export interface HostDirectory {
  root: TrustRoot;
  host: string;
  /** file name → content, the marker included */
  files: Record<string, string>;
  /** an image host mirrored by our caches: merged into someone else's hosts.toml where there is one */
  mirror?: MirrorEntry;
}

/** Every host directory the set gives a node, with its files. */
export function nodeTrustDirectories(registries: readonly TrustedRegistry[]): HostDirectory[] {
  const marker = 'Written by image-registry-operator (node trust); this directory is replaced and removed by it.\n';
  const registryDirectories = normalizeTrustSet(registries).flatMap(({ hostname, caPem }): HostDirectory[] => [
    { root: 'containerd', host: hostname, files: { 'hosts.toml': containerdHostsToml(hostname), 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
    { root: 'containers', host: hostname, files: { 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
    { root: 'docker', host: hostname, files: { 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
  ]);
  // containerd alone: the other runtimes' certs.d have no mirrors
  const mirrorDirectories = mirrorEntries(registries).map((entry): HostDirectory => ({
    root: 'containerd', host: entry.host, files: { 'hosts.toml': mirrorHostsToml(entry), [NODE_TRUST_MARKER]: marker }, mirror: entry,
  }));
  return [...registryDirectories, ...mirrorDirectories];
}

/** A host directory found on the node: whether it carries our marker. */
export interface ExistingHostDirectory {
  root: TrustRoot;
  host: string;
  owned: boolean;
  /** its hosts.toml holds our mirror block (someone else's file we merged into) */
  mirrorBlock?: boolean;
}

export interface NodeTrustPlan {
  /** directories to write (created, or replaced where they are ours) */
  write: HostDirectory[];
  /** our directories whose registry is gone */
  remove: ExistingHostDirectory[];
  /** directories of someone else for one of our hosts: left as they are, reported */
  foreign: ExistingHostDirectory[];
  /** someone else's directories of a mirrored host: our caches merged into their hosts.toml */
  merge: { directory: ExistingHostDirectory; mirror: MirrorEntry }[];
  /** someone else's directories whose hosts.toml holds our block of a mirror that is gone */
  unmerge: ExistingHostDirectory[];
}

/** What a node-trust Job does with what it found on the node. */
export function nodeTrustPlan(registries: readonly TrustedRegistry[], existing: readonly ExistingHostDirectory[]): NodeTrustPlan {
  const key = (d: { root: TrustRoot; host: string }) => `${d.root}/${d.host}`;
  const found = new Map(existing.map((d) => [key(d), d]));
  const wanted = nodeTrustDirectories(registries);
  const wantedKeys = new Set(wanted.map(key));
  const mirrors = new Map(wanted.flatMap((d) => (d.mirror ? [[key(d), d.mirror] as const] : [])));
  const foreign = existing.filter((d) => !d.owned && wantedKeys.has(key(d)));
  return {
    write: wanted.filter((d) => found.get(key(d))?.owned !== false),
    remove: existing.filter((d) => d.owned && !wantedKeys.has(key(d))),
    foreign: foreign.filter((d) => !mirrors.has(key(d))),
    merge: foreign.flatMap((directory) => {
      const mirror = mirrors.get(key(directory));
      return mirror ? [{ directory, mirror }] : [];
    }),
    unmerge: existing.filter((d) => !d.owned && d.mirrorBlock === true && !mirrors.has(key(d))),
  };
}

/**
 * The set as one env value: each distinct CA once (registries signed by the operator CA share it),
 * hosts pointing at them by index.
 */
export function encodeTrustSet(registries: readonly TrustedRegistry[]): string {
  const set = normalizeTrustSet(registries);
  const cas = [...new Set(set.map((r) => r.caPem))];
  const mirrors = Object.fromEntries(set.flatMap((r) => (r.mirror ? [[r.hostname, r.mirror]] : [])));
  return JSON.stringify({ cas, hosts: Object.fromEntries(set.map((r) => [r.hostname, cas.indexOf(r.caPem)])), ...(Object.keys(mirrors).length ? { mirrors } : {}) });
}

export function decodeTrustSet(text: string): TrustedRegistry[] {
  const parsed = JSON.parse(text) as { cas?: unknown; hosts?: unknown; mirrors?: Record<string, { hosts?: unknown; server?: unknown }> };
  if (!Array.isArray(parsed.cas) || !parsed.cas.every((ca) => typeof ca === 'string') || typeof parsed.hosts !== 'object' || parsed.hosts === null) {
    throw new Error(`${NODE_TRUST_SET_ENV}: expected {"cas": [PEM, …], "hosts": {"<host>": <index>, …}}`);
  }
  const cas = parsed.cas as string[];
  return normalizeTrustSet(Object.entries(parsed.hosts as Record<string, unknown>).map(([hostname, index]) => {
    const caPem = typeof index === 'number' ? cas[index] : undefined;
    if (caPem === undefined) throw new Error(`${NODE_TRUST_SET_ENV}: host ${hostname} names no CA`);
    const mirror = parsed.mirrors?.[hostname];
    if (mirror === undefined) return { hostname, caPem };
    if (!Array.isArray(mirror.hosts) || !mirror.hosts.every((h) => typeof h === 'string') || typeof mirror.server !== 'string') {
      throw new Error(`${NODE_TRUST_SET_ENV}: the mirror of ${hostname} must be {"hosts": [host, …], "server": URL}`);
    }
    return { hostname, caPem, mirror: { hosts: mirror.hosts as string[], server: mirror.server } };
  }));
}

/** A Node as the node-trust reconcile reads it. */
export interface NodeState {
  name: string;
  /** NODE_TRUST_ANNOTATION */
  digest?: string;
  ready: boolean;
  /** creationTimestamp (ISO): Jobs that finished before it wrote to an earlier node of that name */
  createdAt?: string;
}

/** A node-trust Job as the reconcile reads it. */
export interface NodeTrustJobState {
  name: string;
  node: string;
  digest: string;
  state: 'active' | 'complete' | 'failed';
  /** completion time (ISO), for complete Jobs */
  completedAt?: string;
}

export type NodeTrustDecision =
  | { node: string; action: 'none' }
  /** a completed Job wrote the current set; record it on the Node */
  | { node: string; action: 'record'; digest: string }
  /** start a Job with the current set (`replace`: delete the finished Job of that name first — it failed, or an older set was written after it) */
  | { node: string; action: 'start'; job: string; replace?: boolean }
  /** a Job is running on the node (this set's, or an older one that must finish first) */
  | { node: string; action: 'wait'; job: string }
  /** not Ready: the resync starts its Job once it is back */
  | { node: string; action: 'skip-not-ready' };

/**
 * Per node: what brings it to `digest`. What a node has is what its most recently completed Job
 * wrote; one Job runs on a node at a time, so two sets are never written there at once.
 */
export function nodeTrustDecisions(nodes: readonly NodeState[], jobs: readonly NodeTrustJobState[], digest: string): NodeTrustDecision[] {
  return nodes.map((node): NodeTrustDecision => {
    const ofNode = jobs.filter((j) => j.node === node.name);
    // a Job that completed before the Node was created wrote to an earlier node of that name
    const own = ofNode.filter((j) => !(j.state === 'complete' && node.createdAt !== undefined && (j.completedAt ?? '') < node.createdAt));
    const latest = own.filter((j) => j.state === 'complete').sort((a, b) => (a.completedAt ?? '').localeCompare(b.completedAt ?? '')).at(-1);
    const active = own.find((j) => j.state === 'active');
    if (node.digest === digest && (!latest || latest.digest === digest) && !active) return { node: node.name, action: 'none' };
    if (active) return { node: node.name, action: 'wait', job: active.name };
    if (latest?.digest === digest) return node.digest === digest ? { node: node.name, action: 'none' } : { node: node.name, action: 'record', digest };
    if (!node.ready) return { node: node.name, action: 'skip-not-ready' };
    const job = nodeTrustJobName(node.name, digest);
    return { node: node.name, action: 'start', job, ...(ofNode.some((j) => j.name === job) ? { replace: true } : {}) };
  });
}

function shortHash(text: string, hexChars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hexChars);
}

/** The label value that finds a node's Jobs. */
export function nodeHashLabel(node: string): string {
  return shortHash(node, 16);
}

/** `node-trust-<digest 10>-<node, cut>-<node hash 6>`: ≤ 63 characters, one name per node and set. */
export function nodeTrustJobName(node: string, digest: string): string {
  const fixed = `node-trust-${digest.slice(0, 10)}-`;
  const hash = shortHash(node, 6);
  const readable = node.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 63 - fixed.length - hash.length - 1).replace(/^-+|-+$/g, '');
  return `${fixed}${readable ? `${readable}-` : ''}${hash}`;
}

export interface NodeTrustJobInput {
  node: string;
  registries: readonly TrustedRegistry[];
  config: OperatorConfig & { nodeTrustNamespace: string };
}

/**
 * The Job that writes the set on one node: pinned by nodeName (no scheduler, so cordoned and
 * tainted nodes get it too; every taint tolerated), no API credentials, root without any capability
 * (the certs.d directories are root's; root without CAP_DAC_OVERRIDE can write only what root
 * owns), a read-only root file system, and the three certs.d directories as its only host paths.
 */
export function desiredNodeTrustJob({ node, registries, config }: NodeTrustJobInput) {
  const digest = trustSetDigest(registries);
  const labels = {
    'app.kubernetes.io/name': 'image-registry-operator',
    'app.kubernetes.io/component': 'node-trust',
    'app.kubernetes.io/managed-by': 'image-registry-operator',
    [NODE_TRUST_NODE_LABEL]: nodeHashLabel(node),
  };
  const roots = Object.entries(TRUST_ROOTS) as [TrustRoot, string][];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: nodeTrustJobName(node, digest),
      namespace: config.nodeTrustNamespace,
      labels,
      annotations: { [NODE_TRUST_NODE_ANNOTATION]: node, [NODE_TRUST_ANNOTATION]: digest },
    },
    spec: {
      backoffLimit: 2,
      activeDeadlineSeconds: 300,
      // the resync (hourly) records what a Job wrote when the reconcile that started it could not wait
      ttlSecondsAfterFinished: 7200,
      template: {
        metadata: { labels },
        spec: {
          nodeName: node,
          tolerations: [{ operator: 'Exists' }],
          restartPolicy: 'Never',
          serviceAccountName: NODE_TRUST_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: {
            runAsUser: 0,
            runAsGroup: 0,
            runAsNonRoot: false,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'node-trust',
              image: config.images.operator,
              imagePullPolicy: 'IfNotPresent',
              command: [...NODE_TRUST_COMMAND],
              env: [{ name: NODE_TRUST_SET_ENV, value: encodeTrustSet(registries) }],
              resources: {
                requests: { cpu: '10m', memory: '48Mi' },
                limits: { cpu: '500m', memory: '128Mi' },
              },
              securityContext: {
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: roots.map(([root, path]) => ({ name: `${root}-certs`, mountPath: path })),
            },
          ],
          volumes: roots.map(([root, path]) => ({ name: `${root}-certs`, hostPath: { path, type: 'DirectoryOrCreate' } })),
        },
      },
    },
  };
}

export type NodeTrustJob = ReturnType<typeof desiredNodeTrustJob>;
