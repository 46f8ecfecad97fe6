// The container runtime half of the kubelet stand-in (test/support/kubelet.ts): runs ONE Pod object
// from its own spec, as stored in the API server, with local binaries for the container images.
// Nothing of our manifests is rewritten; if a pod cannot run from its spec, the spec is wrong.
//
// This module is the orchestrator (containers, readiness, stop); each other concern has its own:
//
// - Network (pod-network.ts): a pod that declares container ports (or probes) gets its own network
//   namespace with only a loopback interface (`unshare --net`), so its containers talk over
//   127.0.0.1 exactly as in a cluster and several pods can run at once. A bridge process inside
//   listens on Unix sockets (`<pod>/net/<port>.sock`) and connects each to 127.0.0.1:<port> in the
//   pod; the pod IP (a loopback address the kubelet allocates, e.g. 127.1.0.7) serves every
//   container port through it. A pod without ports (a Job's) shares the host's network namespace:
//   it only connects out, to the API server and to pod IPs. No address outside 127.0.0.0/8 is ever
//   created.
// - Containers: each runs under bubblewrap on bwrap's own tmpfs root: the host's /usr (the "base
//   image"), the image's binaries bound at their image paths (imageMapping), the pod's volumes at
//   the mount paths, /proc, /dev, its own PID/IPC/UTS namespaces and hostname, the root remounted
//   read-only when readOnlyRootFilesystem says so; command/args/env run as the securityContext
//   user/group with fsGroup and supplementalGroups, no capabilities, no_new_privs (setpriv).
//   A container whose image has no local binary (auth_server when docker_auth cannot be built) is
//   reported as waiting with the reason; the others still run. Their env (pod-env.ts): env and
//   envFrom from Secrets, ConfigMaps and downward API fields (read as in pod-sources.ts).
// - Volumes (pod-volumes.ts): Secret, ConfigMap, projected (serviceAccountToken via the
//   TokenRequest API bound to the pod, configMap, secret, downwardAPI) and downwardAPI volumes are
//   written in the kubelet's atomic-writer layout (`..data` symlink swap), owned root:fsGroup;
//   subPath mounts bind one file and are never updated (as in Kubernetes); emptyDir is a fresh
//   directory; persistentVolumeClaim resolves claim → PersistentVolume → its hostPath; hostPath
//   directories are the same paths under the kubelet's host root (`hostRoot`).
//   syncVolumes() rewrites the updatable ones.
// - Readiness: the containers' own readinessProbe (httpGet through the bridge) every periodSeconds,
//   or every `probePeriodMs` when the kubelet passes one (tests); restartPolicy Always/OnFailure
//   restart exited containers with the kubelet's doubling back-off (capped at 10 s here).
// - stop(grace): each container's preStop sleep, then SIGTERM (the image's stop signal), SIGKILL
//   when the grace period is over, the pod IP's forwarders and the bridge last; then no process is
//   left in the pod's network namespace. Mounts live only in the sandboxes' mount namespaces.
//
// Not modelled (the spec fails loudly where it matters): init containers, liveness/startup probe
// actions, probes other than httpGet, lifecycle hooks other than preStop sleep, resource limits,
// seccomp profiles, hostPath volumes of files.
import { VOLUME_CHECK_CONTAINER } from '../../functions/volume-check.ts';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join, normalize, relative } from 'node:path';
import type { V1Container, V1Pod, V1PodSpec, V1Probe } from '@kubernetes/client-node';
import { authServerUnavailable } from './binaries.ts';
import type { KubeApi } from './kube-api.ts';
import { expandVariables, PATH, podEnvironment } from './pod-env.ts';
import { bridgeSockets, forward, namedPorts, podPorts, processesInNetns, startPodNetwork, stopPodNetwork, writeHostsFiles } from './pod-network.ts';
import { materialiseVolumes, refreshVolumes, supportedVolume, type VolumeContext } from './pod-volumes.ts';
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
  /** the API server as pods in the host's network namespace reach it (KUBERNETES_SERVICE_HOST/PORT) */
  apiServer: { host: string; port: number };
  /** the `kubernetes` Service (ClusterIP:443), as pods with a network namespace of their own reach the API server */
  apiService: { host: string; port: number };
  /** the service proxy's Unix sockets, one per ClusterIP:port (served inside the pod by its bridge) */
  servicesDir: string;
  /** the Services' lines of the pod's /etc/hosts, as they are now */
  serviceHostsLines(): string[];
  /** claim → host directory of its bound PersistentVolume; throws while unbound */
  claimDirectory(namespace: string, claim: string): Promise<string>;
  /** the node's `/` for hostPath volumes */
  hostRoot: string;
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
  const socketPath = bridgeSockets(podDir);
  unsupported(podSpec);

  const fsGroup = podSpec.securityContext?.fsGroup;
  const sources = { api: ctx.api, pod, namespace, podIp: ctx.podIp };
  const volumeContext: VolumeContext = { ...sources, podDir, fsGroup, hostRoot: ctx.hostRoot, claimDirectory: ctx.claimDirectory };
  const volumeDirs = await materialiseVolumes(podSpec.volumes ?? [], volumeContext);
  writeHostsFiles(podDir, podName, ctx.podIp, ctx.serviceHostsLines());

  const resolvePort = namedPorts(podSpec);
  const ports = podPorts(podSpec, resolvePort);
  const isolatedNetwork = ports.size > 0 && !podSpec.hostNetwork;
  const env = await podEnvironment(sources, isolatedNetwork ? ctx.apiService : ctx.apiServer).catch((error: Error) => {
    throw new PodConfigError(error.message);
  });
  const network = isolatedNetwork ? await startPodNetwork(podDir, podName, [...ports], tools, socketPath, ctx.servicesDir) : undefined;
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
      // As the kubelet: each container's preStop hook first (its time counts against the grace
      // period), then the stop signal, SIGKILL when the grace period is over. The pod IP keeps
      // serving meanwhile: connections the Service proxy had sent here before the deletion go on.
      const deadline = Date.now() + gracePeriodSeconds * 1000;
      await Promise.all(runtimes.map(async (rt) => {
        const sleepSeconds = rt.status.running ? rt.spec.lifecycle?.preStop?.sleep?.seconds ?? 0 : 0;
        if (sleepSeconds > 0) await sleep(Math.min(sleepSeconds * 1000, deadline - Date.now()));
        if (rt.process) await stopContainer(rt.process, Math.max(0, deadline - Date.now()), imageMapping(rt.spec.image ?? '', ctx)?.stopSignal);
      }));
      await Promise.all(forwarders.map((f) => f.close()));
      if (network) await stopPodNetwork(network, podName);
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
    syncVolumes: () => refreshVolumes(podSpec.volumes ?? [], volumeContext),
    stop: teardown,
  };
}

