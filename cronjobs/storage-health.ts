// Asks each running registry pod — by its IP, through its nginx, as the credential check does —
// whether the registry's storage health check fails (it then answers 503), and reads the failure
// from the registry's log (`kubectl logs`: the registry's own words, not exposed on any port), so
// that a bucket with wrong credentials, a missing bucket or an unreachable endpoint shows as
// Ready=False with that message instead of a pod that looks ready until its check has failed often
// enough for the readiness probe.
import { REGISTRY_HEALTH_PATH } from '../functions/nginx-config.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { STORAGE_HEALTH_WINDOW_MS, storageHealthProblem, type PodHealthAnswer } from '../functions/registry-storage.ts';
import type { RegistryProblem } from '../functions/registry-status.ts';
import { registryPods } from './credential-check.ts';
import type { Kube } from './kube.ts';
import { podFrontRequest } from './pod-front.ts';

interface RunningPod {
  metadata: { name: string; deletionTimestamp?: unknown };
  status?: { podIP?: string; containerStatuses?: { name: string; state?: { running?: { startedAt?: string | Date } } }[] };
}

/**
 * The storage problem the running pods' registries report, or undefined. Waits (at most the
 * health check's window) until each registry container has run long enough for its check to fail.
 */
export async function storageHealth(kube: Kube, key: RegistryKey, tls: { hostname: string; caPem: string }, secrets: readonly string[], now: () => Date): Promise<RegistryProblem | undefined> {
  const pods = (await registryPods(kube, key)) as unknown as RunningPod[];
  const running = pods.flatMap((pod) => {
    const startedAt = pod.status?.containerStatuses?.find((c) => c.name === 'registry')?.state?.running?.startedAt;
    return pod.status?.podIP && startedAt && !pod.metadata.deletionTimestamp ? [{ name: pod.metadata.name, ip: pod.status.podIP, startedAt: new Date(startedAt).getTime() }] : [];
  });
  if (running.length === 0) return undefined;
  const youngest = Math.max(...running.map((p) => p.startedAt));
  const wait = youngest + STORAGE_HEALTH_WINDOW_MS - now().getTime();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, STORAGE_HEALTH_WINDOW_MS)));
  const answers: PodHealthAnswer[] = await Promise.all(running.map(async (pod) => {
    const status = await healthStatus(pod.ip, tls);
    if (status !== 503) return { pod: pod.name, status };
    const log = await kube.containerLog(key.namespace, pod.name, 'registry', LOG_LINES).catch(() => undefined);
    return { pod: pod.name, status, ...(log ? { log } : {}) };
  }));
  return storageHealthProblem(answers, secrets);
}

const LOG_LINES = 50;

async function healthStatus(ip: string, tls: { hostname: string; caPem: string }): Promise<number> {
  return (await podFrontRequest({ host: ip, ...tls }, { path: REGISTRY_HEALTH_PATH })).status;
}
