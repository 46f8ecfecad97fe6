// Benchmark 3: a rotation of 1,000 push/pull CRs against the real API server — `dist/rotate.js
// --registry <ns>/<name>` run as a process with the admin kubeconfig and OPERATOR_ROLLOUT_TIMEOUT=0s,
// in the steady state of a daily rotation: before every timed run each CR has its current account
// and one that has just expired, so a run creates N accounts, rewrites the auth config, writes N
// Secrets and N statuses (and Events), and deletes N expired accounts. Next to each run: the bcrypt
// bound (N × one hash at BCRYPT_COST ÷ cores) and N × one create request, both measured then; and
// the run's API requests, from the API server's apiserver_request_total.
//
// The expired accounts are written by the benchmark (the real account of the CR with ttl 1s, as
// rotation 0), and the rotation before the previous one is deleted before each run: that is the
// state a daily run meets, without waiting a day (or a shortened interval) for expiry.
import { hashSync } from 'bcryptjs';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { connectKube } from '../../cronjobs/kube.ts';
import { BCRYPT_COST } from '../../cronjobs/passwords.ts';
import { desiredAccount, ROTATION_LABEL } from '../../functions/accounts.ts';
import { accountName } from '../../functions/names.ts';
import { GROUP_VERSION, type ImageSecret } from '../../functions/types.ts';
import type { TestCluster } from '../support/cluster.ts';
import { kubeApi, type KubeApi } from '../support/kube-api.ts';
import { installOperatorBase } from '../support/operator.ts';
import { delay } from '../support/processes.ts';
import { requestDelta, requestTotals, totalOf, type RequestCounts } from './apiserver-metrics.ts';
import type { AppDir } from './bundles.ts';
import type { Row, SectionResult } from './report.ts';
import { median, ratio, seconds } from './stats.ts';

export interface RotationContext {
  app: AppDir;
  cluster: TestCluster;
  /** push + pull CRs in all */
  crs: number;
  /** timed runs wanted; fewer (at least MIN_RUNS) when the next one would end past budgetMs */
  runs: number;
  /** wall-clock budget of the whole section */
  budgetMs: number;
  /** spread over this many namespaces besides the registry's */
  namespaces: number;
}

const TARGET_RATIO = 1.5;
const MIN_RUNS = 3;
const REGISTRY = 'registry';

interface RunResult {
  wallMs: number;
  /** CPU time of the rotate process itself (its last sample, up to 100 ms short) */
  cpuMs: number;
  requests: RequestCounts;
  hashMs: number;
  createMs: number;
  /** the benchmark's own preparation of the run (old rotation deleted, expired accounts written, bounds measured) */
  prepMs: number;
}

/** `work` on every item, `width` at a time. */
export async function parallel<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  }));
}

