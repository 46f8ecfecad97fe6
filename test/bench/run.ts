// `npm run bench`: the benchmarks of issue 7, each figure next to a baseline measured in the same run
// (medians of repeated runs; the machine's cores are shared). Prints the table and writes
// test/bench/RESULTS.md. Not part of `npm test`: nothing here asserts timings.
//
//   npm run bench                      everything (~15 min on 2 cores); writes RESULTS.md
//   npm run bench -- --only 2,5        some sections; prints only
//   npm run bench -- --quick           fewer and shorter runs, to try the harness; prints only
//   BENCH_MARKDOWN=1 npm run bench -- --only 3   also prints the report with its details
//   npm run bench -- --only 6 --data-size 512     the data-plane section with a 512 MiB image
//
// Sizes, chosen for ~15 minutes on 2 shared cores: webhook 5 runs × 1.2 s per server and cell
// (3 servers × 2 routes × 3 concurrencies); cold start 9 interleaved rounds; rotation 1,000 CRs × 5
// timed runs after the first issuance (at least 3 within an 8 min budget on a loaded machine); CR → Secret 10 CRs; auth config by binary search.
// Sections 11 and 12 add ~4 and ~6–12 min (GC: 3 rounds of 1,000 images on the volume and on a
// bucket; the bucket's pushes and GC are the slow part); quick mode (5 short rounds; 1 GC round) ~1 and ~3–4.5 min.
// Section 13 (pull-through cache: a 64 MiB image of 4 layers, 7 rounds, 5 identical pulls) adds ~0.5 min (quick: 16 MiB, 3 rounds).
import { workloadImagesSection } from './workload-images.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { testBinaries } from '../support/binaries.ts';
import { clusterClient, clusterClientOf, startClusterOnRealNode, startControlPlaneCluster, type ControlPlaneCluster, type RealNodeCluster } from '../support/cluster.ts';
import { kubeApi } from '../support/kube-api.ts';
import { installExitHandlers } from '../support/processes.ts';
import { repoRoot, testServingTls } from '../support/webhook.ts';
import { startApiRecorder } from './api-recorder.ts';
import { authConfigSection, verifyCapacityAtApiServer } from './auth-config-size.ts';
import { blobCacheSection } from './blob-cache.ts';
import { buildApp, bundleHelper } from './bundles.ts';
import { coldStartSection } from './cold-start.ts';
import { dataPlaneSection, loginSection, startFrontBench } from './front.ts';
import { gcSection } from './gc.ts';
import { pullThroughCacheSection } from './pull-through-cache.ts';
import { machine, resultsMarkdown, textTable, type SectionResult } from './report.ts';
import { rotationListsSection, rotationSection } from './rotation.ts';
import { admissionPathSection } from './admission-path.ts';
import { secretLatencySection } from './secret-latency.ts';
import { storageSection } from './storage.ts';
import { webhookLoadSection } from './webhook-load.ts';

const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean', default: false }, 'data-size': { type: 'string' } } });
const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : undefined;
const quick = values.quick ?? false;
const wanted = (n: number) => !only || only.has(String(n));
const full = !only && !quick;

const sizes = quick
  ? { webhookRuns: 1, warmupMs: 200, durationMs: 500, coldRuns: 3, rotationCrs: 200, rotationRuns: 2, rotationBudgetMs: 5 * 60_000, latencyCrs: 4, dataMiB: 64, dataRuns: 2, loginRuns: 2, loginMs: 1000, reloads: 3, admissionRounds: 2, admissionRequests: 50, storageMiB: 32, storageRuns: 1, cacheMiB: 32, cacheRuns: 5, headMs: 1000, gcRounds: 1, proxyMiB: 16, proxyRuns: 3, proxyPulls: 5, workloadPods: 1000, workloadRuns: 3 }
  : { webhookRuns: 5, warmupMs: 300, durationMs: 1200, coldRuns: 9, rotationCrs: 1000, rotationRuns: 5, rotationBudgetMs: 8 * 60_000, latencyCrs: 10, dataMiB: 512, dataRuns: 9, loginRuns: 5, loginMs: 2000, reloads: 10, admissionRounds: 5, admissionRequests: 200, storageMiB: 256, storageRuns: 3, cacheMiB: 256, cacheRuns: 5, headMs: 2000, gcRounds: 3, proxyMiB: 64, proxyRuns: 7, proxyPulls: 5, workloadPods: 5000, workloadRuns: 5 };
if (values['data-size']) {
  sizes.dataMiB = Number(values['data-size']);
  if (!Number.isInteger(sizes.dataMiB) || sizes.dataMiB < 1) throw new Error(`--data-size: a whole number of MiB, got ${values['data-size']}`);
}

