// The API side of push/pull credentials: create the accounts a plan asks for, hand out Secrets,
// statuses and Events as handOutDecisions says, delete accounts. The decisions are in
// functions/credential-plan.ts; the order of the steps is in reconcile-registry.ts.
import { desiredAccount } from '../functions/accounts.ts';
import { crsOfRegistry, type CrEvent, type HandOut, type IssuedCredential, type PlannedRotation } from '../functions/credential-plan.ts';
import { desiredImageSecret, imageSecretStatus, REGISTRY_NOT_READY } from '../functions/image-secrets.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { GROUP_VERSION, type ImageRegistryAccount, type ImageSecret, type OperatorConfig } from '../functions/types.ts';
import { API_PARALLELISM, canonicalJson, mapLimit } from './concurrency.ts';
import { recordEvent } from './events.ts';
import { isConflict, type Kube } from './kube.ts';
import { hashPasswords, newPassword } from './passwords.ts';

const PLURAL = { ImagePushSecret: 'imagepushsecrets', ImagePullSecret: 'imagepullsecrets' } as const;

/** Creates one immutable account per planned rotation; a rotation another Job created at the same moment is left to it. */
export async function issueAccounts(kube: Kube, key: RegistryKey, rotations: readonly PlannedRotation[], config: OperatorConfig): Promise<IssuedCredential[]> {
  const passwords = rotations.map(() => newPassword());
  const hashes = await hashPasswords(passwords);
  const created = await mapLimit(rotations, API_PARALLELISM, async ({ cr, rotation, reason }, i): Promise<IssuedCredential | undefined> => {
    const account = desiredAccount({ cr, registry: key, rotation, passwordHash: hashes[i] as string, intervalSeconds: config.rotationIntervalSeconds });
    try {
      // the stored object: its creationTimestamp starts its ttl
      const stored = await kube.create(account);
      return { cr, account: stored, password: passwords[i] as string, rotation, reason };
    } catch (error) {
      // another Job issued this rotation at the same moment; its Secret write wins, ours is dropped
      if (!isConflict(error)) throw error;
      return undefined;
    }
  });
  return created.filter((i): i is IssuedCredential => i !== undefined);
}

/** Writes each CR's Secret (when it gets new credentials), status (when it changed) and Event. */
export async function handOut(kube: Kube, key: RegistryKey, registryCa: { hostname: string; caPem: string }, handOuts: readonly HandOut[], now: Date): Promise<void> {
  await mapLimit(handOuts, API_PARALLELISM, async ({ cr, credential, status, event }) => {
    if (credential) {
      const { account, password, rotation } = credential;
      await kube.apply(desiredImageSecret(cr, { ...registryCa, username: account.metadata.name ?? '', password, rotation, rotationDate: now, registry: key }));
    }
    await applyStatusIfChanged(kube, cr, status);
    if (event) await recordCrEvent(kube, cr, event, now);
  });
}

/** Deletes accounts by name and uid (an account created anew under the same name stays). */
export async function deleteAccounts(kube: Kube, namespace: string, accounts: readonly ImageRegistryAccount[]): Promise<void> {
  await mapLimit(accounts, API_PARALLELISM, async (account) => {
    await kube.remove({ apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', namespace, name: account.metadata.name ?? '' }, account.metadata.uid ? { uid: account.metadata.uid } : {});
  });
}

/** Marks the CRs of a registry that cannot issue credentials (missing, or its certificates are not usable). */
export async function markImageSecretsNotReady(
  kube: Kube,
  key: RegistryKey,
  problem: { hostname: string; message: string } | 'missing',
  context: { imageSecrets: readonly ImageSecret[]; config: OperatorConfig; now: Date },
): Promise<void> {
  await mapLimit(crsOfRegistry(context.imageSecrets, key, context.config), API_PARALLELISM, async (cr) => {
    const status = problem === 'missing'
      ? imageSecretStatus({ cr, now: context.now, registry: key })
      : imageSecretStatus({ cr, now: context.now, registry: key, hostname: problem.hostname, notReady: { reason: REGISTRY_NOT_READY, message: `registry ${key.namespace}/${key.name}: ${problem.message}` } });
    await applyStatusIfChanged(kube, cr, status);
  });
}

async function applyStatusIfChanged(kube: Kube, cr: ImageSecret, status: ImageSecret['status']): Promise<void> {
  if (canonicalJson(status) === canonicalJson(cr.status)) return;
  await kube.applyStatus({ apiVersion: cr.apiVersion, kind: cr.kind, metadata: cr.metadata, status }, PLURAL[cr.kind]);
}

function recordCrEvent(kube: Kube, cr: ImageSecret, event: CrEvent, now: Date): Promise<void> {
  return recordEvent(kube, cr, event.type, event.reason, event.message, now);
}