export async function createObject(api: KubeApi, path: string, object: unknown): Promise<void> {
  const response = await api.request('POST', path, object);
  if (response.status !== 201) throw new Error(`POST ${path}: HTTP ${response.status} ${JSON.stringify(response.body).slice(0, 300)}`);
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; NaN once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Runs a Job entry point as a process, as its Job would, with the admin kubeconfig: wall time and the process's own CPU time. */
async function runEntry(context: Pick<RotationContext, 'app' | 'cluster'>, entry: string, registryNs: string | undefined): Promise<{ wallMs: number; cpuMs: number }> {
  const started = performance.now();
  const args = registryNs ? ['--registry', `${registryNs}/${REGISTRY}`] : [];
  const child = spawn(process.execPath, [join(context.app.dist, `${entry}.js`), ...args], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: context.app.root,
      KUBECONFIG: context.cluster.kubeconfig,
      OPERATOR_ROLLOUT_TIMEOUT: '0s',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // the entry logs JSON lines on stdout and stderr; the tail says why it failed
  let output = '';
  const keep = (chunk: string) => (output = (output + chunk).slice(-4000));
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  let cpu = 0;
  const sampler = setInterval(() => (cpu = Math.max(cpu, cpuSeconds(child.pid ?? 0) || 0)), 100);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`${entry}.js exited with ${code}: ${output.slice(-1500)}`);
  return { wallMs: performance.now() - started, cpuMs: cpu * 1000 };
}

/** Median time of one bcrypt hash at BCRYPT_COST in this process (5 batches of 100). */
function singleHashMs(): number {
  const batches = Array.from({ length: 5 }, () => {
    const started = performance.now();
    for (let i = 0; i < 100; i++) hashSync(`password-${i}`, BCRYPT_COST);
    return (performance.now() - started) / 100;
  });
  return median(batches);
}

/** Median latency of creating one ImageRegistryAccount through cronjobs/kube.ts (what the Job does N times). */
async function singleCreateMs(cluster: TestCluster, namespace: string, round: number): Promise<number> {
  const config = new KubeConfig();
  config.loadFromFile(cluster.kubeconfig);
  const kube = connectKube(config);
  const hash = hashSync('bench', BCRYPT_COST);
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const account = {
      apiVersion: GROUP_VERSION,
      kind: 'ImageRegistryAccount',
      metadata: { name: `create-latency.${round}.${i}`, namespace, labels: { 'app.kubernetes.io/managed-by': 'bench' } },
      spec: { password: hash, labels: { namespace: [namespace], name: ['create-latency'], accessMode: ['push'] }, ttl: '48h' },
    };
    const started = performance.now();
    await kube.create(account);
    times.push(performance.now() - started);
  }
  await cluster.kubectl(['delete', 'imageregistryaccounts', '--all', '--wait=false'], { namespace });
  return median(times.slice(5)); // the first requests pay for discovery and the connection
}

/** Deletes the registry's accounts of one rotation in one request (deletecollection). */
async function deleteRotation(api: KubeApi, namespace: string, rotation: number): Promise<void> {
  const selector = encodeURIComponent(`${ROTATION_LABEL}=${rotation}`);
  const response = await api.request('DELETE', `/apis/${GROUP_VERSION}/namespaces/${namespace}/imageregistryaccounts?labelSelector=${selector}`);
  if (response.status !== 200) throw new Error(`deleting rotation ${rotation}: HTTP ${response.status}`);
}

/** The CRs as stored (their uids name the accounts' owner). */
async function listCrs(api: KubeApi): Promise<ImageSecret[]> {
  const crs: ImageSecret[] = [];
  for (const plural of ['imagepushsecrets', 'imagepullsecrets']) {
    const response = await api.request<{ items: ImageSecret[] }>('GET', `/apis/${GROUP_VERSION}/${plural}`);
    crs.push(...response.body.items.map((cr) => ({ ...cr, kind: plural === 'imagepushsecrets' ? 'ImagePushSecret' : 'ImagePullSecret' }) as ImageSecret));
  }
  return crs;
}

/**
 * Each CR's account as the operator writes it, as rotation 0 with ttl 1s: once a second has passed,
 * exactly what a rotation meets when the account of the rotation before the previous one expires.
 */
async function writeExpiredAccounts(api: KubeApi, crs: ImageSecret[], registry: { namespace: string; name: string }, hash: string): Promise<void> {
  await parallel(crs, 8, async (cr) => {
    const account = desiredAccount({ cr, registry, rotation: 1, passwordHash: hash, intervalSeconds: 86_400 });
    const mode = cr.kind === 'ImagePushSecret' ? 'push' : 'pull';
    const expired = {
      ...account,
      metadata: { ...account.metadata, name: accountName(mode, cr.metadata.namespace ?? '', cr.metadata.name ?? '', 0), labels: { ...account.metadata.labels, [ROTATION_LABEL]: '0' } },
      spec: { ...account.spec, ttl: '1s' },
    };
    await createObject(api, `/apis/${GROUP_VERSION}/namespaces/${registry.namespace}/imageregistryaccounts`, expired);
  });
}

async function rotationsOf(api: KubeApi): Promise<number[]> {
  const rotations: number[] = [];
  for (const plural of ['imagepushsecrets', 'imagepullsecrets']) {
    const response = await api.request<{ items: { status?: { rotation?: number } }[] }>('GET', `/apis/${GROUP_VERSION}/${plural}`);
    rotations.push(...response.body.items.map((cr) => cr.status?.rotation ?? 0));
  }
  return rotations;
}

