// The test cluster's DNS: CoreDNS (built from its Go module, test/binaries/coredns/) as a pod on the
// real node, deployed the way kubeadm deploys it — Deployment `coredns` and Service `kube-dns` in
// kube-system on the node's DNS ClusterIP, which the kubelet gives every pod (clusterDNS) and the
// node's own /etc/resolv.conf names, so containerd's image pulls resolve through it too. Its
// Corefile is the README's sample (kustomize/coredns-k8s-external.yaml): `kubernetes` for Service
// names and `k8s_external` for `<service>.<namespace>.<zone>` → the LoadBalancer address — the
// registry hostnames. Only `forward` is left out: there is nothing upstream (no default route), and
// the node's resolv.conf, the one CoreDNS would forward to, names CoreDNS itself.
import { readFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { load } from 'js-yaml';
import type { TestCluster } from '../cluster.ts';
import { applyObjects, serverSide } from '../kubectl.ts';
import { waitFor } from '../processes.ts';
import type { NodeNetwork } from './network.ts';

const NAMESPACE = 'kube-system';
const LABELS = { 'k8s-app': 'kube-dns' };

/**
 * The name of the tests' own registry outside the cluster (an upstream of a pull-through cache,
 * as Docker Hub is one): it serves on the root end of the node's veth (NodeNetwork.hostAddress).
 */
export const UPSTREAM_REGISTRY_HOST = 'upstream.test';

/**
 * The sample's Corefile without `forward`, with a `hosts` block for the names of the tests' servers
 * outside the cluster (UPSTREAM_REGISTRY_HOST): what `forward` to a company resolver answers in a
 * cluster of its own.
 */
export function testCorefile(repoRoot: string, externalHosts: Readonly<Record<string, string>> = {}): string {
  const sample = load(readFileSync(join(repoRoot, 'kustomize', 'coredns-k8s-external.yaml'), 'utf8')) as { data: { Corefile: string } };
  const lines = sample.data.Corefile.split('\n').filter((line) => !/^\s*forward\s/.test(line));
  const entries = Object.entries(externalHosts);
  if (entries.length === 0) return lines.join('\n');
  const at = lines.findIndex((line) => /^\s*kubernetes\s/.test(line));
  const hosts = ['        hosts {', ...entries.map(([name, address]) => `            ${address} ${name}`), '            fallthrough', '        }'];
  return [...lines.slice(0, at), ...hosts, ...lines.slice(at)].join('\n');
}

/** kubeadm's CoreDNS objects (cmd/kubeadm/app/phases/addons/dns/manifests.go), one replica. */
function corednsObjects(image: string, corefile: string, dnsServiceIp: string): object[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: NAMESPACE } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: NAMESPACE }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: NAMESPACE }, data: { Corefile: corefile } },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'coredns', namespace: NAMESPACE, labels: LABELS },
      spec: {
        replicas: 1,
        selector: { matchLabels: LABELS },
        template: {
          metadata: { labels: LABELS },
          spec: {
            serviceAccountName: 'coredns',
            priorityClassName: 'system-cluster-critical',
            // its own resolv.conf is the node's, which names this Service: no ClusterFirst loop
            dnsPolicy: 'Default',
            containers: [{
              name: 'coredns', image, imagePullPolicy: 'IfNotPresent',
              args: ['-conf', '/etc/coredns/Corefile'],
              ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' }],
              livenessProbe: { httpGet: { path: '/health', port: 8080 }, initialDelaySeconds: 60, timeoutSeconds: 5, failureThreshold: 5 },
              readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1 },
              // the image's /coredns carries cap_net_bind_service; no_new_privs keeps it to this bounding set
              securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] }, readOnlyRootFilesystem: true },
              volumeMounts: [{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }],
            }],
            volumes: [{ name: 'config-volume', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: NAMESPACE, labels: LABELS },
      spec: {
        selector: LABELS, clusterIP: dnsServiceIp,
        ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }],
      },
    },
  ];
}

/** Deploys CoreDNS and waits until it answers for `kubernetes` through its ClusterIP from the host. */
export async function startClusterDns(cluster: Pick<TestCluster, 'kubectl'>, options: { repoRoot: string; image: string; network: NodeNetwork }): Promise<void> {
  const { network } = options;
  const corefile = testCorefile(options.repoRoot, { [UPSTREAM_REGISTRY_HOST]: network.hostAddress });
  await applyObjects(cluster, corednsObjects(options.image, corefile, network.dnsServiceIp), '', serverSide('tests'));
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([network.dnsServiceIp]);
  const answers = async () => {
    try {
      return (await resolver.resolve4('kubernetes.default.svc.cluster.local')).includes(network.kubernetesServiceIp);
    } catch {
      return false;
    }
  };
  try {
    await waitFor('CoreDNS answering through its ClusterIP', answers, 60_000);
  } catch (error) {
    const pods = await cluster.kubectl(['get', 'pods', '-n', NAMESPACE, '-l', 'k8s-app=kube-dns', '-o', 'wide']);
    const logs = await cluster.kubectl(['logs', '-n', NAMESPACE, 'deployment/coredns', '--tail', '20']);
    throw new Error(`${(error as Error).message}\n${pods.stdout}${pods.stderr}\n${logs.stdout}${logs.stderr}`);
  }
}

/** Resolves a name through the node's cluster DNS, as the node and its pods do; undefined when it has no address. */
export async function resolveInCluster(network: NodeNetwork, hostname: string): Promise<string | undefined> {
  const resolver = new Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers([network.dnsServiceIp]);
  try {
    return (await resolver.resolve4(hostname))[0];
  } catch {
    return undefined;
  }
}
