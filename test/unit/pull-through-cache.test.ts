import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1PodSpec } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selfSignedCa } from '../../functions/certificates.ts';
import { defaultImageRegistry } from '../../functions/defaults.ts';
import { defaultAcl, dockerAuthConfig } from '../../functions/docker-auth-config.ts';
import { applyJsonPatch } from '../../functions/json-patch.ts';
import { nginxConfig } from '../../functions/nginx-config.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import {
  ANONYMOUS_ACCOUNT,
  PROXY_PASSWORD_ENV,
  PROXY_USERNAME_ENV,
  UPSTREAM_CA_DIR,
  allowsAnonymousPulls,
  anonymousAcl,
  mergeContainerEnv,
  mirrorHosts,
  proxyConfig,
  pushRefusal,
  registryUpstream,
} from '../../functions/pull-through-cache.ts';
import { desiredConfigSecrets, desiredNginxConfigMap, desiredStatefulSet, ROLLOUT_CHECKSUM_ANNOTATION } from '../../functions/registry-objects.ts';
import { STORAGE_CA_DIR } from '../../functions/registry-storage.ts';
import { trustedTokenKey, type TokenKeys } from '../../functions/token-keys.ts';
import type { AclEntry, ImageRegistry, ProxySpec } from '../../functions/types.ts';
import { validateImageRegistry } from '../../functions/validation/registry.ts';
import { newRsaKeyPem } from '../support/pki.ts';

const HASH = '$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
const hostname = 'cache.infra.svc.example.org';
const now = new Date('2025-01-02T00:00:00Z');
const HUB = 'https://registry-1.docker.io';

function registry(spec: ImageRegistry['spec'] = {}): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'cache', namespace: 'infra', uid: 'uid-1', generation: 1 }, spec };
}
/** a registry as the webhook sees it: any JSON */
function raw(spec: unknown) {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'cache', namespace: 'infra' }, spec };
}
const cache = (proxy: Record<string, unknown>, rest: Record<string, unknown> = {}) => raw({ proxy: { remoteURL: HUB, ...proxy }, ...rest });

// --- pull-through-cache.ts ------------------------------------------------------------------

test('proxyConfig: the upstream\'s origin and ttl (default 168h), never credentials', () => {
  assert.equal(proxyConfig({ remoteURL: HUB }), { remoteurl: HUB, ttl: '168h' });
  assert.equal(proxyConfig({ remoteURL: 'https://Registry.Example.org:5000/', ttl: '0', credentialsSecret: { name: 'hub' } }), { remoteurl: 'https://registry.example.org:5000', ttl: '0' });
  assert.equal(proxyConfig({ remoteURL: 'http://upstream.local:80', ttl: '24h' }), { remoteurl: 'http://upstream.local', ttl: '24h' });
});

test('registryUpstream: nothing for a registry without spec.proxy, nor for a cache without credentials or CA', () => {
  const empty = { env: [], volumes: [], volumeMounts: [], readAtStart: [] };
  assert.equal(registryUpstream(registry()), empty);
  assert.equal(registryUpstream(registry({ proxy: { remoteURL: HUB } })), empty);
  assert.equal(registryUpstream(registry({ proxy: { remoteURL: HUB, ca: {} } })), empty, 'a CA without secretName or configMapName');
});