/**
 * As the kubelet (through its runtime) does: the stop signal to the container's own process only,
 * SIGKILL to everything when the grace period is over. Not to the process group: bwrap, the
 * sandbox around it, dies of SIGTERM and takes the whole PID namespace with it at once, so the
 * container would never run its graceful shutdown.
 */
async function stopContainer(managed: ManagedProcess, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const main = managed.child.exitCode === null ? containerProcess(managed.child.pid) : undefined;
  if (main === undefined) return managed.stop(graceMs, signal);
  try {
    process.kill(main, signal);
  } catch {
    // exited meanwhile
  }
  await Promise.race([managed.exited, delay(graceMs)]);
  await managed.stop(0, 'SIGKILL');
}

/** The container's command under [nsenter →] bwrap → bwrap's init: the first descendant that is neither. */
function containerProcess(rootPid: number | undefined): number | undefined {
  if (rootPid === undefined) return undefined;
  const parents = new Map<number, number[]>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid …; comm may hold spaces and parentheses
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      names.set(Number(entry), stat.slice(stat.indexOf('(') + 1, close));
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while scanning
    }
  }
  const queue = [...(parents.get(rootPid) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (!['bwrap', 'nsenter'].includes(names.get(pid) ?? '')) return pid;
    queue.push(...(parents.get(pid) ?? []));
  }
  return undefined;
}

interface ContainerRuntime {
  spec: V1Container;
  status: ContainerStatus;
  process?: ManagedProcess;
  successes: number;
  failures: number;
}

function unsupported(podSpec: V1PodSpec): void {
  const problems: string[] = [];
  // The registry's volume check is the one init container of ours: the stand-in's volumes are work
  // dirs it makes writable itself, so it is not run here (it runs on the real node,
  // test/e2e/real-node.test.ts); any other init container is refused.
  if (podSpec.initContainers?.some((c) => c.name !== VOLUME_CHECK_CONTAINER)) problems.push('initContainers');
  for (const c of podSpec.containers) {
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
      if (probe && !probe.httpGet) problems.push(`container ${c.name}: probes other than httpGet`);
    }
    if (c.lifecycle?.postStart || (c.lifecycle?.preStop && !c.lifecycle.preStop.sleep)) problems.push(`container ${c.name}: lifecycle hooks other than preStop sleep`);
  }
  for (const v of podSpec.volumes ?? []) {
    if (!supportedVolume(v)) problems.push(`volume ${v.name}: unsupported volume type`);
  }
  if (problems.length) throw new Error(`the kubelet stand-in does not support: ${[...new Set(problems)].join('; ')}`);
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

/** The processes of a running pod of the kubelet stand-in (its containers and bridge), by pod uid. */
export function podProcesses(kubeletDir: string, podUid: string): number[] {
  const file = join(kubeletDir, 'pods', podUid.slice(0, 13), 'netns');
  return existsSync(file) ? processesInNetns(readFileSync(file, 'utf8')) : [];
}

/** Where the kubelet stand-in keeps a pod's volumes, logs and sockets (short: Unix socket paths stay under 107 bytes). */
export function podDirectory(kubeletDir: string, podUid: string): string {
  return join(kubeletDir, 'pods', podUid.slice(0, 13));
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
