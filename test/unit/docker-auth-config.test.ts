import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load, loadAll } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  accountExpiry,
  activeAccounts,
  assertAclValidForDockerAuth,
  defaultAcl,
  dockerAuthConfig,
  SECRET_DATA_LIMIT_BYTES,
  secretDataBytes,
} from '../../functions/docker-auth-config.ts';
import type { AclEntry, ImageRegistry, ImageRegistryAccount } from '../../functions/types.ts';
import { validateAcl } from '../../functions/validation/acl.ts';

const HASH = '$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
const now = new Date('2025-01-02T00:00:00Z');
const hostname = 'registry.infra.svc.example.org';

function registry(acl?: AclEntry[]): ImageRegistry {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: 'ImageRegistry',
    metadata: { name: 'registry', namespace: 'infra', uid: 'u1' },
    spec: acl ? { auth: { acl } } : {},
  };
}

function account(name: string, opts: { namespace?: string; created?: string; ttl?: string; labels?: Record<string, string[]>; deleting?: boolean } = {}): ImageRegistryAccount {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: 'ImageRegistryAccount',
    metadata: {
      name,
      namespace: opts.namespace ?? 'infra',
      ...(opts.created ? { creationTimestamp: opts.created } : {}),
      ...(opts.deleting ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}),
    },
    spec: { password: HASH, ...(opts.ttl ? { ttl: opts.ttl } : {}), ...(opts.labels ? { labels: opts.labels } : {}) },
  };
}

type Parsed = {
  server: Record<string, unknown>;
  token: Record<string, unknown>;
  users: Record<string, { password: string; labels: Record<string, string[]> }>;
  acl: AclEntry[];
};

test('defaultAcl: push accounts push and pull under their own namespace, pull accounts pull everything', () => {
  const acl = defaultAcl();
  assert.equal(acl.map((e) => [e.match, e.actions]), [
    [{ type: 'repository', name: '/^${labels:namespace}/.+$/', labels: { accessMode: 'push' } }, ['push', 'pull']],
    [{ type: 'repository', labels: { accessMode: 'pull' } }, ['pull']],
  ]);
  assert.equal(validateAcl(acl, 'acl'), [], 'the default passes the webhook check');
  acl[0]?.actions.push('*');
  assert.equal(defaultAcl()[0]?.actions, ['push', 'pull'], 'a fresh copy each call');
});

test('accountExpiry is creationTimestamp + ttl, undefined without either', () => {
  assert.equal(accountExpiry(account('a', { created: '2025-01-01T00:00:00Z', ttl: '48h' })), new Date('2025-01-03T00:00:00Z'));
  assert.equal(accountExpiry(account('a', { created: '2025-01-01T00:00:00Z', ttl: '1h30m' })), new Date('2025-01-01T01:30:00Z'));
  assert.is(accountExpiry(account('a', { created: '2025-01-01T00:00:00Z' })), undefined);
  assert.is(accountExpiry(account('a', { ttl: '1h' })), undefined);
});

test('dockerAuthConfig: server, token and default ACL for docker_auth 1.14 and registry v3', () => {
  const parsed = load(dockerAuthConfig({ registry: registry(), accounts: [], hostname, now })) as Parsed;
  assert.equal(parsed.server, { addr: '127.0.0.1:5001', real_ip_header: 'X-Real-IP' });
  assert.equal(parsed.token, {
    issuer: 'https://registry.infra.svc.example.org/auth/token',
    certificate: '/config/token.crt',
    key: '/config/token.key',
    expiration: 900,
    disable_legacy_key_id: true,
  });
  // EC token keys are named by their libtrust key ID (functions/token-keys.ts tokenKeyId)
  const ec = load(dockerAuthConfig({ registry: registry(), accounts: [], hostname, now, thumbprintKeyId: false })) as Parsed;
  assert.is(ec.token.disable_legacy_key_id, false);
  // docker_auth refuses a config without any auth method; an empty map means "nobody".
  assert.equal(parsed.users, {});
  assert.equal(parsed.acl, defaultAcl());
  const other = load(dockerAuthConfig({ registry: registry(), accounts: [], hostname, now, address: '127.0.0.7:5001' })) as Parsed;
  assert.is(other.server.addr, '127.0.0.7:5001');
});

