// Job entry point `node /app/dist/bootstrap.js`: creates or renews the webhook's serving
// CA/certificate Secret and injects the CA bundle into both webhook configurations. Run once at
// install (kustomize/bootstrap-job.yaml) and daily by the renewal CronJob; a run with nothing due
// writes nothing. Exit code 0 on success, 1 with a JSON error line otherwise (the Job retries).
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { connectKube } from './kube.ts';
import { ensureWebhookTls } from './webhook-tls.ts';

function log(event: Record<string, unknown>): void {
  console.log(JSON.stringify({ time: new Date().toISOString(), job: 'bootstrap', ...event }));
}

try {
  const config = operatorConfigFromEnv(process.env);
  await ensureWebhookTls({ kube: connectKube(), namespace: config.namespace, log });
} catch (error) {
  log({ level: 'error', msg: 'bootstrap failed', error: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
}
