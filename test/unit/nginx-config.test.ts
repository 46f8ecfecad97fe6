import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selfSignedCa } from '../../functions/certificates.ts';
import { DEFAULT_AUTH_ADDRESS } from '../../functions/docker-auth-config.ts';
import { GC_REGISTRY_ADDRESS } from '../../functions/garbage-collection.ts';
import {
  AUTH_RETRIES,
  AUTH_RETRY_ADDRESS,
  AUTH_RETRY_DELAY_MS,
  KERNEL_IPV6_FILE,
  NGINX_COMMAND,
  NGINX_CONFIG_PATH,
  NGINX_IPV4_CONFIG_PATH,
  NGINX_PORT,
  METRICS_PORT,
  NGINX_START_SCRIPT,
  nginxConfig,
  nginxConfigFiles,
} from '../../functions/nginx-config.ts';
import { DEFAULT_REGISTRY_ADDRESS, DEFAULT_REGISTRY_METRICS_ADDRESS } from '../../functions/registry-config.ts';

const conf = nginxConfig();

// The locations as written: `location <modifier?> <path> { ...body }`.
function location(text: string, spec: string): string {
  const start = text.indexOf(`location ${spec} {`);
  assert.ok(start >= 0, `location ${spec}`);
  return text.slice(start, text.indexOf('\n    }', start));
}

