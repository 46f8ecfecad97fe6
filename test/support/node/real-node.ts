// A real node for the test cluster and the sandbox: the kubelet and kube-proxy built from the
// pinned Kubernetes release, containerd, runc and the bridge CNI plugin from Debian
// (REAL-NODE.md has what each setting below took to find).
//
// Everything of the node lives in two namespaces of its own, held by one idle process:
// - the network namespace of test/support/node/network.ts (veth, routes, no default route);
// - a private mount namespace in which tmpfs and work-dir binds hide the host's /run, /var/lib,
//   /var/log, /etc/containerd, /etc/hosts and /etc/resolv.conf, an overlay takes the node's other
//   writes to /etc (hostPath volumes under it), and files holding the values the
//   kubelet wants stand over the three machine-wide sysctls it would otherwise rewrite
//   (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory). containerd, the kubelet and
//   kube-proxy share it, so the volumes the kubelet mounts are the ones runc sees; and when the
//   holder ends, every mount in it goes away with it. Nothing is written outside the work dir
//   except the node's cgroups (a root of its own, /iro-node-<i>, in every hierarchy), removed on stop.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyPairPem } from '../pki.ts';
import { issueTestCertificate } from '../pki.ts';
import { kubeconfigYaml } from '../control-plane.ts';
import { delay, exitedMessage, onExitSync, run, startProcess, waitFor, type ManagedProcess } from '../processes.ts';
import { kubeApi } from '../kube-api.ts';
import { inNodeNetwork, type NodeNetwork } from './network.ts';

export interface RealNodeOptions {
  workDir: string;
  assetsDir: string;
  network: NodeNetwork;
  /** https://<host address>:<port> */
  server: string;
  /** the admin's, to watch the Node come up */
  kubeconfig: string;
  servingCaPem: string;
  clientCa: KeyPairPem;
  /** OCI archives to import into containerd's k8s.io namespace before the kubelet starts */
  imageArchives: string[];
  /** the sandbox image containerd runs each pod's network namespace in */
  pauseImage: string;
  nodeName?: string;
  /** the kubelet's --sync-frequency, e.g. '60s' (how often it refreshes Secret volumes) */
  syncFrequency?: string;
}

