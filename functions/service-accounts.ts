// ImagePullSecret.spec.serviceAccounts: the ServiceAccounts of the CR's namespace (or `*`, all of
// them) whose imagePullSecrets name the CR's Secret, so that their Pods pull without imagePullSecrets
// of their own (the API server's ServiceAccount admission plugin copies the entries into every Pod
// that names none).
//
// The operator adds `{name: <cr>-image-pull-secret}` and records what it added in an annotation on
// the ServiceAccount itself, written in the same patch as the entries: the record and the list change
// together or not at all, so a crash between two writes can neither leave an entry the operator does
// not know it added (never removed) nor a record of an entry a user put there (removed wrongly). On
// the Secret the record would also vanish with it (garbage-collected with the CR) exactly when it is
// needed. Removal takes out only recorded entries, one occurrence each; entries a user wrote — also
// one naming our Secret that was there before we came — stay. A label marks the ServiceAccounts
// that carry a record, so a Job finds them with one list even after their CR is gone.
import { isPlainObject, pointer, type JsonPatchOp } from './json-patch.ts';
import { imageSecretName } from './names.ts';
import { API_GROUP, type ImageSecret, type ObjectMeta } from './types.ts';

/** `spec.serviceAccounts: ["*"]`: every ServiceAccount of the CR's namespace, also those created later. */
export const ALL_SERVICE_ACCOUNTS = '*';
/** On a ServiceAccount: the Secret names the operator added to its imagePullSecrets (sorted, comma-separated). */
export const ADDED_PULL_SECRETS_ANNOTATION = `${API_GROUP}/added-image-pull-secrets`;
/** On a ServiceAccount that carries ADDED_PULL_SECRETS_ANNOTATION; a list selects by label, not annotation. */
export const ADDED_PULL_SECRETS_LABEL = `${API_GROUP}/added-image-pull-secrets`;

export interface ServiceAccount {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  imagePullSecrets?: { name?: string }[];
}

/** Whether the pull CR (not being deleted) lists the ServiceAccount by name or with `*`. */
export function listsServiceAccount(cr: ImageSecret, name: string): boolean {
  if (cr.kind !== 'ImagePullSecret' || cr.metadata.deletionTimestamp) return false;
  const listed = cr.spec?.serviceAccounts;
  if (!Array.isArray(listed)) return false;
  return listed.includes(ALL_SERVICE_ACCOUNTS) || (name !== '' && listed.includes(name));
}

/** The Secret names a ServiceAccount should carry: one per pull CR of its namespace that lists it; sorted. */
export function desiredPullSecrets(account: { namespace: string; name: string }, crs: readonly ImageSecret[]): string[] {
  const names = crs
    .filter((cr) => cr.metadata.namespace === account.namespace && listsServiceAccount(cr, account.name))
    .map((cr) => imageSecretName(cr.kind, cr.metadata.name ?? ''));
  return [...new Set(names)].sort();
}

/** The Secret names the record on the ServiceAccount says the operator added. */
export function addedPullSecrets(account: ServiceAccount): string[] {
  const text = account.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION] ?? '';
  return text.split(',').map((name) => name.trim()).filter(Boolean);
}

/** The namespaces whose ServiceAccounts the CRs name (a CR being deleted names none). */
export function namespacesWithServiceAccounts(crs: readonly ImageSecret[]): string[] {
  const listing = crs.filter((cr) => cr.kind === 'ImagePullSecret' && !cr.metadata.deletionTimestamp && (cr.spec?.serviceAccounts?.length ?? 0) > 0);
  return [...new Set(listing.map((cr) => cr.metadata.namespace ?? ''))].filter(Boolean).sort();
}

export interface PullSecretChange {
  added: string[];
  removed: string[];
  /** the record after the change */
  record: string[];
  /** JSON Patch operations for the change; empty when the ServiceAccount already is as desired */
  ops: JsonPatchOp[];
}

/**
 * How a ServiceAccount gets exactly the `desired` entries of ours: add each one it lacks (recording
 * it), remove each recorded one no longer desired (one occurrence: a copy a user added later stays),
 * never touch another entry. The operations address entries by index, so a caller that patches a
 * stored object must guard them with a `test` of its resourceVersion (the webhook patches an object
 * not stored yet). Never mutates its input.
 */
export function pullSecretChange(account: ServiceAccount, desired: readonly string[]): PullSecretChange {
  const entries = Array.isArray(account.imagePullSecrets) ? account.imagePullSecrets : undefined;
  const present = (entries ?? []).map((entry) => (isPlainObject(entry) && typeof entry.name === 'string' ? entry.name : undefined));
  const recorded = addedPullSecrets(account);
  const wanted = new Set(desired);
  const added = [...wanted].filter((name) => !present.includes(name)).sort();
  const removed = recorded.filter((name) => !wanted.has(name) && present.includes(name)).sort();
  const record = [...new Set([...recorded.filter((name) => wanted.has(name)), ...added])].sort();

  const ops: JsonPatchOp[] = [];
  // the last occurrence of each, highest index first, so that no removal shifts the next one
  const indexes = removed.map((name) => present.lastIndexOf(name)).sort((a, b) => b - a);
  for (const index of indexes) ops.push({ op: 'remove', path: pointer('imagePullSecrets', index) });
  if (added.length > 0) {
    if (entries === undefined) ops.push({ op: 'add', path: '/imagePullSecrets', value: added.map((name) => ({ name })) });
    else for (const name of added) ops.push({ op: 'add', path: '/imagePullSecrets/-', value: { name } });
  }
  const marks = record.length > 0 ? { annotations: record.join(','), labels: 'true' } : { annotations: undefined, labels: undefined };
  if (!isPlainObject(account.metadata)) {
    if (marks.annotations !== undefined) ops.push({ op: 'add', path: '/metadata', value: { annotations: { [ADDED_PULL_SECRETS_ANNOTATION]: marks.annotations }, labels: { [ADDED_PULL_SECRETS_LABEL]: marks.labels } } });
  } else {
    ops.push(...metadataOps(account.metadata, 'annotations', ADDED_PULL_SECRETS_ANNOTATION, marks.annotations));
    ops.push(...metadataOps(account.metadata, 'labels', ADDED_PULL_SECRETS_LABEL, marks.labels));
  }
  return { added, removed, record, ops };
}

/** Sets (value) or removes (undefined) one annotation or label, creating the map when it is missing. */
function metadataOps(metadata: ObjectMeta, map: 'annotations' | 'labels', key: string, value: string | undefined): JsonPatchOp[] {
  const current: unknown = metadata[map];
  const existing = isPlainObject(current) ? current[key] : undefined;
  if (existing === value) return [];
  if (value === undefined) return [{ op: 'remove', path: pointer('metadata', map, key) }];
  if (!isPlainObject(current)) return [{ op: 'add', path: pointer('metadata', map), value: { [key]: value } }];
  return [{ op: 'add', path: pointer('metadata', map, key), value }];
}
