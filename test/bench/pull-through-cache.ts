// Benchmark 13: a pull-through cache (spec.proxy, functions/pull-through-cache.ts) with real
// processes on loopback (127.50.10.18–21):
//
// - the upstream: the real `registry` serving TLS with a CA of its own and one htpasswd account
//   (test/support/upstream-registry.ts on a loopback address), holding one image of a few
//   uncompressed layers of random bytes;
// - the cache: the registry with the generated config.yml in proxy mode (registryConfig({proxy}):
//   `proxy: {remoteurl, ttl}`), the upstream account as REGISTRY_PROXY_USERNAME / _PASSWORD and the
//   upstream's CA through SSL_CERT_DIR, as the pod gets them; behind the generated nginx front with
//   the push refusal, token auth by the real docker_auth with a pull account.
//
// Per round (order alternating): skopeo pulls the image straight from the upstream; through a cold
// cache — the cache registry restarted on a new, empty root directory, so every blob and the
// manifest are misses, as in a cache that never saw the image (distinct repository names would
// need the upstream to hold the image under as many names, and the cache would still find the
// blobs it stored for another repository in its global blob store); then through the warm cache
// (the same image again); and, to tell the front's cost from the proxy's, from a regular registry
// behind the generated front (section 6's) holding the same image. Then N identical pulls through a
// fresh cache, counting what the upstream served from its JSON log.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROXY_PASSWORD_ENV, PROXY_USERNAME_ENV, pushRefusal } from '../../functions/pull-through-cache.ts';
import { REGISTRY_DATA_PATH, TRUSTED_TOKEN_KEYS_PATH, registryConfig } from '../../functions/registry-config.ts';
import { volumeStorageConfig } from '../../functions/registry-storage.ts';
import { trustedTokenKey, trustedTokenKeysDocument } from '../../functions/token-keys.ts';
import type { ImageRegistry, ProxySpec } from '../../functions/types.ts';
import { fetchAnswer } from '../support/front-clients.ts';
import { cpuSeconds, startDockerAuth, startNginx, testAccount, testRegistry, type Nginx } from '../support/front-processes.ts';
import { writeLargeOciImage } from '../support/large-image.ts';
import { delay, exitedMessage, run, startProcess, waitFor, type ManagedProcess } from '../support/processes.ts';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.ts';
import { frontInput, HOSTNAME, IP, skopeoCopy, type FrontBench, type Target } from './front.ts';
import type { Row, SectionResult } from './report.ts';
import { median } from './stats.ts';

export interface PullThroughCacheOptions {
  /** the image's size, all layers together */
  sizeMiB: number;
  layers: number;
  runs: number;
  /** identical pulls through one cache whose upstream requests are counted */
  pulls: number;
  progress: (message: string) => void;
}

const TITLE = '13. Pull-through cache';
const SKOPEO = '/usr/bin/skopeo';
const REPOSITORY = 'library/app';
const TAG = 'v1';
const UPSTREAM_PORT = 5443;
const CACHE_HOSTNAME = `${IP.proxyFront}:8443`;
const PULL = { name: 'pull.bench.proxy.1', password: 'bench-proxy-password-1' };
const TARGET_RATIO = 1.0;

type Kind = 'direct' | 'front' | 'cold' | 'warm';
const BASELINE_REPOSITORY = 'bench/proxy-baseline';

interface UpstreamRequest {
  method: string;
  uri: string;
  status: number;
}

interface Pull {
  seconds: number;
  mbPerSecond: number;
  skopeoCpu: number;
  /** CPU seconds of the cache's nginx and registry during the pull */
  cacheCpu: number;
  /** what the upstream logged during the pull */
  upstream: UpstreamRequest[];
}

interface LayeredImage {
  reference: string;
  /** layers and config: every blob a pull fetches */
  blobs: string[];
  layerBytes: number;
}

