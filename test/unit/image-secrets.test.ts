import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Secret } from '@kubernetes/client-node';
import { desiredAccount, MANAGED_BY_LABEL, OWNER_KIND_LABEL, OWNER_NAME_LABEL } from '../../functions/accounts.ts';
import {
  ACCOUNT_ANNOTATION,
  desiredImageSecret,
  dockerConfigJson,
  imageSecretKeys,
  imageSecretStatus,
  ISSUANCE_MARGIN_SECONDS,
  issuanceInProgress,
  nextRotation,
  readImageSecret,
  REGISTRY_NOT_FOUND,
  REGISTRY_NOT_READY,
  ROTATION_ANNOTATION,
  ROTATION_DATE_ANNOTATION,
  rotationDecision,
  type ImageSecretInput,
  type RotationInput,
} from '../../functions/image-secrets.ts';
import { REGISTRY_LABEL } from '../../functions/reconcile-job.ts';
import type { ImageRegistryAccount, ImageSecret } from '../../functions/types.ts';

const HASH = '$2b$04$abcdefghijklmnopqrstuu5UQ0Jq2OUn3nTf8Jl4DX2xEqkjLrGLa';
const HOST = 'registry.infra.svc.example.org';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const REGISTRY = { name: 'registry', namespace: 'infra' };
const DAY = 86400;

function cr(kind: ImageSecret['kind'], extra: Partial<ImageSecret> = {}): ImageSecret {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind,
    metadata: { name: 'example', namespace: 'apps', uid: `uid-${kind}`, generation: 2 },
    spec: { registryRef: { ...REGISTRY } },
    ...extra,
  };
}

function input(rotation = 3, rotationDate = new Date('2025-01-01T00:00:00Z')): ImageSecretInput {
  return { hostname: HOST, caPem: CA, username: `push.apps.example.${rotation}`, password: 'pa55:w0rd', rotation, rotationDate, registry: REGISTRY };
}

