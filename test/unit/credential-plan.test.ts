import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Secret } from '@kubernetes/client-node';
import { desiredAccount } from '../../functions/accounts.ts';
import {
  confirmationLoginAcl,
  confirmationLoginName,
  confirmationLoginsOf,
  isConfirmationLogin,
  keptConfirmationLogins,
  MAX_KEPT_CONFIRMATION_LOGINS,
} from '../../functions/confirmation-logins.ts';
import { handOutDecisions, needsConfirmation, planCredentials, revocationEvent, REVOCATION_PENDING, secretKey, type IssuedCredential } from '../../functions/credential-plan.ts';
import { dockerAuthConfig } from '../../functions/docker-auth-config.ts';
import { desiredImageSecret } from '../../functions/image-secrets.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { httpSecretOf, registryConfig } from '../../functions/registry-config.ts';
import { sameSecretContent } from '../../functions/registry-objects.ts';
import { hasReadyReplica } from '../../functions/registry-status.ts';
import type { ImageRegistry, ImageRegistryAccount, ImageSecret } from '../../functions/types.ts';
import { load } from 'js-yaml';

const HASH = '$2b$04$abcdefghijklmnopqrstuu5UQ0Jq2OUn3nTf8Jl4DX2xEqkjLrGLa';
const HOST = 'registry.infra.svc.example.org';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const REGISTRY = { name: 'registry', namespace: 'infra' };
const config = operatorConfigFromEnv({});
const T0 = new Date('2026-06-01T00:00:00Z');
const HOUR = 3600_000;

function cr(name: string, extra: Partial<ImageSecret> = {}): ImageSecret {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: 'ImagePushSecret',
    metadata: { name, namespace: 'apps', uid: `uid-${name}`, generation: 1 },
    spec: { registryRef: { ...REGISTRY } },
    ...extra,
  };
}

/** A stored account of `owner`'s rotation, created at `created`. */
function account(owner: ImageSecret, rotation: number, created: Date): ImageRegistryAccount {
  const a = desiredAccount({ cr: owner, registry: REGISTRY, rotation, passwordHash: HASH, intervalSeconds: config.rotationIntervalSeconds });
  return { ...a, metadata: { ...a.metadata, uid: `acc-${owner.metadata.name}-${rotation}`, creationTimestamp: created.toISOString() } };
}

function secretFor(owner: ImageSecret, rotation: number, rotationDate: Date): V1Secret {
  return desiredImageSecret(owner, { hostname: HOST, caPem: CA, username: `push.apps.${owner.metadata.name}.${rotation}`, password: 'p', rotation, rotationDate, registry: REGISTRY });
}

const ready = (rotation: number) => ({ rotation, conditions: [{ type: 'Ready', status: 'True' as const, reason: 'Ready', message: '', lastTransitionTime: T0.toISOString() }] });
const pending = (rotation: number) => ({ rotation, conditions: [{ type: 'Ready', status: 'False' as const, reason: 'RegistryNotReady', message: '', lastTransitionTime: T0.toISOString() }] });

function plan(crs: ImageSecret[], accounts: ImageRegistryAccount[], secrets: V1Secret[], now: Date, forcedBefore?: Date) {
  return planCredentials({
    registry: REGISTRY, hostname: HOST, caPem: CA, accounts, imageSecrets: crs, config, now,
    secrets: new Map(secrets.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s])),
    ...(forcedBefore ? { forcedBefore } : {}),
  });
}

test('planCredentials: a new CR is rotated; a current one is not; a CR of another registry is not ours', () => {
  const fresh = cr('fresh');
  const current = cr('current', { status: ready(1) });
  const other = cr('other', { spec: { registryRef: { name: 'elsewhere', namespace: 'infra' } } });
  const p = plan([fresh, current, other], [account(current, 1, T0)], [secretFor(current, 1, T0)], new Date(T0.getTime() + HOUR));
  assert.equal(p.crs.map((c) => c.metadata.name), ['fresh', 'current']);
  assert.equal(p.rotations.map((r) => [r.cr.metadata.name, r.rotation]), [['fresh', 1]]);
  assert.equal(p.deletions, []);
  assert.equal(p.awaiting, []);
});

test('planCredentials: forced before now rotates every current CR to the next number', () => {
  const current = cr('current', { status: ready(4) });
  const p = plan([current], [account(current, 4, T0)], [secretFor(current, 4, T0)], new Date(T0.getTime() + HOUR), new Date(T0.getTime() + HOUR));
  assert.equal(p.rotations.map((r) => r.rotation), [5]);
});

