// Helpers of the end-to-end tests: reconcile Jobs run by the real Job controller, registry pods run
// by the real node's kubelet, and clients that reach a registry the way a cluster's clients do — its
// hostname resolving to the LoadBalancer Service's address, or to one pod's IP.
import { randomBytes } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { tokenIssuer } from '../../functions/names.ts';
import { NGINX_PORT } from '../../functions/nginx-config.ts';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { OperatorConfig } from '../../functions/types.ts';
import type { TestCluster } from './cluster.ts';
import { waitForJob } from './jobs.ts';
import { applyObjects, getObject, requireObject, serverSide } from './kubectl.ts';
import { OPERATOR_NAMESPACE } from './operator.ts';
import { waitFor } from './processes.ts';
import { registryClient, type RegistryClient } from './registry-api.ts';
import { signRegistryToken } from './registry-token.ts';
import { resolveInCluster } from './node/cluster-dns.ts';
import { nodeAccess } from './node/node-access.ts';

/** Where clients of a registry connect, while TLS and HTTP name the registry hostname. */
export interface RegistryAddress {
  address: string;
  port: number;
  /** for node:https / node:tls clients: resolves the registry hostname to the address */
  lookup: LookupFunction;
}

/** The reconcile Job as the webhook creates it, run by the Job controller; waits for it. */
export async function runReconcileJob(cluster: TestCluster, namespace: string, name: string, config: OperatorConfig = operatorConfigFromEnv({})): Promise<void> {
  const job = desiredReconcileJob({ registry: { namespace, name }, config, windowEnd: new Date() });
  job.metadata.name = `e2e-${randomBytes(4).toString('hex')}`;
  await applyObjects(cluster, job, OPERATOR_NAMESPACE, serverSide('e2e-test'));
  const finished = await waitForJob(cluster, OPERATOR_NAMESPACE, job.metadata.name, 180_000);
  if (finished.result !== 'Complete') throw new Error(`reconcile Job failed:\n${finished.logs}`);
}

/** Waits until the named containers of the pod are ready (as the kubelet reports them). */
export async function podWithReadyContainers(cluster: TestCluster, namespace: string, name: string, containers: string[]): Promise<V1Pod> {
  let pod: V1Pod | undefined;
  await waitFor(`pod ${name}: containers ${containers.join(', ')} ready`, async () => {
    pod = await getObject<V1Pod>(cluster, 'pod', name, namespace);
    return containers.every((c) => pod?.status?.containerStatuses?.find((s) => s.name === c)?.ready);
  }, 120_000).catch((error: Error) => {
    throw new Error(`${error.message}\n${JSON.stringify(pod?.status?.containerStatuses, null, 1)}`);
  });
  return pod as V1Pod;
}

/** The Service's load balancer address; clients resolve the registry hostname to it. */
export async function loadBalancer(cluster: TestCluster, namespace: string, name: string, hostname: string): Promise<RegistryAddress> {
  let address = '';
  await waitFor(`Service ${name}: load balancer address`, async () => {
    const got = await cluster.kubectl(['get', 'service', name, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'], { namespace });
    address = got.stdout.trim();
    return Boolean(address);
  }, 30_000);
  await waitForHostname(cluster, hostname, address);
  return { address, port: 443, lookup: hostnameLookup(hostname, address) };
}

/** Waits until the cluster's DNS answers the registry hostname with the address (CoreDNS' k8s_external). */
export async function waitForHostname(cluster: Pick<TestCluster, 'nodeDir' | 'assetsDir'>, hostname: string, address: string): Promise<void> {
  const { network } = nodeAccess(cluster);
  let answer: string | undefined;
  await waitFor(`${hostname} resolving to ${address} in the cluster DNS`, async () => (answer = await resolveInCluster(network, hostname)) === address, 30_000)
    .catch((error: Error) => {
      throw new Error(`${error.message} (last answer: ${answer ?? 'none'})`);
    });
}

/**
 * One pod's nginx front at its pod IP and container port, as a client in the cluster network
 * reaches it without the Service — which sends connections only to Ready pods.
 */
export function podNginx(pod: V1Pod, hostname: string): RegistryAddress {
  const address = pod.status?.podIP;
  if (!address) throw new Error(`pod ${pod.metadata?.name} has no pod IP`);
  return { address, port: NGINX_PORT, lookup: hostnameLookup(hostname, address) };
}

/**
 * Clients of one pod's front, each with a token for one repository (push, pull, delete) that the
 * test signs with the registry's token key (`<r>-auth-tls`): no docker_auth needed.
 */
export async function signedFrontClients(cluster: TestCluster, namespace: string, name: string, hostname: string, pod: V1Pod, subject: string): Promise<(repo: string) => RegistryClient> {
  const front = podNginx(pod, hostname);
  const caPem = await secretKey(cluster, namespace, `${name}-tls`, 'ca.crt');
  const keyPem = await secretKey(cluster, namespace, `${name}-auth-tls`, 'tls.key');
  return (repo) => {
    const token = signRegistryToken({ keyPem, issuer: tokenIssuer(hostname), audience: hostname, subject, access: [{ type: 'repository', name: repo, actions: ['push', 'pull', 'delete'] }], ttlSeconds: 3600 });
    return registryClient(front.address, front.port, caPem, token, hostname);
  };
}

/** A lookup that resolves the registry hostname, and nothing else, to address. */
function hostnameLookup(hostname: string, address: string): LookupFunction {
  return (host, options, callback) => {
    if (host.toLowerCase() !== hostname) return callback(new Error(`unexpected host ${host}`) as NodeJS.ErrnoException, '', 4);
    if (options.all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family: 4 }]);
    else callback(null, address, 4);
  };
}

export async function secretKey(cluster: TestCluster, namespace: string, name: string, key: string): Promise<string> {
  const value = (await requireObject<V1Secret>(cluster, 'secret', name, namespace)).data?.[key];
  if (!value) throw new Error(`Secret ${namespace}/${name} has no ${key}`);
  return Buffer.from(value, 'base64').toString('utf8');
}