test('registryUpstream: credentials as secretKeyRef env (default keys username/password), the CA\'s volume, what rolls the pods', () => {
  const up = registryUpstream(registry({ proxy: { remoteURL: HUB, credentialsSecret: { name: 'hub' }, ca: { secretName: 'hub-ca' } } }));
  assert.equal(up.env, [
    { name: PROXY_USERNAME_ENV, valueFrom: { secretKeyRef: { name: 'hub', key: 'username' } } },
    { name: PROXY_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: 'hub', key: 'password' } } },
    { name: 'SSL_CERT_DIR', value: '/etc/registry-upstream-ca' },
  ]);
  assert.equal([PROXY_USERNAME_ENV, PROXY_PASSWORD_ENV], ['REGISTRY_PROXY_USERNAME', 'REGISTRY_PROXY_PASSWORD']);
  assert.equal(up.volumes, [{ name: 'upstream-ca', secret: { secretName: 'hub-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o440 } }]);
  assert.equal(up.volumeMounts, [{ name: 'upstream-ca', mountPath: UPSTREAM_CA_DIR, readOnly: true }]);
  assert.equal(up.readAtStart, [
    { kind: 'Secret', name: 'hub', nameField: 'spec.proxy.credentialsSecret.name', reason: 'UpstreamCredentialsNotFound', key: 'username', keyField: 'spec.proxy.credentialsSecret.usernameKey' },
    { kind: 'Secret', name: 'hub', nameField: 'spec.proxy.credentialsSecret.name', reason: 'UpstreamCredentialsNotFound', key: 'password', keyField: 'spec.proxy.credentialsSecret.passwordKey' },
    { kind: 'Secret', name: 'hub-ca', nameField: 'spec.proxy.ca.secretName', reason: 'UpstreamCANotFound', key: 'ca.crt', keyField: 'spec.proxy.ca.key' },
  ]);

  const custom = registryUpstream(registry({ proxy: { remoteURL: HUB, credentialsSecret: { name: 'hub', usernameKey: 'user', passwordKey: 'token' }, ca: { configMapName: 'bundle', key: 'root.pem' } } }));
  assert.equal(custom.env.slice(0, 2).map((e) => e.valueFrom?.secretKeyRef?.key), ['user', 'token']);
  assert.ok(custom.env.every((e) => e.name === 'SSL_CERT_DIR' || e.value === undefined), 'credentials never as a value');
  assert.equal(custom.volumes, [{ name: 'upstream-ca', configMap: { name: 'bundle', items: [{ key: 'root.pem', path: 'ca.crt' }], defaultMode: 0o444 } }]);
  assert.equal(custom.readAtStart[2], { kind: 'ConfigMap', name: 'bundle', nameField: 'spec.proxy.ca.configMapName', reason: 'UpstreamCANotFound', key: 'root.pem', keyField: 'spec.proxy.ca.key' });
});

test('mergeContainerEnv: SSL_CERT_DIR of both lists joined with \':\' (last), every other variable kept in order', () => {
  assert.equal(mergeContainerEnv(
    [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, { name: 'SSL_CERT_DIR', value: '/a' }, { name: 'X', value: '1' }],
    [{ name: 'Y', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }, { name: 'SSL_CERT_DIR', value: '/b' }],
  ), [
    { name: 'OTEL_TRACES_EXPORTER', value: 'none' },
    { name: 'X', value: '1' },
    { name: 'Y', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
    { name: 'SSL_CERT_DIR', value: '/a:/b' },
  ]);
  assert.equal(mergeContainerEnv([{ name: 'SSL_CERT_DIR', value: '/a' }], []), [{ name: 'SSL_CERT_DIR', value: '/a' }]);
  assert.equal(mergeContainerEnv([], [{ name: 'SSL_CERT_DIR', value: '/b' }]), [{ name: 'SSL_CERT_DIR', value: '/b' }]);
  assert.equal(mergeContainerEnv([{ name: 'A', value: '1' }], [{ name: 'B', value: '2' }]), [{ name: 'A', value: '1' }, { name: 'B', value: '2' }]);
  assert.equal(mergeContainerEnv([], []), []);
  const first = [{ name: 'SSL_CERT_DIR', value: '/a' }];
  mergeContainerEnv(first, [{ name: 'SSL_CERT_DIR', value: '/b' }]);
  assert.equal(first, [{ name: 'SSL_CERT_DIR', value: '/a' }], 'input not mutated');
});

test('pushRefusal: 405 with distribution\'s JSON error naming the upstream\'s origin', () => {
  const refusal = pushRefusal({ remoteURL: 'https://registry-1.docker.io/' });
  assert.is(refusal.status, 405);
  assert.equal(JSON.parse(refusal.body), {
    errors: [{
      code: 'UNSUPPORTED',
      message: 'this registry is a pull-through cache of https://registry-1.docker.io: it refuses pushes and deletes; push to a registry without spec.proxy',
      detail: null,
    }],
  });
});

test('anonymousAcl / allowsAnonymousPulls: one pull rule per network, then nothing else for anonymous; none without networks', () => {
  const networks = ['10.244.0.0/16', '192.168.1.7'];
  const r = registry({ proxy: { remoteURL: HUB, anonymousPull: { networks } } });
  assert.equal(anonymousAcl(r), [
    { match: { account: '', type: 'repository', ip: '10.244.0.0/16' }, actions: ['pull'], comment: 'anonymous pulls from 10.244.0.0/16 (spec.proxy.anonymousPull)' },
    { match: { account: '', type: 'repository', ip: '192.168.1.7' }, actions: ['pull'], comment: 'anonymous pulls from 192.168.1.7 (spec.proxy.anonymousPull)' },
    { match: { account: '' }, actions: [], comment: 'anonymous: nothing else' },
  ]);
  assert.is(ANONYMOUS_ACCOUNT, '');
  assert.is(allowsAnonymousPulls(r), true);
  for (const other of [registry(), registry({ proxy: { remoteURL: HUB } }), registry({ proxy: { remoteURL: HUB, anonymousPull: { networks: [] } } })]) {
    assert.equal(anonymousAcl(other), []);
    assert.is(allowsAnonymousPulls(other), false);
  }
});

test('mirrorHosts: lower case, unique, sorted; none without mirrorFor', () => {
  assert.equal(mirrorHosts(registry({ proxy: { remoteURL: HUB, mirrorFor: ['Quay.io', 'docker.io', 'DOCKER.io', 'ghcr.io:443'] } })), ['docker.io', 'ghcr.io:443', 'quay.io']);
  assert.equal(mirrorHosts(registry({ proxy: { remoteURL: HUB } })), []);
  assert.equal(mirrorHosts(registry()), []);
});

// --- defaults -------------------------------------------------------------------------------

test('defaultImageRegistry: spec.proxy gets ttl 168h, the credentials\' keys and the CA\'s key; present values kept', () => {
  const obj = raw({ proxy: { remoteURL: HUB, credentialsSecret: { name: 'hub' }, ca: { configMapName: 'bundle' } } });
  const spec = applyJsonPatch(obj, defaultImageRegistry(obj)).spec as any;
  assert.equal(spec.proxy, { remoteURL: HUB, ttl: '168h', credentialsSecret: { name: 'hub', usernameKey: 'username', passwordKey: 'password' }, ca: { configMapName: 'bundle', key: 'ca.crt' } });
  const plain = raw({ proxy: { remoteURL: HUB } });
  assert.equal((applyJsonPatch(plain, defaultImageRegistry(plain)).spec as any).proxy, { remoteURL: HUB, ttl: '168h' }, 'no credentials or CA added');
  const set = raw({ proxy: { remoteURL: HUB, ttl: '0', credentialsSecret: { name: 'hub', usernameKey: 'u', passwordKey: 'p' }, ca: { secretName: 'c', key: 'k' } } });
  assert.equal((applyJsonPatch(set, defaultImageRegistry(set)).spec as any).proxy, { remoteURL: HUB, ttl: '0', credentialsSecret: { name: 'hub', usernameKey: 'u', passwordKey: 'p' }, ca: { secretName: 'c', key: 'k' } });
  const bucket = raw({ proxy: { remoteURL: HUB }, storage: { s3: { bucket: 'images' } } });
  assert.equal((applyJsonPatch(bucket, defaultImageRegistry(bucket)).spec as any).proxy, { remoteURL: HUB, ttl: '168h' }, 'with a bucket too');
  const none = raw({});
  assert.is((applyJsonPatch(none, defaultImageRegistry(none)).spec as any).proxy, undefined, 'no spec.proxy added to a registry');
});

// --- validation -----------------------------------------------------------------------------

const NEW_REGISTRY = 'create a new ImageRegistry instead: a cache holds what its upstream served under the upstream\'s names';

test('validateImageRegistry: a full valid cache passes, a defaulted one too', () => {
  const full = cache({
    credentialsSecret: { name: 'hub', usernameKey: 'user', passwordKey: 'token' },
    ca: { secretName: 'hub-ca', key: 'ca.crt' },
    ttl: '72h',
    mirrorFor: ['docker.io', 'Quay.io:443'],
    anonymousPull: { networks: ['10.244.0.0/16', 'fd00::/8', '192.168.1.7'], includePrivateUpstreamImages: true },
  }, { replicas: 1, garbageCollection: { retention: [] } });
  assert.equal(validateImageRegistry(full), []);
  assert.equal(validateImageRegistry(full, full), [], 'an unchanged update');
  const defaulted = applyJsonPatch(cache({}), defaultImageRegistry(cache({})));
  assert.equal(validateImageRegistry(defaulted), []);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'http://upstream.local:5000/' })), [], 'http and a trailing slash');
});

