// Benchmark 12: garbage collection of a registry of 1,000 small images with a third deleted, at
// process level: the registry with the generated config.yml behind the generated nginx front, on
// the volume and on a bucket (versitygw, as section 10). The images go in through the registry API
// (test/support/registry-api.ts, a signed token: no docker_auth, no skopeo), 333 manifests are
// deleted with DELETE /v2/<repo>/manifests/<digest>, then `registry garbage-collect` runs under
// the write freeze as the GC Job holds it (freeze files for the front, confirmation, drain, GC,
// lift, confirmation) while a client keeps pushing: how long writes are refused, how much of that
// is GC itself, and the blob bytes it reclaims.
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Drain, FreezeTarget } from '../../cronjobs/freeze.ts';
import { DRAIN_SETTLE_MS, FREEZE_DRAIN_MS, maintenanceFiles } from '../../functions/maintenance.ts';
import { tokenIssuer } from '../../functions/names.ts';
import { ACCESS_KEY_ENV, SECRET_KEY_ENV } from '../../functions/registry-storage.ts';
import { writeAtomic } from '../support/atomic-writer.ts';
import { startNginx, startRegistry } from '../support/front-processes.ts';
import { delay } from '../support/processes.ts';
import { damage, garbageCollect, newImage, pushImage, refusal, registryClient, removeImage, underFreeze, type RegistryClient } from '../support/registry-api.ts';
import { signRegistryToken } from '../support/registry-token.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { frontInput, IP, type FrontBench } from './front.ts';
import type { Row, SectionResult } from './report.ts';
import { median, mib, ms } from './stats.ts';

export interface GcOptions {
  images: number;
  /** of them deleted before GC */
  deleted: number;
  repositories: number;
  layerBytes: number;
  rounds: number;
  progress: (message: string) => void;
}

const TITLE = '12. Garbage collection of 1,000 images, a third deleted, under the write freeze';
const HOSTNAME = `${IP.gcFront}:8443`;
const PARALLEL = 8;
const WRITER_REPOSITORY = 'bench/gc-writer';
/** a refused writer waits this long before it tries again (as gc-freeze.test.ts's writers) */
const RETRY_MS = 20;
type Storage = 'volume' | 'bucket';

interface Run {
  pushSeconds: number;
  gcMs: number;
  /** first refused write → first accepted write */
  windowMs: number;
  /** freeze files written → GC starts: confirmation + drain */
  beforeGcMs: number;
  /** the drain (drainWrites): confirmed freeze → no write in flight */
  drainMs: number;
  /** how it ended at the registry: drained / unknown (fixed drain) / timeout */
  drainOutcome: string;
  /** GC done → lift confirmed */
  liftMs: number;
  bytesBefore: DiskBytes;
  bytesAfter: DiskBytes;
  gcSummary: string;
  refusedWrites: number;
  /** kept images that no longer pull whole */
  damaged: string[];
}

interface DiskBytes {
  files: number;
  /** sum of the blob files' sizes */
  apparent: number;
  /** blocks allocated, directories included */
  allocated: number;
}

export async function gcSection(bench: FrontBench, options: GcOptions): Promise<SectionResult> {
  const started = Date.now();
  const workDir = join(bench.workDir, 'gc');
  const maintenanceDir = join(workDir, 'maintenance');
  mkdirSync(workDir, { recursive: true });
  writeAtomic(maintenanceDir, maintenanceFiles(undefined));
  const s3 = await startS3Server({ assetsDir: bench.assets, workDir });
  const front = await startNginx({ dir: join(workDir, 'front'), input: { ...frontInput(bench.workDir, IP.gcFront, `${IP.gcRegistry}:5000`), maintenanceDir }, probe: `https://${HOSTNAME}/health` });
  try {
    const runs: Record<Storage, Run[]> = { volume: [], bucket: [] };
    for (let round = 0; round < options.rounds; round++) {
      for (const storage of round % 2 === 0 ? (['volume', 'bucket'] as const) : (['bucket', 'volume'] as const)) {
        const r = await gcRun(bench, s3, maintenanceDir, storage, `gc-${storage}-${round}`, options);
        runs[storage].push(r);
        options.progress(`round ${round + 1}: ${storage}: pushed ${options.images} images in ${r.pushSeconds.toFixed(1)} s; GC ${ms(r.gcMs)}, writes refused ${ms(r.windowMs)}; blobs ${mib(r.bytesBefore.apparent)} → ${mib(r.bytesAfter.apparent)}`);
      }
    }
    return gcReport(runs, options, Date.now() - started);
  } finally {
    await front.process.stop();
    await s3.close();
  }
}

