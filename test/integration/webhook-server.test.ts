// The webhook server process (dist/webhook.js) on its own: TLS, certificate reload without a
// restart, graceful SIGTERM with an admission in flight, and a fuzz of 1,000 random and mutated
// AdmissionReview bodies over real TLS connections (no crash, 4xx for invalid input, memory stable).
// The Kubernetes API it would call is a closed port or a black hole here: these tests are about
// the server, not the cluster (webhook.test.ts drives it through the real API server).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as connectTls } from 'node:tls';
import { join } from 'node:path';
import { GROUP_VERSION } from '../../functions/types.ts';
import { issueTestCertificate } from '../support/pki.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { buildBundles, httpsRequest, startWebhook, testServingTls, type HttpsResult, type TestTls, type WebhookProcess } from '../support/webhook.ts';

const CONFIG_ENV = { OPERATOR_NAMESPACE: 'image-registry-operator', OPERATOR_DNS_ZONE: 'svc.example.org' };

/** A kubeconfig for an API server at 127.0.0.1:<port> (nothing real listens there). */
function unreachableKubeconfig(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'iro-kubeconfig-')), 'kubeconfig');
  writeFileSync(file, [
    'apiVersion: v1', 'kind: Config',
    'clusters:', '- name: none', '  cluster:', `    server: https://127.0.0.1:${port}`, '    insecure-skip-tls-verify: true',
    'users:', '- name: none', '  user: {token: none}',
    'contexts:', '- name: none', '  context: {cluster: none, user: none}',
    'current-context: none', '',
  ].join('\n'));
  return file;
}

/** Accepts connections and never answers: every call to it hangs until the caller gives up. */
function blackHole(): Promise<{ port: number; close: () => void }> {
  return new Promise((resolve) => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : 0,
        close: () => {
          for (const socket of sockets) socket.destroy();
          server.close();
        },
      });
    });
  });
}

let built: Promise<void> | undefined;
const bundles = () => (built ??= buildBundles(['webhook']));

async function start(tls: TestTls, apiPort?: number): Promise<WebhookProcess> {
  await bundles();
  return startWebhook({ tls, env: CONFIG_ENV, kubeconfig: unreachableKubeconfig(apiPort ?? (await freePort())) });
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1]) * 1024;
}

function review(request: Record<string, unknown>) {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

function ourRequest(kind: string, object: unknown, extra: Record<string, unknown> = {}) {
  return { uid: 'u-1', kind: { group: 'registry.mgoltzsche.github.com', version: 'v1alpha1', kind }, namespace: 'team', name: 'x', operation: 'CREATE', object, ...extra };
}

test('listens quickly, without loading the Kubernetes client first; serves /healthz and /metrics', async () => {
  const tls = testServingTls();
  const webhook = await start(tls);
  try {
    const listening = webhook.logs().split('\n').find((line) => line.includes('"webhook listening"'));
    const startupMs = (JSON.parse(listening ?? '{}') as { startupMs?: number }).startupMs ?? Infinity;
    console.log(`   webhook listening ${startupMs} ms after process start`);
    assert.ok(startupMs < 2000, `startup ${startupMs} ms`);
    const health = await httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/healthz', method: 'GET' });
    assert.equal([health.status, health.body], [200, 'ok']);
    const metrics = await httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/metrics', method: 'GET' });
    assert.is(metrics.status, 200);
    assert.match(metrics.body, '# TYPE webhook_requests_total counter');
    assert.match(metrics.body, 'webhook_jobs_enqueued_total{result="created"} 0');
  } finally {
    await webhook.stop();
  }
});

test('a renewed certificate is served without a restart; a half-written pair keeps the old one', async () => {
  const tls = testServingTls();
  const webhook = await start(tls);
  try {
    const get = () => httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/healthz', method: 'GET' });
    const first = (await get()).fingerprint;
    assert.ok(first);
    // a key that does not belong to the certificate: refused, the old pair stays in use
    const stranger = issueTestCertificate({ commonName: 'x', ipAddresses: ['127.0.0.1'], issuer: tls.ca });
    writeFileSync(tls.keyFile, stranger.keyPem);
    await waitFor('the mismatched pair to be refused', async () => webhook.logs().includes('TLS certificate not reloaded'), 10_000);
    assert.is((await get()).fingerprint, first);
    // the kubelet swaps a Secret volume's files atomically: do the same
    const renewed = issueTestCertificate({ commonName: 'webhook', ipAddresses: ['127.0.0.1'], issuer: tls.ca });
    writeFileSync(`${tls.certFile}.new`, renewed.certPem);
    writeFileSync(`${tls.keyFile}.new`, renewed.keyPem);
    renameSync(`${tls.certFile}.new`, tls.certFile);
    renameSync(`${tls.keyFile}.new`, tls.keyFile);
    let now: string | undefined;
    await waitFor('the renewed certificate to be served', async () => (now = (await get()).fingerprint) !== first, 10_000);
    assert.ok(now && now !== first);
    assert.match(webhook.logs(), '"msg":"TLS certificate reloaded"');
    assert.is(webhook.process.child.exitCode, null, 'same process');
  } finally {
    await webhook.stop();
  }
});

test('SIGTERM: an admission in flight is answered, then the server exits 0', async () => {
  const hole = await blackHole();
  const tls = testServingTls();
  const webhook = await start(tls, hole.port);
  try {
    // the registry lookup hangs on the black-hole API until the webhook's 2 s dependency timeout
    const body = JSON.stringify(review(ourRequest('ImagePushSecret', { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'x', namespace: 'team' } }, { dryRun: true })));
    const inFlight = httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/validate', body });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    const stopped = webhook.stop();
    const answer = await inFlight;
    assert.is(answer.status, 200);
    assert.is((JSON.parse(answer.body) as { response: { allowed: boolean } }).response.allowed, true);
    assert.is(await stopped, 0);
    assert.ok(Date.now() - started < 5000, 'exits once the request is done, not at the shutdown timeout');
    const refused = await httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/healthz', method: 'GET' }).then(() => 'answered', (error: Error) => error.message);
    assert.match(refused, 'ECONNREFUSED');
  } finally {
    hole.close();
  }
});