const TITLES: Record<number, string> = {
  1: '1. Webhook over TLS',
  2: '2. Job cold start',
  3: '3. Rotation of 1,000 push/pull CRs',
  4: '4. CR applied → Secret present',
  5: '5. docker_auth config size',
  6: '6. Data plane through the nginx front',
  7: '7. Token logins through the nginx front',
  8: '8. Rotation LISTs by number of registries',
  9: '9. Admission through the Service vs a direct URL',
  10: '10. Storage: bucket vs volume, two replicas vs one',
  11: '11. Blob descriptor cache: without (now) vs with (before)',
  12: '12. Garbage collection of 1,000 images, a third deleted, under the write freeze',
  13: '13. Pull-through cache',
  14: '14. Images in use: the workloads of a 5,000-Pod cluster',
};

function progress(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

const results = new Map<number, SectionResult>();
let failures = 0;

async function section(n: number, work: () => Promise<SectionResult>): Promise<void> {
  if (!wanted(n)) return;
  progress(`${TITLES[n]}…`);
  const started = Date.now();
  try {
    const result = await work();
    results.set(n, result);
    progress(`${TITLES[n]} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (error) {
    failures++;
    const message = error instanceof Error ? error.message : String(error);
    progress(`${TITLES[n]} FAILED: ${message}`);
    results.set(n, {
      title: TITLES[n] ?? `${n}`,
      rows: [{ figure: TITLES[n] ?? `${n}`, result: 'failed', baseline: '–', ratio: '–', target: '–', limit: message.split('\n')[0]?.slice(0, 300) ?? '' }],
      details: ['```', message, '```'],
      durationMs: Date.now() - started,
    });
  }
}

installExitHandlers();
// every temporary directory of this run (app copy, profiles, certificates, control plane) goes
// under one, removed at the end
const benchTmp = mkdtempSync(join(tmpdir(), 'iro-bench-'));
process.env.TMPDIR = benchTmp;
process.once('exit', () => rmSync(benchTmp, { recursive: true, force: true }));
const startedAt = new Date();
const host = machine();
progress(`${host.cores} cores, ${host.memoryGiB.toFixed(1)} GiB, load ${host.load[0]?.toFixed(2)}; building the bundles`);
const app = await buildApp();
const workDir = mkdtempSync(join(tmpdir(), 'work-'));
const tls = testServingTls();
const recorder = await startApiRecorder(tls);
const helpers = {
  loadClient: await bundleHelper(join(repoRoot, 'test/bench/load-client.ts'), workDir),
  baselineServer: await bundleHelper(join(repoRoot, 'test/bench/baseline-server.ts'), workDir),
  honoEchoServer: await bundleHelper(join(repoRoot, 'test/bench/hono-echo-server.ts'), workDir),
};

const authConfig = wanted(5) ? authConfigSection() : undefined;
await section(2, () => coldStartSection({ app, tls, recorder, runs: sizes.coldRuns }));
await section(1, () => webhookLoadSection({ app, tls, recorder, ...helpers, workDir, runs: sizes.webhookRuns, warmupMs: sizes.warmupMs, durationMs: sizes.durationMs }));

if (wanted(6) || wanted(7) || wanted(10) || wanted(11) || wanted(12) || wanted(13)) {
  // the registry pod's processes on loopback; no control plane needed
  const front = await startFrontBench(await testBinaries(), mkdtempSync(join(tmpdir(), 'front-')));
  try {
    await section(6, () => dataPlaneSection(front, { sizeMiB: sizes.dataMiB, runs: sizes.dataRuns, progress }));
    await section(7, () => loginSection(front, { runs: sizes.loginRuns, durationMs: sizes.loginMs, concurrency: 8, reloads: sizes.reloads, progress }));
    await section(10, () => storageSection(front, { sizeMiB: sizes.storageMiB, runs: sizes.storageRuns, progress }));
    await section(11, () => blobCacheSection(front, { sizeMiB: sizes.cacheMiB, runs: sizes.cacheRuns, smallLayers: 50, headMs: sizes.headMs, progress }));
    await section(12, () => gcSection(front, { images: 1000, deleted: 333, repositories: 10, layerBytes: 4096, rounds: sizes.gcRounds, progress }));
    await section(13, () => pullThroughCacheSection(front, { sizeMiB: sizes.proxyMiB, layers: 4, runs: sizes.proxyRuns, pulls: sizes.proxyPulls, progress }));
  } finally {
    await front.stop();
  }
}

// Sections 3, 5, 8 and 14 on a control plane without a node: a kubelet's leases, node status and pod
// watches would count as requests of section 3's rotation. Sections 4 and 9 then on a fresh cluster
// with a real node (kubelet, containerd, kube-proxy): their Jobs and webhook pods run from the
// assembled images, and none of section 3's 3,000 objects are there to be deleted through section
// 4's webhook or to give section 3's registry its pods.
let controlPlane: ControlPlaneCluster | undefined;
let onNode: RealNodeCluster | undefined;
try {
  if (wanted(3) || wanted(5) || wanted(8) || wanted(14)) {
    progress('starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), no node');
    controlPlane = await startControlPlaneCluster();
    Object.assign(process.env, controlPlane.env);
    progress(`kube-apiserver ${controlPlane.plane.version}, up in ${(controlPlane.plane.startupMs / 1000).toFixed(1)} s`);
    // no node: no node directory (these sections run no pod and no client through the node's names)
    const cluster = clusterClient(controlPlane.plane.kubeconfig, controlPlane.plane.assetsDir, '');
    await section(3, () => rotationSection({ app, cluster, crs: sizes.rotationCrs, runs: sizes.rotationRuns, budgetMs: sizes.rotationBudgetMs, namespaces: 5 }));
    await section(8, () => rotationListsSection({ app, cluster, crs: sizes.rotationCrs, registries: 5 }));
    await section(14, () => workloadImagesSection({ cluster, pods: sizes.workloadPods, namespaces: 50, runs: sizes.workloadRuns, progress }));
    await section(5, async () => {
      if (!authConfig) throw new Error('not computed');
      const api = kubeApi(cluster.kubeconfig);
      try {
        await verifyCapacityAtApiServer(authConfig, api, await cluster.createNamespace('bench-capacity'));
      } finally {
        api.close();
      }
      return authConfig;
    });
    const stopping = controlPlane;
    controlPlane = undefined;
    await stopping.stop();
  }
  if (wanted(4) || wanted(9)) {
    progress('starting a cluster with a real node (control plane, kubelet, containerd, kube-proxy; images assembled)');
    onNode = await startClusterOnRealNode();
    // the node's cluster from here on, for whatever reads the environment (child processes)
    Object.assign(process.env, onNode.env);
    progress(`kube-apiserver ${onNode.plane.version}, up in ${(onNode.plane.startupMs / 1000).toFixed(1)} s; node ${onNode.node.nodeName} in ${onNode.network.namespace}`);
    const cluster = clusterClientOf(onNode);
    await section(4, () => secretLatencySection({ app, cluster, crs: sizes.latencyCrs }));
    await section(9, () => admissionPathSection({ cluster, rounds: sizes.admissionRounds, requests: sizes.admissionRequests }));
  }
} finally {
  await controlPlane?.stop();
  await onNode?.stop();
  await recorder.close();
}

host.load.push(loadavg()[0] ?? 0);
const sections = [...results.keys()].sort((a, b) => a - b).map((n) => results.get(n) as SectionResult);
const totalMs = Date.now() - startedAt.getTime();
console.log('');
console.log(textTable(sections));
console.log('');
for (const s of sections) for (const row of s.rows) console.log(`- ${row.figure}: limited by ${row.limit}`);
if (full) {
  const notes = [
    `Sizes (chosen to keep the whole run near 17 minutes on 2 shared cores): webhook — ${sizes.webhookRuns} runs of ${sizes.warmupMs} ms warm-up + ${sizes.durationMs} ms per server, route and concurrency; cold start — ${sizes.coldRuns} interleaved rounds; rotation — ${sizes.rotationCrs} CRs, ${sizes.rotationRuns} timed runs (at least 3 within ${sizes.rotationBudgetMs / 60_000} min); CR → Secret — ${sizes.latencyCrs} CRs; auth config — binary search over the real config function; data plane — a ${sizes.dataMiB} MiB image, ${sizes.dataRuns} interleaved rounds of 4 pushes and 4 pulls (\`--data-size\` to change); token logins — ${sizes.loginRuns} rounds of ${sizes.loginMs} ms per cell, ${sizes.reloads} docker_auth reloads; storage — a ${sizes.storageMiB} MiB image, ${sizes.storageRuns} interleaved rounds; blob descriptor cache — a ${sizes.cacheMiB} MiB image and one of 50 small layers, ${sizes.cacheRuns} interleaved rounds, ${sizes.headMs} ms of HEADs each; GC — 1,000 images, 333 deleted, ${sizes.gcRounds} round(s) per storage; pull-through cache — a ${sizes.proxyMiB} MiB image of 4 layers, ${sizes.proxyRuns} interleaved rounds, ${sizes.proxyPulls} identical pulls.`,
    '',
    `${failures === 0 ? 'All sections completed.' : `${failures} section(s) failed; see their details.`} "Met" compares the median with the issue's target; ratios are medians of per-run ratios where runs are paired.`,
    '',
    'Changes this benchmark led to (measured while it was written, quick mode on the same machine):',
    '',
    '- cronjobs/kube.ts `list`: a paged list of a custom resource stopped after its first 500 items (client-node drops `continue` from a CR list\'s metadata) — with more than 500 accounts in a registry\'s namespace the auth config missed accounts and the run deleted valid ones; now one unpaged list (retried while the watch cache initializes).',
    '- cronjobs/kube.ts `connectKube`: client-node 2.0 built a new undici Agent, i.e. a new TLS connection, for every request; one shared dispatcher per KubeConfig: a rotation of 200 CRs went from 13.5 s to 5.9 s (the TLS handshakes had been most of the Job\'s CPU).',
    '- test/build.ts writes dist/package.json `{"type":"module"}` (section 2).',
    '- cronjobs/kube.ts: plain JSON requests over one keep-alive node:https agent, the KubeConfig still supplying credentials per request, instead of client-node\'s typed API clients (fetch() with web streams, an undici Agent and ObjectSerializer round-trips per request): in a rotation of 200 CRs (4 interleaved runs each, on a loaded machine) the rotate process\'s CPU went from 5.1 s to 2.8 s (5.0 → 2.8 ms per API request, start-up and bcrypt included) and its wall time from 17.4 s to 14.4 s; dist/rotate.js from 1844 KiB to 1621 KiB. API_PARALLELISM 16 or 32 was no faster than 8: the API server and etcd on the same cores are the limit.',
    '- test/bundle-options.ts (section 2): dependencies treated as free of import side effects (drops ws, tar-fs and the rest of client-node nothing calls), only the undici modules client-node imports, undici\'s opt-in Milo parser left out, and Node built-ins loaded with require() — an ES module import of node:http made Node load its internal undici (~100 ms CPU). Same-run interleaved (15 rounds, compile cache): reconcile 359 → 291 ms to its first request; reconcile.js 1843 → 947 KiB with the client change above.',
    '- Dockerfile (section 2): Node\'s compile cache prepared at image build time as the pods\' user 65532 (Node keys it by uid; a cache written as root would never be read); the "with compile cache" figures measure exactly that preparation.',
    '- functions/docker-auth-config.ts (section 5): users no longer carry an `account` label (it repeated the user name, which ACLs match as `match.account`): 233 → 188 B per account, 4,475 → 5,565 accounts per 1 MiB Secret; the label is reserved (refused in ACLs and accounts).',
    '- functions/reconcile-job.ts (section 4): coalescing window 1 s + 1 s grace instead of 5 s + 2 s: CR → Secret p50 5.0 s → 1.9 s; a burst makes one Job per registry per second.',
    '- webhooks/ and functions/ (section 1): the AdmissionReview depth check walks the parsed value instead of scanning the text, key-order-independent equality without sorted copies, match-pattern verdicts cached, metrics label sets formatted once: 5–10 % less CPU per admission (same-run old/new builds).',
    '- functions/nginx-config.ts (section 6, issue 14): /v2/ with `proxy_buffer_size 64k` (+ the `proxy_buffers 4 64k` nginx -t requires) and `client_body_buffer_size 64k`. nginx\'s 4 KiB default wrote every 4 KiB read of the registry\'s response as its own TLS record. Buffer sizes tried side by side (256 MiB image, 3 interleaved rounds, pull MB/s and nginx CPU-s per GiB pulled; push CPU-s per GiB): defaults 102.5 MB/s, 3.08 (push 3.48); 16k 124.3, 2.56 (3.20); 64k 126.6, 1.88 (2.96); 128k 124.3, 1.84 (2.88); 256k 122.6, 2.92 (3.08). Push throughput did not move with any of them (102–110 MB/s). 64k: the CPU of 128k at half the memory per request.',
    '- functions/nginx-config.ts (section 7): docker_auth 1.14 reloads its config by closing its listener and every connection and listening again (0.1–130 ms measured on this machine, most under 10 ms; the longest with the cores saturated); token requests through nginx are now retried (10 times, the first at once, then every 100 ms, paced by limit_req in a server on a unix socket): 0 failed logins through the front during the reloads, where docker_auth directly resets or refuses connections. The certificate is read at each TLS handshake instead of once, so a renewal needs no pod roll; its cost is in section 7 (full handshakes only; resumed sessions do not read it).',
  ];
  const path = join(repoRoot, 'test/bench/RESULTS.md');
  writeFileSync(path, resultsMarkdown({ sections, machine: host, startedAt, totalMs, command: 'npm run bench', notes }));
  console.log(`\nwrote ${path} (${(totalMs / 60_000).toFixed(1)} min)`);
} else {
  console.log(`\n(partial or quick run: RESULTS.md not written; ${(totalMs / 60_000).toFixed(1)} min)\n`);
  // the whole report on stdout, e.g. to look at the details of one section
  if (process.env.BENCH_MARKDOWN) console.log(resultsMarkdown({ sections, machine: host, startedAt, totalMs, command: `npm run bench -- ${process.argv.slice(2).join(' ')}`, notes: [] }));
}
process.exit(failures === 0 ? 0 : 1);
