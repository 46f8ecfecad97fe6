// A stand-in for the kubelet (and the StatefulSet controller) for registry pods: runs pod <sts>-<n>
// of a StatefulSet *from its own spec as stored in the API server*, with local binaries for the
// container images. Nothing of our manifests is rewritten; if the pod cannot run from the spec, the
// spec is wrong.
//
// How a pod runs here (root is required: mounts, namespaces, setuid):
// - Network: every pod gets its own network namespace with only a loopback interface
//   (`unshare --net`), so its containers talk over 127.0.0.1:5000/5001 and nginx listens on 8443
//   exactly as in a cluster, and several pods can run at once. Nothing outside can reach that
//   namespace's loopback, so a small bridge process inside it listens on Unix sockets
//   (`<pod>/net/<port>.sock`, file system objects, not network) and connects each to
//   127.0.0.1:<port> in the pod. No address outside 127.0.0.0/8 is ever created.
// - Service: the Service's ports are served on `loopbackAddress` (e.g. 127.0.0.2:443) by a TCP
//   forwarder in this process that connects to the pod's target port through the bridge — the role
//   of kube-proxy plus the load balancer. Clients resolve the registry hostname (the Service's
//   external-dns annotation) to that address: node clients through `lookup`, others (skopeo) under
//   bubblewrap with a generated /etc/hosts bound over the host's (`runClient`).
// - Containers: each runs under bubblewrap in the pod's network namespace, on bwrap's own tmpfs
//   root: the host's /usr (the "base image"), the image's binary bound at its image path
//   (registry → /bin/registry, docker_auth → /docker_auth/auth_server, nginx is Debian's
//   /usr/sbin/nginx), the pod's volumes at the mount paths, /proc, /dev, its own PID/IPC/UTS
//   namespaces and hostname, then the root remounted read-only when readOnlyRootFilesystem says so.
//   The container's own command/args/env run as its securityContext user/group with the pod's
//   fsGroup as supplementary group, no capabilities and no_new_privs (setpriv inside the sandbox).
//   A container whose image has no local binary (auth_server when docker_auth cannot be built) is
//   reported as not started with the reason; the others still run.
// - Volumes: Secret and ConfigMap volumes (items, defaultMode, per-item mode) are written from the
//   API objects in the kubelet's atomic-writer layout (`..data` symlink swap), owned root:fsGroup;
//   subPath mounts bind the single file; emptyDir is a fresh directory; the StatefulSet's
//   volumeClaimTemplates (and persistentVolumeClaim volumes) are directories under
//   `<workDir>/pvc/<namespace>/<claim>` that survive pod restarts like a PVC. `syncVolumes()` does
//   the kubelet's periodic refresh (a changed Secret becomes visible in directory mounts).
// - Readiness: the containers' own readinessProbe (httpGet, HTTP or HTTPS, through the bridge);
//   probed every `probePeriodMs` instead of periodSeconds so tests stay quick. Crashed containers are
//   restarted with back-off (restartPolicy Always). `patchStatefulSetStatus()` then writes what the
//   StatefulSet controller would (replicas, readyReplicas, revisions) to the status subresource.
// - stop(): SIGTERM then SIGKILL to every container's process group, the bridge (which holds the
//   network namespace) last; it then checks that no process is left in the pod's network namespace.
//   Mounts live only in the sandboxes' private mount namespaces, so none outlives its process.
//
// Not modelled (the spec fails loudly where it matters): Pod and PVC objects in the API server,
// seccomp profiles, resource limits, liveness/startup probe *actions*, probes other than httpGet,
// init containers, envFrom, volume types other than secret/configMap/emptyDir/PVC. One runner per
// pod at a time: starting pod <sts>-<n> again replaces its volumes, sockets and logs.
import { createHash, randomBytes } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer, type LookupFunction, type Server, type Socket } from 'node:net';
import { dirname, join, normalize, relative } from 'node:path';
import type { V1Container, V1EnvVar, V1PodSpec, V1Probe, V1Secret, V1ConfigMap, V1Service, V1StatefulSet, V1Volume } from '@kubernetes/client-node';
import { authServerUnavailable } from './binaries.ts';
import { delay, run, startProcess, installExitHandlers, type ManagedProcess } from './processes.ts';

