// Benchmark 1: the webhook (dist/webhook.js) under load over TLS — mutate and validate at 1, 16 and
// 64 concurrent requests — each run next to a bare node:https server that answers the same bytes
// with the same certificate, driven by the same keep-alive client in a separate process; and the
// webhook's RSS idle and under load from /proc/<pid>/status.
//
// Requests: an ImageRegistry CREATE with dryRun: true. Mutation defaults it (a real JSON Patch);
// validation checks it fully. Neither needs the API: an ImageRegistry has no registry to look up
// and a dry run enqueues nothing — the webhook's KUBECONFIG points at the recording stand-in, which
// confirms that no request reached it.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePort, waitFor } from '../support/processes.ts';
import { startWebhook, type TestTls } from '../support/webhook.ts';
import type { ApiRecorder } from './api-recorder.ts';
import type { AppDir } from './bundles.ts';
import type { LoadResult, LoadRun } from './load-client.ts';
import type { Row, SectionResult } from './report.ts';
import { interleaved, median, ms, ratio } from './stats.ts';

export interface WebhookLoadContext {
  app: AppDir;
  tls: TestTls;
  recorder: ApiRecorder;
  /** bundled helpers (.mjs) */
  loadClient: string;
  baselineServer: string;
  honoEchoServer: string;
  workDir: string;
  runs: number;
  warmupMs: number;
  durationMs: number;
}

export const CONCURRENCY = [1, 16, 64];
const TARGET_RPS_RATIO = 0.8;
const TARGET_P99_MS = 5;
const TARGET_RSS_MB = 80;
/** V8 heap flags approximating what Node derives from the Deployment's 256Mi limit (old generation ¼ of it, a small young generation). */
const POD_HEAP_FLAGS = '--max-old-space-size=64 --max-semi-space-size=1';

const GROUP = 'registry.mgoltzsche.github.com';

/** A dry-run CREATE AdmissionReview as the API server sends it; an ImageRegistry unless `target` says otherwise. */
export function review(uid: string, object: unknown, target = { kind: 'ImageRegistry', resource: 'imageregistries', name: 'registry', namespace: 'team-payments' }) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: GROUP, version: 'v1alpha1', kind: target.kind },
      resource: { group: GROUP, version: 'v1alpha1', resource: target.resource },
      requestKind: { group: GROUP, version: 'v1alpha1', kind: target.kind },
      requestResource: { group: GROUP, version: 'v1alpha1', resource: target.resource },
      name: target.name,
      namespace: target.namespace,
      operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: true,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions', dryRun: ['All'], fieldManager: 'kubectl-client-side-apply' },
    },
  };
}

const metadata = {
  name: 'registry',
  namespace: 'team-payments',
  uid: '6f1c2a8e-7d3b-4f0e-9a51-2b7c8d9e0f1a',
  creationTimestamp: '2026-01-01T12:00:00Z',
  labels: { 'app.kubernetes.io/part-of': 'payments' },
  annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"registry.mgoltzsche.github.com/v1alpha1","kind":"ImageRegistry","metadata":{"name":"registry","namespace":"team-payments"},"spec":{"persistentVolumeClaim":{"resources":{"requests":{"storage":"8Gi"}}}}}' },
};

/** mutate: a registry with only a storage size (the webhook adds replicas, accessModes, deleteClaim, the ACL). */
export const MUTATE_BODY = JSON.stringify(review('bench-mutate', {
  apiVersion: `${GROUP}/v1alpha1`, kind: 'ImageRegistry', metadata,
  spec: { persistentVolumeClaim: { resources: { requests: { storage: '8Gi' } } } },
}));

/** validate: the registry as the mutating webhook left it (kustomize/examples/registry.yaml's spec). */
export const VALIDATE_BODY = JSON.stringify(review('bench-validate', {
  apiVersion: `${GROUP}/v1alpha1`, kind: 'ImageRegistry', metadata,
  spec: {
    replicas: 1,
    persistentVolumeClaim: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } }, deleteClaim: false },
    auth: { acl: [
      { match: { labels: { accessMode: 'push' } }, actions: ['push', 'pull'], comment: "push secrets' accounts may push and pull" },
      { match: { labels: { accessMode: 'pull' } }, actions: ['pull'], comment: "pull secrets' accounts may only pull" },
    ] },
  },
}));

