// The kubelet stand-in: the one part of the test cluster and the sandbox that does not run for real
// (no container runtime here). Everything else — scheduling, Jobs, CronJobs, StatefulSets,
// Deployments, EndpointSlices, garbage collection — is the real kube-controller-manager and
// kube-scheduler. Its contract, in one place, with the module of each role (this one runs the node
// and its pods and reports their status):
//
// - Node: registers Node `<nodeName>` (InternalIP 127.0.0.1, generous capacity, Ready), renews its
//   Lease in kube-node-lease every 10 s and re-reports the Ready condition every 30 s, so the node
//   lifecycle controller never marks it Unknown or taints it.
// - Pods bound to the node (spec.nodeName, by the real scheduler) run from their own spec through
//   test/support/pod-sandbox.ts (with pod-volumes.ts, pod-network.ts, pod-env.ts): operator Job
//   pods as processes of the operator image's command (node /app/dist/<entry>.js) with the pod's
//   env, downward API and projected ServiceAccount token at
//   /var/run/secrets/kubernetes.io/serviceaccount; registry pods as registry, docker_auth and
//   nginx under bubblewrap. Each pod gets a pod IP in 127.<100–149>.0.0/16 serving its container ports
//   (the second octet is drawn per kubelet, so the test cluster and a sandbox can run side by side).
// - Pod status as the kubelet reports it: phase (Pending → Running → Succeeded/Failed by
//   restartPolicy), conditions (PodReadyToStartContainers, Initialized, ContainersReady, Ready from
//   the readiness probes), containerStatuses (waiting/running/terminated, restartCount, ready),
//   podIP/podIPs, hostIP, startTime.
// - Deletion: on deletionTimestamp the containers get SIGTERM, SIGKILL after the grace period, then
//   the pod is deleted with grace 0 and a uid precondition.
// - Volumes: Secret/ConfigMap/projected/downwardAPI volumes are refreshed on a periodic sync
//   (`volumeSyncPeriodMs`, default 60 s like the kubelet's --sync-frequency; IRO_KUBELET_SYNC_SECONDS)
//   and promptly (< 1 s) when the pod's metadata or spec changes — the real kubelet re-syncs a pod
//   on every update it sees, which is how touching a pod makes a changed Secret visible now.
// - hostPath volumes (directories): the same path under `<workDir>/host`, the node's file system as
//   its pods see it (`Kubelet.hostRoot`), e.g. /etc/containerd/certs.d → <workDir>/host/etc/containerd/certs.d.
// - Storage (test/support/volume-provisioner.ts): a pending PersistentVolumeClaim gets a pre-bound
//   hostPath PersistentVolume under the work dir (a small provisioner); the real PV controller
//   binds it; released ones are deleted.
// - Services (kube-proxy + load balancer, test/support/service-proxy.ts): every Service with a
//   ClusterIP (the control plane draws a range in 127.200–249) is served on ClusterIP:port on the
//   host, and inside every pod that has a network namespace of its own (its bridge listens on the
//   ClusterIPs there and forwards through `<workDir>/services/<clusterIP>:<port>.sock`), so the API
//   server reaches a webhook Service and pods reach each other by Service. A LoadBalancer Service
//   also gets a loopback address (127.<150–199>.0.0/16) in status.loadBalancer.ingress. Connections
//   go round-robin to the ready pods the selector matches (what the EndpointSlice would list — the
//   real EndpointSlice controller cannot publish these pods: the API refuses loopback endpoint
//   addresses); `default/kubernetes` goes to the API server, and pods with a network namespace of
//   their own get its ClusterIP as KUBERNETES_SERVICE_HOST. `<workDir>/hosts` (clients) and each
//   pod's /etc/hosts map `<svc>.<ns>.svc[.cluster.local]` to the ClusterIP; `<workDir>/hosts` also
//   maps a LoadBalancer's external-dns hostname to its address.
// - Egress (pod-network.ts serveEgress): a pod in its own network namespace reaches a loopback
//   address:port outside the cluster (e.g. the S3 server a test runs for bucket registries, standing
//   in for a cloud's object storage) at the same address:port, once a test serves it through
//   `<workDir>/services/<address>:<port>.sock`, the way a ClusterIP reaches the pods' bridges.
// - Logs: `kubectl logs` works: the API server fetches /containerLogs from this kubelet's endpoint.
// - Test hooks (files, so test processes other than the one running the kubelet can use them):
//   `<workDir>/control/pause-volume-sync/<namespace>.<pod>` holds back that pod's volume syncs.
import { createHash, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { join } from 'node:path';
import type { V1Pod, V1PodCondition, V1ContainerStatus } from '@kubernetes/client-node';
import { apiMessage, kubeApi, type KubeApi } from './kube-api.ts';
import { issueTestCertificate } from './pki.ts';
import { writeHostsFiles } from './pod-network.ts';
import { PodConfigError, podDirectory, startPodSandbox, type ContainerStatus, type PodSandbox } from './pod-sandbox.ts';
import { delay, freePort, installExitHandlers } from './processes.ts';
import { startServiceProxy } from './service-proxy.ts';
import { claimDirectory, startProvisioner } from './volume-provisioner.ts';

export interface KubeletOptions {
  kubeconfig: string;
  assetsDir: string;
  repoRoot: string;
  workDir: string;
  nodeName?: string;
  /** the kubelet's periodic volume sync (default 60 s, or IRO_KUBELET_SYNC_SECONDS) */
  volumeSyncPeriodMs?: number;
  /** readiness probe period instead of the probes' periodSeconds */
  probePeriodMs?: number;
  log?: (line: string) => void;
}

export interface Kubelet {
  nodeName: string;
  workDir: string;
  /** /etc/hosts for clients: Service names → ClusterIPs, LoadBalancer hostnames → their addresses */
  hostsFile: string;
  /** the node's `/` as hostPath volumes see it */
  hostRoot: string;
  stop(): Promise<void>;
}

interface RunningPod {
  uid: string;
  namespace: string;
  name: string;
  podIp: string;
  sandbox?: PodSandbox;
  starting?: Promise<void>;
  startError?: { reason: string; message: string };
  /** hash of what makes the real kubelet re-sync a pod: metadata and spec */
  specHash: string;
  lastVolumeSync: number;
  syncing?: Promise<void>;
  deleting?: Promise<void>;
  lastStatus?: string;
  startTime: string;
  /** terminal: the containers are done and the sandbox is torn down */
  finished?: boolean;
}

const POLL_MS = 200;
const LEASE_SECONDS = 40;

/** The node's `/` of the kubelet stand-in with this work dir, where hostPath volumes live. */
export function kubeletHostRoot(workDir: string): string {
  return join(workDir, 'host');
}

export function defaultVolumeSyncPeriodMs(): number {
  const seconds = Number(process.env.IRO_KUBELET_SYNC_SECONDS ?? 60);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 60_000;
}

export async function startKubelet(options: KubeletOptions): Promise<Kubelet> {
  if (process.getuid?.() !== 0) throw new Error('the kubelet stand-in needs root (bubblewrap mounts, network namespaces, setuid)');
  installExitHandlers();
  const api = kubeApi(options.kubeconfig);
  const nodeName = options.nodeName ?? 'local';
  const syncPeriod = options.volumeSyncPeriodMs ?? defaultVolumeSyncPeriodMs();
  const log = options.log ?? (() => undefined);
  const { workDir } = options;
  for (const dir of ['pods', 'pv', 'control/pause-volume-sync']) mkdirSync(join(workDir, dir), { recursive: true });
  const hostsFile = join(workDir, 'hosts');
  const hostRoot = kubeletHostRoot(workDir);
  writeFileSync(hostsFile, '127.0.0.1\tlocalhost\n');
  const apiUrl = new URL(api.server);
  const pods = new Map<string, RunningPod>();
  let nextPodIp = 1;
  let stopped = false;
  const block = randomInt(0, 50);
  const address = (base: number, n: number) => `127.${base + block}.${Math.floor(n / 250)}.${(n % 250) + 2}`;

  const logs = await startLogServer(workDir, pods);
  await registerNode(api, nodeName, logs.port);
  const apiServer = { host: apiUrl.hostname, port: Number(apiUrl.port) };
  const apiService = { host: await kubernetesServiceIp(api), port: 443 };
  const servicesDir = join(workDir, 'services');
  const services = startServiceProxy({
    api, hostsFile, socketDir: servicesDir, loadBalancerAddress: (n) => address(150, n), apiServer, log,
    onHostsChanged: (lines) => {
      for (const entry of pods.values()) if (entry.sandbox && !entry.deleting) writeHostsFiles(podDir(entry), entry.name, entry.podIp, lines);
    },
  });

  const podDir = (p: { uid: string }) => podDirectory(workDir, p.uid);

  const report = async (entry: RunningPod, pod: V1Pod): Promise<void> => {
    const status = podStatus(entry, pod);
    const text = JSON.stringify(status);
    if (text === entry.lastStatus) return;
    const response = await api.request('PATCH', `/api/v1/namespaces/${entry.namespace}/pods/${entry.name}/status`, { status }, 'application/strategic-merge-patch+json');
    if (response.status === 200) entry.lastStatus = text;
    else if (response.status !== 404) log(`pod ${entry.namespace}/${entry.name} status: ${apiMessage(response)}`);
  };

  const start = (entry: RunningPod, pod: V1Pod): void => {
    entry.starting = (async () => {
      try {
        entry.sandbox = await startPodSandbox(pod, {
          api, assetsDir: options.assetsDir, repoRoot: options.repoRoot, podDir: podDir(entry), podIp: entry.podIp,
          apiServer, apiService, servicesDir, serviceHostsLines: services.hostsLines, hostRoot, claimDirectory: (namespace, claim) => claimDirectory(api, namespace, claim),
          ...(options.probePeriodMs ? { probePeriodMs: options.probePeriodMs } : {}),
        });
        entry.lastVolumeSync = Date.now();
        entry.startError = undefined;
      } catch (error) {
        // e.g. a Secret volume whose Secret does not exist yet: ContainerCreating, retried next poll
        const reason = error instanceof PodConfigError ? 'CreateContainerConfigError' : 'ContainerCreating';
        entry.startError = { reason, message: (error as Error).message.split('\n')[0] ?? '' };
      }
    })();
  };

  const syncVolumes = (entry: RunningPod): void => {
    if (!entry.sandbox || entry.syncing || existsSync(join(workDir, 'control/pause-volume-sync', `${entry.namespace}.${entry.name}`))) return;
    entry.syncing = entry.sandbox.syncVolumes()
      .catch((error: Error) => log(`pod ${entry.namespace}/${entry.name} volumes: ${error.message}`))
      .finally(() => {
        entry.lastVolumeSync = Date.now();
        entry.syncing = undefined;
      });
  };

  const remove = (entry: RunningPod, pod: V1Pod | undefined): void => {
    entry.deleting ??= (async () => {
      await entry.starting;
      const grace = pod?.metadata?.deletionGracePeriodSeconds ?? pod?.spec?.terminationGracePeriodSeconds ?? 30;
      await entry.sandbox?.stop(grace).catch((error: Error) => log(`pod ${entry.namespace}/${entry.name} stop: ${error.message}`));
      if (pod) {
        if (!entry.finished) await report({ ...entry, finished: true }, pod).catch(() => undefined);
        const path = `/api/v1/namespaces/${entry.namespace}/pods/${entry.name}`;
        // a pod still stopping (preStop, grace period) when the kubelet stops finds the API gone
        await api.request('DELETE', path, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: entry.uid } })
          .catch((error: Error) => log(`pod ${entry.namespace}/${entry.name} delete: ${error.message}`));
      }
      pods.delete(entry.uid);
      rmSync(podDir(entry), { recursive: true, force: true });
    })();
  };

  const syncPod = async (pod: V1Pod): Promise<void> => {
    const uid = pod.metadata?.uid ?? '';
    let entry = pods.get(uid);
    if (!entry) {
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return; // finished before this kubelet started
      entry = {
        uid, namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '',
        podIp: address(100, nextPodIp++),
        specHash: specHash(pod), lastVolumeSync: Date.now(), startTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      };
      pods.set(uid, entry);
      mkdirSync(podDir(entry), { recursive: true });
    }
    if (pod.metadata?.deletionTimestamp) return remove(entry, pod);
    if (entry.deleting) return;
    if (!entry.sandbox && !entry.starting) start(entry, pod);
    if (!entry.sandbox && entry.startError && entry.starting) {
      await entry.starting;
      if (!entry.sandbox) start(entry, pod);
    }
    if (entry.sandbox && !entry.finished) {
      const hash = specHash(pod);
      if (hash !== entry.specHash || Date.now() - entry.lastVolumeSync >= syncPeriod) syncVolumes(entry);
      entry.specHash = hash;
      if (terminal(pod, entry.sandbox.containers())) {
        entry.finished = true;
        await entry.sandbox.stop(0);
      }
    }
    await report(entry, pod);
  };

  const poll = async (): Promise<void> => {
    const response = await api.request<{ items: V1Pod[] }>('GET', `/api/v1/pods?fieldSelector=spec.nodeName%3D${nodeName}`);
    if (response.status !== 200) return;
    const seen = new Set<string>();
    for (const pod of response.body.items) {
      seen.add(pod.metadata?.uid ?? '');
      await syncPod(pod).catch((error: Error) => log(`pod ${pod.metadata?.namespace}/${pod.metadata?.name}: ${error.message}`));
    }
    // deleted behind our back (grace 0 by someone else, namespace gone): stop what still runs
    for (const entry of pods.values()) if (!seen.has(entry.uid)) remove(entry, undefined);
  };

  const heartbeat = startHeartbeat(api, nodeName, log);
  const provisioner = startProvisioner(api, workDir, log);
  const loop = (async () => {
    while (!stopped) {
      await poll().catch((error: Error) => log(`kubelet: ${error.message}`));
      await delay(POLL_MS);
    }
  })();

  return {
    nodeName,
    workDir,
    hostsFile,
    hostRoot,
    async stop() {
      stopped = true;
      await loop;
      heartbeat.stop();
      provisioner.stop();
      await services.stop();
      for (const entry of pods.values()) {
        await entry.starting;
        await entry.sandbox?.stop(2);
      }
      await new Promise<void>((resolve) => logs.server.close(() => resolve()));
      api.close();
    },
  };
}

