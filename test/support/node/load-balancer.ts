// The one stand-in left beside the real node: what a cloud's load-balancer controller does. It
// hands each LoadBalancer Service an address of the node's pool (test/support/node/network.ts) in
// status.loadBalancer.ingress; kube-proxy does the rest (its rules answer that address inside
// the node's network namespace, which the root namespace routes to). It also writes the names the
// cluster's clients resolve into one hosts file, as external-dns and cluster DNS would publish them:
// `<svc>.<ns>.svc[.cluster.local]` → ClusterIP and a LoadBalancer's external-dns hostname → its
// address. That file is the node's /etc/hosts (containerd resolves registry hostnames with it)
// and the tests' clients' (TestCluster.runClient).
import { writeFileSync } from 'node:fs';
import { kubeApi } from '../kube-api.ts';
import { delay } from '../processes.ts';
import type { NodeNetwork } from './network.ts';

interface ServiceObject {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: { type?: string; clusterIP?: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

export const EXTERNAL_DNS_ANNOTATION = 'external-dns.alpha.kubernetes.io/hostname';
const POOL_SIZE = 64;

export interface LoadBalancerStandIn {
  stop(): Promise<void>;
}

/** Syncs every `periodMs` (default 300 ms) until stopped. */
export function startLoadBalancerStandIn(options: { kubeconfig: string; network: NodeNetwork; hostsFile: string; periodMs?: number }): LoadBalancerStandIn {
  const api = kubeApi(options.kubeconfig);
  const addressByUid = new Map<string, string>();
  let stopped = false;
  let lastHosts = '';

  const addressFor = (svc: ServiceObject): string => {
    const known = addressByUid.get(svc.metadata.uid) ?? svc.status?.loadBalancer?.ingress?.[0]?.ip;
    if (known) return known;
    const used = new Set(addressByUid.values());
    for (let n = 0; n < POOL_SIZE; n++) {
      const address = options.network.loadBalancerAddress(n);
      if (!used.has(address)) return address;
    }
    throw new Error(`the node's LoadBalancer pool (${POOL_SIZE} addresses) is exhausted`);
  };

  const sync = async () => {
    const response = await api.request<{ items: ServiceObject[] }>('GET', '/api/v1/services');
    if (response.status !== 200) return;
    const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
    const alive = new Set<string>();
    for (const svc of response.body.items) {
      const { name, namespace, uid, annotations } = svc.metadata;
      const clusterIp = svc.spec.clusterIP && svc.spec.clusterIP !== 'None' ? svc.spec.clusterIP : undefined;
      if (clusterIp) lines.push(`${clusterIp}\t${name}.${namespace}.svc ${name}.${namespace}.svc.cluster.local`);
      if (svc.spec.type !== 'LoadBalancer') continue;
      alive.add(uid);
      const address = addressFor(svc);
      addressByUid.set(uid, address);
      if (svc.status?.loadBalancer?.ingress?.[0]?.ip !== address) {
        await api.request('PATCH', `/api/v1/namespaces/${namespace}/services/${name}/status`,
          { status: { loadBalancer: { ingress: [{ ip: address, ipMode: 'VIP' }] } } }, 'application/merge-patch+json');
      }
      const hostnames = annotations?.[EXTERNAL_DNS_ANNOTATION]?.split(',').map((h) => h.trim().toLowerCase().replace(/\.$/, '')).filter(Boolean) ?? [];
      if (hostnames.length) lines.push(`${address}\t${hostnames.join(' ')}`);
    }
    for (const uid of addressByUid.keys()) if (!alive.has(uid)) addressByUid.delete(uid);
    const hosts = `${lines.join('\n')}\n`;
    // in place (same inode): the file is bind-mounted as the node's /etc/hosts
    if (hosts !== lastHosts) writeFileSync(options.hostsFile, hosts);
    lastHosts = hosts;
  };

  const loop = (async () => {
    while (!stopped) {
      try {
        await sync();
      } catch {
        // the API server restarts or stops: try again next period
      }
      await delay(options.periodMs ?? 300);
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      await loop;
      api.close();
    },
  };
}