export async function pullThroughCacheSection(bench: FrontBench, options: PullThroughCacheOptions): Promise<SectionResult> {
  const started = Date.now();
  if (!bench.auth) {
    return {
      title: TITLE,
      rows: [{ figure: 'pull through the cache', result: 'not measured', baseline: '–', ratio: '–', target: '–', limit: `needs docker_auth, which is unavailable: ${bench.authMissing}` }],
      details: [`Not measured: the cache's front needs a running docker_auth (auth_server), which is unavailable here: ${bench.authMissing}.`],
      durationMs: Date.now() - started,
    };
  }
  const workDir = join(bench.workDir, 'pull-through-cache');
  mkdirSync(workDir, { recursive: true });
  const shm = mkdtempSync('/dev/shm/iro-bench-proxy-');
  const stops: (() => Promise<void>)[] = [];
  let cache: CacheRegistry | undefined;
  try {
    // bcrypt cost 4 for the upstream account (as the operator hashes its own): the upstream checks
    // the password at every request, and a straight pull makes more requests than the cache does
    const upstream = await startUpstreamRegistry({ assetsDir: bench.assets, workDir, address: IP.proxyUpstream, host: IP.proxyUpstream, port: UPSTREAM_PORT, name: 'upstream-bench', bcryptCost: 4 });
    stops.push(() => upstream.stop());
    const proxy: ProxySpec = { remoteURL: upstream.url, ttl: '168h', credentialsSecret: { name: 'upstream-account' }, ca: { configMapName: 'upstream-ca' } };
    const registryModel = { ...testRegistry('cache', 'bench'), spec: { proxy } } as ImageRegistry;
    const auth = await startDockerAuth({
      binary: join(bench.assets, 'auth_server'), dir: join(workDir, 'auth'), address: `${IP.proxyAuth}:5001`, hostname: CACHE_HOSTNAME, registry: registryModel,
      accounts: [testAccount(registryModel, PULL, 'pull')], token: bench.pki.token,
    });
    stops.push(() => auth.process.stop());
    const refusal = pushRefusal(proxy);
    const front = await startNginx({
      dir: join(workDir, 'front'),
      input: { ...frontInput(bench.workDir, IP.proxyFront, `${IP.proxyRegistry}:5000`), authAddress: auth.address, pushRefusal: refusal },
      probe: `https://${IP.proxyFront}:8443/health`,
    });
    stops.push(() => front.process.stop());

    options.progress(`writing an image of ${options.layers} layers, ${options.sizeMiB} MiB, and pushing it to the upstream`);
    const image = writeLayeredImage(join(shm, 'image'), options.layers, Math.round((options.sizeMiB * 1024 * 1024) / options.layers));
    const pushed = await skopeo(['copy', '--quiet', '--preserve-digests', '--dest-cert-dir', upstream.certDir, '--dest-creds', `${upstream.username}:${upstream.password}`, image.reference, `docker://${upstream.host}/${REPOSITORY}:${TAG}`]);
    if (pushed.code !== 0) throw new Error(`push to the upstream failed: ${pushed.stderr.slice(-1000)}`);
    // the same image in section 6's registry behind its front (a regular registry, no proxy)
    const frontTarget: Target = { key: 'front', label: 'regular registry behind the front', host: HOSTNAME, tls: true, auth: true, processes: () => ({}) };
    await skopeoCopy(bench, image.reference, `docker://${HOSTNAME}/${BASELINE_REPOSITORY}:${TAG}`, frontTarget, 'dest');

    let generation = 0;
    const freshCache = async () => {
      await cache?.stop();
      cache = await startCacheRegistry(bench, workDir, ++generation, upstream, proxy);
      return cache;
    };
    const cacheCpu = () => (cache ? cpuSeconds(cache.process.child.pid ?? 0) : 0) + nginxCpu(front);
    const frontCpu = () => cpuSeconds(bench.registry.process.child.pid ?? 0) + nginxCpu(bench.front);
    const source = (kind: Kind) => (kind === 'direct' ? `docker://${upstream.host}/${REPOSITORY}:${TAG}` : `docker://${CACHE_HOSTNAME}/${REPOSITORY}:${TAG}`);
    const pull = async (kind: Kind): Promise<Pull> => {
      const before = (await settledRequests(upstream)).length;
      const cpu = kind === 'front' ? frontCpu : cacheCpu;
      const cpuBefore = cpu();
      let timed: { seconds: number; skopeoCpu: number };
      if (kind === 'front') {
        const dest = mkdtempSync(join(shm, 'pull-'));
        const copied = await skopeoCopy(bench, `docker://${HOSTNAME}/${BASELINE_REPOSITORY}:${TAG}`, `dir:${dest}`, frontTarget, 'src').finally(() => rmSync(dest, { recursive: true, force: true }));
        timed = { seconds: copied.seconds, skopeoCpu: copied.cpu };
      } else {
        const certDir = kind === 'direct' ? upstream.certDir : bench.certDir;
        const creds = kind === 'direct' ? `${upstream.username}:${upstream.password}` : `${PULL.name}:${PULL.password}`;
        timed = await timedPull(source(kind), certDir, creds, shm);
      }
      const used = cpu() - cpuBefore;
      const upstreamRequests = (await settledRequests(upstream)).slice(before);
      return { ...timed, mbPerSecond: image.layerBytes / 1e6 / timed.seconds, cacheCpu: kind === 'direct' ? 0 : used, upstream: upstreamRequests };
    };

    // a pull of each kind before the rounds (not counted): page cache, skopeo and the processes warm
    await freshCache();
    await pull('direct');
    await pull('front');
    await pull('cold');
    const stored = image.blobs.filter((blob) => cache?.holds(blob));
    if (stored.length !== image.blobs.length) throw new Error(`after a pull through the cache it holds ${stored.length} of ${image.blobs.length} blobs`);
    const refused = await fetchAnswer(`https://${CACHE_HOSTNAME}/v2/${REPOSITORY}/blobs/uploads/`, { method: 'POST', ca: bench.pki.ca.certPem, agent: false });

    const pulls: Record<Kind, Pull[]> = { direct: [], front: [], cold: [], warm: [] };
    for (let round = 0; round < options.runs; round++) {
      await freshCache();
      // the warm pull follows its cold pull; the other two go before or after both
      const order: Kind[] = round % 2 === 0 ? ['direct', 'front', 'cold', 'warm'] : ['cold', 'warm', 'front', 'direct'];
      for (const kind of order) pulls[kind].push(await pull(kind));
      const mb = (kind: Kind) => (pulls[kind].at(-1) as Pull).mbPerSecond.toFixed(1);
      options.progress(`round ${round + 1}/${options.runs}: direct ${mb('direct')} MB/s, regular registry behind the front ${mb('front')} MB/s, cold cache ${mb('cold')} MB/s, warm cache ${mb('warm')} MB/s`);
    }

    options.progress(`${options.pulls} identical pulls through a fresh cache`);
    await freshCache();
    const identical: Pull[] = [];
    for (let i = 0; i < options.pulls; i++) identical.push(await pull(i === 0 ? 'cold' : 'warm'));
    return report({ options, image, pulls, identical, refused: { status: refused.status, body: refused.body, expected: refusal }, upstreamUrl: upstream.url, durationMs: Date.now() - started });
  } finally {
    await cache?.stop();
    for (const stop of stops.reverse()) await stop();
    rmSync(shm, { recursive: true, force: true });
  }
}

