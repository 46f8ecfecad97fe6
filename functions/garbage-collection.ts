// Garbage collection and tag retention of a registry's storage (spec.garbageCollection).
//
// distribution's `registry garbage-collect` is mark-and-sweep with no lock: a write that lands
// between its mark and its sweep can lose a layer another image still needs (silent corruption).
// So a run, started by the registry's CronJob in the operator namespace, holds a write freeze on
// every pod's nginx (maintenance.ts) from before the mark until after the sweep:
//
//   1. freeze    the `<r>-maintenance` ConfigMap gets the freeze (deadline = drain + timeout + margin),
//                the pods are touched, and every pod with an IP must refuse a write for this freeze
//   2. drain     until no write nginx passed on just before is in flight in any registry (read from
//                each pod's metrics port; maintenance.ts WRITE_ROUTES), at most WRITE_DRAIN_TIMEOUT_MS
//   3. collect   the GC Job in the registry's namespace (this module's desiredGcJob): retention deletes
//                manifests through a private registry on the pod's loopback, then the stock registry
//                image's `garbage-collect`, both on the registry's own storage
//   4. lift      the ConfigMap without the freeze, pods touched, every pod accepts writes again
//   5. report    an Event and status.garbageCollection / status.storage
//
// A dry run deletes nothing and needs no freeze. This module is the pure part: settings, names,
// objects, which tags go, and reading the collector's output.
import { attachmentSubject } from './retention/attachments.ts';
import type { InUse } from './retention/in-use.ts';
import { posix } from 'node:path';
import type { V1ConfigMap, V1CronJob, V1EnvVar, V1Job } from '@kubernetes/client-node';
import { dump } from 'js-yaml';
import { parseDuration } from './duration.ts';
import { DEFAULT_GC_TIMEOUT, defaultGcSchedule, GC_TIMEOUT_RANGE_MS } from './gc-defaults.ts';
import { WRITE_DRAIN_TIMEOUT_MS } from './maintenance.ts';
import { maintenanceLabels } from './names.ts';
import { dnsFragment, JOB_SERVICE_ACCOUNT, operatorConfigEnv, shortHash, type RegistryKey } from './reconcile-job.ts';
import { REGISTRY_UID, maintenanceCronJob, registryOwnerReference, restrictedSecurityContext } from './registry-objects.ts';
import { nodeStorageEnv, registryStorage, type RegistryStorage } from './registry-storage.ts';
import type { GarbageCollectionRun, GarbageCollectionSpec, ImageRegistry, KeepTags, OperatorConfig, RetentionPolicy } from './types.ts';

export { DEFAULT_GC_TIMEOUT, defaultGcSchedule };
export const GC_COMMAND = ['node', '/app/dist/garbage-collect.js'];
export const GC_RETENTION_COMMAND = ['node', '/app/dist/gc-retention.js'];
/** after the GC Job's deadline: its pod's kill (grace 5 s) and clocks a little apart */
export const FREEZE_MARGIN_MS = 30_000;
/** the private registry of the GC pod, on the pod's loopback: never reachable from outside the pod */
export const GC_REGISTRY_ADDRESS = '127.0.0.1:5001';
export const GC_CONFIG_DIR = '/etc/registry-gc';
export const GC_WORK_DIR = '/work';
/** the env the orchestrator Job reads its registry from */
export const GC_REGISTRY_NAMESPACE_ENV = 'GC_REGISTRY_NAMESPACE';
export const GC_REGISTRY_NAME_ENV = 'GC_REGISTRY_NAME';
export const GC_SETTINGS_ENV = 'GC_SETTINGS';
const CRONJOB_NAME_MAX = 52; // a CronJob's Jobs append 11 characters to its name

export interface GcSettings {
  enabled: boolean;
  schedule: string;
  deleteUntagged: boolean;
  dryRun: boolean;
  timeoutMs: number;
  retention: RetentionPolicy[];
}

