// The reconcile Job: reconcile the registries named by --registry <ns>/<name> (repeatable), or all.
// --not-before <ISO time>: the coalescing window's end; waiting for it means every admission of
// the window is stored before this Job reads.
import { parseArgs } from 'node:util';
import { registryOfCr } from '../functions/accounts.ts';
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { gather, registryKeys } from './gather.ts';
import { connectKube, type Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';
import { reconcileNodeTrust } from './node-trust-jobs.ts';
import { reconcileRegistry } from './reconcile-registry.ts';
import { reconcileServiceAccounts } from './service-accounts.ts';

export function parseRegistryArgs(argv: string[]): { registries: RegistryKey[]; notBefore?: Date } {
  const { values } = parseArgs({ args: argv, options: { registry: { type: 'string', multiple: true }, 'not-before': { type: 'string' } } });
  const registries = (values.registry ?? []).map((text) => {
    const [namespace, name, extra] = text.split('/');
    if (!namespace || !name || extra !== undefined) throw new Error(`--registry ${JSON.stringify(text)}: expected <namespace>/<name>`);
    return { namespace, name };
  });
  const notBefore = values['not-before'] ? new Date(values['not-before']) : undefined;
  if (notBefore && Number.isNaN(notBefore.getTime())) throw new Error(`--not-before ${JSON.stringify(values['not-before'])}: expected an ISO 8601 time`);
  return { registries, ...(notBefore ? { notBefore } : {}) };
}

export async function runReconcile(argv: string[], env: NodeJS.ProcessEnv, options: { forcedBefore?: Date; kube?: Kube } = {}): Promise<number> {
  const { registries, notBefore } = parseRegistryArgs(argv);
  const config = operatorConfigFromEnv(env);
  const rolloutTimeoutMs = config.rolloutTimeoutSeconds * 1000;
  const credentialsTimeoutMs = config.credentialsTimeoutSeconds * 1000;
  if (notBefore && notBefore.getTime() > Date.now()) await new Promise((resolve) => setTimeout(resolve, notBefore.getTime() - Date.now()));
  const kube = options.kube ?? connectKube();
  // one read of everything, for every registry of this run
  const gathered = await gather(kube, registries.length > 0 ? registries : undefined);
  const keys = registries.length > 0 ? registries : registryKeys(gathered, config);
  let failures = 0;
  // ServiceAccounts first: their entry does not wait for the registry (see service-accounts.ts)
  const named = new Set(keys.map((key) => `${key.namespace}/${key.name}`));
  const crs = gathered.imageSecrets.filter((cr) => {
    const ref = registryOfCr(cr, config);
    return named.has(`${ref.namespace}/${ref.name}`);
  });
  try {
    const result = await reconcileServiceAccounts(kube, crs);
    if (result.changed > 0) log('info', 'ServiceAccounts reconciled', { ...result });
  } catch (error) {
    failures++;
    log('error', 'ServiceAccount reconcile failed', { error: errorMessage(error) });
  }
  for (const key of keys) {
    try {
      await reconcileRegistry(key, { kube, config, now: () => new Date(), rolloutTimeoutMs, credentialsTimeoutMs, ...(options.forcedBefore ? { forcedBefore: options.forcedBefore } : {}) }, gathered);
    } catch (error) {
      failures++;
      log('error', 'registry reconcile failed', { registry: `${key.namespace}/${key.name}`, error: errorMessage(error) });
    }
  }
  // after the registries: their CAs as this run left them (new, renewed, gone)
  if (config.nodeTrustNamespace) {
    try {
      await reconcileNodeTrust(kube, config);
    } catch (error) {
      failures++;
      log('error', 'node trust failed', { error: errorMessage(error) });
    }
  }
  return failures === 0 ? 0 : 1;
}
