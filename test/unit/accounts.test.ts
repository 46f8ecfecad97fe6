import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  accountOwner,
  accountRotation,
  accountSelector,
  accountsToDelete,
  desiredAccount,
  isManagedAccount,
  labelValue,
  latestAccount,
  MANAGED_BY_LABEL,
  OWNER_KIND_LABEL,
  OWNER_NAME_LABEL,
  OWNER_NAMESPACE_LABEL,
  OWNER_UID_LABEL,
  ownsAccount,
  registryOfCr,
  ROTATION_LABEL,
} from '../../functions/accounts.ts';
import { activeAccounts } from '../../functions/docker-auth-config.ts';
import { REGISTRY_LABEL } from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { ImageRegistry, ImageRegistryAccount, ImageSecret, OperatorConfig } from '../../functions/types.ts';
import { isDns1123Subdomain } from '../../functions/validation/formats.ts';

const HASH = '$2b$04$abcdefghijklmnopqrstuu5UQ0Jq2OUn3nTf8Jl4DX2xEqkjLrGLa';
// the operator's defaults, as the webhook and the Jobs read them from an empty environment
const config: OperatorConfig = operatorConfigFromEnv({});
const REGISTRY = { name: 'registry', namespace: 'infra' };

function cr(kind: ImageSecret['kind'], name = 'example', namespace = 'apps', extra: Partial<ImageSecret> = {}): ImageSecret {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind,
    metadata: { name, namespace, uid: `uid-${kind}-${namespace}-${name}`, generation: 1 },
    spec: { registryRef: { ...REGISTRY } },
    ...extra,
  };
}

function issued(secret: ImageSecret, rotation: number, created: string, options: { ttl?: string; registry?: typeof REGISTRY } = {}): ImageRegistryAccount {
  const account = desiredAccount({ cr: secret, registry: options.registry ?? REGISTRY, rotation, passwordHash: HASH, intervalSeconds: 86400, ...(options.ttl ? { ttl: options.ttl } : {}) });
  return { ...account, metadata: { ...account.metadata, creationTimestamp: created } };
}

