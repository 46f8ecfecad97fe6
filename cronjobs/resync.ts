// Job entry point (dist/resync.js), run hourly by the resync CronJob: the safety net. Reconciles
// every registry — certificate renewal, expired and revoked accounts, push/pull secrets of
// registries that do not exist, admissions whose Job was missed. (The webhook's own certificate is
// renewed by the CronJob image-registry-operator-webhook-tls, which holds the narrow RBAC for it.)
import { runEntryPoint } from './entry-point.ts';
import { runReconcile } from './run-reconcile.ts';

runEntryPoint('resync', () => runReconcile(process.argv.slice(2), process.env));