/** spec.garbageCollection with its defaults: collection on, deleting no tag and no untagged manifest. */
export function gcSettings(registry: ImageRegistry): GcSettings {
  const spec: GarbageCollectionSpec = registry.spec?.garbageCollection ?? {};
  return {
    enabled: spec.enabled ?? true,
    schedule: spec.schedule ?? defaultGcSchedule(registry.metadata.namespace ?? '', registry.metadata.name ?? ''),
    deleteUntagged: spec.deleteUntagged ?? false,
    dryRun: spec.dryRun ?? false,
    timeoutMs: Math.max(GC_TIMEOUT_RANGE_MS.min, parseDuration(spec.timeout ?? DEFAULT_GC_TIMEOUT)),
    retention: spec.retention ?? [],
  };
}

/** `gc-<namespace>-<name, cut>-<hash>` in the operator namespace, ≤ 52 characters. */
export function gcCronJobName(key: RegistryKey): string {
  const hash = shortHash(`${key.namespace}/${key.name}`, 8);
  const readable = dnsFragment(`${key.namespace}-${key.name}`, CRONJOB_NAME_MAX - 'gc--'.length - hash.length);
  return ['gc', readable, hash].filter(Boolean).join('-');
}

/** The GC Job of one run in the registry's namespace: `<name, cut>-gc-<run>`. */
export function gcJobName(registryName: string, run: string): string {
  return `${registryName.slice(0, 63 - '-gc-'.length - run.length)}-gc-${run}`;
}

const gcConfigMapName = (registryName: string) => `${registryName}-gc`;

/** Labels of the GC objects in the registry's namespace. */
function gcLabels(key: RegistryKey): Record<string, string> {
  return { ...maintenanceLabels(key.name, 'garbage-collection'), 'registry.mgoltzsche.github.com/registry-namespace': key.namespace };
}

/**
 * The registry's CronJob in the operator namespace (the Jobs' ServiceAccount freezes the pods and
 * creates the GC Job): `kubectl create job --from=cronjob/<name>` runs one now. It carries the
 * operator configuration as env, as the reconcile Jobs do; suspended when collection is off.
 */
export function desiredGcCronJob(registry: ImageRegistry, config: OperatorConfig): V1CronJob {
  const key = { namespace: registry.metadata.namespace ?? '', name: registry.metadata.name ?? '' };
  const settings = gcSettings(registry);
  const labels = { 'app.kubernetes.io/name': 'image-registry-operator', 'app.kubernetes.io/component': 'garbage-collection', 'registry.mgoltzsche.github.com/registry-namespace': key.namespace, 'registry.mgoltzsche.github.com/registry-name': key.name };
  const env: V1EnvVar[] = [...operatorConfigEnv(config), { name: GC_REGISTRY_NAMESPACE_ENV, value: key.namespace }, { name: GC_REGISTRY_NAME_ENV, value: key.name }];
  return maintenanceCronJob({
    metadata: { name: gcCronJobName(key), namespace: config.namespace, labels },
    schedule: settings.schedule,
    suspend: !settings.enabled,
    // a second attempt would freeze again: the next scheduled run is the retry
    backoffLimit: 0,
    activeDeadlineSeconds: Math.ceil((settings.timeoutMs + WRITE_DRAIN_TIMEOUT_MS + FREEZE_MARGIN_MS) / 1000) + 300,
    podSpec: {
      serviceAccountName: JOB_SERVICE_ACCOUNT,
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'garbage-collect',
        image: config.images.operator,
        imagePullPolicy: 'IfNotPresent',
        command: [...GC_COMMAND],
        env,
        resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
      }],
    },
  });
}

/**
 * The GC pod's registry config: the registry's own storage, served without auth on the pod's
 * loopback only (retention's deletes), no upload purging (the serving replicas do that), no
 * health check. `registry garbage-collect` reads the same file.
 */
export function gcRegistryConfig(storage: Pick<RegistryStorage, 'config'>): string {
  const storageConfig = { ...storage.config, maintenance: { uploadpurging: { enabled: false, age: '168h', interval: '24h', dryrun: false } } };
  return dump({
    version: '0.1',
    log: { level: 'warn', formatter: 'text' },
    storage: storageConfig,
    http: { addr: GC_REGISTRY_ADDRESS },
  }, { lineWidth: -1, noRefs: true });
}

