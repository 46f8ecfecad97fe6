// Job entry point `node /app/dist/bootstrap.js`: creates or renews the webhook's serving
// CA/certificate Secret and injects the CA bundle into both webhook configurations. Run once at
// install (kustomize/bootstrap-job.yaml) and daily by the renewal CronJob; a run with nothing due
// writes nothing. Exit code 0 on success, 2 with a JSON error line otherwise (the Job retries), as
// every Job.
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { runEntryPoint } from './entry-point.ts';
import { connectKube } from './kube.ts';
import { log } from './log.ts';
import { ensureWebhookTls } from './webhook-tls.ts';

runEntryPoint('bootstrap', async () => {
  const config = operatorConfigFromEnv(process.env);
  await ensureWebhookTls({ kube: connectKube(), namespace: config.namespace, log });
  return 0;
});