test('dockerAuthConfig: users are the active accounts of the namespace with their labels (no account label)', () => {
  const accounts = [
    account('push.team-a.app.2', { created: '2025-01-01T00:00:00Z', ttl: '48h', labels: { namespace: ['team-a'], name: ['app'], accessMode: ['push'] } }),
    account('push.team-a.app.1', { created: '2024-12-30T00:00:00Z', ttl: '48h', labels: { namespace: ['team-a'], name: ['app'], accessMode: ['push'] } }),
    account('pull.team-b.web.1', { created: '2025-01-01T00:00:00Z', ttl: '24h', labels: { accessMode: ['pull'] } }),
    account('static', { labels: { accessMode: ['push'], account: ['someone-else'] } }),
    account('elsewhere', { namespace: 'other' }),
    account('going', { deleting: true }),
  ];
  const input = { registry: registry(), accounts, hostname, now };
  const text = dockerAuthConfig(input);
  const parsed = load(text) as Parsed;
  // push.team-a.app.1 expired at 2025-01-01T00:00Z; pull.team-b.web.1 expires exactly at now.
  assert.equal(Object.keys(parsed.users), ['push.team-a.app.2', 'static']);
  assert.equal(parsed.users['push.team-a.app.2'], {
    password: HASH,
    labels: { accessMode: ['push'], name: ['app'], namespace: ['team-a'] },
  });
  assert.equal(parsed.users.static?.labels, { accessMode: ['push'] }, 'an account label set by hand is dropped');
  assert.equal(activeAccounts(registry(), accounts, now).map((a) => a.metadata.name), ['push.team-a.app.2', 'static']);
  // Deterministic: the same input in another order gives the same bytes.
  assert.is(dockerAuthConfig({ ...input, accounts: [...accounts].reverse() }), text);
  assert.is(accounts[3]?.spec.labels?.account?.[0], 'someone-else', 'input not mutated');
});

test('dockerAuthConfig: spec.auth.acl replaces the default; odd strings survive the YAML round trip', () => {
  const acl: AclEntry[] = [
    { match: { account: 'f??bar', name: '${labels:namespace}/*', labels: { group: '/trainee|dev/' } }, actions: ['*'], comment: 'a: b, "c"' },
    { match: { ip: '10.0.0.0/8', type: 'repository', service: 'x' }, actions: ['pull'] },
    { match: { account: '/.*/' }, actions: [] },
  ];
  const labels = { odd: ['on', '', 'a: b', '0777', 'x?y', '#c', 'a,b', 'null', '~', 'é', '- x'] };
  const text = dockerAuthConfig({ registry: registry(acl), accounts: [account('static', { labels })], hostname, now });
  const parsed = load(text) as Parsed;
  assert.equal(parsed.acl, acl);
  assert.equal(parsed.users.static?.labels.odd, labels.odd);
  // Strings with characters go-yaml v2 ends flow scalars at are quoted.
  assert.match(text, /account: "f\?\?bar"/);
});

