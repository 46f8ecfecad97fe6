// Step 5 and 6 of a registry's reconcile: apply the workload (registry config, nginx config,
// Service, data claim or the bucket's references, StatefulSet, PodDisruptionBudget, a bucket's
// upload-cleanup CronJob, the garbage collection CronJob) and wait for its pods.
import type { V1ConfigMap, V1PersistentVolumeClaim, V1StatefulSet } from '@kubernetes/client-node';
import { dataClaimName, registryLabelSelector, registryTlsSecretName, statefulSetName } from '../functions/names.ts';
import { desiredDataClaim, desiredNginxConfigMap, desiredPodDisruptionBudget, desiredService, desiredStatefulSet, rolloutAnnotations } from '../functions/registry-objects.ts';
import { registryUpstream } from '../functions/pull-through-cache.ts';
import { registryStorage, storageReferenceProblem, storageReferencesDigest, type StorageReference } from '../functions/registry-storage.ts';
import type { RegistryProblem, StatefulSetState } from '../functions/registry-status.ts';
import { desiredGcCronJob, gcCronJobName } from '../functions/garbage-collection.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { desiredUploadCleanupCronJob } from '../functions/upload-cleanup.ts';
import type { ImageRegistry, OperatorConfig } from '../functions/types.ts';
import type { V1Secret } from '@kubernetes/client-node';
import type { Kube } from './kube.ts';
import { recordRegistryEvent } from './events.ts';
import { errorMessage, log } from './log.ts';

export interface WorkloadInput {
  registry: ImageRegistry;
  hostname: string;
  config: OperatorConfig;
  /** `<r>-registry-config` as desiredConfigSecrets builds it */
  registrySecret: V1Secret;
  /** the JWKS of the keys the registry trusts (token-keys.ts) */
  trustedTokenKeys: string;
  now: Date;
}

export interface AppliedWorkload {
  /** the pod template annotations a finished rollout carries */
  templateAnnotations: Record<string, string>;
  /** a Secret or ConfigMap (key) the storage needs is missing: the pods cannot start */
  storageProblem?: RegistryProblem;
  /** the credentials' values, to blank out of anything reported (never log them) */
  redact: string[];
  /** a pull-through cache's upstream CA (spec.proxy.ca), for the Job's own request to the upstream */
  upstreamCaPem?: string;
}

/**
 * Applies the workload. A bucket's credentials Secret and CA are read here (the Jobs may read
 * Secrets anyway, for TLS sources) for two things only: whether they exist with their keys, and
 * a digest of their values that rolls the pods when they change. The values are never logged.
 */
export async function applyWorkload(kube: Kube, input: WorkloadInput): Promise<AppliedWorkload> {
  const { registry } = input;
  const storage = registryStorage(registry);
  // the bucket's and the upstream's (a pull-through cache) Secrets and CAs: the same checks and roll
  const upstream = registryUpstream(registry);
  const readAtStart = [...storage.readAtStart, ...upstream.readAtStart];
  const references = await readStorageReferences(kube, registry.metadata.namespace ?? '', readAtStart);
  await kube.apply(input.registrySecret);
  const nginxConfigMap = desiredNginxConfigMap(registry);
  await kube.apply(nginxConfigMap);
  await kube.apply(desiredService(registry, input.hostname));
  const registryConfigText = Buffer.from(input.registrySecret.data?.['config.yml'] ?? '', 'base64').toString('utf8');
  const templateAnnotations = rolloutAnnotations({
    trustedTokenKeys: input.trustedTokenKeys, registryConfig: registryConfigText, nginxConfigFiles: nginxConfigMap.data ?? {},
    storageReferences: storageReferencesDigest({ readAtStart }, (ref) => references.get(referenceId(ref))?.[ref.key]),
  });
  if (storage.kind === 'volume') await applyDataClaim(kube, registry, input.now);
  await replaceStatefulSetWithClaimTemplates(kube, registry, input.now);
  await kube.apply(desiredStatefulSet(registry, input.config, { tlsSecretName: registryTlsSecretName(registry), templateAnnotations }));
  await kube.apply(desiredPodDisruptionBudget(registry));
  const uploadCleanup = desiredUploadCleanupCronJob(registry, input.config);
  if (uploadCleanup) await kube.apply(uploadCleanup);
  await kube.apply(desiredGcCronJob(registry, input.config));
  const storageProblem = storageReferenceProblem({ readAtStart }, (ref) => {
    const data = references.get(referenceId(ref));
    return data ? Object.keys(data) : undefined;
  });
  const redact = readAtStart.filter((ref) => ref.kind === 'Secret').flatMap((ref) => references.get(referenceId(ref))?.[ref.key] ?? []);
  const caRef = upstream.caReference;
  const upstreamCaPem = caRef ? references.get(referenceId(caRef))?.[caRef.key] : undefined;
  return { templateAnnotations, redact, ...(storageProblem ? { storageProblem } : {}), ...(upstreamCaPem ? { upstreamCaPem } : {}) };
}