export interface RealNode {
  nodeName: string;
  network: NodeNetwork;
  workDir: string;
  /** the node's /etc/containerd/certs.d as a host path (what node-trust Jobs write through hostPath) */
  containerdCertsDir: string;
  containerdSocket: string;
  /** log files of containerd, the kubelet and kube-proxy */
  logs: Record<'containerd' | 'kubelet' | 'kube-proxy', string>;
  /** runs crictl against this node's containerd */
  crictl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** `<work dir>/node.json`: what node-access.ts reads to reach this node from a test process. */
export const NODE_FILE = 'node.json';
export interface NodeFile {
  nodeName: string;
  /** the idle process holding the node's mount and network namespaces (/proc/<pid>/root is the node's /) */
  holderPid: number | undefined;
  containerdSocket: string;
  network: NodeNetwork;
}

/** The values the kubelet sets these sysctls to (pkg/kubelet/cm: setupKernelTunables). */
const KUBELET_SYSCTLS: Record<string, string> = { 'kernel/panic': '10', 'kernel/panic_on_oops': '1', 'vm/overcommit_memory': '1' };

export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  const { workDir, network, assetsDir } = options;
  const nodeName = options.nodeName ?? 'node-1';
  const dirs = nodeDirectories(workDir);
  for (const dir of Object.values(dirs.directories)) mkdirSync(dir, { recursive: true });
  const logs = { containerd: join(workDir, 'containerd.log'), kubelet: join(workDir, 'kubelet.log'), 'kube-proxy': join(workDir, 'kube-proxy.log') };
  writeFileSync(dirs.hostsFile, '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  writeFileSync(dirs.resolvConf, `nameserver ${network.dnsServiceIp}\noptions ndots:5\n`);
  for (const [name, value] of Object.entries(KUBELET_SYSCTLS)) writeFileSync(join(dirs.sysctls, name.replace('/', '.')), `${value}\n`);
  writeFileSync(dirs.containerdConfig, containerdConfig(options, dirs));
  writeFileSync(join(dirs.cniConfig, '10-iro.conflist'), cniConfig(network, dirs));
  const processes: ManagedProcess[] = [];
  const holder = startNamespaceHolder(network, dirs, join(workDir, 'namespace-holder.log'));
  processes.push(holder);
  const socket = join(dirs.containerdState, 'containerd.sock');
  const crictl: RealNode['crictl'] = (args) => run(join(assetsDir, 'crictl'), ['--runtime-endpoint', `unix://${socket}`, '--image-endpoint', `unix://${socket}`, '--timeout', '30s', ...args], { timeoutMs: 120_000 });
  // Its own cgroup root: two kubelets on one machine (a sandbox beside the test cluster) under the
  // same `kubepods` each kill the other's pods as orphans (their cgroups are not of pods it knows).
  const cgroupRoot = `/${network.namespace}`;
  // killed without a stop: the shims and containers are in neither our process groups nor the
  // node's namespaces' lifetime; the next node start sweeps the network namespace
  const removeExitCleanup = onExitSync(() => {
    if (holder.child.pid !== undefined) killMountNamespaceMembers(holder.child.pid);
    killCgroupMembers(cgroupRoot);
  });
  const stop = async () => {
    await stopNode({ processes, holder, crictl, cgroupRoot });
    removeExitCleanup();
  };
  try {
    await waitFor('the node namespace holder', async () => existsSync(dirs.holderReady), 10_000, () => exitedMessage(holder, join(workDir, 'namespace-holder.log')));
    // what a test process finds of this node from its work dir (node-access.ts)
    writeFileSync(join(workDir, NODE_FILE), JSON.stringify({ nodeName, holderPid: holder.child.pid, containerdSocket: socket, network } satisfies NodeFile));
    const inNode = (name: string, command: string, args: string[], log: string) =>
      startProcess(name, 'nsenter', ['-t', String(holder.child.pid), '-m', '-n', '--', command, ...args], log);
    const containerd = inNode('containerd', 'containerd', ['--config', dirs.containerdConfig], logs.containerd);
    processes.push(containerd);
    await waitFor('containerd (CRI)', async () => (await crictl(['info'])).code === 0, 30_000, () => exitedMessage(containerd, logs.containerd));
    for (const archive of options.imageArchives) {
      const imported = await run('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', archive], { timeoutMs: 300_000 });
      if (imported.code !== 0) throw new Error(`importing ${archive} into containerd: ${imported.stderr.trim()}\n${tail(logs.containerd)}`);
    }
    writeNodeCredentials(options, dirs, nodeName);
    createCgroupRoot(cgroupRoot);
    writeFileSync(dirs.kubeletConfig, kubeletConfig(options, dirs, socket, cgroupRoot));
    const kubelet = inNode('kubelet', join(assetsDir, 'kubelet'), [
      '--config', dirs.kubeletConfig, '--kubeconfig', join(dirs.credentials, 'kubelet.kubeconfig'),
      '--hostname-override', nodeName, '--node-ip', network.nodeAddress, '--v', '1',
    ], logs.kubelet);
    processes.push(kubelet);
    await waitForNodeReady(options, nodeName, () => exitedMessage(kubelet, logs.kubelet) ?? exitedMessage(containerd, logs.containerd));
    writeFileSync(dirs.kubeProxyConfig, kubeProxyConfig(network, nodeName, dirs));
    const proxy = inNode('kube-proxy', join(assetsDir, 'kube-proxy'), ['--config', dirs.kubeProxyConfig, '--v', '1'], logs['kube-proxy']);
    processes.push(proxy);
    await waitFor('kube-proxy (the kubernetes Service through its ClusterIP)', async () => {
      const probe = await inNodeNetwork(network, 'sh', ['-c', `iptables-save -t nat | grep -q 'default/kubernetes:https'`]);
      return probe.code === 0;
    }, 30_000, () => exitedMessage(proxy, logs['kube-proxy']));
  } catch (error) {
    const message = `${(error as Error).message}\n— containerd: ${tail(logs.containerd)}\n— kubelet: ${tail(logs.kubelet)}`;
    await stop();
    throw new Error(`starting the real node: ${message}`);
  }
  return { nodeName, network, workDir, containerdCertsDir: join(dirs.etcContainerd, 'certs.d'), containerdSocket: socket, logs, crictl, stop };
}

function tail(file: string, lines = 12): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

type NodeDirectories = ReturnType<typeof nodeDirectories>;

function nodeDirectories(workDir: string) {
  const directories = {
    kubeletRoot: join(workDir, 'var-lib-kubelet'),
    varLog: join(workDir, 'var-log'),
    etcContainerd: join(workDir, 'etc-containerd'),
    etcUpper: join(workDir, 'etc', 'upper'),
    etcWork: join(workDir, 'etc', 'work'),
    certsD: join(workDir, 'etc-containerd', 'certs.d'),
    containerdRoot: join(workDir, 'containerd', 'root'),
    containerdState: join(workDir, 'containerd', 'state'),
    cniConfig: join(workDir, 'cni', 'net.d'),
    cniState: join(workDir, 'cni', 'state'),
    sysctls: join(workDir, 'sysctl'),
    credentials: join(workDir, 'credentials'),
    volumePlugins: join(workDir, 'volume-plugins'),
  };
  return {
    directories,
    ...directories,
    hostsFile: join(workDir, 'hosts'),
    resolvConf: join(workDir, 'resolv.conf'),
    containerdConfig: join(workDir, 'containerd.toml'),
    kubeletConfig: join(workDir, 'kubelet.yaml'),
    kubeProxyConfig: join(workDir, 'kube-proxy.yaml'),
    holderReady: join(workDir, 'namespace-ready'),
  };
}

