// The container runtime half of the kubelet stand-in (test/support/kubelet.ts): runs ONE Pod object
// from its own spec, as stored in the API server, with local binaries for the container images.
// Nothing of our manifests is rewritten; if a pod cannot run from its spec, the spec is wrong.
//
// - Network: a pod that declares container ports (or probes) gets its own network namespace with
//   only a loopback interface (`unshare --net`), so its containers talk over 127.0.0.1 exactly as
//   in a cluster and several pods can run at once. A bridge process inside listens on Unix sockets
//   (`<pod>/net/<port>.sock`) and connects each to 127.0.0.1:<port> in the pod; the pod IP (a
//   loopback address the kubelet allocates, e.g. 127.1.0.7) serves every container port through it.
//   A pod without ports (a Job's) shares the host's network namespace: it only connects out, to the
//   API server and to pod IPs. No address outside 127.0.0.0/8 is ever created.
// - Containers: each runs under bubblewrap on bwrap's own tmpfs root: the host's /usr (the "base
//   image"), the image's binaries bound at their image paths (imageMapping), the pod's volumes at
//   the mount paths, /proc, /dev, its own PID/IPC/UTS namespaces and hostname, the root remounted
//   read-only when readOnlyRootFilesystem says so; command/args/env run as the securityContext
//   user/group with fsGroup and supplementalGroups, no capabilities, no_new_privs (setpriv).
//   A container whose image has no local binary (auth_server when docker_auth cannot be built) is
//   reported as waiting with the reason; the others still run.
// - Volumes: Secret, ConfigMap, projected (serviceAccountToken via the TokenRequest API bound to the
//   pod, configMap, secret, downwardAPI) and downwardAPI volumes are written in the kubelet's
//   atomic-writer layout (`..data` symlink swap), owned root:fsGroup; subPath mounts bind one file
//   and are never updated (as in Kubernetes); emptyDir is a fresh directory; persistentVolumeClaim
//   resolves claim → PersistentVolume → its hostPath. syncVolumes() rewrites the updatable ones.
// - Readiness: the containers' own readinessProbe (httpGet through the bridge) every periodSeconds,
//   or every `probePeriodMs` when the kubelet passes one (tests); restartPolicy Always/OnFailure
//   restart exited containers with the kubelet's doubling back-off (capped at 10 s here).
// - stop(grace): SIGTERM, SIGKILL after the grace period, the bridge last; then no process is left
//   in the pod's network namespace. Mounts live only in the sandboxes' mount namespaces.
//
// Not modelled (the spec fails loudly where it matters): init containers, liveness/startup probe
// actions, probes other than httpGet, resource limits, seccomp profiles, hostPath volumes.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join, normalize, relative } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1PodSpec, V1Probe, V1Volume, V1ObjectFieldSelector } from '@kubernetes/client-node';
import { authServerUnavailable } from './binaries.ts';
import type { KubeApi } from './kube-api.ts';
import { delay, startProcess, type ManagedProcess } from './processes.ts';

export interface ContainerStatus {
  name: string;
  image: string;
  /** false while the container has not been created; see waitingReason and reason */
  started: boolean;
  /**
   * BinaryUnavailable: no local binary for the image (e.g. auth_server when docker_auth cannot be
   * built) — expected on some machines; CreateContainerConfigError: the spec cannot run as written.
   */
  waitingReason?: 'BinaryUnavailable' | 'CreateContainerConfigError';
  running: boolean;
  ready: boolean;
  restartCount: number;
  /** why the container is not started, or how it last ended */
  reason?: string;
  startedAt?: Date;
  /** the last run's end, while the container is not running */
  terminated?: { exitCode: number; signal?: string; finishedAt: Date; startedAt: Date };
  /** the argv run inside the sandbox */
  argv?: string[];
  logFile: string;
}

export interface PodSandboxContext {
  api: KubeApi;
  /** directory with the registry and auth_server binaries (testBinaries()) */
  assetsDir: string;
  /** what the operator image's /app holds (the repository with dist/) */
  repoRoot: string;
  /** the pod's own directory (volumes, sockets, logs) */
  podDir: string;
  /** the pod's IP, a loopback address; its container ports are served there */
  podIp: string;
  /** the API server as pods reach it (KUBERNETES_SERVICE_HOST/PORT: kube-proxy's role) */
  apiServer: { host: string; port: number };
  /** claim → host directory of its bound PersistentVolume; throws while unbound */
  claimDirectory(namespace: string, claim: string): Promise<string>;
  /** readiness probe period instead of periodSeconds (tests want answers sooner) */
  probePeriodMs?: number;
}

export interface PodSandbox {
  /** whether the pod has its own network namespace (else it shares the host's) */
  isolatedNetwork: boolean;
  containers(): ContainerStatus[];
  /** the kubelet's volume refresh: rewrites Secret/ConfigMap/projected/downwardAPI volumes from the API */
  syncVolumes(): Promise<void>;
  logs(container: string): string;
  /** pids of every process in the pod's network namespace (containers and the bridge) */
  processIds(): number[];
  /** SIGTERM, SIGKILL after gracePeriodSeconds; resolves when nothing of the pod runs */
  stop(gracePeriodSeconds?: number): Promise<void>;
}

