// Reconciles one ImageRegistry, in this order:
//
//   1. gather        read what the run needs, once (gather.ts; a rotation gathers once for all registries)
//   2. certificates  the operator CA, the TLS and token-signing key pairs, issued or renewed
//   3. plan          pure: which CRs get a new account, which accounts go (functions/credential-plan.ts)
//   4. issue         create the new accounts; their passwords stay in this process until step 9
//   5. auth config   write it — new accounts in, deleted ones out, a confirmation login — and touch the pods
//   6. workload      registry config, nginx config, Service, data claim, StatefulSet
//   7. pods          wait for a ready replica (or for the roll-out of a staged token key, then switch to it)
//   8. confirm       every ready pod accepts this run's latest confirmation login
//   9. hand out      Secrets, statuses and Events, of what step 8 confirmed (or what no pod can refuse)
//  10. revoke        delete the accounts the config left out and those nobody received; confirm that
//                    every ready pod refuses them; Revoked Events
//  11. status        the ImageRegistry's Ready condition and Events
//
// The rule that orders them: whatever step a run dies after, no Secret names credentials that the
// auth config lacks or a ready registry pod refuses, and no CR is Ready with such credentials.
// Secrets are written only after the config holding their accounts is confirmed (4 → 5 → 8 → 9);
// accounts are deleted only after the config left them out (5 → 10); a run that dies leaves accounts
// no Secret names, which the next runs leave to their TTL or revoke, and converges when run again.
import type { V1Secret } from '@kubernetes/client-node';
import { certificateMode, type KeyPair } from '../functions/certificate-sources.ts';
import { getCondition, type ConditionInput } from '../functions/conditions.ts';
import { readyRegistryPods, type CredentialCheckOutcome } from '../functions/credential-check.ts';
import { handOutDecisions, needsConfirmation, planCredentials, revocationEvent, type CredentialPlan, type IssuedCredential } from '../functions/credential-plan.ts';
import { assertAclValidForDockerAuth, defaultAcl } from '../functions/docker-auth-config.ts';
import { gcCronJobName } from '../functions/garbage-collection.ts';
import { authConfigSecretName, registryHostname, registryTlsSecretName } from '../functions/names.ts';
import { UPSTREAM_AVAILABLE, upstreamCondition } from '../functions/pull-through-cache.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { httpSecretOf } from '../functions/registry-config.ts';
import { storageKind } from '../functions/registry-storage.ts';
import { desiredConfigSecrets, REGISTRY_UID } from '../functions/registry-objects.ts';
import { volumeWritabilityProblem, type PodWithInitStatus } from '../functions/volume-check.ts';
import { hasReadyReplica, readinessChanged, registryReadiness, registryStatus, statefulSetRolledOut, type RegistryProblem, type StatefulSetState } from '../functions/registry-status.ts';
import { awaitsRollout, trustedTokenKeysDocument, type TokenKeyDecision } from '../functions/token-keys.ts';
import type { ImageRegistry, OperatorConfig } from '../functions/types.ts';
import { writeAuthConfig, type AuthConfigInput, type AuthConfigWritten } from './auth-config.ts';
import { ensureOperatorCa, resolveKeyPair, type ResolvedKeyPair } from './certificates.ts';
import { confirmWrite, registryPods } from './credential-check.ts';
import { deleteAccounts, handOut, issueAccounts, markImageSecretsNotReady } from './credentials.ts';
import { recordRegistryEvent } from './events.ts';
import { gather, registryInputs, type Gathered, type RegistryInputs } from './gather.ts';
import { randomToken } from './keys.ts';
import type { Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';
import { applyWorkload, removeGcCronJob, waitForRollout } from './registry-workload.ts';
import { storageHealth } from './storage-health.ts';
import { reportTokenKeys } from './token-keys.ts';
import { probeUpstream } from './upstream-health.ts';

export interface ReconcileOptions {
  kube: Kube;
  config: OperatorConfig;
  now: () => Date;
  /** how long to wait for a ready replica before reporting RolloutPending (the resync finishes it) */
  rolloutTimeoutMs: number;
  /** how long to wait for every ready registry pod to load a new auth config */
  credentialsTimeoutMs: number;
  /** replace push/pull credentials issued before this time (the rotation CronJob) */
  forcedBefore?: Date;
}

export type ReconcileResult = 'missing' | 'ready' | 'not-ready';

/** `gathered`: what a Job reconciling several registries read once for all of them. */
export async function reconcileRegistry(key: RegistryKey, options: ReconcileOptions, gathered?: Gathered): Promise<ReconcileResult> {
  const { kube, config } = options;
  // 1. gather
  const inputs = registryInputs(gathered ?? (await gather(kube, [key])), key);
  const registry = inputs.registry;
  if (!registry || registry.metadata.deletionTimestamp) {
    await markImageSecretsNotReady(kube, key, 'missing', { imageSecrets: inputs.imageSecrets, config, now: options.now() });
    // the one object of a registry outside its namespace (no owner reference can reach it)
    await removeGcCronJob(kube, key, config);
    return 'missing';
  }
  const now = options.now();
  const hostname = registryHostname(key.name, key.namespace, config.dnsZone);
  // 2. certificates
  const certificates = await keyPairs(registry, hostname, options, now);
  const problem: RegistryProblem | undefined = certificates.tls.problem ?? certificates.auth.problem;
  let statefulSet: StatefulSetState | undefined;
  let tokenKeys: TokenKeyDecision[] = [];
  let storageProblem: RegistryProblem | undefined;
  let upstream: ConditionInput | undefined;
  if (problem || !certificates.tls.pair || !certificates.auth.pair) {
    await markImageSecretsNotReady(kube, key, { hostname, message: problem?.message ?? 'no key pair' }, { imageSecrets: inputs.imageSecrets, config, now });
  } else {
    ({ statefulSet, tokenKeys, storageProblem, upstream } = await reconcileCredentialsAndWorkload(key, registry, { hostname, tls: certificates.tls.pair, tokenSource: certificates.auth.pair, inputs }, options));
  }
  // 11. status
  const readiness = registryReadiness(registry, problem ?? storageProblem, statefulSet);
  const gcCronJob = `${config.namespace}/${gcCronJobName(key)}`;
  await kube.applyStatus({ ...registry, status: registryStatus(registry, { hostname, tlsSecretName: registryTlsSecretName(registry), readiness, gcCronJob, ...(upstream ? { upstream } : {}) }, options.now()) }, 'imageregistries');
  await reportChanges(kube, registry, { ...certificates, readiness, ...(upstream ? { upstream } : {}) }, now);
  for (const decision of tokenKeys) await reportTokenKeys(kube, registry, decision, options.now());
  log('info', 'registry reconciled', { registry: `${key.namespace}/${key.name}`, ready: readiness.status, reason: readiness.reason });
  return readiness.status === 'True' ? 'ready' : 'not-ready';
}

interface RegistryMaterial {
  hostname: string;
  tls: KeyPair;
  tokenSource: KeyPair;
  inputs: RegistryInputs;
}

/** Steps 3–10, for a registry whose certificates are usable. */
async function reconcileCredentialsAndWorkload(key: RegistryKey, registry: ImageRegistry, material: RegistryMaterial, options: ReconcileOptions) {
  const { kube, config } = options;
  const { hostname, inputs } = material;
  // clients verify the registry with ca.crt: the issuing CA, or the certificate itself when it has none
  const registryCa = { hostname, caPem: material.tls.caPem || material.tls.certPem };
  await refuseInvalidAcl(kube, registry);
  // 3. plan
  const plan = planCredentials({
    registry: key, ...registryCa, accounts: inputs.accounts, imageSecrets: inputs.imageSecrets, secrets: inputs.pushPullSecrets,
    config, now: options.now(), ...(options.forcedBefore ? { forcedBefore: options.forcedBefore } : {}),
  });
  if (plan.leftToOtherJob.length) log('info', 'credentials being issued by another Job; left to it', { registry: `${key.namespace}/${key.name}`, crs: plan.leftToOtherJob.length });
  // 4. issue
  const issued = await issueAccounts(kube, key, plan.rotations, config);
  // 5. auth config
  const authConfig: AuthConfigInput = {
    registry, hostname, config, now: options.now(), tokenSource: material.tokenSource,
    httpSecret: httpSecretOf(inputs.registryConfigSecret?.data?.['config.yml']) ?? randomToken(),
    excluded: new Set(plan.deletions.map((d) => d.account.metadata.name ?? '')),
  };
  let write: AuthConfigWritten;
  try {
    write = await writeAuthConfig(kube, { ...authConfig, gathered: { secret: inputs.authConfigSecret, accounts: [...inputs.accounts, ...issued.map((i) => i.account)] } });
  } catch (error) {
    // nobody has the passwords of this run's accounts: delete them
    await deleteAccounts(kube, key.namespace, issued.map((i) => i.account)).catch((cleanup: unknown) => log('warn', 'cannot delete the unused accounts; their TTL ends them', { error: errorMessage(cleanup) }));
    throw error;
  }
  const tokenKeys = [write.tokenKeys];
  // 6. workload
  const [, registrySecret] = desiredConfigSecrets({ ...authConfig, accounts: [], tokenKeys: write.tokenKeys.state });
  const workload = await applyWorkload(kube, { registry, hostname, config, registrySecret, trustedTokenKeys: trustedTokenKeysDocument(write.tokenKeys.state.trusted), now: options.now() });
  const { templateAnnotations } = workload;
  // 7. pods: a staged token key waits for every pod to roll (same time-out), so the switch can follow now
  const awaitingKeySwitch = awaitsRollout(write.tokenKeys);
  // pods that cannot start (a missing credentials Secret) are not waited for
  const statefulSet = await waitForRollout(kube, registry, workload.storageProblem ? 0 : options.rolloutTimeoutMs, (current) =>
    awaitingKeySwitch ? statefulSetRolledOut(current, templateAnnotations) : hasReadyReplica(registry, current));
  // a bucket: what the registries say of it (a pod can look ready before its storage check has failed);
  // a volume no replica came up on: whether the registry's user can write it
  const storageProblem = workload.storageProblem ?? (storageKind(registry) === 's3'
    ? await storageHealth(kube, key, registryCa, workload.redact, options.now)
    : hasReadyReplica(registry, statefulSet) ? undefined : volumeWritabilityProblem((await registryPods(kube, key)) as unknown as PodWithInitStatus[], REGISTRY_UID));
  if (awaitingKeySwitch && statefulSetRolledOut(statefulSet, templateAnnotations)) {
    const switched = await switchTokenKey(kube, { ...authConfig, now: options.now(), trustedByAllPods: write.tokenKeys.state.trusted.map((k) => k.kid) });
    if (switched?.changed) write = switched;
    if (switched && switched.tokenKeys.phase !== tokenKeys[0]?.phase) tokenKeys.push(switched.tokenKeys);
  }
  // 8. confirm
  let check: CredentialCheckOutcome | undefined;
  if (needsConfirmation(plan, issued.length)) {
    const confirmed = await confirm(kube, key, registryCa, write, { ...authConfig, now: options.now() }, options);
    check = confirmed.check;
    write = confirmed.write ?? write;
  }
  // 9. hand out
  const decisions = handOutDecisions({ plan, issued, check, registry: key, hostname, now: options.now() });
  await handOut(kube, key, registryCa, decisions.handOuts, options.now());
  // 10. revoke
  await revoke(kube, key, { plan, abandoned: decisions.abandoned, check, write, registryCa, authConfig }, options);
  if (issued.length || plan.deletions.length) {
    log('info', 'image secrets reconciled', { registry: `${key.namespace}/${key.name}`, crs: plan.crs.length, rotated: issued.length - decisions.abandoned.length, deleted: plan.deletions.length, check: check?.outcome ?? 'none' });
  }
  // a pull-through cache: whether its upstream answers (the cache serves what it holds either way)
  const proxy = registry.spec?.proxy;
  const upstream = proxy ? upstreamCondition(proxy, await probeUpstream(proxy.remoteURL, workload.upstreamCaPem)) : undefined;
  return { statefulSet, tokenKeys, storageProblem, upstream };
}

/**
 * Step 8: every ready pod accepts the login of this run's latest write. A run with something to
 * confirm but no write of its own (the config already held everything) writes once to get a login
 * — only when a ready pod can be asked, so a run with nothing new writes nothing.
 */
async function confirm(
  kube: Kube,
  key: RegistryKey,
  registryCa: { hostname: string; caPem: string },
  write: AuthConfigWritten | undefined,
  authConfig: AuthConfigInput,
  options: ReconcileOptions,
): Promise<{ check: CredentialCheckOutcome; write: AuthConfigWritten | undefined }> {
  const ready = readyRegistryPods(await registryPods(kube, key));
  if (ready.length === 0) return { check: { outcome: 'no-ready-pod' }, write };
  const confirmable = write?.login ? write : await writeAuthConfig(kube, { ...authConfig, force: true });
  if (!confirmable.login) throw new Error('a forced auth config write returned no confirmation login');
  const check = await confirmWrite(key, ready, { ...registryCa, login: confirmable.login, timeoutMs: options.credentialsTimeoutMs });
  return { check, write: confirmable };
}

interface RevokeInput {
  plan: CredentialPlan;
  abandoned: readonly IssuedCredential[];
  check: CredentialCheckOutcome | undefined;
  write: AuthConfigWritten;
  registryCa: { hostname: string; caPem: string };
  authConfig: AuthConfigInput;
}

/**
 * Step 10. The config this run wrote left the accounts out; once they are deleted no later write can
 * list them. If nobody wrote the config after this run, step 8's confirmation already shows every
 * ready pod refusing them; if somebody did (their list may predate the deletion), write once more
 * and confirm that write.
 */
async function revoke(kube: Kube, key: RegistryKey, input: RevokeInput, options: ReconcileOptions): Promise<void> {
  const { plan } = input;
  await deleteAccounts(kube, key.namespace, [...plan.deletions.map((d) => d.account), ...input.abandoned.map((i) => i.account)]);
  if (input.abandoned.length) log('warn', 'accounts of this run deleted unused: the registry pods did not confirm them in time', { registry: `${key.namespace}/${key.name}`, accounts: input.abandoned.length });
  if (plan.deletions.length === 0) return;
  let check = input.check ?? { outcome: 'no-ready-pod' as const };
  const current = await kube.read<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: key.namespace, name: authConfigSecretName(key.name) });
  if (check.outcome !== 'no-ready-pod' && current?.metadata?.resourceVersion !== input.write.resourceVersion) {
    ({ check } = await confirm(kube, key, input.registryCa, undefined, { ...input.authConfig, now: options.now() }, options));
  }
  const now = options.now();
  for (const deletion of plan.deletions) {
    if (deletion.reason !== 'Revoked') continue;
    const event = revocationEvent(deletion, check);
    await recordRegistryEvent(kube, { metadata: { name: key.name, namespace: key.namespace } }, event.type, event.reason, event.message, now);
  }
}