export interface PodRunnerOptions {
  kubeconfig: string;
  namespace: string;
  /** name of the StatefulSet */
  statefulSet: string;
  /** directory with the registry and auth_server binaries (testBinaries()) */
  assetsDir: string;
  /** where volumes, PVC data, sockets and logs live */
  workDir: string;
  /** address in 127.0.0.0/8 the Service's ports are served on, e.g. 127.0.0.2 */
  loopbackAddress: string;
  /** listen port for the Service's first port instead of its own (default: the Service's port) */
  servicePort?: number;
  /** the pod ordinal (pod `<sts>-<ordinal>`), default 0 */
  ordinal?: number;
  /** readiness probe period; the kubelet uses periodSeconds, tests want answers sooner (default 500) */
  probePeriodMs?: number;
  /** kubectl binary, default `<assetsDir>/kubectl` */
  kubectl?: string;
}

export interface ContainerStatus {
  name: string;
  image: string;
  /** false when the container could not be created; see waitingReason and reason */
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
  /** the argv run inside the sandbox */
  argv?: string[];
  logFile: string;
}

export interface RunningPod {
  name: string;
  namespace: string;
  podDir: string;
  /** hostnames the Service answers to (external-dns annotation, <svc>.<ns>.svc[.cluster.local]) */
  hostnames: string[];
  loopbackAddress: string;
  /** Service ports as served here: listen port on loopbackAddress → pod target port */
  servicePorts: { name?: string; port: number; targetPort: number }[];
  /** /etc/hosts for clients: the hostnames → loopbackAddress */
  hostsFile: string;
  /** the pod's network namespace as /proc/<pid>/ns/net names it, e.g. "net:[4026532281]" */
  netns: string;
  containers(): ContainerStatus[];
  /** resolves once the containers (default: all but BinaryUnavailable ones) are ready; throws with logs otherwise */
  waitReady(options?: { timeoutMs?: number; containers?: string[] }): Promise<ContainerStatus[]>;
  /** for node:https / node:tls clients: resolves the hostnames to loopbackAddress */
  lookup: LookupFunction;
  /** runs a client (e.g. skopeo) under bubblewrap with hostsFile as /etc/hosts; binds are read-write host paths */
  runClient(command: string, args: string[], options?: { binds?: string[]; timeoutMs?: number; env?: Record<string, string> }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** the kubelet's periodic volume refresh: rewrites Secret/ConfigMap volumes from the API */
  syncVolumes(): Promise<void>;
  /** writes the StatefulSet controller's view of this pod to the StatefulSet's status subresource */
  patchStatefulSetStatus(): Promise<Record<string, unknown>>;
  logs(container: string): string;
  /** pids of every process in the pod's network namespace (containers and the bridge) */
  processIds(): number[];
  stop(): Promise<void>;
}

interface ImageMapping {
  /** the image's ENTRYPOINT and CMD, used where the container leaves command/args out */
  entrypoint: string[];
  cmd: string[];
  /** container path → host binary; the host path may be missing (then the container cannot start) */
  binaries: Record<string, string>;
  /** why the binary is missing, for the container status */
  missing?: (assetsDir: string) => string | undefined;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_SOCKET_PATH = 107;

/** The local stand-in for each stock image the registry pod uses. */
export function imageMapping(image: string, assetsDir: string): ImageMapping | undefined {
  const ref = image.replace(/^docker\.io\//, '').replace(/^library\//, '');
  if (/^registry[:@]/.test(ref) || ref === 'registry') {
    // distribution's entrypoint.sh runs `registry "$@"` for `serve ...`; ENTRYPOINT+CMD amount to that.
    return { entrypoint: ['registry'], cmd: ['serve', '/etc/distribution/config.yml'], binaries: { '/bin/registry': join(assetsDir, 'registry') } };
  }
  if (/^cesanta\/docker_auth([:@]|$)/.test(ref)) {
    return {
      entrypoint: ['/docker_auth/auth_server'],
      cmd: ['/config/auth_config.yml'],
      binaries: { '/docker_auth/auth_server': join(assetsDir, 'auth_server') },
      missing: (dir) => {
        const why = authServerUnavailable(dir);
        return why ? `auth_server (docker_auth) could not be built: ${why}` : undefined;
      },
    };
  }
  if (/^nginx([:@]|$)/.test(ref)) {
    // Debian's nginx is at the same path as in the image; the image's entrypoint script is not here.
    return { entrypoint: ['/docker-entrypoint.sh'], cmd: ['nginx', '-g', 'daemon off;'], binaries: { '/usr/sbin/nginx': '/usr/sbin/nginx' } };
  }
  return undefined;
}

export async function runStatefulSetPod(options: PodRunnerOptions): Promise<RunningPod> {
  if (process.getuid?.() !== 0) throw new Error('the pod runner needs root (bubblewrap mounts, network namespaces, setuid)');
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(options.loopbackAddress)) throw new Error(`loopbackAddress must be in 127.0.0.0/8, got ${options.loopbackAddress}`);
  installExitHandlers();
  const tools = locateTools();
  const api = kubectlApi(options);
  const { namespace } = options;
  const statefulSet = await api.get<V1StatefulSet>('statefulset', options.statefulSet);
  if (!statefulSet) throw new Error(`StatefulSet ${namespace}/${options.statefulSet} not found`);
  if (statefulSet.spec?.replicas === 0) throw new Error(`StatefulSet ${namespace}/${options.statefulSet} has 0 replicas`);
  const podSpec = statefulSet.spec?.template?.spec;
  if (!podSpec) throw new Error(`StatefulSet ${namespace}/${options.statefulSet} has no pod template`);
  const podName = `${options.statefulSet}-${options.ordinal ?? 0}`;
  const serviceName = statefulSet.spec?.serviceName || options.statefulSet;
  const service = await api.get<V1Service>('service', serviceName);
  if (!service) throw new Error(`Service ${namespace}/${serviceName} not found`);

  const podDir = join(options.workDir, namespace, podName);
  for (const part of ['volumes', 'net', 'logs', 'etc']) rmSync(join(podDir, part), { recursive: true, force: true });
  for (const part of ['volumes', 'net', 'logs', 'etc']) mkdirSync(join(podDir, part), { recursive: true, mode: 0o755 });
  const socketPath = (port: number) => join(podDir, 'net', `${port}.sock`);
  if (socketPath(65535).length > MAX_SOCKET_PATH) throw new Error(`workDir is too deep for Unix socket paths: ${socketPath(65535)}`);

  const pod = podVolumes(statefulSet, podSpec, podName);
  unsupported(podSpec);
  const fsGroup = podSpec.securityContext?.fsGroup;
  const volumeContext: VolumeContext = { api, namespace, podDir, workDir: options.workDir, fsGroup };
  const volumeDirs = new Map<string, string>();
  for (const volume of pod.volumes) volumeDirs.set(volume.name, await materialiseVolume(volume, volumeContext));

  const hostnames = serviceHostnames(service, namespace);
  const hostsFile = writeHostsFiles(podDir, podName, options.loopbackAddress, hostnames);
  const { resolvePort, servicePorts, bridgedPorts } = podPorts(podSpec, service, options.servicePort);

  const env = await podEnvironment(podSpec, api, podName, namespace);
  const network = await startPodNetwork(podDir, podName, [...bridgedPorts], tools, socketPath);
  const runtimes: ContainerRuntime[] = podSpec.containers.map((spec) => ({
    spec,
    status: { name: spec.name, image: spec.image ?? '', started: false, running: false, ready: false, restartCount: 0, logFile: join(podDir, 'logs', `${spec.name}.log`) },
    successes: 0,
    failures: 0,
  }));
  let stopping = false;
  const launch = (rt: ContainerRuntime): void => {
    const sandbox = containerSandbox(rt.spec, podSpec, { podDir, podName, assetsDir: options.assetsDir, volumeDirs, env: env(rt.spec), tools });
    if ('reason' in sandbox) {
      rt.status.reason = sandbox.reason;
      rt.status.waitingReason = sandbox.waitingReason;
      return;
    }
    rt.status.argv = sandbox.argv;
    closeSync(openSync(rt.status.logFile, 'a'));
    // As runc does: the container user must be able to reopen its stdout (/dev/stdout → the log).
    chownSync(rt.status.logFile, sandbox.uid, sandbox.gid);
    rt.process = startProcess(`${namespace}/${podName}/${rt.spec.name}`, tools.nsenter, [`--net=${network.nsPath}`, '--', tools.bwrap, ...sandbox.bwrapArgs], rt.status.logFile, { env: { PATH } });
    rt.status.started = true;
    rt.status.running = true;
    const current = rt.process;
    void current.exited.then(async (code) => {
      rt.status.running = false;
      rt.status.ready = false;
      rt.successes = 0;
      if (stopping || rt.process !== current) return;
      rt.status.reason = `exited with ${code}`;
      rt.status.restartCount += 1;
      // restartPolicy Always, with the kubelet's doubling back-off (capped low for tests)
      await sleep(Math.min(10_000, 500 * 2 ** Math.min(rt.status.restartCount, 5)));
      if (!stopping) launch(rt);
    });
  };
  let probeLoops: Promise<void>[] = [];
  const forwarders: { close(): Promise<void> }[] = [];
  const teardown = async (): Promise<void> => {
    stopping = true;
    // The children, sockets and probe timers are all unref'd; hold the event loop while stopping.
    const keepAlive = setInterval(() => undefined, 1_000);
    try {
      await Promise.all(probeLoops);
      await Promise.all(forwarders.map((f) => f.close()));
      await Promise.all(runtimes.map((rt) => rt.process?.stop()));
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
    for (const p of servicePorts) forwarders.push(await forward(options.loopbackAddress, p.port, socketPath(p.targetPort)));
    for (const rt of runtimes) launch(rt);
  } catch (error) {
    await teardown();
    throw error;
  }
  const probePeriod = options.probePeriodMs ?? 500;
  probeLoops = runtimes.map((rt) => readinessLoop(rt, probePeriod, () => stopping, (port) => socketPath(resolvePort(port, `container ${rt.spec.name}`))));

  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    if (!hostnames.includes(hostname.toLowerCase().replace(/\.$/, ''))) return dnsLookup(hostname, lookupOptions, callback as never);
    if (lookupOptions.all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: options.loopbackAddress, family: 4 }]);
    else callback(null, options.loopbackAddress, 4);
  };

