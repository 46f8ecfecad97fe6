// Job entry point (dist/rotate.js), run by the rotation CronJob every 24h or on demand with
// `kubectl create job --from=cronjob/image-registry-operator-rotate <name>`: reconciles every
// registry and gives every ImagePushSecret/ImagePullSecret a new account and Secret content.
import { runEntryPoint } from './entry-point.ts';
import { runReconcile } from './run-reconcile.ts';

runEntryPoint('rotate', () => runReconcile(process.argv.slice(2), process.env, { forceRotation: true }));