/** The garbage collection CronJob of a registry that is gone (it lives in the operator namespace). */
export async function removeGcCronJob(kube: Kube, key: RegistryKey, config: OperatorConfig): Promise<void> {
  await kube.remove({ apiVersion: 'batch/v1', kind: 'CronJob', namespace: config.namespace, name: gcCronJobName(key) }, { propagationPolicy: 'Background' });
}

const referenceId = (ref: StorageReference) => `${ref.kind}/${ref.name}`;

/** The data (decoded) of each referenced Secret / ConfigMap that exists, by kind/name. */
async function readStorageReferences(kube: Kube, namespace: string, refs: readonly StorageReference[]): Promise<Map<string, Record<string, string>>> {
  const found = new Map<string, Record<string, string>>();
  for (const ref of refs) {
    if (found.has(referenceId(ref))) continue;
    const object = await kube.read<V1Secret | V1ConfigMap>({ apiVersion: 'v1', kind: ref.kind, namespace, name: ref.name });
    if (!object) continue;
    const decoded = ref.kind === 'Secret'
      ? Object.fromEntries(Object.entries((object as V1Secret).data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]))
      : { ...(object as V1ConfigMap).data, ...(object as V1ConfigMap).binaryData };
    found.set(referenceId(ref), decoded);
  }
  return found;
}

/** Polls the StatefulSet until `done` or the time-out; returns it as last read. */
export async function waitForRollout(kube: Kube, registry: ImageRegistry, timeoutMs: number, done: (statefulSet: StatefulSetState | undefined) => boolean): Promise<StatefulSetState | undefined> {
  const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: registry.metadata.namespace, name: statefulSetName(registry.metadata.name ?? '') };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statefulSet = await kube.read<StatefulSetState & { apiVersion: string; kind: string }>(ref);
    if (done(statefulSet) || Date.now() >= deadline) return statefulSet;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

export const VOLUME_UNCHANGED = 'VolumeUnchanged';
export const VOLUME_SHARED = 'VolumeShared';

/**
 * The one claim all replicas mount. Once it exists, the API server refuses what a claim cannot do
 * (grow where the storage class does not allow expansion; other access modes on a claim kept from a
 * deleted registry of the same name): the registry keeps its volume, a Warning Event says why, and
 * the run goes on — the volume must not stop credentials and certificates from being reconciled.
 */
async function applyDataClaim(kube: Kube, registry: ImageRegistry, now: Date): Promise<void> {
  const claim = desiredDataClaim(registry);
  try {
    await kube.apply(claim);
  } catch (error) {
    const ref = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: registry.metadata.namespace, name: claim.metadata?.name ?? '' };
    if (!(await kube.read(ref))) throw error;
    const message = `the data volume (PersistentVolumeClaim ${ref.name}) stays as it is: ${errorMessage(error)}; check spec.persistentVolumeClaim`;
    await recordRegistryEvent(kube, registry, 'Warning', VOLUME_UNCHANGED, message, now);
    log('warn', 'data volume not changed', { registry: `${registry.metadata.namespace}/${registry.metadata.name}`, error: errorMessage(error) });
  }
}

/**
 * A StatefulSet made by an earlier version gave each pod a claim of its own (volumeClaimTemplates),
 * so replicas served different blobs; its claim templates cannot be changed in place. It is deleted
 * with its pods orphaned (they keep serving); the apply that follows creates it anew, adopts the
 * pods and rolls them onto the shared claim — pod 0's claim, whose name and data it keeps.
 */
async function replaceStatefulSetWithClaimTemplates(kube: Kube, registry: ImageRegistry, now: Date): Promise<void> {
  const name = registry.metadata.name ?? '';
  const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: registry.metadata.namespace, name: statefulSetName(name) };
  const current = await kube.read<V1StatefulSet>(ref);
  const uid = current?.metadata?.uid;
  if (!uid || !current?.spec?.volumeClaimTemplates?.length) return;
  await kube.remove(ref, { propagationPolicy: 'Orphan', uid });
  // the garbage collector releases the pods (orphan finalizer) before the object goes
  const deadline = Date.now() + STATEFULSET_REPLACE_TIMEOUT_MS;
  while ((await kube.read<V1StatefulSet>(ref))?.metadata?.uid === uid) {
    if (Date.now() >= deadline) throw new Error(`StatefulSet ${ref.namespace}/${ref.name} is still being deleted with its pods orphaned; the next run goes on`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const claims = await kube.list<V1PersistentVolumeClaim>('v1', 'PersistentVolumeClaim', ref.namespace, registryLabelSelector(name));
  const unused = claims.map((c) => c.metadata?.name ?? '').filter((claim) => claim && claim !== dataClaimName(name));
  const message = `replicas now share PersistentVolumeClaim ${dataClaimName(name)}; the StatefulSet was recreated (pods kept, then rolled)${unused.length ? `; no longer used, delete once checked: ${unused.join(', ')}` : ''}`;
  await recordRegistryEvent(kube, registry, 'Normal', VOLUME_SHARED, message, now);
}

const STATEFULSET_REPLACE_TIMEOUT_MS = 60_000;

