import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { webhookServerConfigFromEnv } from '../../webhooks/server-config.ts';

test('defaults: port 8443 on every address, certificate from the mounted Secret', () => {
  assert.equal(webhookServerConfigFromEnv({}), {
    port: 8443,
    certFile: '/etc/webhook/tls/tls.crt',
    keyFile: '/etc/webhook/tls/tls.key',
    reloadIntervalMs: 60_000,
    shutdownTimeoutMs: 10_000,
  });
});

test('every setting can be overridden; blanks take the default', () => {
  const config = webhookServerConfigFromEnv({
    WEBHOOK_PORT: '9443',
    WEBHOOK_HOST: ' 127.0.0.1 ',
    WEBHOOK_TLS_CERT_FILE: '/tls/cert.pem',
    WEBHOOK_TLS_KEY_FILE: '/tls/key.pem',
    WEBHOOK_TLS_RELOAD_SECONDS: '5',
    WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS: '0',
  });
  assert.equal(config, { port: 9443, host: '127.0.0.1', certFile: '/tls/cert.pem', keyFile: '/tls/key.pem', reloadIntervalMs: 5000, shutdownTimeoutMs: 0 });
  assert.is(webhookServerConfigFromEnv({ WEBHOOK_PORT: '  ', WEBHOOK_HOST: '' }).port, 8443);
  assert.is(webhookServerConfigFromEnv({ WEBHOOK_HOST: '' }).host, undefined);
});

test('bad values: one error naming every variable and value', () => {
  assert.throws(() => webhookServerConfigFromEnv({ WEBHOOK_PORT: '0' }), /WEBHOOK_PORT="0": must be an integer from 1 to 65535/);
  assert.throws(() => webhookServerConfigFromEnv({ WEBHOOK_PORT: '8443x' }), /WEBHOOK_PORT="8443x"/);
  assert.throws(() => webhookServerConfigFromEnv({ WEBHOOK_PORT: '70000' }), /WEBHOOK_PORT/);
  try {
    webhookServerConfigFromEnv({ WEBHOOK_PORT: '-1', WEBHOOK_TLS_RELOAD_SECONDS: '0', WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS: 'soon' });
    assert.unreachable();
  } catch (error) {
    const message = (error as Error).message;
    for (const name of ['WEBHOOK_PORT="-1"', 'WEBHOOK_TLS_RELOAD_SECONDS="0"', 'WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS="soon"']) assert.match(message, name);
  }
});

test.run();