const ROUTES = { mutate: { path: '/mutate', body: MUTATE_BODY }, validate: { path: '/validate', body: VALIDATE_BODY } };

/** One request, with the answer's content type and exact body bytes. */
function capture(port: number, caPem: string, path: string, body: string): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', ca: caPem, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function rssMiB(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

interface LoadClient {
  run(run: LoadRun): Promise<LoadResult>;
  stop(): void;
}

function startLoadClient(module: string): LoadClient {
  const child: ChildProcess = fork(module, [], { execPath: process.execPath, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    run: (run) =>
      new Promise((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`load client exited (${code})`));
        child.once('exit', onExit);
        child.once('message', (result) => {
          child.off('exit', onExit);
          resolve(result as LoadResult);
        });
        child.send(run);
      }),
    stop: () => child.kill('SIGTERM'),
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

/** What one CPU profile sample of the webhook was doing, judged from its whole stack. */
function webhookActivity(stack: ProfileNode['callFrame'][]): string {
  const leaf = stack[0];
  const anywhere = (test: (frame: ProfileNode['callFrame']) => boolean) => stack.some(test);
  if (!leaf) return 'other';
  if (leaf.functionName === '(idle)') return 'idle';
  if (leaf.functionName === '(garbage collector)') return 'garbage collection';
  if (anywhere((f) => f.url === 'node:internal/console/constructor')) return 'the JSON log line per admission (console.log)';
  if (anywhere((f) => f.url.includes('webstreams') || f.url === 'node:internal/deps/undici/undici')) return 'web Request / web streams (off the fast path of @hono/node-server)';
  if (anywhere((f) => f.url === 'node:_http_outgoing')) return 'writing the response (HTTP + TLS encryption)';
  if (leaf.functionName === 'parse' || leaf.functionName === 'stringify') return 'JSON.parse / JSON.stringify';
  if (/\/dist\/(webhook|chunks\/)/.test(leaf.url)) return 'hono routing + the webhook\'s own code (defaults, validation, metrics)';
  if (leaf.url.startsWith('node:') || leaf.url === '') return 'Node internals and native (TLS read, HTTP parse, timers, program)';
  return 'other';
}

/** Runs the webhook under --cpu-prof for one load run and attributes its CPU time per admission. */
async function profileWebhook(context: WebhookLoadContext, client: LoadClient): Promise<{ requests: number; activities: { name: string; usPerRequest: number }[] }> {
  const port = await freePort();
  const dir = mkdtempSync(join(context.workDir, 'webhook-profile-'));
  const log = openSync(join(dir, 'webhook.log'), 'a');
  const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '250', join(context.app.dist, 'webhook.js')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KUBECONFIG: context.recorder.kubeconfig, WEBHOOK_HOST: '127.0.0.1', WEBHOOK_PORT: String(port), WEBHOOK_TLS_CERT_FILE: context.tls.certFile, WEBHOOK_TLS_KEY_FILE: context.tls.keyFile, WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS: '1' },
    stdio: ['ignore', log, 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor('profiled webhook', async () => (await capture(port, context.tls.ca.certPem, '/mutate', MUTATE_BODY)).status === 200, 20_000);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const result = await client.run({ port, caPem: context.tls.ca.certPem, path: '/mutate', body: MUTATE_BODY, concurrency: 16, warmupMs: 0, durationMs: 3000 });
  child.kill('SIGTERM');
  await exited;
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return { requests: result.requests, activities: [] };
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const stack: ProfileNode['callFrame'][] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at);
      if (node) stack.push(node.callFrame);
    }
    const activity = webhookActivity(stack);
    totals.set(activity, (totals.get(activity) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  // the profile spans start-up and the warm-up too; per request is an upper bound of the steady state
  const activities = [...totals].filter(([name]) => name !== 'idle').map(([name, us]) => ({ name, usPerRequest: us / Math.max(1, result.requests) })).sort((a, b) => b.usPerRequest - a.usPerRequest);
  return { requests: result.requests, activities };
}

/**
 * Peak RSS of a second webhook whose V8 heap is sized as in its pod: the Deployment limits memory to
 * 256Mi and Node sizes the heap from that cgroup limit; this machine has no such limit (24 GB), so
 * the sizes are given as flags — an approximation of what Node derives from 256Mi.
 */
async function cappedPeakRss(context: WebhookLoadContext, client: LoadClient): Promise<{ peak: number; rps: number }> {
  const webhook = await startWebhook({ tls: context.tls, env: { NODE_OPTIONS: POD_HEAP_FLAGS }, kubeconfig: context.recorder.kubeconfig, entry: join(context.app.dist, 'webhook.js') });
  const pid = webhook.process.child.pid ?? 0;
  let peak = rssMiB(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid) || 0)), 50);
  try {
    let rps = 0;
    for (const route of ['mutate', 'validate'] as const) {
      rps = (await client.run({ port: webhook.port, caPem: context.tls.ca.certPem, path: ROUTES[route].path, body: ROUTES[route].body, concurrency: 64, warmupMs: 0, durationMs: 3000 })).rps;
    }
    return { peak, rps };
  } finally {
    clearInterval(sampler);
    await webhook.stop();
  }
}