function staticAccount(name: string, extra: Partial<ImageRegistryAccount['spec']> = {}, created = '2025-01-01T00:00:00Z'): ImageRegistryAccount {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: 'ImageRegistryAccount',
    metadata: { name, namespace: 'infra', creationTimestamp: created },
    spec: { password: HASH, labels: { accessMode: ['push'] }, ...extra },
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

test('desiredAccount: push.<ns>.<cr>.<rotation> in the registry namespace, spec labels, ttl 2× interval, no ownerReference', () => {
  const push = deepFreeze(cr('ImagePushSecret'));
  const account = desiredAccount({ cr: push, registry: REGISTRY, rotation: 3, passwordHash: HASH, intervalSeconds: 86400 });
  assert.is(account.apiVersion, 'registry.mgoltzsche.github.com/v1alpha1');
  assert.is(account.kind, 'ImageRegistryAccount');
  assert.is(account.metadata.name, 'push.apps.example.3');
  assert.is(account.metadata.namespace, 'infra');
  assert.equal(account.spec, { password: HASH, labels: { namespace: ['apps'], name: ['example'], accessMode: ['push'] }, ttl: '48h' });
  assert.is(account.metadata.ownerReferences, undefined);
  assert.equal(account.metadata.labels, {
    [MANAGED_BY_LABEL]: 'image-registry-operator',
    [REGISTRY_LABEL]: 'infra.registry',
    [OWNER_KIND_LABEL]: 'ImagePushSecret',
    [OWNER_NAMESPACE_LABEL]: 'apps',
    [OWNER_NAME_LABEL]: 'example',
    [OWNER_UID_LABEL]: 'uid-ImagePushSecret-apps-example',
    [ROTATION_LABEL]: '3',
  });
});

test('desiredAccount: pull CRs get pull accounts; the interval sets the default ttl; an explicit ttl wins', () => {
  const pull = cr('ImagePullSecret');
  const hourly = desiredAccount({ cr: pull, registry: REGISTRY, rotation: 1, passwordHash: HASH, intervalSeconds: 5400 });
  assert.is(hourly.metadata.name, 'pull.apps.example.1');
  assert.equal(hourly.spec.labels?.['accessMode'], ['pull']);
  assert.is(hourly.spec.ttl, '3h');
  assert.is(desiredAccount({ cr: pull, registry: REGISTRY, rotation: 1, passwordHash: HASH, intervalSeconds: 86400, ttl: '72h' }).spec.ttl, '72h');
});

test('desiredAccount refuses plain passwords, rotations below 1 and a ttl that a rotation would outlive', () => {
  const push = cr('ImagePushSecret');
  assert.throws(() => desiredAccount({ cr: push, registry: REGISTRY, rotation: 1, passwordHash: 'secret', intervalSeconds: 86400 }), /bcrypt/);
  assert.throws(() => desiredAccount({ cr: push, registry: REGISTRY, rotation: 0, passwordHash: HASH, intervalSeconds: 86400 }), /rotation/);
  assert.throws(() => desiredAccount({ cr: push, registry: REGISTRY, rotation: 1.5, passwordHash: HASH, intervalSeconds: 86400 }), /rotation/);
  assert.throws(() => desiredAccount({ cr: push, registry: REGISTRY, rotation: 1, passwordHash: HASH, intervalSeconds: 86400, ttl: '24h' }), /longer than the rotation interval 24h/);
  assert.throws(() => desiredAccount({ cr: { ...push, metadata: { name: 'x' } }, registry: REGISTRY, rotation: 1, passwordHash: HASH, intervalSeconds: 86400 }), /namespace/);
});

test('long CR names: account name stays a DNS subdomain, label values fit 63 characters and stay distinct', () => {
  const long = 'a'.repeat(100) + '.b';
  const account = desiredAccount({ cr: cr('ImagePushSecret', long), registry: REGISTRY, rotation: 12, passwordHash: HASH, intervalSeconds: 86400 });
  assert.ok(isDns1123Subdomain(account.metadata.name));
  const value = account.metadata.labels?.[OWNER_NAME_LABEL] as string;
  assert.ok(value.length <= 63, value);
  assert.match(value, /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
  assert.is.not(labelValue('a'.repeat(100) + '.c'), value);
  assert.equal(account.spec.labels?.['name'], [long]);
  assert.is(accountOwner(account)?.name, long);
  assert.is(labelValue('example.com'), 'example.com');
  assert.is(labelValue(''), '');
});

test('accountSelector selects by managed-by, kind, namespace and name', () => {
  assert.is(
    accountSelector(cr('ImagePullSecret')),
    'app.kubernetes.io/managed-by=image-registry-operator,registry.mgoltzsche.github.com/owner-kind=ImagePullSecret,registry.mgoltzsche.github.com/owner-namespace=apps,registry.mgoltzsche.github.com/owner-name=example',
  );
});

test('managed vs static accounts, owners and rotation numbers', () => {
  const push = cr('ImagePushSecret');
  const account = issued(push, 7, '2025-01-01T00:00:00Z');
  assert.ok(isManagedAccount(account));
  assert.equal(accountOwner(account), { kind: 'ImagePushSecret', namespace: 'apps', name: 'example', uid: 'uid-ImagePushSecret-apps-example' });
  assert.is(accountRotation(account), 7);
  const user = staticAccount('ci', { labels: { namespace: ['apps'], name: ['example'], accessMode: ['push'] } });
  assert.not.ok(isManagedAccount(user));
  assert.is(accountOwner(user), undefined);
  assert.not.ok(ownsAccount(push, user));
  assert.ok(ownsAccount(push, account));
  assert.not.ok(ownsAccount(cr('ImagePullSecret'), account));
  const recreated = { ...push, metadata: { ...push.metadata, uid: 'other' } };
  assert.not.ok(ownsAccount(recreated, account));
  assert.ok(ownsAccount(recreated, account, { ignoreUid: true }));
});

test('latestAccount: the highest rotation (numerically) of that CR and access mode only', () => {
  const push = cr('ImagePushSecret');
  const accounts = deepFreeze([
    issued(push, 9, '2025-01-01T00:00:00Z'),
    issued(push, 10, '2025-01-02T00:00:00Z'),
    { ...issued(push, 11, '2025-01-03T00:00:00Z'), metadata: { ...issued(push, 11, '2025-01-03T00:00:00Z').metadata, deletionTimestamp: '2025-01-04T00:00:00Z' } },
    issued(cr('ImagePullSecret'), 20, '2025-01-01T00:00:00Z'),
    issued(cr('ImagePushSecret', 'other'), 30, '2025-01-01T00:00:00Z'),
    staticAccount('push.apps.example.40', { labels: { namespace: ['apps'], name: ['example'], accessMode: ['push'] } }),
  ]);
  assert.is(latestAccount(accounts, push)?.metadata.name, 'push.apps.example.10');
  assert.is(latestAccount(accounts, cr('ImagePullSecret'))?.metadata.name, 'pull.apps.example.20');
  assert.is(latestAccount([], push), undefined);
});

test('accountsToDelete: expired managed accounts go; ones still valid stay; boundary is creation + ttl', () => {
  const push = cr('ImagePushSecret');
  const old = issued(push, 1, '2025-01-01T00:00:00Z');
  const current = issued(push, 2, '2025-01-02T00:00:00Z');
  const input = { accounts: [old, current], imageSecrets: [push], config };
  assert.equal(accountsToDelete({ ...input, now: new Date('2025-01-02T23:59:59Z') }), []);
  const deletions = accountsToDelete({ ...input, now: new Date('2025-01-03T00:00:00Z') });
  assert.equal(deletions.map((d) => [d.account.metadata.name, d.reason]), [['push.apps.example.1', 'Expired']]);
  assert.match(deletions[0]?.message ?? '', /expired at 2025-01-03T00:00:00Z/);
  // the auth config already drops it at the same instant
  assert.equal(activeAccounts({ apiVersion: 'v1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra' } } as ImageRegistry, [old, current], new Date('2025-01-03T00:00:00Z')).map((a) => a.metadata.name), ['push.apps.example.2']);
});

test('accountsToDelete never returns static user accounts, not even expired ones', () => {
  const expiredStatic = staticAccount('ci', { ttl: '1h' });
  const lookalike = staticAccount('push.gone.example.1', { labels: { namespace: ['gone'], name: ['example'], accessMode: ['push'] } });
  assert.equal(accountsToDelete({ accounts: [expiredStatic, lookalike], imageSecrets: [], config, now: new Date('2030-01-01T00:00:00Z') }), []);
});

test('accountsToDelete revokes accounts of deleted, deleting and recreated CRs', () => {
  const push = cr('ImagePushSecret');
  const pull = cr('ImagePullSecret');
  const now = new Date('2025-01-01T12:00:00Z');
  const accounts = [issued(push, 1, '2025-01-01T00:00:00Z'), issued(pull, 1, '2025-01-01T00:00:00Z')];
  const gone = accountsToDelete({ accounts, imageSecrets: [pull], config, now });
  assert.equal(gone.map((d) => [d.account.metadata.name, d.reason]), [['push.apps.example.1', 'Revoked']]);
  assert.match(gone[0]?.message ?? '', /ImagePushSecret apps\/example no longer exists/);
  const deleting = { ...pull, metadata: { ...pull.metadata, deletionTimestamp: '2025-01-01T11:00:00Z' } };
  assert.equal(accountsToDelete({ accounts, imageSecrets: [push, deleting], config, now }).map((d) => d.account.metadata.name), ['pull.apps.example.1']);
  const recreated = { ...push, metadata: { ...push.metadata, uid: 'new-uid' } };
  const revoked = accountsToDelete({ accounts, imageSecrets: [recreated, pull], config, now });
  assert.equal(revoked.map((d) => [d.account.metadata.name, d.reason]), [['push.apps.example.1', 'Revoked']]);
  assert.match(revoked[0]?.message ?? '', /deleted and created again/);
  assert.equal(accountsToDelete({ accounts, imageSecrets: [push, pull], config, now }), []);
});

test('accountsToDelete revokes accounts whose CR now resolves to another registry (other namespace or other name)', () => {
  const now = new Date('2025-01-01T12:00:00Z');
  const push = cr('ImagePushSecret');
  const account = issued(push, 1, '2025-01-01T00:00:00Z');
  const elsewhere = (registryRef: { name?: string; namespace?: string }) => ({ ...push, spec: { registryRef } });
  const moved = accountsToDelete({ accounts: [account], imageSecrets: [elsewhere({ name: 'registry', namespace: 'other' })], config, now });
  assert.equal(moved.map((d) => d.reason), ['Revoked']);
  assert.match(moved[0]?.message ?? '', /now uses registry other\/registry/);
  assert.equal(accountsToDelete({ accounts: [account], imageSecrets: [elsewhere({ name: 'second', namespace: 'infra' })], config, now }).length, 1);
  // no registryRef: the default registry in the CR's namespace (apps), not infra
  assert.equal(accountsToDelete({ accounts: [account], imageSecrets: [{ ...push, spec: {} }], config, now }).length, 1);
  const defaultInInfra = { ...config, defaultRegistry: { name: 'registry', namespace: 'infra' } };
  assert.equal(accountsToDelete({ accounts: [account], imageSecrets: [{ ...push, spec: {} }], config: defaultInInfra, now }), []);
});

test('accountsToDelete with a registry scope only judges accounts labelled for that registry; skips deleting ones', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const a = issued(cr('ImagePushSecret', 'a'), 1, '2025-01-01T00:00:00Z');
  const b = issued(cr('ImagePushSecret', 'b'), 1, '2025-01-01T00:00:00Z', { registry: { name: 'second', namespace: 'infra' } });
  const deleting = { ...a, metadata: { ...a.metadata, name: 'push.apps.a.2', deletionTimestamp: '2029-12-31T00:00:00Z' } };
  const input = deepFreeze({ accounts: [a, b, deleting], imageSecrets: [] as ImageSecret[], config, now });
  assert.equal(accountsToDelete(input).map((d) => d.account.metadata.name), ['push.apps.a.1', 'push.apps.b.1']);
  assert.equal(accountsToDelete({ ...input, registry: { name: 'second', namespace: 'infra' } }).map((d) => d.account.metadata.name), ['push.apps.b.1']);
});

test('registryOfCr: the ref, the CR namespace for a bare name, else the default registry', () => {
  const push = cr('ImagePushSecret');
  assert.equal(registryOfCr(push, config), { name: 'registry', namespace: 'infra' });
  assert.equal(registryOfCr({ ...push, spec: { registryRef: { name: 'mine' } } }, config), { name: 'mine', namespace: 'apps' });
  assert.equal(registryOfCr({ ...push, spec: undefined }, config), { name: 'registry', namespace: 'apps' });
  assert.equal(registryOfCr({ ...push, spec: {} }, { ...config, defaultRegistry: { name: 'central', namespace: 'infra' } }), { name: 'central', namespace: 'infra' });
});

test.run();
