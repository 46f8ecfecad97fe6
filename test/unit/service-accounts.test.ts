import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyJsonPatch } from '../../functions/json-patch.ts';
import {
  ADDED_PULL_SECRETS_ANNOTATION,
  ADDED_PULL_SECRETS_LABEL,
  addedPullSecrets,
  desiredPullSecrets,
  listsServiceAccount,
  namespacesWithServiceAccounts,
  pullSecretChange,
  type ServiceAccount,
} from '../../functions/service-accounts.ts';
import type { ImageSecret } from '../../functions/types.ts';

function pull(name: string, serviceAccounts?: string[], extra: { namespace?: string; kind?: ImageSecret['kind']; deleting?: boolean } = {}): ImageSecret {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: extra.kind ?? 'ImagePullSecret',
    metadata: { name, namespace: extra.namespace ?? 'apps', ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: serviceAccounts ? { serviceAccounts } : {},
  };
}

function account(entries?: string[], added?: string[], extra: Record<string, string> = {}): ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: 'builder',
      namespace: 'apps',
      resourceVersion: '7',
      ...(added ? { annotations: { ...extra, [ADDED_PULL_SECRETS_ANNOTATION]: added.join(',') }, labels: { [ADDED_PULL_SECRETS_LABEL]: 'true' } } : {}),
    },
    ...(entries ? { imagePullSecrets: entries.map((name) => ({ name })) } : {}),
  };
}

const names = (sa: ServiceAccount) => (sa.imagePullSecrets ?? []).map((e) => e.name);
const deepFreeze = <T>(value: T): T => {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
};
/** The change applied, as the API server would apply the patch. */
function changed(sa: ServiceAccount, desired: string[]): ServiceAccount {
  return applyJsonPatch(sa, pullSecretChange(deepFreeze(sa), desired).ops);
}

test('listsServiceAccount: by name or "*"; pull CRs only; not while being deleted', () => {
  assert.ok(listsServiceAccount(pull('a', ['builder']), 'builder'));
  assert.ok(listsServiceAccount(pull('a', ['*']), 'builder'));
  assert.ok(listsServiceAccount(pull('a', ['*']), ''), '"*" also covers an account without a name yet');
  assert.not.ok(listsServiceAccount(pull('a', ['builder']), ''));
  assert.not.ok(listsServiceAccount(pull('a', ['other']), 'builder'));
  assert.not.ok(listsServiceAccount(pull('a'), 'builder'));
  assert.not.ok(listsServiceAccount(pull('a', ['builder'], { kind: 'ImagePushSecret' }), 'builder'));
  assert.not.ok(listsServiceAccount(pull('a', ['builder'], { deleting: true }), 'builder'));
});

test('desiredPullSecrets: the Secrets of the CRs of the same namespace that list the account, sorted', () => {
  const crs = [pull('zeta', ['*']), pull('alpha', ['builder', 'x']), pull('other-ns', ['builder'], { namespace: 'elsewhere' }), pull('unlisted', ['x'])];
  assert.equal(desiredPullSecrets({ namespace: 'apps', name: 'builder' }, crs), ['alpha-image-pull-secret', 'zeta-image-pull-secret']);
  assert.equal(desiredPullSecrets({ namespace: 'elsewhere', name: 'builder' }, crs), ['other-ns-image-pull-secret']);
  assert.equal(desiredPullSecrets({ namespace: 'none', name: 'builder' }, crs), []);
});

test('namespacesWithServiceAccounts: namespaces of pull CRs that list any account', () => {
  const crs = [pull('a', ['x'], { namespace: 'b' }), pull('b', [], { namespace: 'c' }), pull('c', ['*'], { namespace: 'a' }), pull('d', ['x'], { namespace: 'd', deleting: true }), pull('e', ['x'], { namespace: 'b' })];
  assert.equal(namespacesWithServiceAccounts(crs), ['a', 'b']);
});

