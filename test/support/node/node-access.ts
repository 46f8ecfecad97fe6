// What a test process reaches of the real node the runner (or its own testCluster()) started,
// from the node's work dir alone (IRO_NODE_DIR): containerd through crictl, a pod's container
// processes as containerd knows them, the node's view of its files (the kubelet's tmpfs volumes
// are mounted in the node's mount namespace only), and the node's network addresses.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../processes.ts';
import { NODE_FILE, type NodeFile } from './real-node.ts';
import type { NodeNetwork } from './network.ts';

export interface NodeAccess {
  nodeName: string;
  network: NodeNetwork;
  /** containerd's socket, the same path inside the node's mount namespace and outside */
  containerdSocket: string;
  /** runs a command on the node, as its admin would: in its mount namespace, and its network namespace unless `hostNetwork: false` */
  onNode(command: string, args: string[], options?: { hostNetwork?: boolean }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** crictl against the node's containerd (runtime and image endpoints) */
  crictl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** host pids of the main process of each running container of the pod, by container name */
  podContainerPids(podUid: string): Promise<Map<string, number>>;
  /**
   * host pids of every process of each running container of the pod, by container name: the main
   * process and what it started (nginx's workers), i.e. the processes in the container's pid namespace
   */
  podContainerProcesses(podUid: string): Promise<Map<string, number[]>>;
  /** ids of the pod's containers in containerd that are running (empty once the kubelet stopped them all) */
  runningContainerIds(podUid: string): Promise<string[]>;
  /** a path of the node's file system as this process can open it, e.g. a pod's volume under /var/lib/kubelet */
  nodePath(path: string): string;
  /** the directory of one volume of a pod, e.g. ('secret', 'tls') → …/volumes/kubernetes.io~secret/tls */
  podVolume(podUid: string, plugin: 'secret' | 'configmap' | 'projected' | 'empty-dir', volume: string): string;
  /** SIGKILL to the main process of each running container of the pod (an OOM kill, a crash); how many were killed */
  killPodContainers(podUid: string): Promise<number>;
}

/** `cluster`: a TestCluster (its nodeDir and assetsDir, for crictl). */
export function nodeAccess({ nodeDir, assetsDir }: { nodeDir: string; assetsDir: string }): NodeAccess {
  const node = JSON.parse(readFileSync(join(nodeDir, NODE_FILE), 'utf8')) as NodeFile;
  const socket = `unix://${node.containerdSocket}`;
  const crictl: NodeAccess['crictl'] = (args) => run(join(assetsDir, 'crictl'), ['--runtime-endpoint', socket, '--image-endpoint', socket, '--timeout', '30s', ...args], { timeoutMs: 120_000 });
  const nodePath = (path: string) => `/proc/${node.holderPid}/root${path}`;
  const onNode: NodeAccess['onNode'] = (command, args, options = {}) =>
    run('nsenter', ['-t', String(node.holderPid), '-m', ...(options.hostNetwork === false ? [] : ['-n']), '--', command, ...args],
      { timeoutMs: 120_000, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' } });
  const podContainerPids = async (podUid: string) => {
    const listed = await crictl(['ps', '-o', 'json', '--state', 'running', '--label', `io.kubernetes.pod.uid=${podUid}`]);
    if (listed.code !== 0) throw new Error(`crictl ps: ${listed.stderr}`);
    const pids = new Map<string, number>();
    for (const container of (JSON.parse(listed.stdout) as { containers: { id: string; metadata: { name: string } }[] }).containers) {
      const pid = await containerPid(crictl, container.id);
      if (pid) pids.set(container.metadata.name, pid);
    }
    return pids;
  };
  const podContainerProcesses = async (podUid: string) => {
    const processes = new Map<string, number[]>();
    // each container has a pid namespace of its own (the pod does not share one): its members are the container's processes
    const byNamespace = new Map<string, number[]>();
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      const namespace = pidNamespace(pid);
      if (namespace) byNamespace.set(namespace, [...(byNamespace.get(namespace) ?? []), pid]);
    }
    for (const [name, pid] of await podContainerPids(podUid)) {
      const namespace = pidNamespace(pid);
      if (!namespace) continue; // exited meanwhile
      // a hostPID container shares the host's namespace: only its main process is known to be its own
      processes.set(name, namespace === pidNamespace(process.pid) ? [pid] : (byNamespace.get(namespace) ?? [pid]));
    }
    return processes;
  };
  const runningContainerIds = async (podUid: string) => {
    const listed = await crictl(['ps', '-q', '--state', 'running', '--label', `io.kubernetes.pod.uid=${podUid}`]);
    if (listed.code !== 0) throw new Error(`crictl ps: ${listed.stderr}`);
    return listed.stdout.split('\n').map((line) => line.trim()).filter(Boolean);
  };
  const podVolume: NodeAccess['podVolume'] = (podUid, plugin, volume) =>
    nodePath(`/var/lib/kubelet/pods/${podUid}/volumes/kubernetes.io~${plugin}/${volume}`);
  const killPodContainers = async (podUid: string) => [...(await podContainerPids(podUid)).values()].filter(sigkill).length;
  return { nodeName: node.nodeName, network: node.network, containerdSocket: node.containerdSocket, onNode, crictl, podContainerPids, podContainerProcesses, runningContainerIds, nodePath, podVolume, killPodContainers };
}

/** `pid:[<inode>]` of the process's pid namespace; undefined once it exited */
function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** crictl of a node */
type Crictl = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/** The host pid of a container's main process (`crictl inspect`), or of a pod sandbox's pause process (`inspectp`); undefined when not running. */
export async function containerPid(crictl: Crictl, id: string, verb: 'inspect' | 'inspectp' = 'inspect'): Promise<number | undefined> {
  const inspected = await crictl([verb, id]);
  return inspected.code === 0 ? (JSON.parse(inspected.stdout) as { info?: { pid?: number } }).info?.pid || undefined : undefined;
}

/** SIGKILL; false when the process had exited meanwhile. */
function sigkill(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL to the container's main process (its pid as containerd reports it); false when it is not running. */
export async function killContainer(crictl: Crictl, containerId: string): Promise<boolean> {
  const pid = await containerPid(crictl, containerId);
  return pid !== undefined && sigkill(pid);
}

/** Whether a host process (e.g. a container's, by its host pid) still exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
