import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selfSignedCa } from '../../functions/certificates.ts';
import { AUTH_RETRIES, AUTH_RETRY_DELAY_MS, nginxConfig } from '../../functions/nginx-config.ts';

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
  assert.match(conf, /client_max_body_size 0;/);
  assert.match(conf, /chunked_transfer_encoding on;/);
  assert.match(conf, /upstream registry \{\n\s+server 127\.0\.0\.1:5000;/);
  assert.match(conf, /upstream auth \{\n(\s+#.*\n)*\s+server 127\.0\.0\.1:5001 max_fails=0;/);
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
  assert.match(custom, /server 127\.0\.0\.2:5001 max_fails=0;/);
  assert.match(custom, /pid \/run\/x\/nginx\.pid;/);
  assert.match(custom, /default \/certs\/crt;/);
  assert.match(custom, /listen unix:\/run\/x\/auth-retry\.sock;/);
  assert.match(custom, /access_log off;/);
  assert.match(custom, /worker_processes 1;/);
  assert.throws(() => nginxConfig({ listen: ['8443; include /etc/passwd'] }), /unsafe/);
  assert.throws(() => nginxConfig({ listen: [] }), /listen/);
});

test('nginxConfig: /v2/ streams with 64 KiB reads each way (issue 14), never to temp files', () => {
  const v2 = location(conf, '/v2/');
  for (const line of [
    'proxy_request_buffering off;',
    'proxy_buffering off;',
    // responses: 64 KiB per read and TLS write instead of 4 KiB records
    'proxy_buffer_size 64k;',
    // unused with buffering off; nginx -t needs proxy_busy_buffers_size (2 × 64k) < (4 - 1) × 64k
    'proxy_buffers 4 64k;',
    // uploads: 64 KiB per read from the client and write to the registry
    'client_body_buffer_size 64k;',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
  ]) {
    assert.ok(v2.includes(line), line);
  }
  assert.not.match(v2, /proxy_max_temp_file_size|proxy_store|proxy_cache/);
  // the buffers are set for /v2/ only: token requests and probes keep nginx's defaults
  const outside = conf.replace(v2, '');
  assert.not.match(outside, /proxy_buffer_size|client_body_buffer_size|proxy_buffers /);
  assert.match(conf, /upstream registry \{\n\s+server [^\n]+\n\s+keepalive 16;/);
});

test('nginxConfig: the TLS certificate and key are read per handshake (a variable in the file name)', () => {
  // a renewed certificate swapped into the mounted Secret reaches new handshakes without a restart
  assert.match(conf, /^\s+ssl_certificate \$tls_certificate_file;$/m);
  assert.match(conf, /^\s+ssl_certificate_key \$tls_certificate_key_file;$/m);
  assert.match(conf, /map \$ssl_server_name \$tls_certificate_file \{\n\s+default \/etc\/nginx\/tls\/tls\.crt;\n\s+\}/);
  assert.match(conf, /map \$ssl_server_name \$tls_certificate_key_file \{\n\s+default \/etc\/nginx\/tls\/tls\.key;\n\s+\}/);
  assert.not.match(conf, /ssl_certificate(_key)? \//, 'no fixed certificate path (that would be read once, at start)');
  assert.not.match(conf, /ssl_certificate_cache/, 'not in the tests\' nginx 1.22');
});

test('nginxConfig: token requests retry across a docker_auth reload, paced by limit_req', () => {
  const token = location(conf, '= /auth/token');
  assert.ok(token.includes('error_page 502 = @auth_retry_1;'));
  assert.ok(token.includes('recursive_error_pages on;'));
  assert.is(AUTH_RETRIES, 10, 'nginx allows at most 10 internal redirects per request');
  for (let i = 1; i <= AUTH_RETRIES; i++) {
    const retry = location(conf, `@auth_retry_${i}`);
    assert.ok(retry.includes('auth_request /auth-retry-wait;'), `retry ${i} waits its turn`);
    assert.ok(retry.includes('proxy_pass http://auth;'));
    assert.ok(retry.includes('proxy_set_header X-Real-IP $remote_addr;'), `retry ${i} passes the client address`);
    if (i < AUTH_RETRIES) {
      assert.ok(retry.includes(`error_page 502 = @auth_retry_${i + 1};`));
      assert.ok(retry.includes('recursive_error_pages on;'));
    } else {
      assert.not.ok(retry.includes('error_page'), 'the last one answers 502');
    }
  }
  assert.is(AUTH_RETRY_DELAY_MS, 100);
  assert.match(conf, /limit_req_zone \$http_x_auth_retry zone=auth_retry:1m rate=10r\/s;/);
  const wait = location(conf, '= /auth-retry-wait');
  assert.ok(wait.includes('internal;'));
  assert.ok(wait.includes('proxy_pass http://unix:/tmp/auth-retry.sock:/;'));
  assert.ok(wait.includes('proxy_set_header X-Auth-Retry $request_id;'));
  // the pacing server: a unix socket in /tmp, limit_req before a content handler (not `return`,
  // which answers before limit_req runs)
  assert.match(conf, /server \{\n\s+listen unix:\/tmp\/auth-retry\.sock;\n\s+access_log off;\n\s+location \/ \{\n\s+limit_req zone=auth_retry burst=5;\n\s+limit_req_log_level warn;\n(\s+#.*\n)*\s+empty_gif;/);
  assert.match(conf, /upstream auth \{[^}]*max_fails=0;/);
  // one public port: the only TCP listen is 8443
  assert.equal(conf.match(/^\s+listen .*$/gm)?.map((l) => l.trim()), ['listen 8443 ssl;', 'listen unix:/tmp/auth-retry.sock;']);
  // /v2/ never goes through the retries
  assert.equal(location(conf, '/v2/').match(/error_page .*/g), ['error_page 503 /maintenance.json;'], 'only the maintenance refusal');
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
