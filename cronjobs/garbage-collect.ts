// Job entry point (dist/garbage-collect.js), run by each registry's `gc-…` CronJob in the operator
// namespace: one garbage collection (and tag retention) run, in the steps functions/garbage-collection.ts
// lists — freeze, drain, collect, lift, report. Whatever step it dies after, writes are accepted
// again by the freeze's deadline (nginx compares it with the clock), and no collector still runs
// then (the GC Job's activeDeadlineSeconds is shorter).
import { hostname as podName } from 'node:os';
import type { V1ConfigMap, V1Job, V1Pod } from '@kubernetes/client-node';
import { formatDuration } from '../functions/duration.ts';
import {
  desiredGcConfigMap, desiredGcJob, FREEZE_MARGIN_MS, GC_REGISTRY_NAME_ENV, GC_REGISTRY_NAMESPACE_ENV, gcEventMessage, gcSettings, parseGcPodReport,
  type GcPodReport, type GcSettings,
} from '../functions/garbage-collection.ts';
import { CACHE_WRITE_ROUTES, FREEZE_DRAIN_MS, freezeEnd, WRITE_DRAIN_TIMEOUT_MS, WRITE_ROUTES, freezeId, liveFreezeHolder, maintenanceFiles, type Freeze } from '../functions/maintenance.ts';
import { maintenanceConfigMapName, registryHostname } from '../functions/names.ts';
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { registryOwnerReference } from '../functions/registry-objects.ts';
import { storageKind } from '../functions/registry-storage.ts';
import { API_GROUP, GROUP_VERSION, type GarbageCollectionRun, type ImageRegistry, type OperatorConfig } from '../functions/types.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { servingCa } from './certificates.ts';
import { registryPods, touchRegistryPods } from './credential-check.ts';
import { runEntryPoint } from './entry-point.ts';
import { recordRegistryEvent } from './events.ts';
import { awaitFreezeState, drainWrites, type Drain, type FreezeTarget } from './freeze.ts';
import { connectKube, isConflict, type Kube } from './kube.ts';
import { removeGcCronJob } from './registry-workload.ts';
import { errorMessage, log } from './log.ts';
import { workloadImages } from './workload-images.ts';
import { mirrorHosts } from '../functions/pull-through-cache.ts';
import { inUseOf, inUseSummary, type InUse } from '../functions/retention/in-use.ts';

const MAINTENANCE_VERSION_ANNOTATION = `${API_GROUP}/maintenance-version`;
const GC_FIELD_MANAGER = 'image-registry-operator-gc';
/** how long every pod has to show a freeze (or its lift): a touched pod's kubelet syncs at once, an untouched one within its sync period */
const FREEZE_CONFIRM_TIMEOUT_MS = 120_000;

interface Run {
  kube: Kube;
  registry: ImageRegistry;
  key: RegistryKey;
  settings: GcSettings;
  targets: FreezeTarget[];
  id: string;
  /** what the cluster runs of the registry, when the run may delete tags or untagged manifests */
  inUse?: InUse;
}