export async function rotationSection(context: RotationContext): Promise<SectionResult> {
  const started = Date.now();
  const { cluster, crs } = context;
  await installOperatorBase(cluster);
  const api = kubeApi(cluster.kubeconfig);
  try {
    const registryNs = await cluster.createNamespace('bench-rotation');
    const scratchNs = await cluster.createNamespace('bench-create');
    const teams = await Promise.all(Array.from({ length: context.namespaces }, (_, i) => cluster.createNamespace(`bench-team-${i}`)));
    await createObject(api, `/apis/${GROUP_VERSION}/namespaces/${registryNs}/imageregistries`, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: REGISTRY }, spec: {} });
    const objects = Array.from({ length: crs }, (_, i) => {
      const kind = i % 2 === 0 ? 'ImagePushSecret' : 'ImagePullSecret';
      const namespace = teams[i % teams.length] as string;
      return { kind, namespace, body: { apiVersion: GROUP_VERSION, kind, metadata: { name: `app-${Math.floor(i / 2)}` }, spec: { registryRef: { name: REGISTRY, namespace: registryNs } } } };
    });
    await parallel(objects, 8, (o) => createObject(api, `/apis/${GROUP_VERSION}/namespaces/${o.namespace}/${o.kind.toLowerCase()}s`, o.body));
    const setupMs = Date.now() - started;

    // first issuance: rotation 1 for every CR (default interval 24h, ttl 48h)
    const firstIssuance = (await runEntry(context, 'reconcile', registryNs)).wallMs;
    const registry = { namespace: registryNs, name: REGISTRY };
    const stored = await listCrs(api);
    const expiredHash = hashSync('expired', BCRYPT_COST);

    const results: RunResult[] = [];
    for (let k = 0; k < context.runs; k++) {
      const prepared = Date.now();
      const rotation = k + 2; // created by this run; k + 1 is the previous one and stays
      if (k > 0) await deleteRotation(api, registryNs, k);
      await writeExpiredAccounts(api, stored, registry, expiredHash);
      const expiredAt = Date.now() + 2000; // ttl 1 s on a creationTimestamp of whole seconds
      const hashMs = singleHashMs();
      const createMs = await singleCreateMs(cluster, scratchNs, k);
      if (expiredAt > Date.now()) await delay(expiredAt - Date.now());
      const prepMs = Date.now() - prepared;
      const before = await requestTotals(cluster);
      const { wallMs, cpuMs } = await runEntry(context, 'rotate', registryNs);
      const requests = requestDelta(before, await requestTotals(cluster));
      const rotations = await rotationsOf(api);
      if (rotations.length !== crs || rotations.some((r) => r !== rotation)) throw new Error(`after run ${k + 1}, expected every CR at rotation ${rotation}, got ${[...new Set(rotations)].join(', ')}`);
      results.push({ wallMs, cpuMs, requests, hashMs, createMs, prepMs });
      // a loaded machine makes each run slower; keep the bench near its time budget
      const nextEnds = Date.now() + (wallMs + prepMs) * 1.2;
      if (results.length >= MIN_RUNS && nextEnds - started > context.budgetMs) break;
    }
    const liveAccounts = (await api.request<{ items: unknown[] }>('GET', `/apis/${GROUP_VERSION}/namespaces/${registryNs}/imageregistryaccounts`)).body.items.length;
    return summarize(context, { firstIssuance, setupMs, results, liveAccounts, budgetCut: results.length < context.runs }, Date.now() - started);
  } finally {
    api.close();
  }
}