test('SIGTERM never closes a kept-alive connection under its client: the next request on it is answered with Connection: close, then the server exits', async () => {
  const tls = testServingTls();
  const webhook = await start(tls);
  // one kept-alive connection, as the API server holds them (HTTP/1.1, idle between admissions)
  const socket = connectTls({ host: '127.0.0.1', port: webhook.port, ca: tls.ca.certPem });
  let received = '';
  let closedAt = 0;
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  socket.on('close', () => (closedAt = Date.now()));
  const get = async (marker: string) => {
    const before = received.length;
    socket.write(`GET /healthz?${marker} HTTP/1.1\r\nHost: webhook\r\n\r\n`);
    await waitFor(`the answer to ${marker}`, async () => received.slice(before).includes('\r\n\r\nok'), 5_000);
    return received.slice(before);
  };
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  assert.match(await get('first'), /connection: keep-alive/i);
  const stopped = webhook.stop();
  // the kept-alive connection stays open through the shutdown (closing it would race the client's next request)
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.is(closedAt, 0, 'the idle connection is left to its client');
  const draining = await get('second');
  assert.match(draining, /^HTTP\/1\.1 200/);
  assert.match(draining, /connection: close/i);
  assert.is(await stopped, 0);
  await waitFor('the connection closed after the Connection: close answer', async () => closedAt > 0, 5_000);
  assert.match(webhook.logs(), '"msg":"webhook drained: every connection closed"');
});

// ── fuzz ──────────────────────────────────────────────────────────────────────────────────────────