export function desiredGcConfigMap(registry: ImageRegistry): V1ConfigMap {
  const key = { namespace: registry.metadata.namespace ?? '', name: registry.metadata.name ?? '' };
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: gcConfigMapName(key.name), namespace: key.namespace, labels: gcLabels(key), ownerReferences: [registryOwnerReference(registry)] },
    data: { 'config.yml': gcRegistryConfig(registryStorage(registry)) },
  };
}

/**
 * The blob the GC pod uploads to every repository of a cache (linkEveryRepository): `{}`, OCI's
 * empty descriptor. Its link is swept by the same run unless a manifest of the repository uses it.
 */
export const EMPTY_JSON_BLOB = { content: '{}', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' } as const;

/** What the GC pod's retention container is told (env GC_SETTINGS, JSON). */
export interface GcPodSettings {
  dryRun: boolean;
  /**
   * A pull-through cache: before the collector runs, every repository gets a layer link (see
   * EMPTY_JSON_BLOB). A cache stores a manifest when it is pulled and each blob only when that is;
   * distribution's collector (v3.1.2) fails its whole mark ("Path not found: …/_layers") on a
   * repository with a manifest and no blob yet — a pull that stopped after the manifest, or a
   * `skopeo inspect` — and a cache whose collection always fails grows without bound.
   */
  linkEveryRepository?: boolean;
  /** what the cluster runs of this registry (in-use.ts): kept by retention, and deleteUntagged skipped when a pinned manifest has no tag */
  inUse?: InUse;
  retention: RetentionPolicy[];
  /** where the registry's keys start in its storage (the volume's path or the bucket's rootdirectory) */
  storage: { kind: 'volume'; root: string } | { kind: 's3' };
}

/**
 * The registry container of the GC pod: serves the storage on loopback until retention is done
 * (`retention.done` in the shared work directory), then runs the collector and leaves its output
 * and exit code there. POSIX sh: busybox in the registry image.
 */
/** Written by the retention container when an in-use manifest has no tag (GcPodSettings.inUse). */
export const KEEP_UNTAGGED_FILE = 'keep-untagged';

export const GC_SCRIPT = [
  'set -u',
  `registry serve ${GC_CONFIG_DIR}/config.yml & serving=$!`,
  `while [ ! -e ${GC_WORK_DIR}/retention.done ]; do`,
  '  if ! kill -0 "$serving" 2>/dev/null; then echo "the loopback registry stopped" >&2; exit 1; fi',
  '  sleep 1',
  'done',
  'kill "$serving"; wait "$serving" 2>/dev/null',
  `if [ -e ${GC_WORK_DIR}/nothing-stored ]; then echo "nothing stored yet" > ${GC_WORK_DIR}/gc.out; echo 0 > ${GC_WORK_DIR}/gc.exit; exit 0; fi`,
  // an untagged manifest the cluster runs by digest (retention's finding): no --delete-untagged this run (it comes first in GC_FLAGS)
  'flags="$GC_FLAGS"',
  `if [ -e ${GC_WORK_DIR}/${KEEP_UNTAGGED_FILE} ]; then flags="\${flags#--delete-untagged}"; fi`,
  `registry garbage-collect $flags ${GC_CONFIG_DIR}/config.yml > ${GC_WORK_DIR}/gc.out 2>&1; code=$?`,
  `tail -n 3 ${GC_WORK_DIR}/gc.out`,
  `echo "$code" > ${GC_WORK_DIR}/gc.exit`,
  'exit "$code"',
].join('\n');

export interface GcJobInput {
  registry: ImageRegistry;
  config: OperatorConfig;
  run: string;
  settings: GcSettings;
  /** a volume registry whose pods run: the GC pod must run on their node (ReadWriteOnce) */
  besideRegistryPods: boolean;
  /** what the cluster runs of this registry, read by the run before it froze writes */
  inUse?: InUse;
}

/** The GC Job in the registry's namespace: no Kubernetes API access, the registry's storage and ServiceAccount. */
export function desiredGcJob({ registry, config, run, settings, besideRegistryPods, inUse }: GcJobInput): V1Job {
  const key = { namespace: registry.metadata.namespace ?? '', name: registry.metadata.name ?? '' };
  const storage = registryStorage(registry);
  const labels = { ...gcLabels(key), 'registry.mgoltzsche.github.com/gc-run': run };
  const flags = [...(settings.deleteUntagged ? ['--delete-untagged'] : []), ...(settings.dryRun ? ['--dry-run'] : [])].join(' ');
  const podSettings: GcPodSettings = {
    dryRun: settings.dryRun,
    ...(registry.spec?.proxy ? { linkEveryRepository: true } : {}),
    ...(inUse ? { inUse } : {}),
    retention: settings.retention,
    storage: storage.kind === 's3' ? { kind: 's3' } : { kind: 'volume', root: String((storage.config.filesystem as { rootdirectory?: string } | undefined)?.rootdirectory ?? '') },
  };
  const nodeEnv: V1EnvVar[] = [...nodeStorageEnv(storage), { name: GC_SETTINGS_ENV, value: JSON.stringify(podSettings) }];
  const shared = [{ name: 'gc-config', mountPath: GC_CONFIG_DIR, readOnly: true }, { name: 'work', mountPath: GC_WORK_DIR }];
  const selector = { matchLabels: { 'app.kubernetes.io/name': 'image-registry', 'app.kubernetes.io/instance': key.name } };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: gcJobName(key.name, run), namespace: key.namespace, labels, ownerReferences: [registryOwnerReference(registry)] },
    spec: {
      backoffLimit: 0,
      // the write freeze outlasts this by FREEZE_MARGIN_MS: no collector still sweeps when writes resume
      activeDeadlineSeconds: Math.ceil(settings.timeoutMs / 1000),
      ttlSecondsAfterFinished: 86_400,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 5,
          ...(storage.serviceAccountName ? { serviceAccountName: storage.serviceAccountName } : {}),
          securityContext: { runAsNonRoot: true, fsGroup: REGISTRY_UID, fsGroupChangePolicy: 'OnRootMismatch', seccompProfile: { type: 'RuntimeDefault' } },
          ...(besideRegistryPods ? { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: selector }] } } } : {}),
          containers: [
            {
              name: 'registry',
              image: config.images.registry,
              command: ['sh', '-c', GC_SCRIPT],
              env: [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, { name: 'GC_FLAGS', value: flags }, ...storage.env],
              // its own port: the loopback registry needs the pod's network namespace, never the node's
              ports: [{ name: 'gc-registry', containerPort: Number(GC_REGISTRY_ADDRESS.split(':')[1]), protocol: 'TCP' }],
              securityContext: restrictedSecurityContext(REGISTRY_UID),
              resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '1Gi' } },
              volumeMounts: [...shared, ...storage.volumeMounts],
            },
            {
              name: 'retention',
              image: config.images.operator,
              imagePullPolicy: 'IfNotPresent',
              command: [...GC_RETENTION_COMMAND],
              env: nodeEnv,
              securityContext: restrictedSecurityContext(65532),
              resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              volumeMounts: [...shared, ...storage.volumeMounts.map((mount) => ({ ...mount, readOnly: true }))],
            },
          ],
          volumes: [
            { name: 'gc-config', configMap: { name: gcConfigMapName(key.name), defaultMode: 0o444 } },
            { name: 'work', emptyDir: { sizeLimit: '64Mi' } },
            ...storage.volumes,
          ],
        },
      },
    },
  };
}