/** Starts a helper server (bundled .mjs) with the webhook's certificate; resolves once it listens. */
async function startServer(script: string, context: WebhookLoadContext, responsesFile: string, extra: string[] = []): Promise<{ port: number; pid: number; stop(): void }> {
  const port = await freePort();
  const child = spawn(process.execPath, [script, String(port), context.tls.certFile, context.tls.keyFile, responsesFile, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
  return { port, pid: child.pid ?? 0, stop: () => child.kill('SIGTERM') };
}

/** The servers of every cell, in the order the table shows them. */
export const SERVERS = ['bare node:https', 'hono', 'webhook'] as const;
type Server = (typeof SERVERS)[number];
type CellResults = Record<Server, LoadResult[]>;

type Route = keyof typeof ROUTES;

export async function webhookLoadSection(context: WebhookLoadContext): Promise<SectionResult> {
  const started = Date.now();
  const { tls, recorder } = context;
  const webhook = await startWebhook({ tls, env: {}, kubeconfig: recorder.kubeconfig, entry: join(context.app.dist, 'webhook.js') });
  const pid = webhook.process.child.pid ?? 0;
  const client = startLoadClient(context.loadClient);
  try {
    // the webhook loads the Kubernetes client right after it listens; idle means after that
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idleRss = rssMiB(pid);
    const captured: Record<string, { contentType: string; body: string }> = {};
    for (const [route, { path, body }] of Object.entries(ROUTES)) {
      const answer = await capture(webhook.port, tls.ca.certPem, path, body);
      if (answer.status !== 200 || !answer.body.includes('"allowed":true')) throw new Error(`webhook ${path} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
      captured[path] = { contentType: answer.contentType, body: answer.body };
      if (route === 'mutate' && !answer.body.includes('"patch"')) throw new Error('the mutate request produced no patch');
    }
    const responsesFile = join(context.workDir, 'responses.json');
    writeFileSync(responsesFile, JSON.stringify(captured));
    const helpers = [
      await startServer(context.baselineServer, context, responsesFile),
      await startServer(context.honoEchoServer, context, responsesFile),
    ];
    const ports: Record<Server, number> = { 'bare node:https': helpers[0]?.port ?? 0, hono: helpers[1]?.port ?? 0, webhook: webhook.port };
    const apiBefore = recorder.count;
    let peakRss = idleRss;
    let baselinePeak = 0;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssMiB(pid) || 0);
      baselinePeak = Math.max(baselinePeak, rssMiB(helpers[0]?.pid ?? 0) || 0);
    }, 50);
    const results: Record<string, CellResults> = {};
    try {
      for (const route of Object.keys(ROUTES) as Route[]) {
        for (const concurrency of CONCURRENCY) {
          const run = (server: Server) => () => client.run({ port: ports[server], caPem: tls.ca.certPem, path: ROUTES[route].path, body: ROUTES[route].body, concurrency, warmupMs: context.warmupMs, durationMs: context.durationMs });
          results[`${route} ${concurrency}`] = await interleaved(context.runs, Object.fromEntries(SERVERS.map((server) => [server, run(server)])) as Record<Server, () => Promise<LoadResult>>);
        }
      }
    } finally {
      clearInterval(sampler);
    }
    for (const helper of helpers) helper.stop();
    const apiRequests = recorder.count - apiBefore;
    for (const [key, cell] of Object.entries(results)) {
      const all = Object.values(cell).flat();
      const errors = all.reduce((n, r) => n + r.errors, 0);
      if (errors > 0) throw new Error(`${key}: ${errors} failed requests`);
      const path = ROUTES[key.split(' ')[0] as Route].path;
      if (all.some((r) => r.lastBody !== captured[path]?.body)) throw new Error(`${key}: an answer differed from the captured one`);
    }
    const profile = await profileWebhook(context, client);
    const capped = await cappedPeakRss(context, client);
    return summarize(context, results, { idleRss, peakRss, baselineRss: baselinePeak, apiRequests, cappedPeak: capped.peak, cappedRps: capped.rps }, profile, Date.now() - started);
  } finally {
    client.stop();
    await webhook.stop();
  }
}

function summarize(
  context: WebhookLoadContext,
  results: Record<string, CellResults>,
  memory: { idleRss: number; peakRss: number; baselineRss: number; apiRequests: number; cappedPeak: number; cappedRps: number },
  profile: { requests: number; activities: { name: string; usPerRequest: number }[] },
  durationMs: number,
): SectionResult {
  const rows: Row[] = [];
  const details = [
    `Requests: an ImageRegistry CREATE AdmissionReview with dryRun (mutate: ${MUTATE_BODY.length} bytes in, a JSON Patch out; validate: ${VALIDATE_BODY.length} bytes in). Neither needs the Kubernetes API (no registry lookup for this kind, no Job for a dry run): the webhook's KUBECONFIG points at the recording stand-in, which saw ${memory.apiRequests} requests during the runs. Each run: ${context.warmupMs} ms warm-up (not counted) + ${context.durationMs} ms measured; ${context.runs} runs per cell with the servers in alternating order; the load generator is a separate Node process (keep-alive https.Agent, one socket per concurrent request). The webhook writes its one JSON log line per admission to a file, as it does in the tests.`,
    '',
    'Servers, all with the same certificate and answering the same bytes: **bare** node:https; **hono** on @hono/node-server reading the body with `c.req.text()`; the **webhook** (dist/webhook.js). Ratios are medians of the per-round ratios to the bare server.',
    '',
    '| Route | Concurrent | Bare rps | hono | Webhook | Webhook p50 / p99 | hono p50 / p99 | Bare p50 / p99 |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [key, cell] of Object.entries(results)) {
    const [route, concurrency] = key.split(' ');
    const bare = cell['bare node:https'];
    const rps = (server: Server) => median(cell[server].map((r) => r.rps));
    const pairRatio = (server: Server) => median(cell[server].map((r, i) => r.rps / (bare[i]?.rps ?? NaN)));
    const p = (server: Server, which: 'p50Ms' | 'p99Ms') => median(cell[server].map((r) => r[which]));
    const cellText = (server: Server) => `${rps(server).toFixed(0)} (${pairRatio(server).toFixed(2)}×)`;
    details.push(`| ${route} | ${concurrency} | ${rps('bare node:https').toFixed(0)} | ${cellText('hono')} | ${cellText('webhook')} | ${ms(p('webhook', 'p50Ms'))} / ${ms(p('webhook', 'p99Ms'))} | ${ms(p('hono', 'p50Ms'))} / ${ms(p('hono', 'p99Ms'))} | ${ms(p('bare node:https', 'p50Ms'))} / ${ms(p('bare node:https', 'p99Ms'))} |`);
    const c = Number(concurrency);
    const ratioWebhook = pairRatio('webhook');
    rows.push({
      figure: `webhook ${route}, ${c} concurrent: rps`,
      result: `${rps('webhook').toFixed(0)} rps`,
      baseline: `${rps('bare node:https').toFixed(0)} rps bare node:https`,
      ratio: `${ratioWebhook.toFixed(2)}×`,
      target: `≥ ${TARGET_RPS_RATIO}×`,
      met: ratioWebhook >= TARGET_RPS_RATIO,
      limit: `hono on @hono/node-server alone: ${pairRatio('hono').toFixed(2)}× of bare; the rest is the webhook's own work (parse, default/validate, log line, metrics)${c > 1 ? '; server and load generator each own one of the 2 shared cores' : ''}`,
    });
    if (c === 64) {
      const wRps = rps('webhook');
      rows.push({
        figure: `webhook ${route}, 64 concurrent: p50 / p99`,
        result: `${ms(p('webhook', 'p50Ms'))} / ${ms(p('webhook', 'p99Ms'))}`,
        baseline: `${ms(p('bare node:https', 'p50Ms'))} / ${ms(p('bare node:https', 'p99Ms'))}`,
        ratio: ratio(p('webhook', 'p99Ms'), p('bare node:https', 'p99Ms')),
        target: `p99 < ${TARGET_P99_MS} ms`,
        met: p('webhook', 'p99Ms') < TARGET_P99_MS,
        limit: `queueing: 64 requests in flight on one saturated core wait ~64 / rps each (Little's law: ${ms((64 / wRps) * 1000)} at ${wRps.toFixed(0)} rps); p99 < 5 ms at 64 needs > ${(64 / 0.005).toFixed(0)} rps`,
      });
    }
  }
  rows.push({
    figure: 'webhook RSS idle / peak under load',
    result: `${memory.idleRss.toFixed(0)} MB / ${memory.peakRss.toFixed(0)} MB; ${memory.cappedPeak.toFixed(0)} MB peak with the heap sized as in its pod`,
    baseline: `${memory.baselineRss.toFixed(0)} MB peak of the bare node:https server`,
    ratio: ratio(memory.peakRss, memory.baselineRss),
    target: `< ${TARGET_RSS_MB} MB`,
    met: memory.idleRss < TARGET_RSS_MB && memory.cappedPeak < TARGET_RSS_MB,
    limit: 'idle: Node (~40 MB) + the lazily loaded @kubernetes/client-node; under load V8 grows its young generation as far as the memory it sees allows (24 GB here), and TLS/malloc memory of 64 connections comes on top — the bare server peaks near the target too',
  });
  const cpuPerRequest = profile.activities.reduce((n, a) => n + a.usPerRequest, 0);
  details.push(
    '',
    `Where the webhook's CPU goes (a separate run under \`--cpu-prof\`: mutate, 16 concurrent, 3 s, ${profile.requests} admissions; each sample attributed by its whole stack; includes start-up, so an upper bound): ${cpuPerRequest.toFixed(0)} µs CPU per admission.`,
    '',
    '| Activity | µs per admission |',
    '|---|---|',
    ...profile.activities.filter((a) => a.usPerRequest >= 1).map((a) => `| ${a.name} | ${a.usPerRequest.toFixed(0)} |`),
  );
  details.push('', `RSS (VmRSS of the server process, MiB): webhook idle ${memory.idleRss.toFixed(1)} (2 s after it listened, client loaded), peak ${memory.peakRss.toFixed(1)} sampled every 50 ms across all runs; bare node:https server peak ${memory.baselineRss.toFixed(1)}. A second webhook with \`${POD_HEAP_FLAGS}\` (roughly the heap Node sizes for the Deployment's 256Mi limit; this machine has no memory limit to derive it from) peaked at ${memory.cappedPeak.toFixed(1)} over 3 s of mutate and 3 s of validate at 64 concurrent (${memory.cappedRps.toFixed(0)} rps in the last run).`);
  return { title: '1. Webhook over TLS', rows, details, durationMs };
}
