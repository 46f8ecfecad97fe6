// The pod's network in the kubelet stand-in's pod sandbox (test/support/pod-sandbox.ts): a network
// namespace with only loopback (`unshare --net`) for a pod that serves ports, a bridge process in it
// that listens on Unix sockets (`<pod>/net/<port>.sock`) and connects each to 127.0.0.1:<port> in
// the pod, and forwarders that serve the pod IP's ports through those sockets. Also the pod's
// /etc/hosts and /etc/hostname, and which processes are in a namespace.
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { V1PodSpec } from '@kubernetes/client-node';
import { PATH } from './pod-env.ts';
import { delay, startProcess, type ManagedProcess } from './processes.ts';
import { forwardingServer, pipeSockets } from './socket-forward.ts';

const MAX_SOCKET_PATH = 107;

// Runs inside the pod's network namespace: one Unix socket per port, each connection piped to
// 127.0.0.1:<port> there with the forwarders' pipeSockets (its source, inlined). The other way, it
// plays kube-proxy inside the pod: for each `<clusterIP>:<port>.sock` the service proxy keeps in
// the services directory it listens on that ClusterIP and port here and pipes each connection to
// the socket (checked every 500 ms, as Services come and go). Exits when its parent (the test
// process) is gone.
export const BRIDGE_SCRIPT = `
const net = require('node:net'), fs = require('node:fs'), path = require('node:path');
${pipeSockets.toString()}
const [dir, servicesDir, ...ports] = process.argv.slice(1);
const parent = process.ppid;
for (const port of ports) {
  const file = path.join(dir, port + '.sock');
  try { fs.unlinkSync(file); } catch {}
  net.createServer({ allowHalfOpen: true }, (client) => {
    pipeSockets(client, net.connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true }));
  }).listen(file);
}
const services = new Map();
const syncServices = () => {
  let names = [];
  try { names = fs.readdirSync(servicesDir).filter((n) => /^[0-9.]+:[0-9]+\\.sock$/.test(n)); } catch {}
  for (const name of names) {
    if (services.has(name)) continue;
    const [host, port] = name.slice(0, -'.sock'.length).split(':');
    const socket = path.join(servicesDir, name);
    const server = net.createServer({ allowHalfOpen: true }, (client) => {
      pipeSockets(client, net.connect({ path: socket, allowHalfOpen: true }));
    });
    server.on('error', () => services.delete(name));
    server.listen(Number(port), host);
    services.set(name, server);
  }
  for (const [name, server] of services) if (!names.includes(name)) { server.close(); services.delete(name); }
};
syncServices();
setInterval(() => { if (process.ppid !== parent) process.exit(0); syncServices(); }, 500);
`;

/**
 * Makes a loopback address:port outside the pods (e.g. an S3 server a test runs, standing in for a
 * cloud's object storage) reachable from inside every pod network namespace at the same
 * address:port within half a second, through the bridges' services directory
 * (`<kubeletDir>/services`), as a ClusterIP is. Served by the calling process until close().
 */
export async function serveEgress(kubeletDir: string, address: string, port: number): Promise<{ close(): Promise<void> }> {
  if (!/^127\.\d+\.\d+\.\d+$/.test(address) || address === '127.0.0.1') throw new Error(`egress to ${address}: only loopback addresses other than 127.0.0.1 (each pod's own) can be reached`);
  const dir = join(kubeletDir, 'services');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${address}:${port}.sock`);
  rmSync(file, { force: true });
  const open = new Set<Socket>();
  const server = forwardingServer(open, () => ({ host: address, port }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, resolve);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
        rmSync(file, { force: true });
      }),
  };
}

export interface PodNetwork {
  process: ManagedProcess;
  nsPath: string;
  netns: string;
}

/** The bridge's Unix socket for each port of the pod; throws where the path would be too long for one. */
export function bridgeSockets(podDir: string): (port: number) => string {
  const socketPath = (port: number) => join(podDir, 'net', `${port}.sock`);
  if (socketPath(65535).length > MAX_SOCKET_PATH) throw new Error(`the kubelet's work dir is too deep for Unix socket paths: ${socketPath(65535)}`);
  return socketPath;
}

export async function startPodNetwork(podDir: string, podName: string, ports: number[], tools: { unshare: string; ip: string }, socketPath: (port: number) => string, servicesDir: string): Promise<PodNetwork> {
  const log = join(podDir, 'logs', 'pod-network.log');
  // unshare and sh exec into node, so the bridge's pid is the one that holds the namespace.
  const holder = startProcess(`${podName}/network`, tools.unshare, ['--net', '--', '/bin/sh', '-c', `${tools.ip} link set lo up && exec "$@"`, 'sh', process.execPath, '-e', BRIDGE_SCRIPT, join(podDir, 'net'), servicesDir, ...ports.map(String)], log, { env: { PATH } });
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

/** Stops the bridge, then kills whatever is still in the namespace; resolves when it is empty. */
export async function stopPodNetwork(network: PodNetwork, podName: string): Promise<void> {
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
}

/** Serves address:port by piping each connection to a Unix socket (the pod's bridge). */
export async function forward(address: string, port: number, socket: string): Promise<{ close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = forwardingServer(open, () => ({ path: socket }));
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

/**
 * The pod's /etc/hosts (its own name, and the Services' names as a cluster DNS would answer them)
 * and /etc/hostname. Rewritten in place when the Services change: the containers bind the file.
 */
export function writeHostsFiles(podDir: string, podName: string, podIp: string, serviceLines: string[]): void {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${podIp}\t${podName}`, ...serviceLines];
  writeFileSync(join(podDir, 'etc', 'hosts'), `${lines.join('\n')}\n`);
  writeFileSync(join(podDir, 'etc', 'hostname'), `${podName}\n`);
}

/** Named-port resolution for the pod's containers. */
export function namedPorts(podSpec: V1PodSpec): (port: number | string | undefined, what: string) => number {
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
export function podPorts(podSpec: V1PodSpec, resolvePort: (port: number | string | undefined, what: string) => number): Set<number> {
  const ports = new Set<number>();
  for (const c of podSpec.containers) {
    for (const p of c.ports ?? []) ports.add(p.containerPort);
    if (c.readinessProbe?.httpGet) ports.add(resolvePort(c.readinessProbe.httpGet.port, `container ${c.name} readinessProbe`));
  }
  return ports;
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

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
