// ImagePullSecret.spec.serviceAccounts, the Jobs' side (the webhook adds the entry to accounts created
// later): every ServiceAccount a pull CR lists gets `{name: <cr>-image-pull-secret}` in its
// imagePullSecrets, and loses it again when the CR is gone or no longer lists it. Level-based: each
// run compares every concerned account with the CRs as they are now (functions/service-accounts.ts),
// so a rerun, or the hourly resync, repairs whatever a missed admission or a dead Job left.
//
// The entry is added at once, before the reconcile of the registry confirms credentials: the Secret
// only ever holds credentials every ready registry pod accepted, and the kubelet reads the Secret at
// each pull attempt (retrying with back-off while it does not exist yet), whereas a Pod created
// from an account without the entry never gets it.
//
// Other writers change the same accounts (users, other controllers, another of our Jobs): each write
// is a JSON Patch whose first operation tests the resourceVersion it was computed from, and a lost
// race (the API server answers a failed test with 422) reads the account and the CRs again and
// recomputes. Never server-side apply: it would make
// this field manager an owner of the whole (atomic) imagePullSecrets list.
import { desiredPullSecrets, namespacesWithServiceAccounts, pullSecretChange, ADDED_PULL_SECRETS_LABEL, type ServiceAccount } from '../functions/service-accounts.ts';
import { GROUP_VERSION, type ImageSecret } from '../functions/types.ts';
import { API_PARALLELISM, mapLimit } from './concurrency.ts';
import { isConflict, isNotFound, KubeError, type Kube } from './kube.ts';
import { log } from './log.ts';

const MAX_ATTEMPTS = 8;

export interface ServiceAccountsResult {
  /** accounts written */
  changed: number;
  /** accounts looked at */
  checked: number;
}

/**
 * `crs`: the pull CRs whose namespaces this run looks at (a Job for named registries: theirs; the
 * resync: all). Accounts that carry our record are looked at wherever they are, so that an entry of
 * a deleted CR goes whatever registry it was for.
 */
export async function reconcileServiceAccounts(kube: Kube, crs: readonly ImageSecret[]): Promise<ServiceAccountsResult> {
  // accounts first, then the CRs: an account is written from CRs read after it (see reconcileOne)
  const [recorded, ...listed] = await Promise.all([
    kube.list<ServiceAccount>('v1', 'ServiceAccount', undefined, ADDED_PULL_SECRETS_LABEL),
    ...namespacesWithServiceAccounts(crs).map((namespace) => kube.list<ServiceAccount>('v1', 'ServiceAccount', namespace)),
  ]);
  const accounts = new Map<string, ServiceAccount>();
  for (const account of [...(recorded ?? []), ...listed.flat()]) accounts.set(`${account.metadata?.namespace}/${account.metadata?.name}`, account);
  if (accounts.size === 0) return { changed: 0, checked: 0 };
  const pullCrs = await kube.list<ImageSecret>(GROUP_VERSION, 'ImagePullSecret');
  const written = await mapLimit([...accounts.values()], API_PARALLELISM, (account) => reconcileOne(kube, account, pullCrs));
  return { changed: written.filter(Boolean).length, checked: accounts.size };
}

/**
 * One account. Every attempt computes from CRs read after the account it patches, and the patch
 * applies only to that version of the account: a CR change after the CR read enqueues a later run,
 * which reads the account after this write (or makes this write fail its test), so the last write
 * is always from current CRs.
 */
async function reconcileOne(kube: Kube, first: ServiceAccount, firstCrs: readonly ImageSecret[]): Promise<boolean> {
  let account: ServiceAccount | undefined = first;
  let crs = firstCrs;
  const namespace = first.metadata?.namespace ?? '';
  const name = first.metadata?.name ?? '';
  const ref = { apiVersion: 'v1', kind: 'ServiceAccount', namespace, name };
  for (let attempt = 1; ; attempt++) {
    const change = pullSecretChange(account, desiredPullSecrets({ namespace, name }, crs));
    if (change.ops.length === 0) return false;
    const tested = account.metadata?.resourceVersion;
    try {
      await kube.jsonPatch(ref, [{ op: 'test', path: '/metadata/resourceVersion', value: tested }, ...change.ops]);
      log('info', 'ServiceAccount imagePullSecrets reconciled', { serviceAccount: `${namespace}/${name}`, added: change.added, removed: change.removed, attempt });
      return true;
    } catch (error) {
      // deleted meanwhile: nothing to hand out to
      if (isNotFound(error)) return false;
      const maybeStale = isConflict(error) || (error instanceof KubeError && error.code === 422);
      if (!maybeStale || attempt >= MAX_ATTEMPTS) throw error;
      // lost a race with another writer (the test failed: 422), or the patch is invalid (also 422):
      // read the account, then its namespace's CRs, again; the same version means the patch itself failed
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * attempt));
      account = await kube.read<ServiceAccount>(ref);
      if (!account) return false;
      if (account.metadata?.resourceVersion === tested) throw error;
      crs = await kube.list<ImageSecret>(GROUP_VERSION, 'ImagePullSecret', namespace);
    }
  }
}