test('the metrics port: plain HTTP on both stacks (IPv4 only in the IPv4 file), GET /metrics to the registry\'s loopback debug server and nothing else', () => {
  const server = conf.slice(conf.indexOf('# The metrics port'), conf.indexOf('# Answers after the pacing delay'));
  assert.match(server, /^\s+listen 5080;\n\s+listen \[::\]:5080;$/m);
  assert.not.match(server, /ssl/);
  assert.match(server, /location = \/metrics \{\n\s+limit_except GET \{\n\s+deny all;\n\s+\}\n\s+proxy_pass http:\/\/127\.0\.0\.1:5002\/metrics;/);
  assert.match(server, /location \/ \{\n\s+return 404;/);
  assert.is((server.match(/location /g) ?? []).length, 2, 'no other path: pprof, expvar and /debug/health/down stay on loopback');
  const ipv4 = nginxConfigFiles()['nginx-ipv4.conf'] ?? '';
  assert.match(ipv4, /^\s+listen 5080;$/m);
  assert.not.match(ipv4, /\[::\]/);
  assert.throws(() => nginxConfig({ metricsListen: ['5080; include /etc/passwd'] }), /unsafe/);
});

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
  assert.match(conf, /^\s+listen 8443 ssl;\n\s+listen \[::\]:8443 ssl;$/m);
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
  // the pacing listener keeps its default: loopback TCP, never a socket file in tmpDir
  assert.match(custom, /^\s+listen 127\.0\.0\.1:8081;$/m);
  assert.not.match(custom, /unix:/);
  const paced = nginxConfig({ listen: ['127.0.0.2:443'], authRetryAddress: '127.0.0.2:8081' });
  assert.match(paced, /^\s+listen 127\.0\.0\.2:8081;$/m);
  assert.ok(location(paced, '= /auth-retry-wait').includes('proxy_pass http://127.0.0.2:8081/;'));
  assert.throws(() => nginxConfig({ authRetryAddress: '127.0.0.1:8081; include /etc/passwd' }), /unsafe/);
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
  assert.ok(wait.includes('proxy_pass http://127.0.0.1:8081/;'));
  assert.ok(wait.includes('proxy_set_header X-Auth-Retry $request_id;'));
  // the pacing server: TCP on loopback, limit_req before a content handler (not `return`,
  // which answers before limit_req runs)
  assert.match(conf, /server \{\n(\s+#.*\n)*\s+listen 127\.0\.0\.1:8081;\n\s+access_log off;\n\s+location \/ \{\n\s+limit_req zone=auth_retry burst=5;\n\s+limit_req_log_level warn;\n(\s+#.*\n)*\s+empty_gif;/);
  assert.match(conf, /upstream auth \{[^}]*max_fails=0;/);
  // two public ports (8443 and the metrics port, both stacks); the pacing server only on the pod's
  // loopback, with no file behind (a unix socket left in /tmp by a killed nginx made its restart fail to bind)
  assert.equal(conf.match(/^\s+listen .*$/gm)?.map((l) => l.trim()), ['listen 8443 ssl;', 'listen [::]:8443 ssl;', 'listen 5080;', 'listen [::]:5080;', 'listen 127.0.0.1:8081;']);
  assert.not.match(conf, /unix:|\.sock\b/);
  // /v2/ never goes through the retries
  assert.equal(location(conf, '/v2/').match(/error_page .*/g), ['error_page 503 /maintenance.json;'], 'only the maintenance refusal');
});

test('AUTH_RETRY_ADDRESS: loopback, a port nothing else in the registry pod (or the GC pod) listens on', () => {
  assert.is(AUTH_RETRY_ADDRESS, '127.0.0.1:8081');
  const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));
  const taken = [NGINX_PORT, METRICS_PORT, port(DEFAULT_REGISTRY_ADDRESS), port(DEFAULT_REGISTRY_METRICS_ADDRESS), port(DEFAULT_AUTH_ADDRESS), port(GC_REGISTRY_ADDRESS)];
  assert.equal(taken, [8443, 5080, 5000, 5002, 5001, 5001]);
  assert.not.ok(taken.includes(port(AUTH_RETRY_ADDRESS)));
});

test('nginxConfigFiles: the dual-stack nginx.conf and an IPv4-only nginx-ipv4.conf, otherwise the same', () => {
  const files = nginxConfigFiles();
  assert.equal(Object.keys(files), ['nginx.conf', 'nginx-ipv4.conf']);
  assert.is(files['nginx.conf'], conf);
  const tcp = (text: string | undefined) => text?.match(/^\s+listen .*$/gm)?.map((l) => l.trim());
  assert.equal(tcp(files['nginx.conf']), ['listen 8443 ssl;', 'listen [::]:8443 ssl;', 'listen 5080;', 'listen [::]:5080;', 'listen 127.0.0.1:8081;']);
  assert.equal(tcp(files['nginx-ipv4.conf']), ['listen 8443 ssl;', 'listen 5080;', 'listen 127.0.0.1:8081;'], 'no [::] where the kernel has no IPv6');
  assert.is(files['nginx-ipv4.conf'], conf.replace('\n    listen [::]:8443 ssl;', '').replace('\n    listen [::]:5080;', ''));
  // the other inputs reach both files
  for (const text of Object.values(nginxConfigFiles({ workerProcesses: 1 }))) assert.match(text, /^worker_processes 1;$/m);
});

test('NGINX_COMMAND: sh picks the config by the kernel\'s IPv6 and execs nginx (PID 1 stays nginx)', async () => {
  assert.equal(NGINX_COMMAND, ['sh', '-c', NGINX_START_SCRIPT, 'nginx-start', KERNEL_IPV6_FILE, NGINX_CONFIG_PATH, NGINX_IPV4_CONFIG_PATH]);
  assert.is(KERNEL_IPV6_FILE, '/proc/net/if_inet6', 'what the nginx image\'s 10-listen-on-ipv6-by-default.sh checks');
  // the script as the container runs it, with an `nginx` on PATH that reports how it was started
  const dir = mkdtempSync(join(tmpdir(), 'nginx-command-test-'));
  try {
    writeFileSync(join(dir, 'nginx'), '#!/bin/sh\necho "pid=$$"\nfor a in "$@"; do echo "arg=$a"; done\n', { mode: 0o755 });
    writeFileSync(join(dir, 'if_inet6'), '00000000000000000000000000000001 01 80 10 80       lo\n');
    const run = (ipv6File: string) =>
      new Promise<{ pid: number | undefined; stdout: string; stderr: string }>((resolve, reject) => {
        const [shell, ...args] = [...NGINX_COMMAND.slice(0, 4), ipv6File, '/etc/x/nginx.conf', '/etc/x/nginx-ipv4.conf'];
        const child = spawn(shell as string, args, { env: { PATH: `${dir}:/usr/bin:/bin` }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.once('error', reject);
        child.once('close', () => resolve({ pid: child.pid, stdout, stderr }));
      });
    const withIpv6 = await run(join(dir, 'if_inet6'));
    assert.is(withIpv6.stdout, `pid=${withIpv6.pid}\narg=-e\narg=stderr\narg=-c\narg=/etc/x/nginx.conf\narg=-g\narg=daemon off;\n`, 'exec: nginx is the process sh was');
    assert.is(withIpv6.stderr, '');
    const without = await run(join(dir, 'missing'));
    assert.is(without.stdout, `pid=${without.pid}\narg=-e\narg=stderr\narg=-c\narg=/etc/x/nginx-ipv4.conf\narg=-g\narg=daemon off;\n`);
    const warning = JSON.parse(without.stderr) as Record<string, string>;
    assert.is(warning.level, 'warn');
    assert.match(warning.msg ?? '', /IPv4 only/);
    assert.is(warning.config, '/etc/x/nginx-ipv4.conf');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The real nginx accepts the file (Debian's nginx is installed for the end-to-end tests).
const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
if (nginx.status === 0) {
  const tlsFiles = (dir: string) => {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileSync(join(dir, 'tls.key'), key);
    writeFileSync(join(dir, 'tls.crt'), selfSignedCa({ commonName: 'nginx test', keyPem: key, now: new Date(), serial: '01', validDays: 1 }));
    return { tmpDir: dir, tlsCertPath: join(dir, 'tls.crt'), tlsKeyPath: join(dir, 'tls.key'), accessLog: join(dir, 'access.log') };
  };
  test('nginx -t accepts the generated configuration, both files of the ConfigMap', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nginx-config-test-'));
    try {
      const paths = tlsFiles(dir);
      const files = { 'loopback.conf': nginxConfig({ listen: ['127.0.0.1:18443'], ...paths }), ...nginxConfigFiles(paths) };
      for (const [name, text] of Object.entries(files)) {
        writeFileSync(join(dir, name), text);
        // -t parses and checks, it binds nothing: the pod's [::]:8443 is checked on any machine
        const out = execFileSync('nginx', ['-t', '-e', 'stderr', '-c', join(dir, name), '-g', 'daemon off;'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        assert.is(out, '', name);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a SIGKILLed nginx leaves nothing behind that stops the next one with the same tmp dir (the pod\'s emptyDir)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nginx-restart-test-'));
    const front = '127.51.0.1';
    const input = { ...tlsFiles(dir), listen: [`${front}:18443`], metricsListen: [`${front}:15080`], authRetryAddress: `${front}:18081`, workerProcesses: 1 };
    writeFileSync(join(dir, 'nginx.conf'), nginxConfig(input));
    const started: number[] = [];
    const childPids = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    const start = () => {
      // as root, workers stay root: they read the key per handshake (nobody could not)
      const global = process.getuid?.() === 0 ? 'daemon off; user root root;' : 'daemon off;';
      const child = spawn('nginx', ['-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', global], { stdio: 'ignore' });
      if (child.pid) started.push(child.pid);
      return child;
    };
    const answers = (url: string) =>
      new Promise<number | undefined>((resolve) => {
        const req = request(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', () => resolve(undefined));
        req.end();
      });
    const healthy = async (child: ReturnType<typeof spawn>) => {
      for (let i = 0; i < 50; i++) {
        if (child.exitCode !== null) return false;
        if ((await answers(`https://${front}:18443/health`)) === 200) return true;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return false;
    };
    try {
      const first = start();
      assert.ok(await healthy(first), 'the first nginx starts');
      const workers = childPids(first.pid ?? 0);
      assert.ok(workers.length > 0, 'with a worker');
      const exited = new Promise((resolve) => first.once('exit', resolve));
      for (const pid of [first.pid ?? 0, ...workers]) process.kill(pid, 'SIGKILL');
      await exited;
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = start();
      assert.ok(await healthy(second), `the restarted nginx serves: ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
      assert.not.match(readFileSync(join(dir, 'error.log'), 'utf8'), /bind\(\)/);
    } finally {
      for (const pid of started) {
        for (const p of [pid, ...childPids(pid)]) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
} else {
  console.log('    nginx not installed: skipping nginx -t');
}

test.run();
