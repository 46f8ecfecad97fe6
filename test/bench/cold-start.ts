// Benchmark 2: cold start of the dist/ entry points — wall time from spawning `node dist/<entry>.js`
// to its first Kubernetes API request (KUBECONFIG points at the recording stand-in), next to
// `node -e 0` and two floors measured in the same rounds: a bare node:https request, and a probe that
// only loads @kubernetes/client-node and sends one request. Then the same with Node's compile cache
// prepared the way an image build would, bundle sizes, and a CPU profile of where the time goes.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GROUP_VERSION } from '../../functions/types.ts';
import { freePort } from '../support/processes.ts';
import type { TestTls } from '../support/webhook.ts';
import type { ApiRecorder } from './api-recorder.ts';
import { bundleHelper, bundleSizes, buildMappedVariant, bytesByPackage, packageOf, type AppDir } from './bundles.ts';
import type { Row, SectionResult } from './report.ts';
import { interleaved, kib, median, ms, ratio } from './stats.ts';
import { review } from './webhook-load.ts';

export interface ColdStartContext {
  app: AppDir;
  tls: TestTls;
  recorder: ApiRecorder;
  runs: number;
}

const TARGET_RATIO = 1.5;
/** The Job entry points and the arguments their Jobs run them with (reconcile: one registry, as enqueued). */
const JOB_ENTRIES: Record<string, string[]> = {
  reconcile: ['--registry', 'bench/registry'],
  rotate: [],
  resync: [],
  bootstrap: [],
};

function exitOf(child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function timeToExit(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: 'ignore' });
  await exitOf(child);
  return performance.now() - started;
}

/** Spawn → the recorder's next request; the process is killed once it has asked. */
async function timeToFirstRequest(recorder: ApiRecorder, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const next = recorder.nextRequest();
  const started = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = exitOf(child);
  try {
    const at = await Promise.race([next, exited.then(() => Promise.reject(new Error(`${args.join(' ')} exited before its first API request: ${stderr.slice(-500)}`)))]);
    return at - started;
  } finally {
    child.kill('SIGKILL');
    await exited;
    next.catch(() => undefined);
  }
}

/** The webhook: spawn → "webhook listening", and → the first API request of an admission sent right then. */
async function webhookStart(context: ColdStartContext, env: NodeJS.ProcessEnv): Promise<{ listening: number; firstRequest: number }> {
  const { app, tls, recorder } = context;
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [join(app.dist, 'webhook.js')], {
    env: { ...env, KUBECONFIG: recorder.kubeconfig, WEBHOOK_HOST: '127.0.0.1', WEBHOOK_PORT: String(port), WEBHOOK_TLS_CERT_FILE: tls.certFile, WEBHOOK_TLS_KEY_FILE: tls.keyFile },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = exitOf(child);
  try {
    const listening = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('webhook listening')) resolve(performance.now());
      });
      void exited.then(() => reject(new Error(`webhook exited before listening: ${out.slice(-500)}`)));
    });
    const next = recorder.nextRequest();
    // an ImagePushSecret CREATE: the validating webhook looks its registry up through the API
    const target = { kind: 'ImagePushSecret', resource: 'imagepushsecrets', name: 'app', namespace: 'bench' };
    const body = review('cold-start', { apiVersion: GROUP_VERSION, kind: target.kind, metadata: { name: target.name, namespace: target.namespace }, spec: {} }, target);
    const req = request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca: tls.ca.certPem, agent: false, headers: { 'content-type': 'application/json' } }, (res) => res.resume());
    req.on('error', () => undefined);
    req.end(JSON.stringify(body));
    const firstRequest = await next;
    return { listening: listening - started, firstRequest: firstRequest - started };
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

export const PREPARE_KUBECONFIG = [
  'apiVersion: v1',
  'kind: Config',
  'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]',
  'users: [{name: none, user: {token: none}}]',
  'contexts: [{name: none, context: {cluster: none, user: none}}]',
  'current-context: none',
  '',
].join('\n');