test('validateImageRegistry: remoteURL missing, with a path, with credentials, of another scheme', () => {
  const example = 'must be the upstream registry\'s URL, e.g. https://registry-1.docker.io';
  assert.equal(validateImageRegistry(raw({ proxy: {} })), [`spec.proxy.remoteURL: required; ${example}`]);
  assert.equal(validateImageRegistry(cache({ remoteURL: '' })), [`spec.proxy.remoteURL: required; ${example}`]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'not a url' })), [`spec.proxy.remoteURL: ${example}`]);
  const pathOnly = 'spec.proxy.remoteURL: must be the server only (scheme, host, port), without path or query: a cache mirrors a whole registry';
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://registry.example.org/v2/library' })), [pathOnly]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://registry.example.org/?x=1' })), [pathOnly]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://registry.example.org/#x' })), [pathOnly]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://user:secret@registry.example.org' })), [
    'spec.proxy.remoteURL: must not hold credentials; name a Secret in spec.proxy.credentialsSecret instead',
  ]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://user@registry.example.org' })), [
    'spec.proxy.remoteURL: must not hold credentials; name a Secret in spec.proxy.credentialsSecret instead',
  ]);
  assert.equal(validateImageRegistry(cache({ remoteURL: 'ftp://registry.example.org' })), [
    'spec.proxy.remoteURL: must start with https:// (or http:// for an upstream without TLS)',
  ]);
  assert.equal(validateImageRegistry(raw({ proxy: 'https://registry-1.docker.io' })), [
    'spec.proxy: must be an object with remoteURL, credentialsSecret, ca, ttl, mirrorFor and anonymousPull',
  ]);
});