// ---- retention ----

export interface TagState {
  tag: string;
  digest: string;
  pushedAt: Date;
  /** for an index: the digests of the manifests it references */
  references?: string[];
}

export interface RepositoryState {
  repository: string;
  tags: TagState[];
}

export interface RetentionPlan {
  /** manifests to DELETE by digest: none of their tags is kept */
  deleteManifests: { repository: string; digest: string; tags: string[] }[];
  /** tags that go while their manifest stays (another kept tag shares it): DELETE by tag */
  deleteTags: { repository: string; tag: string }[];
  keptTags: number;
  /** tags a policy would have deleted, kept because the cluster runs them (`repository:tag`) */
  keptInUse: string[];
  /** manifests the cluster runs by digest that no tag points to (`repository@digest`): deleteUntagged would collect them */
  untaggedInUse: string[];
}

const matches = (name: string, globs: readonly string[]) => globs.some((glob) => posix.matchesGlob(name, glob));

/** The first policy whose repositories match, as zot applies them. */
function retentionPolicyFor(repository: string, policies: readonly RetentionPolicy[]): RetentionPolicy | undefined {
  return policies.find((policy) => matches(repository, policy.repositories));
}

/** The tags a policy keeps: any rule keeping a tag keeps it. */
export function keptTags(tags: readonly TagState[], keep: KeepTags, now: Date): Set<string> {
  const kept = new Set<string>();
  const newestFirst = [...tags].sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime() || a.tag.localeCompare(b.tag));
  newestFirst.slice(0, keep.mostRecentlyPushedCount ?? 0).forEach((t) => kept.add(t.tag));
  if (keep.patterns?.length) tags.filter((t) => matches(t.tag, keep.patterns ?? [])).forEach((t) => kept.add(t.tag));
  if (keep.pushedWithin) {
    const since = now.getTime() - parseDuration(keep.pushedWithin);
    tags.filter((t) => t.pushedAt.getTime() >= since).forEach((t) => kept.add(t.tag));
  }
  return kept;
}

