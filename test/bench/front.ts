// Benchmarks 6 and 7: the registry pod's nginx front (functions/nginx-config.ts), with real
// processes on loopback (127.50.10.x): Debian's nginx with the generated nginx.conf, the
// distribution registry with the generated config.yml and docker_auth with the generated
// auth_config.yml (test/support/front-processes.ts).
//
// 6. Data plane: skopeo pushes and pulls one large incompressible single-layer image (uncompressed
//    tar layer, `--preserve-digests`) through the front, through the front with the settings before
//    issue 14 (nginx's default buffer sizes), to the registry serving TLS itself, and to a plain-HTTP
//    registry without auth; interleaved rounds, medians, MB/s, CPU per process per GiB.
// 7. Token logins: GET /auth/token through the front vs docker_auth directly, keep-alive and a new
//    connection per login; the cost of reading the certificate at each handshake (the same front
//    with a fixed ssl_certificate); docker_auth config reloads under load: its listener gap and the
//    failures clients see through the front and directly.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../support/atomic-writer.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { basicAuth, closedLoop, fetchAnswer, keepAliveAgent, type Answer, type LoadResult } from '../support/front-clients.ts';
import {
  cpuSeconds,
  NGINX,
  reloadGaps,
  startDockerAuth,
  startNginx,
  startRegistry,
  testAccount,
  testPki,
  testRegistry,
  type DockerAuth,
  type Nginx,
  type Registry,
} from '../support/front-processes.ts';
import { writeLargeOciImage, type LargeImage } from '../support/large-image.ts';
import { delay, run, waitFor } from '../support/processes.ts';
import { Agent as HttpsAgent } from 'node:https';
import type { Row, SectionResult } from './report.ts';
import { median, ms, percentile, ratio } from './stats.ts';

export const IP = {
  front: '127.50.10.1',
  registry: '127.50.10.2',
  auth: '127.50.10.3',
  registryTls: '127.50.10.4',
  registryHttp: '127.50.10.5',
  frontBefore: '127.50.10.6',
  frontStaticCert: '127.50.10.7',
  // section 10 (storage.ts): two registries on one bucket, each behind a front of its own
  bucketFrontA: '127.50.10.8',
  bucketFrontB: '127.50.10.9',
  bucketRegistryA: '127.50.10.10',
  bucketRegistryB: '127.50.10.11',
  // section 11 (blob-cache.ts): registries without and with the blob descriptor cache
  noCacheFront: '127.50.10.12',
  noCacheRegistry: '127.50.10.13',
  cacheFront: '127.50.10.14',
  cacheRegistry: '127.50.10.15',
  // section 12 (gc.ts): the registry garbage-collected under the freeze, behind its front
  gcFront: '127.50.10.16',
  gcRegistry: '127.50.10.17',
  // section 13 (pull-through-cache.ts): the upstream (TLS, htpasswd) and the cache: its docker_auth,
  // its registry in proxy mode, its front
  proxyUpstream: '127.50.10.18',
  proxyAuth: '127.50.10.19',
  proxyRegistry: '127.50.10.20',
  proxyFront: '127.50.10.21',
};
export const HOSTNAME = `${IP.front}:8443`;
const SKOPEO = '/usr/bin/skopeo';
const TARGET_RATIO = 0.9;
const PUSH = { name: 'push.bench.front.1', password: 'bench-front-password-1' };

/** The /v2/ lines issue 14 added; removing them gives the front as it was before (nginx defaults). */
const ISSUE_14_LINES = /^\s*(proxy_buffer_size|proxy_buffers|client_body_buffer_size) .*\n/gm;

export interface FrontBench {
  assets: string;
  workDir: string;
  authMissing?: string;
  pki: ReturnType<typeof testPki>;
  certDir: string;
  auth?: DockerAuth;
  registry: Registry;
  registryTls: Registry;
  registryHttp: Registry;
  front: Nginx;
  frontBefore: Nginx;
  frontStaticCert: Nginx;
  stop(): Promise<void>;
}

/** The nginx.conf input of a front on `ip` before `registryAddress`, with the bench's docker_auth and serving certificate. */
export function frontInput(workDir: string, ip: string, registryAddress: string) {
  const tlsDir = join(workDir, 'tls');
  return { listen: [`${ip}:8443`], registryAddress, authAddress: `${IP.auth}:5001`, tlsCertPath: join(tlsDir, 'tls.crt'), tlsKeyPath: join(tlsDir, 'tls.key') };
}

