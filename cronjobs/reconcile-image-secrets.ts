// Push/pull secrets of one registry: decide rotations, create the new immutable accounts, and —
// only after the docker_auth config holds them AND every ready registry pod's docker_auth accepts
// them — write the Secrets and statuses; then delete the expired and revoked accounts the new config
// no longer lists.
import type { V1Secret } from '@kubernetes/client-node';
import { accountsToDelete, desiredAccount, resolveRegistryRef, type AccountDeletion } from '../functions/accounts.ts';
import {
  desiredImageSecret,
  imageSecretStatus,
  issuanceInProgress,
  nextRotation,
  readImageSecret,
  REGISTRY_NOT_READY,
  rotationDecision,
  ROTATED_EVENT,
  REVOKED_EVENT,
} from '../functions/image-secrets.ts';
import { accountExpiry } from '../functions/docker-auth-config.ts';
import { awaitsConfirmation, credentialCheckProblem, CREDENTIALS_PENDING, newestCredential, type CredentialCheckOutcome } from '../functions/credential-check.ts';
import { imageSecretName } from '../functions/names.ts';
import { REGISTRY_LABEL, registryLabelValue, type RegistryKey } from '../functions/reconcile-job.ts';
import { GROUP_VERSION, type ImageRegistryAccount, type ImageSecret, type OperatorConfig } from '../functions/types.ts';
import { recordEvent } from './events.ts';
import { isConflict, type Kube } from './kube.ts';
import { log } from './log.ts';
import { hashPasswords, newPassword } from './passwords.ts';
import { API_PARALLELISM, canonicalJson, mapLimit } from './concurrency.ts';

export const IMAGE_SECRET_KINDS = ['ImagePushSecret', 'ImagePullSecret'] as const;
const PLURAL = { ImagePushSecret: 'imagepushsecrets', ImagePullSecret: 'imagepullsecrets' } as const;

interface Issued {
  cr: ImageSecret;
  account: ImageRegistryAccount;
  password: string;
  rotation: number;
  reason: string;
}

/** A credential to confirm with the registry pods before it is handed out (or the CR declared Ready). */
export interface Credential {
  account: ImageRegistryAccount;
  username: string;
  password: string;
}

/** Asks every ready registry pod whether it accepts the credential (cronjobs/credential-check.ts). */
export type ConfirmCredential = (credential: Credential) => Promise<CredentialCheckOutcome>;

export interface ImageSecretsContext {
  kube: Kube;
  config: OperatorConfig;
  now: () => Date;
  /** replace credentials issued before this time (the rotation CronJob; `kubectl create job --from=cronjob/...`) */
  forcedBefore?: Date;
}

/** Every push/pull CR of the cluster; the Jobs filter by the registry each resolves to. */
export async function listImageSecrets(kube: Kube): Promise<ImageSecret[]> {
  const lists = await Promise.all(IMAGE_SECRET_KINDS.map((kind) => kube.list<ImageSecret>(GROUP_VERSION, kind)));
  return lists.flat();
}

function resolvesTo(cr: ImageSecret, key: RegistryKey, config: OperatorConfig): boolean {
  const ref = resolveRegistryRef(cr, config);
  return ref.namespace === key.namespace && ref.name === key.name && !cr.metadata.deletionTimestamp;
}

/**
 * Step 1 (before the auth config is written): create the accounts of the CRs that need a rotation.
 * Returns what the registry reconcile needs next: accounts to leave out of the config, and step 2.
 */