/**
 * What retention deletes. Repositories no policy covers keep every tag. A manifest is deleted only
 * when no kept tag points to it or to an index referencing it (a kept multi-arch tag keeps its
 * per-platform manifests, also when they carry tags of their own). What the cluster runs (`inUse`,
 * in-use.ts) is kept whatever the policies say: its tags, and every tag of a manifest it pins by
 * digest. Attachments (`sha256-<hex>.sig` …, attachments.ts) are not counted by the keep rules:
 * in a repository a policy covers they stay while their image stays and go with it, and when it
 * is gone.
 */
export function retentionPlan(repositories: readonly RepositoryState[], policies: readonly RetentionPolicy[], now: Date, inUse: InUse = { tags: {}, digests: {} }): RetentionPlan {
  const plan: RetentionPlan = { deleteManifests: [], deleteTags: [], keptTags: 0, keptInUse: [], untaggedInUse: [] };
  for (const { repository, tags } of repositories) {
    const usedTags = new Set(inUse.tags[repository] ?? []);
    const usedDigests = new Set(inUse.digests[repository] ?? []);
    const images = tags.filter((t) => attachmentSubject(t.tag) === undefined);
    const policy = retentionPolicyFor(repository, policies);
    const byPolicy = policy ? keptTags(images, policy.keepTags, now) : new Set(tags.map((t) => t.tag));
    const kept = new Set(byPolicy);
    for (const t of images) {
      if (kept.has(t.tag) || !(usedTags.has(t.tag) || usedDigests.has(t.digest))) continue;
      kept.add(t.tag);
      plan.keptInUse.push(`${repository}:${t.tag}`);
    }
    const imageDigests = new Set([...usedDigests, ...images.filter((t) => kept.has(t.tag)).flatMap((t) => [t.digest, ...(t.references ?? [])])]);
    // an attachment stays with a kept image; one of a deleted image, or of none, goes
    for (const t of tags) {
      const subject = attachmentSubject(t.tag);
      if (subject !== undefined && imageDigests.has(subject)) kept.add(t.tag);
    }
    const present = new Set(tags.flatMap((t) => [t.digest, ...(t.references ?? [])]));
    for (const digest of usedDigests) if (!present.has(digest)) plan.untaggedInUse.push(`${repository}@${digest}`);
    const keptDigests = new Set([...usedDigests, ...tags.filter((t) => kept.has(t.tag)).flatMap((t) => [t.digest, ...(t.references ?? [])])]);
    const byDigest = new Map<string, string[]>();
    for (const t of tags) {
      if (kept.has(t.tag)) continue;
      if (keptDigests.has(t.digest)) {
        // the manifest stays for a kept tag or index; only a tag pointing at a kept tag's own manifest goes
        if (tags.some((k) => kept.has(k.tag) && k.digest === t.digest)) plan.deleteTags.push({ repository, tag: t.tag });
        continue;
      }
      byDigest.set(t.digest, [...(byDigest.get(t.digest) ?? []), t.tag]);
    }
    for (const [digest, digestTags] of byDigest) plan.deleteManifests.push({ repository, digest, tags: digestTags.sort() });
    plan.keptTags += tags.length;
  }
  plan.keptTags -= plan.deleteTags.length + plan.deleteManifests.reduce((n, m) => n + m.tags.length, 0);
  return plan;
}

