import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';

test('defaults when nothing is set', () => {
  assert.equal(operatorConfigFromEnv({}), {
    namespace: 'image-registry-operator',
    dnsZone: 'svc.example.org',
    defaultRegistry: { name: 'registry' },
    images: {
      registry: 'registry:3.1.2',
      auth: 'cesanta/docker_auth:1.14.0',
      nginx: 'nginx:1.30.0-alpine',
      operator: 'image-registry-operator:0.1.0',
    },
    rotationIntervalSeconds: 86_400,
    rolloutTimeoutSeconds: 60,
    credentialsTimeoutSeconds: 90,
  });
});

test('the reconcile timeouts: durations of whole seconds, 0s allowed; anything else named in the error', () => {
  const config = operatorConfigFromEnv({ OPERATOR_ROLLOUT_TIMEOUT: '0s', OPERATOR_CREDENTIALS_TIMEOUT: '2m' });
  assert.is(config.rolloutTimeoutSeconds, 0);
  assert.is(config.credentialsTimeoutSeconds, 120);
  assert.throws(() => operatorConfigFromEnv({ OPERATOR_CREDENTIALS_TIMEOUT: 'soon' }), /OPERATOR_CREDENTIALS_TIMEOUT="soon": must be a duration/);
  assert.throws(() => operatorConfigFromEnv({ OPERATOR_ROLLOUT_TIMEOUT: '1.5s' }), /OPERATOR_ROLLOUT_TIMEOUT="1.5s"/);
});

test('every variable is read; empty values mean unset', () => {
  const config = operatorConfigFromEnv({
    OPERATOR_NAMESPACE: 'ops',
    OPERATOR_DNS_ZONE: 'registries.corp.example.',
    OPERATOR_DEFAULT_REGISTRY_NAME: 'central',
    OPERATOR_DEFAULT_REGISTRY_NAMESPACE: 'infra',
    OPERATOR_IMAGE_REGISTRY: 'mirror.local/registry:3.1.2',
    OPERATOR_IMAGE_AUTH: 'mirror.local/docker_auth:1.14.0',
    OPERATOR_IMAGE_NGINX: 'mirror.local/nginx:1.30.0-alpine',
    OPERATOR_IMAGE: 'mirror.local/operator@sha256:abc',
    OPERATOR_ROTATION_INTERVAL: '1h30m',
  });
  assert.is(config.namespace, 'ops');
  assert.is(config.dnsZone, 'registries.corp.example');
  assert.equal(config.defaultRegistry, { name: 'central', namespace: 'infra' });
  assert.is(config.images.operator, 'mirror.local/operator@sha256:abc');
  assert.is(config.images.auth, 'mirror.local/docker_auth:1.14.0');
  assert.is(config.rotationIntervalSeconds, 5400);
  assert.equal(operatorConfigFromEnv({ OPERATOR_DEFAULT_REGISTRY_NAMESPACE: '', OPERATOR_NAMESPACE: ' ' }).defaultRegistry, { name: 'registry' });
});

test('bad values throw an Error naming the variable and value', () => {
  const cases: Record<string, string> = {
    OPERATOR_ROTATION_INTERVAL: '1 day',
    OPERATOR_NAMESPACE: 'Not_A_Namespace',
    OPERATOR_DNS_ZONE: 'bad zone',
    OPERATOR_DEFAULT_REGISTRY_NAME: '1registry',
    OPERATOR_DEFAULT_REGISTRY_NAMESPACE: 'UPPER',
    OPERATOR_IMAGE_NGINX: 'nginx latest',
  };
  for (const [key, value] of Object.entries(cases)) {
    assert.throws(
      () => operatorConfigFromEnv({ [key]: value }),
      (e: Error) => e.message.includes(key) && e.message.includes(JSON.stringify(value)),
      key,
    );
  }
  for (const interval of ['0s', '-1h', '1.5s', '500ms']) {
    assert.throws(() => operatorConfigFromEnv({ OPERATOR_ROTATION_INTERVAL: interval }), /OPERATOR_ROTATION_INTERVAL/, interval);
  }
});

test('all problems are reported at once', () => {
  try {
    operatorConfigFromEnv({ OPERATOR_NAMESPACE: 'X', OPERATOR_ROTATION_INTERVAL: 'soon' });
    assert.unreachable('should throw');
  } catch (error) {
    const message = (error as Error).message;
    assert.match(message, /OPERATOR_NAMESPACE/);
    assert.match(message, /OPERATOR_ROTATION_INTERVAL/);
  }
});

test.run();
