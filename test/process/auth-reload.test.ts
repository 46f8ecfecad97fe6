// No failed login during a docker_auth config reload. docker_auth 1.14 reloads its config by
// closing its listener and every open connection and listening again; the generated nginx.conf
// retries token requests across that gap. Real docker_auth and Debian's nginx, started directly on
// loopback with the configs functions/ generates; the auth config is rewritten the kubelet's way
// (new timestamped directory, `..data` swapped, old directory deleted), which is what makes
// docker_auth reload. Needs auth_server: skips with the reason when it is missing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authServerUnavailable, testBinaries } from '../support/binaries.ts';
import { writeAtomic } from '../support/atomic-writer.ts';
import { basicAuth, closedLoop, fetchAnswer, keepAliveAgent, type Answer, type LoadResult } from '../support/front-clients.ts';
import { reloadGaps, startDockerAuth, startNginx, startRegistry, testAccount, testPki, testRegistry, type DockerAuth, type Nginx, type Registry } from '../support/front-processes.ts';
import { delay, installExitHandlers, waitFor } from '../support/processes.ts';

const FRONT = '127.50.1.1';
const AUTH = '127.50.1.2:5001';
const REGISTRY = '127.50.1.3:5000';
const HOSTNAME = `${FRONT}:8443`;
const RELOADS = 12;
const CLIENTS = 16;

installExitHandlers();
const assets = await testBinaries();
const authMissing = authServerUnavailable(assets) ?? (existsSync(join(assets, 'auth_server')) ? undefined : `no auth_server in ${assets}`);
if (authMissing) console.log(`SKIP docker_auth reload tests: auth_server is unavailable: ${authMissing}`);
const registryMissing = existsSync(join(assets, 'registry')) ? undefined : `no registry in ${assets}`;
const withAuth = authMissing ? test.skip : test;

const workDir = mkdtempSync(join(tmpdir(), 'iro-auth-reload-'));
const registry = testRegistry();
const push = { name: 'push.front-test.app.1', password: 'push-password-1' };
const pki = testPki([FRONT]);
let auth: DockerAuth | undefined;
let nginx: Nginx | undefined;
let registryProcess: Registry | undefined;

async function start(): Promise<{ auth: DockerAuth; nginx: Nginx }> {
  if (auth && nginx) return { auth, nginx };
  const tlsDir = join(workDir, 'tls');
  writeAtomic(tlsDir, { 'tls.crt': pki.serving.certPem, 'tls.key': pki.serving.keyPem }, { mode: 0o600 });
  auth = await startDockerAuth({ binary: join(assets, 'auth_server'), dir: workDir, address: AUTH, hostname: HOSTNAME, registry, accounts: [testAccount(registry, push, 'push')], token: pki.token });
  if (!registryMissing) registryProcess = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: REGISTRY, hostname: HOSTNAME, tokenCertPem: pki.token.certPem });
  nginx = await startNginx({
    dir: join(workDir, 'nginx'),
    input: { accessLog: join(workDir, 'access.log'), listen: [`${HOSTNAME}`], authAddress: AUTH, registryAddress: REGISTRY, tlsCertPath: join(tlsDir, 'tls.crt'), tlsKeyPath: join(tlsDir, 'tls.key') },
    probe: `https://${HOSTNAME}/health`,
  });
  return { auth, nginx };
}

const tokenUrl = (base: string) => `${base}/auth/token?service=${encodeURIComponent(HOSTNAME)}&scope=${encodeURIComponent('repository:front-test/app:pull,push')}`;
const ok = (answer: Answer) => answer.status === 200 || answer.status === 401;

/** Rewrites the auth config `count` times, each after the previous reload finished; returns the accounts added. */
async function reloads(dockerAuth: DockerAuth, count: number): Promise<{ name: string; password: string }[]> {
  const added: { name: string; password: string }[] = [];
  for (let i = 1; i <= count; i++) {
    const before = reloadGaps(dockerAuth.logFile).length;
    const extra = { name: `pull.front-test.app.${i}`, password: `pull-password-${i}` };
    added.push(extra);
    dockerAuth.writeConfig([testAccount(registry, push, 'push'), testAccount(registry, extra, 'pull')]);
    await waitFor(`docker_auth reload ${i}`, async () => reloadGaps(dockerAuth.logFile).length > before, 10_000);
    await delay(100 + Math.floor(Math.random() * 200));
  }
  return added;
}

