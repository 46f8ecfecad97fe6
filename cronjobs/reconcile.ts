// Job entry point (dist/reconcile.js): see run-reconcile.ts for the arguments.
import { runEntryPoint } from './entry-point.ts';
import { runReconcile } from './run-reconcile.ts';

runEntryPoint('reconcile', () => runReconcile(process.argv.slice(2), process.env));