export async function prepareImageSecrets(key: RegistryKey, registryCa: { hostname: string; caPem: string }, context: ImageSecretsContext) {
  const { kube, config } = context;
  const now = context.now();
  // accounts first, CRs second: a CR list taken later holds every owner of a listed account
  const accounts = await kube.list<ImageRegistryAccount>(GROUP_VERSION, 'ImageRegistryAccount', key.namespace);
  const allCrs = await listImageSecrets(kube);
  const crs = allCrs.filter((cr) => resolvesTo(cr, key, config));
  const secrets = await secretsOf(kube, key);
  const byName = new Map(accounts.map((a) => [a.metadata.name, a]));
  // CRs another Job is issuing for are left to it entirely: no account, no status, no Event
  const waitSeconds = config.rolloutTimeoutSeconds + config.credentialsTimeoutSeconds;
  const inProgress = new Set(crs.filter((cr) => issuanceInProgress({ cr, secret: secrets.get(secretKey(cr)), accounts, now, waitSeconds })));
  if (inProgress.size) log('info', 'credentials being issued by another Job; left to it', { registry: `${key.namespace}/${key.name}`, crs: inProgress.size });
  const ours = crs.filter((cr) => !inProgress.has(cr));
  const due = ours.flatMap((cr) => {
    const secret = secrets.get(secretKey(cr));
    const username = secret ? readImageSecret(cr.kind, secret).username : undefined;
    const decision = rotationDecision({
      cr, secret, currentAccount: username ? byName.get(username) : undefined,
      registryHostname: registryCa.hostname, caPem: registryCa.caPem, now, intervalSeconds: config.rotationIntervalSeconds, ...(context.forcedBefore ? { forcedBefore: context.forcedBefore } : {}),
    });
    return decision.rotate ? [{ cr, secret, reason: decision.message }] : [];
  });
  const passwords = due.map(() => newPassword());
  const hashes = await hashPasswords(passwords);
  const created = await mapLimit(due, API_PARALLELISM, async ({ cr, secret, reason }, i): Promise<Issued | undefined> => {
    const rotation = nextRotation(cr, accounts, secret);
    const account = desiredAccount({ cr, registry: key, rotation, passwordHash: hashes[i] as string, intervalSeconds: config.rotationIntervalSeconds });
    try {
      // the stored object: its creationTimestamp tells which credential is the newest
      const stored = await kube.create(account);
      return { cr, account: stored, password: passwords[i] as string, rotation, reason };
    } catch (error) {
      // another Job issued this rotation at the same moment; its Secret write wins, ours is dropped
      if (!isConflict(error)) throw error;
      return undefined;
    }
  });
  const issued = created.filter((i): i is Issued => i !== undefined);
  const deletions = accountsToDelete({ accounts, imageSecrets: allCrs, config, now, registry: key });
  const excluded = new Set(deletions.map((d) => d.account.metadata.name));
  return {
    excludeAccounts: (account: ImageRegistryAccount) => excluded.has(account.metadata.name),
    afterAuthConfig: (confirm: ConfirmCredential) => finishImageSecrets(key, registryCa, { crs: ours, issued, deletions, secrets, accounts: byName }, confirm, context),
    /** the auth config could not be written: delete this run's accounts (no one has their passwords) */
    abandon: () => abandonAccounts(kube, key, issued),
  };
}

/**
 * Step 2 (the auth config now lists every issued account): confirm with the registry pods, then
 * Secrets, statuses, deletions. Confirmed (or no ready pod to ask) → the Secrets are written. Not
 * confirmed in time → nothing is handed out: new CRs stay Ready=False, rotated ones keep their
 * previous Secret (its account is still valid), and this run's accounts are deleted unused.
 */
async function finishImageSecrets(
  key: RegistryKey,
  registryCa: { hostname: string; caPem: string },
  work: { crs: ImageSecret[]; issued: Issued[]; deletions: AccountDeletion[]; secrets: Map<string, V1Secret>; accounts: Map<string | undefined, ImageRegistryAccount> },
  confirm: ConfirmCredential,
  context: ImageSecretsContext,
): Promise<void> {
  const { kube } = context;
  const issuedByCr = new Map(work.issued.map((i) => [crKey(i.cr), i]));
  const probe = newestCredential([...work.issued.map(issuedCredential), ...unconfirmedCredentials(work)]);
  const check = probe ? await confirm(probe) : undefined;
  const problem = check && credentialCheckProblem(check, `${key.namespace}/${key.name}`);
  const handOut = check?.outcome !== 'timeout';
  const now = context.now();
  await mapLimit(work.crs, API_PARALLELISM, async (cr) => {
    const issued = handOut ? issuedByCr.get(crKey(cr)) : undefined;
    if (issued) {
      await kube.apply(desiredImageSecret(cr, { ...registryCa, username: issued.account.metadata.name ?? '', password: issued.password, rotation: issued.rotation, rotationDate: now, registry: key }));
    }
    const checked = issued || issuedByCr.has(crKey(cr)) || awaitsConfirmation(cr);
    // a rotated CR whose new credentials were not confirmed keeps its confirmed previous ones
    const hasConfirmed = cr.status?.rotation !== undefined && !awaitsConfirmation(cr);
    const keepsPrevious = !handOut && issuedByCr.has(crKey(cr)) && hasConfirmed;
    const notReady = checked && problem && !keepsPrevious ? { notReady: problem } : {};
    const status = imageSecretStatus({ cr, now, registry: key, hostname: registryCa.hostname, ...notReady, ...(issued ? { issued: { rotation: issued.rotation, rotationDate: now, ...expiryOf(issued.account) } } : {}) });
    await applyStatusIfChanged(kube, cr, status);
    if (issued) await recordEvent(kube, cr, 'Normal', ROTATED_EVENT, `rotation ${issued.rotation}: new account ${issued.account.metadata.name} (${issued.reason})`, now);
    else if (!handOut && issuedByCr.has(crKey(cr))) await recordEvent(kube, cr, 'Warning', CREDENTIALS_PENDING, `new credentials not handed out: ${problem?.message}`, now);
  });
  if (!handOut) await abandonAccounts(kube, key, work.issued);
  await deleteAccounts(kube, key, work.deletions, now);
  if (work.issued.length || work.deletions.length) {
    log('info', 'image secrets reconciled', { registry: `${key.namespace}/${key.name}`, crs: work.crs.length, rotated: handOut ? work.issued.length : 0, deleted: work.deletions.length, check: check?.outcome ?? 'none' });
  }
}

