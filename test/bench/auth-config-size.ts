// Benchmark 5: how many live accounts a registry's docker_auth config Secret holds within the API
// server's 1 MiB limit for a Secret's data. The Secret comes from the real desiredConfigSecrets():
// the config text with accounts built by desiredAccount() — realistic names, cost-4 bcrypt hashes,
// the labels the operator writes — plus the token-signing key files it also holds; the largest count
// that fits is found by binary search.
import { generateKeyPairSync } from 'node:crypto';
import { hashSync } from 'bcryptjs';
import { desiredAccount } from '../../functions/accounts.ts';
import { selfSignedCa, signedCertificate } from '../../functions/certificates.ts';
import { dockerAuthConfig, secretDataBytes } from '../../functions/docker-auth-config.ts';
import { registryHostname } from '../../functions/names.ts';
import { desiredConfigSecrets } from '../../functions/registry-objects.ts';
import { trustedTokenKey, type TokenKeys } from '../../functions/token-keys.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount, type ImageSecret } from '../../functions/types.ts';
import { BCRYPT_COST } from '../../cronjobs/passwords.ts';
import type { KubeApi } from '../support/kube-api.ts';
import type { Row, SectionResult } from './report.ts';
import { integer } from './stats.ts';

/** Kubernetes refuses a Secret whose data values add up to more than this (core validation, MaxSecretSize). */
export const SECRET_LIMIT_BYTES = 1024 * 1024;
export const TARGET_ACCOUNTS = 5000;

// names as teams write them: 8–24 characters, a few words joined by dashes
const TEAMS = ['payments', 'checkout', 'search', 'platform', 'data-eng', 'ml-training', 'identity', 'mobile-backend', 'observability', 'frontend'];
const STAGES = ['dev', 'staging', 'prod'];
const APPS = ['api', 'worker', 'web', 'ci-builder', 'nightly-export', 'gateway', 'scheduler', 'image-cache'];

export const BENCH_REGISTRY: ImageRegistry = {
  apiVersion: GROUP_VERSION,
  kind: 'ImageRegistry',
  metadata: { name: 'registry', namespace: 'registry-system', uid: '00000000-0000-4000-8000-000000000001' },
  spec: {},
};

const NOW = new Date('2026-01-01T12:00:00Z');
const INTERVAL_SECONDS = 24 * 3600;

/** The n-th push/pull CR of a realistic cluster: `<team>-<stage>` namespaces, `<app>` or `<app>-<k>` names. */
function crAt(i: number): ImageSecret {
  const team = TEAMS[i % TEAMS.length] as string;
  const stage = STAGES[Math.floor(i / TEAMS.length) % STAGES.length] as string;
  const round = Math.floor(i / (TEAMS.length * STAGES.length));
  const app = APPS[round % APPS.length] as string;
  const k = Math.floor(round / APPS.length);
  return {
    apiVersion: GROUP_VERSION,
    kind: i % 2 === 0 ? 'ImagePushSecret' : 'ImagePullSecret',
    metadata: { name: k === 0 ? app : `${app}-${k}`, namespace: `${team}-${stage}`, uid: `uid-${i}` },
    spec: { registryRef: { name: 'registry', namespace: 'registry-system' } },
  };
}

/**
 * `count` live accounts as a steady state holds them: two per CR (this rotation and the previous
 * one, which stays valid for its ttl of two intervals), at a rotation number of a year of daily
 * rotations, stored an hour ago.
 */
export function realisticAccounts(count: number, hashes: readonly string[]): ImageRegistryAccount[] {
  const registry = { namespace: BENCH_REGISTRY.metadata.namespace as string, name: BENCH_REGISTRY.metadata.name as string };
  return Array.from({ length: count }, (_, i) => {
    const account = desiredAccount({ cr: crAt(Math.floor(i / 2)), registry, rotation: 364 + (i % 2), passwordHash: hashes[i % hashes.length] as string, intervalSeconds: INTERVAL_SECONDS });
    return { ...account, metadata: { ...account.metadata, creationTimestamp: new Date(NOW.getTime() - 3600_000).toISOString() } };
  });
}

let tokenKeys: TokenKeys | undefined;
/**
 * The token key files at their largest: mid-renewal, the active key (RSA 2048, signed by a CA as in
 * self-signed mode) and two trusted public keys. Generated once per run.
 */