test('validateImageRegistry: remoteURL is immutable; spec.proxy can be neither added nor removed', () => {
  const old = cache({});
  assert.equal(validateImageRegistry(cache({ remoteURL: 'https://quay.io' }), old), [
    `spec.proxy.remoteURL: is immutable (was "${HUB}"); ${NEW_REGISTRY}`,
  ]);
  assert.equal(validateImageRegistry(cache({ ttl: '1h', anonymousPull: { networks: ['10.0.0.0/8'] } }), old), [], 'other fields may change');
  assert.equal(validateImageRegistry(cache({}), raw({})), [`spec.proxy: cannot be added to an existing registry; ${NEW_REGISTRY}`]);
  assert.equal(validateImageRegistry(cache({}), raw(undefined)), [`spec.proxy: cannot be added to an existing registry; ${NEW_REGISTRY}`], 'old without spec');
  assert.equal(validateImageRegistry(raw({}), old), [`spec.proxy: cannot be removed from an existing registry; ${NEW_REGISTRY}`]);
  assert.equal(validateImageRegistry(raw({ proxy: null }), old), [`spec.proxy: cannot be removed from an existing registry; ${NEW_REGISTRY}`]);
  assert.equal(validateImageRegistry(raw({}), raw({})), [], 'a registry stays a registry');
});

test('validateImageRegistry: mirrorFor needs anonymousPull; hosts are image hosts, once each', () => {
  const needs = 'spec.proxy.mirrorFor: needs spec.proxy.anonymousPull.networks: the kubelet sends no pull secret to a mirror, so node pulls reach the cache without credentials';
  assert.equal(validateImageRegistry(cache({ mirrorFor: ['docker.io'] })), [needs]);
  assert.equal(validateImageRegistry(cache({ mirrorFor: ['docker.io'], anonymousPull: { networks: ['10.0.0.0/8'] } })), []);
  assert.equal(validateImageRegistry(cache({ mirrorFor: [] })), [], 'an empty list needs nothing');
  const anon = { networks: ['10.0.0.0/8'] };
  assert.equal(validateImageRegistry(cache({ mirrorFor: ['docker.io', 'Docker.io', '../etc'], anonymousPull: anon })), [
    'spec.proxy.mirrorFor[1]: Docker.io is listed twice',
    'spec.proxy.mirrorFor[2]: must be an image host as in image references (a DNS name, optionally :port), e.g. docker.io',
  ]);
  assert.equal(validateImageRegistry(cache({ mirrorFor: 'docker.io', anonymousPull: anon })), ['spec.proxy.mirrorFor: must be a list of image hosts, e.g. [docker.io]']);
});