/**
 * Fills a compile-cache directory the way an image build can (no API server there): each Job entry
 * runs until its first request fails against a closed port; the webhook's entry starts and stops for
 * lack of certificates, and its lazily loaded chunks are imported once.
 */
async function prepareCompileCache(app: AppDir, cacheDir: string, workDir: string): Promise<void> {
  const kubeconfig = join(workDir, 'closed-port.kubeconfig');
  // the same file an image build can write: a server that refuses connections, a dummy token
  writeFileSync(kubeconfig, PREPARE_KUBECONFIG);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDir, NODE_COMPILE_CACHE: cacheDir };
  for (const [entry, args] of Object.entries(JOB_ENTRIES)) await timeToExit([join(app.dist, `${entry}.js`), ...args], { ...env, KUBECONFIG: kubeconfig });
  await timeToExit([join(app.dist, 'webhook.js')], env);
  const chunks = readdirSync(join(app.dist, 'chunks')).filter((f) => f.endsWith('.js')).map((f) => pathToFileURL(join(app.dist, 'chunks', f)).href);
  await timeToExit(['--input-type=module', '-e', `for (const url of ${JSON.stringify(chunks)}) await import(url);`], env);
}

interface ProfileFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: ProfileFrame; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** What a profile sample was doing, in words (bundle code is attributed to its npm package). */
function categoryOf(frame: ProfileFrame, bundleUrl: string, map: SourceMap): string {
  if (frame.url === bundleUrl) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string };
    return entry.originalSource ? `run ${packageOf(entry.originalSource)}` : 'run the bundle\'s top level (hoisted ES modules, not attributable)';
  }
  if (!frame.url) {
    if (frame.functionName === '(garbage collector)') return 'garbage collection';
    if (frame.functionName === '(idle)') return 'idle (waiting for the network)';
    if (frame.functionName === '(program)') return 'V8 native (lazy compilation, startup)';
    return `native ${frame.functionName}`;
  }
  if (frame.url.startsWith('node:')) {
    if (['compileSourceTextModule', 'wrapSafe', 'compileFunction'].includes(frame.functionName)) return 'compile the bundle';
    if (['compileForInternalLoader', 'internalBinding', 'requireBuiltin'].includes(frame.functionName)) return 'load Node built-in modules';
    return 'other Node internals (loader, fs, TLS, http)';
  }
  return 'other';
}

function profileBreakdown(profile: CpuProfile, bundleUrl: string, map: SourceMap): Map<string, number> {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    if (!frame) return;
    const key = categoryOf(frame, bundleUrl, map);
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  totals.set('total (profiled, until exit)', (profile.endTime - profile.startTime) / 1000);
  return totals;
}

/** CPU milliseconds spent inside frames named `name` (and what they called), per profile. */
function inclusiveMs(profile: CpuProfile, name: string): number {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let total = 0;
  profile.samples.forEach((id, i) => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (nodes.get(at)?.callFrame.functionName === name) {
        total += (profile.timeDeltas[i] ?? 0) / 1000;
        return;
      }
    }
  });
  return total;
}

/** Profiles `runs` starts of a Job bundle up to its exit; CPU ms in Node's module-format detection per start. */
async function detectionMs(context: ColdStartContext, bundle: string, workDir: string): Promise<number[]> {
  const results: number[] = [];
  for (let i = 0; i < context.runs; i++) {
    const dir = mkdtempSync(join(workDir, 'detect-'));
    context.recorder.nextRequest().catch(() => undefined);
    await timeToExit(['--cpu-prof', '--cpu-prof-dir', dir, bundle, ...(JOB_ENTRIES.reconcile ?? [])], { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDir, KUBECONFIG: context.recorder.kubeconfig });
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file) results.push(inclusiveMs(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, 'detectModuleFormat'));
  }
  return results;
}

