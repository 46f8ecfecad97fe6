// The real node's network: a network namespace of the test's own, joined to the root namespace by
// a veth pair, with the pod, Service and LoadBalancer ranges routed into it and no default route
// there — so every address a test uses is loopback or one that exists only inside namespaces the
// test created, and nothing leaves the machine (REAL-NODE.md, "The network rule").
//
// The one place that names the test network's addresses. They come from 198.18.0.0/15, the block
// set aside for test networks (RFC 2544): never routed on the internet and, unlike 10/8 or
// 192.168/16, unlikely to shadow a network the machine itself is on. Each node draws an index i
// (1–254) so that a sandbox and the test cluster can run side by side:
//
//   198.18.i.0/30    the veth pair: .1 in the root namespace (the API server listens there), .2 the node
//   198.18.i.64/26   LoadBalancer addresses (handed out by test/support/node/load-balancer.ts)
//   198.18.i.128/25  Service ClusterIPs (.129 is `kubernetes`)
//   198.19.i.0/24    pod IPs on the node's bridge (.1 is the bridge)
//   fd19:8:i::/64    the pods' IPv6 addresses (dual-stack pod network), routed like the IPv4 ones
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { run } from '../processes.ts';

export interface NodeNetwork {
  index: number;
  /** the network namespace (`ip netns`), /run/netns/<name> */
  namespace: string;
  hostAddress: string;
  nodeAddress: string;
  serviceCidr: string;
  /** the `kubernetes` Service's ClusterIP, first of serviceCidr */
  kubernetesServiceIp: string;
  /** the cluster DNS Service's ClusterIP */
  dnsServiceIp: string;
  podCidr: string;
  podGateway: string;
  podCidrV6?: string;
  podGatewayV6?: string;
  /** the n-th LoadBalancer address (0-based, < 64) */
  loadBalancerAddress(n: number): string;
  loadBalancerCidr: string;
}

const NAMESPACE_PREFIX = 'iro-node-';

export function nodeNetworkAddresses(index: number, ipv6: boolean): NodeNetwork {
  return {
    index,
    namespace: `${NAMESPACE_PREFIX}${index}`,
    hostAddress: `198.18.${index}.1`,
    nodeAddress: `198.18.${index}.2`,
    serviceCidr: `198.18.${index}.128/25`,
    kubernetesServiceIp: `198.18.${index}.129`,
    dnsServiceIp: `198.18.${index}.138`,
    podCidr: `198.19.${index}.0/24`,
    podGateway: `198.19.${index}.1`,
    ...(ipv6 ? { podCidrV6: `fd19:8:${index.toString(16)}::/64`, podGatewayV6: `fd19:8:${index.toString(16)}::1` } : {}),
    loadBalancerAddress: (n: number) => {
      if (n < 0 || n >= 64) throw new Error(`LoadBalancer address ${n} is outside the node's pool of 64`);
      return `198.18.${index}.${64 + n}`;
    },
    loadBalancerCidr: `198.18.${index}.64/26`,
  };
}

/** Whether this kernel has IPv6 (a kernel booted with ipv6.disable=1 has no /proc/net/if_inet6). */
export function kernelHasIpv6(): boolean {
  return existsSync('/proc/net/if_inet6');
}

