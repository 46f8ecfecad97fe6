// The reconcile Job: reconcile the registries named by --registry <ns>/<name> (repeatable), or all.
// --not-before <ISO time>: the coalescing window's end; waiting for it means every admission of
// the window is stored before this Job reads.
import { parseArgs } from 'node:util';
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import { GROUP_VERSION, type ImageRegistry, type OperatorConfig } from '../functions/types.ts';
import { connectKube, type Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';
import { reconcileRegistry, type RegistryKey } from './reconcile-registry.ts';
import { listImageSecrets, markImageSecretsNotReady } from './reconcile-image-secrets.ts';
import { resolveRegistryRef } from '../functions/accounts.ts';

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

/** Every ImageRegistry, plus the registries push/pull CRs point to that do not exist (→ RegistryNotFound). */
async function everyRegistryKey(kube: Kube, config: OperatorConfig): Promise<RegistryKey[]> {
  const keys = new Map<string, RegistryKey>();
  for (const r of await kube.list<ImageRegistry>(GROUP_VERSION, 'ImageRegistry')) {
    keys.set(`${r.metadata.namespace}/${r.metadata.name}`, { namespace: r.metadata.namespace ?? '', name: r.metadata.name ?? '' });
  }
  for (const cr of await listImageSecrets(kube)) {
    const ref = resolveRegistryRef(cr, config);
    keys.set(`${ref.namespace}/${ref.name}`, ref);
  }
  return [...keys.values()];
}

export async function runReconcile(argv: string[], env: NodeJS.ProcessEnv, options: { forcedBefore?: Date } = {}): Promise<number> {
  const { registries, notBefore } = parseRegistryArgs(argv);
  const config = operatorConfigFromEnv(env);
  const rolloutTimeoutMs = config.rolloutTimeoutSeconds * 1000;
  const credentialsTimeoutMs = config.credentialsTimeoutSeconds * 1000;
  if (notBefore && notBefore.getTime() > Date.now()) await new Promise((resolve) => setTimeout(resolve, notBefore.getTime() - Date.now()));
  const kube = connectKube();
  const keys = registries.length > 0 ? registries : await everyRegistryKey(kube, config);
  let failures = 0;
  for (const key of keys) {
    try {
      const now = () => new Date();
      const result = await reconcileRegistry(key, { kube, config, now, rolloutTimeoutMs, credentialsTimeoutMs, ...(options.forcedBefore ? { forcedBefore: options.forcedBefore } : {}) });
      if (result === 'missing') await markImageSecretsNotReady(key, 'missing', { kube, config, now });
    } catch (error) {
      failures++;
      log('error', 'registry reconcile failed', { registry: `${key.namespace}/${key.name}`, error: errorMessage(error) });
    }
  }
  return failures === 0 ? 0 : 1;
}
