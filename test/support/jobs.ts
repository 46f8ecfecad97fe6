// Waiting for Jobs the real Job controller runs (on the kubelet stand-in), the way a person would:
// the Job's conditions and `kubectl logs` of its pods.
import type { TestCluster } from './cluster.ts';
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
    const got = await cluster.kubectl(['get', 'job', name, '-o', 'json'], { namespace });
    const job = got.code === 0 ? (JSON.parse(got.stdout) as { status?: { conditions?: { type: string; status: string }[] } }) : undefined;
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
  const listed = await cluster.kubectl(['get', 'pods', '-l', `batch.kubernetes.io/job-name=${name}`, '--sort-by=.metadata.creationTimestamp', '-o', 'json'], { namespace });
  const pods = listed.code === 0 ? (JSON.parse(listed.stdout) as { items: Record<string, any>[] }).items : [];
  let logs = '';
  for (const pod of pods) logs += (await cluster.kubectl(['logs', pod.metadata.name], { namespace })).stdout;
  return { logs, pods };
}
