// Waiting for Jobs the real Job controller runs (on the real node), the way a person would:
// the Job's conditions and `kubectl logs` of its pods.
import type { TestCluster } from './cluster.ts';
import { getObject, listObjects } from './kubectl.ts';
import { delay } from './processes.ts';

export interface FinishedJob {
  result: 'Complete' | 'Failed';
  /** the logs of every pod of the Job, oldest first */
  logs: string;
  /** the Job's pods as stored (spec, status) */
  pods: Record<string, any>[];
}

/** Waits for the Job to be Complete or Failed; throws after timeoutMs with what its pods logged. */
export async function waitForJob(cluster: TestCluster, namespace: string, name: string, timeoutMs = 120_000): Promise<FinishedJob> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getObject<{ status?: { conditions?: { type: string; status: string }[] } }>(cluster, 'job', name, namespace);
    const done = job?.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    if (done) return { result: done.type as FinishedJob['result'], ...(await jobPodsAndLogs(cluster, namespace, name)) };
    if (Date.now() > deadline) {
      const { logs } = await jobPodsAndLogs(cluster, namespace, name);
      throw new Error(`Job ${namespace}/${name} ${job ? 'not finished' : 'not found'} after ${timeoutMs} ms; logs:\n${logs}`);
    }
    await delay(250);
  }
}

export async function jobPodsAndLogs(cluster: TestCluster, namespace: string, name: string): Promise<{ logs: string; pods: Record<string, any>[] }> {
  // a failed list means no pods and no logs to show, not a failed wait
  const pods = await listObjects(cluster, 'pods', namespace, { selector: `batch.kubernetes.io/job-name=${name}`, sortBy: '.metadata.creationTimestamp' }).catch(() => []);
  let logs = '';
  for (const pod of pods) logs += (await cluster.kubectl(['logs', pod.metadata.name], { namespace })).stdout;
  return { logs, pods };
}
