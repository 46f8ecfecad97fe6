// Job entry point (dist/node-trust.js) of the node-trust Jobs (functions/node-trust.ts): writes the
// set in NODE_TRUST_SET into the node's certs.d directories, mounted at their node paths
// (TRUST_ROOTS). No Kubernetes API access: the reconcile that started the Job records the result.
import { NODE_TRUST_SET_ENV, TRUST_ROOTS, decodeTrustSet } from '../functions/node-trust.ts';
import { runEntryPoint } from './entry-point.ts';
import { log } from './log.ts';
import { applyNodeTrust } from './node-trust-files.ts';

runEntryPoint('node-trust', async () => {
  const text = process.env[NODE_TRUST_SET_ENV];
  if (!text) throw new Error(`${NODE_TRUST_SET_ENV} is not set`);
  const registries = decodeTrustSet(text);
  const result = applyNodeTrust(TRUST_ROOTS, registries);
  for (const dir of result.foreign) log('warn', 'a certs.d directory of someone else has this registry\'s hostname: left as it is, so this runtime may not trust the registry', { dir });
  log('info', 'node trust written', { registries: registries.length, written: result.written.length, removed: result.removed, merged: result.merged, unmerged: result.unmerged });
  return 0;
});
