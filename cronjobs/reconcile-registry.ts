// Reconciles one ImageRegistry: read → compute with functions/ → apply → status.
// Order matters: certificates, then the docker_auth config (accounts), then the workload, so a
// half-done run never serves with credentials or certificates the auth config does not know.
import type { V1PersistentVolumeClaim, V1StatefulSet } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import type { KeyPair } from '../functions/certificate-sources.ts';
import type { ConditionInput } from '../functions/conditions.ts';
import { certificateMode } from '../functions/certificate-sources.ts';
import { assertAclValidForDockerAuth, defaultAcl } from '../functions/docker-auth-config.ts';
import { dataClaimName, registryConfigSecretName, registryHostname, registryLabelSelector, registryTlsSecretName, statefulSetName } from '../functions/names.ts';
import { nginxConfig } from '../functions/nginx-config.ts';
import {
  desiredConfigSecrets,
  desiredDataClaim,
  desiredNginxConfigMap,
  desiredService,
  desiredStatefulSet,
  rolloutAnnotations,
} from '../functions/registry-objects.ts';
import { readinessChanged, registryReadiness, registryStatus, statefulSetRolledOut, type RegistryProblem, type StatefulSetState } from '../functions/registry-status.ts';
import { awaitsRollout, trustedTokenKeysDocument, type TokenKeyDecision } from '../functions/token-keys.ts';
import { GROUP_VERSION, type ImageRegistry, type OperatorConfig } from '../functions/types.ts';
import { markImageSecretsNotReady, prepareImageSecrets, type ConfirmCredential } from './reconcile-image-secrets.ts';
import { confirmCredentials } from './credential-check.ts';
import { writeAuthConfig, type ConfigSecretsBuilder } from './auth-config.ts';
import { ensureOperatorCa, resolveKeyPair, type ResolvedKeyPair } from './certificates.ts';
import { recordEvent } from './events.ts';
import { randomToken } from './keys.ts';
import type { Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';
import { reportTokenKeys, tokenKeyDecisions } from './token-keys.ts';

export interface RegistryKey {
  namespace: string;
  name: string;
}

export interface ReconcileOptions {
  kube: Kube;
  config: OperatorConfig;
  now: () => Date;
  /** how long to wait for a ready replica before reporting RolloutPending (the resync finishes it) */
  rolloutTimeoutMs: number;
  /** how long to wait for every ready registry pod to accept new credentials before handing them out */
  credentialsTimeoutMs: number;
  /** replace push/pull credentials issued before this time (the rotation CronJob) */
  forcedBefore?: Date;
}

export type ReconcileResult = 'missing' | 'ready' | 'not-ready';

export async function reconcileRegistry(key: RegistryKey, options: ReconcileOptions): Promise<ReconcileResult> {
  const { kube, config } = options;
  const registry = await kube.read<ImageRegistry>({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', ...key });
  if (!registry || registry.metadata.deletionTimestamp) return 'missing';
  const now = options.now();
  const hostname = registryHostname(key.name, key.namespace, config.dnsZone);
  const { tls, auth } = await keyPairs(registry, hostname, options, now);
  const problem: RegistryProblem | undefined = tls.problem ?? auth.problem;
  const imageSecrets = { kube, config, now: options.now, ...forced(options) };
  let applied: AppliedRegistry | undefined;
  if (!problem && tls.pair && auth.pair) {
    applied = await applyRegistryObjects(registry, hostname, tls.pair, auth.pair, options);
  } else if (problem) {
    await markImageSecretsNotReady(key, { hostname, message: problem.message }, imageSecrets);
  }
  // A staged token key waits for every pod to roll (same time-out), so the switch can follow now.
  const awaitingKeySwitch = applied !== undefined && awaitsRollout(applied.tokenKeys);
  const done = awaitingKeySwitch && applied ? applied.rolledOut : (current: StatefulSetState | undefined) => hasReadyReplica(registry, current);
  const statefulSet = problem ? undefined : await waitForRollout(kube, registry, options.rolloutTimeoutMs, done);
  const switched = awaitingKeySwitch && applied?.rolledOut(statefulSet) ? await applied.switchTokenKey() : undefined;
  // a new registry's pods first: new credentials are handed out once the pods ready now accept them
  await applied?.finishImageSecrets();
  const readiness = registryReadiness(registry, problem, statefulSet);
  await kube.applyStatus({ ...registry, status: registryStatus(registry, { hostname, tlsSecretName: registryTlsSecretName(registry), readiness }, options.now()) }, 'imageregistries');
  await reportChanges(kube, registry, { tls, auth, readiness }, now);
  if (applied) await reportTokenKeys(kube, registry, applied.tokenKeys, now);
  if (switched && switched.phase !== applied?.tokenKeys.phase) await reportTokenKeys(kube, registry, switched, options.now());
  log('info', 'registry reconciled', { registry: `${key.namespace}/${key.name}`, ready: readiness.status, reason: readiness.reason });
  return readiness.status === 'True' ? 'ready' : 'not-ready';
}

function forced(options: ReconcileOptions): { forcedBefore?: Date } {
  return options.forcedBefore ? { forcedBefore: options.forcedBefore } : {};
}

async function keyPairs(registry: ImageRegistry, hostname: string, options: ReconcileOptions, now: Date): Promise<{ tls: ResolvedKeyPair; auth: ResolvedKeyPair }> {
  const needsCa = certificateMode(registry.spec?.tls) === 'self-signed' || certificateMode(registry.spec?.auth?.ca) === 'self-signed';
  const ca = needsCa ? await ensureOperatorCa(options.kube, options.config, now) : { certPem: '', keyPem: '', caPem: '' };
  const tls = await resolveKeyPair(options.kube, registry, 'tls', ca, hostname, now);
  const auth = await resolveKeyPair(options.kube, registry, 'auth', ca, hostname, now);
  return { tls, auth };
}

interface AppliedRegistry {
  /** the token key state this run wrote (or found) */
  tokenKeys: TokenKeyDecision;
  /** true once every pod runs, ready, from the template this run applied */
  rolledOut(statefulSet: StatefulSetState | undefined): boolean;
  /** lets docker_auth sign with the staged key, now that every pod trusts it */
  switchTokenKey(): Promise<TokenKeyDecision>;
  /** confirms this run's credentials with the ready pods, then writes Secrets and statuses */
  finishImageSecrets(): Promise<void>;
}

/** Accounts, auth config and the workload; what must wait for the pods is returned (see reconcileRegistry). */
async function applyRegistryObjects(registry: ImageRegistry, hostname: string, tls: KeyPair, auth: KeyPair, options: ReconcileOptions): Promise<AppliedRegistry> {
  const { kube } = options;
  const key = { namespace: registry.metadata.namespace ?? '', name: registry.metadata.name ?? '' };
  await refuseInvalidAcl(kube, registry);
  const imageSecrets = { kube, config: options.config, now: options.now, ...forced(options) };
  // clients verify the registry with ca.crt: the issuing CA, or the certificate itself when it has none
  const caPem = tls.caPem || tls.certPem;
  const accounts = await prepareImageSecrets(key, { hostname, caPem }, imageSecrets);
  const httpSecret = (await existingHttpSecret(kube, registry)) ?? randomToken();
  const tokenKeys = tokenKeyDecisions(auth, options.now);
  const configSecrets = (trustedByAllPods?: readonly string[]): ConfigSecretsBuilder => (liveAccounts, current) =>
    desiredConfigSecrets({ registry, hostname, accounts: liveAccounts, now: options.now(), httpSecret, tokenKeys: tokenKeys.decide(current, trustedByAllPods).state });
  // the pods are annotated with the version of the auth config that holds this run's accounts
  let authConfigVersion = '';
  try {
    authConfigVersion = (await writeAuthConfig(kube, registry, configSecrets(), accounts.excludeAccounts)).resourceVersion;
  } catch (error) {
    await accounts.abandon().catch((cleanup: unknown) => log('warn', 'cannot delete the unused accounts; the next run does', { error: errorMessage(cleanup) }));
    throw error;
  }
  const written = tokenKeys.latest();
  const [, registrySecret] = desiredConfigSecrets({ registry, hostname, accounts: [], now: options.now(), httpSecret, tokenKeys: written.state });
  await kube.apply(registrySecret);
  await kube.apply(desiredNginxConfigMap(registry));
  await kube.apply(desiredService(registry, hostname));
  const registryConfigText = Buffer.from(registrySecret.data?.['config.yml'] ?? '', 'base64').toString('utf8');
  const trustedTokenKeys = trustedTokenKeysDocument(written.state.trusted);
  const templateAnnotations = rolloutAnnotations({ trustedTokenKeys, registryConfig: registryConfigText, nginxConfig: nginxConfig() });
  const statefulSet = desiredStatefulSet(registry, options.config, { tlsSecretName: registryTlsSecretName(registry), templateAnnotations });
  await applyDataClaim(kube, registry, options.now());
  await replaceStatefulSetWithClaimTemplates(kube, registry, options.now());
  await kube.apply(statefulSet);
  const confirm: ConfirmCredential = ({ username, password }) =>
    confirmCredentials(kube, key, { hostname, caPem, username, password, authConfigVersion, timeoutMs: options.credentialsTimeoutMs });
  return {
    tokenKeys: written,
    rolledOut: (current) => statefulSetRolledOut(current, templateAnnotations),
    switchTokenKey: async () => {
      // Every pod runs the template of `written`'s trust set; the decision re-checks that against the
      // Secret as it is now, so a trust set changed meanwhile by another Job does not switch.
      const trustedByAllPods = written.state.trusted.map((k) => k.kid);
      try {
        authConfigVersion = (await writeAuthConfig(kube, registry, configSecrets(trustedByAllPods), accounts.excludeAccounts)).resourceVersion;
        return tokenKeys.latest();
      } catch (error) {
        log('warn', 'cannot switch the token-signing key; the next run does', { registry: `${key.namespace}/${key.name}`, error: errorMessage(error) });
        return written;
      }
    },
    finishImageSecrets: () => accounts.afterAuthConfig(confirm),
  };
}

export const ACL_INVALID = 'AclInvalid';

/**
 * An ACL stored before a check existed (the webhook refuses new ones) must not reach docker_auth,
 * which would refuse its whole config, crash, or widen a rule. Checked before any account is
 * created, so a failing run leaves nothing behind; a Warning Event says what to fix.
 */
async function refuseInvalidAcl(kube: Kube, registry: ImageRegistry): Promise<void> {
  try {
    assertAclValidForDockerAuth(registry.spec?.auth?.acl ?? defaultAcl());
  } catch (error) {
    const message = `${errorMessage(error)}; fix spec.auth.acl (kubectl edit imageregistry ${registry.metadata.name}); the auth config stays as it was`;
    await recordRegistryEvent(kube, registry, 'Warning', ACL_INVALID, message, new Date());
    throw new Error(message);
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

/** The registry's http.secret must stay stable across runs (it signs upload state between replicas). */
async function existingHttpSecret(kube: Kube, registry: ImageRegistry): Promise<string | undefined> {
  const name = registryConfigSecretName(registry.metadata.name ?? '');
  const secret = await kube.read<{ data?: Record<string, string> } & { apiVersion: string; kind: string }>({ apiVersion: 'v1', kind: 'Secret', namespace: registry.metadata.namespace, name });
  const text = secret?.data?.['config.yml'];
  if (!text) return undefined;
  const parsed = load(Buffer.from(text, 'base64').toString('utf8')) as { http?: { secret?: unknown } } | undefined;
  return typeof parsed?.http?.secret === 'string' && parsed.http.secret ? parsed.http.secret : undefined;
}

/** What Ready needs: a ready replica, or none wanted. */
function hasReadyReplica(registry: ImageRegistry, statefulSet: StatefulSetState | undefined): boolean {
  return (registry.spec?.replicas ?? 1) === 0 || (statefulSet?.status?.readyReplicas ?? 0) >= 1;
}

async function waitForRollout(kube: Kube, registry: ImageRegistry, timeoutMs: number, done: (statefulSet: StatefulSetState | undefined) => boolean): Promise<StatefulSetState | undefined> {
  const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: registry.metadata.namespace, name: statefulSetName(registry.metadata.name ?? '') };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statefulSet = await kube.read<StatefulSetState & { apiVersion: string; kind: string }>(ref);
    if (done(statefulSet) || Date.now() >= deadline) return statefulSet;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

async function reportChanges(
  kube: Kube,
  registry: ImageRegistry,
  changes: { tls: ResolvedKeyPair; auth: ResolvedKeyPair; readiness: ConditionInput },
  now: Date,
): Promise<void> {
  for (const [what, resolved] of [['TLS', changes.tls], ['token-signing', changes.auth]] as const) {
    if (resolved.issued) await recordRegistryEvent(kube, registry, 'Normal', 'CertificateIssued', `issued ${what} certificate: ${resolved.issued.message}`, now);
  }
  if (readinessChanged(registry, changes.readiness)) {
    const type = changes.readiness.status === 'True' ? 'Normal' : 'Warning';
    await recordRegistryEvent(kube, registry, type, changes.readiness.reason, changes.readiness.message, now);
  }
}

/** An Event on the ImageRegistry: `kubectl describe imageregistry` shows it. */
function recordRegistryEvent(kube: Kube, registry: ImageRegistry, type: 'Normal' | 'Warning', reason: string, message: string, now: Date): Promise<void> {
  return recordEvent(kube, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: registry.metadata }, type, reason, message, now);
}