withAuth('16 concurrent token requests through nginx while the auth config changes ≥ 10 times: only 200/401, no connection errors', async () => {
  const { auth: dockerAuth, nginx: front } = await start();
  const base = `https://${HOSTNAME}`;
  const agents = Array.from({ length: CLIENTS }, (_, i) => (i % 2 === 0 ? keepAliveAgent(true) : false));
  // even clients keep their connection, odd ones open a new one per request; every fourth has no
  // or wrong credentials (401 from docker_auth)
  const request = (client: number): Promise<Answer> => {
    const headers: Record<string, string> = client % 4 === 3 ? { authorization: basicAuth(push.name, 'wrong') } : client % 8 === 1 ? {} : { authorization: basicAuth(push.name, push.password) };
    return fetchAnswer(tokenUrl(base), { ca: pki.ca.certPem, agent: agents[client] ?? false, headers });
  };
  const gapsBefore = reloadGaps(dockerAuth.logFile).length;
  let finish!: () => void;
  const load = closedLoop(CLIENTS, request, new Promise<void>((resolve) => (finish = resolve)), ok);
  const added = await reloads(dockerAuth, RELOADS);
  await delay(300);
  finish();
  const result = await load;
  for (const agent of agents) if (agent) agent.destroy();

  const gaps = reloadGaps(dockerAuth.logFile).slice(gapsBefore);
  const retried = retriedAttempts(front);
  console.log(`    ${summary(result)}; ${gaps.length} reloads, listener gaps ${gaps.map((g) => g.toFixed(2)).join(', ')} ms; nginx retried ${retried} attempts`);
  assert.ok(gaps.length >= 10, `docker_auth reloaded ${gaps.length} times`);
  const unexpected = Object.entries(result.counts).filter(([key]) => key !== '200' && key !== '401');
  assert.equal(unexpected, [], `answers other than 200/401: ${JSON.stringify(result.counts)} ${result.samples.join(' | ')}`);
  assert.ok((result.counts['200'] ?? 0) > 100 && (result.counts['401'] ?? 0) > 10, JSON.stringify(result.counts));
  // the reloads were real: the account of the last config gets a token, one dropped before does not
  const last = added.at(-1) as { name: string; password: string };
  assert.is((await fetchAnswer(tokenUrl(base), { ca: pki.ca.certPem, headers: { authorization: basicAuth(last.name, last.password) } })).status, 200);
  const dropped = added[0] as { name: string; password: string };
  assert.is((await fetchAnswer(tokenUrl(base), { ca: pki.ca.certPem, headers: { authorization: basicAuth(dropped.name, dropped.password) } })).status, 401);
});

withAuth('the same load sent to docker_auth directly fails during its reloads (what nginx bridges)', async () => {
  const { auth: dockerAuth } = await start();
  const base = `http://${AUTH}`;
  const agents = Array.from({ length: CLIENTS }, (_, i) => (i % 2 === 0 ? keepAliveAgent(false) : false));
  // docker_auth reads the client address from X-Real-IP (as nginx sends it) and refuses requests without it
  const request = (client: number) => fetchAnswer(tokenUrl(base), { agent: agents[client] ?? false, headers: { authorization: basicAuth(push.name, push.password), 'x-real-ip': '127.0.0.1' } });
  let finish!: () => void;
  const load = closedLoop(CLIENTS, request, new Promise<void>((resolve) => (finish = resolve)), ok);
  await reloads(dockerAuth, 3);
  finish();
  const result = await load;
  for (const agent of agents) if (agent) agent.destroy();
  console.log(`    direct: ${summary(result)}`);
  const failures = Object.entries(result.counts).filter(([key]) => key !== '200').reduce((n, [, v]) => n + v, 0);
  assert.ok(failures > 0, `docker_auth direct had no failure in 3 reloads: ${JSON.stringify(result.counts)}`);
});

withAuth('registry traffic (/v2/ with a token) is untouched by docker_auth reloads', async () => {
  if (registryMissing) {
    console.log(`    (registry not available: ${registryMissing})`);
    return;
  }
  const { auth: dockerAuth } = await start();
  const base = `https://${HOSTNAME}`;
  const token = JSON.parse((await fetchAnswer(`${base}/auth/token?service=${encodeURIComponent(HOSTNAME)}&scope=${encodeURIComponent('repository:front-test/app:pull')}`, { ca: pki.ca.certPem, headers: { authorization: basicAuth(push.name, push.password) } })).body).token as string;
  const agents = Array.from({ length: 4 }, () => keepAliveAgent(true));
  const request = (client: number) => fetchAnswer(`${base}/v2/front-test/app/tags/list`, { ca: pki.ca.certPem, agent: agents[client] ?? false, headers: { authorization: `Bearer ${token}` } });
  let finish!: () => void;
  const load = closedLoop(4, request, new Promise<void>((resolve) => (finish = resolve)), (a) => a.status === 404);
  await reloads(dockerAuth, 2);
  finish();
  const result = await load;
  for (const agent of agents) agent.destroy();
  console.log(`    /v2/: ${summary(result)}`);
  // the repository does not exist: the registry answers 404 NAME_UNKNOWN after checking the token
  assert.equal(Object.keys(result.counts), ['404'], JSON.stringify(result.counts));
});

test.after(async () => {
  await nginx?.process.stop();
  await auth?.process.stop();
  await registryProcess?.process.stop();
  if (!process.env.IRO_KEEP) rmSync(workDir, { recursive: true, force: true });
});

function summary(result: LoadResult): string {
  const total = Object.values(result.counts).reduce((a, b) => a + b, 0);
  return `${total} requests in ${(result.durationMs / 1000).toFixed(1)} s: ${Object.entries(result.counts).map(([k, v]) => `${v} × ${k}`).join(', ')}`;
}

/** How many upstream attempts nginx logged as failed (each was retried or answered 502). */
function retriedAttempts(front: Nginx): number {
  const log = readFileSync(front.errorLog, 'utf8');
  return log.split('\n').filter((line) => /upstream: "http:\/\/127\.50\.1\.2:5001/.test(line)).length;
}

test.run();
