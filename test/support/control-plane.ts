// A real Kubernetes control plane on loopback: etcd, kube-apiserver (envtest's flags, with the
// admission plugins a real cluster has on), kube-controller-manager and kube-scheduler, an admin
// client certificate in a kubeconfig. The node is test/support/node/ (kubelet, kube-proxy, containerd).
import { randomInt } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueTestCertificate, newRsaKeyPem, type KeyPairPem } from './pki.ts';
import { exitedMessage, freePort, httpOk, installExitHandlers, run, startProcess, waitFor, type ManagedProcess } from './processes.ts';
import { testBinaries } from './binaries.ts';

/**
 * The first two octets of a Services' ClusterIP range for a control plane without a node (nothing
 * serves it): 127.200–249, drawn per control plane, one whose `kubernetes` address is free here.
 */
async function serviceClusterIpPrefix(): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const prefix = `127.${200 + randomInt(0, 50)}`;
    if (attempt >= 20 || (await canListen(`${prefix}.0.1`, 443))) return prefix;
  }
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  kubeconfig: string;
  /** directory holding kube-apiserver, etcd, kubectl, auth_server, registry */
  assetsDir: string;
  /** the CA that signs client certificates the API server accepts */
  clientCa: KeyPairPem;
  /** the CA of the API server's serving certificate */
  servingCa: KeyPairPem;
  /** milliseconds from start to a control plane whose controllers work */
  startupMs: number;
  workDir: string;
  version: string;
  stop(): Promise<void>;
}

/**
 * Where the API server listens and which Service range it hands out, for a cluster with a real node
 * (test/support/node/network.ts): on the root end of the node's veth pair, reachable from the host
 * and from pods, with ClusterIPs the node's kube-proxy serves.
 */
export interface ControlPlaneNetwork {
  bindAddress: string;
  serviceCidr: string;
  kubernetesServiceIp: string;
}

