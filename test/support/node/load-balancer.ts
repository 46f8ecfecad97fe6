// The one stand-in left beside the real node: what a cloud's load-balancer controller does. It
// hands each LoadBalancer Service an address of the node's pool (test/support/node/network.ts) in
// status.loadBalancer.ingress; kube-proxy does the rest (its rules answer that address inside
// the node's network namespace, which the root namespace routes to). Names are the cluster DNS's
// job (cluster-dns.ts: CoreDNS' k8s_external answers a registry hostname with this address).
import { kubeApi } from '../kube-api.ts';
import type { NodeNetwork } from './network.ts';

interface ServiceObject {
  metadata: { name: string; namespace: string; uid: string };
  spec: { type?: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

const POOL_SIZE = 64;

export interface LoadBalancerStandIn {
  stop(): Promise<void>;
}

/** Syncs every `periodMs` (default 300 ms) until stopped. */
export function startLoadBalancerStandIn(options: { kubeconfig: string; network: NodeNetwork; periodMs?: number }): LoadBalancerStandIn {
  const api = kubeApi(options.kubeconfig);
  const addressByUid = new Map<string, string>();
  let stopped = false;

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
    const alive = new Set<string>();
    for (const svc of response.body.items) {
      const { name, namespace, uid } = svc.metadata;
      if (svc.spec.type !== 'LoadBalancer') continue;
      alive.add(uid);
      const address = addressFor(svc);
      addressByUid.set(uid, address);
      if (svc.status?.loadBalancer?.ingress?.[0]?.ip !== address) {
        await api.request('PATCH', `/api/v1/namespaces/${namespace}/services/${name}/status`,
          { status: { loadBalancer: { ingress: [{ ip: address, ipMode: 'VIP' }] } } }, 'application/merge-patch+json');
      }
    }
    for (const uid of addressByUid.keys()) if (!alive.has(uid)) addressByUid.delete(uid);
  };

  // The wait between syncs is unref'd (a test file that started the cluster itself stops it on
  // 'beforeExit', which a pending timer would hold off) and cut short by stop(), whose caller
  // awaits the loop: nothing else may be left to keep the process alive then.
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        await sync();
      } catch {
        // the API server restarts or stops: try again next period
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, options.periodMs ?? 300).unref();
      });
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
      api.close();
    },
  };
}