/** mulberry32: a small seeded PRNG, so a failing fuzz run can be repeated with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function fuzzer(random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const nested = (depth: number): Json => (depth === 0 ? 'deep' : random() < 0.5 ? [nested(depth - 1)] : { a: nested(depth - 1) });
  const strangeValues: (() => Json)[] = [
    () => null, () => true, () => -1, () => 1e308, () => 0.5, () => '', () => 'x'.repeat(10_000), () => '\u0000\ud800💥',
    () => [], () => ({}), () => nested(40), () => ['push', 'pull', '*'], () => '/(/', () => '$2b$10$short', () => ({ __proto__: { polluted: true } } as Json),
  ];
  const specs: Record<string, Json[]> = {
    ImageRegistry: [{}, { replicas: 3 }, { persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } }, { auth: { acl: [{ match: { account: '/ci-.*/' }, actions: ['push'] }] } }, { tls: { issuerRef: { name: 'le' } } }],
    ImageRegistryAccount: [{ password: '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq', labels: { accessMode: ['push'] }, ttl: '48h' }, { password: 'plain' }],
    ImagePushSecret: [{}, { registryRef: { name: 'registry' } }, { registryRef: { name: 'r', namespace: 'infra' } }],
    ImagePullSecret: [{}, { registryRef: { name: 'registry' } }],
    ConfigMap: [{}],
  };
  const valid = (): Json => {
    const kind = pick(Object.keys(specs));
    const group = kind === 'ConfigMap' ? '' : 'registry.mgoltzsche.github.com';
    const operation = pick(['CREATE', 'UPDATE', 'DELETE']);
    const object = { apiVersion: group ? GROUP_VERSION : 'v1', kind, metadata: { name: `n${Math.floor(random() * 1000)}`, namespace: 'team' }, spec: pick(specs[kind] ?? [{}]) };
    return {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `uid-${Math.floor(random() * 1e9)}`,
        kind: { group, version: group ? 'v1alpha1' : 'v1', kind },
        resource: { group, version: 'v1alpha1', resource: kind.toLowerCase() },
        namespace: 'team',
        name: object.metadata.name,
        operation,
        dryRun: random() < 0.5,
        object: operation === 'DELETE' ? null : object,
        oldObject: operation === 'CREATE' ? null : { ...object, spec: pick(specs[kind] ?? [{}]) },
      },
    } as Json;
  };
  /** Replaces, deletes or renames one random node of the tree. */
  const mutate = (value: Json): Json => {
    if (value === null || typeof value !== 'object' || random() < 0.25) return pick(strangeValues)();
    const copy: Json = Array.isArray(value) ? [...value] : { ...value };
    const keys = Object.keys(copy);
    if (keys.length === 0) return pick(strangeValues)();
    const key = pick(keys);
    const action = random();
    if (Array.isArray(copy)) copy[Number(key)] = mutate(copy[Number(key)] as Json);
    else if (action < 0.15) delete copy[key];
    else if (action < 0.25) {
      copy[`${key}_`] = copy[key] as Json;
      delete copy[key];
    } else copy[key] = mutate(copy[key] as Json);
    return copy;
  };
  const oversized = () => `{"a":"${'x'.repeat(3 * 1024 * 1024 + 10)}"}`;
  const garbage = (): { body: string | Buffer; expect: 'invalid' } => {
    const kind = Math.floor(random() * 7);
    const text = JSON.stringify(valid());
    switch (kind) {
      case 0: return { body: text.slice(0, Math.floor(random() * text.length)), expect: 'invalid' }; // truncated
      case 1: return { body: Buffer.from(Array.from({ length: 1 + Math.floor(random() * 4096) }, () => Math.floor(random() * 256))), expect: 'invalid' };
      case 2: return { body: '[' .repeat(100_000), expect: 'invalid' }; // nesting bomb
      case 3: return { body: JSON.stringify(pick(strangeValues)()), expect: 'invalid' };
      case 4: return { body: '', expect: 'invalid' };
      case 5: return { body: JSON.stringify({ ...(JSON.parse(text) as object), apiVersion: 'admission.k8s.io/v1beta1' }), expect: 'invalid' };
      default: return { body: JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: 'x', operation: 'EXPLODE', kind: {} } }), expect: 'invalid' };
    }
  };
  /** Mostly inside the object under review (where the handlers look), sometimes anywhere. */
  const mutateReview = (body: Json): Json => {
    const request = body !== null && typeof body === 'object' && !Array.isArray(body) ? body.request : undefined;
    if (random() < 0.3 || !request || typeof request !== 'object' || Array.isArray(request)) return mutate(body);
    const key = random() < 0.8 ? 'object' : 'oldObject';
    return { ...(body as object), request: { ...request, [key]: mutate(request[key] ?? null) } };
  };
  return { valid, mutateReview, garbage, oversized };
}