function summarize(
  context: RotationContext,
  run: { firstIssuance: number; setupMs: number; results: RunResult[]; liveAccounts: number; budgetCut: boolean },
  durationMs: number,
): SectionResult {
  const { crs } = context;
  const cores = availableParallelism();
  const wall = median(run.results.map((r) => r.wallMs));
  const hashBound = median(run.results.map((r) => (crs * r.hashMs) / cores));
  const createBound = median(run.results.map((r) => crs * r.createMs));
  const pairHash = median(run.results.map((r) => r.wallMs / ((crs * r.hashMs) / cores)));
  const pairCreate = median(run.results.map((r) => r.wallMs / (crs * r.createMs)));
  const totals = run.results.map((r) => totalOf(r.requests));
  const lists = run.results.map((r) => totalOf(r.requests, ['LIST']));
  const gets = run.results.map((r) => totalOf(r.requests, ['GET']));
  const last = run.results.at(-1)?.requests ?? new Map();
  const rows: Row[] = [
    {
      figure: `rotation of ${crs.toLocaleString('en-US')} push/pull CRs: wall time`,
      result: seconds(wall),
      baseline: `bcrypt bound ${seconds(hashBound)} (N × ${median(run.results.map((r) => r.hashMs)).toFixed(2)} ms at cost ${BCRYPT_COST} ÷ ${cores} cores); N × one create ${seconds(createBound)}`,
      ratio: `${pairHash.toFixed(1)}× / ${pairCreate.toFixed(2)}×`,
      target: `≤ ${TARGET_RATIO}× the bcrypt bound`,
      met: pairHash <= TARGET_RATIO,
      limit: `API round trips, one after another: ${(median(totals) / crs).toFixed(1)} requests per CR (create account, apply Secret, apply status, Event, delete expired account) against an API server and etcd on the same 2 cores; the rotate process itself is busy ${((100 * median(run.results.map((r) => r.cpuMs))) / wall).toFixed(0)}% of the time, hashing (cost ${BCRYPT_COST}) ${((100 * hashBound) / wall).toFixed(1)}%`,
    },
    {
      figure: 'rotation: API requests',
      result: `${median(totals).toFixed(0)} (${(median(totals) / crs).toFixed(2)} per CR)`,
      baseline: `${median(lists).toFixed(0)} LIST, ${median(gets).toFixed(0)} GET`,
      ratio: '–',
      target: 'O(N), list reads',
      met: median(lists) < 50 && median(gets) < crs / 10,
      limit: 'one write per object the rotation changes; reads are a constant number of LISTs (accounts, CRs, Secrets by label), no per-CR GET',
    },
  ];
  const details = [
    `${crs} CRs (${crs / 2} ImagePushSecret + ${crs / 2} ImagePullSecret) in ${context.namespaces} namespaces, all for one ImageRegistry in its own namespace; \`dist/rotate.js --registry <ns>/${REGISTRY}\` run as a process with the admin kubeconfig and OPERATOR_ROLLOUT_TIMEOUT=0s (default interval 24h). Before each timed run the benchmark deletes the rotation before the previous one and writes, for every CR, its account as the operator would but already expired (ttl 1s): the run meets the state of a daily rotation — creates ${crs} accounts, deletes ${crs} expired ones. Creating the namespaces, registry and CRs took ${seconds(run.setupMs)}; the first issuance (\`dist/reconcile.js\`: certificates, then accounts and Secrets for all CRs) ${seconds(run.firstIssuance)}; preparing each timed run ${run.results.map((r) => seconds(r.prepMs)).join(', ')}. Live accounts at the end: ${run.liveAccounts}.${run.budgetCut ? ` **${run.results.length} timed runs instead of ${context.runs}**: the next one would have ended past this section's budget of ${(context.budgetMs / 60_000).toFixed(0)} min on this loaded machine.` : ''}`,
    '',
    '| Run | Wall time | CPU of the rotate process | bcrypt bound | N × one create | API requests | LIST | GET |',
    '|---|---|---|---|---|---|---|---|',
    ...run.results.map((r, i) => `| ${i + 1} | ${seconds(r.wallMs)} | ${seconds(r.cpuMs)} | ${seconds((crs * r.hashMs) / cores)} | ${seconds(crs * r.createMs)} | ${totalOf(r.requests)} | ${totalOf(r.requests, ['LIST'])} | ${totalOf(r.requests, ['GET'])} |`),
    '',
    `Requests of the last run by verb and resource (apiserver_request_total after − before; leases/endpoints the API server writes itself and non-resource requests left out): ${[...last].map(([key, value]) => `${key} ${value}`).join(', ')}.`,
    '',
    `Ratios of the medians: ${ratio(wall, hashBound)} the bcrypt bound, ${ratio(wall, createBound)} N × one create; against the requests the run made × one create (${seconds(median(run.results.map((r) => totalOf(r.requests) * r.createMs)))}): ${ratio(wall, median(run.results.map((r) => totalOf(r.requests) * r.createMs)))} — the run is its API round trips, one after another.`,
  ];
  return { title: '3. Rotation of 1,000 push/pull CRs', rows, details, durationMs };
}

