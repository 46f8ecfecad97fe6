// The controller half of node trust (functions/node-trust.ts), run at the end of every reconcile,
// resync and rotation Job when the operator config names a node-trust namespace
// (kustomize/node-trust sets OPERATOR_NODE_TRUST_NAMESPACE): reads every registry's CA, compares
// the set's digest with each Node's annotation and starts a node-trust Job on each node that lacks
// it; then waits a little for them and records on each Node what its Job wrote. Cheap when nothing
// changed: one list of registries, their TLS Secrets, one list of Nodes and one of Jobs.
import type { V1Node } from '@kubernetes/client-node';
import { registryHostname } from '../functions/names.ts';
import { servingCa } from './certificates.ts';
import {
  NODE_TRUST_ANNOTATION,
  NODE_TRUST_NODE_ANNOTATION,
  desiredNodeTrustJob,
  normalizeTrustSet,
  nodeTrustDecisions,
  trustSetDigest,
  type NodeState,
  type NodeTrustJobState,
  type TrustedRegistry,
} from '../functions/node-trust.ts';
import { mirrorHosts } from '../functions/pull-through-cache.ts';
import { GROUP_VERSION, type ImageRegistry, type OperatorConfig } from '../functions/types.ts';
import { recordRegistryEvent } from './events.ts';
import { isConflict, type Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';

/** How long a reconcile waits for its node-trust Jobs (a Job pod starts and writes in a few seconds); the resync records the slower ones. */
export const NODE_TRUST_WAIT_MS = 30_000;

interface JobObject {
  metadata: { name?: string; annotations?: Record<string, string> };
  status?: { conditions?: { type: string; status: string }[]; completionTime?: string };
}

export async function reconcileNodeTrust(kube: Kube, config: OperatorConfig, options: { waitMs?: number; now?: () => Date } = {}): Promise<void> {
  const namespace = config.nodeTrustNamespace;
  if (!namespace) return;
  const now = options.now ?? (() => new Date());
  const { set, registries } = await trustSet(kube, config);
  const digest = trustSetDigest(set);
  const deadline = Date.now() + (options.waitMs ?? NODE_TRUST_WAIT_MS);
  const started = new Set<string>();
  const recorded: string[] = [];
  for (;;) {
    const nodes = await kube.list<V1Node>('v1', 'Node');
    const jobs = (await kube.list<JobObject>('batch/v1', 'Job', namespace, 'app.kubernetes.io/component=node-trust')).map(jobState);
    const decisions = nodeTrustDecisions(nodes.map(nodeState), jobs, digest);
    for (const decision of decisions) {
      if (decision.action === 'record') {
        await kube.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: decision.node, annotations: { [NODE_TRUST_ANNOTATION]: digest } } });
        recorded.push(decision.node);
      } else if (decision.action === 'start' && !started.has(decision.job)) {
        if (decision.replace) await kube.remove({ apiVersion: 'batch/v1', kind: 'Job', namespace, name: decision.job }, { propagationPolicy: 'Background' });
        try {
          await kube.create(desiredNodeTrustJob({ node: decision.node, registries: set, config: { ...config, nodeTrustNamespace: namespace } }));
          started.add(decision.job);
        } catch (error) {
          // another reconcile started it, or the replaced one is still being deleted: the next round sees which
          if (!isConflict(error)) throw error;
        }
      }
    }
    const pending = decisions.filter((d) => d.action === 'start' || d.action === 'wait');
    const notReady = decisions.filter((d) => d.action === 'skip-not-ready').map((d) => d.node);
    if (pending.length === 0 || Date.now() >= deadline) {
      if (started.size || recorded.length || pending.length || notReady.length) {
        log(pending.length ? 'warn' : 'info', 'node trust', { digest: digest.slice(0, 12), registries: set.length, started: started.size, recorded, pending: pending.map((d) => d.node), notReady });
      }
      if (started.size) await warnAboutContainerd1(kube, registries, nodes, now());
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/** Every registry's hostname and CA (its TLS Secret's ca.crt, or the certificate itself when it has none, as the push/pull Secrets hand out). */
async function trustSet(kube: Kube, config: OperatorConfig): Promise<{ set: TrustedRegistry[]; registries: ImageRegistry[] }> {
  const registries = (await kube.list<ImageRegistry>(GROUP_VERSION, 'ImageRegistry')).filter((r) => !r.metadata.deletionTimestamp);
  const set: TrustedRegistry[] = [];
  for (const registry of registries) {
    const { name = '', namespace = '' } = registry.metadata;
    const caPem = await servingCa(kube, registry);
    if (!caPem) continue; // no certificate yet: its reconcile comes back here once it has one
    const proxy = registry.spec?.proxy;
    const mirrorFor = mirrorHosts(registry);
    const entry: TrustedRegistry = {
      hostname: registry.status?.hostname || registryHostname(name, namespace, config.dnsZone),
      caPem,
      // a pull-through cache the nodes pull through (spec.proxy.mirrorFor), the upstream the fallback
      ...(proxy && mirrorFor.length ? { mirror: { hosts: mirrorFor, server: new URL(proxy.remoteURL).origin } } : {}),
    };
    try {
      normalizeTrustSet([entry]);
      set.push(entry);
    } catch (error) {
      log('warn', 'registry left out of node trust', { registry: `${namespace}/${name}`, error: errorMessage(error) });
    }
  }
  return { set, registries };
}


function nodeState(node: V1Node): NodeState {
  const digest = node.metadata?.annotations?.[NODE_TRUST_ANNOTATION];
  const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  const created = node.metadata?.creationTimestamp as unknown as string | undefined;
  return { name: node.metadata?.name ?? '', ready, ...(digest ? { digest } : {}), ...(created ? { createdAt: created } : {}) };
}

function jobState(job: JobObject): NodeTrustJobState {
  const condition = (type: string) => job.status?.conditions?.some((c) => c.type === type && c.status === 'True');
  const state = condition('Complete') ? 'complete' : condition('Failed') ? 'failed' : 'active';
  return {
    name: job.metadata.name ?? '',
    node: job.metadata.annotations?.[NODE_TRUST_NODE_ANNOTATION] ?? '',
    digest: job.metadata.annotations?.[NODE_TRUST_ANNOTATION] ?? '',
    state,
    ...(job.status?.completionTime ? { completedAt: job.status.completionTime } : {}),
  };
}

export const NODE_TRUST_CONFIG_PATH_REASON = 'NodeTrustCheckConfigPath';

/**
 * containerd before 2.0 reads certs.d only where its config sets the registry config_path, which a
 * Job cannot see from inside (the config may live anywhere, k3s and others generate their own).
 * When this run wrote trust to such nodes, each registry says which, and the one line to add — a
 * reminder (Normal), not a finding: the nodes may well have it.
 */
async function warnAboutContainerd1(kube: Kube, registries: readonly ImageRegistry[], nodes: readonly V1Node[], now: Date): Promise<void> {
  const old = nodes.filter((n) => /^containerd:\/\/v?1\./.test(n.status?.nodeInfo?.containerRuntimeVersion ?? '')).map((n) => n.metadata?.name ?? '');
  if (old.length === 0) return;
  const message = `node trust wrote this registry's CA to /etc/containerd/certs.d on nodes running containerd 1.x (${old.join(', ')}): `
    + 'their containerd reads it only if its config.toml sets config_path = "/etc/containerd/certs.d" under [plugins."io.containerd.grpc.v1.cri".registry] (default in containerd 2.x)';
  for (const registry of registries) await recordRegistryEvent(kube, registry, 'Normal', NODE_TRUST_CONFIG_PATH_REASON, message, now);
}
