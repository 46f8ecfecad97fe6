// The kubelet stand-in's kube-proxy and load-balancer role (the contract is at the top of
// test/support/kubelet.ts). Every Service with a ClusterIP is served on that ClusterIP and its
// ports, on the host and, through one Unix socket per ClusterIP:port in `socketDir`, inside the
// pods that have a network namespace of their own (their bridge listens on the ClusterIPs there,
// see pod-network.ts). Each connection goes round-robin to a ready pod the selector matches (what
// the EndpointSlice would list); `default/kubernetes` goes to the API server. A Service of type
// LoadBalancer also gets a loopback address in status.loadBalancer.ingress, served the same way.
// The hosts files map `<svc>.<ns>.svc[.cluster.local]` to the ClusterIP and the external-dns
// hostname to the load-balancer address.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { KubeApi } from './kube-api.ts';
import { delay } from './processes.ts';
import { forwardingServer } from './socket-forward.ts';

interface ServicePort { name?: string; port: number; targetPort?: number | string; protocol?: string }

interface ServiceObject {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: { type?: string; clusterIP?: string; selector?: Record<string, string>; ports?: ServicePort[] };
}

type Target = { host: string; port: number };

export interface ServiceProxyOptions {
  api: KubeApi;
  /** the clients' /etc/hosts */
  hostsFile: string;
  /** where the Unix sockets of the ClusterIPs live, `<clusterIP>:<port>.sock` */
  socketDir: string;
  /** the n-th load-balancer address */
  loadBalancerAddress: (n: number) => string;
  /** the endpoint of `default/kubernetes` */
  apiServer: Target;
  /** called with the Service lines of a hosts file whenever they change (the pods' hosts files) */
  onHostsChanged?: (lines: string[]) => void;
  log: (line: string) => void;
}

export interface ServiceProxy {
  /** `<address>\t<names>` lines for a hosts file */
  hostsLines(): string[];
  stop(): Promise<void>;
}

interface Served {
  lines: string[];
  servers: Server[];
  sockets: Set<Socket>;
  unixSockets: string[];
}

export function startServiceProxy(options: ServiceProxyOptions): ServiceProxy {
  const { api, socketDir, log } = options;
  mkdirSync(socketDir, { recursive: true });
  const served = new Map<string, Served>();
  let nextAddress = 1;
  let stopped = false;

  /** Ready, not terminating pods of the selector, with the Service port's target resolved per pod. */
  const endpointsOf = async (svc: ServiceObject, port: ServicePort): Promise<Target[]> => {
    if (svc.metadata.namespace === 'default' && svc.metadata.name === 'kubernetes') return [options.apiServer];
    const selector = encodeURIComponent(Object.entries(svc.spec.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(','));
    if (!selector) return [];
    const pods = await api.request<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${svc.metadata.namespace}/pods?labelSelector=${selector}`);
    return (pods.body?.items ?? []).flatMap((pod) => {
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (!ready || pod.metadata?.deletionTimestamp || !pod.status?.podIP) return [];
      const { targetPort } = port;
      const containerPort = typeof targetPort === 'string' && !/^\d+$/.test(targetPort)
        ? pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === targetPort)?.containerPort
        : Number(targetPort ?? port.port);
      return containerPort ? [{ host: pod.status.podIP, port: containerPort }] : [];
    });
  };

  const listen = (server: Server, where: { port: number; host: string } | { path: string }) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where, () => {
        server.off('error', reject);
        resolve();
      });
    });

  const serve = async (svc: ServiceObject, entry: Served): Promise<void> => {
    const clusterIp = svc.spec.clusterIP && svc.spec.clusterIP !== 'None' ? svc.spec.clusterIP : undefined;
    const loadBalancer = svc.spec.type === 'LoadBalancer' ? options.loadBalancerAddress(nextAddress++) : undefined;
    let turn = 0;
    for (const port of (svc.spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP')) {
      const target = async () => {
        const endpoints = await endpointsOf(svc, port);
        return endpoints[turn++ % Math.max(endpoints.length, 1)];
      };
      const addresses: ({ port: number; host: string } | { path: string })[] = [];
      if (clusterIp) addresses.push({ host: clusterIp, port: port.port }, { path: join(socketDir, `${clusterIp}:${port.port}.sock`) });
      if (loadBalancer) addresses.push({ host: loadBalancer, port: port.port });
      for (const address of addresses) {
        if ('path' in address) {
          rmSync(address.path, { force: true });
          entry.unixSockets.push(address.path);
        }
        const server = forwardingServer(entry.sockets, target);
        entry.servers.push(server);
        await listen(server, address);
        server.unref();
      }
    }
    const { name, namespace, annotations } = svc.metadata;
    if (clusterIp) entry.lines.push(`${clusterIp}\t${name}.${namespace}.svc ${name}.${namespace}.svc.cluster.local`);
    const external = annotations?.['external-dns.alpha.kubernetes.io/hostname']?.split(',').map((h) => h.trim().toLowerCase().replace(/\.$/, '')).filter(Boolean);
    if (loadBalancer && external?.length) entry.lines.push(`${loadBalancer}\t${external.join(' ')}`);
    if (loadBalancer) {
      await api.request('PATCH', `/api/v1/namespaces/${namespace}/services/${name}/status`, { status: { loadBalancer: { ingress: [{ ip: loadBalancer }] } } }, 'application/merge-patch+json');
    }
  };

  const close = async (key: string) => {
    const entry = served.get(key);
    served.delete(key);
    for (const socket of entry?.sockets ?? []) socket.destroy();
    await Promise.all((entry?.servers ?? []).map((s) => new Promise((resolve) => s.close(resolve))));
    for (const path of entry?.unixSockets ?? []) rmSync(path, { force: true });
  };

  const hostsLines = () => [...served.values()].flatMap((s) => s.lines);
  const writeHosts = () => {
    writeFileSync(options.hostsFile, `${['127.0.0.1\tlocalhost', ...hostsLines()].join('\n')}\n`);
    options.onHostsChanged?.(hostsLines());
  };

  // a Service is served again when what it is served by changes (type, ClusterIP, ports)
  const keyOf = (svc: ServiceObject) => `${svc.metadata.uid}/${JSON.stringify([svc.spec.type, svc.spec.clusterIP, svc.spec.ports])}`;

  const sync = async () => {
    const response = await api.request<{ items: ServiceObject[] }>('GET', '/api/v1/services');
    if (response.status !== 200) return;
    const seen = new Set<string>();
    let changed = false;
    for (const svc of response.body.items) {
      if (svc.spec.type === 'ExternalName') continue;
      const key = keyOf(svc);
      seen.add(key);
      if (served.has(key)) continue;
      const entry: Served = { lines: [], servers: [], sockets: new Set(), unixSockets: [] };
      served.set(key, entry);
      changed = true;
      await serve(svc, entry).catch((error: Error) => log(`service ${svc.metadata.namespace}/${svc.metadata.name}: ${error.message}`));
    }
    for (const key of [...served.keys()]) {
      if (seen.has(key)) continue;
      await close(key);
      changed = true;
    }
    if (changed) writeHosts();
  };
  const loop = (async () => {
    while (!stopped) {
      await sync().catch((error: Error) => log(`service proxy: ${error.message}`));
      await delay(500);
    }
  })();
  return {
    hostsLines,
    stop: async () => {
      stopped = true;
      await loop;
      for (const key of [...served.keys()]) await close(key);
    },
  };
}