interface CacheRegistry {
  process: ManagedProcess;
  dataDir: string;
  /** whether the cache's storage holds this blob */
  holds(digest: string): boolean;
  /** stops it and removes its data */
  stop(): Promise<void>;
}

/**
 * The cache's registry: the generated config.yml with `proxy`, the upstream's account and CA as the
 * pod's environment gives them, its data in a new directory (generation n: a cold cache).
 */
async function startCacheRegistry(bench: FrontBench, workDir: string, generation: number, upstream: UpstreamRegistry, proxy: ProxySpec): Promise<CacheRegistry> {
  const base = join(workDir, `registry-${generation}`);
  const dataDir = join(base, 'data');
  mkdirSync(dataDir, { recursive: true });
  const jwks = join(base, 'trusted-token-keys.jwks');
  writeFileSync(jwks, trustedTokenKeysDocument([trustedTokenKey(bench.pki.token.certPem)]));
  const address = `${IP.proxyRegistry}:5000`;
  const config = registryConfig({ hostname: CACHE_HOSTNAME, httpSecret: 'bench-proxy-http-secret', address, storage: volumeStorageConfig(), proxy })
    .replaceAll(`rootdirectory: ${REGISTRY_DATA_PATH}`, `rootdirectory: ${dataDir}`)
    .replaceAll(TRUSTED_TOKEN_KEYS_PATH, jwks);
  if (!config.includes(`rootdirectory: ${dataDir}`) || !config.includes(`remoteurl: ${upstream.url}`)) throw new Error(`unexpected cache config:\n${config}`);
  const configFile = join(base, 'config.yml');
  writeFileSync(configFile, config);
  const logFile = join(base, 'registry.log');
  // as the pod's registry container: the credentials from the user's Secret, the CA's directory in SSL_CERT_DIR
  const env = { ...process.env, OTEL_TRACES_EXPORTER: 'none', [PROXY_USERNAME_ENV]: upstream.username, [PROXY_PASSWORD_ENV]: upstream.password, SSL_CERT_DIR: upstream.certDir };
  const child = startProcess(`registry-proxy-${generation}`, join(bench.assets, 'registry'), ['serve', configFile], logFile, { env });
  await waitFor(`cache registry on ${address}`, async () => (await fetchAnswer(`http://${address}/v2/`, { agent: false, timeoutMs: 2000 })).status !== undefined, 20_000, () => exitedMessage(child, logFile));
  const blobPath = (digest: string) => join(dataDir, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
  return {
    process: child,
    dataDir,
    holds: (digest) => existsSync(blobPath(digest)),
    stop: async () => {
      await child.stop();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

function nginxCpu(nginx: Nginx): number {
  return [nginx.process.child.pid ?? 0, ...nginx.workers()].reduce((s, pid) => s + cpuSeconds(pid), 0);
}

/** The upstream's requests once its log stopped growing (it logs each after the response). */
async function settledRequests(upstream: UpstreamRegistry): Promise<UpstreamRequest[]> {
  let list = upstream.requests();
  for (let i = 0; i < 20; i++) {
    await delay(100);
    const next = upstream.requests();
    if (next.length === list.length) return next;
    list = next;
  }
  return list;
}

function skopeo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // skopeo remembers where it saw a blob (/var/lib/containers/cache): each copy gets an empty cache of its own
  return run('/usr/bin/time', ['-f', 'TIME %e %U %S', 'bwrap', '--dev-bind', '/', '/', '--tmpfs', '/var/lib/containers/cache', SKOPEO, ...args], { timeoutMs: 600_000 });
}

/** `skopeo copy` of the image into a new `dir:` in /dev/shm, timed (wall, skopeo's CPU). */
async function timedPull(source: string, certDir: string, creds: string, shm: string): Promise<{ seconds: number; skopeoCpu: number }> {
  const dest = mkdtempSync(join(shm, 'pull-'));
  try {
    const result = await skopeo(['copy', '--quiet', '--preserve-digests', '--src-cert-dir', certDir, '--src-creds', creds, source, `dir:${dest}`]);
    const time = /TIME ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(result.stderr);
    if (result.code !== 0 || !time) throw new Error(`skopeo copy ${source} failed (${result.code}): ${result.stderr.slice(-1000)}`);
    return { seconds: Number(time[1]), skopeoCpu: Number(time[2]) + Number(time[3]) };
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
}

/** An OCI layout of `layers` uncompressed tar layers of random bytes (large-image.ts's, one per layer). */
function writeLayeredImage(dir: string, layers: number, layerSize: number): LayeredImage {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const parts = Array.from({ length: layers }, (_, i) => {
    const part = writeLargeOciImage(join(dir, 'parts', String(i)), TAG, layerSize);
    renameSync(join(part.dir, 'blobs', 'sha256', part.layerDigest.slice(7)), join(blobs, part.layerDigest.slice(7)));
    return part;
  });
  rmSync(join(dir, 'parts'), { recursive: true, force: true });
  const blob = (data: Buffer) => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return `sha256:${hex}`;
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: parts.map((p) => p.layerDigest) } }));
  const configDigest = blob(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: parts.map((p) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: p.layerDigest, size: p.layerBytes })),
  }));
  const manifestDigest = blob(manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': TAG } }] }));
  return { reference: `oci:${dir}:${TAG}`, blobs: [...parts.map((p) => p.layerDigest), configDigest], layerBytes: parts.reduce((s, p) => s + p.layerBytes, 0) };
}

