// The ImageRegistryAccounts the operator issues for push/pull CRs: one new, immutable account per
// rotation in the registry's namespace, and the rules for deleting them again (expiry, revocation).
//
// An account cannot carry an ownerReference to its CR (they usually live in different namespaces,
// and Kubernetes does not allow cross-namespace owners), so the owner is recorded twice: exactly in
// spec.labels (namespace, name, accessMode — what docker_auth and the ACL see) and, for label
// selectors, in metadata labels. Accounts without the operator's managed-by label are static user
// accounts: the operator reads them (docker-auth-config.ts skips expired ones) but never deletes them.
import { createHash } from 'node:crypto';
import { accountExpiry } from './docker-auth-config.ts';
import { resolveRegistryRef } from './defaults.ts';
import { formatDuration, formatTimestamp, parseDuration } from './duration.ts';
import { accountName, OPERATOR_NAME } from './names.ts';
import { REGISTRY_LABEL, registryLabelValue, type RegistryKey } from './reconcile-job.ts';
import { API_GROUP, GROUP_VERSION, type AccessMode, type ImageRegistryAccount, type ImageSecret, type OperatorConfig } from './types.ts';
import { isBcryptHash } from './validation/formats.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
/** Metadata labels naming the CR an account (or Secret) belongs to; values fit label syntax. */
export const OWNER_KIND_LABEL = `${API_GROUP}/owner-kind`;
export const OWNER_NAMESPACE_LABEL = `${API_GROUP}/owner-namespace`;
export const OWNER_NAME_LABEL = `${API_GROUP}/owner-name`;
/** A CR deleted and recreated under the same name is another owner: its predecessor's accounts are revoked. */
export const OWNER_UID_LABEL = `${API_GROUP}/owner-uid`;
export const ROTATION_LABEL = `${API_GROUP}/rotation`;

/** Rotations may happen this fraction of the interval early, so a CronJob firing seconds early still rotates. */
export const ROTATION_TOLERANCE_FRACTION = 1 / 24;

export type ImageSecretKind = ImageSecret['kind'];
export type DeletionReason = 'Expired' | 'Revoked';

export interface AccountDeletion {
  account: ImageRegistryAccount;
  reason: DeletionReason;
  /** names the cause, for the Event and the log line */
  message: string;
}

export function accessModeOf(kind: ImageSecretKind): AccessMode {
  return kind === 'ImagePushSecret' ? 'push' : 'pull';
}

export function kindOf(accessMode: AccessMode): ImageSecretKind {
  return accessMode === 'push' ? 'ImagePushSecret' : 'ImagePullSecret';
}

/** How early a rotation may happen, in ms (see ROTATION_TOLERANCE_FRACTION). */
export function rotationToleranceMs(intervalSeconds: number): number {
  return intervalSeconds * 1000 * ROTATION_TOLERANCE_FRACTION;
}

/**
 * A label value for arbitrary text: the text itself when it is a valid label value, else a
 * readable prefix plus a hash of the full text (CR names may be longer than 63 characters).
 */
export function labelValue(text: string): string {
  if (/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(text) && text.length <= 63) return text;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const prefix = text.replace(/[^-A-Za-z0-9_.]+/g, '-').slice(0, 63 - hash.length - 1).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return prefix ? `${prefix}-${hash}` : hash;
}

/** The metadata labels that name a CR as owner (also used on its Secret). */
export function ownerLabels(cr: ImageSecret): Record<string, string> {
  const { name, namespace } = crIdentity(cr);
  return {
    [OWNER_KIND_LABEL]: cr.kind,
    [OWNER_NAMESPACE_LABEL]: namespace,
    [OWNER_NAME_LABEL]: labelValue(name),
    ...(cr.metadata.uid ? { [OWNER_UID_LABEL]: cr.metadata.uid } : {}),
  };
}

/** Label selector for the accounts of one CR (any incarnation), for list calls. */
export function accountSelector(cr: ImageSecret): string {
  const { name, namespace } = crIdentity(cr);
  return [
    `${MANAGED_BY_LABEL}=${OPERATOR_NAME}`,
    `${OWNER_KIND_LABEL}=${cr.kind}`,
    `${OWNER_NAMESPACE_LABEL}=${namespace}`,
    `${OWNER_NAME_LABEL}=${labelValue(name)}`,
  ].join(',');
}

