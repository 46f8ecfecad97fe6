import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selfSignedCa } from '../../functions/certificates.ts';
import { nginxConfig } from '../../functions/nginx-config.ts';

const conf = nginxConfig();

// The locations as written: `location <modifier?> <path> { ...body }`.
function location(text: string, spec: string): string {
  const start = text.indexOf(`location ${spec} {`);
  assert.ok(start >= 0, `location ${spec}`);
  return text.slice(start, text.indexOf('\n    }', start));
}

test('nginxConfig: unprivileged nginx writes only to /tmp and logs to stderr/stdout', () => {
  assert.match(conf, /^pid \/tmp\/nginx\.pid;$/m);
  for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    assert.match(conf, new RegExp(`^\\s+${kind}_temp_path /tmp/${kind};$`, 'm'), kind);
  }
  assert.match(conf, /^error_log stderr warn;$/m);
  assert.match(conf, /access_log \/dev\/stdout json;/);
  assert.not.match(conf, /^\s*user\s/m, 'no user directive: nginx is not root');
  assert.not.match(conf, /daemon/, 'daemon off is passed on the command line');
});

test('nginxConfig: TLS on 8443, unlimited body, /v2/ to the registry with the API version header', () => {
  assert.match(conf, /^\s+listen 8443 ssl;$/m);
  assert.match(conf, /ssl_certificate \/etc\/nginx\/tls\/tls\.crt;/);
  assert.match(conf, /ssl_certificate_key \/etc\/nginx\/tls\/tls\.key;/);
  assert.match(conf, /client_max_body_size 0;/);
  assert.match(conf, /chunked_transfer_encoding on;/);
  assert.match(conf, /upstream registry \{\n\s+server 127\.0\.0\.1:5000;/);
  assert.match(conf, /upstream auth \{\n\s+server 127\.0\.0\.1:5001;/);
  const v2 = location(conf, '/v2/');
  for (const line of [
    'proxy_pass http://registry;',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_request_buffering off;',
    'proxy_buffering off;',
    'add_header Docker-Distribution-Api-Version $docker_distribution_api_version always;',
  ]) {
    assert.ok(v2.includes(line), line);
  }
  assert.match(conf, /map \$upstream_http_docker_distribution_api_version \$docker_distribution_api_version \{\n\s+'' 'registry\/2\.0';/);
});

test('nginxConfig: /auth/token to docker_auth with the client address, health endpoints', () => {
  const auth = location(conf, '= /auth/token');
  assert.ok(auth.includes('proxy_pass http://auth;'));
  assert.ok(auth.includes('proxy_set_header X-Real-IP $remote_addr;'));
  assert.ok(location(conf, '= /health').includes('return 200'));
  assert.ok(location(conf, '= /health/registry').includes('proxy_pass http://registry/;'));
  assert.ok(location(conf, '= /health/auth').includes('proxy_pass http://auth/;'));
  assert.ok(location(conf, '/').includes('return 404;'));
});

test('nginxConfig: parameters for tests on other loopback addresses; unsafe values refused', () => {
  const custom = nginxConfig({
    listen: ['127.0.0.2:443', '[::1]:443'],
    registryAddress: '127.0.0.2:5000',
    authAddress: '127.0.0.2:5001',
    tmpDir: '/run/x/',
    tlsCertPath: '/certs/crt',
    tlsKeyPath: '/certs/key',
    accessLog: 'off',
    workerProcesses: 1,
  });
  assert.match(custom, /listen 127\.0\.0\.2:443 ssl;\n\s+listen \[::1\]:443 ssl;/);
  assert.match(custom, /server 127\.0\.0\.2:5000;/);
  assert.match(custom, /server 127\.0\.0\.2:5001;/);
  assert.match(custom, /pid \/run\/x\/nginx\.pid;/);
  assert.match(custom, /ssl_certificate \/certs\/crt;/);
  assert.match(custom, /access_log off;/);
  assert.match(custom, /worker_processes 1;/);
  assert.throws(() => nginxConfig({ listen: ['8443; include /etc/passwd'] }), /unsafe/);
  assert.throws(() => nginxConfig({ listen: [] }), /listen/);
});

// The real nginx accepts the file (Debian's nginx is installed for the end-to-end tests).
const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
if (nginx.status === 0) {
  test('nginx -t accepts the generated configuration', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nginx-config-test-'));
    try {
      const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      writeFileSync(join(dir, 'tls.key'), key);
      writeFileSync(join(dir, 'tls.crt'), selfSignedCa({ commonName: 'nginx test', keyPem: key, now: new Date(), serial: '01', validDays: 1 }));
      const text = nginxConfig({ listen: ['127.0.0.1:18443'], tmpDir: dir, tlsCertPath: join(dir, 'tls.crt'), tlsKeyPath: join(dir, 'tls.key'), accessLog: join(dir, 'access.log') });
      writeFileSync(join(dir, 'nginx.conf'), text);
      const out = execFileSync('nginx', ['-t', '-e', 'stderr', '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.is(out, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
} else {
  console.log('    nginx not installed: skipping nginx -t');
}

test.run();
