// Benchmark: the webhook server (dist/webhook.js, hono on @hono/node-server over TLS) against a
// bare node:https server that answers the same bytes (and hono alone answering them), all loaded
// by 64 concurrent keep-alive clients in the same run. Not part of `npm test`:
//   sh test/with-node.sh test/bench/webhook.ts [--seconds 5] [--rounds 3]
// Both servers run as their own processes; this process is the load generator. Rounds alternate
// the order, so drift in machine load hits both alike; medians are reported.
import { Agent, request } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { GROUP_VERSION } from '../../functions/types.ts';
import { freePort, installExitHandlers, startProcess, waitFor } from '../support/processes.ts';
import { buildBundles, httpsRequest, repoRoot, startWebhook, testServingTls, type TestTls } from '../support/webhook.ts';
import { integer, interleaved, median, ms, percentile, ratio } from './stats.ts';

export const CONCURRENCY = 64;

/** A typical admission: the mutating webhook defaulting a new ImageRegistry (pure, no API calls). */
const BODY = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: '9d2c1c4e-7f3b-4b1e-9a51-1d1f0e2f6b11',
    kind: { group: 'registry.mgoltzsche.github.com', version: 'v1alpha1', kind: 'ImageRegistry' },
    resource: { group: 'registry.mgoltzsche.github.com', version: 'v1alpha1', resource: 'imageregistries' },
    name: 'registry',
    namespace: 'team-a',
    operation: 'CREATE',
    userInfo: { username: 'alice', groups: ['system:authenticated'] },
    object: { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'team-a' }, spec: { replicas: 1 } },
    oldObject: null,
    dryRun: false,
  },
});

// The baseline: node:https with the same certificate, reading the body and answering fixed bytes.
const BARE_SERVER = `
const { createServer } = require('node:https');
const { readFileSync } = require('node:fs');
const answer = Buffer.from(process.env.BENCH_ANSWER, 'base64');
const server = createServer({ cert: readFileSync(process.env.BENCH_CERT), key: readFileSync(process.env.BENCH_KEY), minVersion: 'TLSv1.2' }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8'));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length });
    res.end(answer);
  });
});
server.listen(Number(process.env.BENCH_PORT), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

// The framework alone: the same hono + @hono/node-server stack as the webhook, answering the fixed
// bytes — separates the framework's share from the admission work's share of the difference.
const HONO_SERVER = `
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
const answer = Buffer.from(process.env.BENCH_ANSWER, 'base64').toString('utf8');
const app = new Hono();
app.post('/mutate', async (c) => {
  JSON.parse(await c.req.text());
  return c.body(answer, 200, { 'content-type': 'application/json' });
});
const server = serve({ fetch: app.fetch, port: Number(process.env.BENCH_PORT), hostname: '127.0.0.1', createServer,
  serverOptions: { cert: readFileSync(process.env.BENCH_CERT), key: readFileSync(process.env.BENCH_KEY), minVersion: 'TLSv1.2' } });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `concurrency` keep-alive clients POST the body for `seconds`; latencies of the measured part only. */
export async function load(port: number, tls: TestTls, path: string, seconds: number, concurrency = CONCURRENCY): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: tls.ca.certPem });
  const post = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(BODY);
    });
  const warmUpUntil = performance.now() + 1000;
  const endAt = warmUpUntil + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < endAt) {
      try {
        const latency = await post();
        if (performance.now() >= warmUpUntil) latencies.push(latency);
      } catch {
        errors++;
      }
    }
  }));
  agent.destroy();
  return { requests: latencies.length, rps: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

export async function benchWebhook({ seconds = 5, rounds = 3 } = {}): Promise<string> {
  installExitHandlers();
  await buildBundles(['webhook']);
  const tls = testServingTls();
  const apiPort = await freePort(); // nothing listens: mutate needs no API
  const kubeconfig = join(tls.dir, 'kubeconfig');
  writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: "https://127.0.0.1:${apiPort}"}}]\nusers: [{name: x, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n`);
  const webhook = await startWebhook({ tls, env: {}, kubeconfig });
  const answer = await httpsRequest({ port: webhook.port, caPem: tls.ca.certPem, path: '/mutate', body: BODY });
  if (answer.status !== 200) throw new Error(`the webhook answered ${answer.status}: ${answer.body}`);
  const [barePort, honoPort] = [await freePort(), await freePort()];
  const env = (port: number) => ({ PATH: process.env.PATH, BENCH_ANSWER: Buffer.from(answer.body).toString('base64'), BENCH_CERT: tls.certFile, BENCH_KEY: tls.keyFile, BENCH_PORT: String(port) });
  const bare = startProcess('bare-https', process.execPath, ['-e', BARE_SERVER], join(tls.dir, 'bare.log'), { env: env(barePort) });
  const hono = startProcess('hono-https', process.execPath, ['--input-type=module', '-e', HONO_SERVER], join(tls.dir, 'hono.log'), { env: env(honoPort), cwd: repoRoot });
  try {
    for (const port of [barePort, honoPort]) {
      await waitFor(`the baseline server on ${port}`, async () => (await httpsRequest({ port, caPem: tls.ca.certPem, path: '/mutate', body: BODY })).body === answer.body, 10_000);
    }
    const results = await interleaved(rounds, {
      webhook: () => load(webhook.port, tls, '/mutate', seconds),
      hono: () => load(honoPort, tls, '/mutate', seconds),
      bare: () => load(barePort, tls, '/mutate', seconds),
    });
    const summary = (runs: LoadResult[]) => ({
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
    });
    const w = summary(results.webhook);
    const h = summary(results.hono);
    const b = summary(results.bare);
    return [
      `webhook vs bare node:https, POST /mutate (ImageRegistry CREATE → JSON Patch), ${CONCURRENCY} concurrent keep-alive TLS clients, median of ${rounds} × ${seconds} s:`,
      '| server | req/s | p50 | p99 | errors |',
      '|---|---|---|---|---|',
      `| webhook (hono + @hono/node-server, dist/webhook.js) | ${integer(w.rps)} | ${ms(w.p50)} | ${ms(w.p99)} | ${w.errors} |`,
      `| hono + @hono/node-server alone, same answer | ${integer(h.rps)} | ${ms(h.p50)} | ${ms(h.p99)} | ${h.errors} |`,
      `| bare node:https, same answer | ${integer(b.rps)} | ${ms(b.p50)} | ${ms(b.p99)} | ${b.errors} |`,
      `| webhook / bare | ${ratio(w.rps, b.rps)} | ${ratio(w.p50, b.p50)} | ${ratio(w.p99, b.p99)} | |`,
      `| hono alone / bare | ${ratio(h.rps, b.rps)} | ${ratio(h.p50, b.p50)} | ${ratio(h.p99, b.p99)} | |`,
    ].join('\n');
  } finally {
    await bare.stop();
    await hono.stop();
    await webhook.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, rounds: { type: 'string' } } });
  console.log(await benchWebhook({ seconds: Number(values.seconds ?? 5), rounds: Number(values.rounds ?? 3) }));
}
