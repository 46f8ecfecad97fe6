// Confirms that every ready registry pod has loaded an auth config write: asks each pod — by its
// IP, not through the Service, which balances between pods — for a token with the write's
// confirmation login (auth-config.ts), until all accept it or time runs out.
//
// The pods are found by name: a StatefulSet's pods are `<statefulset>-<ordinal>`, so a few GETs
// replace a LIST per registry (a rotation of every registry makes the same LISTs for 1 or 50).
import { AUTH_CONFIG_VERSION_ANNOTATION, tokenProbePath, type CredentialCheckOutcome, type PodLike, type RegistryPod } from '../functions/credential-check.ts';
import { statefulSetName } from '../functions/names.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import type { StatefulSetState } from '../functions/registry-status.ts';
import type { Kube } from './kube.ts';
import { podFrontRequest } from './pod-front.ts';
import { errorMessage, log } from './log.ts';

export interface ConfirmInput {
  hostname: string;
  /** the CA that verifies the registry's serving certificate */
  caPem: string;
  login: { username: string; password: string };
  timeoutMs: number;
}

const RETRY_MS = 250;

type Pod = PodLike & { metadata: { name: string } };

/** The registry's pods that exist now, by the StatefulSet's replica counts. */
export async function registryPods(kube: Kube, key: RegistryKey): Promise<Pod[]> {
  const name = statefulSetName(key.name);
  const statefulSet = await kube.read<StatefulSetState>({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: key.namespace, name });
  if (!statefulSet) return [];
  // during a scale-down status.replicas still counts the pods that are going
  const count = Math.max(statefulSet.spec?.replicas ?? 1, statefulSet.status?.replicas ?? 0);
  const pods = await Promise.all(Array.from({ length: count }, (_, i) => kube.read<Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: key.namespace, name: `${name}-${i}` })));
  return pods.filter((pod): pod is Pod => pod !== undefined);
}

/**
 * Annotates the pods with a config's version (server-side apply of one annotation; default the auth
 * config's) so that their kubelets sync changed volumes now; a pod deleted meanwhile is skipped.
 */
export async function touchRegistryPods(kube: Kube, key: RegistryKey, version: string, annotation = AUTH_CONFIG_VERSION_ANNOTATION): Promise<void> {
  const pods = await registryPods(kube, key);
  await Promise.all(pods.map(async ({ metadata: { name } }) => {
    try {
      await kube.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: key.namespace, annotations: { [annotation]: version } } });
    } catch (error) {
      log('warn', 'cannot annotate registry pod; its kubelet syncs the new config at its next periodic sync', { pod: `${key.namespace}/${name}`, error: errorMessage(error) });
    }
  }));
}

/** `ready`: the registry's ready pods as just read (readyRegistryPods of registryPods). */
export async function confirmWrite(key: RegistryKey, ready: readonly RegistryPod[], input: ConfirmInput): Promise<CredentialCheckOutcome> {
  const started = Date.now();
  if (ready.length === 0) return { outcome: 'no-ready-pod' };
  const waiting = new Set(ready.map((p) => p.name));
  for (;;) {
    await Promise.all(ready.filter((p) => waiting.has(p.name)).map(async (pod) => {
      if (await accepts(pod.ip, input)) waiting.delete(pod.name);
    }));
    if (waiting.size === 0) {
      log('info', 'auth config confirmed by every ready registry pod', { registry: `${key.namespace}/${key.name}`, pods: ready.length, ms: Date.now() - started });
      return { outcome: 'confirmed', pods: ready.map((p) => p.name) };
    }
    if (Date.now() - started >= input.timeoutMs) {
      return { outcome: 'timeout', pods: ready.map((p) => p.name), refusing: [...waiting], waitedSeconds: Math.round((Date.now() - started) / 1000) };
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** One token request through the pod's nginx, verified with the registry CA under its hostname. */
async function accepts(ip: string, input: ConfirmInput): Promise<boolean> {
  const { username, password } = input.login;
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const answer = await podFrontRequest({ host: ip, hostname: input.hostname, caPem: input.caPem }, { path: tokenProbePath(input.hostname, username), headers: { authorization } });
  return answer.status === 200;
}