function decode(secret: V1Secret, key: string): string {
  return Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

test('dockerConfigJson: auths holds only the hostname, auth is base64(user:password)', () => {
  const parsed = JSON.parse(dockerConfigJson(HOST, 'push.apps.example.1', 'p:w'));
  assert.equal(Object.keys(parsed), ['auths']);
  assert.equal(Object.keys(parsed.auths), [HOST]);
  assert.equal(parsed.auths[HOST], { username: 'push.apps.example.1', password: 'p:w', auth: Buffer.from('push.apps.example.1:p:w').toString('base64') });
});

test('push Secret: <cr>-image-push-secret, Opaque, exactly config.json hostname ca.crt username password', () => {
  const push = deepFreeze(cr('ImagePushSecret'));
  const secret = desiredImageSecret(push, input());
  assert.is(secret.metadata?.name, 'example-image-push-secret');
  assert.is(secret.metadata?.namespace, 'apps');
  assert.is(secret.type, 'Opaque');
  assert.equal(Object.keys(secret.data ?? {}).sort(), ['ca.crt', 'config.json', 'hostname', 'password', 'username']);
  assert.is(secret.stringData, undefined);
  assert.is(decode(secret, 'hostname'), HOST);
  assert.is(decode(secret, 'ca.crt'), CA);
  assert.is(decode(secret, 'username'), 'push.apps.example.3');
  assert.is(decode(secret, 'password'), 'pa55:w0rd');
  const config = JSON.parse(decode(secret, 'config.json'));
  assert.equal(Object.keys(config.auths), [HOST]);
  assert.is(Buffer.from(config.auths[HOST].auth, 'base64').toString(), 'push.apps.example.3:pa55:w0rd');
});

test('pull Secret: <cr>-image-pull-secret, kubernetes.io/dockerconfigjson with .dockerconfigjson', () => {
  const secret = desiredImageSecret(cr('ImagePullSecret'), { ...input(), username: 'pull.apps.example.3' });
  assert.is(secret.metadata?.name, 'example-image-pull-secret');
  assert.is(secret.type, 'kubernetes.io/dockerconfigjson');
  assert.equal(Object.keys(secret.data ?? {}).sort(), ['.dockerconfigjson', 'ca.crt', 'hostname', 'password', 'username']);
  assert.equal(imageSecretKeys('ImagePullSecret'), ['.dockerconfigjson', 'hostname', 'ca.crt', 'username', 'password']);
  assert.equal(Object.keys(JSON.parse(decode(secret, '.dockerconfigjson')).auths), [HOST]);
});

test('Secret metadata: controller ownerReference, labels, account and rotation annotations; deterministic', () => {
  const secret = desiredImageSecret(cr('ImagePushSecret'), input());
  assert.equal(secret.metadata?.ownerReferences, [
    { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImagePushSecret', name: 'example', uid: 'uid-ImagePushSecret', controller: true, blockOwnerDeletion: true },
  ]);
  assert.equal(secret.metadata?.labels, {
    [MANAGED_BY_LABEL]: 'image-registry-operator',
    [REGISTRY_LABEL]: 'infra.registry',
    [OWNER_KIND_LABEL]: 'ImagePushSecret',
    [OWNER_NAME_LABEL]: 'example',
  });
  assert.equal(secret.metadata?.annotations, {
    [ACCOUNT_ANNOTATION]: 'push.apps.example.3',
    [ROTATION_ANNOTATION]: '3',
    [ROTATION_DATE_ANNOTATION]: '2025-01-01T00:00:00Z',
  });
  assert.equal(desiredImageSecret(cr('ImagePushSecret'), input()), secret);
  assert.throws(() => desiredImageSecret(cr('ImagePushSecret', { metadata: { name: 'example', namespace: 'apps' } }), input()), /uid/);
});

test('readImageSecret decodes what desiredImageSecret wrote', () => {
  const secret = desiredImageSecret(cr('ImagePushSecret'), input());
  assert.equal(readImageSecret('ImagePushSecret', secret), {
    username: 'push.apps.example.3',
    password: 'pa55:w0rd',
    hostname: HOST,
    caPem: CA,
    dockerConfig: dockerConfigJson(HOST, 'push.apps.example.3', 'pa55:w0rd'),
    rotation: 3,
    rotationDate: new Date('2025-01-01T00:00:00Z'),
  });
  assert.equal(readImageSecret('ImagePullSecret', { metadata: {} }), {});
});

// A CR with rotation 3 issued on Jan 1st, its Secret and account (ttl 48h).
function current(kind: ImageSecret['kind'] = 'ImagePushSecret') {
  const owner = cr(kind, { status: { rotation: 3, rotationDate: '2025-01-01T00:00:00Z' } });
  const mode = kind === 'ImagePushSecret' ? 'push' : 'pull';
  const secret = desiredImageSecret(owner, { ...input(), username: `${mode}.apps.example.3` });
  const made = desiredAccount({ cr: owner, registry: REGISTRY, rotation: 3, passwordHash: HASH, intervalSeconds: DAY });
  const account: ImageRegistryAccount = { ...made, metadata: { ...made.metadata, creationTimestamp: '2025-01-01T00:00:00Z' } };
  return { cr: owner, secret, account };
}

function decide(overrides: Partial<RotationInput> = {}) {
  const { cr: owner, secret, account } = current();
  return rotationDecision({
    cr: owner,
    secret,
    currentAccount: account,
    registryHostname: HOST,
    caPem: CA,
    now: new Date('2025-01-01T12:00:00Z'),
    intervalSeconds: DAY,
    ...overrides,
  });
}

test('rotationDecision: a no-op reconcile does not rotate (also with CRLF or trailing-newline CA differences)', () => {
  assert.equal(decide(), { rotate: false });
  assert.equal(decide({ caPem: CA.replace(/\n/g, '\r\n') + '\n' }), { rotate: false });
  assert.equal(decide({ now: new Date('2025-01-01T22:59:59Z') }), { rotate: false });
  const { cr: pullCr, secret, account } = current('ImagePullSecret');
  assert.equal(rotationDecision({ cr: pullCr, secret, currentAccount: account, registryHostname: HOST, caPem: CA, now: new Date('2025-01-01T12:00:00Z'), intervalSeconds: DAY }), { rotate: false });
});

test('rotationDecision: missing or incomplete Secret', () => {
  assert.is(reason(decide({ secret: undefined })), 'SecretMissing');
  const { secret } = current();
  const { password: _password, ...rest } = secret.data ?? {};
  const incomplete = decide({ secret: { ...secret, data: rest } });
  assert.is(reason(incomplete), 'SecretIncomplete');
  assert.match(message(incomplete), /lacks password/);
  assert.is(reason(decide({ secret: { ...secret, type: 'kubernetes.io/dockerconfigjson' } })), 'SecretIncomplete');
});

test('rotationDecision: the Secret’s account is missing, deleting, another one or of a recreated CR', () => {
  const { account } = current();
  assert.is(reason(decide({ currentAccount: undefined })), 'AccountMissing');
  assert.is(reason(decide({ currentAccount: { ...account, metadata: { ...account.metadata, deletionTimestamp: '2025-01-01T11:00:00Z' } } })), 'AccountMissing');
  assert.is(reason(decide({ currentAccount: { ...account, metadata: { ...account.metadata, name: 'push.apps.example.2' } } })), 'AccountMissing');
  const recreated = current().cr;
  assert.is(reason(decide({ cr: { ...recreated, metadata: { ...recreated.metadata, uid: 'new' } } })), 'AccountMissing');
});

test('rotationDecision: registry hostname or CA changed', () => {
  const moved = decide({ registryHostname: 'registry.infra.svc.other.org' });
  assert.is(reason(moved), 'HostnameChanged');
  assert.match(message(moved), /registry\.infra\.svc\.example\.org to registry\.infra\.svc\.other\.org/);
  assert.is(reason(decide({ caPem: CA.replace('fake', 'new') })), 'CAChanged');
});

test('rotationDecision: due after one interval, a little early (1/24) so a CronJob firing early still rotates', () => {
  assert.is(reason(decide({ now: new Date('2025-01-02T00:00:00Z') })), 'RotationDue');
  assert.is(reason(decide({ now: new Date('2025-01-01T23:59:58Z') })), 'RotationDue');
  assert.is(reason(decide({ now: new Date('2025-01-01T23:00:00Z') })), 'RotationDue');
  // the Secret's annotation is the record; the CR status only stands in when it is missing
  const { secret, cr: owner } = current();
  const bare = { ...secret, metadata: { ...secret.metadata, annotations: {} } };
  assert.equal(decide({ secret: bare }), { rotate: false });
  assert.is(reason(decide({ secret: bare, cr: { ...owner, status: {} } })), 'RotationDue');
});

test('rotationDecision: account expiring within one interval (ttl shorter than the default)', () => {
  const { account } = current();
  const short = { ...account, spec: { ...account.spec, ttl: '30h' } };
  assert.equal(decide({ currentAccount: short, now: new Date('2025-01-01T04:00:00Z') }), { rotate: false });
  const expiring = decide({ currentAccount: short, now: new Date('2025-01-01T06:00:00Z') });
  assert.is(reason(expiring), 'AccountExpiring');
  assert.match(message(expiring), /expires at 2025-01-02T06:00:00Z/);
});

test('rotationDecision: forced rotates credentials issued before the request, once', () => {
  const requested = new Date('2025-01-01T12:00:00Z');
  assert.equal(decide({ forcedBefore: requested }), { rotate: true, reason: 'Forced', message: `rotation requested at 2025-01-01T12:00:00Z` });
  assert.equal(decide({}), { rotate: false });
  // a retry of the same forced Job after the Secret was rotated leaves it alone
  assert.equal(decide({ forcedBefore: new Date(0) }), { rotate: false });
});

test('issuanceInProgress: a newer account than the Secret names, younger than the other Job’s wait, is left to that Job', () => {
  const { cr: owner, secret, account } = current();
  const made = desiredAccount({ cr: owner, registry: REGISTRY, rotation: 4, passwordHash: HASH, intervalSeconds: DAY });
  const created = new Date('2025-01-02T00:00:00Z');
  const newer: ImageRegistryAccount = { ...made, metadata: { ...made.metadata, creationTimestamp: created.toISOString() } };
  const waitSeconds = 150;
  const at = (seconds: number) => new Date(created.getTime() + seconds * 1000);
  const check = (overrides: Partial<Parameters<typeof issuanceInProgress>[0]>) => issuanceInProgress({ cr: owner, secret, accounts: [account, newer], now: at(5), waitSeconds, ...overrides });
  assert.is(check({}), true, 'rotation 4 created 5 s ago, the Secret still names rotation 3');
  assert.is(check({ secret: undefined }), true, 'a new CR whose Secret is not written yet');
  assert.is(check({ now: at(waitSeconds + ISSUANCE_MARGIN_SECONDS - 1) }), true, 'within the wait and the margin');
  assert.is(check({ now: at(waitSeconds + ISSUANCE_MARGIN_SECONDS) }), false, 'past it: that Job died; issue anew');
  assert.is(check({ accounts: [account] }), false, 'the Secret names the newest account: nothing in progress');
  assert.is(check({ accounts: [] }), false, 'no account at all');
  const deleting = { ...newer, metadata: { ...newer.metadata, deletionTimestamp: at(3).toISOString() } };
  assert.is(check({ accounts: [account, deleting] }), false, 'an abandoned account being deleted');
  const recreated = { ...owner, metadata: { ...owner.metadata, uid: 'uid-recreated' } };
  assert.is(check({ cr: recreated }), false, 'an account of the CR before it was deleted and created again');
});

test('rotationDecision does not mutate its input', () => {
  const frozen = deepFreeze(current());
  assert.equal(
    rotationDecision({ cr: frozen.cr, secret: frozen.secret, currentAccount: frozen.account, registryHostname: HOST, caPem: CA, now: new Date('2025-01-01T12:00:00Z'), intervalSeconds: DAY }),
    { rotate: false },
  );
});

test('nextRotation goes past status, Secret annotation and existing accounts', () => {
  const { cr: owner, secret, account } = current();
  assert.is(nextRotation(owner, []), 4);
  assert.is(nextRotation({ ...owner, status: {} }, []), 1);
  assert.is(nextRotation({ ...owner, status: {} }, [], secret), 4);
  const later = desiredAccount({ cr: owner, registry: REGISTRY, rotation: 9, passwordHash: HASH, intervalSeconds: DAY });
  assert.is(nextRotation(owner, [account, later], secret), 10);
});

test('imageSecretStatus: Ready with rotation, date and registry; a second identical run gives an equal status', () => {
  const now = new Date('2025-01-01T00:00:05Z');
  const push = cr('ImagePushSecret');
  const status = imageSecretStatus({ cr: push, now, registry: REGISTRY, hostname: HOST, issued: { rotation: 3, rotationDate: new Date('2025-01-01T00:00:00Z') } });
  assert.equal(status, {
    observedGeneration: 2,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        observedGeneration: 2,
        lastTransitionTime: '2025-01-01T00:00:05Z',
        reason: 'Ready',
        message: `Secret example-image-push-secret holds account push.apps.example.3 for ${HOST}`,
      },
    ],
    rotation: 3,
    rotationDate: '2025-01-01T00:00:00Z',
    registry: { name: 'registry', namespace: 'infra', hostname: HOST },
  });
  const again = imageSecretStatus({ cr: { ...push, status }, now: new Date('2025-01-01T05:00:00Z'), registry: REGISTRY, hostname: HOST });
  assert.equal(again, status);
});

