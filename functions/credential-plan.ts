// The decisions of a registry's reconcile about push/pull credentials, over plain data: which CRs
// get a new account now, which accounts go, what each CR's Secret, status and Event become once the
// registry pods have (or have not) confirmed the auth config, and what the revocation reports.
// The reconcile (cronjobs/reconcile-registry.ts) gathers the input and carries the plan out.
import type { V1Secret } from '@kubernetes/client-node';
import { accountsToDelete, registryOfCr, type AccountDeletion } from './accounts.ts';
import { accountExpiry } from './docker-auth-config.ts';
import { awaitsConfirmation, credentialCheckProblem, CREDENTIALS_PENDING, type CredentialCheckOutcome } from './credential-check.ts';
import { imageSecretStatus, issuanceInProgress, nextRotation, readImageSecret, rotationDecision, ROTATED_EVENT, REVOKED_EVENT } from './image-secrets.ts';
import { imageSecretName } from './names.ts';
import type { RegistryKey } from './reconcile-job.ts';
import type { ImageRegistryAccount, ImageSecret, ImageSecretStatus, OperatorConfig } from './types.ts';

export interface CredentialPlanInput {
  registry: RegistryKey;
  hostname: string;
  /** the CA that verifies the registry (clients get it as ca.crt) */
  caPem: string;
  /** the registry namespace's accounts, listed BEFORE the CRs (see accountsToDelete) */
  accounts: readonly ImageRegistryAccount[];
  /** every push/pull CR of the cluster (a missing owner means a deleted CR) */
  imageSecrets: readonly ImageSecret[];
  /** the push/pull Secrets of this registry, by secretKey() */
  secrets: ReadonlyMap<string, V1Secret>;
  config: OperatorConfig;
  now: Date;
  /** replace credentials issued before this time (the rotation CronJob) */
  forcedBefore?: Date;
}

export interface PlannedRotation {
  cr: ImageSecret;
  rotation: number;
  /** why (rotationDecision's message) */
  reason: string;
}

export interface CredentialPlan {
  /** the live CRs of this registry this run looks after (those another Job is issuing for are left to it) */
  crs: ImageSecret[];
  /** CRs another Job is issuing for right now */
  leftToOtherJob: ImageSecret[];
  rotations: PlannedRotation[];
  /** accounts the auth config leaves out and the revoke step deletes */
  deletions: AccountDeletion[];
  /** CRs whose Secret was handed out before a pod could confirm it */
  awaiting: ImageSecret[];
}

export function planCredentials(input: CredentialPlanInput): CredentialPlan {
  const { registry, config, now } = input;
  const live = crsOfRegistry(input.imageSecrets, registry, config);
  // CRs another Job is issuing for are left to it entirely: no account, no status, no Event
  const waitSeconds = config.rolloutTimeoutSeconds + config.credentialsTimeoutSeconds;
  const secretOf = (cr: ImageSecret) => input.secrets.get(secretKey(cr));
  const leftToOtherJob = live.filter((cr) => issuanceInProgress({ cr, secret: secretOf(cr), accounts: input.accounts, now, waitSeconds }));
  const crs = live.filter((cr) => !leftToOtherJob.includes(cr));
  const byName = new Map(input.accounts.map((a) => [a.metadata.name, a]));
  const rotations = crs.flatMap((cr): PlannedRotation[] => {
    const secret = secretOf(cr);
    const username = secret ? readImageSecret(cr.kind, secret).username : undefined;
    const decision = rotationDecision({
      cr, secret, currentAccount: username ? byName.get(username) : undefined,
      registryHostname: input.hostname, caPem: input.caPem, now, intervalSeconds: config.rotationIntervalSeconds,
      ...(input.forcedBefore ? { forcedBefore: input.forcedBefore } : {}),
    });
    return decision.rotate ? [{ cr, rotation: nextRotation(cr, input.accounts, secret), reason: decision.message }] : [];
  });
  const deletions = accountsToDelete({ accounts: input.accounts, imageSecrets: input.imageSecrets, config, now, registry });
  return { crs, leftToOtherJob, rotations, deletions, awaiting: crs.filter(awaitsConfirmation) };
}

/** Whether the run has anything the registry pods must confirm: new accounts, deletions, or earlier hand-outs. */
export function needsConfirmation(plan: CredentialPlan, issuedCount: number): boolean {
  return issuedCount > 0 || plan.deletions.length > 0 || plan.awaiting.length > 0;
}

/** An account this run created, with the password only this run knows. */
export interface IssuedCredential {
  cr: ImageSecret;
  account: ImageRegistryAccount;
  password: string;
  rotation: number;
  reason: string;
}