/** Starts every process both sections use. */
export async function startFrontBench(assets: string, workDir: string): Promise<FrontBench> {
  const authMissing = authServerUnavailable(assets);
  const pki = testPki(Object.values(IP));
  const certDir = join(workDir, 'client-certs');
  mkdirSync(certDir);
  writeAtomic(certDir, { 'ca.crt': pki.ca.certPem });
  const tlsDir = join(workDir, 'tls');
  writeAtomic(tlsDir, { 'tls.crt': pki.serving.certPem, 'tls.key': pki.serving.keyPem }, { mode: 0o600 });
  const registryModel = testRegistry('registry', 'bench');
  const auth = authMissing
    ? undefined
    : await startDockerAuth({ binary: join(assets, 'auth_server'), dir: workDir, address: `${IP.auth}:5001`, hostname: HOSTNAME, registry: registryModel, accounts: [testAccount(registryModel, PUSH, 'push')], token: pki.token });
  // Without docker_auth no token can be had: all registries then run without auth (said in the report).
  const token = auth ? { tokenCertPem: pki.token.certPem } : {};
  const registry = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: `${IP.registry}:5000`, hostname: HOSTNAME, name: 'registry', ...token });
  // realm and service are the front's hostname: skopeo gets its token through the front, then
  // talks to this registry's own TLS port
  const registryTls = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: `${IP.registryTls}:5443`, hostname: HOSTNAME, name: 'registry-tls', tls: pki.serving, ...token });
  const registryHttp = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: `${IP.registryHttp}:5000`, hostname: HOSTNAME, name: 'registry-http' });
  const input = (ip: string) => frontInput(workDir, ip, `${IP.registry}:5000`);
  const front = await startNginx({ dir: join(workDir, 'front'), input: input(IP.front), probe: `https://${IP.front}:8443/health` });
  const frontBefore = await startNginx({
    dir: join(workDir, 'front-before'),
    input: input(IP.frontBefore),
    probe: `https://${IP.frontBefore}:8443/health`,
    transform: (conf) => conf.replace(ISSUE_14_LINES, ''),
  });
  const frontStaticCert = await startNginx({
    dir: join(workDir, 'front-static-cert'),
    input: input(IP.frontStaticCert),
    probe: `https://${IP.frontStaticCert}:8443/health`,
    transform: (conf) => conf.replace('ssl_certificate $tls_certificate_file;', `ssl_certificate ${join(tlsDir, 'tls.crt')};`).replace('ssl_certificate_key $tls_certificate_key_file;', `ssl_certificate_key ${join(tlsDir, 'tls.key')};`),
  });
  const all = [front, frontBefore, frontStaticCert, registry, registryTls, registryHttp, ...(auth ? [auth] : [])];
  return {
    assets,
    workDir,
    ...(authMissing ? { authMissing } : {}),
    pki,
    certDir,
    ...(auth ? { auth } : {}),
    registry,
    registryTls,
    registryHttp,
    front,
    frontBefore,
    frontStaticCert,
    stop: async () => {
      for (const p of all) await p.process.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 6. Data plane

export interface Target {
  key: 'front' | 'frontBefore' | 'registryTls' | 'registryHttp';
  label: string;
  host: string;
  tls: boolean;
  auth: boolean;
  /** processes whose CPU the run is charged with, by role */
  processes: () => Record<string, number[]>;
}

interface Copy {
  seconds: number;
  mbPerSecond: number;
  /** CPU seconds per process role during the copy */
  cpu: Record<string, number>;
}

export interface DataPlaneOptions {
  sizeMiB: number;
  runs: number;
  progress: (message: string) => void;
}

export async function dataPlaneSection(bench: FrontBench, options: DataPlaneOptions): Promise<SectionResult> {
  const started = Date.now();
  const withAuth = !bench.authMissing;
  const nginxPids = (n: Nginx) => [n.process.child.pid ?? 0, ...n.workers()];
  const registryPid = (r: Registry) => [r.process.child.pid ?? 0];
  const authPid = () => (bench.auth ? [bench.auth.process.child.pid ?? 0] : []);
  const targets: Target[] = [
    { key: 'front', label: 'nginx front', host: `${IP.front}:8443`, tls: true, auth: withAuth, processes: () => ({ nginx: nginxPids(bench.front), registry: registryPid(bench.registry), docker_auth: authPid() }) },
    { key: 'frontBefore', label: 'nginx front, settings before issue 14', host: `${IP.frontBefore}:8443`, tls: true, auth: withAuth, processes: () => ({ nginx: nginxPids(bench.frontBefore), registry: registryPid(bench.registry), docker_auth: authPid() }) },
    { key: 'registryTls', label: 'registry serving TLS itself', host: `${IP.registryTls}:5443`, tls: true, auth: withAuth, processes: () => ({ registry: registryPid(bench.registryTls), nginx: nginxPids(bench.front), docker_auth: authPid() }) },
    { key: 'registryHttp', label: 'plain-HTTP registry, no auth', host: `${IP.registryHttp}:5000`, tls: false, auth: false, processes: () => ({ registry: registryPid(bench.registryHttp) }) },
  ];
  // the image and pulled copies live in memory (/dev/shm), so the disk only sees the registries' writes
  const shm = mkdtempSync('/dev/shm/iro-bench-image-');
  try {
    options.progress(`writing a ${options.sizeMiB} MiB image`);
    const image = writeLargeOciImage(join(shm, 'image'), 'v1', options.sizeMiB * 1024 * 1024);
    const gib = image.layerBytes / 1024 ** 3;
    // one untimed push per registry: the image the pulls read (and a warm-up of every path)
    for (const target of targets) if (target.key !== 'frontBefore') await skopeoCopy(bench, image.reference, `docker://${target.host}/bench/pull:v1`, target, 'dest');
    const pushes: Record<string, Copy[]> = {};
    const pulls: Record<string, Copy[]> = {};
    for (let round = 0; round < options.runs; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        // a new repository per push (both fronts share one registry): no link to the blob there, so skopeo uploads it
        // all (its blob cache is empty in each run, so it cannot mount the blob from another repository)
        const copy = await measured(target, image.layerBytes, () => skopeoCopy(bench, image.reference, `docker://${target.host}/bench/push-${target.key.toLowerCase()}-${round}:v1`, target, 'dest'));
        (pushes[target.key] ??= []).push(copy);
        options.progress(`round ${round + 1}: push ${target.label}: ${copy.mbPerSecond.toFixed(1)} MB/s`);
      }
      for (const target of order) {
        const dest = mkdtempSync(join(shm, 'pull-'));
        try {
          const copy = await measured(target, image.layerBytes, () => skopeoCopy(bench, `docker://${target.host}/bench/pull:v1`, `dir:${dest}`, target, 'src'));
          (pulls[target.key] ??= []).push(copy);
          options.progress(`round ${round + 1}: pull ${target.label}: ${copy.mbPerSecond.toFixed(1)} MB/s`);
        } finally {
          rmSync(dest, { recursive: true, force: true });
        }
      }
    }
    return dataPlaneReport({ targets, pushes, pulls, gib, image, options, withAuth, authMissing: bench.authMissing, durationMs: Date.now() - started });
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
}

async function measured(target: Target, bytes: number, copy: () => Promise<{ seconds: number; cpu: number }>): Promise<Copy> {
  const pids = target.processes();
  const before = Object.fromEntries(Object.entries(pids).map(([role, list]) => [role, list.reduce((s, pid) => s + cpuSeconds(pid), 0)]));
  const result = await copy();
  const cpu: Record<string, number> = { skopeo: result.cpu };
  for (const [role, list] of Object.entries(pids)) cpu[role] = list.reduce((s, pid) => s + cpuSeconds(pid), 0) - (before[role] ?? 0);
  return { seconds: result.seconds, mbPerSecond: bytes / 1e6 / result.seconds, cpu };
}

/** One `skopeo copy`, timed by /usr/bin/time (wall and CPU of skopeo), with an empty blob info cache. */
export async function skopeoCopy(bench: FrontBench, from: string, to: string, target: Target, side: 'src' | 'dest'): Promise<{ seconds: number; cpu: number }> {
  const args = ['copy', '--quiet', '--preserve-digests'];
  if (target.tls) args.push(`--${side}-cert-dir`, bench.certDir);
  else args.push(`--${side}-tls-verify=false`);
  if (target.auth) args.push(`--${side}-creds`, `${PUSH.name}:${PUSH.password}`);
  else args.push(`--${side}-no-creds`);
  args.push(from, to);
  // skopeo remembers where it saw a blob (/var/lib/containers/cache) and would mount it from another
  // repository instead of uploading it: each copy gets an empty cache of its own
  const result = await run('/usr/bin/time', ['-f', 'TIME %e %U %S', 'bwrap', '--dev-bind', '/', '/', '--tmpfs', '/var/lib/containers/cache', SKOPEO, ...args], { timeoutMs: 600_000 });
  const time = /TIME ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(result.stderr);
  if (result.code !== 0 || !time) throw new Error(`skopeo ${args.filter((a) => !a.includes(PUSH.password)).join(' ')} failed (${result.code}): ${result.stderr.slice(-1000)}`);
  return { seconds: Number(time[1]), cpu: Number(time[2]) + Number(time[3]) };
}

function opensslVersion(): string {
  // `nginx -V` prints to stderr: "built with OpenSSL x (running with OpenSSL y)"
  const text = spawnSync(NGINX, ['-V'], { encoding: 'utf8' }).stderr ?? '';
  return /running with OpenSSL ([\d.]+)/.exec(text)?.[1] ?? /built with OpenSSL ([\d.]+)/.exec(text)?.[1] ?? '?';
}

function skopeoVersion(): string {
  try {
    return execFileSync(SKOPEO, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'skopeo';
  }
}

function dataPlaneReport(input: {
  targets: Target[];
  pushes: Record<string, Copy[]>;
  pulls: Record<string, Copy[]>;
  gib: number;
  image: LargeImage;
  options: DataPlaneOptions;
  withAuth: boolean;
  authMissing: string | undefined;
  durationMs: number;
}): SectionResult {
  const { targets, pushes, pulls, gib, options } = input;
  const mb = (copies: Copy[] | undefined) => median((copies ?? []).map((c) => c.mbPerSecond));
  const pairedRatio = (copies: Record<string, Copy[]>, a: string, b: string) => median((copies[a] ?? []).map((c, i) => c.mbPerSecond / (copies[b]?.[i]?.mbPerSecond ?? NaN)));
  const cpuPerGib = (copies: Copy[] | undefined, role: string) => median((copies ?? []).map((c) => (c.cpu[role] ?? NaN) / gib));
  // every process of a copy (client included) shares the 2 cores: when they are the limit, the
  // front can reach at most the ratio of these sums
  const allCpuPerGib = (copies: Copy[] | undefined) => median((copies ?? []).map((c) => Object.values(c.cpu).reduce((sum, v) => sum + v, 0) / gib));
  const size = `${options.sizeMiB} MiB`;
  const rows: Row[] = [];
  for (const [what, copies] of [['pull', pulls], ['push', pushes]] as const) {
    const r = pairedRatio(copies, 'front', 'registryTls');
    const nginxAfter = cpuPerGib(copies.front, 'nginx');
    const nginxBefore = cpuPerGib(copies.frontBefore, 'nginx');
    rows.push({
      figure: `${what} of a ${size} image through the nginx front: MB/s`,
      result: `${mb(copies.front).toFixed(1)} MB/s`,
      baseline: `${mb(copies.registryTls).toFixed(1)} MB/s registry serving TLS itself; ${mb(copies.registryHttp).toFixed(1)} MB/s plain HTTP, no auth`,
      ratio: `${r.toFixed(2)}×`,
      target: `≥ ${TARGET_RATIO}×`,
      met: r >= TARGET_RATIO,
      limit: `CPU: skopeo (TLS, digest, ${what === 'pull' ? 'writing the files' : 'reading the layout'}), nginx and the registry (${what === 'pull' ? 'reading' : 'hashing and writing'} the blob) share the 2 cores; nginx ${nginxAfter.toFixed(2)} CPU-s per GiB (before issue 14: ${nginxBefore.toFixed(2)}, ${mb(copies.frontBefore).toFixed(1)} MB/s); all processes ${allCpuPerGib(copies.front).toFixed(1)} CPU-s per GiB through the front vs ${allCpuPerGib(copies.registryTls).toFixed(1)} direct, so ${(allCpuPerGib(copies.registryTls) / allCpuPerGib(copies.front)).toFixed(2)}× where the cores are the limit; ratio of the medians ${(mb(copies.front) / mb(copies.registryTls)).toFixed(2)}×`,
    });
  }
  rows.push({
    figure: 'nginx CPU per GiB through the front, before → after issue 14 (pull; push)',
    result: `${cpuPerGib(pulls.frontBefore, 'nginx').toFixed(2)} → ${cpuPerGib(pulls.front, 'nginx').toFixed(2)} s; ${cpuPerGib(pushes.frontBefore, 'nginx').toFixed(2)} → ${cpuPerGib(pushes.front, 'nginx').toFixed(2)} s`,
    baseline: '–',
    ratio: `${ratio(cpuPerGib(pulls.front, 'nginx'), cpuPerGib(pulls.frontBefore, 'nginx'))}; ${ratio(cpuPerGib(pushes.front, 'nginx'), cpuPerGib(pushes.frontBefore, 'nginx'))}`,
    target: '–',
    limit: 'pull: one TLS record per read of the registry\'s response — 4 KiB before, up to 16 KiB (64 KiB per read) after; push: 16 KiB → 64 KiB reads of the body',
  });
  const details: string[] = [
    `One image with a single uncompressed tar layer of ${size} of random bytes (${(input.image.layerBytes / 1e6).toFixed(1)} MB incl. tar framing), copied with \`skopeo copy --preserve-digests\` (${skopeoVersion()}, its blob cache empty for each copy) from an OCI layout in /dev/shm (push) to a new repository each run, and from the registry into a new \`dir:\` in /dev/shm (pull). ${options.runs} interleaved rounds (order reversed every other round), each: the four pushes, then the four pulls. MB/s = layer bytes / skopeo wall time (token requests, manifest and config included). Registries: filesystem storage on disk, the generated config.yml (${input.withAuth ? 'token auth by the real docker_auth' : `**no auth: docker_auth is unavailable (${input.authMissing})**`}; the plain-HTTP baseline never has auth). Both fronts proxy to the same registry; the registry serving TLS itself gets its token through the front (same realm), then talks TLS directly. nginx: 2 workers, access log off; "before issue 14" is the generated nginx.conf without \`proxy_buffer_size 64k\`, \`proxy_buffers 4 64k\` and \`client_body_buffer_size 64k\` (nginx defaults 4 KiB / 8 × 4 KiB / 16 KiB).`,
    '',
    '| Copy | Target | Median MB/s | Runs (MB/s) | CPU s per GiB (median): nginx | registry | skopeo | docker_auth |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [what, copies] of [['pull', pulls], ['push', pushes]] as const) {
    for (const target of targets) {
      const list = copies[target.key] ?? [];
      const role = (r: string) => (target.processes()[r] ? cpuPerGib(list, r).toFixed(2) : '–');
      details.push(`| ${what} | ${target.label} | ${mb(list).toFixed(1)} | ${list.map((c) => c.mbPerSecond.toFixed(1)).join(', ')} | ${target.key === 'registryTls' ? '–' : role('nginx')} | ${role('registry')} | ${cpuPerGib(list, 'skopeo').toFixed(2)} | ${role('docker_auth')} |`);
    }
  }
  const perRound = (copies: Record<string, Copy[]>) => (copies.front ?? []).map((c, i) => (c.mbPerSecond / (copies.registryTls?.[i]?.mbPerSecond ?? NaN)).toFixed(2)).join(', ');
  details.push(
    '',
    `Per-round ratios front / registry TLS (the spread is the noise of the shared cores): pull ${perRound(pulls)}; push ${perRound(pushes)}.`,
    '',
    `Ratios (median of per-round ratios): pull front / registry TLS ${pairedRatio(pulls, 'front', 'registryTls').toFixed(2)}×, front before / registry TLS ${pairedRatio(pulls, 'frontBefore', 'registryTls').toFixed(2)}×, front / plain HTTP ${pairedRatio(pulls, 'front', 'registryHttp').toFixed(2)}×; push front / registry TLS ${pairedRatio(pushes, 'front', 'registryTls').toFixed(2)}×, front before / registry TLS ${pairedRatio(pushes, 'frontBefore', 'registryTls').toFixed(2)}×, front / plain HTTP ${pairedRatio(pushes, 'front', 'registryHttp').toFixed(2)}×.`,
  );
  return { title: '6. Data plane through the nginx front', rows, details, durationMs: input.durationMs };
}

// ---------------------------------------------------------------------------------------------
// 7. Token logins, docker_auth reloads, per-handshake certificates

export interface LoginOptions {
  runs: number;
  durationMs: number;
  concurrency: number;
  reloads: number;
  progress: (message: string) => void;
}

interface LoginRun {
  rps: number;
  p50: number;
  p99: number;
  nonOk: number;
}

export async function loginSection(bench: FrontBench, options: LoginOptions): Promise<SectionResult> {
  const started = Date.now();
  if (!bench.auth) {
    return {
      title: '7. Token logins through the nginx front',
      rows: [{ figure: 'token logins through the nginx front', result: 'not measured', baseline: '–', ratio: '–', target: '–', limit: `needs docker_auth, which is unavailable: ${bench.authMissing}` }],
      details: [`Not measured: every row of this section needs a running docker_auth (auth_server), which is unavailable here: ${bench.authMissing}.`],
      durationMs: Date.now() - started,
    };
  }
  const auth = bench.auth;
  const query = `/auth/token?service=${encodeURIComponent(HOSTNAME)}&scope=${encodeURIComponent('repository:bench/app:pull,push')}`;
  const ca = bench.pki.ca.certPem;
  const headers = { authorization: basicAuth(PUSH.name, PUSH.password) };
  // docker_auth direct: plain HTTP, with the X-Real-IP header nginx would add (it refuses requests without)
  const servers = {
    front: { url: `https://${IP.front}:8443${query}`, headers },
    frontStaticCert: { url: `https://${IP.frontStaticCert}:8443${query}`, headers },
    direct: { url: `http://${auth.address}${query}`, headers: { ...headers, 'x-real-ip': '127.0.0.1' } },
  };
  type Server = keyof typeof servers;
  type Mode = 'keep-alive' | 'new connection' | 'resumed';
  const cells: { server: Server; mode: Mode }[] = [
    { server: 'front', mode: 'keep-alive' },
    { server: 'direct', mode: 'keep-alive' },
    { server: 'front', mode: 'new connection' },
    { server: 'frontStaticCert', mode: 'new connection' },
    { server: 'direct', mode: 'new connection' },
    // a new connection per login, resuming the client's previous TLS session (no certificate sent)
    { server: 'front', mode: 'resumed' },
    { server: 'frontStaticCert', mode: 'resumed' },
  ];
  const key = (c: { server: Server; mode: Mode }) => `${c.server}/${c.mode}`;
  const results: Record<string, LoginRun[]> = {};
  const cpu: Record<string, number[]> = {};
  const nginxOf = (server: Server) => (server === 'front' ? bench.front : server === 'frontStaticCert' ? bench.frontStaticCert : undefined);
  for (let round = 0; round < options.runs; round++) {
    const order = round % 2 === 0 ? cells : [...cells].reverse();
    for (const cell of order) {
      const { url, headers: h } = servers[cell.server];
      const https = url.startsWith('https:');
      const agents = Array.from({ length: options.concurrency }, () => (cell.mode === 'keep-alive' ? keepAliveAgent(https) : cell.mode === 'resumed' ? new HttpsAgent({ keepAlive: false, maxCachedSessions: 4 }) : false));
      const nginx = nginxOf(cell.server);
      const pids = [...(nginx ? [nginx.process.child.pid ?? 0, ...nginx.workers()] : []), auth.process.child.pid ?? 0];
      // warm-up: connections open, docker_auth's goroutines running
      await closedLoop(options.concurrency, (i) => fetchAnswer(url, { ca, agent: agents[i] ?? false, headers: h }), delay(200));
      const cpuBefore = pids.reduce((s, pid) => s + cpuSeconds(pid), 0);
      const load = await closedLoop(options.concurrency, (i) => fetchAnswer(url, { ca, agent: agents[i] ?? false, headers: h }), delay(options.durationMs), (a) => a.status === 200);
      const used = pids.reduce((s, pid) => s + cpuSeconds(pid), 0) - cpuBefore;
      for (const agent of agents) if (agent) agent.destroy();
      const ok = load.counts['200'] ?? 0;
      const total = Object.values(load.counts).reduce((a, b) => a + b, 0);
      (results[key(cell)] ??= []).push({ rps: (ok / load.durationMs) * 1000, p50: percentile(load.latenciesMs, 50), p99: percentile(load.latenciesMs, 99), nonOk: total - ok });
      (cpu[key(cell)] ??= []).push((used / Math.max(ok, 1)) * 1e6);
    }
    options.progress(`login round ${round + 1}/${options.runs}`);
  }
  const m = (k: string, f: keyof LoginRun) => median((results[k] ?? []).map((r) => r[f]));
  const paired = (a: string, b: string) => median((results[a] ?? []).map((r, i) => r.rps / (results[b]?.[i]?.rps ?? NaN)));
  const rows: Row[] = [];
  for (const mode of ['keep-alive', 'new connection'] as const) {
    const keepAlive = mode === 'keep-alive';
    const f = `front/${mode}`;
    const d = `direct/${mode}`;
    rows.push({
      figure: `token logins through the nginx front, ${mode}, ${options.concurrency} concurrent: logins/s, p99`,
      result: `${m(f, 'rps').toFixed(0)}/s, p99 ${ms(m(f, 'p99'))}`,
      baseline: `${m(d, 'rps').toFixed(0)}/s, p99 ${ms(m(d, 'p99'))} docker_auth direct (plain HTTP)`,
      ratio: `${paired(f, d).toFixed(2)}×`,
      target: '–',
      limit: keepAlive
        ? 'docker_auth: a bcrypt check (cost 4) and an RS256 signature per login; nginx adds TLS and one proxy hop'
        : 'the TLS handshake (ECDHE + RSA-2048 signature in nginx, verification in the client) on the same 2 cores',
    });
  }
  const perHandshake = paired('front/new connection', 'frontStaticCert/new connection');
  rows.push({
    figure: 'certificate read per TLS handshake: new-connection logins/s',
    result: `${m('front/new connection', 'rps').toFixed(0)}/s`,
    baseline: `${m('frontStaticCert/new connection', 'rps').toFixed(0)}/s with ssl_certificate read once at start`,
    ratio: `${perHandshake.toFixed(2)}×`,
    target: '–',
    limit: `reading and parsing tls.crt and tls.key (OpenSSL ${opensslVersion()} here) at each full handshake; CPU per login (nginx + docker_auth): ${median(cpu['front/new connection'] ?? []).toFixed(0)} µs vs ${median(cpu['frontStaticCert/new connection'] ?? []).toFixed(0)} µs; resumed TLS sessions: ${m('front/resumed', 'rps').toFixed(0)}/s vs ${m('frontStaticCert/resumed', 'rps').toFixed(0)}/s (${paired('front/resumed', 'frontStaticCert/resumed').toFixed(2)}×)`,
  });
  const details: string[] = [
    `GET /auth/token (scope pull,push on one repository) with the basic credentials of one push account (bcrypt cost 4, as the operator hashes) by ${options.concurrency} concurrent closed-loop clients in the benchmark process (node:https; a keep-alive agent per client, or a new connection per login); ${options.durationMs} ms per run after 200 ms of warm-up, ${options.runs} interleaved rounds. "front" is the generated nginx.conf (certificate read per handshake); "front, fixed certificate" is the same with \`ssl_certificate\` naming the files (read once at start); "direct" is docker_auth's own plain-HTTP port. TLS 1.3; "new connection" is a full handshake per login, "resumed" a new connection per login that resumes the client's previous TLS session (node's agent session cache). CPU per login is nginx (master + workers) plus docker_auth.`,
    '',
    '| Server | Connection | Logins/s (median) | Runs | p50 | p99 | Not 200 | CPU per login |',
    '|---|---|---|---|---|---|---|---|',
    ...cells.map((c) => {
      const k = key(c);
      const label = c.server === 'front' ? 'nginx front' : c.server === 'frontStaticCert' ? 'nginx front, fixed certificate' : 'docker_auth direct';
      return `| ${label} | ${c.mode} | ${m(k, 'rps').toFixed(0)} | ${(results[k] ?? []).map((r) => r.rps.toFixed(0)).join(', ')} | ${ms(m(k, 'p50'))} | ${ms(m(k, 'p99'))} | ${(results[k] ?? []).reduce((s, r) => s + r.nonOk, 0)} | ${median(cpu[k] ?? []).toFixed(0)} µs |`;
    }),
  ];

  // docker_auth reloads under load: through the front and directly, at the same time
  options.progress(`${options.reloads} docker_auth reloads under load`);
  const reload = await reloadsUnderLoad(bench, auth, servers, options);
  rows.push({
    figure: `logins failed during ${reload.reloads} docker_auth config reloads (${options.concurrency} clients each way)`,
    result: `through the front: ${reload.frontFailures} of ${reload.frontTotal}`,
    baseline: `direct: ${reload.directFailures} of ${reload.directTotal} (${Object.entries(reload.direct.counts).filter(([k]) => k !== '200').map(([k, v]) => `${v} × ${k}`).join(', ') || 'none'})`,
    ratio: '–',
    target: '0 through the front',
    met: reload.frontFailures === 0,
    limit: `docker_auth closes its listener and connections for ${ms(median(reload.gaps))} (median; max ${ms(Math.max(...reload.gaps))}) per reload; nginx retried ${reload.retried} attempts, at once and then every 100 ms`,
  });
  details.push(
    '',
    `Reloads: the auth config rewritten ${reload.reloads} times the kubelet's way (new timestamped directory, \`..data\` swapped, old directory deleted; docker_auth reloads ~2 s later), each after the previous reload finished, while ${options.concurrency} clients log in through the front (half keep-alive, half a new connection per login) and ${options.concurrency} directly. Listener gaps (docker_auth's log: "Config ok, restarting server" → "Serving on"): ${reload.gaps.map((g) => g.toFixed(2)).join(', ')} ms. Answers through the front: ${JSON.stringify(reload.front.counts)}; directly: ${JSON.stringify(reload.direct.counts)}.`,
  );
  return { title: '7. Token logins through the nginx front', rows, details, durationMs: Date.now() - started };
}

async function reloadsUnderLoad(
  bench: FrontBench,
  auth: DockerAuth,
  servers: Record<'front' | 'direct', { url: string; headers: Record<string, string> }>,
  options: LoginOptions,
): Promise<{ reloads: number; gaps: number[]; front: LoadResult; direct: LoadResult; frontFailures: number; directFailures: number; frontTotal: number; directTotal: number; retried: number }> {
  const ca = bench.pki.ca.certPem;
  const registryModel = testRegistry('registry', 'bench');
  const gapsBefore = reloadGaps(auth.logFile).length;
  const retriedBefore = failedAttempts(bench.front);
  const load = (server: 'front' | 'direct', until: Promise<void>) => {
    const { url, headers } = servers[server];
    const agents = Array.from({ length: options.concurrency }, (_, i) => (i % 2 === 0 ? keepAliveAgent(url.startsWith('https:')) : false));
    return closedLoop(options.concurrency, (i) => fetchAnswer(url, { ca, agent: agents[i] ?? false, headers }), until, (a: Answer) => a.status === 200).finally(() => {
      for (const agent of agents) if (agent) agent.destroy();
    });
  };
  let finish!: () => void;
  const until = new Promise<void>((resolve) => (finish = resolve));
  const front = load('front', until);
  const direct = load('direct', until);
  for (let i = 1; i <= options.reloads; i++) {
    const before = reloadGaps(auth.logFile).length;
    auth.writeConfig([testAccount(registryModel, PUSH, 'push'), testAccount(registryModel, { name: `pull.bench.front.${i}`, password: `p${i}` }, 'pull')]);
    await waitFor(`docker_auth reload ${i}`, async () => reloadGaps(auth.logFile).length > before, 15_000);
    await delay(200);
  }
  finish();
  const [f, d] = await Promise.all([front, direct]);
  const failures = (r: LoadResult) => Object.entries(r.counts).filter(([k]) => k !== '200').reduce((s, [, v]) => s + v, 0);
  const total = (r: LoadResult) => Object.values(r.counts).reduce((a, b) => a + b, 0);
  const gaps = reloadGaps(auth.logFile).slice(gapsBefore);
  return { reloads: gaps.length, gaps, front: f, direct: d, frontFailures: failures(f), directFailures: failures(d), frontTotal: total(f), directTotal: total(d), retried: failedAttempts(bench.front) - retriedBefore };
}

/** Upstream attempts to docker_auth that nginx logged as failed (each one retried or answered 502). */
function failedAttempts(nginx: Nginx): number {
  try {
    return readFileSync(nginx.errorLog, 'utf8').split('\n').filter((line) => line.includes(`upstream: "http://${IP.auth}:5001`)).length;
  } catch {
    return 0;
  }
}