/** The ClusterIP of `default/kubernetes`, which the API server creates right after it starts. */
async function kubernetesServiceIp(api: KubeApi): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await api.request<{ spec?: { clusterIP?: string } }>('GET', '/api/v1/namespaces/default/services/kubernetes');
    const ip = response.status === 200 ? response.body.spec?.clusterIP : undefined;
    if (ip) return ip;
    if (Date.now() > deadline) throw new Error(`the API server has no Service default/kubernetes: ${apiMessage(response)}`);
    await delay(200);
  }
}

function specHash(pod: V1Pod): string {
  const { labels, annotations } = pod.metadata ?? {};
  return createHash('sha256').update(JSON.stringify([labels, annotations, pod.spec])).digest('hex');
}

/** restartPolicy Never: every container ended; OnFailure: every container ended with 0. */
function terminal(pod: V1Pod, containers: ContainerStatus[]): boolean {
  const policy = pod.spec?.restartPolicy ?? 'Always';
  if (policy === 'Always' || containers.length === 0) return false;
  return containers.every((c) => c.started && !c.running && c.terminated && (policy === 'Never' || c.terminated.exitCode === 0));
}

const iso = (date: Date | undefined) => (date ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');

/** The status the kubelet writes for the pod (strategic merge: conditions by type, containers by name). */
function podStatus(entry: RunningPod, pod: V1Pod): Record<string, unknown> {
  const containers = entry.sandbox?.containers() ?? [];
  const specs = pod.spec?.containers ?? [];
  const statuses: V1ContainerStatus[] = specs.map((spec) => containerStatus(spec.name, spec.image ?? '', containers.find((c) => c.name === spec.name), entry.startError));
  const allReady = containers.length > 0 && containers.every((c) => c.ready);
  const allEnded = entry.finished === true;
  const phase = allEnded
    ? (containers.every((c) => c.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed')
    : containers.some((c) => c.running || c.terminated) ? 'Running' : 'Pending';
  const sandboxUp = Boolean(entry.sandbox) && !allEnded;
  const previous = new Map((pod.status?.conditions ?? []).map((c) => [c.type, c]));
  const condition = (type: string, ok: boolean, reason?: string): V1PodCondition => {
    const status = ok ? 'True' : 'False';
    const before = previous.get(type);
    const lastTransitionTime = before?.status === status ? before.lastTransitionTime : iso(undefined);
    return { type, status, lastTransitionTime: lastTransitionTime as never, ...(ok || !reason ? {} : { reason }) } as V1PodCondition;
  };
  const notReadyReason = allEnded ? 'PodCompleted' : 'ContainersNotReady';
  return {
    phase,
    hostIP: '127.0.0.1',
    hostIPs: [{ ip: '127.0.0.1' }],
    ...(entry.sandbox || allEnded ? { podIP: entry.podIp, podIPs: [{ ip: entry.podIp }] } : {}),
    startTime: entry.startTime,
    conditions: [
      condition('PodReadyToStartContainers', sandboxUp),
      condition('Initialized', true),
      condition('ContainersReady', allReady && !allEnded, notReadyReason),
      condition('Ready', allReady && !allEnded, notReadyReason),
    ],
    containerStatuses: statuses,
  };
}

function containerStatus(name: string, image: string, c: ContainerStatus | undefined, startError: RunningPod['startError']): V1ContainerStatus {
  const base = { name, image, imageID: `local://${image}`, ready: c?.ready ?? false, restartCount: c?.restartCount ?? 0, started: c?.running ?? false };
  if (c?.running) return { ...base, containerID: `local://${name}`, state: { running: { startedAt: iso(c.startedAt) as never } } };
  if (c?.terminated) {
    const t = c.terminated;
    return { ...base, containerID: `local://${name}`, state: { terminated: { exitCode: t.exitCode, reason: t.exitCode === 0 ? 'Completed' : 'Error', startedAt: iso(t.startedAt) as never, finishedAt: iso(t.finishedAt) as never, ...(t.signal ? { signal: 0 } : {}) } } };
  }
  const reason = c?.waitingReason ?? startError?.reason ?? 'ContainerCreating';
  const message = c?.reason ?? startError?.message;
  return { ...base, state: { waiting: { reason, ...(message ? { message } : {}) } } };
}

// ---------------------------------------------------------------------------------------------
// Node, Lease and heartbeat

async function registerNode(api: KubeApi, nodeName: string, kubeletPort: number): Promise<void> {
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } },
  };
  const created = await api.request('POST', '/api/v1/nodes', node);
  if (created.status !== 201 && created.status !== 409) throw new Error(`registering Node ${nodeName}: ${apiMessage(created)}`);
  const capacity = { cpu: '64', memory: '256Gi', pods: '500', 'ephemeral-storage': '500Gi' };
  const status = {
    capacity,
    allocatable: capacity,
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: nodeName }],
    daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
    nodeInfo: { kubeletVersion: 'v1.37.2-stand-in', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64', containerRuntimeVersion: 'bubblewrap://local', osImage: 'kubelet stand-in', kernelVersion: '', machineID: '', systemUUID: '', bootID: '' },
    conditions: nodeConditions(),
  };
  const patched = await api.request('PATCH', `/api/v1/nodes/${nodeName}/status`, { status }, 'application/strategic-merge-patch+json');
  if (patched.status !== 200) throw new Error(`Node ${nodeName} status: ${apiMessage(patched)}`);
}