export interface HandOutInput {
  plan: CredentialPlan;
  issued: readonly IssuedCredential[];
  /** the confirmation of this run's auth config write; undefined when there was nothing to confirm */
  check: CredentialCheckOutcome | undefined;
  registry: RegistryKey;
  hostname: string;
  now: Date;
}

export interface CrEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface HandOut {
  cr: ImageSecret;
  /** the credentials to write into the CR's Secret now */
  credential?: IssuedCredential;
  status: ImageSecretStatus;
  event?: CrEvent;
}

export interface HandOutDecisions {
  handOuts: HandOut[];
  /** this run's accounts nobody received (not confirmed in time): the revoke step deletes them */
  abandoned: IssuedCredential[];
}

/**
 * Confirmed (or no ready pod to ask) → every new credential is handed out. Not confirmed in time →
 * nothing is: a new CR stays Ready=False, a rotated one keeps its previous Secret (its account is
 * still valid) and stays Ready, and this run's accounts are abandoned.
 */
export function handOutDecisions(input: HandOutInput): HandOutDecisions {
  const { plan, check, now, registry, hostname } = input;
  const handOut = check?.outcome !== 'timeout';
  const problem = check && credentialCheckProblem(check, `${registry.namespace}/${registry.name}`);
  const issuedByCr = new Map(input.issued.map((i) => [crKey(i.cr), i]));
  const handOuts = plan.crs.map((cr): HandOut => {
    const attempted = issuedByCr.get(crKey(cr));
    const credential = handOut ? attempted : undefined;
    const checked = attempted !== undefined || awaitsConfirmation(cr);
    const hasConfirmed = cr.status?.rotation !== undefined && !awaitsConfirmation(cr);
    const keepsPrevious = !handOut && attempted !== undefined && hasConfirmed;
    const notReady = checked && problem && !keepsPrevious ? { notReady: problem } : {};
    const issued = credential ? { issued: { rotation: credential.rotation, rotationDate: now, ...expiryOf(credential.account) } } : {};
    const status = imageSecretStatus({ cr, now, registry, hostname, ...notReady, ...issued });
    const event: CrEvent | undefined = credential
      ? { type: 'Normal', reason: ROTATED_EVENT, message: `rotation ${credential.rotation}: new account ${credential.account.metadata.name} (${credential.reason})` }
      : attempted
        ? { type: 'Warning', reason: CREDENTIALS_PENDING, message: `new credentials not handed out: ${problem?.message}` }
        : undefined;
    return { cr, ...(credential ? { credential } : {}), status, ...(event ? { event } : {}) };
  });
  return { handOuts, abandoned: handOut ? [] : [...input.issued] };
}

/**
 * The ImageRegistry Event of one revoked account, once the revoke step's write was confirmed: the
 * pods named are those that now refuse it; without a ready pod no pod accepts it; not confirmed in
 * time → a Warning naming the pods that may still accept it.
 */
export function revocationEvent(deletion: AccountDeletion, check: CredentialCheckOutcome): CrEvent {
  const name = deletion.account.metadata.name ?? '';
  const what = `deleted account ${name}: ${deletion.message}`;
  if (check.outcome === 'confirmed') return { type: 'Normal', reason: REVOKED_EVENT, message: `${what}; refused by every ready registry pod (${check.pods.join(', ')})` };
  if (check.outcome === 'no-ready-pod') return { type: 'Normal', reason: REVOKED_EVENT, message: `${what}; no registry pod is ready, and pods that start refuse it` };
  return {
    type: 'Warning',
    reason: REVOCATION_PENDING,
    message: `${what}; registry pod(s) ${check.refusing.join(', ')} had not loaded the new auth config after ${check.waitedSeconds} s and may still accept it; the next reconcile checks again`,
  };
}

export const REVOCATION_PENDING = 'RevocationPending';

/** `<namespace>/<name>` of the CR's Secret: the key of CredentialPlanInput.secrets. */
export function secretKey(cr: ImageSecret): string {
  return `${cr.metadata.namespace}/${imageSecretName(cr.kind, cr.metadata.name ?? '')}`;
}

function crKey(cr: ImageSecret): string {
  return `${cr.kind}/${cr.metadata.namespace}/${cr.metadata.name}`;
}

/** The live (not deleting) push/pull CRs that use this registry. */
export function crsOfRegistry(imageSecrets: readonly ImageSecret[], key: RegistryKey, config: OperatorConfig): ImageSecret[] {
  return imageSecrets.filter((cr) => {
    const ref = registryOfCr(cr, config);
    return ref.namespace === key.namespace && ref.name === key.name && !cr.metadata.deletionTimestamp;
  });
}

function expiryOf(account: ImageRegistryAccount): { expiryDate?: Date } {
  const expiry = accountExpiry(account);
  return expiry ? { expiryDate: expiry } : {};
}