export interface DesiredAccountInput {
  cr: ImageSecret;
  /** the registry the CR resolves to; the account lives in its namespace */
  registry: RegistryKey;
  /** ≥ 1, one more than the previous rotation */
  rotation: number;
  /** bcrypt hash of the new password */
  passwordHash: string;
  /** the rotation interval; the default ttl is twice this, so the previous account outlives a rotation */
  intervalSeconds: number;
  /** overrides the default ttl; must exceed the interval (plus its tolerance) */
  ttl?: string;
}

/** The immutable account of one rotation: `push.<ns>.<cr>.<rotation>` in the registry's namespace. */
export function desiredAccount({ cr, registry, rotation, passwordHash, intervalSeconds, ttl }: DesiredAccountInput): ImageRegistryAccount {
  const { name, namespace } = crIdentity(cr);
  if (!Number.isInteger(rotation) || rotation < 1) throw new Error(`rotation must be an integer ≥ 1, got ${rotation}`);
  // a plain password must never reach an account: docker_auth would reject it and it would be readable
  if (!isBcryptHash(passwordHash)) throw new Error('passwordHash must be a bcrypt hash');
  const accessMode = accessModeOf(cr.kind);
  const ttlText = ttl ?? formatDuration(2 * intervalSeconds * 1000);
  // A ttl within one interval (plus tolerance) would make every run see an expiring account and rotate again.
  if (parseDuration(ttlText) <= intervalSeconds * 1000 + rotationToleranceMs(intervalSeconds)) {
    throw new Error(`account ttl ${ttlText} must be longer than the rotation interval ${formatDuration(intervalSeconds * 1000)}`);
  }
  return {
    apiVersion: GROUP_VERSION,
    kind: 'ImageRegistryAccount',
    metadata: {
      name: accountName(accessMode, namespace, name, rotation),
      namespace: registry.namespace,
      labels: {
        [MANAGED_BY_LABEL]: OPERATOR_NAME,
        [REGISTRY_LABEL]: registryLabelValue(registry),
        ...ownerLabels(cr),
        [ROTATION_LABEL]: String(rotation),
      },
    },
    spec: {
      password: passwordHash,
      labels: { namespace: [namespace], name: [name], accessMode: [accessMode] },
      ttl: ttlText,
    },
  };
}

/** True for accounts the operator issued; false for static user accounts. */
export function isManagedAccount(account: ImageRegistryAccount): boolean {
  const labels = account.metadata.labels ?? {};
  return labels[MANAGED_BY_LABEL] === OPERATOR_NAME && labels[OWNER_KIND_LABEL] !== undefined;
}

export interface AccountOwner {
  kind: ImageSecretKind;
  namespace: string;
  name: string;
  uid?: string;
}

/** The CR a managed account belongs to (exact names from spec.labels); undefined for static accounts. */
export function accountOwner(account: ImageRegistryAccount): AccountOwner | undefined {
  if (!isManagedAccount(account)) return undefined;
  const labels = account.spec.labels ?? {};
  const namespace = labels['namespace']?.[0];
  const name = labels['name']?.[0];
  const mode = labels['accessMode']?.[0];
  if (!namespace || !name || (mode !== 'push' && mode !== 'pull')) return undefined;
  const uid = account.metadata.labels?.[OWNER_UID_LABEL];
  return { kind: kindOf(mode), namespace, name, ...(uid ? { uid } : {}) };
}