test('imageSecretStatus: RegistryNotFound and RegistryNotReady keep the issued rotation', () => {
  const push = cr('ImagePushSecret', {
    status: { rotation: 2, rotationDate: '2024-12-31T00:00:00Z', conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: 'x', lastTransitionTime: '2024-12-31T00:00:00Z' }] },
  });
  const now = new Date('2025-01-01T00:00:00Z');
  const missing = imageSecretStatus({ cr: push, now, registry: REGISTRY });
  assert.equal(missing.conditions?.map((c) => [c.status, c.reason, c.message, c.lastTransitionTime]), [
    ['False', REGISTRY_NOT_FOUND, 'ImageRegistry infra/registry does not exist', '2025-01-01T00:00:00Z'],
  ]);
  assert.is(missing.rotation, 2);
  assert.is(missing.registry, undefined);
  const pending = imageSecretStatus({ cr: push, now, registry: REGISTRY, hostname: HOST, notReady: { reason: REGISTRY_NOT_READY, message: 'ImageRegistry infra/registry: RolloutPending' } });
  assert.equal(pending.conditions?.map((c) => [c.status, c.reason]), [['False', 'RegistryNotReady']]);
  assert.equal(pending.registry, { name: 'registry', namespace: 'infra', hostname: HOST });
  const none = imageSecretStatus({ cr: cr('ImagePullSecret'), now, registry: REGISTRY, hostname: HOST });
  assert.equal(none.conditions?.map((c) => [c.status, c.reason]), [['False', 'CredentialsPending']]);
});