test('validateImageRegistry: anonymousPull through credentials needs includePrivateUpstreamImages: true; networks are IPs or CIDRs', () => {
  const credentials = { name: 'hub' };
  const include = 'spec.proxy.anonymousPull.includePrivateUpstreamImages: must be true to allow pulls without credentials through spec.proxy.credentialsSecret: every image the upstream account can read, private ones included, becomes pullable from these networks';
  assert.equal(validateImageRegistry(cache({ credentialsSecret: credentials, anonymousPull: { networks: ['10.0.0.0/8'] } })), [include]);
  assert.equal(validateImageRegistry(cache({ credentialsSecret: credentials, anonymousPull: { networks: ['10.0.0.0/8'], includePrivateUpstreamImages: false } })), [include]);
  assert.equal(validateImageRegistry(cache({ credentialsSecret: credentials, anonymousPull: { networks: ['10.0.0.0/8'], includePrivateUpstreamImages: true } })), []);
  assert.equal(validateImageRegistry(cache({ anonymousPull: { networks: ['10.0.0.0/8'] } })), [], 'without credentials nothing private is reachable');
  assert.equal(validateImageRegistry(cache({ anonymousPull: { networks: ['10.0.0.0/8', '10.0.0.0/33', 'cluster'] } })), [
    'spec.proxy.anonymousPull.networks[1]: must be an IP address or CIDR, e.g. 10.244.0.0/16',
    'spec.proxy.anonymousPull.networks[2]: must be an IP address or CIDR, e.g. 10.244.0.0/16',
  ]);
  assert.equal(validateImageRegistry(cache({ anonymousPull: { networks: [] } })), [
    'spec.proxy.anonymousPull.networks: required; the client addresses (CIDRs) that may pull without credentials, e.g. the cluster\'s pod and node networks',
  ]);
  assert.equal(validateImageRegistry(cache({ anonymousPull: { networks: ['10.0.0.0/8'], includePrivateUpstreamImages: 'yes' } })), [
    'spec.proxy.anonymousPull.includePrivateUpstreamImages: must be true or false',
  ]);
});

test('validateImageRegistry: a cache runs one replica and has no retention', () => {
  const bucket = { storage: { s3: { bucket: 'images' } } };
  assert.equal(validateImageRegistry(cache({}, { ...bucket, replicas: 2 })), [
    'spec.replicas: a pull-through cache runs one replica: distribution keeps the expiry schedule of cached content in one file that several replicas would overwrite (content that never expires)',
  ]);
  assert.equal(validateImageRegistry(raw({ ...bucket, replicas: 2 })), [], 'a registry that is no cache may have two');
  assert.equal(validateImageRegistry(cache({}, { ...bucket, replicas: 1 })), []);
  assert.equal(validateImageRegistry(cache({}, { ...bucket, replicas: 0 })), []);
  const retention = { garbageCollection: { retention: [{ repositories: '**', keepLast: 3 }] } };
  const problems = validateImageRegistry(cache({}, retention));
  assert.ok(problems.includes('spec.garbageCollection.retention: a pull-through cache has no retention: its tags are the upstream\'s, and cached content expires after spec.proxy.ttl (garbage collection then reclaims the space)'), JSON.stringify(problems));
  assert.equal(problems.filter((p) => p.startsWith('spec.proxy')), []);
});

test('validateImageRegistry: ttl is a duration not below zero; 0 keeps content forever', () => {
  const bad = 'spec.proxy.ttl: must be a duration such as 168h (0 keeps cached content forever)';
  for (const ttl of ['-1h', 'abc', '', '168', 168]) assert.equal(validateImageRegistry(cache({ ttl })), [bad], JSON.stringify(ttl));
  for (const ttl of ['0', '0s', '168h', '1h30m']) assert.equal(validateImageRegistry(cache({ ttl })), [], ttl);
});

test('validateImageRegistry: credentialsSecret and ca are checked with their paths', () => {
  assert.equal(validateImageRegistry(cache({ credentialsSecret: {} })), ['spec.proxy.credentialsSecret.name: required; the name of a Secret in the registry\'s namespace']);
  assert.equal(validateImageRegistry(cache({ credentialsSecret: { name: 'hub', usernameKey: 'k', passwordKey: 'k' } })), ['spec.proxy.credentialsSecret.passwordKey: must differ from usernameKey']);
  assert.equal(validateImageRegistry(cache({ credentialsSecret: { name: 'hub', usernameKey: 'a/b' } })), ['spec.proxy.credentialsSecret.usernameKey: must be a key name (letters, digits, \'-\', \'_\' and \'.\')']);
  assert.equal(validateImageRegistry(cache({ ca: { secretName: 'a', configMapName: 'b' } })), ['spec.proxy.ca: set exactly one of secretName and configMapName']);
  assert.equal(validateImageRegistry(cache({ ca: {} })), ['spec.proxy.ca: set exactly one of secretName and configMapName']);
  assert.equal(validateImageRegistry(cache({ ca: { secretName: 'Bad_Name' } })), ['spec.proxy.ca.secretName: must be a Secret name (DNS-1123 subdomain)']);
});