function benchTokenKeys(): TokenKeys {
  if (tokenKeys) return tokenKeys;
  const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  const caKey = rsa();
  const ca = { certPem: selfSignedCa({ commonName: 'image-registry-operator root CA', keyPem: caKey, now: NOW, serial: '01' }), keyPem: caKey };
  const signer = (serial: string) => {
    const keyPem = rsa();
    return { certPem: signedCertificate({ commonName: 'registry.registry-system token signer', keyPem, ca, now: NOW, serial, usage: 'signing' }), keyPem };
  };
  const [previous, active] = [signer('0a'), signer('0b')];
  tokenKeys = { active, trusted: [trustedTokenKey(previous.certPem), trustedTokenKey(active.certPem)] };
  return tokenKeys;
}

/** The `<r>-auth-config` Secret's data (base64) as the reconcile Job writes it. */
export function authConfigData(accounts: readonly ImageRegistryAccount[]): Record<string, string> {
  const hostname = registryHostname('registry', 'registry-system', 'svc.example.org');
  const [secret] = desiredConfigSecrets({ registry: BENCH_REGISTRY, hostname, accounts, now: NOW, httpSecret: 'bench', tokenKeys: benchTokenKeys() });
  return secret.data ?? {};
}

export function authConfigBytes(accounts: readonly ImageRegistryAccount[]): number {
  return secretDataBytes(authConfigData(accounts));
}

export function authConfigText(count: number, hashes: readonly string[]): string {
  const hostname = registryHostname('registry', 'registry-system', 'svc.example.org');
  return dockerAuthConfig({ registry: BENCH_REGISTRY, accounts: realisticAccounts(count, hashes), hostname, now: NOW });
}

/** The largest count whose config fits in `limit` bytes (the config grows with the count). */
export function largestFitting(bytesFor: (count: number) => number, limit: number): number {
  let low = 0;
  let high = 1;
  while (bytesFor(high) <= limit) high *= 2;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (bytesFor(mid) <= limit) low = mid;
    else high = mid;
  }
  return low;
}

/** What the token key files add to the Secret, beyond auth_config.yml. */
function tokenKeyBytes(): number {
  const { 'auth_config.yml': _config, ...keyFiles } = authConfigData([]);
  return secretDataBytes(keyFiles);
}

export function benchHashes(): string[] {
  // distinct real hashes at the configured cost; all bcrypt hashes are 60 characters
  return Array.from({ length: 32 }, (_, i) => hashSync(`bench-password-${i}`, BCRYPT_COST));
}

/**
 * Per-account bytes of the format and its neighbours, measured on the same accounts: the earlier
 * format (with an `account` label repeating the user name, dropped to reach the target) and a
 * smaller one that was not chosen.
 */
function formatVariants(accounts: readonly ImageRegistryAccount[]): { name: string; bytesPerAccount: number }[] {
  const hostname = registryHostname('registry', 'registry-system', 'svc.example.org');
  const text = (list: readonly ImageRegistryAccount[]) => dockerAuthConfig({ registry: BENCH_REGISTRY, accounts: list, hostname, now: NOW });
  const perAccount = (yaml: string) => (Buffer.byteLength(yaml) - Buffer.byteLength(text([]))) / accounts.length;
  // the earlier format, rebuilt from the current one: the label appended last to each user
  const withAccountLabel = (yaml: string) => yaml.replace(/^( {2})(\S+): (\{password: .*)\}\}$/gm, '$1$2: $3,account: [$2]}}');
  const accessModeOnly = accounts.map((a) => ({ ...a, spec: { ...a.spec, labels: { accessMode: a.spec.labels?.accessMode ?? [] } } }));
  return [
    { name: 'earlier format, with an `account` label (it repeated the user name, which docker_auth ACLs match as `match.account` and expand as `${account}`)', bytesPerAccount: perAccount(withAccountLabel(text(accounts))) },
    { name: 'current format (labels `accessMode`, `name`, `namespace`)', bytesPerAccount: perAccount(text(accounts)) },
    { name: 'only the `accessMode` label (not chosen: drops `namespace`/`name`, which user ACLs may match on)', bytesPerAccount: perAccount(text(accessModeOnly)) },
  ];
}