interface ImageMapping {
  /** the image's ENTRYPOINT and CMD, used where the container leaves command/args out */
  entrypoint: string[];
  cmd: string[];
  /** container path → host path (file or directory); the host path may be missing (then the container cannot start) */
  binaries: Record<string, string>;
  /** the image's STOPSIGNAL (default SIGTERM) */
  stopSignal?: NodeJS.Signals;
  /** the image's own environment (Dockerfile ENV), WORKDIR and USER */
  env?: Record<string, string>;
  workingDir?: string;
  user?: { uid: number; gid: number };
  /** why the binary is missing, for the container status */
  missing?: (assetsDir: string) => string | undefined;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_SOCKET_PATH = 107;
// outside /usr: the sandbox's /usr is the host's, read-only
const OPERATOR_NODE_DIR = '/opt/nodejs/bin';

/** The local stand-in for each image the project's pods use. */
export function imageMapping(image: string, ctx: { assetsDir: string; repoRoot: string }): ImageMapping | undefined {
  const ref = image.replace(/^docker\.io\//, '').replace(/^library\//, '');
  const name = ref.replace(/[:@].*$/, '').split('/').at(-1);
  if (/^registry[:@]/.test(ref) || ref === 'registry') {
    // distribution's entrypoint.sh runs `registry "$@"` for `serve ...`; ENTRYPOINT+CMD amount to that.
    return { entrypoint: ['registry'], cmd: ['serve', '/etc/distribution/config.yml'], binaries: { '/bin/registry': join(ctx.assetsDir, 'registry') } };
  }
  if (/^cesanta\/docker_auth([:@]|$)/.test(ref)) {
    return {
      entrypoint: ['/docker_auth/auth_server'],
      cmd: ['/config/auth_config.yml'],
      binaries: { '/docker_auth/auth_server': join(ctx.assetsDir, 'auth_server') },
      missing: (dir) => {
        const why = authServerUnavailable(dir);
        return why ? `auth_server (docker_auth) could not be built: ${why}` : undefined;
      },
    };
  }
  if (/^nginx([:@]|$)/.test(ref)) {
    // Debian's nginx is at the same path as in the image; the image's entrypoint script is not here.
    // STOPSIGNAL SIGQUIT, as the nginx image: a graceful shutdown that finishes requests in flight
    return { entrypoint: ['/docker-entrypoint.sh'], cmd: ['nginx', '-g', 'daemon off;'], binaries: { '/usr/sbin/nginx': '/usr/sbin/nginx' }, stopSignal: 'SIGQUIT' };
  }
  if (name === 'image-registry-operator') {
    // The Dockerfile's layout: dist/ under /app, Node.js on PATH.
    return {
      entrypoint: ['node'],
      cmd: [],
      binaries: { '/app/dist': join(ctx.repoRoot, 'dist'), [`${OPERATOR_NODE_DIR}/node`]: process.execPath },
      env: { PATH: `${OPERATOR_NODE_DIR}:${PATH}`, NODE_ENV: 'production' },
      workingDir: '/app',
      user: { uid: 65532, gid: 65532 },
    };
  }
  return undefined;
}

/** The pod cannot start as specified (a missing ConfigMap key, …): the kubelet's CreateContainerConfigError. */
export class PodConfigError extends Error {}

export async function startPodSandbox(pod: V1Pod, ctx: PodSandboxContext): Promise<PodSandbox> {
  const podSpec = pod.spec as V1PodSpec;
  const namespace = pod.metadata?.namespace ?? 'default';
  const podName = pod.metadata?.name ?? '';
  const tools = locateTools();
  const { podDir } = ctx;
  for (const part of ['volumes', 'net', 'logs', 'etc']) rmSync(join(podDir, part), { recursive: true, force: true });
  for (const part of ['volumes', 'net', 'logs', 'etc']) mkdirSync(join(podDir, part), { recursive: true, mode: 0o755 });
  const socketPath = (port: number) => join(podDir, 'net', `${port}.sock`);
  if (socketPath(65535).length > MAX_SOCKET_PATH) throw new Error(`the kubelet's work dir is too deep for Unix socket paths: ${socketPath(65535)}`);
  unsupported(podSpec);

  const fsGroup = podSpec.securityContext?.fsGroup;
  const volumeContext: VolumeContext = { ctx, pod, namespace, podDir, fsGroup };
  const volumeDirs = new Map<string, string>();
  for (const volume of podSpec.volumes ?? []) volumeDirs.set(volume.name, await materialiseVolume(volume, volumeContext));
  writeHostsFiles(podDir, podName, ctx.podIp);

  const resolvePort = namedPorts(podSpec);
  const ports = podPorts(podSpec, resolvePort);
  const isolatedNetwork = ports.size > 0 && !podSpec.hostNetwork;
  const env = await podEnvironment(pod, ctx).catch((error: Error) => {
    throw new PodConfigError(error.message);
  });
  const network = isolatedNetwork ? await startPodNetwork(podDir, podName, [...ports], tools, socketPath) : undefined;
  // for tests that look inside a pod (podProcesses): which network namespace is the pod's
  if (network) writeFileSync(join(podDir, 'netns'), network.netns);
  const forwarders: { close(): Promise<void> }[] = [];
  const restartPolicy = podSpec.restartPolicy ?? 'Always';
  const runtimes: ContainerRuntime[] = podSpec.containers.map((spec) => ({
    spec,
    status: { name: spec.name, image: spec.image ?? '', started: false, running: false, ready: false, restartCount: 0, logFile: join(podDir, 'logs', `${spec.name}.log`) },
    successes: 0,
    failures: 0,
  }));
  let stopping = false;
  const launch = (rt: ContainerRuntime): void => {
    const sandbox = containerSandbox(rt.spec, podSpec, { podDir, podName, assetsDir: ctx.assetsDir, repoRoot: ctx.repoRoot, volumeDirs, env: env(rt.spec), tools, hostNetwork: !isolatedNetwork });
    if ('reason' in sandbox) {
      rt.status.reason = sandbox.reason;
      rt.status.waitingReason = sandbox.waitingReason;
      return;
    }
    rt.status.argv = sandbox.argv;
    closeSync(openSync(rt.status.logFile, 'a'));
    // As runc does: the container user must be able to reopen its stdout (/dev/stdout → the log).
    chownSync(rt.status.logFile, sandbox.uid, sandbox.gid);
    const argv = network ? [tools.nsenter, `--net=${network.nsPath}`, '--', tools.bwrap, ...sandbox.bwrapArgs] : [tools.bwrap, ...sandbox.bwrapArgs];
    rt.process = startProcess(`${namespace}/${podName}/${rt.spec.name}`, argv[0] as string, argv.slice(1), rt.status.logFile, { env: { PATH } });
    Object.assign(rt.status, { started: true, running: true, startedAt: new Date(), reason: undefined, waitingReason: undefined });
    const current = rt.process;
    const startedAt = rt.status.startedAt as Date;
    void current.exited.then(async (code) => {
      const exitCode = typeof code === 'number' ? code : 128 + 9;
      Object.assign(rt.status, { running: false, ready: false, terminated: { exitCode, ...(typeof code === 'string' ? { signal: code } : {}), finishedAt: new Date(), startedAt } });
      rt.successes = 0;
      if (stopping || rt.process !== current) return;
      rt.status.reason = `exited with ${code}`;
      if (restartPolicy === 'Never' || (restartPolicy === 'OnFailure' && exitCode === 0)) return;
      rt.status.restartCount += 1;
      await sleep(Math.min(10_000, 500 * 2 ** Math.min(rt.status.restartCount, 5)));
      if (!stopping) launch(rt);
    });
  };
  const teardown = async (gracePeriodSeconds = 30): Promise<void> => {
    if (stopping) return;
    stopping = true;
    // The children, sockets and probe timers are all unref'd; hold the event loop while stopping.
    const keepAlive = setInterval(() => undefined, 1_000);
    try {
      await Promise.all(forwarders.map((f) => f.close()));
      await Promise.all(runtimes.map((rt) => rt.process?.stop(gracePeriodSeconds * 1000, imageMapping(rt.spec.image ?? '', ctx)?.stopSignal)));
      if (!network) return;
      await network.process.stop();
      // Anything still in the namespace (a daemon that left its process group) is ours: kill it.
      for (let attempt = 0; attempt < 50; attempt++) {
        const left = processesInNetns(network.netns);
        if (left.length === 0) return;
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
        await delay(100);
      }
      throw new Error(`processes left in the network namespace of pod ${podName}: ${processesInNetns(network.netns).join(', ')}`);
    } finally {
      clearInterval(keepAlive);
    }
  };
  try {
    if (network) for (const port of ports) forwarders.push(await forward(ctx.podIp, port, socketPath(port)));
    for (const rt of runtimes) launch(rt);
  } catch (error) {
    await teardown(0);
    throw error;
  }
  for (const rt of runtimes) void readinessLoop(rt, ctx, () => stopping, (port) => socketPath(resolvePort(port, `container ${rt.spec.name}`)));

  const logs = (container: string) => {
    const file = join(podDir, 'logs', `${container}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  };
  return {
    isolatedNetwork,
    containers: () => runtimes.map((rt) => ({ ...rt.status, ...(rt.status.argv ? { argv: [...rt.status.argv] } : {}) })),
    logs,
    processIds: () => (network ? processesInNetns(network.netns) : runtimes.flatMap((rt) => (rt.status.running && rt.process?.child.pid ? [rt.process.child.pid] : []))),
    syncVolumes: async () => {
      for (const volume of podSpec.volumes ?? []) if (updatable(volume)) await materialiseVolume(volume, volumeContext);
    },
    stop: teardown,
  };
}

const updatable = (v: V1Volume) => Boolean(v.secret || v.configMap || v.projected || v.downwardAPI);

interface ContainerRuntime {
  spec: V1Container;
  status: ContainerStatus;
  process?: ManagedProcess;
  successes: number;
  failures: number;
}

function unsupported(podSpec: V1PodSpec): void {
  const problems: string[] = [];
  if (podSpec.initContainers?.length) problems.push('initContainers');
  for (const c of podSpec.containers) {
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
      if (probe && !probe.httpGet) problems.push(`container ${c.name}: probes other than httpGet`);
    }
  }
  for (const v of podSpec.volumes ?? []) {
    if (!v.secret && !v.configMap && !v.emptyDir && !v.persistentVolumeClaim && !v.projected && !v.downwardAPI) problems.push(`volume ${v.name}: unsupported volume type`);
  }
  if (problems.length) throw new Error(`the kubelet stand-in does not support: ${[...new Set(problems)].join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// Volumes

interface VolumeContext {
  ctx: PodSandboxContext;
  pod: V1Pod;
  namespace: string;
  podDir: string;
  fsGroup: number | undefined;
}

async function getObject<T>(api: KubeApi, path: string): Promise<T | undefined> {
  const response = await api.request<T>('GET', path);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return response.body;
}

const decodeAll = (data: Record<string, string> | undefined) => Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));

async function secretData(vc: VolumeContext, name: string, optional: boolean | undefined, what: string): Promise<Record<string, Buffer>> {
  const secret = await getObject<{ data?: Record<string, string> }>(vc.ctx.api, `/api/v1/namespaces/${vc.namespace}/secrets/${name}`);
  if (!secret && !optional) throw new Error(`${what}: Secret ${vc.namespace}/${name} not found (the kubelet keeps the pod in ContainerCreating)`);
  return decodeAll(secret?.data);
}

async function configMapData(vc: VolumeContext, name: string, optional: boolean | undefined, what: string): Promise<Record<string, Buffer>> {
  const configMap = await getObject<{ data?: Record<string, string>; binaryData?: Record<string, string> }>(vc.ctx.api, `/api/v1/namespaces/${vc.namespace}/configmaps/${name}`);
  if (!configMap && !optional) throw new Error(`${what}: ConfigMap ${vc.namespace}/${name} not found (the kubelet keeps the pod in ContainerCreating)`);
  return {
    ...Object.fromEntries(Object.entries(configMap?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
    ...decodeAll(configMap?.binaryData),
  };
}

/** A token for the pod's ServiceAccount bound to the pod, as the kubelet requests it. */
async function serviceAccountToken(vc: VolumeContext, source: { audience?: string; expirationSeconds?: number }): Promise<Buffer> {
  const { pod } = vc;
  const sa = pod.spec?.serviceAccountName || 'default';
  const response = await vc.ctx.api.request<{ status?: { token?: string }; message?: string }>('POST', `/api/v1/namespaces/${vc.namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      ...(source.audience ? { audiences: [source.audience] } : {}),
      expirationSeconds: source.expirationSeconds ?? 3607,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
    },
  });
  const token = response.body?.status?.token;
  if (response.status !== 201 || !token) throw new Error(`token for ServiceAccount ${vc.namespace}/${sa}: ${response.body?.message ?? `HTTP ${response.status}`}`);
  return Buffer.from(token);
}

function downwardFiles(vc: VolumeContext, items: { path: string; fieldRef?: V1ObjectFieldSelector; mode?: number }[], defaultMode: number): ProjectedFile[] {
  return items.map((item) => {
    if (!item.fieldRef) throw new Error(`downwardAPI ${item.path}: only fieldRef is supported by the kubelet stand-in`);
    return { path: item.path, data: Buffer.from(fieldValue(vc.pod, item.fieldRef.fieldPath, vc.ctx.podIp)), mode: item.mode ?? defaultMode };
  });
}

async function materialiseVolume(volume: V1Volume, vc: VolumeContext): Promise<string> {
  const dir = join(vc.podDir, 'volumes', volume.name);
  const what = `volume ${volume.name}`;
  if (volume.secret) {
    const data = await secretData(vc, volume.secret.secretName ?? '', volume.secret.optional, what);
    writeAtomic(dir, project(volume.name, data, volume.secret.items, volume.secret.defaultMode ?? 0o644, volume.secret.optional), vc.fsGroup);
    return dir;
  }
  if (volume.configMap) {
    const data = await configMapData(vc, volume.configMap.name ?? '', volume.configMap.optional, what);
    writeAtomic(dir, project(volume.name, data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, volume.configMap.optional), vc.fsGroup);
    return dir;
  }
  if (volume.downwardAPI) {
    writeAtomic(dir, downwardFiles(vc, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644), vc.fsGroup);
    return dir;
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    const files: ProjectedFile[] = [];
    for (const source of volume.projected.sources ?? []) {
      if (source.serviceAccountToken) files.push({ path: source.serviceAccountToken.path, data: await serviceAccountToken(vc, source.serviceAccountToken), mode });
      else if (source.configMap) files.push(...project(volume.name, await configMapData(vc, source.configMap.name ?? '', source.configMap.optional, what), source.configMap.items, mode, source.configMap.optional));
      else if (source.secret) files.push(...project(volume.name, await secretData(vc, source.secret.name ?? '', source.secret.optional, what), source.secret.items, mode, source.secret.optional));
      else if (source.downwardAPI) files.push(...downwardFiles(vc, source.downwardAPI.items ?? [], mode));
      else throw new Error(`${what}: unsupported projected source`);
    }
    writeAtomic(dir, files, vc.fsGroup);
    return dir;
  }
  if (volume.emptyDir) {
    mkdirSync(dir, { recursive: true });
    setOwnership(dir, 0o777, vc.fsGroup, false);
    return dir;
  }
  if (volume.persistentVolumeClaim) {
    const claimDir = await vc.ctx.claimDirectory(vc.namespace, volume.persistentVolumeClaim.claimName);
    setOwnership(claimDir, 0o755, vc.fsGroup, false);
    return claimDir;
  }
  throw new Error(`${what}: unsupported type`);
}

interface Tools {
  bwrap: string;
  nsenter: string;
  unshare: string;
  setpriv: string;
  ip: string;
}

function locateTools(): Tools {
  const find = (name: string, dirs = ['/usr/bin', '/usr/sbin', '/bin', '/sbin']): string => {
    for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name);
    throw new Error(`the kubelet stand-in needs ${name} (Debian: ${name === 'bwrap' ? 'bubblewrap' : name === 'ip' ? 'iproute2' : 'util-linux'})`);
  };
  // setpriv runs inside the sandbox, which sees the host's /usr only.
  return { bwrap: find('bwrap'), nsenter: find('nsenter'), unshare: find('unshare'), setpriv: find('setpriv', ['/usr/bin', '/usr/sbin']), ip: find('ip') };
}


interface ProjectedFile {
  path: string;
  data: Buffer;
  mode: number;
}

function project(volume: string, data: Record<string, Buffer>, items: { key: string; path: string; mode?: number }[] | undefined, defaultMode: number, optional?: boolean): ProjectedFile[] {
  if (!items?.length) return Object.entries(data).map(([key, value]) => ({ path: key, data: value, mode: defaultMode }));
  const files: ProjectedFile[] = [];
  for (const item of items) {
    const value = data[item.key];
    if (!value) {
      if (optional) continue;
      throw new Error(`volume ${volume}: key ${item.key} not found`);
    }
    const path = normalize(item.path);
    if (path.startsWith('..') || path.startsWith('/')) throw new Error(`volume ${volume}: item path ${item.path} leaves the volume`);
    files.push({ path, data: value, mode: item.mode ?? defaultMode });
  }
  return files;
}

/**
 * The kubelet's atomic writer: files in a timestamped directory, `..data` pointing at it, and one
 * symlink per top-level entry through `..data`. An update swaps `..data` in one rename, so a
 * process watching the directory never sees half a change.
 */
function writeAtomic(dir: string, files: ProjectedFile[], fsGroup: number | undefined): void {
  mkdirSync(dir, { recursive: true });
  setOwnership(dir, 0o755, fsGroup, true);
  const version = `..${new Date().toISOString().replace(/[-:]/g, '_')}.${randomBytes(4).toString('hex')}`;
  const versionDir = join(dir, version);
  mkdirSync(versionDir, { mode: 0o755 });
  setOwnership(versionDir, 0o755, fsGroup, true);
  for (const file of files) {
    const target = join(versionDir, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.data);
    setOwnership(target, file.mode, fsGroup, true);
  }
  const previous = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : undefined;
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const topLevel = new Set(files.map((f) => f.path.split('/')[0] as string));
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('..')) continue;
    if (!topLevel.has(entry)) rmSync(join(dir, entry), { force: true });
  }
  for (const entry of topLevel) if (!existsSync(join(dir, entry))) symlinkSync(join('..data', entry), join(dir, entry));
  if (previous && previous !== version) rmSync(join(dir, previous), { recursive: true, force: true });
}

/** As the kubelet applies fsGroup: group-owned, group-readable (read-only volumes) or -writable, setgid directories. */
function setOwnership(path: string, mode: number, fsGroup: number | undefined, readOnly: boolean): void {
  if (fsGroup === undefined) {
    chmodSync(path, mode);
    return;
  }
  chownSync(path, 0, fsGroup);
  const isDir = lstatSync(path).isDirectory();
  let effective = mode | (readOnly ? 0o440 : 0o660);
  if (isDir) effective |= 0o2000 | 0o110;
  chmodSync(path, effective);
}


// ---------------------------------------------------------------------------------------------
// Network namespace and bridge

// Runs inside the pod's network namespace: one Unix socket per port, each connection piped to
// 127.0.0.1:<port> there. Exits when its parent (the test process) is gone.
const BRIDGE_SCRIPT = `
const net = require('node:net'), fs = require('node:fs'), path = require('node:path');
const [dir, ...ports] = process.argv.slice(1);
const parent = process.ppid;
for (const port of ports) {
  const file = path.join(dir, port + '.sock');
  try { fs.unlinkSync(file); } catch {}
  net.createServer((client) => {
    const upstream = net.connect(Number(port), '127.0.0.1');
    const close = () => { client.destroy(); upstream.destroy(); };
    client.pipe(upstream); upstream.pipe(client);
    client.on('error', close); upstream.on('error', close); client.on('close', close); upstream.on('close', close);
  }).listen(file);
}
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500);
`;

interface PodNetwork {
  process: ManagedProcess;
  nsPath: string;
  netns: string;
}

async function startPodNetwork(podDir: string, podName: string, ports: number[], tools: Tools, socketPath: (port: number) => string): Promise<PodNetwork> {
  const log = join(podDir, 'logs', 'pod-network.log');
  // unshare and sh exec into node, so the bridge's pid is the one that holds the namespace.
  const holder = startProcess(`${podName}/network`, tools.unshare, ['--net', '--', '/bin/sh', '-c', `${tools.ip} link set lo up && exec "$@"`, 'sh', process.execPath, '-e', BRIDGE_SCRIPT, join(podDir, 'net'), ...ports.map(String)], log, { env: { PATH } });
  const pid = holder.child.pid;
  const deadline = Date.now() + 10_000;
  while (!ports.every((p) => existsSync(socketPath(p)))) {
    if (holder.child.exitCode !== null || Date.now() > deadline) {
      await holder.stop();
      throw new Error(`pod network for ${podName} did not come up: ${tail(existsSync(log) ? readFileSync(log, 'utf8') : '')}`);
    }
    await delay(20);
  }
  const nsPath = `/proc/${pid}/ns/net`;
  const netns = readlinkSync(nsPath);
  if (netns === readlinkSync('/proc/self/ns/net')) throw new Error('the pod network namespace is the host one');
  return { process: holder, nsPath, netns };
}

/** Serves address:port by piping each connection to a Unix socket (the pod's bridge). */
export async function forward(address: string, port: number, socket: string): Promise<{ close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ path: socket });
    open.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.pipe(upstream);
    upstream.pipe(client);
    for (const s of [client, upstream]) s.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`serving ${address}:${port}: ${error.message}`)));
    server.listen(port, address, resolve);
  });
  server.unref();
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}


/** The pod's /etc/hosts and /etc/hostname. */
function writeHostsFiles(podDir: string, podName: string, podIp: string): void {
  writeFileSync(join(podDir, 'etc', 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${podIp}\t${podName}\n`);
  writeFileSync(join(podDir, 'etc', 'hostname'), `${podName}\n`);
}

/** Named-port resolution for the pod's containers. */
function namedPorts(podSpec: V1PodSpec): (port: number | string | undefined, what: string) => number {
  const containerPorts = new Map<string, number>();
  for (const c of podSpec.containers) for (const p of c.ports ?? []) if (p.name) containerPorts.set(p.name, p.containerPort);
  return (port, what) => {
    if (typeof port === 'number') return port;
    if (port !== undefined && /^\d+$/.test(port)) return Number(port);
    const named = port === undefined ? undefined : containerPorts.get(port);
    if (named === undefined) throw new Error(`${what}: no container port named ${JSON.stringify(port)}`);
    return named;
  };
}

/** Every port the pod IP serves: container ports and the readiness probes' ports. */
function podPorts(podSpec: V1PodSpec, resolvePort: (port: number | string | undefined, what: string) => number): Set<number> {
  const ports = new Set<number>();
  for (const c of podSpec.containers) {
    for (const p of c.ports ?? []) ports.add(p.containerPort);
    if (c.readinessProbe?.httpGet) ports.add(resolvePort(c.readinessProbe.httpGet.port, `container ${c.name} readinessProbe`));
  }
  return ports;
}

/** The processes of a running pod of the kubelet stand-in (its containers and bridge), by pod uid. */
export function podProcesses(kubeletDir: string, podUid: string): number[] {
  const file = join(kubeletDir, 'pods', podUid.slice(0, 13), 'netns');
  return existsSync(file) ? processesInNetns(readFileSync(file, 'utf8')) : [];
}

/** Where the kubelet stand-in keeps a pod's volumes, logs and sockets (short: Unix socket paths stay under 107 bytes). */
export function podDirectory(kubeletDir: string, podUid: string): string {
  return join(kubeletDir, 'pods', podUid.slice(0, 13));
}

/** pids whose network namespace is netns (scans /proc). */
export function processesInNetns(netns: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) === netns) pids.push(Number(entry));
    } catch {
      // exited while scanning, or a kernel thread
    }
  }
  return pids;
}


// ---------------------------------------------------------------------------------------------
// Containers

interface SandboxContext {
  podDir: string;
  podName: string;
  assetsDir: string;
  repoRoot: string;
  /** the pod shares the host's network namespace (then /etc/hosts is the host's) */
  hostNetwork: boolean;
  volumeDirs: Map<string, string>;
  env: Record<string, string>;
  tools: Tools;
}

interface Sandbox {
  bwrapArgs: string[];
  argv: string[];
  uid: number;
  gid: number;
}

type NotCreated = { reason: string; waitingReason: NonNullable<ContainerStatus['waitingReason']> };
const configError = (reason: string): NotCreated => ({ reason, waitingReason: 'CreateContainerConfigError' });

function containerSandbox(container: V1Container, podSpec: V1PodSpec, ctx: SandboxContext): Sandbox | NotCreated {
  const image = imageMapping(container.image ?? '', ctx);
  if (!image) return { reason: `no local binary for image ${container.image}`, waitingReason: 'BinaryUnavailable' };
  const absent = Object.entries(image.binaries).find(([, host]) => !existsSync(host));
  if (absent) return { reason: image.missing?.(ctx.assetsDir) ?? `${absent[1]} not found`, waitingReason: 'BinaryUnavailable' };
  const expand = (s: string) => expandVariables(s, { ...image.env, ...ctx.env });
  const argv = container.command?.length ? [...container.command, ...(container.args ?? [])].map(expand) : [...image.entrypoint, ...(container.args?.map(expand) ?? image.cmd)];

  const pod = podSpec.securityContext ?? {};
  const sc = container.securityContext ?? {};
  const uid = sc.runAsUser ?? pod.runAsUser ?? image.user?.uid ?? 0; // registry, docker_auth and nginx images run as root unless told otherwise
  const gid = sc.runAsGroup ?? pod.runAsGroup ?? image.user?.gid ?? 0;
  if ((sc.runAsNonRoot ?? pod.runAsNonRoot) && uid === 0) return configError('runAsNonRoot is set and the image would run as root');
  const groups = [...new Set([...(pod.fsGroup !== undefined ? [pod.fsGroup] : []), ...(pod.supplementalGroups ?? [])])];
  const added = (sc.capabilities?.add ?? []).map((c) => `cap_${c.toLowerCase().replace(/^cap_/, '')}`);

  const mounts = [...(container.volumeMounts ?? [])].sort((a, b) => a.mountPath.split('/').length - b.mountPath.split('/').length);
  const binaries = Object.entries(image.binaries).filter(([target]) => !target.startsWith('/usr/'));
  for (const [target, host] of Object.entries(image.binaries)) {
    if (target.startsWith('/usr/') && realpathSync(host) !== realpathSync(target)) return configError(`${host} cannot be placed at ${target} under the host's /usr`);
  }
  const args = [
    '--die-with-parent', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--hostname', ctx.podName,
    '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
    // bwrap creates missing parents of mount points as 0700, which the container user could not
    // traverse; an image has them 0755.
    ...parentDirectories(['/bin', '/sbin', '/etc/ssl', ...binaries.map(([target]) => target), ...mounts.map((m) => m.mountPath)]).flatMap((dir) => ['--perms', '0755', '--dir', dir]),
    '--ro-bind-try', '/etc/ssl', '/etc/ssl', '--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache',
    '--ro-bind', join(ctx.podDir, 'etc', 'hosts'), '/etc/hosts', '--ro-bind', join(ctx.podDir, 'etc', 'hostname'), '/etc/hostname',
    '--proc', '/proc', '--dev', '/dev',
  ];
  for (const [target, host] of binaries) args.push('--ro-bind', realpathSync(host), target);
  // host-network pods resolve names as the host does
  if (ctx.hostNetwork) args.push('--ro-bind-try', '/etc/resolv.conf', '/etc/resolv.conf');
  for (const mount of mounts) {
    const volumeDir = ctx.volumeDirs.get(mount.name);
    if (!volumeDir) return configError(`volumeMount ${mount.name}: no such volume`);
    let source = volumeDir;
    if (mount.subPath) {
      // The kubelet resolves symlinks inside the volume (the atomic writer's ..data) and refuses escapes.
      source = realpathSync(join(volumeDir, mount.subPath));
      const rel = relative(realpathSync(volumeDir), source);
      if (rel === '..' || rel.startsWith('../') || rel.startsWith('/')) return configError(`volumeMount ${mount.name}: subPath ${mount.subPath} leaves the volume`);
    }
    args.push(mount.readOnly ? '--ro-bind' : '--bind', source, mount.mountPath);
  }
  if (sc.readOnlyRootFilesystem) args.push('--remount-ro', '/');
  args.push('--chdir', container.workingDir ?? image.workingDir ?? '/', '--clearenv');
  const env = { PATH, HOSTNAME: ctx.podName, HOME: '/', ...image.env, ...ctx.env };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  args.push('--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', ...added.flatMap((c) => ['--cap-add', c.toUpperCase()]));
  // Only capabilities.add are ever granted (never a runtime's default set), whatever drop says.
  const caps = ['-all', ...added.map((c) => `+${c.replace(/^cap_/, '')}`)].join(',');
  args.push(
    '--', ctx.tools.setpriv, `--reuid=${uid}`, `--regid=${gid}`, ...(groups.length ? [`--groups=${groups.join(',')}`] : ['--clear-groups']),
    `--inh-caps=${caps}`, `--bounding-set=${caps}`, ...(added.length ? [`--ambient-caps=${caps}`] : []),
    ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
    '--', ...argv,
  );
  return { bwrapArgs: args, argv, uid, gid };
}

/** Every ancestor directory of the paths (and /bin, /sbin themselves), outermost first, outside /usr, /proc and /dev. */
function parentDirectories(paths: string[]): string[] {
  const dirs = new Set<string>(['/bin', '/sbin']);
  for (const path of paths) {
    const parts = normalize(path).split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(`/${parts.slice(0, i).join('/')}`);
  }
  return [...dirs].filter((d) => !/^\/(usr|proc|dev)(\/|$)/.test(d)).sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}


// ---------------------------------------------------------------------------------------------
// Environment

/** The downward API's fields as the kubelet resolves them. */
function fieldValue(pod: V1Pod, fieldPath: string, podIp: string): string {
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (label) return (label[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[label[2] as string] ?? '';
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName ?? 'default',
    'status.podIP': podIp,
    'status.hostIP': '127.0.0.1',
  };
  const value = fields[fieldPath];
  if (value === undefined) throw new Error(`fieldRef ${fieldPath} is not supported by the kubelet stand-in`);
  return value;
}

/**
 * Per container: envFrom, then env (value, secretKeyRef, configMapKeyRef, fieldRef) with $(VAR)
 * expanded, on top of what the kubelet always sets: KUBERNETES_SERVICE_HOST/PORT — the API server
 * as this machine reaches it, where a cluster has the Service IP that kube-proxy translates.
 */
async function podEnvironment(pod: V1Pod, ctx: PodSandboxContext): Promise<(c: V1Container) => Record<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const vc: VolumeContext = { ctx, pod, namespace, podDir: ctx.podDir, fsGroup: undefined };
  const base = { KUBERNETES_SERVICE_HOST: ctx.apiServer.host, KUBERNETES_SERVICE_PORT: String(ctx.apiServer.port), KUBERNETES_SERVICE_PORT_HTTPS: String(ctx.apiServer.port) };
  const resolved = new Map<string, Record<string, string>>();
  for (const container of pod.spec?.containers ?? []) {
    const env: Record<string, string> = { ...base };
    for (const source of container.envFrom ?? []) {
      const what = `container ${container.name} envFrom`;
      const data = source.configMapRef
        ? await configMapData(vc, source.configMapRef.name ?? '', source.configMapRef.optional, what)
        : source.secretRef ? await secretData(vc, source.secretRef.name ?? '', source.secretRef.optional, what) : {};
      for (const [key, value] of Object.entries(data)) env[`${source.prefix ?? ''}${key}`] = value.toString('utf8');
    }
    for (const variable of container.env ?? []) env[variable.name] = await envValue(variable, env, vc);
    resolved.set(container.name, env);
  }
  return (c) => resolved.get(c.name) ?? {};
}

async function envValue(variable: V1EnvVar, earlier: Record<string, string>, vc: VolumeContext): Promise<string> {
  if (variable.value !== undefined || !variable.valueFrom) return expandVariables(variable.value ?? '', earlier);
  const from = variable.valueFrom;
  const what = `env ${variable.name}`;
  const keyRef = from.secretKeyRef ?? from.configMapKeyRef;
  if (keyRef) {
    const data = from.secretKeyRef ? await secretData(vc, keyRef.name ?? '', keyRef.optional, what) : await configMapData(vc, keyRef.name ?? '', keyRef.optional, what);
    const value = data[keyRef.key];
    if (value === undefined && !keyRef.optional) throw new Error(`${what}: couldn't find key ${keyRef.key} in ${from.secretKeyRef ? 'Secret' : 'ConfigMap'} ${vc.namespace}/${keyRef.name}`);
    return value?.toString('utf8') ?? '';
  }
  if (from.fieldRef) return fieldValue(vc.pod, from.fieldRef.fieldPath, vc.ctx.podIp);
  throw new Error(`${what}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported by the kubelet stand-in`);
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, anything else stays. */
export function expandVariables(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && name in env ? (env[name] as string) : match;
  });
}