/** Lets docker_auth sign with the staged key, now that every pod trusts it; a failure leaves it to the next run. */
async function switchTokenKey(kube: Kube, input: AuthConfigInput): Promise<AuthConfigWritten | undefined> {
  try {
    return await writeAuthConfig(kube, input);
  } catch (error) {
    log('warn', 'cannot switch the token-signing key; the next run does', { registry: `${input.registry.metadata.namespace}/${input.registry.metadata.name}`, error: errorMessage(error) });
    return undefined;
  }
}

async function keyPairs(registry: ImageRegistry, hostname: string, options: ReconcileOptions, now: Date): Promise<{ tls: ResolvedKeyPair; auth: ResolvedKeyPair }> {
  const needsCa = certificateMode(registry.spec?.tls) === 'self-signed' || certificateMode(registry.spec?.auth?.ca) === 'self-signed';
  const ca = needsCa ? await ensureOperatorCa(options.kube, options.config, now) : { certPem: '', keyPem: '', caPem: '' };
  const tls = await resolveKeyPair(options.kube, registry, 'tls', ca, hostname, now);
  const auth = await resolveKeyPair(options.kube, registry, 'auth', ca, hostname, now);
  return { tls, auth };
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

async function reportChanges(
  kube: Kube,
  registry: ImageRegistry,
  changes: { tls: ResolvedKeyPair; auth: ResolvedKeyPair; readiness: ReturnType<typeof registryReadiness>; upstream?: ConditionInput },
  now: Date,
): Promise<void> {
  for (const [what, resolved] of [['TLS', changes.tls], ['token-signing', changes.auth]] as const) {
    if (resolved.issued) await recordRegistryEvent(kube, registry, 'Normal', 'CertificateIssued', `issued ${what} certificate: ${resolved.issued.message}`, now);
  }
  if (readinessChanged(registry, changes.readiness)) {
    const type = changes.readiness.status === 'True' ? 'Normal' : 'Warning';
    await recordRegistryEvent(kube, registry, type, changes.readiness.reason, changes.readiness.message, now);
  }
  const upstream = changes.upstream;
  if (upstream && getCondition(registry.status?.conditions, UPSTREAM_AVAILABLE)?.status !== upstream.status) {
    await recordRegistryEvent(kube, registry, upstream.status === 'True' ? 'Normal' : 'Warning', upstream.reason, upstream.message, now);
  }
}
