// The Secrets of ImagePushSecret / ImagePullSecret (DESIGN.md §2), their status, and the rotation
// policy: when a CR needs a new account and new credentials.
//
// The Secret is written with `data` (base64), not `stringData`: stringData is write-only — the API
// server folds it into data and never stores it — so a server-side apply of stringData leaves the
// field manager owning fields that do not exist, cannot prune keys it no longer writes, and never
// compares equal to what is stored. Applying `data` makes a no-op reconcile a true no-op (the
// resourceVersion stays) and base64 of the same text is always the same bytes.
import type { V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import {
  accessModeOf,
  accountRotation,
  latestAccount,
  MANAGED_BY_LABEL,
  OWNER_KIND_LABEL,
  OWNER_NAME_LABEL,
  ownsAccount,
  rotationToleranceMs,
  labelValue,
  crIdentity as identity,
} from './accounts.ts';
import { notReady, ready, setCondition } from './conditions.ts';
import { accountExpiry } from './docker-auth-config.ts';
import { formatDuration, formatTimestamp } from './duration.ts';
import { accountName, imageSecretName, OPERATOR_NAME } from './names.ts';
import { REGISTRY_LABEL, registryLabelValue, type RegistryKey } from './reconcile-job.ts';
import { API_GROUP, GROUP_VERSION, type ImageRegistryAccount, type ImageSecret, type ImageSecretStatus } from './types.ts';

/** Annotations on the Secret: which account and rotation it holds, and when that rotation happened. */
export const ACCOUNT_ANNOTATION = `${API_GROUP}/account`;
export const ROTATION_ANNOTATION = `${API_GROUP}/rotation`;
export const ROTATION_DATE_ANNOTATION = `${API_GROUP}/rotation-date`;

export const PUSH_SECRET_TYPE = 'Opaque';
export const PULL_SECRET_TYPE = 'kubernetes.io/dockerconfigjson';

/** Ready=False reasons of push/pull CRs. */
export const REGISTRY_NOT_FOUND = 'RegistryNotFound';
export const REGISTRY_NOT_READY = 'RegistryNotReady';
/** Event reasons: new credentials issued, an account deleted because its CR is gone. */
export const ROTATED_EVENT = 'Rotated';
export const REVOKED_EVENT = 'Revoked';

export type RotationReason =
  | 'SecretMissing'
  | 'SecretIncomplete'
  | 'AccountMissing'
  | 'HostnameChanged'
  | 'CAChanged'
  | 'AccountExpiring'
  | 'RotationDue'
  | 'Forced';

export type RotationDecision = { rotate: true; reason: RotationReason; message: string } | { rotate: false };

/** The key holding the Docker config: `config.json` (push, Opaque) or `.dockerconfigjson` (pull). */
export function dockerConfigKey(kind: ImageSecret['kind']): 'config.json' | '.dockerconfigjson' {
  return kind === 'ImagePushSecret' ? 'config.json' : '.dockerconfigjson';
}

export function imageSecretType(kind: ImageSecret['kind']): string {
  return kind === 'ImagePushSecret' ? PUSH_SECRET_TYPE : PULL_SECRET_TYPE;
}

/** Every key of the Secret, as DESIGN.md lists them. */
export function imageSecretKeys(kind: ImageSecret['kind']): string[] {
  return [dockerConfigKey(kind), 'hostname', 'ca.crt', 'username', 'password'];
}

/** Docker config JSON whose `auths` holds exactly the registry hostname, nothing else. */
export function dockerConfigJson(hostname: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
  return JSON.stringify({ auths: { [hostname]: { username, password, auth } } });
}

export interface ImageSecretInput {
  hostname: string;
  caPem: string;
  /** the account name */
  username: string;
  password: string;
  rotation: number;
  rotationDate: Date;
  /** the registry the CR resolves to (labels the Secret) */
  registry: RegistryKey;
}

/** Controller reference to the push/pull CR: deleting the CR garbage-collects its Secret. */
export function imageSecretOwnerReference(cr: ImageSecret): V1OwnerReference {
  const { name, uid } = cr.metadata;
  if (!name || !uid) throw new Error(`${cr.kind} needs metadata.name and metadata.uid to own its Secret`);
  return { apiVersion: GROUP_VERSION, kind: cr.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/** `<cr>-image-push-secret` (Opaque) or `<cr>-image-pull-secret` (kubernetes.io/dockerconfigjson). */
export function desiredImageSecret(cr: ImageSecret, input: ImageSecretInput): V1Secret {
  const { name, namespace } = identity(cr);
  const files: Record<string, string> = {
    [dockerConfigKey(cr.kind)]: dockerConfigJson(input.hostname, input.username, input.password),
    hostname: input.hostname,
    'ca.crt': input.caPem,
    username: input.username,
    password: input.password,
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: imageSecretType(cr.kind),
    metadata: {
      name: imageSecretName(cr.kind, name),
      namespace,
      labels: {
        [MANAGED_BY_LABEL]: OPERATOR_NAME,
        [REGISTRY_LABEL]: registryLabelValue(input.registry),
        [OWNER_KIND_LABEL]: cr.kind,
        [OWNER_NAME_LABEL]: labelValue(name),
      },
      annotations: {
        [ACCOUNT_ANNOTATION]: input.username,
        [ROTATION_ANNOTATION]: String(input.rotation),
        [ROTATION_DATE_ANNOTATION]: formatTimestamp(input.rotationDate),
      },
      ownerReferences: [imageSecretOwnerReference(cr)],
    },
    data: Object.fromEntries(Object.entries(files).map(([key, text]) => [key, Buffer.from(text, 'utf8').toString('base64')])),
  };
}

export interface ImageSecretContent {
  username?: string;
  password?: string;
  hostname?: string;
  caPem?: string;
  dockerConfig?: string;
  rotation?: number;
  rotationDate?: Date;
}

/** Decodes what a stored Secret holds; missing keys stay undefined. */
export function readImageSecret(kind: ImageSecret['kind'], secret: V1Secret): ImageSecretContent {
  const text = (key: string): string | undefined => {
    const value = secret.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  const annotations = secret.metadata?.annotations ?? {};
  const rotation = annotations[ROTATION_ANNOTATION];
  const date = annotations[ROTATION_DATE_ANNOTATION];
  const content: ImageSecretContent = {
    username: text('username'),
    password: text('password'),
    hostname: text('hostname'),
    caPem: text('ca.crt'),
    dockerConfig: text(dockerConfigKey(kind)),
    rotation: rotation !== undefined && /^\d+$/.test(rotation) ? Number(rotation) : undefined,
    rotationDate: date !== undefined && !Number.isNaN(Date.parse(date)) ? new Date(date) : undefined,
  };
  return Object.fromEntries(Object.entries(content).filter(([, v]) => v !== undefined)) as ImageSecretContent;
}

/**
 * The next rotation number: past the CR's status, the Secret's annotation and every existing
 * account of the CR, so a new account name never collides with one that still exists.
 */
export function nextRotation(cr: ImageSecret, accounts: readonly ImageRegistryAccount[], secret?: V1Secret): number {
  const latest = latestAccount(accounts, cr);
  const fromSecret = secret ? readImageSecret(cr.kind, secret).rotation : undefined;
  return Math.max(cr.status?.rotation ?? 0, fromSecret ?? 0, (latest && accountRotation(latest)) ?? 0) + 1;
}

/** Slack on top of another Job's own waits before its unfinished issuance counts as abandoned. */
export const ISSUANCE_MARGIN_SECONDS = 30;

/**
 * Whether another Job is issuing this CR's credentials right now: the CR's newest account is not
 * the one its Secret names (or there is no Secret yet) and is younger than that Job's longest wait
 * — for a ready registry pod (OPERATOR_ROLLOUT_TIMEOUT) and for every pod to accept the credential
 * (OPERATOR_CREDENTIALS_TIMEOUT) — plus ISSUANCE_MARGIN_SECONDS. Two Jobs of neighbouring coalescing
 * windows (one `kubectl apply` of several CRs can straddle a window) would otherwise both issue:
 * two accounts, a skipped rotation number, and the later Job's view of the CR written over the
 * earlier one's status. A Job that died leaves its account behind; the first run after the wait
 * issues anew (the hourly resync at the latest).
 */
export function issuanceInProgress(input: { cr: ImageSecret; secret?: V1Secret; accounts: readonly ImageRegistryAccount[]; now: Date; waitSeconds: number }): boolean {
  const newest = latestAccount(input.accounts, input.cr);
  if (!newest || !ownsAccount(input.cr, newest)) return false;
  const handedOut = input.secret ? readImageSecret(input.cr.kind, input.secret).username : undefined;
  if (newest.metadata.name === handedOut) return false;
  const created = Date.parse(newest.metadata.creationTimestamp ?? '');
  return Number.isFinite(created) && input.now.getTime() - created < (input.waitSeconds + ISSUANCE_MARGIN_SECONDS) * 1000;
}

export interface RotationInput {
  cr: ImageSecret;
  /** the CR's Secret as stored; undefined when it does not exist */
  secret?: V1Secret;
  /** the account the Secret names (its `username`) in the registry's namespace; undefined when absent */
  currentAccount?: ImageRegistryAccount;
  /** the registry's hostname and CA now */
  registryHostname: string;
  caPem: string;
  now: Date;
  intervalSeconds: number;
  /**
   * A forced rotation (the rotation CronJob, `kubectl create job --from=cronjob/...`) asked at this
   * time: credentials issued before it are replaced. A retry of the same Job passes the same time,
   * so it does not rotate again what the first attempt already rotated.
   */
  forcedBefore?: Date;
}

/**
 * Whether the CR needs a new account and Secret now, and why. Unusable credentials come first
 * (missing Secret or account, stale hostname or CA), then the schedule: the last rotation is one
 * interval old, or the account expires within one interval (a ttl shorter than the default). Both
 * schedule checks allow the rotation a little early (ROTATION_TOLERANCE_FRACTION), so a CronJob
 * firing seconds before the mark does not skip a whole interval and leave the old account without
 * overlap. Nothing else rotates: a
 * reconcile with nothing new returns `{rotate: false}`.
 */
export function rotationDecision(input: RotationInput): RotationDecision {
  const { cr, secret, currentAccount, now, intervalSeconds } = input;
  const rotate = (reason: RotationReason, message: string): RotationDecision => ({ rotate: true, reason, message });
  if (!secret) return rotate('SecretMissing', `Secret ${imageSecretName(cr.kind, identity(cr).name)} does not exist`);
  const content = readImageSecret(cr.kind, secret);
  const missing = imageSecretKeys(cr.kind).filter((key) => secret.data?.[key] === undefined);
  if (missing.length > 0 || secret.type !== imageSecretType(cr.kind)) {
    const problem = missing.length > 0 ? `lacks ${missing.join(', ')}` : `has type ${secret.type ?? 'unset'}, not ${imageSecretType(cr.kind)}`;
    return rotate('SecretIncomplete', `Secret ${secret.metadata?.name} ${problem}`);
  }
  const username = content.username as string;
  if (!currentAccount || currentAccount.metadata.name !== username || currentAccount.metadata.deletionTimestamp || !ownsAccount(cr, currentAccount)) {
    return rotate('AccountMissing', `account ${username} does not exist (or is being deleted, or belongs to another owner)`);
  }
  if (content.hostname !== input.registryHostname) {
    return rotate('HostnameChanged', `registry hostname changed from ${content.hostname} to ${input.registryHostname}`);
  }
  if (normalizePem(content.caPem ?? '') !== normalizePem(input.caPem)) return rotate('CAChanged', 'registry CA certificate changed');
  const intervalMs = intervalSeconds * 1000;
  const early = rotationToleranceMs(intervalSeconds);
  const last = content.rotationDate ?? parseDate(cr.status?.rotationDate);
  if (!last || now.getTime() - last.getTime() >= intervalMs - early) {
    const since = last ? `last rotation at ${formatTimestamp(last)}` : 'no rotation date recorded';
    return rotate('RotationDue', `${since}; interval ${formatDuration(intervalMs)}`);
  }
  const expiry = accountExpiry(currentAccount);
  if (expiry && expiry.getTime() - now.getTime() <= intervalMs + early) {
    return rotate('AccountExpiring', `account ${username} expires at ${formatTimestamp(expiry)}, within the rotation interval`);
  }
  // timestamps have whole seconds: a rotation in the very second of the request is redone, not skipped
  if (input.forcedBefore && last.getTime() <= input.forcedBefore.getTime()) {
    return rotate('Forced', `rotation requested at ${formatTimestamp(input.forcedBefore)}`);
  }
  return { rotate: false };
}

export interface ImageSecretStatusInput {
  cr: ImageSecret;
  now: Date;
  /** the registry the CR resolves to */
  registry: RegistryKey;
  /** the registry's hostname; undefined when the ImageRegistry does not exist */
  hostname?: string;
  /** Ready=False with this reason (e.g. REGISTRY_NOT_READY) although the registry exists */
  notReady?: { reason: string; message: string };
  /** the credentials the Secret holds now; defaults to what the status already says */
  issued?: { rotation: number; rotationDate: Date; expiryDate?: Date };
}

/**
 * The CR's status. Deterministic for the same input and previous status (conditions keep their
 * lastTransitionTime, the Ready message names no time), so a no-op reconcile writes nothing new.
 */
export function imageSecretStatus({ cr, now, registry, hostname, notReady: problem, issued }: ImageSecretStatusInput): ImageSecretStatus {
  const { name } = identity(cr);
  const generation = cr.metadata.generation;
  const rotation = issued?.rotation ?? cr.status?.rotation;
  const rotationDate = issued ? formatTimestamp(issued.rotationDate) : cr.status?.rotationDate;
  const expiryDate = issued ? issued.expiryDate && formatTimestamp(issued.expiryDate) : cr.status?.expiryDate;
  const secretName = imageSecretName(cr.kind, name);
  const condition =
    hostname === undefined
      ? notReady(REGISTRY_NOT_FOUND, `ImageRegistry ${registry.namespace}/${registry.name} does not exist`)
      : problem
        ? notReady(problem.reason, problem.message)
        : rotation === undefined
          ? notReady('CredentialsPending', `no credentials issued for ${hostname} yet`)
          : ready(`Secret ${secretName} holds account ${accountName(accessModeOf(cr.kind), identity(cr).namespace, name, rotation)} for ${hostname}`);
  return {
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions: setCondition(cr.status?.conditions, condition, now, generation),
    ...(rotation === undefined ? {} : { rotation }),
    ...(rotationDate === undefined ? {} : { rotationDate }),
    ...(expiryDate === undefined ? {} : { expiryDate }),
    ...(hostname === undefined ? {} : { registry: { name: registry.name, namespace: registry.namespace, hostname } }),
  };
}

// PEM text may differ in line endings or trailing newlines without being another certificate.
function normalizePem(pem: string): string {
  return pem.replace(/\r\n/g, '\n').trim();
}

function parseDate(text: string | undefined): Date | undefined {
  return text !== undefined && !Number.isNaN(Date.parse(text)) ? new Date(text) : undefined;
}