test('planCredentials: a deleted CR\'s accounts are deletions (Revoked); an expired one is Expired; a CR issued by another Job is left to it', () => {
  const gone = cr('gone');
  const busy = cr('busy');
  const now = new Date(T0.getTime() + 49 * HOUR);
  const current = cr('current', { status: ready(1) });
  const accounts = [account(gone, 1, new Date(now.getTime() - HOUR)), account(current, 1, T0), account(busy, 1, new Date(now.getTime() - 5_000))];
  const p = plan([busy, current], accounts, [secretFor(current, 1, T0)], now);
  assert.equal(p.deletions.map((d) => [d.account.metadata.name, d.reason]), [['push.apps.gone.1', 'Revoked'], ['push.apps.current.1', 'Expired']]);
  assert.equal(p.leftToOtherJob.map((c) => c.metadata.name), ['busy']);
  assert.equal(p.crs.map((c) => c.metadata.name), ['current']);
});

test('planCredentials: a CR whose Secret went out before a pod could confirm it awaits confirmation', () => {
  const waiting = cr('waiting', { status: pending(1) });
  const p = plan([waiting], [account(waiting, 1, T0)], [secretFor(waiting, 1, T0)], new Date(T0.getTime() + HOUR));
  assert.equal(p.awaiting.map((c) => c.metadata.name), ['waiting']);
  assert.ok(needsConfirmation(p, 0));
  assert.not.ok(needsConfirmation({ ...p, awaiting: [] }, 0));
  assert.ok(needsConfirmation({ ...p, awaiting: [] }, 1));
});

function issuedFor(owner: ImageSecret, rotation: number): IssuedCredential {
  return { cr: owner, account: account(owner, rotation, T0), password: 'secret-password', rotation, reason: 'test' };
}

test('handOutDecisions: confirmed → credentials, Ready and a Rotated Event for each issued CR; the others keep their status', () => {
  const fresh = cr('fresh');
  const current = cr('current', { status: ready(1) });
  const p = { crs: [fresh, current], leftToOtherJob: [], rotations: [], deletions: [], awaiting: [] };
  const d = handOutDecisions({ plan: p, issued: [issuedFor(fresh, 1)], check: { outcome: 'confirmed', pods: ['r-0'] }, registry: REGISTRY, hostname: HOST, now: T0 });
  assert.equal(d.abandoned, []);
  const [a, b] = d.handOuts;
  assert.is(a?.credential?.password, 'secret-password');
  assert.is(a?.status.conditions?.[0]?.status, 'True');
  assert.is(a?.event?.reason, 'Rotated');
  assert.is(b?.credential, undefined);
  assert.is(b?.event, undefined);
});

test('handOutDecisions: not confirmed in time → nothing handed out, a new CR stays not Ready, a rotated one keeps Ready, accounts abandoned', () => {
  const fresh = cr('fresh');
  const rotated = cr('rotated', { status: ready(1) });
  const p = { crs: [fresh, rotated], leftToOtherJob: [], rotations: [], deletions: [], awaiting: [] };
  const issued = [issuedFor(fresh, 1), issuedFor(rotated, 2)];
  const d = handOutDecisions({ plan: p, issued, check: { outcome: 'timeout', pods: ['r-0'], refusing: ['r-0'], waitedSeconds: 30 }, registry: REGISTRY, hostname: HOST, now: T0 });
  assert.equal(d.abandoned.map((i) => i.account.metadata.name), ['push.apps.fresh.1', 'push.apps.rotated.2']);
  assert.ok(d.handOuts.every((h) => h.credential === undefined));
  assert.is(d.handOuts[0]?.status.conditions?.[0]?.reason, 'CredentialsPending');
  assert.is(d.handOuts[1]?.status.conditions?.[0]?.status, 'True');
  assert.is(d.handOuts[1]?.status.rotation, 1);
  assert.ok(d.handOuts.every((h) => h.event?.type === 'Warning'));
});

test('handOutDecisions: no ready pod → credentials handed out, CRs not Ready (RegistryNotReady) until a pod confirms', () => {
  const fresh = cr('fresh');
  const p = { crs: [fresh], leftToOtherJob: [], rotations: [], deletions: [], awaiting: [] };
  const d = handOutDecisions({ plan: p, issued: [issuedFor(fresh, 1)], check: { outcome: 'no-ready-pod' }, registry: REGISTRY, hostname: HOST, now: T0 });
  assert.ok(d.handOuts[0]?.credential);
  assert.is(d.handOuts[0]?.status.conditions?.[0]?.reason, 'RegistryNotReady');
});