// --- docker_auth ----------------------------------------------------------------------------

type Parsed = { users: Record<string, { password?: string; labels?: Record<string, string[]> }>; acl: AclEntry[] };

test('dockerAuthConfig of a cache with anonymous pulls: the anonymous user without password, its rules after the confirmation logins\'', () => {
  const acl: AclEntry[] = [{ match: { type: 'repository' }, actions: ['pull'] }];
  const r = registry({ proxy: { remoteURL: HUB, anonymousPull: { networks: ['10.244.0.0/16', 'fd00::/8'] } }, auth: { acl } });
  const text = dockerAuthConfig({ registry: r, accounts: [], hostname, now, confirmationLogins: [{ name: '_confirm.1.a', passwordHash: HASH }] });
  const parsed = load(text) as Parsed;
  assert.equal(parsed.users, { '': {}, '_confirm.1.a': { password: HASH, labels: {} } });
  assert.equal(parsed.acl.map(({ match, actions }) => ({ match, actions })), [
    { match: { account: '_confirm.*' }, actions: [] },
    { match: { account: '', type: 'repository', ip: '10.244.0.0/16' }, actions: ['pull'] },
    { match: { account: '', type: 'repository', ip: 'fd00::/8' }, actions: ['pull'] },
    { match: { account: '' }, actions: [] },
    { match: { type: 'repository' }, actions: ['pull'] },
  ]);
  // without confirmation logins the anonymous rules come first, before the default ACL
  const plain = load(dockerAuthConfig({ registry: registry({ proxy: { remoteURL: HUB, anonymousPull: { networks: ['10.0.0.0/8'] } } }), accounts: [], hostname, now })) as Parsed;
  assert.equal(plain.users, { '': {} });
  assert.equal(plain.acl.map(({ match, actions }) => ({ match, actions })), [
    { match: { account: '', type: 'repository', ip: '10.0.0.0/8' }, actions: ['pull'] },
    { match: { account: '' }, actions: [] },
    ...defaultAcl().map(({ match, actions }) => ({ match, actions })),
  ]);
  // a cache without anonymousPull: no anonymous user, no rules
  const closed = load(dockerAuthConfig({ registry: registry({ proxy: { remoteURL: HUB } }), accounts: [], hostname, now })) as Parsed;
  assert.equal(closed.users, {});
  assert.equal(closed.acl, defaultAcl());
});

// --- nginx ----------------------------------------------------------------------------------

const refusal = pushRefusal({ remoteURL: HUB });

test('nginxConfig with pushRefusal: /v2/ sends everything but GET and HEAD to @push_refused, which answers 405 with the JSON body', () => {
  const conf = nginxConfig({ pushRefusal: refusal });
  const v2 = conf.slice(conf.indexOf('location /v2/ {'), conf.indexOf('\n    }', conf.indexOf('location /v2/ {')));
  assert.ok(v2.includes([
    '      if ($request_method !~ ^(GET|HEAD)$) {',
    '        return 405;',
    '      }',
    '      error_page 405 @push_refused;',
  ].join('\n')), v2);
  const at = conf.indexOf('location @push_refused {');
  assert.ok(at > 0);
  assert.is(conf.slice(at, conf.indexOf('\n    }', at) + 6), [
    'location @push_refused {',
    '      default_type application/json;',
    '      add_header Docker-Distribution-Api-Version registry/2.0 always;',
    `      return 405 '${refusal.body}';`,
    '    }',
  ].join('\n'));
  // a cache's freeze covers every request (its pulls write too): no method check of its own, and
  // the freeze comes first, so a frozen cache answers a write 503 (the freeze probe sees it)
  const methodChecks = (text: string) => text.split('\n').filter((line) => line.trim() === 'if ($request_method !~ ^(GET|HEAD)$) {').length;
  assert.is(methodChecks(conf), 1);
  assert.ok(v2.indexOf('set $freeze_write "${freeze_write}-write";') < v2.indexOf('return 405;'), 'the freeze before the refusal');
  assert.ok(v2.includes('      set $freeze_write "${freeze_write}-write";\n      if ($freeze_write = "frozen-write") {'), v2);
  const plain = nginxConfig();
  assert.is(methodChecks(plain), 1);
  assert.not.ok(plain.includes('return 405'));
  assert.not.ok(plain.includes('error_page 405'));
  assert.not.ok(plain.includes('@push_refused'));
  assert.throws(() => nginxConfig({ pushRefusal: { status: 405, body: "it's" } }), /unsafe push refusal/);
  assert.throws(() => nginxConfig({ pushRefusal: { status: 405, body: '$uri' } }), /unsafe push refusal/);
});

