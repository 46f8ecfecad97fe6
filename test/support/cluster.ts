// The cluster a test file talks to: the one the test runner started (IRO_KUBECONFIG,
// IRO_NODE_DIR), or one started for this process alone when a test file is run by itself —
// the real control plane (test/support/control-plane.ts) and a real node (test/support/node/).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { run } from './processes.ts';
import { testBinaries } from './binaries.ts';
import { createNodeNetwork, deleteNodeNetwork, type NodeNetwork } from './node/network.ts';
import { startRealNode, type RealNode } from './node/real-node.ts';
import { startLoadBalancerStandIn } from './node/load-balancer.ts';
import { startClusterDns } from './node/cluster-dns.ts';
import { assembleNodeImages, configuredImageNames, type ImageSet } from './node/images.ts';
import { startProvisioner } from './volume-provisioner.ts';
import { kubeApi } from './kube-api.ts';
import { cacheRoot } from './node/cache.ts';

export interface TestCluster {
  kubeconfig: string;
  assetsDir: string;
  /** the real node's work dir: `hosts` (its /etc/hosts, with the LoadBalancer hostnames), node-access.ts reads the rest */
  nodeDir: string;
  /**
   * runs a client (e.g. skopeo) with the node's resolver (bwrap: its /etc/resolv.conf, the cluster's DNS,
   * which answers registry hostnames) and /etc/hosts, or `hostsFile` as /etc/hosts (its names win); binds are read-write host paths, mounts host paths bound
   * read-only at other paths (e.g. a test directory as /etc/containers/certs.d)
   */
  runClient(command: string, args: string[], options?: { binds?: string[]; mounts?: { source: string; target: string }[]; hostsFile?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** runs the real kubectl with the admin kubeconfig; never throws */
  kubectl(args: string[], opts?: { input?: string; namespace?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** creates a namespace with a unique name starting with prefix */
  createNamespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  /** renders a kustomize directory of the repo (e.g. 'kustomize/crds') and server-side applies it; throws on failure */
  applyKustomize(dir: string): Promise<string>;
  /** the CRDs of kustomize/crds, applied and Established (once per process) */
  installCrds(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** On every namespace a test creates: the runner deletes them when the test file ends. */
export const TEST_NAMESPACE_LABEL = 'image-registry-operator.test/namespace';
let cluster: Promise<TestCluster> | undefined;

type ClusterOptions = {
  workDir?: string;
  keepWorkDir?: boolean;
  /** a cluster as fresh as a new one: no CRDs installed beforehand */
  withoutCrds?: boolean;
};

/** The CRDs before the controllers start: the garbage collector then knows them at once, not after its 30 s discovery. */
async function installCrds({ kubeconfig, assetsDir }: { kubeconfig: string; assetsDir: string }): Promise<void> {
  const applied = await run(join(assetsDir, 'kubectl'), ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--field-manager=tests', '-k', join(repoRoot, 'kustomize/crds')]);
  if (applied.code !== 0) throw new Error(`installing the CRDs: ${applied.stderr}`);
}

/** Deletes every namespace a test created (the namespace controller removes what is in them). */
function deleteTestNamespacesOf(plane: ControlPlane): () => Promise<void> {
  return async () => {
    await run(join(plane.assetsDir, 'kubectl'), ['--kubeconfig', plane.kubeconfig, 'delete', 'namespaces', '-l', TEST_NAMESPACE_LABEL, '--wait=false']);
  };
}

/** A control plane with the CRDs and no node: for a benchmark that counts every API request (a kubelet's leases and status would add to them). */
export interface ControlPlaneCluster {
  plane: ControlPlane;
  env: { IRO_KUBECONFIG: string; IRO_ASSETS: string };
  deleteTestNamespaces(): Promise<void>;
  stop(): Promise<void>;
}

export async function startControlPlaneCluster(options: ClusterOptions = {}): Promise<ControlPlaneCluster> {
  const plane = await startControlPlane({ ...options, beforeControllers: options.withoutCrds ? undefined : installCrds });
  return { plane, env: { IRO_KUBECONFIG: plane.kubeconfig, IRO_ASSETS: plane.assetsDir }, deleteTestNamespaces: deleteTestNamespacesOf(plane), stop: () => plane.stop() };
}

export function testCluster(): Promise<TestCluster> {
  cluster ??= connect();
  return cluster;
}

async function connect(): Promise<TestCluster> {
  let kubeconfig = process.env.IRO_KUBECONFIG;
  const assetsDir = await testBinaries();
  if (!kubeconfig) {
    const started = await startClusterOnRealNode();
    process.once('beforeExit', () => void started.stop());
    Object.assign(process.env, started.env);
    kubeconfig = started.plane.kubeconfig;
  }
  return clusterClient(kubeconfig, assetsDir, process.env.IRO_NODE_DIR ?? '');
}

/** The TestCluster helpers for a cluster a test started itself (startClusterOnRealNode). */
export function clusterClientOf(running: RealNodeCluster): TestCluster {
  return clusterClient(running.plane.kubeconfig, running.plane.assetsDir, running.node.workDir);
}

export function clusterClient(kubeconfig: string, assetsDir: string, nodeDir: string): TestCluster {
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const kubectl: TestCluster['kubectl'] = (args, opts = {}) =>
    run(join(assetsDir, 'kubectl'), [...(opts.namespace ? ['-n', opts.namespace] : []), ...args], { input: opts.input, env });
  const createNamespace = async (prefix: string, labels: Record<string, string> = {}) => {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, [TEST_NAMESPACE_LABEL]: 'true' } } });
    const result = await kubectl(['create', '-f', '-'], { input: manifest });
    if (result.code !== 0) throw new Error(`creating namespace ${name}: ${result.stderr}`);
    return name;
  };
  const applyKustomize = async (dir: string) => {
    const rendered = await kubectl(['kustomize', join(repoRoot, dir)]);
    if (rendered.code !== 0) throw new Error(`kubectl kustomize ${dir}: ${rendered.stderr}`);
    const applied = await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=tests', '-f', '-'], { input: rendered.stdout });
    if (applied.code !== 0) throw new Error(`applying ${dir}: ${applied.stderr}`);
    return rendered.stdout;
  };
  let crds: Promise<void> | undefined;
  const installCrds = () => {
    crds ??= applyKustomize('kustomize/crds').then(async () => {
      const waited = await kubectl(['wait', '--for', 'condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=image-registry-operator']);
      if (waited.code !== 0) throw new Error(`waiting for the CRDs: ${waited.stderr}`);
    });
    return crds;
  };
  const runClient: TestCluster['runClient'] = (command, args, clientOptions = {}) => {
    const bwrapArgs = [
      '--die-with-parent', '--unshare-pid',
      '--ro-bind', '/', '/',
      '--dev', '/dev', '--proc', '/proc',
      '--tmpfs', '/tmp', '--tmpfs', '/var/tmp', '--tmpfs', '/run',
      '--ro-bind', clientOptions.hostsFile ?? join(nodeDir, 'hosts'), '/etc/hosts',
      // the node's resolver: the cluster's CoreDNS, which answers registry hostnames (k8s_external)
      '--ro-bind', join(nodeDir, 'resolv.conf'), '/etc/resolv.conf',
      ...(clientOptions.binds ?? []).flatMap((path) => ['--bind', path, path]),
      ...(clientOptions.mounts ?? []).flatMap(({ source, target }) => ['--ro-bind', source, target]),
      '--', command, ...args,
    ];
    return run('bwrap', bwrapArgs, { env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...(clientOptions.env ?? {}) }, timeoutMs: clientOptions.timeoutMs ?? 120_000 });
  };
  return { kubeconfig, assetsDir, nodeDir, runClient, kubectl, createNamespace, applyKustomize, installCrds };
}

/** The control plane with a real node: kubelet, containerd, runc, CNI and kube-proxy (test/support/node/). */
export interface RealNodeCluster {
  plane: ControlPlane;
  node: RealNode;
  network: NodeNetwork;
  images: ImageSet;
  env: { IRO_KUBECONFIG: string; IRO_ASSETS: string; IRO_NODE_DIR: string };
  deleteTestNamespaces(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The network namespace first (the API server listens on its veth), then the control plane with the
 * CRDs, the images assembled and imported, the node, the LoadBalancer stand-in, CoreDNS and the volume
 * provisioner. Stopping leaves nothing behind (processes, mounts, namespaces, cgroups).
 */
export async function startClusterOnRealNode(options: ClusterOptions & { syncFrequency?: string } = {}): Promise<RealNodeCluster> {
  const assetsDir = await testBinaries();
  const names = configuredImageNames(repoRoot);
  const images = await assembleNodeImages({ assetsDir, repoRoot, cacheDir: join(cacheRoot(), 'node-images'), names });
  // a kept work dir (the sandbox's --data) keeps its network, so its Services keep their ClusterIPs
  const indexFile = options.workDir ? join(options.workDir, 'node-network-index') : undefined;
  const network = await createNodeNetwork(indexFile && existsSync(indexFile) ? Number(readFileSync(indexFile, 'utf8')) : undefined);
  if (indexFile) {
    mkdirSync(options.workDir as string, { recursive: true });
    writeFileSync(indexFile, String(network.index));
  }
  let plane: ControlPlane | undefined;
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step();
    await plane?.stop();
    await deleteNodeNetwork(network);
  };
  try {
    plane = await startControlPlane({
      ...options,
      network: { bindAddress: network.hostAddress, serviceCidr: network.serviceCidr, kubernetesServiceIp: network.kubernetesServiceIp },
      beforeControllers: options.withoutCrds ? undefined : installCrds,
    });
    const node = await startRealNode({
      workDir: join(plane.workDir, 'node'), assetsDir, network, server: plane.server, kubeconfig: plane.kubeconfig, servingCaPem: plane.servingCa.certPem, clientCa: plane.clientCa,
      imageArchives: images.images.map((image) => image.archive), pauseImage: names.pause, syncFrequency: options.syncFrequency,
    });
    stops.push(() => node.stop());
    const balancer = startLoadBalancerStandIn({ kubeconfig: plane.kubeconfig, network });
    stops.push(() => balancer.stop());
    await startClusterDns(clusterClient(plane.kubeconfig, assetsDir, node.workDir), { repoRoot, image: names.coredns, network });
    const api = kubeApi(plane.kubeconfig);
    const provisioner = startProvisioner(api, node.workDir, () => undefined);
    stops.push(() => { provisioner.stop(); api.close(); });
    const running: RealNodeCluster = {
      plane, node, network, images, stop,
      env: { IRO_KUBECONFIG: plane.kubeconfig, IRO_ASSETS: assetsDir, IRO_NODE_DIR: node.workDir },
      deleteTestNamespaces: deleteTestNamespacesOf(plane),
    };
    return running;
  } catch (error) {
    await stop();
    throw error;
  }
}