test('imageSecretStatus: the expiry of the issued account, kept by later runs, replaced by the next rotation', () => {
  const push = cr('ImagePushSecret');
  const now = new Date('2025-01-01T00:00:05Z');
  const issued = imageSecretStatus({ cr: push, now, registry: REGISTRY, hostname: HOST, issued: { rotation: 1, rotationDate: now, expiryDate: new Date('2025-01-03T00:00:05Z') } });
  assert.is(issued.expiryDate, '2025-01-03T00:00:05Z');
  const later = imageSecretStatus({ cr: { ...push, status: issued }, now: new Date('2025-01-01T12:00:00Z'), registry: REGISTRY, hostname: HOST });
  assert.is(later.expiryDate, '2025-01-03T00:00:05Z', 'unchanged while the credentials are');
  const next = imageSecretStatus({ cr: { ...push, status: issued }, now, registry: REGISTRY, hostname: HOST, issued: { rotation: 2, rotationDate: new Date('2025-01-02T00:00:00Z'), expiryDate: new Date('2025-01-04T00:00:00Z') } });
  assert.is(next.expiryDate, '2025-01-04T00:00:00Z');
  const never = imageSecretStatus({ cr: { ...push, status: issued }, now, registry: REGISTRY, hostname: HOST, issued: { rotation: 3, rotationDate: now } });
  assert.is(never.expiryDate, undefined, 'an account without ttl never expires');
});

function reason(decision: ReturnType<typeof rotationDecision>): string | undefined {
  return decision.rotate ? decision.reason : undefined;
}

function message(decision: ReturnType<typeof rotationDecision>): string {
  return decision.rotate ? decision.message : '';
}

test.run();