function expiryOf(account: ImageRegistryAccount): { expiryDate?: Date } {
  const expiry = accountExpiry(account);
  return expiry ? { expiryDate: expiry } : {};
}

function issuedCredential(issued: Issued): Credential {
  return { account: issued.account, username: issued.account.metadata.name ?? '', password: issued.password };
}

/** Credentials already in Secrets whose CRs wait for a registry pod to confirm them. */
function unconfirmedCredentials(work: { crs: ImageSecret[]; issued: Issued[]; secrets: Map<string, V1Secret>; accounts: Map<string | undefined, ImageRegistryAccount> }): Credential[] {
  const rotated = new Set(work.issued.map((i) => crKey(i.cr)));
  return work.crs.flatMap((cr) => {
    const secret = work.secrets.get(secretKey(cr));
    if (rotated.has(crKey(cr)) || !secret || !awaitsConfirmation(cr)) return [];
    const { username, password } = readImageSecret(cr.kind, secret);
    const account = work.accounts.get(username);
    return username && password && account ? [{ account, username, password }] : [];
  });
}

async function abandonAccounts(kube: Kube, key: RegistryKey, issued: Issued[]): Promise<void> {
  await mapLimit(issued, API_PARALLELISM, async ({ account }) => {
    await kube.remove({ apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', namespace: key.namespace, name: account.metadata.name ?? '' });
  });
  if (issued.length) log('warn', 'accounts of this run deleted unused: the auth config was not written', { registry: `${key.namespace}/${key.name}`, accounts: issued.length });
}

async function deleteAccounts(kube: Kube, key: RegistryKey, deletions: AccountDeletion[], now: Date): Promise<void> {
  await mapLimit(deletions, API_PARALLELISM, async ({ account, reason, message }) => {
    const name = account.metadata.name ?? '';
    await kube.remove({ apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', namespace: key.namespace, name }, { uid: account.metadata.uid });
    if (reason === 'Revoked') {
      const registry = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: key.name, namespace: key.namespace } };
      await recordEvent(kube, registry, 'Normal', REVOKED_EVENT, `deleted account ${name}: ${message}`, now);
    }
  });
}

/** Marks the CRs of a registry that cannot issue credentials (missing, or its certificates are not usable). */
export async function markImageSecretsNotReady(key: RegistryKey, problem: { hostname: string; message: string } | 'missing', context: ImageSecretsContext): Promise<void> {
  const { kube, config } = context;
  const crs = (await listImageSecrets(kube)).filter((cr) => resolvesTo(cr, key, config));
  await mapLimit(crs, API_PARALLELISM, async (cr) => {
    const status = problem === 'missing'
      ? imageSecretStatus({ cr, now: context.now(), registry: key })
      : imageSecretStatus({ cr, now: context.now(), registry: key, hostname: problem.hostname, notReady: { reason: REGISTRY_NOT_READY, message: `registry ${key.namespace}/${key.name}: ${problem.message}` } });
    await applyStatusIfChanged(kube, cr, status);
  });
}

async function applyStatusIfChanged(kube: Kube, cr: ImageSecret, status: ImageSecret['status']): Promise<void> {
  if (canonicalJson(status) === canonicalJson(cr.status)) return;
  await kube.applyStatus({ apiVersion: cr.apiVersion, kind: cr.kind, metadata: cr.metadata, status }, PLURAL[cr.kind]);
}

/** The push/pull Secrets of this registry, by `<namespace>/<name>` — one list, not one read per CR. */
async function secretsOf(kube: Kube, key: RegistryKey): Promise<Map<string, V1Secret>> {
  const secrets = await kube.list<V1Secret>('v1', 'Secret', undefined, `${REGISTRY_LABEL}=${registryLabelValue(key)}`);
  return new Map(secrets.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
}

function secretKey(cr: ImageSecret): string {
  return `${cr.metadata.namespace}/${imageSecretName(cr.kind, cr.metadata.name ?? '')}`;
}

function crKey(cr: ImageSecret): string {
  return `${cr.kind}/${cr.metadata.namespace}/${cr.metadata.name}`;
}