// ---------------------------------------------------------------------------------------------

/** What kind of request to the upstream: the API root, a manifest by tag or digest, a blob. */
function requestKind(r: UpstreamRequest): string {
  const path = r.uri.split('?')[0] ?? '';
  if (path === '/v2/' || path === '/v2') return `${r.method} /v2/ → ${r.status}`;
  const manifest = /\/manifests\/(.+)$/.exec(path);
  if (manifest) return `${r.method} manifest by ${manifest[1]?.startsWith('sha256:') ? 'digest' : 'tag'} → ${r.status}`;
  if (/\/blobs\/sha256:[0-9a-f]{64}$/.test(path)) return `${r.method} blob → ${r.status}`;
  return `${r.method} ${path} → ${r.status}`;
}

function kinds(requests: UpstreamRequest[]): string {
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(requestKind(r), (counts.get(requestKind(r)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} × ${k}`).join(', ') || 'none';
}

const isManifest = (r: UpstreamRequest) => /\/manifests\//.test(r.uri);
const isBlobGet = (r: UpstreamRequest) => r.method === 'GET' && r.status === 200 && /\/blobs\/sha256:[0-9a-f]{64}$/.test(r.uri.split('?')[0] ?? '');

function report(input: {
  options: PullThroughCacheOptions;
  image: LayeredImage;
  pulls: Record<Kind, Pull[]>;
  identical: Pull[];
  refused: { status?: number; body: string; expected: { status: number; body: string } };
  upstreamUrl: string;
  durationMs: number;
}): SectionResult {
  const { options, image, pulls, identical } = input;
  const size = `${options.sizeMiB} MiB`;
  const gib = image.layerBytes / 1024 ** 3;
  const mb = (kind: Kind) => median(pulls[kind].map((p) => p.mbPerSecond));
  const paired = (kind: Kind, base: Kind = 'direct') => median(pulls[kind].map((p, i) => p.mbPerSecond / (pulls[base][i]?.mbPerSecond ?? NaN)));
  const cpuPerGib = (kind: Kind, f: 'skopeoCpu' | 'cacheCpu') => median(pulls[kind].map((p) => p[f] / gib));
  const manifestRequests = (list: Pull[]) => median(list.map((p) => p.upstream.filter(isManifest).length));
  const warmRatio = paired('warm');
  const warmFrontRatio = paired('warm', 'front');
  const coldRatio = paired('cold');
  const blobs = `${image.blobs.length - 1} layers + config`;
  const perBlob = image.blobs.map((digest) => identical.flatMap((p) => p.upstream).filter((r) => isBlobGet(r) && r.uri.split('?')[0] === `/v2/${REPOSITORY}/blobs/${digest}`).length);
  const allOnce = perBlob.every((n) => n === 1);
  const directBlobGets = median(pulls.direct.map((p) => p.upstream.filter(isBlobGet).length));
  const identicalManifests = identical.map((p) => p.upstream.filter(isManifest).length);
  const rows: Row[] = [
    {
      figure: `pull of a ${size} image (${options.layers} layers) through the warm cache (front + registry in proxy mode): MB/s`,
      result: `${mb('warm').toFixed(1)} MB/s`,
      baseline: `${mb('direct').toFixed(1)} MB/s straight from the upstream (registry serving TLS, htpasswd account)`,
      ratio: `${warmRatio.toFixed(2)}×`,
      target: `≥ ${TARGET_RATIO.toFixed(1)}× (not slower)`,
      met: warmRatio >= TARGET_RATIO,
      limit: `the front's extra hop on the 2 shared cores: skopeo (TLS, digests, writing the files ${cpuPerGib('warm', 'skopeoCpu').toFixed(2)} CPU-s/GiB) and nginx + the cache registry (${cpuPerGib('warm', 'cacheCpu').toFixed(2)} CPU-s/GiB) vs the upstream serving TLS itself; a regular registry behind the same front: ${mb('front').toFixed(1)} MB/s (${paired('front').toFixed(2)}× straight) — the row below`,
    },
    {
      figure: `pull of the same image through the warm cache vs a regular registry (no proxy) behind the generated front: MB/s`,
      result: `${mb('warm').toFixed(1)} MB/s`,
      baseline: `${mb('front').toFixed(1)} MB/s regular registry behind the front (section 6's), same image`,
      ratio: `${warmFrontRatio.toFixed(2)}×`,
      target: '–',
      limit: `what the proxy adds on a hit: one upstream request per pull (HEAD of the tag, ${manifestRequests(pulls.warm)} manifest request(s)) before the manifest is served; nginx + registry ${cpuPerGib('warm', 'cacheCpu').toFixed(2)} CPU-s/GiB (cache) vs ${cpuPerGib('front', 'cacheCpu').toFixed(2)} (regular)`,
    },
    {
      figure: `pull of the same image through a cold cache (empty storage): MB/s`,
      result: `${mb('cold').toFixed(1)} MB/s`,
      baseline: `${mb('direct').toFixed(1)} MB/s straight from the upstream`,
      ratio: `${coldRatio.toFixed(2)}×`,
      target: '–',
      limit: `every blob fetched from the upstream (TLS) and streamed to the client while written to the cache's disk (one upstream GET, distribution v3.1.2's MultiWriter); nginx + cache registry ${cpuPerGib('cold', 'cacheCpu').toFixed(2)} CPU-s/GiB, with the upstream's own work on the same 2 cores`,
    },
    {
      figure: `upstream blob GETs per ${options.pulls} identical pulls through the cache (${blobs})`,
      result: `${perBlob.join(', ')} (per blob)`,
      baseline: `${directBlobGets} blob GETs per pull straight from the upstream (${options.pulls * directBlobGets} for ${options.pulls} pulls)`,
      ratio: '–',
      target: '1 per blob',
      met: allOnce,
      limit: 'the first pull fetches each blob once (streamed and stored in one fetch); later pulls read the cache\'s storage',
    },
    {
      figure: 'upstream manifest requests per pull through the cache',
      result: `cold ${manifestRequests(pulls.cold)}, warm ${manifestRequests(pulls.warm)} (${options.pulls} identical pulls: ${identicalManifests.join(', ')})`,
      baseline: `${manifestRequests(pulls.direct)} per pull straight from the upstream`,
      ratio: '–',
      target: '–',
      limit: 'distribution\'s proxy resolves a tag at the upstream at every pull (so a moved tag is seen at once) and serves the manifest from its storage when it has the digest; only a pull by digest needs no upstream request once cached',
    },
  ];
  const runs = (kind: Kind) => pulls[kind].map((p) => p.mbPerSecond.toFixed(1)).join(', ');
  const refusedOk = input.refused.status === input.refused.expected.status && input.refused.body.includes('pull-through cache of');
  const details = [
    `The upstream: \`registry\` (distribution v3.1.2) serving TLS on ${IP.proxyUpstream}:${UPSTREAM_PORT} with a CA of its own and one htpasswd account (bcrypt cost 4; Basic auth at every request), filesystem storage on disk, holding one image of ${options.layers} uncompressed tar layers of random bytes, ${size} in all (${(image.layerBytes / 1e6).toFixed(1)} MB with tar framing) plus its config. The cache: the same binary with the generated config.yml and \`proxy: {remoteurl: ${input.upstreamUrl}, ttl: 168h}\` (registryConfig({proxy})), the upstream account in REGISTRY_PROXY_USERNAME / _PASSWORD and the upstream's CA directory in SSL_CERT_DIR, storage on disk; in front of it the generated nginx.conf with the push refusal (a POST of an upload answered ${input.refused.status}${refusedOk ? ', the refusal\'s message' : ` — **not the refusal**: ${input.refused.body.slice(0, 200)}`}) and token auth by docker_auth with one pull account. Pulls: \`skopeo copy --preserve-digests\` into a new \`dir:\` in /dev/shm, its blob cache empty each time; straight from the upstream with the upstream account, through the cache with the pull account (token from the front). MB/s = layer bytes / skopeo wall time (token, manifest and config included).`,
    '',
    `Cold: the cache registry restarted on a new, empty root directory before each round (not timed), so the manifest and every blob are misses — a cache that never saw the image. Warm: the same pull again right after. Regular: the same image pushed once to section 6's registry (no proxy) behind its generated front, pulled with section 6's account. ${options.runs} rounds, the straight and the regular pull first or last in alternate rounds; ratios are per round, then the median. One untimed pull of each kind before the rounds. Identical pulls: ${options.pulls} pulls of the same tag through a fresh cache, one after the other; upstream requests counted from its JSON log (\`response completed\`, method, URI, status) — its 401 answers are not among them (distribution logs those as auth errors): skopeo's unauthenticated /v2/ ping at every straight pull, the cache's once per process to learn the challenge.`,
    '',
    '| Pull | Median MB/s | Runs (MB/s) | CPU-s per GiB (median): skopeo | nginx + the registry behind it | Upstream requests (first round) |',
    '|---|---|---|---|---|---|',
    ...(['direct', 'front', 'cold', 'warm'] as const).map((kind) => `| ${kind === 'direct' ? 'straight from the upstream' : kind === 'front' ? 'regular registry behind the front' : `${kind} cache`} | ${mb(kind).toFixed(1)} | ${runs(kind)} | ${cpuPerGib(kind, 'skopeoCpu').toFixed(2)} | ${kind === 'direct' ? '–' : cpuPerGib(kind, 'cacheCpu').toFixed(2)} | ${kinds(pulls[kind][0]?.upstream ?? [])} |`),
    '',
    `Per-round ratios: warm / regular behind the front ${pulls.warm.map((p, i) => (p.mbPerSecond / (pulls.front[i]?.mbPerSecond ?? NaN)).toFixed(2)).join(', ')}; regular behind the front / straight ${pulls.front.map((p, i) => (p.mbPerSecond / (pulls.direct[i]?.mbPerSecond ?? NaN)).toFixed(2)).join(', ')}; warm / straight ${pulls.warm.map((p, i) => (p.mbPerSecond / (pulls.direct[i]?.mbPerSecond ?? NaN)).toFixed(2)).join(', ')}; cold / straight ${pulls.cold.map((p, i) => (p.mbPerSecond / (pulls.direct[i]?.mbPerSecond ?? NaN)).toFixed(2)).join(', ')}.`,
    '',
    `${options.pulls} identical pulls through one fresh cache, what the upstream served for each: ${identical.map((p, i) => `pull ${i + 1}: ${kinds(p.upstream)}`).join('; ')}. Blob GETs (200) per blob over all ${options.pulls}: ${image.blobs.map((d, i) => `${d.slice(7, 19)}… ${perBlob[i]}`).join(', ')}.`,
  ];
  return { title: TITLE, rows, details, durationMs: input.durationMs };
}