/**
 * Section 8: the LISTs of a rotation of every registry (`dist/rotate.js` without --registry, as the
 * CronJob runs it) with the same CRs spread over 1 and over `registries` registries. The Job reads
 * once for all registries, so the count must not grow with them.
 */
export async function rotationListsSection(context: { app: AppDir; cluster: TestCluster; crs: number; registries: number }): Promise<SectionResult> {
  const started = Date.now();
  const { cluster, crs } = context;
  await installOperatorBase(cluster);
  const api = kubeApi(cluster.kubeconfig);
  const runs: { registries: number; inCluster: number; lists: number; gets: number; total: number; wallMs: number }[] = [];
  try {
    for (const count of [1, context.registries]) {
      const registryNamespaces = await Promise.all(Array.from({ length: count }, (_, i) => cluster.createNamespace(`bench-lists-${count}-${i}`)));
      for (const ns of registryNamespaces) await createObject(api, `/apis/${GROUP_VERSION}/namespaces/${ns}/imageregistries`, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: REGISTRY }, spec: {} });
      const team = await cluster.createNamespace(`bench-lists-team-${count}`);
      const objects = Array.from({ length: crs }, (_, i) => {
        const kind = i % 2 === 0 ? 'ImagePushSecret' : 'ImagePullSecret';
        return { kind, body: { apiVersion: GROUP_VERSION, kind, metadata: { name: `app-${Math.floor(i / 2)}` }, spec: { registryRef: { name: REGISTRY, namespace: registryNamespaces[i % count] } } } };
      });
      await parallel(objects, 8, (o) => createObject(api, `/apis/${GROUP_VERSION}/namespaces/${team}/${o.kind.toLowerCase()}s`, o.body));
      await runEntry(context, 'reconcile', undefined);
      const inCluster = (await api.request<{ items: unknown[] }>('GET', `/apis/${GROUP_VERSION}/imageregistries`)).body.items.length;
      const before = await requestTotals(cluster);
      const { wallMs } = await runEntry(context, 'rotate', undefined);
      const requests = requestDelta(before, await requestTotals(cluster));
      runs.push({ registries: count, inCluster, lists: totalOf(requests, ['LIST']), gets: totalOf(requests, ['GET']), total: totalOf(requests), wallMs });
      // the next count starts without these CRs
      await cluster.kubectl(['delete', 'namespace', team, ...registryNamespaces, '--wait=true', '--timeout=300s']);
    }
  } finally {
    api.close();
  }
  const [one, many] = runs as [(typeof runs)[number], (typeof runs)[number]];
  const rows: Row[] = [{
    figure: `rotation of ${crs.toLocaleString('en-US')} CRs over every registry: LIST requests, ${one.registries} vs ${many.registries} registries`,
    result: `${one.lists} vs ${many.lists}`,
    baseline: `${one.registries} registry`,
    ratio: ratio(many.lists, one.lists),
    target: 'no more with more registries (constant in their number)',
    met: many.lists <= one.lists,
    limit: 'one read of each kind for the whole run (gather.ts); per registry only GETs (StatefulSet, its pods by ordinal, certificates) and writes',
  }];
  const details = [
    `\`dist/rotate.js\` without --registry (every registry, as the CronJob runs it), ${crs} CRs in one namespace spread evenly over the registries, each registry in its own namespace, after a first issuance by \`dist/reconcile.js\`; requests from apiserver_request_total after − before.`,
    '',
    '| Registries (in the cluster) | LIST | GET | All requests | Wall time |',
    '|---|---|---|---|---|',
    ...runs.map((r) => `| ${r.registries} (${r.inCluster}) | ${r.lists} | ${r.gets} | ${r.total} | ${seconds(r.wallMs)} |`),
  ];
  return { title: '8. Rotation LISTs by number of registries', rows, details, durationMs: Date.now() - started };
}