// ---------------------------------------------------------------------------------------------
// Readiness

async function readinessLoop(rt: ContainerRuntime, ctx: PodSandboxContext, stopping: () => boolean, socketFor: (port: number | string) => string): Promise<void> {
  const probe = rt.spec.readinessProbe;
  const periodMs = ctx.probePeriodMs ?? (probe?.periodSeconds ?? 10) * 1000;
  let startedAt = 0;
  while (!stopping()) {
    if (!rt.status.running) {
      rt.status.ready = false;
      startedAt = 0;
    } else if (!probe) {
      rt.status.ready = true;
    } else {
      startedAt ||= Date.now();
      if (Date.now() - startedAt >= (probe.initialDelaySeconds ?? 0) * 1000) {
        const ok = await httpProbe(probe, socketFor);
        if (ok) {
          rt.failures = 0;
          rt.successes += 1;
          if (rt.successes >= (probe.successThreshold ?? 1)) rt.status.ready = true;
        } else {
          rt.successes = 0;
          rt.failures += 1;
          if (rt.failures >= (probe.failureThreshold ?? 3)) rt.status.ready = false;
        }
      }
    }
    await sleep(!probe || rt.status.running ? periodMs : 100);
  }
}

/** A delay that does not keep the process alive: the kubelet never holds a test process open. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** One httpGet probe as the kubelet does it: 200–399 is success; HTTPS certificates are not verified. */
function httpProbe(probe: V1Probe, socketFor: (port: number | string) => string): Promise<boolean> {
  const get = probe.httpGet;
  if (!get) return Promise.resolve(false);
  const https = (get.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
  const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.37', Accept: '*/*' };
  for (const h of get.httpHeaders ?? []) headers[h.name] = h.value;
  const options = { socketPath: socketFor(get.port), path: get.path ?? '/', method: 'GET', headers, timeout: (probe.timeoutSeconds ?? 1) * 1000, ...(https ? { rejectUnauthorized: false } : {}) };
  return new Promise((resolve) => {
    const req = (https ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