/** The account's rotation number (label, else the name's last segment). */
export function accountRotation(account: ImageRegistryAccount): number | undefined {
  const text = account.metadata.labels?.[ROTATION_LABEL] ?? account.metadata.name?.split('.').pop() ?? '';
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Same kind, namespace and name; and, when both are known, the same uid (not a deleted predecessor). */
export function ownsAccount(cr: ImageSecret, account: ImageRegistryAccount, { ignoreUid = false } = {}): boolean {
  const owner = accountOwner(account);
  if (!owner || owner.kind !== cr.kind || owner.namespace !== cr.metadata.namespace || owner.name !== cr.metadata.name) return false;
  return ignoreUid || !owner.uid || !cr.metadata.uid || owner.uid === cr.metadata.uid;
}

/**
 * The CR's account with the highest rotation, including those of a deleted predecessor with the
 * same name (they still hold their names, so numbering must go past them). Deleting ones are skipped.
 */
export function latestAccount(accounts: readonly ImageRegistryAccount[], cr: ImageSecret): ImageRegistryAccount | undefined {
  let latest: { account: ImageRegistryAccount; rotation: number } | undefined;
  for (const account of accounts) {
    if (account.metadata.deletionTimestamp || !ownsAccount(cr, account, { ignoreUid: true })) continue;
    const rotation = accountRotation(account);
    if (rotation !== undefined && (!latest || rotation > latest.rotation)) latest = { account, rotation };
  }
  return latest?.account;
}

export interface AccountsToDeleteInput {
  /**
   * Accounts to judge. List them BEFORE the CRs: an account is created only after its CR exists,
   * so a CR list taken later contains every live owner, and a fresh account is never revoked.
   */
  accounts: readonly ImageRegistryAccount[];
  /**
   * Every live ImagePushSecret/ImagePullSecret that may own one of the accounts — all of them
   * cluster-wide, or at least all that resolve to `registry` when that scope is given. A CR
   * missing from this list counts as deleted, and its accounts are revoked.
   */
  imageSecrets: readonly ImageSecret[];
  config: OperatorConfig;
  now: Date;
  /** restricts the decision to accounts labelled for this registry */
  registry?: RegistryKey;
}

/**
 * Managed accounts to delete: expired ones (creationTimestamp + ttl ≤ now), and revoked ones whose
 * CR is gone, was recreated (other uid) or now resolves to another registry. Static user accounts
 * are never returned, not even when expired: docker_auth already ignores expired ones
 * (activeAccounts), and deleting objects users wrote themselves would surprise them.
 */
export function accountsToDelete({ accounts, imageSecrets, config, now, registry }: AccountsToDeleteInput): AccountDeletion[] {
  const live = new Map<string, ImageSecret>();
  for (const cr of imageSecrets) {
    if (!cr.metadata.deletionTimestamp) live.set(ownerKey(cr.kind, cr.metadata.namespace ?? '', cr.metadata.name ?? ''), cr);
  }
  const scope = registry && registryLabelValue(registry);
  const deletions: AccountDeletion[] = [];
  for (const account of accounts) {
    const owner = accountOwner(account);
    if (!owner || account.metadata.deletionTimestamp) continue;
    if (scope !== undefined && account.metadata.labels?.[REGISTRY_LABEL] !== scope) continue;
    const decision = deletionOf(account, owner, live.get(ownerKey(owner.kind, owner.namespace, owner.name)), config, now);
    if (decision) deletions.push({ account, ...decision });
  }
  return deletions;
}

function deletionOf(
  account: ImageRegistryAccount,
  owner: AccountOwner,
  cr: ImageSecret | undefined,
  config: OperatorConfig,
  now: Date,
): Omit<AccountDeletion, 'account'> | undefined {
  const expiry = accountExpiry(account);
  if (expiry && expiry.getTime() <= now.getTime()) {
    return { reason: 'Expired', message: `account ${account.metadata.name} expired at ${formatTimestamp(expiry)}` };
  }
  const ownerText = `${owner.kind} ${owner.namespace}/${owner.name}`;
  if (!cr) return { reason: 'Revoked', message: `${ownerText} no longer exists` };
  if (owner.uid && cr.metadata.uid && owner.uid !== cr.metadata.uid) {
    return { reason: 'Revoked', message: `${ownerText} was deleted and created again` };
  }
  const target = registryOfCr(cr, config);
  const label = account.metadata.labels?.[REGISTRY_LABEL];
  if (target.namespace !== account.metadata.namespace || (label !== undefined && label !== registryLabelValue(target))) {
    return { reason: 'Revoked', message: `${ownerText} now uses registry ${target.namespace}/${target.name}` };
  }
  return undefined;
}

/** The registry a stored CR uses: resolveRegistryRef (defaults.ts, the mutating webhook's rule) in the CR's namespace. */
export function registryOfCr(cr: ImageSecret, config: OperatorConfig): RegistryKey {
  return resolveRegistryRef(cr, { config, namespace: crIdentity(cr).namespace });
}

function ownerKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** name and namespace of a push/pull CR; throws when either is missing (the CR was not stored). */
export function crIdentity(cr: ImageSecret): { name: string; namespace: string } {
  const { name, namespace } = cr.metadata;
  if (!name || !namespace) throw new Error(`${cr.kind} needs metadata.name and metadata.namespace`);
  return { name, namespace };
}