export function authConfigSection(): SectionResult & { capacity: number; hashes: string[] } {
  const started = Date.now();
  const hashes = benchHashes();
  const small = authConfigBytes(realisticAccounts(1000, hashes));
  const large = authConfigBytes(realisticAccounts(3000, hashes));
  const perAccount = (large - small) / 2000;
  const fixed = authConfigBytes([]);
  const capacity = largestFitting((count) => authConfigBytes(realisticAccounts(count, hashes)), SECRET_LIMIT_BYTES);
  const sample = authConfigText(2, hashes).split('\n').filter((line) => line.includes('$2')).slice(0, 2);
  const avgName = realisticAccounts(1000, hashes).reduce((n, a) => n + (a.metadata.name?.length ?? 0), 0) / 1000;
  const met = capacity >= TARGET_ACCOUNTS;
  const rows: Row[] = [
    {
      figure: 'docker_auth config bytes per account',
      result: `${perAccount.toFixed(0)} B`,
      baseline: `${fixed} B fixed part (server, token, ACL; token key files)`,
      ratio: '–',
      target: '–',
      limit: `one flow-style YAML line per account: the 60-byte bcrypt hash, the name (avg ${avgName.toFixed(0)} chars here) as the key, the labels accessMode, name and namespace`,
    },
    {
      figure: 'live accounts per registry within the 1 MiB Secret limit',
      result: integer(capacity),
      baseline: `${integer(SECRET_LIMIT_BYTES)} B limit`,
      ratio: `${(capacity / TARGET_ACCOUNTS).toFixed(2)}× target`,
      target: `≥ ${integer(TARGET_ACCOUNTS)}`,
      met,
      limit: `Kubernetes' 1 MiB Secret data limit; a steady state holds 2 accounts per push/pull CR (current + previous rotation), i.e. ${integer(Math.floor(capacity / 2))} CRs per registry`,
    },
  ];
  const details = [
    `Accounts built with desiredAccount() (realistic names like \`push.payments-prod.ci-builder.364\`, average ${avgName.toFixed(1)} characters; cost-${BCRYPT_COST} bcrypt hashes) and rendered by desiredConfigSecrets() into the whole Secret: auth_config.yml plus the token key files (${integer(tokenKeyBytes())} bytes mid-renewal: RSA-2048 certificate and key, two trusted keys); the largest count that fits ${integer(SECRET_LIMIT_BYTES)} bytes is found by binary search. Marginal size from 1,000 → 3,000 accounts: ${perAccount.toFixed(1)} bytes per account.`,
    '',
    'Two account lines as written:',
    '',
    '```yaml',
    ...sample,
    '```',
  ];
  {
    const variants = formatVariants(realisticAccounts(2000, hashes));
    details.push('', `The format and its neighbours, measured on the same 2,000 accounts:`, '');
    for (const v of variants) details.push(`- ${v.name}: ${v.bytesPerAccount.toFixed(0)} B/account → ~${integer((SECRET_LIMIT_BYTES - fixed) / v.bytesPerAccount)} accounts (${integer((SECRET_LIMIT_BYTES - fixed) / v.bytesPerAccount / 2)} CRs)`);
  }
  return { title: '5. docker_auth config size', rows, details, durationMs: Date.now() - started, capacity, hashes };
}

/**
 * Checks the found capacity against the real API server: a Secret holding the config of `capacity`
 * accounts is accepted, one with a single account more is refused. Adds the outcome to the details.
 */
export async function verifyCapacityAtApiServer(section: SectionResult & { capacity: number; hashes: string[] }, api: KubeApi, namespace: string): Promise<void> {
  const attempt = async (count: number) => {
    const data = authConfigData(realisticAccounts(count, section.hashes));
    const name = `auth-config-capacity-${count}`;
    const response = await api.request<{ message?: string }>('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name }, type: 'Opaque', data,
    });
    if (response.status === 201) await api.request('DELETE', `/api/v1/namespaces/${namespace}/secrets/${name}`);
    return { status: response.status, bytes: secretDataBytes(data), message: response.body?.message ?? '' };
  };
  const fits = await attempt(section.capacity);
  const over = await attempt(section.capacity + 1);
  section.details.push('', `Checked against the real API server: a Secret with the config of ${integer(section.capacity)} accounts (${integer(fits.bytes)} bytes) → HTTP ${fits.status}; with ${integer(section.capacity + 1)} accounts (${integer(over.bytes)} bytes) → HTTP ${over.status}${over.message ? ` (“${over.message.replace(/^.*?: /, '').slice(0, 160)}”)` : ''}.`);
  if (fits.status !== 201 || over.status === 201) throw new Error(`the API server disagrees with the computed capacity: ${fits.status} at ${section.capacity}, ${over.status} at ${section.capacity + 1}`);
}