test('adds the missing entry after the user’s own, records it and labels the account', () => {
  const after = changed(account(['mine']), ['reg-image-pull-secret']);
  assert.equal(names(after), ['mine', 'reg-image-pull-secret']);
  assert.is(after.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'reg-image-pull-secret');
  assert.is(after.metadata?.labels?.[ADDED_PULL_SECRETS_LABEL], 'true');
  assert.equal(addedPullSecrets(after), ['reg-image-pull-secret']);
});

test('creates imagePullSecrets, annotations and labels when the account has none', () => {
  const bare: ServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'apps' } };
  const after = changed(bare, ['b-image-pull-secret', 'a-image-pull-secret']);
  assert.equal(names(after), ['a-image-pull-secret', 'b-image-pull-secret']);
  assert.is(after.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'a-image-pull-secret,b-image-pull-secret');
  const noMetadata = changed({ imagePullSecrets: [] }, ['a-image-pull-secret']);
  assert.equal(names(noMetadata), ['a-image-pull-secret']);
  assert.equal(noMetadata.metadata, { annotations: { [ADDED_PULL_SECRETS_ANNOTATION]: 'a-image-pull-secret' }, labels: { [ADDED_PULL_SECRETS_LABEL]: 'true' } });
});

test('idempotent: an account that is as desired gets no operation', () => {
  const done = changed(account(['mine']), ['reg-image-pull-secret']);
  assert.equal(pullSecretChange(done, ['reg-image-pull-secret']).ops, []);
  assert.equal(pullSecretChange(account(['mine']), []).ops, [], 'nothing desired, nothing recorded');
});

test('an entry the user put there before is neither recorded nor ever removed', () => {
  const sa = account(['reg-image-pull-secret']);
  const change = pullSecretChange(sa, ['reg-image-pull-secret']);
  assert.equal(change.ops, [], 'already there: nothing to add, nothing recorded');
  assert.equal(pullSecretChange(sa, []).ops, [], 'not desired, but not ours either');
});

test('removes only recorded entries that are no longer desired, one occurrence, other entries untouched', () => {
  const sa = account(['first', 'a-image-pull-secret', 'middle', 'b-image-pull-secret', 'last'], ['a-image-pull-secret', 'b-image-pull-secret']);
  const after = changed(sa, ['b-image-pull-secret']);
  assert.equal(names(after), ['first', 'middle', 'b-image-pull-secret', 'last']);
  assert.is(after.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'b-image-pull-secret');
  const empty = changed(sa, []);
  assert.equal(names(empty), ['first', 'middle', 'last']);
  assert.is(empty.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], undefined);
  assert.is(empty.metadata?.labels?.[ADDED_PULL_SECRETS_LABEL], undefined);
  // a copy the user added after ours stays
  const twice = changed(account(['a-image-pull-secret', 'x', 'a-image-pull-secret'], ['a-image-pull-secret']), []);
  assert.equal(names(twice), ['a-image-pull-secret', 'x']);
});

test('keeps other annotations; a recorded entry the user removed is added again while desired', () => {
  const sa = account(['mine'], ['a-image-pull-secret'], { 'team.example/owner': 'ops' });
  const after = changed(sa, ['a-image-pull-secret']);
  assert.equal(names(after), ['mine', 'a-image-pull-secret']);
  assert.is(after.metadata?.annotations?.['team.example/owner'], 'ops');
  // recorded, gone and no longer desired: only the record goes
  const dropped = changed(sa, []);
  assert.equal(names(dropped), ['mine']);
  assert.is(dropped.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], undefined);
  assert.is(dropped.metadata?.annotations?.['team.example/owner'], 'ops');
});

test('add and remove in one change', () => {
  const sa = account(['old-image-pull-secret', 'mine'], ['old-image-pull-secret']);
  const change = pullSecretChange(sa, ['new-image-pull-secret']);
  assert.equal([change.added, change.removed, change.record], [['new-image-pull-secret'], ['old-image-pull-secret'], ['new-image-pull-secret']]);
  assert.equal(names(applyJsonPatch(sa, change.ops)), ['mine', 'new-image-pull-secret']);
});

test.run();