test('desiredNginxConfigMap: a cache\'s nginx refuses pushes, a registry\'s does not', () => {
  const data = desiredNginxConfigMap(registry({ proxy: { remoteURL: HUB } })).data ?? {};
  assert.equal(Object.keys(data).sort(), ['nginx-ipv4.conf', 'nginx.conf']);
  for (const text of Object.values(data)) assert.ok(text.includes(`return 405 '${refusal.body}';`));
  for (const text of Object.values(desiredNginxConfigMap(registry()).data ?? {})) assert.not.ok(text.includes('@push_refused'));
});

if (existsSync('/usr/sbin/nginx')) {
  test('nginx -t accepts the configuration of a cache', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nginx-cache-test-'));
    try {
      const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      writeFileSync(join(dir, 'tls.key'), key);
      writeFileSync(join(dir, 'tls.crt'), selfSignedCa({ commonName: 'nginx test', keyPem: key, now: new Date(), serial: '01', validDays: 1 }));
      const paths = { tmpDir: dir, tlsCertPath: join(dir, 'tls.crt'), tlsKeyPath: join(dir, 'tls.key'), accessLog: join(dir, 'access.log') };
      const file = join(dir, 'nginx.conf');
      writeFileSync(file, nginxConfig({ listen: ['127.0.0.1:18443'], ...paths, pushRefusal: refusal }));
      // -t parses and checks, it binds nothing
      const out = execFileSync('/usr/sbin/nginx', ['-t', '-e', 'stderr', '-p', dir, '-c', file, '-g', 'daemon off;'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.is(out, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// --- registry objects -----------------------------------------------------------------------

const config = operatorConfigFromEnv({ OPERATOR_IMAGE_NGINX: 'mirror/nginx:1', OPERATOR_IMAGE_REGISTRY: 'mirror/registry:3', OPERATOR_IMAGE_AUTH: 'mirror/auth:1' });
const options = { tlsSecretName: 'cache-tls', templateAnnotations: { [ROLLOUT_CHECKSUM_ANNOTATION]: 'abc' } };
const proxy: ProxySpec = { remoteURL: 'https://registry.example.org/', ttl: '24h', credentialsSecret: { name: 'hub', usernameKey: 'user', passwordKey: 'token' }, ca: { secretName: 'hub-ca' } };
const bucketCache = registry({ proxy, storage: { s3: { bucket: 'images', endpoint: 'https://s3.storage.svc:9000', credentialsSecret: { name: 's3' }, ca: { configMapName: 's3-ca' } } } });

test('desiredStatefulSet of a cache with a bucket: upstream credentials as secretKeyRef, both CA directories, the upstream CA mounted', () => {
  const pod = desiredStatefulSet(bucketCache, config, options).spec?.template.spec as V1PodSpec;
  const reg = pod.containers.find((c) => c.name === 'registry');
  const env = reg?.env ?? [];
  assert.equal(env.find((e) => e.name === PROXY_USERNAME_ENV), { name: 'REGISTRY_PROXY_USERNAME', valueFrom: { secretKeyRef: { name: 'hub', key: 'user' } } });
  assert.equal(env.find((e) => e.name === PROXY_PASSWORD_ENV), { name: 'REGISTRY_PROXY_PASSWORD', valueFrom: { secretKeyRef: { name: 'hub', key: 'token' } } });
  assert.equal(env.filter((e) => e.name.startsWith('REGISTRY_PROXY_')).map((e) => e.value), [undefined, undefined], 'never a value');
  assert.equal(env.filter((e) => e.name === 'SSL_CERT_DIR'), [{ name: 'SSL_CERT_DIR', value: `${STORAGE_CA_DIR}:${UPSTREAM_CA_DIR}` }], 'one variable with both');
  assert.is(`${STORAGE_CA_DIR}:${UPSTREAM_CA_DIR}`, '/etc/registry-storage-ca:/etc/registry-upstream-ca');
  assert.equal(env.filter((e) => e.valueFrom).map((e) => `${e.name}=${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}`), [
    'REGISTRY_STORAGE_S3_ACCESSKEY=s3/AWS_ACCESS_KEY_ID',
    'REGISTRY_STORAGE_S3_SECRETKEY=s3/AWS_SECRET_ACCESS_KEY',
    'REGISTRY_PROXY_USERNAME=hub/user',
    'REGISTRY_PROXY_PASSWORD=hub/token',
  ]);
  assert.equal(reg?.volumeMounts?.filter((m) => m.name.endsWith('-ca')), [
    { name: 'storage-ca', mountPath: STORAGE_CA_DIR, readOnly: true },
    { name: 'upstream-ca', mountPath: UPSTREAM_CA_DIR, readOnly: true },
  ]);
  assert.equal(pod.volumes?.find((v) => v.name === 'upstream-ca'), { name: 'upstream-ca', secret: { secretName: 'hub-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o440 } });
  assert.equal(pod.volumes?.filter((v) => v.name === 'upstream-ca').length, 1);
  for (const other of pod.containers.filter((c) => c.name !== 'registry')) {
    assert.not.ok(other.env?.some((e) => e.name.startsWith('REGISTRY_PROXY_')), `${other.name} gets no upstream credentials`);
    assert.not.ok(other.volumeMounts?.some((m) => m.name === 'upstream-ca'), `${other.name} gets no upstream CA`);
  }
});

test('desiredStatefulSet of a cache with a volume: the upstream CA alone in SSL_CERT_DIR; a registry without proxy has no upstream parts', () => {
  const pod = desiredStatefulSet(registry({ proxy: { remoteURL: HUB, ca: { configMapName: 'bundle' } } }), config, options).spec?.template.spec as V1PodSpec;
  const env = pod.containers.find((c) => c.name === 'registry')?.env ?? [];
  assert.equal(env, [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, { name: 'SSL_CERT_DIR', value: UPSTREAM_CA_DIR }]);
  const plainPod = desiredStatefulSet(registry(), config, options).spec?.template.spec as V1PodSpec;
  assert.equal(plainPod.containers.find((c) => c.name === 'registry')?.env, [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }]);
  assert.not.ok(plainPod.volumes?.some((v) => v.name === 'upstream-ca'));
});

const rsaTokenKey = newRsaKeyPem().privateKeyPem;
const rsaToken = { certPem: selfSignedCa({ commonName: 'token signer', keyPem: rsaTokenKey, now, serial: '01' }), keyPem: rsaTokenKey };
const tokenKeys: TokenKeys = { active: rsaToken, trusted: [trustedTokenKey(rsaToken.certPem)] };

test('desiredConfigSecrets of a cache: config.yml has proxy {remoteurl, ttl} and no upstream credentials anywhere', () => {
  const [auth, reg] = desiredConfigSecrets({ registry: bucketCache, hostname, accounts: [], now, httpSecret: 'h', tokenKeys });
  const text = Buffer.from(reg.data?.['config.yml'] ?? '', 'base64').toString('utf8');
  const parsed = load(text) as Record<string, any>;
  assert.equal(parsed.proxy, { remoteurl: 'https://registry.example.org', ttl: '24h' });
  assert.not.match(text, /username|password/i);
  const authText = Buffer.from(auth.data?.['auth_config.yml'] ?? '', 'base64').toString('utf8');
  assert.not.match(authText, /hub|registry\.example\.org/);
  const defaultTtl = desiredConfigSecrets({ registry: registry({ proxy: { remoteURL: HUB } }), hostname, accounts: [], now, httpSecret: 'h', tokenKeys })[1];
  assert.equal((load(Buffer.from(defaultTtl.data?.['config.yml'] ?? '', 'base64').toString('utf8')) as any).proxy, { remoteurl: HUB, ttl: '168h' });
  const plain = desiredConfigSecrets({ registry: registry(), hostname, accounts: [], now, httpSecret: 'h', tokenKeys })[1];
  assert.is((load(Buffer.from(plain.data?.['config.yml'] ?? '', 'base64').toString('utf8')) as any).proxy, undefined);
});

test.run();