function nodeConditions(): Record<string, string>[] {
  const now = iso(undefined);
  const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: reason, lastHeartbeatTime: now, lastTransitionTime: now });
  return [
    condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
    condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
    condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
    condition('Ready', 'True', 'KubeletReady'),
  ];
}

function startHeartbeat(api: KubeApi, nodeName: string, log: (line: string) => void): { stop(): void } {
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`;
  const renewLease = async () => {
    const renewTime = new Date().toISOString().replace('Z', '000Z');
    const spec = { holderIdentity: nodeName, leaseDurationSeconds: LEASE_SECONDS, renewTime };
    const patched = await api.request('PATCH', leasePath, { spec }, 'application/merge-patch+json');
    if (patched.status === 404) await api.request('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: nodeName }, spec });
  };
  const reportReady = () => api.request('PATCH', `/api/v1/nodes/${nodeName}/status`, { status: { conditions: nodeConditions() } }, 'application/strategic-merge-patch+json');
  void renewLease().catch(() => undefined);
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
    void renewLease().catch((error: Error) => log(`lease: ${error.message}`));
    // a Lease alone does not revive a node marked Unknown: the Ready condition must say so again
    if (ticks % 3 === 0) void reportReady().catch((error: Error) => log(`node status: ${error.message}`));
  }, 10_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

// ---------------------------------------------------------------------------------------------
// The kubelet's log endpoint (what `kubectl logs` reaches through the API server)

async function startLogServer(workDir: string, pods: Map<string, RunningPod>): Promise<{ server: HttpsServer; port: number }> {
  const ca = issueTestCertificate({ commonName: 'kubelet-stand-in-ca', isCa: true });
  const tls = issueTestCertificate({ commonName: 'kubelet', ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], issuer: ca });
  const server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    const entry = match && [...pods.values()].find((p) => p.namespace === match[1] && p.name === match[2]);
    const file = entry && match ? join(podDirectory(workDir, entry.uid), 'logs', `${match[3]}.log`) : undefined;
    if (!file || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`container log not found: ${url.pathname}\n`);
      return;
    }
    let text = readFileSync(file, 'utf8');
    const tailLines = Number(url.searchParams.get('tailLines') ?? NaN);
    if (Number.isInteger(tailLines) && tailLines >= 0) text = text.split('\n').slice(-(tailLines + 1)).join('\n');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  server.unref();
  return { server, port };
}
