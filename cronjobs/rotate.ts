// Job entry point (dist/rotate.js), run by the rotation CronJob every 24h or on demand with
// `kubectl create job --from=cronjob/image-registry-operator-rotate <name>`: reconciles every
// registry and replaces the credentials of every ImagePushSecret/ImagePullSecret issued before the
// Job was created. Keying the rotation to the Job (JOB_NAME, from the pod's job-name label) and not
// to the process makes a retried attempt finish the rotation instead of rotating again.
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { runEntryPoint } from './entry-point.ts';
import { connectKube } from './kube.ts';
import { runReconcile } from './run-reconcile.ts';

async function rotationRequestedAt(env: NodeJS.ProcessEnv): Promise<Date> {
  if (!env.JOB_NAME) return new Date();
  const namespace = operatorConfigFromEnv(env).namespace;
  const job = await connectKube().read<{ metadata: { creationTimestamp?: string } }>({ apiVersion: 'batch/v1', kind: 'Job', namespace, name: env.JOB_NAME });
  return job?.metadata.creationTimestamp ? new Date(job.metadata.creationTimestamp) : new Date();
}

runEntryPoint('rotate', async () =>
  runReconcile(process.argv.slice(2), process.env, { forcedBefore: await rotationRequestedAt(process.env) }));