// ---- the collector's output and the report ----

export interface GcSummary {
  blobsMarked: number;
  blobsDeleted: number;
  manifestsDeleted: number;
  /** the digests of the blobs it deleted (or would delete, in a dry run) */
  blobDigests: string[];
}

/** Reads `registry garbage-collect` output: "N blobs marked, M blobs and K manifests eligible for deletion". */
export function parseGcOutput(text: string): GcSummary | undefined {
  const summary = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(text);
  if (!summary) return undefined;
  const blobDigests = [...text.matchAll(/^blob eligible for deletion: (sha256:[0-9a-f]{64})$/gm)].map((m) => m[1] as string);
  return { blobsMarked: Number(summary[1]), blobsDeleted: Number(summary[2]), manifestsDeleted: Number(summary[3]), blobDigests };
}

/** The GC pod's report, the retention container's last log line (`{"gcReport":…}`). */
export interface GcPodReport {
  dryRun: boolean;
  tagsDeleted: number;
  manifestsDeleted: number;
  blobsDeleted: number;
  /** blob bytes the run reclaimed (in a dry run: would reclaim) */
  bytesReclaimed: number;
  /** blob bytes in the storage after the run */
  storageBytes: number;
  problems: string[];
  /** tags retention kept because the cluster runs them (RetentionPlan.keptInUse) */
  keptInUse?: string[];
  /** in-use manifests without a tag: deleteUntagged was skipped for them (RetentionPlan.untaggedInUse) */
  untaggedInUse?: string[];
}

const GC_REPORT_KEY = 'gcReport';

export function gcPodReportLine(report: GcPodReport): string {
  return JSON.stringify({ [GC_REPORT_KEY]: report });
}

/** The last report line of a container log, or undefined. */
export function parseGcPodReport(log: string): GcPodReport | undefined {
  for (const line of log.trim().split('\n').reverse()) {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed[GC_REPORT_KEY]) return parsed[GC_REPORT_KEY] as GcPodReport;
    } catch {
      // not JSON: a log line of another kind
    }
  }
  return undefined;
}

const MIB = 1024 * 1024;
const formatBytes = (bytes: number) => (bytes >= MIB ? `${(bytes / MIB).toFixed(1)} MiB` : `${bytes} bytes`);

/** The Event's message of a run. */
export function gcEventMessage(run: GarbageCollectionRun): string {
  if (run.result === 'Failed') return `garbage collection failed: ${run.message ?? 'see the GC Job'}`;
  const would = run.dryRun ? 'dry run, nothing deleted: would delete' : 'deleted';
  const freeze = run.freezeSeconds === undefined ? 'no write freeze' : `writes refused for ${run.freezeSeconds.toFixed(1)} s`;
  return `garbage collection ${would} ${run.tagsDeleted ?? 0} tags, ${run.manifestsDeleted ?? 0} manifests and ${run.blobsDeleted ?? 0} blobs (${formatBytes(run.bytesReclaimed ?? 0)}); ${freeze}${run.message ? `; ${run.message}` : ''}`;
}