test('dockerAuthConfig refuses, with the field named, every ACL docker_auth would refuse, panic on or silently drop', () => {
  const write = (acl: unknown) => () => dockerAuthConfig({ registry: registry(acl as AclEntry[]), accounts: [], hostname, now });
  const cases: [unknown, RegExp][] = [
    [[{ match: { labels: { accessMode: 'pull' }, namespace: 'x' }, actions: ['pull'] }], /acl\[0\]\.match\.namespace: unknown match key/],
    [[{ match: { account: '/^[a-\\d]+$/' }, actions: ['pull'] }], /acl\[0\]\.match\.account: invalid regular expression: invalid escape sequence/],
    [[{ match: { name: '/\\p{Foo}/' }, actions: ['pull'] }], /acl\[0\]\.match\.name: invalid regular expression: invalid character class range/],
    [[{ match: { account: 'a' }, actions: ['pull'] }, { match: { ip: '10.0.0' }, actions: ['pull'] }], /acl\[1\]\.match\.ip/],
    [[{ actions: ['pull'] }], /acl\[0\]\.match: required/],
    [[{ match: { account: 'a' } }], /acl\[0\]\.actions: required/],
    [[{ match: { account: 'a' }, action: ['pull'], actions: [] }], /acl\[0\]\.action: unknown field/],
    [[{ match: {}, actions: ['pull'] }], /acl\[0\]\.match: must set at least one/],
    [[{ match: { name: 'team-[a/*' }, actions: ['pull'] }], /acl\[0\]\.match\.name: invalid glob pattern/],
    [[{ match: { name: '/^\\${account}/' }, actions: ['pull'] }], /acl\[0\]\.match\.name: invalid regular expression once its placeholders are replaced/],
    [[{ match: { labels: { team: '${labels:team}' } }, actions: ['pull'] }], /acl\[0\]\.match\.labels\[team\]: docker_auth does not replace/],
    ['push', /spec\.auth\.acl: must be a list/],
  ];
  for (const [acl, message] of cases) assert.throws(write(acl), message, JSON.stringify(acl));
  assert.throws(() => assertAclValidForDockerAuth([{ match: { account: 'a' }, actions: 'pull' }]), /actions/);
  assertAclValidForDockerAuth(defaultAcl());
});

test("the README's ACLs (default and recipes) pass the check, and its default is defaultAcl()", () => {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').filter((b) => /^acl:/m.test(b));
  assert.ok(blocks.length >= 3, `${blocks.length} ACL blocks`);
  for (const block of blocks) {
    const acl = (loadAll(block) as Record<string, unknown>[]).find((doc) => doc && 'acl' in doc)?.acl;
    assert.equal(validateAcl(acl, 'acl'), [], block);
  }
  const readmeDefault = (load(blocks[0] ?? '') as { acl: AclEntry[] }).acl;
  assert.equal(readmeDefault, defaultAcl().map(({ match, actions }) => ({ match, actions })));
});

test('secretDataBytes: the decoded bytes the API server counts against its 1 MiB limit', () => {
  const data = { a: Buffer.from('x'.repeat(1000)).toString('base64'), b: Buffer.from('é').toString('base64') };
  assert.is(secretDataBytes(data), 1002);
  assert.is(secretDataBytes(undefined), 0);
  assert.is(SECRET_DATA_LIMIT_BYTES, 1_048_576);
});

test('dockerAuthConfig is compact: 5,000 typical accounts fit a 1 MiB Secret', () => {
  const typical = (i: number) =>
    account(`push.team-${i % 100}.app-${i}.${i % 7}`, {
      created: '2025-01-01T12:00:00Z',
      ttl: '48h',
      labels: { namespace: [`team-${i % 100}`], name: [`app-${i}`], accessMode: ['push'] },
    });
  const base = Buffer.byteLength(dockerAuthConfig({ registry: registry(), accounts: [], hostname, now }));
  const accounts = Array.from({ length: 5000 }, (_, i) => typical(i));
  const full = Buffer.byteLength(dockerAuthConfig({ registry: registry(), accounts, hostname, now }));
  const perAccount = (full - base) / accounts.length;
  console.log(`    auth_config.yml: ${perAccount.toFixed(1)} bytes per account (names like push.team-42.app-1234.3), ${full} bytes for 5,000`);
  assert.ok(full < 1024 * 1024, `${full} bytes`);
  // 1 MiB / 5,000 = 209.7 bytes; the line is ~155 + 3·len(namespace) + 3·len(cr) + 2·len(rotation).
  assert.ok(perAccount < 209, `${perAccount} bytes per account`);
});

test.run();