/** A fresh registry at IP.gcRegistry (new directory or bucket): fill, delete, GC under the freeze. */
async function gcRun(bench: FrontBench, s3: S3Server, maintenanceDir: string, storage: Storage, name: string, options: GcOptions): Promise<Run> {
  const bucket = storage === 'bucket' ? { endpoint: s3.endpoint, bucket: name, accessKey: s3.accessKey, secretKey: s3.secretKey } : undefined;
  if (bucket) s3.createBucket(bucket.bucket);
  const registry = await startRegistry({ binary: join(bench.assets, 'registry'), dir: join(bench.workDir, 'gc'), address: `${IP.gcRegistry}:5000`, hostname: HOSTNAME, name, tokenCertPem: bench.pki.token.certPem, ...(bucket ? { bucket } : {}) });
  const blobsDir = join(bucket ? join(s3.dataDir, bucket.bucket) : registry.dataDir, 'docker/registry/v2/blobs');
  const repositories = Array.from({ length: options.repositories }, (_, i) => `bench/gc-${i}`);
  const token = signRegistryToken({
    keyPem: bench.pki.token.keyPem, issuer: tokenIssuer(HOSTNAME), audience: HOSTNAME, subject: 'bench-gc', ttlSeconds: 3600,
    access: [...repositories, WRITER_REPOSITORY].map((repo) => ({ type: 'repository' as const, name: repo, actions: ['push', 'pull', 'delete'] })),
  });
  const clients: RegistryClient[] = [];
  const connect = () => {
    const c = registryClient(IP.gcFront, 8443, bench.pki.ca.certPem, token);
    clients.push(c);
    return c;
  };
  try {
    const images = Array.from({ length: options.images }, (_, i) => ({ repo: repositories[i % repositories.length] as string, image: newImage(`v${i}`, [], options.layerBytes) }));
    const pushStarted = Date.now();
    await inParallel(images, connect(), async (c, { repo, image }) => {
      const pushed = await pushImage(c, repo, image);
      if (pushed.result !== 'pushed') throw new Error(`push of ${repo}:${image.tag}: ${JSON.stringify(pushed)}`);
    });
    const pushSeconds = (Date.now() - pushStarted) / 1000;
    // every third image: its own layer and config become garbage
    const deleted = images.filter((_, i) => i % 3 === 2).slice(0, options.deleted);
    await inParallel(deleted, connect(), async (c, { repo, image }) => {
      const why = await removeImage(c, repo, image);
      if (why) throw new Error(`delete of ${repo}: ${why}`);
    });
    options.progress(`${storage}: ${options.images} images pushed in ${pushSeconds.toFixed(1)} s, ${deleted.length} deleted; GC under the freeze`);

    const writer = startWriter(connect());
    await delay(500);
    const target: FreezeTarget = { host: IP.gcFront, port: 8443, hostname: IP.gcFront, caPem: bench.pki.ca.certPem };
    const env = bucket ? { [ACCESS_KEY_ENV]: bucket.accessKey, [SECRET_KEY_ENV]: bucket.secretKey } : {};
    const frozenAt = Date.now();
    let gcStarted = 0;
    let drain: Drain | undefined;
    // blob bytes measured inside the freeze, right around GC: no write lands in between
    const gc = await underFreeze({ maintenanceDir, targets: [target], run: name, onDrain: (d) => { drain = d; } }, async () => {
      gcStarted = Date.now();
      const bytesBefore = blobBytes(blobsDir);
      const result = await garbageCollect(join(bench.assets, 'registry'), registry.configFile, env);
      return { ...result, bytesBefore, bytesAfter: blobBytes(blobsDir), gcDone: Date.now() };
    });
    const liftMs = Date.now() - gc.gcDone;
    const window = await writer.stop();
    const kept = images.filter((entry) => !deleted.includes(entry));
    const damaged: string[] = [];
    await inParallel(kept, connect(), async (c, { repo, image }) => {
      const why = await damage(c, repo, image);
      if (why) damaged.push(why);
    });
    return {
      pushSeconds, gcMs: gc.ms, windowMs: window.windowMs, beforeGcMs: gcStarted - frozenAt, liftMs,
      drainMs: drain?.ms ?? Number.NaN, drainOutcome: drain?.pods.map((pod) => pod.outcome).join(',') ?? 'none', bytesBefore: gc.bytesBefore, bytesAfter: gc.bytesAfter,
      gcSummary: /\d+ blobs marked, \d+ blobs and \d+ manifests eligible for deletion/.exec(gc.output)?.[0] ?? 'no summary line', refusedWrites: window.refused, damaged,
    };
  } finally {
    for (const c of clients) c.close();
    await registry.process.stop();
  }
}

