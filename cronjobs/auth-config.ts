// Writes the docker_auth config Secret from the live ImageRegistryAccounts with optimistic
// concurrency: read the Secret's resourceVersion BEFORE listing the accounts, write with it, and on
// a conflict start over. Any writer whose list missed an account loses the race to the writer that
// created it, so concurrent Jobs never drop an account from the config.
import type { V1Secret } from '@kubernetes/client-node';
import { SECRET_DATA_LIMIT_BYTES, secretDataBytes } from '../functions/docker-auth-config.ts';
import { authConfigSecretName } from '../functions/names.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount } from '../functions/types.ts';
import { recordEvent } from './events.ts';
import { isConflict, type Kube } from './kube.ts';

/**
 * Builds [authConfigSecret, registryConfigSecret] from the accounts and the auth config Secret as
 * this attempt read it (its token keys are carried forward or advanced from exactly that state).
 */
export type ConfigSecretsBuilder = (accounts: readonly ImageRegistryAccount[], current: V1Secret | undefined) => [V1Secret, V1Secret];

const MAX_ATTEMPTS = 20;

export async function writeAuthConfig(
  kube: Kube,
  registry: ImageRegistry,
  build: ConfigSecretsBuilder,
  exclude: (account: ImageRegistryAccount) => boolean = () => false,
): Promise<{ changed: boolean; accounts: number; resourceVersion: string }> {
  const namespace = registry.metadata.namespace ?? '';
  const name = authConfigSecretName(registry.metadata.name ?? '');
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const current = await kube.read<V1Secret & { apiVersion: string; kind: string }>({ apiVersion: 'v1', kind: 'Secret', namespace, name });
    const accounts = (await kube.list<ImageRegistryAccount & { apiVersion: string; kind: string }>(GROUP_VERSION, 'ImageRegistryAccount', namespace)).filter((a) => !exclude(a));
    const [desired] = build(accounts, current);
    const annotations = { ...current?.metadata?.annotations, ...desired.metadata?.annotations };
    if (current && sameData(current.data, desired.data) && sameData(current.metadata?.annotations, annotations)) {
      return { changed: false, accounts: accounts.length, resourceVersion: current.metadata?.resourceVersion ?? '' };
    }
    await refuseOversized(kube, registry, desired, accounts.length);
    try {
      const metadata = { ...current?.metadata, labels: desired.metadata?.labels, annotations, ownerReferences: desired.metadata?.ownerReferences };
      const written: V1Secret = current
        ? await kube.replace({ ...current, type: desired.type, data: desired.data, metadata })
        : await kube.create(desired);
      return { changed: true, accounts: accounts.length, resourceVersion: written.metadata?.resourceVersion ?? '' };
    } catch (error) {
      if (!isConflict(error)) throw error;
      // another writer got there first: back off a little (jitter spreads the retries) and re-read
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * attempt));
    }
  }
  throw new Error(`Secret ${namespace}/${name}: gave up after ${MAX_ATTEMPTS} conflicting writes`);
}

export const AUTH_CONFIG_TOO_LARGE = 'AuthConfigTooLarge';

/**
 * The API server would refuse the write with a bare "Too long"; say instead what it means and what
 * to do, on the registry (Warning Event) and in the Job's error. Nothing is written, so no Secret
 * ever hands out credentials the auth config does not hold.
 */
async function refuseOversized(kube: Kube, registry: ImageRegistry, desired: V1Secret, accounts: number): Promise<void> {
  const bytes = secretDataBytes(desired.data);
  if (bytes <= SECRET_DATA_LIMIT_BYTES) return;
  const message =
    `the docker_auth config of ${accounts} accounts is ${bytes} bytes, over the ${SECRET_DATA_LIMIT_BYTES}-byte Secret limit ` +
    `(about 5,500 accounts: each push/pull CR holds 2); spread the push/pull secrets over more registries or delete unused ImageRegistryAccounts`;
  await recordEvent(kube, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: registry.metadata }, 'Warning', AUTH_CONFIG_TOO_LARGE, message, new Date());
  throw new Error(`Secret ${desired.metadata?.namespace}/${desired.metadata?.name}: ${message}`);
}

function sameData(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  for (const key of keys) if (a?.[key] !== b?.[key]) return false;
  return true;
}