async function main(env: NodeJS.ProcessEnv): Promise<number> {
  const kube = connectKube();
  const config = operatorConfigFromEnv(env);
  const key = { namespace: env[GC_REGISTRY_NAMESPACE_ENV] ?? '', name: env[GC_REGISTRY_NAME_ENV] ?? '' };
  if (!key.namespace || !key.name) throw new Error(`${GC_REGISTRY_NAMESPACE_ENV} and ${GC_REGISTRY_NAME_ENV} must name the registry`);
  const registry = await kube.read<ImageRegistry>({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', namespace: key.namespace, name: key.name });
  if (!registry || registry.metadata.deletionTimestamp) {
    // its reconcile removes this CronJob; a run that comes first does it
    log('info', 'registry gone: nothing to collect, its CronJob removed', { registry: `${key.namespace}/${key.name}` });
    await removeGcCronJob(kube, key, config);
    return 0;
  }
  const started = new Date();
  const run: Run = { kube, registry, key, settings: gcSettings(registry), targets: await freezeTargets(kube, registry, config), id: freezeId(podName(), started) };
  // fail safe: a run that cannot see what the cluster runs deletes nothing (before any freeze)
  const inUse = await readInUse(run, config);
  const result = 'problem' in inUse
    ? { startTime: started.toISOString(), completionTime: new Date().toISOString(), result: 'Failed' as const, message: inUse.problem }
    : await collect({ ...run, ...(inUse.inUse ? { inUse: inUse.inUse } : {}) }, config, started);
  await report(run, result);
  return result.result === 'Succeeded' ? 0 : 1;
}

/**
 * What the cluster runs of this registry, read only when the run may delete tags (retention) or
 * untagged manifests (deleteUntagged): collecting unreferenced blobs never takes what a manifest uses.
 */
async function readInUse(run: Run, config: OperatorConfig): Promise<{ inUse?: InUse } | { problem: string }> {
  if (run.settings.retention.length === 0 && !run.settings.deleteUntagged) return {};
  const hostname = run.registry.status?.hostname || registryHostname(run.key.name, run.key.namespace, config.dnsZone);
  try {
    const { images, requests } = await workloadImages(run.kube);
    // a cache's copies run under the hosts it mirrors too (the nodes pull docker.io/… through it)
    const inUse = inUseOf(images, [hostname, ...mirrorHosts(run.registry)]);
    log('info', 'images in use', { registry: `${run.key.namespace}/${run.key.name}`, images: images.size, requests, ofThisRegistry: inUseSummary(inUse).count });
    return { inUse };
  } catch (error) {
    return { problem: `cannot read the cluster's workloads to keep the images they use (${errorMessage(error)}): nothing was deleted; the Jobs' ClusterRole image-registry-operator-jobs must list pods, replicationcontrollers, deployments, replicasets, statefulsets, daemonsets, jobs and cronjobs` };
  }
}

/** Every registry pod that has an IP: a pod that is not Ready yet may become so during the run. */
async function freezeTargets(kube: Kube, registry: ImageRegistry, config: OperatorConfig): Promise<FreezeTarget[]> {
  const key = { namespace: registry.metadata.namespace ?? '', name: registry.metadata.name ?? '' };
  const caPem = await servingCa(kube, registry);
  const hostname = registry.status?.hostname || registryHostname(key.name, key.namespace, config.dnsZone);
  const pods = (await registryPods(kube, key)).filter((pod) => pod.status?.podIP && !pod.metadata?.deletionTimestamp);
  return pods.map((pod) => ({ host: pod.status?.podIP ?? '', hostname, caPem }));
}

type RunResult = GarbageCollectionRun & { storageBytes?: number };

async function collect(run: Run, config: OperatorConfig, started: Date): Promise<RunResult> {
  const finish = (fields: Partial<RunResult> & Pick<RunResult, 'result'>): RunResult => ({
    startTime: started.toISOString(), completionTime: new Date().toISOString(), ...(run.settings.dryRun ? { dryRun: true } : {}), ...fields,
  });
  // a dry run deletes nothing: no write can race it, so no freeze
  const freeze = run.settings.dryRun ? undefined : await holdFreeze(run, started);
  if (freeze && 'problem' in freeze) return finish({ result: 'Failed', message: freeze.problem });
  const job: { created?: boolean } = {};
  let podReport: GcPodReport | { problem: string };
  let liftedAt: Date | undefined;
  try {
    podReport = await runGcJob(run, config, job);
    if (freeze) liftedAt = await liftFreeze(run, freeze.freeze);
  } catch (error) {
    // a collector may still be sweeping: the freeze stays until its deadline, which outlasts the GC Job's
    if (freeze && !job.created) liftedAt = await liftFreeze(run, freeze.freeze);
    podReport = { problem: `${errorMessage(error)}${freeze && job.created ? `; writes are accepted again by ${freezeEnd(freeze.freeze).toISOString()}` : ''}` };
  }
  const frozen = freeze && liftedAt ? { freezeSeconds: (liftedAt.getTime() - freeze.frozenAt.getTime()) / 1000 } : {};
  if ('problem' in podReport) return finish({ result: 'Failed', message: podReport.problem, ...frozen });
  const { problems } = podReport;
  const inUse = inUseNotes(podReport);
  const message = [...problems, ...inUse.notes, ...(freeze?.drainNotes ?? [])].join('; ').slice(0, 2000);
  return finish({
    result: problems.length ? 'Failed' : 'Succeeded',
    ...(message ? { message } : {}),
    tagsDeleted: podReport.tagsDeleted, manifestsDeleted: podReport.manifestsDeleted, blobsDeleted: podReport.blobsDeleted, bytesReclaimed: podReport.bytesReclaimed,
    ...(inUse.tagsKeptInUse ? { tagsKeptInUse: inUse.tagsKeptInUse } : {}),
    ...frozen,
    storageBytes: podReport.storageBytes,
  });
}

/** lastRun's account of what the cluster's use kept (RetentionPlan.keptInUse / untaggedInUse). */
function inUseNotes(report: GcPodReport): { tagsKeptInUse: number; notes: string[] } {
  const kept = report.keptInUse ?? [];
  const untagged = report.untaggedInUse ?? [];
  const notes = [
    ...(kept.length ? [`kept ${kept.length} tag(s) in use by workloads: ${kept.slice(0, 3).join(', ')}${kept.length > 3 ? ', …' : ''}`] : []),
    ...(untagged.length ? [`deleteUntagged skipped this run: ${untagged.length} untagged manifest(s) in use by digest: ${untagged.slice(0, 3).join(', ')}${untagged.length > 3 ? ', …' : ''}`] : []),
  ];
  return { tagsKeptInUse: kept.length, notes };
}

interface HeldFreeze {
  freeze: Freeze;
  /** the freeze written: the start of its window */
  frozenAt: Date;
  /** what lastRun's message says of the drain */
  drainNotes: string[];
}

/** Step 1 and 2: the freeze written, confirmed on every pod, then the drain. */
async function holdFreeze(run: Run, started: Date): Promise<HeldFreeze | { problem: string }> {
  const until = new Date(started.getTime() + WRITE_DRAIN_TIMEOUT_MS + run.settings.timeoutMs + FREEZE_MARGIN_MS);
  const freeze: Freeze = { id: run.id, reason: 'garbage collection', from: started, until };
  try {
    await writeMaintenance(run, freeze);
  } catch (error) {
    return { problem: `${errorMessage(error)}; nothing was collected` };
  }
  const frozenAt = new Date();
  await recordWriteFreeze(run, { since: frozenAt.toISOString(), until: freezeEnd(freeze).toISOString() });
  const unconfirmed = await awaitFreezeState(run.targets, 'frozen', run.id, { timeoutMs: FREEZE_CONFIRM_TIMEOUT_MS });
  if (unconfirmed.length) {
    await liftFreeze(run, freeze);
    return { problem: `the write freeze was not confirmed by every registry pod within ${FREEZE_CONFIRM_TIMEOUT_MS / 1000} s (${unconfirmed.map((u) => `${u.target.host}: ${u.last}`).join('; ')}); nothing was collected` };
  }
  log('info', 'write freeze confirmed', { registry: `${run.key.namespace}/${run.key.name}`, pods: run.targets.length, until: freezeEnd(freeze).toISOString() });
  const drain = await drainWrites(run.targets, { routes: run.registry.spec?.proxy ? CACHE_WRITE_ROUTES : WRITE_ROUTES });
  log('info', 'writes in flight drained', { registry: `${run.key.namespace}/${run.key.name}`, ms: drain.ms, pods: drain.pods.map((pod) => ({ pod: pod.target.host, outcome: pod.outcome, ...(pod.inFlight ? { inFlight: pod.inFlight } : {}), ...(pod.problem ? { problem: pod.problem } : {}) })) });
  return { freeze, frozenAt, drainNotes: drainNotes(drain) };
}

/** What lastRun says of a drain that did not end with every registry idle. */
function drainNotes(drain: Drain): string[] {
  const unknown = drain.pods.filter((pod) => pod.outcome === 'unknown');
  const busy = drain.pods.filter((pod) => pod.outcome === 'timeout');
  return [
    ...(unknown.length ? [`the writes in flight of ${unknown.length} pod(s) could not be read from their metrics port ${unknown.map((pod) => `${pod.target.host}: ${pod.problem}`).join('; ').slice(0, 300)}: waited the fixed ${FREEZE_DRAIN_MS / 1000} s`] : []),
    ...(busy.length ? [`${busy.reduce((sum, pod) => sum + (pod.inFlight ?? 0), 0)} write(s) still in flight after ${WRITE_DRAIN_TIMEOUT_MS / 1000} s (a long upload): a blob it completes during the sweep can be swept, and that push then fails and is retried`] : []),
  ];
}

/**
 * The `<r>-maintenance` ConfigMap with this run's freeze (or none), written only while no other
 * run's freeze is live — guarded by its resourceVersion — then the pods touched.
 */
async function writeMaintenance(run: Run, freeze: Freeze | undefined): Promise<void> {
  const { key, registry, kube } = run;
  const ref = { apiVersion: 'v1', kind: 'ConfigMap', namespace: key.namespace, name: maintenanceConfigMapName(key.name) };
  const current = await kube.read<V1ConfigMap>(ref);
  const holder = liveFreezeHolder(current?.data, new Date());
  if (holder && holder !== run.id) throw new Error(`another garbage collection run (freeze ${holder}) holds the write freeze; this one leaves it alone`);
  const desired: V1ConfigMap = {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: ref.name, namespace: key.namespace, ownerReferences: [registryOwnerReference(registry)], ...(current ? { resourceVersion: current.metadata?.resourceVersion } : {}) },
    data: maintenanceFiles(freeze),
  };
  if (current) await kube.replace(desired);
  else await kube.create(desired);
  await touchRegistryPods(kube, key, `${run.id}-${freeze ? 'frozen' : 'open'}`, MAINTENANCE_VERSION_ANNOTATION);
}

/** Step 4: the freeze lifted; when every pod accepts writes again (undefined when one does not: its freeze ends at the deadline). */
async function liftFreeze(run: Run, freeze: Freeze): Promise<Date | undefined> {
  // another writer of the ConfigMap in between (a conflict) is read again
  for (let attempt = 1; ; attempt++) {
    try {
      await writeMaintenance(run, undefined);
      break;
    } catch (error) {
      if (!isConflict(error) || attempt === 3) throw error;
    }
  }
  const still = await awaitFreezeState(run.targets, 'open', run.id, { timeoutMs: FREEZE_CONFIRM_TIMEOUT_MS });
  if (still.length === 0) return new Date();
  log('warn', 'write freeze not lifted on every pod; it ends at its deadline', { registry: `${run.key.namespace}/${run.key.name}`, until: freezeEnd(freeze).toISOString(), pods: still.map((s) => `${s.target.host}: ${s.last}`) });
  return undefined;
}

/** Step 3: the GC Job in the registry's namespace, waited for; its pod's report. */
async function runGcJob(run: Run, config: OperatorConfig, job: { created?: boolean }): Promise<GcPodReport | { problem: string }> {
  const { kube, registry, key, settings } = run;
  await kube.apply(desiredGcConfigMap(registry));
  const besideRegistryPods = storageKind(registry) === 'volume' && run.targets.length > 0;
  const desired = desiredGcJob({ registry, config, run: run.id.slice(0, 10), settings, besideRegistryPods, ...(run.inUse ? { inUse: run.inUse } : {}) });
  const name = desired.metadata?.name ?? '';
  await kube.create(desired);
  job.created = true;
  const deadline = Date.now() + settings.timeoutMs + 30_000;
  for (;;) {
    const current = await kube.read<V1Job>({ apiVersion: 'batch/v1', kind: 'Job', namespace: key.namespace, name });
    const ended = current?.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    if (ended || !current) {
      // a Job deleted or failed by its deadline: its pod may still be stopping, and the collector with it
      await collectorStopped(kube, key.namespace, name);
      const podReport = await jobPodReport(kube, key.namespace, name);
      if (podReport) return podReport;
      return { problem: `GC Job ${key.namespace}/${name} ${ended?.type === 'Complete' ? 'completed' : `failed (${ended?.reason ?? 'deleted'}: ${ended?.message ?? ''})`} without a report; see its pod's logs` };
    }
    if (Date.now() > deadline) {
      await kube.remove({ apiVersion: 'batch/v1', kind: 'Job', namespace: key.namespace, name }, { propagationPolicy: 'Background' });
      await collectorStopped(kube, key.namespace, name);
      return { problem: `GC Job ${key.namespace}/${name} did not finish within spec.garbageCollection.timeout (${formatDuration(settings.timeoutMs)}); deleted` };
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

const jobPods = (kube: Kube, namespace: string, job: string) => kube.list<V1Pod>('v1', 'Pod', namespace, `batch.kubernetes.io/job-name=${job}`);

/** Until no pod of the GC Job runs; throws after a minute (the freeze then holds until its deadline). */
async function collectorStopped(kube: Kube, namespace: string, job: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  const running = async () => (await jobPods(kube, namespace, job)).filter((pod) => pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed');
  while ((await running()).length > 0) {
    if (Date.now() > deadline) throw new Error(`GC Job ${namespace}/${job} ended but its pod still runs`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

async function jobPodReport(kube: Kube, namespace: string, job: string): Promise<GcPodReport | undefined> {
  for (const pod of await jobPods(kube, namespace, job)) {
    const text = await kube.containerLog(namespace, pod.metadata?.name ?? '', 'retention', 200);
    const parsed = text ? parseGcPodReport(text) : undefined;
    if (parsed) return parsed;
  }
  return undefined;
}

/**
 * status.garbageCollection.writeFreeze while the freeze holds, so monitoring sees a run that died
 * holding it. Applied by the run's field manager with what it owns already (lastRun, storage):
 * an apply that left them out would remove them. report() leaves writeFreeze out, which removes it.
 */
async function recordWriteFreeze(run: Run, writeFreeze: { since: string; until: string }): Promise<void> {
  const previous = run.registry.status;
  const status = {
    garbageCollection: { ...(previous?.garbageCollection?.lastRun ? { lastRun: previous.garbageCollection.lastRun } : {}), writeFreeze },
    ...(previous?.storage ? { storage: previous.storage } : {}),
  };
  await applyGcStatus(run, status, 'the write freeze');
}

/** The status fields the runs own, applied with their field manager; a failure is logged, not thrown. */
async function applyGcStatus(run: Run, status: object, what: string): Promise<void> {
  try {
    await run.kube.applyStatus({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: run.key.name, namespace: run.key.namespace }, status }, 'imageregistries', GC_FIELD_MANAGER);
  } catch (error) {
    log('warn', `could not record ${what} in the status`, { error: errorMessage(error) });
  }
}

/** Step 5: an Event and the status (its own field manager: the reconcile owns the rest of it). */
async function report(run: Run, result: RunResult): Promise<void> {
  const { storageBytes, ...lastRun } = result;
  const now = new Date();
  const message = gcEventMessage(lastRun);
  log(lastRun.result === 'Succeeded' ? 'info' : 'warn', 'garbage collection', { registry: `${run.key.namespace}/${run.key.name}`, ...lastRun });
  await recordRegistryEvent(run.kube, run.registry, lastRun.result === 'Succeeded' ? 'Normal' : 'Warning', lastRun.result === 'Succeeded' ? 'GarbageCollected' : 'GarbageCollectionFailed', message, now);
  const status = {
    garbageCollection: { lastRun },
    // a run that measured nothing keeps the last measurement (an apply without it would remove it)
    ...(storageBytes === undefined ? (run.registry.status?.storage ? { storage: run.registry.status.storage } : {}) : { storage: { usedBytes: storageBytes, measuredAt: lastRun.completionTime } }),
  };
  await applyGcStatus(run, status, 'the run');
}

runEntryPoint('garbage-collect', () => main(process.env));