/**
 * The idle process that holds the node's namespaces: `unshare` makes the private mount namespace,
 * `nsenter` joins the network namespace, the shell sets up the binds and then sleeps.
 */
function startNamespaceHolder(network: NodeNetwork, dirs: NodeDirectories, log: string): ManagedProcess {
  const sysctlBinds = Object.keys(KUBELET_SYSCTLS).map((name) => `mount --bind ${dirs.sysctls}/${name.replace('/', '.')} /proc/sys/${name}`);
  const script = [
    'set -e',
    // the node's writes to /etc (hostPath volumes: the node-trust Jobs' /etc/containers/certs.d and
    // /etc/docker/certs.d) land in its work dir; the machine's /etc is only read
    `mount -t overlay iro-node-etc -o lowerdir=/etc,upperdir=${dirs.etcUpper},workdir=${dirs.etcWork} /etc`,
    // /var/run/netns of the pods' sandboxes, containerd's and runc's state: in the namespace only
    'mount -t tmpfs -o mode=755 iro-node-run /run',
    'mount -t tmpfs -o mode=755 iro-node-var-lib /var/lib',
    'mkdir -p /var/lib/kubelet /var/lib/cni /var/lib/containerd',
    `mount --bind ${dirs.kubeletRoot} /var/lib/kubelet`,
    `mount --bind ${dirs.varLog} /var/log`,
    `mount --bind ${dirs.etcContainerd} /etc/containerd`,
    `mount --bind ${dirs.hostsFile} /etc/hosts`,
    `mount --bind ${dirs.resolvConf} /etc/resolv.conf`,
    ...sysctlBinds,
    `touch ${dirs.holderReady}`,
    'exec sleep infinity',
  ].join('\n');
  return startProcess('node namespace holder', 'unshare', ['--mount', '--propagation', 'private', '--',
    'nsenter', `--net=/run/netns/${network.namespace}`, '--', 'sh', '-c', script], log);
}

function containerdConfig(options: RealNodeOptions, dirs: NodeDirectories): string {
  return `version = 2
root = "${dirs.containerdRoot}"
state = "${dirs.containerdState}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${dirs.containerdState}/containerd.sock"
[ttrpc]
  address = "${dirs.containerdState}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${options.pauseImage}"
  enable_cdi = false
  # no CAP_SYS_RESOURCE in this machine's container: runc could not raise oom_score_adj
  restrict_oom_score_adj = true
  stream_server_address = "${options.network.nodeAddress}"
  stream_server_port = "10010"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dirs.cniConfig}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    # where the node-trust Jobs write each registry's hosts.toml and CA (kustomize/node-trust)
    config_path = "/etc/containerd/certs.d"
`;
}

function cniConfig(network: NodeNetwork, dirs: NodeDirectories): string {
  const ranges: unknown[] = [[{ subnet: network.podCidr, gateway: network.podGateway }]];
  const routes: unknown[] = [{ dst: '0.0.0.0/0' }];
  if (network.podCidrV6) {
    ranges.push([{ subnet: network.podCidrV6, gateway: network.podGatewayV6 }]);
    routes.push({ dst: '::/0' });
  }
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'iro',
    plugins: [
      { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges, routes, dataDir: dirs.cniState } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 1);
}

function writeNodeCredentials(options: RealNodeOptions, dirs: NodeDirectories, nodeName: string): void {
  const kubelet = issueTestCertificate({ commonName: `system:node:${nodeName}`, organization: 'system:nodes', usage: 'client', issuer: options.clientCa });
  const proxy = issueTestCertificate({ commonName: 'system:kube-proxy', usage: 'client', issuer: options.clientCa });
  writeFileSync(join(dirs.credentials, 'client-ca.crt'), options.clientCa.certPem);
  writeFileSync(join(dirs.credentials, 'kubelet.kubeconfig'), kubeconfigYaml(options.server, options.servingCaPem, kubelet), { mode: 0o600 });
  writeFileSync(join(dirs.credentials, 'kube-proxy.kubeconfig'), kubeconfigYaml(options.server, options.servingCaPem, proxy), { mode: 0o600 });
}