export interface ControlPlaneOptions {
  workDir?: string;
  keepWorkDir?: boolean;
  beforeControllers?: (plane: { kubeconfig: string; assetsDir: string }) => Promise<void>;
  /** without it: on loopback, with no node to serve its ClusterIPs (a benchmark counting API requests) */
  network?: ControlPlaneNetwork;
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  installExitHandlers();
  const started = Date.now();
  const assetsDir = await testBinaries();
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'iro-control-plane-'));
  mkdirSync(workDir, { recursive: true });
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of processes.reverse()) await p.stop();
    if (!options.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
  };
  try {
    const etcdUrl = await startEtcd(assetsDir, workDir, processes);
    const plane = await startApiServer(assetsDir, workDir, etcdUrl, processes, options.network ?? await loopbackNetwork());
    // e.g. CRDs: the garbage collector learns resources at start, later ones after ~30 s discovery
    await options.beforeControllers?.({ kubeconfig: plane.kubeconfig, assetsDir });
    await startControllers(assetsDir, workDir, plane.kubeconfig, processes);
    return { ...plane, assetsDir, workDir, stop, startupMs: Date.now() - started };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startEtcd(assetsDir: string, workDir: string, processes: ManagedProcess[]): Promise<string> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const etcd = startProcess('etcd', join(assetsDir, 'etcd'), [
    '--data-dir', join(workDir, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync=true', '--log-level', 'warn',
  ], join(workDir, 'etcd.log'));
  processes.push(etcd);
  await waitFor('etcd /health', () => httpOk(`${url}/health`), 30_000, () => exitedMessage(etcd, join(workDir, 'etcd.log')));
  return url;
}

async function loopbackNetwork(): Promise<ControlPlaneNetwork> {
  // `kubernetes` gets the first ClusterIP (in the serving certificate)
  const prefix = await serviceClusterIpPrefix();
  return { bindAddress: '127.0.0.1', serviceCidr: `${prefix}.0.0/16`, kubernetesServiceIp: `${prefix}.0.1` };
}

async function startApiServer(assetsDir: string, workDir: string, etcdUrl: string, processes: ManagedProcess[], network: ControlPlaneNetwork) {
  const port = await freePort(network.bindAddress);
  const server = `https://${network.bindAddress}:${port}`;
  const pki = writePki(workDir, network);
  const apiserver = startProcess('kube-apiserver', join(assetsDir, 'kube-apiserver'), [
    '--etcd-servers', etcdUrl,
    '--cert-dir', join(workDir, 'pki'),
    '--tls-cert-file', pki.servingCertFile, '--tls-private-key-file', pki.servingKeyFile,
    '--secure-port', String(port), '--bind-address', network.bindAddress,
    // the endpoint of Service `kubernetes`, which pods reach through its ClusterIP
    ...(network.bindAddress === '127.0.0.1' ? [] : ['--advertise-address', network.bindAddress]),
    '--service-cluster-ip-range', network.serviceCidr,
    '--allow-privileged=true',
    // the default set (NamespaceLifecycle, ServiceAccount, DefaultStorageClass, PodSecurity, …) plus
    // what a production cluster adds; the real node's kubelet registers its Node
    '--enable-admission-plugins', 'NodeRestriction',
    '--authorization-mode', 'Node,RBAC',
    // kubectl logs/exec: the API server reaches the kubelet's endpoint with a client certificate
    '--kubelet-preferred-address-types', 'InternalIP',
    '--kubelet-client-certificate', pki.kubeletClientCertFile, '--kubelet-client-key', pki.kubeletClientKeyFile,
    '--service-account-issuer', `${server}/`,
    '--service-account-key-file', pki.saPublicFile,
    '--service-account-signing-key-file', pki.saPrivateFile,
    '--client-ca-file', pki.clientCaFile,
    '--v', '1',
  ], join(workDir, 'kube-apiserver.log'));
  processes.push(apiserver);
  const admin = pki.admin;
  await waitFor('kube-apiserver /readyz', () => httpsOk(`${server}/readyz`, admin, pki.servingCa.certPem), 90_000,
    () => exitedMessage(apiserver, join(workDir, 'kube-apiserver.log')));
  const kubeconfig = join(workDir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, pki.servingCa.certPem, admin), { mode: 0o600 });
  const version = await httpsJson(`${server}/version`, admin, pki.servingCa.certPem);
  return { server, kubeconfig, clientCa: pki.clientCa, servingCa: pki.servingCa, version: String(version.gitVersion) };
}

/**
 * kube-controller-manager (every default controller: Job, CronJob, StatefulSet, Deployment,
 * garbage collector, namespace, ServiceAccount, root CA publisher, PV binder, EndpointSlice, TTL,
 * node lifecycle, …) and kube-scheduler, both with the admin credentials: with per-controller
 * ServiceAccount credentials the controllers start working ~6 s later, < 1 s this way.
 */
async function startControllers(assetsDir: string, workDir: string, kubeconfig: string, processes: ManagedProcess[]): Promise<void> {
  const pki = join(workDir, 'pki');
  const manager = startProcess('kube-controller-manager', join(assetsDir, 'kube-controller-manager'), [
    '--kubeconfig', kubeconfig,
    '--authentication-kubeconfig', kubeconfig, '--authorization-kubeconfig', kubeconfig,
    '--leader-elect=false',
    '--use-service-account-credentials=false',
    // published into every namespace as ConfigMap kube-root-ca.crt (the pods' ca.crt)
    '--root-ca-file', join(pki, 'serving-ca.crt'),
    '--service-account-private-key-file', join(pki, 'sa.key'),
    '--bind-address', '127.0.0.1', '--secure-port', String(await freePort()),
    '--cert-dir', join(workDir, 'controller-manager'),
    // otherwise it creates a directory under /usr/libexec on the host
    '--flex-volume-plugin-dir', join(workDir, 'flexvolume'),
    // the sandbox's one node: pods are evicted from it only after a long silence
    '--node-monitor-grace-period', '40s',
    '--v', '1',
  ], join(workDir, 'kube-controller-manager.log'));
  processes.push(manager);
  const scheduler = startProcess('kube-scheduler', join(assetsDir, 'kube-scheduler'), [
    '--kubeconfig', kubeconfig,
    '--authentication-kubeconfig', kubeconfig, '--authorization-kubeconfig', kubeconfig,
    '--leader-elect=false',
    '--bind-address', '127.0.0.1', '--secure-port', String(await freePort()),
    '--cert-dir', join(workDir, 'scheduler'),
    '--v', '1',
  ], join(workDir, 'kube-scheduler.log'));
  processes.push(scheduler);
  // Both are ready when their work shows: the ServiceAccount controller fills namespace default.
  const kubectl = join(assetsDir, 'kubectl');
  await waitFor('kube-controller-manager (ServiceAccount default/default)', async () => {
    const result = await run(kubectl, ['--kubeconfig', kubeconfig, 'get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name'], { timeoutMs: 10_000 });
    return result.code === 0;
  }, 60_000, () => exitedMessage(manager, join(workDir, 'kube-controller-manager.log')) ?? exitedMessage(scheduler, join(workDir, 'kube-scheduler.log')));
}