/** CPU profiles of reconcile (same code as dist/, with a source map) until it exits after the first answer. */
async function whereTheTimeGoes(context: ColdStartContext, workDir: string) {
  const variant = await buildMappedVariant('cronjobs/reconcile.ts', 'reconcile');
  const map = new SourceMap(JSON.parse(readFileSync(variant.map, 'utf8')));
  const bundleUrl = pathToFileURL(variant.file).href;
  const runs: Map<string, number>[] = [];
  for (let i = 0; i < context.runs; i++) {
    const dir = mkdtempSync(join(workDir, 'profile-'));
    const next = context.recorder.nextRequest();
    next.catch(() => undefined);
    await timeToExit(['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '250', variant.file, ...(JOB_ENTRIES.reconcile ?? [])], {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDir, KUBECONFIG: context.recorder.kubeconfig,
    });
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file) runs.push(profileBreakdown(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, bundleUrl, map));
  }
  const keys = [...new Set(runs.flatMap((r) => [...r.keys()]))];
  const medians = keys.map((key) => ({ key, ms: median(runs.map((r) => r.get(key) ?? 0)) })).sort((a, b) => b.ms - a.ms);
  return { medians, packages: bytesByPackage(variant.metafile) };
}

export async function coldStartSection(context: ColdStartContext): Promise<SectionResult> {
  const started = Date.now();
  const { app, recorder, runs } = context;
  const workDir = mkdtempSync(join(tmpdir(), 'iro-bench-cold-'));
  const home = join(workDir, 'home');
  mkdirSync(home);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, KUBECONFIG: recorder.kubeconfig };
  const cacheDir = join(workDir, 'compile-cache');
  await prepareCompileCache(app, cacheDir, workDir);
  const cached = { ...env, NODE_COMPILE_CACHE: cacheDir };
  const probe = await bundleHelper(new URL('./probe-client-node.ts', import.meta.url).pathname, workDir, { asProduct: true });
  const caFile = join(workDir, 'ca.crt');
  writeFileSync(caFile, context.tls.ca.certPem);
  const httpsFloor = `require('https').get({host:'127.0.0.1',port:${recorder.port},path:'/version',ca:require('fs').readFileSync(${JSON.stringify(caFile)})}).on('error',()=>{})`;

  const thunks: Record<string, () => Promise<number>> = {
    'node -e 0': () => timeToExit(['-e', '0'], env),
    'node:https request': () => timeToFirstRequest(recorder, ['-e', httpsFloor], env),
    'client-node probe': () => timeToFirstRequest(recorder, [probe], env),
  };
  for (const [entry, args] of Object.entries(JOB_ENTRIES)) {
    thunks[entry] = () => timeToFirstRequest(recorder, [join(app.dist, `${entry}.js`), ...args], env);
    thunks[`${entry} (compile cache)`] = () => timeToFirstRequest(recorder, [join(app.dist, `${entry}.js`), ...args], cached);
  }
  // before/after of test/build.ts writing dist/package.json {"type":"module"}: the same bundle without it
  const hasPackageJson = existsSync(join(app.dist, 'package.json'));
  const untyped = join(workDir, 'untyped', 'dist');
  cpSync(app.dist, untyped, { recursive: true });
  rmSync(join(untyped, 'package.json'), { force: true });
  const webhook: { listening: number; firstRequest: number }[] = [];
  const webhookCached: { listening: number; firstRequest: number }[] = [];
  thunks.webhook = async () => {
    const result = await webhookStart(context, env);
    webhook.push(result);
    return result.firstRequest;
  };
  thunks['webhook (compile cache)'] = async () => {
    const result = await webhookStart(context, cached);
    webhookCached.push(result);
    return result.firstRequest;
  };
  // one untimed round first: page cache and CPU frequency settle
  for (const thunk of Object.values(thunks)) await thunk();
  webhook.length = 0;
  webhookCached.length = 0;
  const samples = await interleaved(runs, thunks);
  const med = (key: string) => median(samples[key] ?? []);
  // ~10 ms is below this machine's timing noise: the CPU profile shows the format detection directly
  const detection = {
    typed: await detectionMs(context, join(app.dist, 'reconcile.js'), workDir),
    untyped: await detectionMs(context, join(untyped, 'reconcile.js'), workDir),
  };
  const baseline = med('node -e 0');
  const profile = await whereTheTimeGoes(context, workDir);
  const sizes = bundleSizes(app.dist);
  const size = (file: string) => sizes.find((s) => s.file === file)?.bytes ?? NaN;

  const rows: Row[] = [...Object.keys(JOB_ENTRIES), 'webhook'].map((entry) => {
    const plain = med(entry);
    const withCache = med(`${entry} (compile cache)`);
    const what = entry === 'webhook' ? 'listening, then first API request of an admission' : 'first API request';
    return {
      figure: `cold start → ${what}: ${entry}`,
      result: `${ms(plain)}; ${ms(withCache)} with compile cache`,
      baseline: `node -e 0: ${ms(baseline)}`,
      ratio: `${ratio(plain, baseline)} / ${ratio(withCache, baseline)}`,
      target: `≤ ${TARGET_RATIO}×`,
      met: plain / baseline <= TARGET_RATIO,
      limit: entry === 'webhook'
        ? `listening after ${ms(median(webhook.map((w) => w.listening)))} (client-node not loaded yet); the first lookup waits for the lazily loaded client`
        : `loading @kubernetes/client-node: the probe that only loads it and sends one request takes ${ms(med('client-node probe'))}; a bare node:https request ${ms(med('node:https request'))}`,
    };
  });
  rows.push({
    figure: 'bundle sizes (minified)',
    result: `reconcile.js ${kib(size('reconcile.js'))}, webhook.js ${kib(size('webhook.js'))} + chunks ${kib(sizes.filter((s) => s.file.startsWith('chunks/')).reduce((n, s) => n + s.bytes, 0))}`,
    baseline: '–',
    ratio: '–',
    target: '–',
    limit: `client-node with undici: ${profile.packages.slice(0, 3).map((p) => `${p.name} ${kib(p.bytes)}`).join(', ')} of reconcile`,
  });

  const details = [
    `Wall time from spawn to the first request arriving at a local HTTPS stand-in of the API (it answers 503); median of ${runs} interleaved rounds after one untimed round. \`node -e 0\` is spawn → exit. "compile cache": NODE_COMPILE_CACHE pointing at a directory prepared as an image build could (each Job entry run once against a closed port; the webhook started once without certificates and its chunks imported once).`,
    '',
    '| Process | Median | Runs (ms) |',
    '|---|---|---|',
    ...Object.entries(samples).map(([key, values]) => `| ${key} | ${ms(median(values))} | ${values.map((v) => v.toFixed(0)).join(', ')} |`),
    `| webhook: spawn → listening | ${ms(median(webhook.map((w) => w.listening)))} | ${webhook.map((w) => w.listening.toFixed(0)).join(', ')} |`,
    `| webhook (compile cache): spawn → listening | ${ms(median(webhookCached.map((w) => w.listening)))} | ${webhookCached.map((w) => w.listening.toFixed(0)).join(', ')} |`,
    '',
    `Where the time goes in reconcile (CPU profile, 250 µs sampling, median of ${runs} runs of the same minified code with a source map; the profile starts after Node's own bootstrap, ≈ \`node -e 0\`, and runs until the process exits after the 503):`,
    '',
    '| Activity | Median |',
    '|---|---|',
    ...profile.medians.filter((m) => m.ms >= 0.5).map((m) => `| ${m.key} | ${ms(m.ms)} |`),
    '',
    `dist/package.json with {"type":"module"} (written by test/build.ts${hasPackageJson ? '' : ' — missing in this build!'}): without it Node detects each bundle's format by parsing it (the image's /app has no other package.json). CPU time in Node's format detection (detectModuleFormat) per start of reconcile, median of ${context.runs} profiled runs: ${ms(median(detection.untyped))} without it, ${ms(median(detection.typed))} with it.`,
    '',
    `Bundle sizes (dist/): ${sizes.map((s) => `${s.file} ${kib(s.bytes)}`).join(', ')}. reconcile.js by package: ${profile.packages.slice(0, 8).map((p) => `${p.name} ${kib(p.bytes)}`).join(', ')}.`,
  ];
  return { title: '2. Job cold start', rows, details, durationMs: Date.now() - started };
}