  const statuses = () => runtimes.map((rt) => ({ ...rt.status, ...(rt.status.argv ? { argv: [...rt.status.argv] } : {}) }));
  const logs = (container: string) => {
    const file = join(podDir, 'logs', `${container}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  };

  return {
    name: podName,
    namespace,
    podDir,
    hostnames,
    loopbackAddress: options.loopbackAddress,
    servicePorts,
    hostsFile,
    netns: network.netns,
    containers: statuses,
    lookup,
    logs,
    processIds: () => processesInNetns(network.netns),
    waitReady: async ({ timeoutMs = 60_000, containers } = {}) => {
      const wanted = containers ?? runtimes.filter((rt) => rt.status.waitingReason !== 'BinaryUnavailable').map((rt) => rt.spec.name);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const current = statuses().filter((s) => wanted.includes(s.name));
        const missing = wanted.filter((name) => !current.some((s) => s.name === name));
        if (missing.length) throw new Error(`pod ${podName} has no container ${missing.join(', ')}`);
        const notStarted = current.find((s) => !s.started);
        if (notStarted) throw new Error(`container ${notStarted.name} of pod ${podName} did not start: ${notStarted.waitingReason}: ${notStarted.reason}`);
        if (current.every((s) => s.ready)) return current;
        const crashing = current.find((s) => s.restartCount >= 3);
        if (Date.now() > deadline || crashing) {
          const which = crashing ? [crashing] : current.filter((s) => !s.ready);
          const detail = which.map((s) => `${s.name} (restarts ${s.restartCount}${s.reason ? `, ${s.reason}` : ''}):\n${tail(logs(s.name))}`).join('\n');
          const others = statuses().filter((s) => !s.started).map((s) => `${s.name} not started: ${s.reason}`);
          throw new Error(`pod ${podName} not ready${crashing ? ' (crash loop)' : ` after ${timeoutMs} ms`}${others.length ? ` (${others.join('; ')})` : ''}: ${detail}`);
        }
        await delay(100);
      }
    },
    runClient: (command, args, clientOptions = {}) => {
      const bwrapArgs = [
        '--die-with-parent', '--unshare-pid',
        '--ro-bind', '/', '/',
        '--dev', '/dev', '--proc', '/proc',
        '--tmpfs', '/tmp', '--tmpfs', '/var/tmp', '--tmpfs', '/run',
        '--ro-bind', hostsFile, '/etc/hosts',
        ...(clientOptions.binds ?? []).flatMap((path) => ['--bind', path, path]),
        '--', command, ...args,
      ];
      return run(tools.bwrap, bwrapArgs, { env: { PATH, HOME: '/root', ...(clientOptions.env ?? {}) }, timeoutMs: clientOptions.timeoutMs ?? 120_000 });
    },
    syncVolumes: async () => {
      for (const volume of pod.volumes) if (volume.secret || volume.configMap) await materialiseVolume(volume, volumeContext);
    },
    patchStatefulSetStatus: async () => {
      const current = (await api.get<V1StatefulSet>('statefulset', options.statefulSet)) ?? statefulSet;
      // A pod is ready only when all its containers are (a container that never started is not).
      const ready = runtimes.every((rt) => rt.status.ready) ? 1 : 0;
      const revision = `${options.statefulSet}-${createHash('sha256').update(JSON.stringify(current.spec?.template ?? {})).digest('hex').slice(0, 10)}`;
      const status = {
        observedGeneration: current.metadata?.generation ?? 1,
        replicas: 1,
        readyReplicas: ready,
        availableReplicas: ready,
        currentReplicas: 1,
        updatedReplicas: 1,
        currentRevision: revision,
        updateRevision: revision,
      };
      await api.patchStatus('statefulset', options.statefulSet, { status });
      return status;
    },
    stop: teardown,
  };
}

interface ContainerRuntime {
  spec: V1Container;
  status: ContainerStatus;
  process?: ManagedProcess;
  successes: number;
  failures: number;
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
    throw new Error(`the pod runner needs ${name} (Debian: ${name === 'bwrap' ? 'bubblewrap' : name === 'ip' ? 'iproute2' : 'util-linux'})`);
  };
  // setpriv runs inside the sandbox, which sees the host's /usr only.
  return { bwrap: find('bwrap'), nsenter: find('nsenter'), unshare: find('unshare'), setpriv: find('setpriv', ['/usr/bin', '/usr/sbin']), ip: find('ip') };
}

// ---------------------------------------------------------------------------------------------
// API access through kubectl (the test's admin kubeconfig)

interface KubectlApi {
  get<T>(kind: string, name: string): Promise<T | undefined>;
  patchStatus(kind: string, name: string, patch: unknown): Promise<void>;
}

function kubectlApi(options: PodRunnerOptions): KubectlApi {
  const kubectl = options.kubectl ?? join(options.assetsDir, 'kubectl');
  const base = ['--kubeconfig', options.kubeconfig, '-n', options.namespace];
  return {
    get: async <T>(kind: string, name: string) => {
      const result = await run(kubectl, [...base, 'get', kind, name, '-o', 'json'], { timeoutMs: 30_000 });
      if (result.code === 0) return JSON.parse(result.stdout) as T;
      if (/NotFound|not found/.test(result.stderr)) return undefined;
      throw new Error(`kubectl get ${kind} ${options.namespace}/${name}: ${result.stderr.trim()}`);
    },
    patchStatus: async (kind, name, patch) => {
      const result = await run(kubectl, [...base, 'patch', kind, name, '--subresource=status', '--type=merge', '-p', JSON.stringify(patch)], { timeoutMs: 30_000 });
      if (result.code !== 0) throw new Error(`kubectl patch ${kind} ${options.namespace}/${name} --subresource=status: ${result.stderr.trim()}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Volumes

interface VolumeContext {
  api: KubectlApi;
  namespace: string;
  podDir: string;
  workDir: string;
  fsGroup: number | undefined;
}

/** The pod's volumes as the StatefulSet controller builds them: template volumes plus one claim per volumeClaimTemplate. */
function podVolumes(statefulSet: V1StatefulSet, podSpec: V1PodSpec, podName: string): { volumes: V1Volume[] } {
  const volumes = [...(podSpec.volumes ?? [])];
  for (const claim of statefulSet.spec?.volumeClaimTemplates ?? []) {
    const name = claim.metadata?.name;
    if (name && !volumes.some((v) => v.name === name)) volumes.push({ name, persistentVolumeClaim: { claimName: `${name}-${podName}` } });
  }
  return { volumes };
}

function unsupported(podSpec: V1PodSpec): void {
  const problems: string[] = [];
  if (podSpec.initContainers?.length) problems.push('initContainers');
  for (const c of podSpec.containers) {
    if (c.envFrom?.length) problems.push(`container ${c.name}: envFrom`);
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
      if (probe && !probe.httpGet) problems.push(`container ${c.name}: probes other than httpGet`);
    }
  }
  for (const v of podSpec.volumes ?? []) {
    if (!v.secret && !v.configMap && !v.emptyDir && !v.persistentVolumeClaim) problems.push(`volume ${v.name}: only secret, configMap, emptyDir and persistentVolumeClaim are supported`);
  }
  if (problems.length) throw new Error(`the pod runner does not support: ${[...new Set(problems)].join('; ')}`);
}

async function materialiseVolume(volume: V1Volume, ctx: VolumeContext): Promise<string> {
  const dir = join(ctx.podDir, 'volumes', volume.name);
  if (volume.secret) {
    const name = volume.secret.secretName ?? '';
    const secret = await ctx.api.get<V1Secret>('secret', name);
    if (!secret && !volume.secret.optional) throw new Error(`volume ${volume.name}: Secret ${ctx.namespace}/${name} not found (the kubelet would keep the pod in ContainerCreating)`);
    const data = Object.fromEntries(Object.entries(secret?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    writeAtomic(dir, project(volume.name, data, volume.secret.items, volume.secret.defaultMode ?? 0o644, volume.secret.optional), ctx.fsGroup);
    return dir;
  }
  if (volume.configMap) {
    const name = volume.configMap.name ?? '';
    const configMap = await ctx.api.get<V1ConfigMap>('configmap', name);
    if (!configMap && !volume.configMap.optional) throw new Error(`volume ${volume.name}: ConfigMap ${ctx.namespace}/${name} not found (the kubelet would keep the pod in ContainerCreating)`);
    const data: Record<string, Buffer> = {
      ...Object.fromEntries(Object.entries(configMap?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
      ...Object.fromEntries(Object.entries(configMap?.binaryData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    };
    writeAtomic(dir, project(volume.name, data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, volume.configMap.optional), ctx.fsGroup);
    return dir;
  }
  if (volume.emptyDir) {
    mkdirSync(dir, { recursive: true });
    setOwnership(dir, 0o777, ctx.fsGroup, false);
    return dir;
  }
  if (volume.persistentVolumeClaim) {
    const claimDir = join(ctx.workDir, 'pvc', ctx.namespace, volume.persistentVolumeClaim.claimName);
    if (!existsSync(claimDir)) {
      mkdirSync(claimDir, { recursive: true });
      setOwnership(claimDir, 0o755, ctx.fsGroup, false);
    }
    return claimDir;
  }
  throw new Error(`volume ${volume.name}: unsupported type`);
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
// Network namespace, bridge and Service forwarder

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

async function forward(address: string, port: number, socket: string): Promise<{ close(): Promise<void> }> {
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
    server.once('error', (error) => reject(new Error(`serving the Service on ${address}:${port}: ${error.message}`)));
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

/** The pod's /etc/hosts and /etc/hostname, and the clients' hosts file (returned) mapping the Service hostnames. */
function writeHostsFiles(podDir: string, podName: string, loopbackAddress: string, hostnames: string[]): string {
  writeFileSync(join(podDir, 'etc', 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t${podName}\n`);
  writeFileSync(join(podDir, 'etc', 'hostname'), `${podName}\n`);
  const hostsFile = join(podDir, 'etc', 'client-hosts');
  writeFileSync(hostsFile, `127.0.0.1\tlocalhost\n::1\tlocalhost\n${loopbackAddress}\t${hostnames.join(' ')}\n`);
  return hostsFile;
}

/** Named-port resolution, the Service's ports as served here, and every pod port the bridge must reach. */
function podPorts(podSpec: V1PodSpec, service: V1Service, firstListenPort: number | undefined) {
  const containerPorts = new Map<string, number>();
  for (const c of podSpec.containers) for (const p of c.ports ?? []) if (p.name) containerPorts.set(p.name, p.containerPort);
  const resolvePort = (port: number | string | undefined, what: string): number => {
    if (typeof port === 'number') return port;
    if (port !== undefined && /^\d+$/.test(port)) return Number(port);
    const named = port === undefined ? undefined : containerPorts.get(port);
    if (named === undefined) throw new Error(`${what}: no container port named ${JSON.stringify(port)}`);
    return named;
  };
  const servicePorts = (service.spec?.ports ?? []).map((p, i) => ({
    ...(p.name ? { name: p.name } : {}),
    port: i === 0 && firstListenPort ? firstListenPort : p.port,
    targetPort: resolvePort(p.targetPort ?? p.port, `Service ${service.metadata?.name} port ${p.port}`),
  }));
  const bridgedPorts = new Set<number>(servicePorts.map((p) => p.targetPort));
  for (const c of podSpec.containers) {
    for (const p of c.ports ?? []) bridgedPorts.add(p.containerPort);
    if (c.readinessProbe?.httpGet) bridgedPorts.add(resolvePort(c.readinessProbe.httpGet.port, `container ${c.name} readinessProbe`));
  }
  return { resolvePort, servicePorts, bridgedPorts };
}

function serviceHostnames(service: V1Service, namespace: string): string[] {
  const name = service.metadata?.name ?? '';
  const external = service.metadata?.annotations?.['external-dns.alpha.kubernetes.io/hostname'];
  const names = [...(external ? external.split(',').map((h) => h.trim()) : []), `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
  return [...new Set(names.filter(Boolean).map((h) => h.toLowerCase().replace(/\.$/, '')))];
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
  const image = imageMapping(container.image ?? '', ctx.assetsDir);
  if (!image) return { reason: `no local binary for image ${container.image}`, waitingReason: 'BinaryUnavailable' };
  const absent = Object.entries(image.binaries).find(([, host]) => !existsSync(host));
  if (absent) return { reason: image.missing?.(ctx.assetsDir) ?? `${absent[1]} not found`, waitingReason: 'BinaryUnavailable' };
  const expand = (s: string) => expandVariables(s, ctx.env);
  const argv = container.command?.length ? [...container.command, ...(container.args ?? [])].map(expand) : [...image.entrypoint, ...(container.args?.map(expand) ?? image.cmd)];

  const pod = podSpec.securityContext ?? {};
  const sc = container.securityContext ?? {};
  const uid = sc.runAsUser ?? pod.runAsUser ?? 0; // the three images run as root unless told otherwise
  const gid = sc.runAsGroup ?? pod.runAsGroup ?? 0;
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
  args.push('--chdir', container.workingDir ?? '/', '--clearenv');
  const env = { PATH, HOSTNAME: ctx.podName, HOME: '/', ...ctx.env };
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

/** Per container: the env list resolved (value, secretKeyRef, configMapKeyRef, fieldRef), $(VAR) expanded. */
async function podEnvironment(podSpec: V1PodSpec, api: KubectlApi, podName: string, namespace: string): Promise<(c: V1Container) => Record<string, string>> {
  const resolved = new Map<string, Record<string, string>>();
  for (const container of podSpec.containers) {
    const env: Record<string, string> = {};
    for (const variable of container.env ?? []) env[variable.name] = await envValue(variable, env, api, podName, namespace);
    resolved.set(container.name, env);
  }
  return (c) => resolved.get(c.name) ?? {};
}

async function envValue(variable: V1EnvVar, earlier: Record<string, string>, api: KubectlApi, podName: string, namespace: string): Promise<string> {
  if (variable.value !== undefined) return expandVariables(variable.value, earlier);
  const from = variable.valueFrom;
  if (from?.secretKeyRef) {
    const secret = await api.get<V1Secret>('secret', from.secretKeyRef.name ?? '');
    const value = secret?.data?.[from.secretKeyRef.key];
    if (value === undefined && !from.secretKeyRef.optional) throw new Error(`env ${variable.name}: Secret ${from.secretKeyRef.name} key ${from.secretKeyRef.key} not found`);
    return value === undefined ? '' : Buffer.from(value, 'base64').toString('utf8');
  }
  if (from?.configMapKeyRef) {
    const configMap = await api.get<V1ConfigMap>('configmap', from.configMapKeyRef.name ?? '');
    const value = configMap?.data?.[from.configMapKeyRef.key];
    if (value === undefined && !from.configMapKeyRef.optional) throw new Error(`env ${variable.name}: ConfigMap ${from.configMapKeyRef.name} key ${from.configMapKeyRef.key} not found`);
    return value ?? '';
  }
  if (from?.fieldRef) {
    const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': namespace, 'status.podIP': '127.0.0.1', 'spec.nodeName': 'localhost' };
    const value = fields[from.fieldRef.fieldPath];
    if (value === undefined) throw new Error(`env ${variable.name}: fieldRef ${from.fieldRef.fieldPath} is not supported by the pod runner`);
    return value;
  }
  throw new Error(`env ${variable.name}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported by the pod runner`);
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

async function readinessLoop(rt: ContainerRuntime, periodMs: number, stopping: () => boolean, socketFor: (port: number | string) => string): Promise<void> {
  const probe = rt.spec.readinessProbe;
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
    await sleep(periodMs);
  }
}

/** A delay that does not keep the process alive: the pod runner never holds a test process open. */
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