/** Runs `work` over the items, PARALLEL at a time, on one client (its agent keeps PARALLEL connections). */
async function inParallel<T>(items: readonly T[], c: RegistryClient, work: (c: RegistryClient, item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < items.length) await work(c, items[next++] as T);
  }));
}

/**
 * A client pushing new small images to WRITER_REPOSITORY without pause (RETRY_MS after a refusal),
 * watching every write request: stop() gives the time from the first refused write to the first
 * accepted write after it, once one was accepted.
 */
function startWriter(c: RegistryClient): { stop(): Promise<{ windowMs: number; refused: number }> } {
  let firstRefused: number | undefined;
  let reopened: number | undefined;
  let refused = 0;
  let running = true;
  const watched: RegistryClient = {
    ...c,
    call: async (method, path, options) => {
      const answer = await c.call(method, path, options);
      if (method !== 'GET' && method !== 'HEAD') {
        if (refusal(answer)) {
          refused++;
          firstRefused ??= Date.now();
        } else if (firstRefused !== undefined) reopened ??= Date.now();
      }
      return answer;
    },
  };
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const pushed = await pushImage(watched, WRITER_REPOSITORY, newImage(`w-${i}`, [], 1024));
      if (pushed.result === 'refused') await delay(RETRY_MS);
      else if (pushed.result === 'failed') throw new Error(`writer: ${pushed.why}`);
    }
  })();
  return {
    stop: async () => {
      const deadline = Date.now() + 10_000;
      while (reopened === undefined && Date.now() < deadline) await delay(20);
      running = false;
      await loop;
      if (firstRefused === undefined || reopened === undefined) throw new Error(`the writer saw no ${firstRefused === undefined ? 'refusal' : 'accepted write after the refusals'}`);
      return { windowMs: reopened - firstRefused, refused };
    },
  };
}

/** Blob files under dir (the registry's blobs/ tree): how many, their bytes and the blocks allocated. */
function blobBytes(dir: string): DiskBytes {
  const total: DiskBytes = { files: 0, apparent: 0, allocated: 0 };
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      const stat = lstatSync(full);
      total.allocated += stat.blocks * 512;
      if (entry.isDirectory()) walk(full);
      else {
        total.files++;
        total.apparent += stat.size;
      }
    }
  };
  walk(dir);
  return total;
}

