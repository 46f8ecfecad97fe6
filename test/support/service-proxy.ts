// The kubelet stand-in's kube-proxy and load-balancer role (the contract is at the top of
// test/support/kubelet.ts): each Service of type LoadBalancer gets a loopback address in
// status.loadBalancer.ingress, its ports are served there and each connection goes round-robin to
// a ready pod its selector matches; the hosts file maps the Service's names to that address.
import { writeFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { KubeApi } from './kube-api.ts';
import { delay } from './processes.ts';
import { forwardingServer } from './socket-forward.ts';

interface ServiceObject {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: { type?: string; selector?: Record<string, string>; ports?: { name?: string; port: number; targetPort?: number | string }[] };
}

export function startServiceProxy(api: KubeApi, hostsFile: string, addressOf: (n: number) => string, log: (line: string) => void): { stop(): Promise<void> } {
  const served = new Map<string, { address: string; hostnames: string[]; servers: Server[]; sockets: Set<Socket> }>();
  let nextAddress = 1;
  let stopped = false;

  /** Ready, not terminating pods of the selector, with the Service port's target resolved per pod. */
  const endpointsOf = async (svc: ServiceObject, targetPort: number | string | undefined, port: number): Promise<{ address: string; port: number }[]> => {
    const selector = encodeURIComponent(Object.entries(svc.spec.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(','));
    if (!selector) return [];
    const pods = await api.request<{ items: V1Pod[] }>('GET', `/api/v1/namespaces/${svc.metadata.namespace}/pods?labelSelector=${selector}`);
    return (pods.body?.items ?? []).flatMap((pod) => {
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (!ready || pod.metadata?.deletionTimestamp || !pod.status?.podIP) return [];
      const named = typeof targetPort === 'string' && !/^\d+$/.test(targetPort)
        ? pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === targetPort)?.containerPort
        : Number(targetPort ?? port);
      return named ? [{ address: pod.status.podIP, port: named }] : [];
    });
  };

  const serve = async (svc: ServiceObject, key: string) => {
    const address = addressOf(nextAddress++);
    const sockets = new Set<Socket>();
    const servers: Server[] = [];
    let turn = 0;
    for (const port of svc.spec.ports ?? []) {
      const server = forwardingServer(sockets, async () => {
        const endpoints = await endpointsOf(svc, port.targetPort, port.port);
        const target = endpoints[turn++ % Math.max(endpoints.length, 1)];
        return target && { host: target.address, port: target.port };
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port.port, address, resolve);
      });
      server.unref();
      servers.push(server);
    }
    const external = svc.metadata.annotations?.['external-dns.alpha.kubernetes.io/hostname'];
    const hostnames = [...(external ? external.split(',').map((h) => h.trim()) : []), `${svc.metadata.name}.${svc.metadata.namespace}.svc`, `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`]
      .filter(Boolean).map((h) => h.toLowerCase().replace(/\.$/, ''));
    served.set(key, { address, hostnames, servers, sockets });
    await api.request('PATCH', `/api/v1/namespaces/${svc.metadata.namespace}/services/${svc.metadata.name}/status`, { status: { loadBalancer: { ingress: [{ ip: address }] } } }, 'application/merge-patch+json');
  };

  const close = async (key: string) => {
    const entry = served.get(key);
    served.delete(key);
    for (const socket of entry?.sockets ?? []) socket.destroy();
    await Promise.all((entry?.servers ?? []).map((s) => new Promise((resolve) => s.close(resolve))));
  };

  const writeHosts = () => {
    const lines = ['127.0.0.1\tlocalhost', ...[...served.values()].map((s) => `${s.address}\t${s.hostnames.join(' ')}`)];
    writeFileSync(hostsFile, `${lines.join('\n')}\n`);
  };

  const sync = async () => {
    const response = await api.request<{ items: ServiceObject[] }>('GET', '/api/v1/services');
    if (response.status !== 200) return;
    const seen = new Set<string>();
    let changed = false;
    for (const svc of response.body.items) {
      if (svc.spec.type !== 'LoadBalancer') continue;
      const key = svc.metadata.uid;
      seen.add(key);
      if (served.has(key)) continue;
      await serve(svc, key).catch((error: Error) => log(`service ${svc.metadata.namespace}/${svc.metadata.name}: ${error.message}`));
      changed = true;
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
    stop: async () => {
      stopped = true;
      await loop;
      for (const key of [...served.keys()]) await close(key);
    },
  };
}
