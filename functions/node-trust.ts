// Node trust (opt-in, kustomize/node-trust): every node's container runtime trusts the CA of each
// registry, so the kubelet can pull Pod images from registries whose certificate the operator's own
// CA signed. A short Job pinned to each node writes, per registry hostname:
//
//   /etc/containerd/certs.d/<host>/hosts.toml + ca.crt   containerd (re-read at every pull when its
//                                                        registry config_path points there)
//   /etc/containers/certs.d/<host>/ca.crt                CRI-O, podman, skopeo, buildah
//   /etc/docker/certs.d/<host>/ca.crt                    Docker
//
// and a marker file in every host directory it writes: only directories with the marker are ever
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
  for (const { hostname, caPem } of registries) {
    const host = hostname.toLowerCase();
    if (!isTrustHost(host)) throw new Error(`node trust: ${JSON.stringify(hostname)} is not a registry hostname`);
    const ca = `${caPem.trim()}\n`;
    if (!PEM_CERTIFICATE.test(ca)) throw new Error(`node trust: the CA of ${host} is not a PEM certificate`);
    const before = byHost.get(host);
    if (before !== undefined && before !== ca) throw new Error(`node trust: two registries claim ${host} with different CAs`);
    byHost.set(host, ca);
  }
  return [...byHost].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([hostname, caPem]) => ({ hostname, caPem }));
}

/** sha256 of the normalized set: equal sets, in any order, have equal digests; any change of a host or a CA changes it. */
export function trustSetDigest(registries: readonly TrustedRegistry[]): string {
  const hash = createHash('sha256');
  for (const { hostname, caPem } of normalizeTrustSet(registries)) hash.update(`${hostname.length}:${hostname}${caPem.length}:${caPem}`);
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

export interface HostDirectory {
  root: TrustRoot;
  host: string;
  /** file name → content, the marker included */
  files: Record<string, string>;
}

/** Every host directory the set gives a node, with its files. */
export function nodeTrustDirectories(registries: readonly TrustedRegistry[]): HostDirectory[] {
  const marker = 'Written by image-registry-operator (node trust); this directory is replaced and removed by it.\n';
  return normalizeTrustSet(registries).flatMap(({ hostname, caPem }): HostDirectory[] => [
    { root: 'containerd', host: hostname, files: { 'hosts.toml': containerdHostsToml(hostname), 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
    { root: 'containers', host: hostname, files: { 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
    { root: 'docker', host: hostname, files: { 'ca.crt': caPem, [NODE_TRUST_MARKER]: marker } },
  ]);
}

/** A host directory found on the node: whether it carries our marker. */
export interface ExistingHostDirectory {
  root: TrustRoot;
  host: string;
  owned: boolean;
}

export interface NodeTrustPlan {
  /** directories to write (created, or replaced where they are ours) */
  write: HostDirectory[];
  /** our directories whose registry is gone */
  remove: ExistingHostDirectory[];
  /** directories of someone else for one of our hosts: left as they are, reported */
  foreign: ExistingHostDirectory[];
}

/** What a node-trust Job does with what it found on the node. */
export function nodeTrustPlan(registries: readonly TrustedRegistry[], existing: readonly ExistingHostDirectory[]): NodeTrustPlan {
  const key = (d: { root: TrustRoot; host: string }) => `${d.root}/${d.host}`;
  const found = new Map(existing.map((d) => [key(d), d]));
  const wanted = nodeTrustDirectories(registries);
  const wantedKeys = new Set(wanted.map(key));
  return {
    write: wanted.filter((d) => found.get(key(d))?.owned !== false),
    remove: existing.filter((d) => d.owned && !wantedKeys.has(key(d))),
    foreign: existing.filter((d) => !d.owned && wantedKeys.has(key(d))),
  };
}

/**
 * The set as one env value: each distinct CA once (registries signed by the operator CA share it),
 * hosts pointing at them by index.
 */
export function encodeTrustSet(registries: readonly TrustedRegistry[]): string {
  const set = normalizeTrustSet(registries);
  const cas = [...new Set(set.map((r) => r.caPem))];
  return JSON.stringify({ cas, hosts: Object.fromEntries(set.map((r) => [r.hostname, cas.indexOf(r.caPem)])) });
}

export function decodeTrustSet(text: string): TrustedRegistry[] {
  const parsed = JSON.parse(text) as { cas?: unknown; hosts?: unknown };
  if (!Array.isArray(parsed.cas) || !parsed.cas.every((ca) => typeof ca === 'string') || typeof parsed.hosts !== 'object' || parsed.hosts === null) {
    throw new Error(`${NODE_TRUST_SET_ENV}: expected {"cas": [PEM, …], "hosts": {"<host>": <index>, …}}`);
  }
  const cas = parsed.cas as string[];
  return normalizeTrustSet(Object.entries(parsed.hosts as Record<string, unknown>).map(([hostname, index]) => {
    const caPem = typeof index === 'number' ? cas[index] : undefined;
    if (caPem === undefined) throw new Error(`${NODE_TRUST_SET_ENV}: host ${hostname} names no CA`);
    return { hostname, caPem };
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