function gcReport(runs: Record<Storage, Run[]>, options: GcOptions, durationMs: number): SectionResult {
  const m = (storage: Storage, f: (r: Run) => number) => median(runs[storage].map(f));
  const rows: Row[] = [];
  for (const storage of ['volume', 'bucket'] as const) {
    const where = storage === 'volume' ? 'volume (filesystem)' : 'bucket (versitygw, S3 on loopback)';
    rows.push({
      figure: `GC of ${options.images.toLocaleString('en-US')} images, ${options.deleted} deleted, on the ${where}: writes refused (first refused → first accepted write)`,
      result: `${ms(m(storage, (r) => r.windowMs))}; GC ${ms(m(storage, (r) => r.gcMs))}`,
      baseline: `window − GC ${ms(m(storage, (r) => r.windowMs - r.gcMs))}: drain ${ms(m(storage, (r) => r.drainMs))} (${[...new Set(runs[storage].map((r) => r.drainOutcome))].join(', ')}), confirmation ${ms(m(storage, (r) => r.beforeGcMs - r.drainMs))}, lift confirmed ${ms(m(storage, (r) => r.liftMs))}`,
      ratio: `${(m(storage, (r) => r.windowMs / r.gcMs)).toFixed(2)}× GC`,
      target: 'window − GC ≤ 1 s, 0 kept images damaged',
      met: m(storage, (r) => r.windowMs - r.gcMs) <= 1_000 && runs[storage].every((r) => r.damaged.length === 0),
      limit: `the window is GC and the drain: the writes in flight read from the registry's in-flight gauges through the front's metrics port (${ms(DRAIN_SETTLE_MS)} settle, then every 100 ms; before the metrics port, a fixed ${ms(FREEZE_DRAIN_MS)}); GC reads every repository's manifests (mark), then lists and stats every blob and deletes the unmarked (sweep)${storage === 'bucket' ? ', each a request to the S3 server' : ''}`,
    });
    rows.push({
      figure: `GC on the ${where}: blob bytes reclaimed`,
      result: `${mib(m(storage, (r) => r.bytesBefore.apparent - r.bytesAfter.apparent))} of ${mib(m(storage, (r) => r.bytesBefore.apparent))} (${m(storage, (r) => r.bytesBefore.files - r.bytesAfter.files).toFixed(0)} of ${m(storage, (r) => r.bytesBefore.files).toFixed(0)} blob files)`,
      baseline: `allocated on disk ${mib(m(storage, (r) => r.bytesBefore.allocated))} → ${mib(m(storage, (r) => r.bytesAfter.allocated))}`,
      ratio: '–',
      target: `the ${options.deleted} deleted images' blobs gone (layer, config, manifest: ${3 * options.deleted}), kept images whole`,
      met: runs[storage].every((r) => r.damaged.length === 0 && r.bytesBefore.files - r.bytesAfter.files >= 3 * options.deleted),
      limit: `small blobs: each takes whole blocks and directories of its own, so the disk gives back more than the bytes; GC: "${runs[storage][0]?.gcSummary ?? ''}" (the deleted manifests are blobs too; a writer's push cut off by the freeze leaves blobs without a manifest, collected as well)`,
    });
  }
  const details = [
    `${options.images.toLocaleString('en-US')} images in ${options.repositories} repositories, each a ${options.layerBytes / 1024} KiB random layer and a config of its own (~0.2 KiB) — no blob shared — pushed through the front by the registry API (HEAD, POST + PUT per blob, PUT manifest; ${PARALLEL} in parallel on keep-alive TLS connections, a token signed with the registry's token key); then every third image's manifest (${options.deleted}) deleted by digest. A fresh registry (generated config.yml, \`storage.delete.enabled\`) per run, on the volume or on a bucket of its own; ${options.rounds} round(s), the order of the two alternating. GC: the freeze files for the front written the kubelet's way (test/support/registry-api.ts \`underFreeze\`: maintenanceFiles, the slots of a 120 s freeze), confirmed by the probe (awaitFreezeState, polling every 250 ms), the drain of the GC Job (drainWrites: the registry's registry_http_in_flight_requests of the manifest and upload routes read through the front's metrics port until 0), \`registry garbage-collect <config.yml>\` (no --delete-untagged), the files emptied, the lift confirmed. Meanwhile one client pushes 1 KiB images without pause to another repository, ${RETRY_MS} ms after each refusal: the window is from its first refused write request to its first accepted one. Blob bytes: the files under docker/registry/v2/blobs (for the bucket, versitygw's posix directory), counted inside the freeze just before and after GC. Every kept image is pulled afterwards with its digests verified.`,
    '',
    '| Storage | Push of all images (s) | GC (ms) | Window (ms) | Window − GC (ms) | Writes refused | Blob bytes before → after | Blob files before → after | GC says | Kept images damaged |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...(['volume', 'bucket'] as const).flatMap((storage) => runs[storage].map((r) =>
      `| ${storage} | ${r.pushSeconds.toFixed(1)} | ${r.gcMs} | ${r.windowMs} | ${r.windowMs - r.gcMs} | ${r.refusedWrites} | ${mib(r.bytesBefore.apparent)} → ${mib(r.bytesAfter.apparent)} (allocated ${mib(r.bytesBefore.allocated)} → ${mib(r.bytesAfter.allocated)}) | ${r.bytesBefore.files} → ${r.bytesAfter.files} | ${r.gcSummary} | ${r.damaged.length}${r.damaged[0] ? ` (${r.damaged[0]})` : ''} |`)),
  ];
  return { title: TITLE, rows, details, durationMs };
}