function writePki(workDir: string, network: ControlPlaneNetwork) {
  const dir = join(workDir, 'pki');
  mkdirSync(dir, { recursive: true });
  const servingCa = issueTestCertificate({ commonName: 'test-serving-ca', isCa: true });
  const serving = issueTestCertificate({ commonName: 'kube-apiserver', dnsNames: ['localhost', 'kubernetes', 'kubernetes.default.svc'], ipAddresses: [...new Set(['127.0.0.1', network.bindAddress, network.kubernetesServiceIp])], issuer: servingCa });
  const clientCa = issueTestCertificate({ commonName: 'test-client-ca', isCa: true });
  const admin = issueTestCertificate({ commonName: 'admin', organization: 'system:masters', usage: 'client', issuer: clientCa });
  const kubeletClient = issueTestCertificate({ commonName: 'kube-apiserver-kubelet-client', organization: 'system:masters', usage: 'client', issuer: clientCa });
  const sa = newRsaKeyPem();
  const files = {
    servingCertFile: join(dir, 'apiserver.crt'),
    servingKeyFile: join(dir, 'apiserver.key'),
    clientCaFile: join(dir, 'client-ca.crt'),
    servingCaFile: join(dir, 'serving-ca.crt'),
    saPublicFile: join(dir, 'sa.pub'),
    saPrivateFile: join(dir, 'sa.key'),
    kubeletClientCertFile: join(dir, 'kubelet-client.crt'),
    kubeletClientKeyFile: join(dir, 'kubelet-client.key'),
  };
  writeFileSync(files.kubeletClientCertFile, kubeletClient.certPem);
  writeFileSync(files.kubeletClientKeyFile, kubeletClient.keyPem, { mode: 0o600 });
  writeFileSync(files.servingCertFile, serving.certPem + servingCa.certPem);
  writeFileSync(files.servingKeyFile, serving.keyPem, { mode: 0o600 });
  writeFileSync(files.clientCaFile, clientCa.certPem);
  writeFileSync(files.servingCaFile, servingCa.certPem);
  writeFileSync(files.saPublicFile, sa.publicKeyPem);
  writeFileSync(files.saPrivateFile, sa.privateKeyPem, { mode: 0o600 });
  return { ...files, servingCa, clientCa, admin };
}

/** A kubeconfig that authenticates with a client certificate (the admin's, a node's, kube-proxy's). */
export function kubeconfigYaml(server: string, caPem: string, admin: KeyPairPem): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64(admin.certPem)}`,
    `    client-key-data: ${b64(admin.keyPem)}`,
    'contexts:',
    '- name: local',
    '  context: {cluster: local, user: admin, namespace: default}',
    'current-context: local',
    '',
  ].join('\n');
}

function httpsGet(url: string, client: KeyPairPem, caPem: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { cert: client.certPem, key: client.keyPem, ca: caPem, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function httpsOk(url: string, client: KeyPairPem, caPem: string): Promise<boolean> {
  return (await httpsGet(url, client, caPem)).status === 200;
}

async function httpsJson(url: string, client: KeyPairPem, caPem: string): Promise<Record<string, unknown>> {
  return JSON.parse((await httpsGet(url, client, caPem)).body) as Record<string, unknown>;
}
