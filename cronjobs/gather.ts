// Step 1 of a reconcile: read, once, everything the run needs to decide. A Job reconciling every
// registry (the rotation, the resync) makes the same few cluster-wide LISTs whatever the number of
// registries; a Job for named registries lists within their namespaces.
//
// Order matters: the auth config Secrets before the accounts (a write with the Secret's version from
// before the list loses against any writer that created an account the list missed, see
// auth-config.ts), and the accounts before the CRs (a CR list taken later holds the owner of every
// listed account, so a fresh account is never taken for a deleted CR's).
import type { V1Secret } from '@kubernetes/client-node';
import { ANY_REGISTRY_SELECTOR, authConfigSecretName, registryConfigSecretName } from '../functions/names.ts';
import { registryOfCr } from '../functions/accounts.ts';
import { REGISTRY_LABEL, registryLabelValue, type RegistryKey } from '../functions/reconcile-job.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount, type ImageSecret, type OperatorConfig } from '../functions/types.ts';
import type { Kube } from './kube.ts';

export const IMAGE_SECRET_KINDS = ['ImagePushSecret', 'ImagePullSecret'] as const;


export interface Gathered {
  registries: ReadonlyMap<string, ImageRegistry>;
  /** the auth config and registry config Secrets, by `<namespace>/<name>` */
  configSecrets: ReadonlyMap<string, V1Secret>;
  accounts: readonly ImageRegistryAccount[];
  /** every push/pull CR of the cluster */
  imageSecrets: readonly ImageSecret[];
  /** the push/pull Secrets, by `<namespace>/<name>` */
  pushPullSecrets: ReadonlyMap<string, V1Secret>;
}

/** What one registry's reconcile reads from a Gathered. */
export interface RegistryInputs {
  registry: ImageRegistry | undefined;
  authConfigSecret: V1Secret | undefined;
  registryConfigSecret: V1Secret | undefined;
  accounts: ImageRegistryAccount[];
  imageSecrets: readonly ImageSecret[];
  pushPullSecrets: ReadonlyMap<string, V1Secret>;
}

/** Every registry, or the named ones (`keys`). */
export async function gather(kube: Kube, keys?: readonly RegistryKey[]): Promise<Gathered> {
  const namespaces = keys ? [...new Set(keys.map((k) => k.namespace))] : [undefined];
  const configSecrets = (await Promise.all(namespaces.map((ns) => kube.list<V1Secret>('v1', 'Secret', ns, ANY_REGISTRY_SELECTOR)))).flat();
  const accounts = (await Promise.all(namespaces.map((ns) => kube.list<ImageRegistryAccount>(GROUP_VERSION, 'ImageRegistryAccount', ns)))).flat();
  const imageSecrets = (await Promise.all(IMAGE_SECRET_KINDS.map((kind) => kube.list<ImageSecret>(GROUP_VERSION, kind)))).flat();
  const registries = keys
    ? (await Promise.all(keys.map((key) => kube.read<ImageRegistry>({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', ...key })))).filter((r): r is ImageRegistry => r !== undefined)
    : await kube.list<ImageRegistry>(GROUP_VERSION, 'ImageRegistry');
  const pushPullSecrets = keys
    ? (await Promise.all(keys.map((key) => kube.list<V1Secret>('v1', 'Secret', undefined, `${REGISTRY_LABEL}=${registryLabelValue(key)}`)))).flat()
    : await kube.list<V1Secret>('v1', 'Secret', undefined, REGISTRY_LABEL);
  return {
    registries: new Map(registries.map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r])),
    configSecrets: byNamespacedName(configSecrets),
    accounts,
    imageSecrets,
    pushPullSecrets: byNamespacedName(pushPullSecrets),
  };
}

/** Every ImageRegistry, plus the registries push/pull CRs point to that do not exist (→ RegistryNotFound). */
export function registryKeys(gathered: Gathered, config: OperatorConfig): RegistryKey[] {
  const keys = new Map<string, RegistryKey>();
  for (const r of gathered.registries.values()) keys.set(`${r.metadata.namespace}/${r.metadata.name}`, { namespace: r.metadata.namespace ?? '', name: r.metadata.name ?? '' });
  for (const cr of gathered.imageSecrets) {
    const ref = registryOfCr(cr, config);
    keys.set(`${ref.namespace}/${ref.name}`, ref);
  }
  return [...keys.values()];
}

export function registryInputs(gathered: Gathered, key: RegistryKey): RegistryInputs {
  const label = registryLabelValue(key);
  return {
    registry: gathered.registries.get(`${key.namespace}/${key.name}`),
    authConfigSecret: gathered.configSecrets.get(`${key.namespace}/${authConfigSecretName(key.name)}`),
    registryConfigSecret: gathered.configSecrets.get(`${key.namespace}/${registryConfigSecretName(key.name)}`),
    accounts: gathered.accounts.filter((a) => a.metadata.namespace === key.namespace),
    imageSecrets: gathered.imageSecrets,
    pushPullSecrets: new Map([...gathered.pushPullSecrets].filter(([, s]) => s.metadata?.labels?.[REGISTRY_LABEL] === label)),
  };
}

function byNamespacedName(secrets: readonly V1Secret[]): Map<string, V1Secret> {
  return new Map(secrets.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
}
