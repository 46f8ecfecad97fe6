// Job entry point (dist/resync.js), run hourly by the resync CronJob: the safety net. Renews the
// webhook's serving certificate when due, then reconciles every registry — certificates, expired
// and revoked accounts, push/pull secrets of registries that do not exist, missed admissions.
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { runEntryPoint } from './entry-point.ts';
import { connectKube } from './kube.ts';
import { errorMessage, log } from './log.ts';
import { runReconcile } from './run-reconcile.ts';
import { ensureWebhookTls } from './webhook-tls.ts';

runEntryPoint('resync', async () => {
  const config = operatorConfigFromEnv(process.env);
  let webhookFailed = false;
  try {
    const result = await ensureWebhookTls({ kube: connectKube(), namespace: config.namespace, log: (event) => log('info', 'webhook tls', event) });
    if (result.secret !== 'unchanged' || result.injected.length) log('info', 'webhook certificate renewed', { secret: result.secret, injected: result.injected });
  } catch (error) {
    // registries still get reconciled; the Job fails afterwards so the failure is visible
    webhookFailed = true;
    log('error', 'webhook certificate renewal failed', { error: errorMessage(error) });
  }
  const code = await runReconcile(process.argv.slice(2), process.env);
  return webhookFailed ? 1 : code;
});
