// Benchmark 11: what dropping the in-memory blob descriptor cache costs. The generated config had
// `storage.cache.blobdescriptor: inmemory` until garbage collection in another process (the GC Job)
// made a cached registry answer HEAD 200 for blobs GC had deleted; without it every blob lookup
// reads the repository's link file and stats the blob. Two registries on the volume (filesystem),
// each behind a front of its own, alike but for the cache: pushes and pulls of a large image, the
// re-push of an image of many small layers the registry already has (a HEAD per layer, nothing
// uploaded — where the cache would answer from memory), and HEADs of existing blobs under load.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tokenIssuer } from '../../functions/names.ts';
import { closedLoop, fetchAnswer, keepAliveAgent } from '../support/front-clients.ts';
import { cpuSeconds, startNginx, startRegistry, type Registry } from '../support/front-processes.ts';
import { writeLargeOciImage } from '../support/large-image.ts';
import { writeOciImage, type OciImage } from '../support/oci-image.ts';
import { delay } from '../support/processes.ts';
import { signRegistryToken } from '../support/registry-token.ts';
import { frontInput, HOSTNAME, IP, skopeoCopy, type FrontBench, type Target } from './front.ts';
import type { Row, SectionResult } from './report.ts';
import { median, ms } from './stats.ts';

export interface BlobCacheOptions {
  sizeMiB: number;
  runs: number;
  /** layers of the small image re-pushed */
  smallLayers: number;
  /** length of each HEAD load run */
  headMs: number;
  progress: (message: string) => void;
}

const TITLE = '11. Blob descriptor cache: without (now) vs with (before)';
const HEAD_CLIENTS = 8;
const SMALL_REPOSITORY = 'bench/cache-small';
type Kind = 'without' | 'with';

interface Round {
  pushMBps: number;
  pullMBps: number;
  repushSeconds: number;
  headsPerSecond: number;
  /** registry CPU µs per HEAD */
  headCpuUs: number;
}

export async function blobCacheSection(bench: FrontBench, options: BlobCacheOptions): Promise<SectionResult> {
  const started = Date.now();
  const workDir = join(bench.workDir, 'blob-cache');
  mkdirSync(workDir, { recursive: true });
  const shm = mkdtempSync('/dev/shm/iro-bench-cache-');
  const stops: (() => Promise<void>)[] = [];
  try {
    const auth = !bench.authMissing;
    const start = async (kind: Kind, registryIp: string, frontIp: string): Promise<{ target: Target; registry: Registry }> => {
      const registry = await startRegistry({
        binary: join(bench.assets, 'registry'), dir: workDir, address: `${registryIp}:5000`, hostname: HOSTNAME, name: `registry-cache-${kind}`,
        blobDescriptorCache: kind === 'with', ...(bench.auth ? { tokenCertPem: bench.pki.token.certPem } : {}),
      });
      stops.push(() => registry.process.stop());
      const front = await startNginx({ dir: join(workDir, `front-cache-${kind}`), input: frontInput(bench.workDir, frontIp, registry.address), probe: `https://${frontIp}:8443/health` });
      stops.push(() => front.process.stop());
      return { target: { key: 'front', label: `${kind} cache`, host: `${frontIp}:8443`, tls: true, auth, processes: () => ({}) }, registry };
    };
    const sides: Record<Kind, { target: Target; registry: Registry }> = {
      without: await start('without', IP.noCacheRegistry, IP.noCacheFront),
      with: await start('with', IP.cacheRegistry, IP.cacheFront),
    };

    options.progress(`writing a ${options.sizeMiB} MiB image and one of ${options.smallLayers} small layers`);
    const large = writeLargeOciImage(join(shm, 'large'), 'v1', options.sizeMiB * 1024 * 1024);
    // distinct random text per layer (~2 KiB gzipped each): no two layers share a digest
    const small = writeOciImage(join(shm, 'small'), 'v1', Array.from({ length: options.smallLayers }, (_, i) => ({ [`layer-${i}.txt`]: randomBytes(2048).toString('hex') })));
    const copy = (from: string, to: string, target: Target, side: 'src' | 'dest') => skopeoCopy(bench, from, to, target, side);
    // the images the pulls, the re-pushes and the HEADs read; the first push also fills the cache
    for (const { target } of Object.values(sides)) {
      await copy(large.reference, `docker://${target.host}/bench/cache-pull:v1`, target, 'dest');
      await copy(small.reference, `docker://${target.host}/${SMALL_REPOSITORY}:v1`, target, 'dest');
    }

    const rounds: Record<Kind, Round[]> = { without: [], with: [] };
    for (let round = 0; round < options.runs; round++) {
      const kinds: Kind[] = round % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
      for (const kind of kinds) {
        const { target, registry } = sides[kind];
        // a new repository per push: no link to the layer there, so all of it is uploaded
        const pushed = await copy(large.reference, `docker://${target.host}/bench/cache-push-${round}:v1`, target, 'dest');
        const dest = mkdtempSync(join(shm, 'pull-'));
        const pulled = await copy(`docker://${target.host}/bench/cache-pull:v1`, `dir:${dest}`, target, 'src').finally(() => rmSync(dest, { recursive: true, force: true }));
        // every layer is in the repository already: skopeo HEADs each, uploads none, PUTs the manifest
        const repushed = await copy(small.reference, `docker://${target.host}/${SMALL_REPOSITORY}:v1`, target, 'dest');
        const heads = await headLoad(bench, target, registry, small, options.headMs);
        rounds[kind].push({ pushMBps: large.layerBytes / 1e6 / pushed.seconds, pullMBps: large.layerBytes / 1e6 / pulled.seconds, repushSeconds: repushed.seconds, ...heads });
        const r = rounds[kind].at(-1) as Round;
        options.progress(`round ${round + 1}: ${kind} cache: push ${r.pushMBps.toFixed(1)} MB/s, pull ${r.pullMBps.toFixed(1)} MB/s, re-push ${r.repushSeconds.toFixed(2)} s, ${r.headsPerSecond.toFixed(0)} HEAD/s`);
      }
    }
    return blobCacheReport(rounds, options, auth, Date.now() - started);
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(shm, { recursive: true, force: true });
  }
}