test('revocationEvent: confirmed names the pods, no ready pod says so, a time-out is a Warning RevocationPending', () => {
  const deletion = { account: account(cr('gone'), 1, T0), reason: 'Revoked' as const, message: 'ImagePushSecret apps/gone no longer exists' };
  assert.match(revocationEvent(deletion, { outcome: 'confirmed', pods: ['r-0', 'r-1'] }).message, /refused by every ready registry pod \(r-0, r-1\)/);
  assert.is(revocationEvent(deletion, { outcome: 'no-ready-pod' }).reason, 'Revoked');
  const late = revocationEvent(deletion, { outcome: 'timeout', pods: ['r-0'], refusing: ['r-0'], waitedSeconds: 30 });
  assert.is(late.type, 'Warning');
  assert.is(late.reason, REVOCATION_PENDING);
  assert.match(late.message, /r-0/);
});

test('secretKey: <namespace>/<cr>-image-push-secret', () => {
  assert.is(secretKey(cr('app')), 'apps/app-image-push-secret');
});

test('confirmation logins: names no account can have; kept while young, newest first, bounded', () => {
  const name = confirmationLoginName(T0, 'abc123');
  assert.ok(isConfirmationLogin(name));
  assert.not.ok(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name), 'not a valid object name');
  const logins = Array.from({ length: 20 }, (_, i) => ({ name: confirmationLoginName(new Date(T0.getTime() + i * 1000), `id${i}`), passwordHash: HASH }));
  const kept = keptConfirmationLogins(logins, new Date(T0.getTime() + 30_000), 15_000);
  assert.equal(kept.map((l) => l.name), logins.slice(16).reverse().map((l) => l.name));
  assert.is(keptConfirmationLogins(logins, new Date(T0.getTime() + 19_000), 60_000).length, MAX_KEPT_CONFIRMATION_LOGINS);
  assert.equal(keptConfirmationLogins([{ name: '_confirm.garbage', passwordHash: HASH }], T0, 60_000), []);
});

test('dockerAuthConfig: confirmation logins authenticate and are denied everything by the first ACL entry; read back from the text', () => {
  const registry: ImageRegistry = { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra' }, spec: {} };
  const login = { name: confirmationLoginName(T0, 'ff00'), passwordHash: HASH };
  const text = dockerAuthConfig({ registry, accounts: [], hostname: HOST, now: T0, confirmationLogins: [login] });
  const parsed = load(text) as { users: Record<string, { password: string }>; acl: unknown[] };
  assert.is(parsed.users[login.name]?.password, HASH);
  assert.equal(parsed.acl[0], confirmationLoginAcl());
  assert.equal(confirmationLoginsOf(text), [login]);
  const without = load(dockerAuthConfig({ registry, accounts: [], hostname: HOST, now: T0 })) as { acl: unknown[] };
  assert.not.equal(without.acl[0], confirmationLoginAcl());
  assert.equal(confirmationLoginsOf('not: [yaml'), []);
});

test('hasReadyReplica: a ready replica, or none wanted', () => {
  const registry = (replicas?: number): ImageRegistry => ({ apiVersion: 'v', kind: 'ImageRegistry', metadata: { name: 'r' }, spec: replicas === undefined ? {} : { replicas } });
  assert.ok(hasReadyReplica(registry(0), undefined));
  assert.not.ok(hasReadyReplica(registry(), undefined));
  assert.not.ok(hasReadyReplica(registry(2), { status: { readyReplicas: 0 } }));
  assert.ok(hasReadyReplica(registry(2), { status: { readyReplicas: 1 } }));
});

test('httpSecretOf: the stored http.secret, or undefined', () => {
  const text = Buffer.from(registryConfig({ hostname: HOST, httpSecret: 'stable-secret' })).toString('base64');
  assert.is(httpSecretOf(text), 'stable-secret');
  assert.is(httpSecretOf(undefined), undefined);
  assert.is(httpSecretOf(Buffer.from('http: {}').toString('base64')), undefined);
});

test('sameSecretContent: equal data and annotations; an annotation of ours missing is a change', () => {
  const a: V1Secret = { data: { k: 'dg==' }, metadata: { annotations: { theirs: '1' } } };
  assert.ok(sameSecretContent(a, { data: { k: 'dg==' } }));
  assert.not.ok(sameSecretContent(a, { data: { k: 'dw==' } }));
  assert.not.ok(sameSecretContent(a, { data: { k: 'dg==', extra: '' } }));
  assert.not.ok(sameSecretContent(a, { data: { k: 'dg==' }, metadata: { annotations: { ours: 'x' } } }));
});

test.run();
