// Writes the docker_auth config Secret from the live ImageRegistryAccounts with optimistic
// concurrency, and makes every write visible at once.
//
// Concurrency: the Secret's resourceVersion is read BEFORE the accounts are listed, the write carries
// it, and on a conflict the writer reads and lists again. Any writer whose list missed an account
// loses the race to the writer that created it, so concurrent Jobs never drop an account.
//
// Visibility: a write that changes the config adds a confirmation login (confirmation-logins.ts) and
// touches the registry pods (an annotation update makes the kubelet sync their Secret volumes now,
// not at its next periodic sync, about a minute); confirmWrite (credential-check.ts) then asks each
// ready pod for a token with that login.
import type { V1Secret } from '@kubernetes/client-node';
import type { KeyPair } from '../functions/certificate-sources.ts';
import { confirmationLoginName, confirmationLoginsOf, keptConfirmationLogins, type ConfirmationLogin } from '../functions/confirmation-logins.ts';
import { AUTH_CONFIG_FILE, SECRET_DATA_LIMIT_BYTES, secretDataBytes } from '../functions/docker-auth-config.ts';
import { authConfigSecretName } from '../functions/names.ts';
import { desiredConfigSecrets, sameSecretContent } from '../functions/registry-objects.ts';
import { decideTokenKeys, storedTokenKeys, type TokenKeyDecision } from '../functions/token-keys.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount, type OperatorConfig } from '../functions/types.ts';
import { touchRegistryPods } from './credential-check.ts';
import { recordEvent } from './events.ts';
import { isConflict, type Kube } from './kube.ts';
import { randomSerial } from './keys.ts';
import { hashPasswords, newPassword } from './passwords.ts';

export interface AuthConfigInput {
  registry: ImageRegistry;
  hostname: string;
  httpSecret: string;
  /** the token-signing key pair of the source Secret; token-keys.ts decides what docker_auth signs with */
  tokenSource: KeyPair;
  /** key IDs every running pod trusts (only once the pods rolled out a staged key) */
  trustedByAllPods?: readonly string[];
  /** accounts the config must leave out (the revoke step deletes them) */
  excluded: ReadonlySet<string>;
  /** the Secret and the accounts as gathered (the Secret read before the list); later attempts read anew */
  gathered?: { secret: V1Secret | undefined; accounts: readonly ImageRegistryAccount[] };
  /** write (with a new confirmation login) even when nothing else changed */
  force?: boolean;
  config: OperatorConfig;
  now: Date;
}

/** A login only this Job knows, accepted by a pod once it loaded the write that added it. */
export interface Login {
  username: string;
  password: string;
}

export interface AuthConfigWritten {
  changed: boolean;
  resourceVersion: string;
  /** the token key state in the Secret now (written or found) */
  tokenKeys: TokenKeyDecision;
  /** set when this call wrote */
  login?: Login;
}

const MAX_ATTEMPTS = 20;

export async function writeAuthConfig(kube: Kube, input: AuthConfigInput): Promise<AuthConfigWritten> {
  const { registry } = input;
  const namespace = registry.metadata.namespace ?? '';
  const name = authConfigSecretName(registry.metadata.name ?? '');
  let newLogin: (Login & ConfirmationLogin) | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const { secret: current, accounts } = attempt === 1 && input.gathered ? input.gathered : await readAndList(kube, namespace, name);
    const live = accounts.filter((a) => !input.excluded.has(a.metadata.name ?? ''));
    const tokenKeys = decideTokenKeys({ source: input.tokenSource, current: storedTokenKeys(current), now: input.now, ...(input.trustedByAllPods ? { trustedByAllPods: input.trustedByAllPods } : {}) });
    const currentLogins = confirmationLoginsOf(authConfigText(current));
    const build = (logins: readonly ConfirmationLogin[]) => desiredConfigSecrets({ ...input, accounts: live, tokenKeys: tokenKeys.state, confirmationLogins: logins })[0];
    const unchanged = build(currentLogins);
    if (current && !input.force && sameSecretContent(current, unchanged)) {
      return { changed: false, resourceVersion: current.metadata?.resourceVersion ?? '', tokenKeys };
    }
    newLogin ??= await confirmationLogin(input.now);
    const desired = build([newLogin, ...keptConfirmationLogins(currentLogins, input.now, loginRetentionMs(input.config))]);
    await refuseOversized(kube, registry, desired, live.length);
    try {
      const written = await store(kube, current, desired);
      await touchRegistryPods(kube, { namespace, name: registry.metadata.name ?? '' }, written.metadata?.resourceVersion ?? '');
      return { changed: true, resourceVersion: written.metadata?.resourceVersion ?? '', tokenKeys, login: { username: newLogin.username, password: newLogin.password } };
    } catch (error) {
      if (!isConflict(error)) throw error;
      // another writer got there first: back off a little (jitter spreads the retries) and re-read
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * attempt));
    }
  }
  throw new Error(`Secret ${namespace}/${name}: gave up after ${MAX_ATTEMPTS} conflicting writes`);
}

async function readAndList(kube: Kube, namespace: string, name: string): Promise<{ secret: V1Secret | undefined; accounts: ImageRegistryAccount[] }> {
  const secret = await kube.read<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace, name });
  const accounts = await kube.list<ImageRegistryAccount>(GROUP_VERSION, 'ImageRegistryAccount', namespace);
  return { secret, accounts };
}

async function store(kube: Kube, current: V1Secret | undefined, desired: V1Secret): Promise<V1Secret> {
  if (!current) return kube.create(desired);
  const annotations = { ...current.metadata?.annotations, ...desired.metadata?.annotations };
  const metadata = { ...current.metadata, labels: desired.metadata?.labels, annotations, ownerReferences: desired.metadata?.ownerReferences };
  return kube.replace({ ...current, type: desired.type, data: desired.data, metadata });
}

/** A Job waits for pods at most this long after its write; a login lives a minute longer. */
function loginRetentionMs(config: OperatorConfig): number {
  return (config.rolloutTimeoutSeconds + config.credentialsTimeoutSeconds + 60) * 1000;
}

async function confirmationLogin(now: Date): Promise<Login & ConfirmationLogin> {
  const password = newPassword();
  const [passwordHash] = await hashPasswords([password]);
  const username = confirmationLoginName(now, randomSerial().slice(0, 16));
  return { username, password, name: username, passwordHash: passwordHash as string };
}

function authConfigText(secret: V1Secret | undefined): string | undefined {
  const data = secret?.data?.[AUTH_CONFIG_FILE];
  return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
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
