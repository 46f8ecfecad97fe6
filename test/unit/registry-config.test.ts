import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dockerAuthConfig } from '../../functions/docker-auth-config.ts';
import { registryConfig } from '../../functions/registry-config.ts';
import type { ImageRegistry } from '../../functions/types.ts';

const hostname = 'registry.infra.svc.example.org';

test('registryConfig: distribution v3 config with token auth, filesystem storage and health', () => {
  const parsed = load(registryConfig({ hostname, httpSecret: 's3cr3t: "quoted"' })) as Record<string, any>;
  assert.is(parsed.version, '0.1');
  assert.is(parsed.log.level, 'info');
  assert.equal(parsed.storage, {
    filesystem: { rootdirectory: '/var/lib/registry' },
    delete: { enabled: true },
    maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false } },
  });
  assert.equal(parsed.http, { addr: '127.0.0.1:5000', secret: 's3cr3t: "quoted"', headers: { 'X-Content-Type-Options': ['nosniff'] }, debug: { addr: '127.0.0.1:5002', prometheus: { enabled: true, path: '/metrics' } } });
  assert.equal(parsed.auth.token, {
    realm: 'https://registry.infra.svc.example.org/auth/token',
    service: hostname,
    issuer: 'https://registry.infra.svc.example.org/auth/token',
    jwks: '/etc/registry-auth/trusted-token-keys.jwks',
    signingalgorithms: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'],
  });
  assert.equal(parsed.health, { storagedriver: { enabled: true, interval: '10s', threshold: 3 } });
});

test('registryConfig: the token issuer matches docker_auth; trusted keys as a JWKS; no HMAC algorithms', () => {
  const registry: ImageRegistry = { apiVersion: 'v', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra' } };
  const auth = load(dockerAuthConfig({ registry, accounts: [], hostname, now: new Date() })) as Record<string, any>;
  const reg = load(registryConfig({ hostname, httpSecret: 'x' })) as Record<string, any>;
  assert.is(reg.auth.token.issuer, auth.token.issuer);
  // a rootcertbundle holds only one EC key per curve in registry v3.0.0 (functions/token-keys.ts)
  assert.is(reg.auth.token.rootcertbundle, undefined);
  assert.is(reg.auth.token.jwks, '/etc/registry-auth/trusted-token-keys.jwks');
  assert.ok((reg.auth.token.signingalgorithms as string[]).every((alg) => !alg.startsWith('HS')));
});

test('registryConfig: address override, deterministic, and a secret is required', () => {
  const text = registryConfig({ hostname, httpSecret: 'x', address: '127.0.0.3:5000' });
  assert.is((load(text) as any).http.addr, '127.0.0.3:5000');
  assert.is((load(text) as any).http.debug.addr, '127.0.0.3:5002', 'the debug server on the same host');
  assert.is(registryConfig({ hostname, httpSecret: 'x', address: '127.0.0.3:5000' }), text);
  assert.throws(() => registryConfig({ hostname, httpSecret: '' }), /secret/);
});

test('registryConfig: Prometheus metrics on the debug server, which listens on loopback only (it also has pprof and /debug/health/down)', () => {
  const http = (load(registryConfig({ hostname, httpSecret: 'x' })) as any).http;
  assert.equal(http.debug, { addr: '127.0.0.1:5002', prometheus: { enabled: true, path: '/metrics' } });
  assert.is((load(registryConfig({ hostname, httpSecret: 'x', metricsAddress: '127.0.0.9:7000' })) as any).http.debug.addr, '127.0.0.9:7000');
});

test.run();
