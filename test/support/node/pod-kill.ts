// SIGKILL to every container process of a pod on the real node, found through containerd's CRI as
// the kubelet knows them (what an OOM kill or a crash does; the kubelet then restarts them).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../processes.ts';

/** containerd's socket of the real node whose work dir is `nodeDir`, or undefined for the kubelet stand-in's. */
export function realNodeSocket(nodeDir: string): string | undefined {
  const socket = join(nodeDir, 'containerd', 'state', 'containerd.sock');
  return existsSync(socket) ? socket : undefined;
}

type Crictl = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/** SIGKILL to the container's main process (its pid as containerd reports it); false when it is not running. */
export async function killContainer(crictl: Crictl, containerId: string): Promise<boolean> {
  const inspected = await crictl(['inspect', containerId]);
  const pid = inspected.code === 0 ? (JSON.parse(inspected.stdout) as { info?: { pid?: number } }).info?.pid : undefined;
  if (!pid) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false; // exited meanwhile
  }
}

/** Kills the main process of each running container of the pod; returns how many were killed. */
export async function killPodContainers(assetsDir: string, socket: string, podUid: string): Promise<number> {
  const crictl: Crictl = (args) => run(join(assetsDir, 'crictl'), ['--runtime-endpoint', `unix://${socket}`, '--timeout', '30s', ...args]);
  const listed = await crictl(['ps', '-q', '--state', 'running', '--label', `io.kubernetes.pod.uid=${podUid}`]);
  if (listed.code !== 0) throw new Error(`crictl ps: ${listed.stderr}`);
  let killed = 0;
  for (const id of listed.stdout.split('\n').filter(Boolean)) if (await killContainer(crictl, id)) killed++;
  return killed;
}