/** HEAD_CLIENTS keep-alive clients HEADing the small image's layers through the front for `durationMs`. */
async function headLoad(bench: FrontBench, target: Target, registry: Registry, image: OciImage, durationMs: number): Promise<Pick<Round, 'headsPerSecond' | 'headCpuUs'>> {
  const headers: Record<string, string> = {};
  if (target.auth) {
    const token = signRegistryToken({ keyPem: bench.pki.token.keyPem, issuer: tokenIssuer(HOSTNAME), audience: HOSTNAME, subject: 'bench-cache', access: [{ type: 'repository', name: SMALL_REPOSITORY, actions: ['pull'] }], ttlSeconds: 600 });
    headers.authorization = `Bearer ${token}`;
  }
  const agents = Array.from({ length: HEAD_CLIENTS }, () => keepAliveAgent(true));
  const url = (n: number) => `https://${target.host}/v2/${SMALL_REPOSITORY}/blobs/${image.layers[n % image.layers.length]?.digest}`;
  const head = (client: number, n: number) => fetchAnswer(url(client * 7 + n), { method: 'HEAD', ca: bench.pki.ca.certPem, agent: agents[client] ?? false, headers });
  try {
    // warm-up: connections open; for the cached registry, every layer's descriptor in memory
    await closedLoop(HEAD_CLIENTS, head, delay(200));
    const pid = registry.process.child.pid ?? 0;
    const cpuBefore = cpuSeconds(pid);
    const load = await closedLoop(HEAD_CLIENTS, head, delay(durationMs), (a) => a.status === 200);
    const ok = load.counts['200'] ?? 0;
    if (load.samples.length) throw new Error(`HEAD of existing blobs through ${target.label}: ${load.samples.join('; ')}`);
    return { headsPerSecond: (ok / load.durationMs) * 1000, headCpuUs: ((cpuSeconds(pid) - cpuBefore) / Math.max(ok, 1)) * 1e6 };
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

function blobCacheReport(rounds: Record<Kind, Round[]>, options: BlobCacheOptions, auth: boolean, durationMs: number): SectionResult {
  const m = (kind: Kind, f: keyof Round) => median(rounds[kind].map((r) => r[f]));
  // without / with, per round (both measured back to back), then the median
  const paired = (f: keyof Round) => median(rounds.without.map((r, i) => r[f] / (rounds.with[i]?.[f] ?? NaN)));
  const size = `${options.sizeMiB} MiB`;
  const rows: Row[] = [];
  for (const [what, f] of [['push', 'pushMBps'], ['pull', 'pullMBps']] as const) {
    rows.push({
      figure: `${what} of a ${size} image through the front, volume, without the blob descriptor cache: MB/s`,
      result: `${m('without', f).toFixed(1)} MB/s`,
      baseline: `${m('with', f).toFixed(1)} MB/s with \`cache.blobdescriptor: inmemory\``,
      ratio: `${paired(f).toFixed(2)}×`,
      target: '–',
      limit: 'the layer\'s bytes (TLS, hashing, disk) on the 2 shared cores; the cache saves a few stats per copy',
    });
  }
  rows.push({
    figure: `re-push of an image of ${options.smallLayers} small layers already in the repository, without the cache: seconds`,
    result: `${m('without', 'repushSeconds').toFixed(2)} s`,
    baseline: `${m('with', 'repushSeconds').toFixed(2)} s with the cache`,
    ratio: `${paired('repushSeconds').toFixed(2)}× (time)`,
    target: '–',
    limit: `skopeo's start, token and one HEAD per layer (no upload) plus the manifest PUT; a HEAD without the cache reads the repository's link file and stats the blob (${((HEAD_CLIENTS / m('without', 'headsPerSecond')) * 1000).toFixed(2)} ms per HEAD at ${HEAD_CLIENTS} in flight, row below)`,
  });
  rows.push({
    figure: `HEAD of existing blobs through the front, ${HEAD_CLIENTS} keep-alive clients, without the cache: HEAD/s`,
    result: `${m('without', 'headsPerSecond').toFixed(0)}/s; registry ${m('without', 'headCpuUs').toFixed(0)} µs CPU per HEAD`,
    baseline: `${m('with', 'headsPerSecond').toFixed(0)}/s; ${m('with', 'headCpuUs').toFixed(0)} µs with the cache`,
    ratio: `${paired('headsPerSecond').toFixed(2)}×`,
    target: '–',
    limit: 'TLS and proxying in nginx, the token\'s RS256 check and HTTP handling in the registry on the same 2 cores; the link read and stat (page cache) are a small part',
  });
  const runs = (kind: Kind, f: keyof Round, digits: number) => rounds[kind].map((r) => r[f].toFixed(digits)).join(', ');
  const details = [
    `Two registries with the generated config.yml on the volume (filesystem on disk), ${auth ? 'token auth' : '**no auth: docker_auth is unavailable**'}, each behind a front of its own (generated nginx.conf); "with" adds \`storage.cache.blobdescriptor: inmemory\` (what registry-storage.ts generated before the write freeze), nothing else differs. ${options.runs} rounds, the order of the two reversed every other round; ratios are without / with per round, then the median. Copies: \`skopeo copy --preserve-digests\` with an empty blob cache (section 6's); push of a ${size} single-layer image to a new repository, pull of it into /dev/shm. Re-push: an image of ${options.smallLayers} gzip layers of ~2 KiB (random text), pushed once before the rounds, pushed again each round to the same repository: skopeo HEADs every layer and the config (all 200), uploads nothing and PUTs the manifest. HEAD load: ${HEAD_CLIENTS} closed-loop keep-alive clients in the bench process, HEAD of those layers (signed pull token) for ${ms(options.headMs)} after 200 ms of warm-up; registry CPU from /proc.`,
    '',
    '| Kind | Push MB/s | Pull MB/s | Re-push s | HEAD/s | Registry µs CPU per HEAD |',
    '|---|---|---|---|---|---|',
    ...(['without', 'with'] as const).map((kind) => `| ${kind} cache | ${runs(kind, 'pushMBps', 1)} | ${runs(kind, 'pullMBps', 1)} | ${runs(kind, 'repushSeconds', 2)} | ${runs(kind, 'headsPerSecond', 0)} | ${runs(kind, 'headCpuUs', 0)} |`),
  ];
  return { title: TITLE, rows, details, durationMs };
}