async function ip(args: string[]): Promise<void> {
  const result = await run('ip', args, { timeoutMs: 20_000 });
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

/** Runs a command inside the node's network namespace (nsenter, not `ip netns exec`: no mount namespace of its own). */
export function inNodeNetwork(network: NodeNetwork, command: string, args: string[], timeoutMs = 20_000) {
  return run('nsenter', [`--net=/run/netns/${network.namespace}`, '--', command, ...args], { timeoutMs });
}

/** `preferred` when nothing on this machine uses its namespace and addresses yet, else a free index. */
async function freeIndex(preferred?: number): Promise<number> {
  const namespaces = (await run('ip', ['netns', 'list'])).stdout;
  const addresses = (await run('ip', ['-o', 'addr'])).stdout;
  const routes = (await run('ip', ['route'])).stdout;
  const taken = (index: number) => namespaces.includes(`${NAMESPACE_PREFIX}${index} `) || namespaces.includes(`${NAMESPACE_PREFIX}${index}\n`)
    || addresses.includes(`198.18.${index}.`) || routes.includes(`198.18.${index}.`) || routes.includes(`198.19.${index}.`);
  if (preferred !== undefined && !taken(preferred)) return preferred;
  for (let attempt = 0; attempt < 100; attempt++) {
    const index = randomInt(1, 255);
    if (!taken(index)) return index;
  }
  throw new Error('no free test network index (198.18.i.0/24 and 198.19.i.0/24 all in use)');
}

/**
 * Creates the namespace, the veth pair and the routes. The root namespace only gains routes to the
 * node's ranges through the veth (it forwards nothing); forwarding is switched on inside the node
 * namespace alone.
 */
/**
 * `preferredIndex`: the index of an earlier run whose data is kept (the sandbox's `--data`): its
 * Services keep their ClusterIPs only while the Service range stays the same.
 */
export async function createNodeNetwork(preferredIndex?: number): Promise<NodeNetwork> {
  await removeAbandonedNetworks();
  const network = nodeNetworkAddresses(await freeIndex(preferredIndex), kernelHasIpv6());
  const { namespace, index } = network;
  const [hostEnd, nodeEnd] = [`iro-h${index}`, `iro-n${index}`];
  await ip(['netns', 'add', namespace]);
  try {
    await ip(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nodeEnd]);
    await ip(['link', 'set', nodeEnd, 'netns', namespace]);
    await ip(['addr', 'add', `${network.hostAddress}/30`, 'dev', hostEnd]);
    await ip(['link', 'set', hostEnd, 'up']);
    const inside = async (args: string[]) => {
      const result = await inNodeNetwork(network, args[0]!, args.slice(1));
      if (result.code !== 0) throw new Error(`in ${namespace}: ${args.join(' ')}: ${result.stderr.trim()}`);
    };
    await inside(['ip', 'link', 'set', 'lo', 'up']);
    await inside(['ip', 'addr', 'add', `${network.nodeAddress}/30`, 'dev', nodeEnd]);
    await inside(['ip', 'link', 'set', nodeEnd, 'up']);
    await inside(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    // Processes on the node (the kubelet, containerd's pulls) reach ClusterIPs and LoadBalancer
    // addresses through kube-proxy's OUTPUT rules; the route lookup before them needs a route.
    await inside(['ip', 'route', 'add', network.serviceCidr, 'via', network.hostAddress]);
    await inside(['ip', 'route', 'add', network.loadBalancerCidr, 'via', network.hostAddress]);
    for (const cidr of [network.podCidr, network.serviceCidr, network.loadBalancerCidr]) {
      await ip(['route', 'add', cidr, 'via', network.nodeAddress, 'dev', hostEnd]);
    }
    if (network.podCidrV6) {
      const [hostV6, nodeV6] = [`fd19:8:${index.toString(16)}:ffff::1`, `fd19:8:${index.toString(16)}:ffff::2`];
      await ip(['-6', 'addr', 'add', `${hostV6}/64`, 'dev', hostEnd, 'nodad']);
      await inside(['ip', '-6', 'addr', 'add', `${nodeV6}/64`, 'dev', nodeEnd, 'nodad']);
      await inside(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
      await ip(['-6', 'route', 'add', network.podCidrV6, 'via', nodeV6, 'dev', hostEnd]);
    }
    return network;
  } catch (error) {
    await deleteNodeNetwork(network);
    throw error;
  }
}

/** Deletes the namespace: its interfaces go with it, and the veth's root end and routes with them. */
export async function deleteNodeNetwork(network: NodeNetwork): Promise<void> {
  await run('ip', ['link', 'del', `iro-h${network.index}`]);
  await run('ip', ['netns', 'del', network.namespace]);
}

/**
 * Deletes the namespaces of nodes whose processes are all gone — a test process killed with
 * SIGKILL cannot clean up after itself. A namespace any process still lives in (another test
 * cluster's or a sandbox's node) is left alone.
 */
async function removeAbandonedNetworks(): Promise<void> {
  const inUse = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      inUse.add(statSync(`/proc/${entry}/ns/net`).ino);
    } catch {
      // gone meanwhile
    }
  }
  for (const name of nodeNamespacesPresent()) {
    let inode: number;
    try {
      inode = statSync(`/run/netns/${name}`).ino;
    } catch {
      continue;
    }
    if (inUse.has(inode)) continue;
    await run('ip', ['link', 'del', `iro-h${name.slice(NAMESPACE_PREFIX.length)}`]);
    await run('ip', ['netns', 'del', name]);
  }
}

/** Names of namespaces of this module still present (for the leftovers check). */
export function nodeNamespacesPresent(): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .map((line) => /\/run\/netns\/(iro-node-\d+)/.exec(line)?.[1])
      .filter((name): name is string => Boolean(name));
  } catch {
    return [];
  }
}