function kubeletConfig(options: RealNodeOptions, dirs: NodeDirectories, socket: string, cgroupRoot: string): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // this machine has the cgroup v1 hierarchy (a privileged container on a VM)
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot,
    containerRuntimeEndpoint: `unix://${socket}`,
    address: options.network.nodeAddress,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: join(dirs.credentials, 'client-ca.crt') } },
    authorization: { mode: 'AlwaysAllow' },
    clusterDomain: 'cluster.local',
    clusterDNS: [options.network.dnsServiceIp],
    resolvConf: dirs.resolvConf,
    failSwapOn: false,
    volumePluginDir: dirs.volumePlugins,
    syncFrequency: options.syncFrequency ?? '60s',
    // the machine's disk and memory are shared with the tests: never evict for pressure here
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    // the images are imported, never pulled again from anywhere: do not collect them
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    maxPods: 110,
    serializeImagePulls: false,
  }, null, 1);
}

function kubeProxyConfig(network: NodeNetwork, nodeName: string, dirs: NodeDirectories): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: join(dirs.credentials, 'kube-proxy.kubeconfig') },
    mode: 'iptables',
    hostnameOverride: nodeName,
    clusterCIDR: network.podCidr,
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    // leave the machine's conntrack table settings alone
    conntrack: { maxPerCore: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    nodePortAddresses: [`${network.nodeAddress}/32`],
  }, null, 1);
}

async function waitForNodeReady(options: RealNodeOptions, nodeName: string, failed: () => string | undefined): Promise<void> {
  const api = kubeApi(options.kubeconfig);
  try {
    await waitFor(`Node ${nodeName} Ready`, async () => {
      const node = await api.request<{ status?: { conditions?: { type: string; status: string }[] } }>('GET', `/api/v1/nodes/${nodeName}`);
      return node.status === 200 && Boolean(node.body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 60_000, failed);
  } finally {
    api.close();
  }
}

/**
 * Stops the kubelet first (it would restart what is stopped next), removes every pod sandbox
 * through the CRI (unmounts, CNI teardown), then kube-proxy and containerd, kills whatever is left
 * in the node's namespaces or cgroups, ends the holder (its mounts go with the namespace), removes
 * the kubelet's cgroups. The network is the caller's: it outlives the node (the API server listens on it).
 */
async function stopNode({ processes, holder, crictl, cgroupRoot }: { processes: ManagedProcess[]; holder: ManagedProcess; crictl: RealNode['crictl']; cgroupRoot: string }): Promise<void> {
  const byName = (name: string) => processes.find((p) => p.name === name);
  await byName('kubelet')?.stop(10_000);
  if (byName('containerd')) await crictl(['rmp', '--all', '--force']);
  await byName('kube-proxy')?.stop();
  await byName('containerd')?.stop(10_000);
  const holderPid = holder.child.pid;
  if (holderPid !== undefined) killMountNamespaceMembers(holderPid);
  killCgroupMembers(cgroupRoot);
  await holder.stop(2_000, 'SIGKILL');
  await removeCgroupRoot(cgroupRoot);
}

const CGROUP_ROOT = '/sys/fs/cgroup';

function cgroupHierarchies(): string[] {
  try {
    return readdirSync(CGROUP_ROOT).map((name) => join(CGROUP_ROOT, name)).filter((dir) => existsSync(join(dir, 'cgroup.procs')));
  } catch {
    return [];
  }
}

/**
 * The node's cgroup root in every hierarchy (the kubelet refuses a root that is missing in one);
 * cpuset's needs the CPUs and memory nodes of its parent before anything can join it.
 */
function createCgroupRoot(root: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = join(hierarchy, root);
    mkdirSync(dir, { recursive: true });
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(dir, file))) writeFileSync(join(dir, file), readFileSync(join(hierarchy, file), 'utf8'));
    }
  }
}

/** Every directory below (and including) dir, deepest first. */
function cgroupTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const children = readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).flatMap((entry) => cgroupTree(join(dir, entry.name)));
  return [...children, dir];
}

function killCgroupMembers(root: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    for (const group of cgroupTree(join(hierarchy, root))) {
      for (const pid of readFileSync(join(group, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) killPid(Number(pid));
    }
  }
}

async function removeCgroupRoot(root: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    let left = 0;
    for (const hierarchy of cgroupHierarchies()) {
      for (const group of cgroupTree(join(hierarchy, root))) {
        try {
          rmdirSync(group);
        } catch {
          left++;
        }
      }
    }
    if (left === 0) return;
    killCgroupMembers(root);
    await delay(250);
  }
}

/** Kills every process (shims, leftovers) in the holder's mount namespace. */
function killMountNamespaceMembers(holderPid: number): void {
  let namespace: string;
  try {
    namespace = readlinkSync(`/proc/${holderPid}/ns/mnt`);
  } catch {
    return;
  }
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === holderPid || pid === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) === namespace) killPid(pid);
    } catch {
      // gone meanwhile
    }
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