test('fuzz: 1,000 random and mutated AdmissionReviews over TLS → no crash, 4xx for invalid input, RSS stable', async () => {
  const tls = testServingTls();
  const webhook = await start(tls);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  const { valid, mutateReview, garbage, oversized } = fuzzer(random);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const send = (path: string, body: string | Buffer) => httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path, body, agent });
  const pid = webhook.process.child.pid as number;
  const statuses = new Map<string, number>();
  const problems: string[] = [];
  const check = (label: string, expect: 'ok' | 'invalid' | 'too_large' | 'any', result: HttpsResult, uid?: string) => {
    statuses.set(`${label} → ${result.status}`, (statuses.get(`${label} → ${result.status}`) ?? 0) + 1);
    if (result.status >= 500) problems.push(`${label}: HTTP ${result.status} ${result.body.slice(0, 200)}`);
    if (expect === 'ok' && result.status !== 200) problems.push(`${label}: expected 200, got ${result.status} ${result.body.slice(0, 200)}`);
    if (expect === 'invalid' && result.status !== 400) problems.push(`${label}: expected 400, got ${result.status} ${result.body.slice(0, 200)}`);
    if (expect === 'too_large' && result.status !== 413) problems.push(`${label}: expected 413, got ${result.status}`);
    if (result.status === 200) {
      const answer = JSON.parse(result.body) as { kind?: string; response?: { uid?: string; allowed?: boolean } };
      if (answer.kind !== 'AdmissionReview' || typeof answer.response?.allowed !== 'boolean') problems.push(`${label}: 200 without an AdmissionReview response`);
      if (uid !== undefined && answer.response?.uid !== uid) problems.push(`${label}: response uid ${answer.response?.uid} for request ${uid}`);
    }
  };
  const one = async (i: number) => {
    const path = i % 2 === 0 ? '/mutate' : '/validate';
    const mode = random();
    if (((i % 200) + 200) % 200 === 150) {
      // bigger than any object the API server sends (its own limit is 3 MiB): a few suffice
      let result: HttpsResult;
      try {
        result = await send(path, oversized());
      } catch (error) {
        // the server answers 413 and closes before a client has written 3 MiB: it may see the close first
        if (!/EPIPE|ECONNRESET/.test((error as Error).message)) throw error;
        statuses.set('too_large → closed while sending', (statuses.get('too_large → closed while sending') ?? 0) + 1);
        return;
      }
      check('too_large', 'too_large', result);
    } else if (mode < 0.3) {
      const body = valid() as { request: { uid: string } };
      check('valid', 'ok', await send(path, JSON.stringify(body)), body.request.uid);
    } else if (mode < 0.8) {
      let body = valid();
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) body = mutateReview(body);
      check('mutated', 'any', await send(path, JSON.stringify(body)));
    } else {
      const { body, expect } = garbage();
      check(expect, expect, await send(path, body));
    }
  };
  const batch = async (from: number, to: number, parallel = 8) => {
    let next = from;
    await Promise.all(Array.from({ length: parallel }, async () => {
      for (let i = next++; i < to; i = next++) await one(i);
    }));
  };
  try {
    // warm-up, same mix, not measured: JIT, TLS sessions, the lazily loaded client, and V8 growing its
    // heap to its working size (RSS rises by ~40 MB over the first 1,000 requests, then levels off)
    await batch(-1000, 0);
    const before = rssBytes(pid);
    const started = Date.now();
    await batch(0, 1000);
    const after = rssBytes(pid);
    const growthMb = (after - before) / 1024 / 1024;
    console.log(`   fuzz seed ${seed}: 1,000 requests in ${((Date.now() - started) / 1000).toFixed(1)} s after 1,000 warm-up; RSS ${(before / 1048576).toFixed(0)} → ${(after / 1048576).toFixed(0)} MB`);
    console.log(`   ${[...statuses].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    assert.equal(problems.slice(0, 10), [], `seed ${seed}`);
    assert.is([...statuses.values()].reduce((a, b) => a + b, 0), 2000);
    assert.ok(growthMb < 50, `RSS grew by ${growthMb.toFixed(1)} MB`);
    // still alive and well
    assert.is(webhook.process.child.exitCode, null);
    assert.is((await send('/mutate', JSON.stringify(valid()))).status, 200);
    // a client that does not trust the server's CA fails its handshake; the server does not care
    const stranger = testServingTls();
    const refused = await httpsRequest({ port: webhook.port, caPem: stranger.ca.certPem, path: '/healthz', method: 'GET' }).then(() => 'answered', (error: Error) => error.message);
    assert.match(refused, /certificate/);
    assert.is((await httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/healthz', method: 'GET' })).status, 200);
  } finally {
    agent.destroy();
    await webhook.stop();
  }
});

test.run();
