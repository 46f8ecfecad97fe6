// docker_auth (cesanta/docker_auth 1.14) configuration: static users from the registry's
// ImageRegistryAccounts and the ACL. docker_auth watches this file and reloads it on change, so
// account changes need no pod restart. It re-reads its token-signing key at each reload, so the key
// lives in the same Secret (see token-keys.ts): config and key change in one atomic volume update.
import { DEFAULT_SCALAR_STYLE_RULES, SCALAR_STYLE, dump, type ScalarLayout } from 'js-yaml';
import { confirmationLoginAcl, type ConfirmationLogin } from './confirmation-logins.ts';
import { parseDuration } from './duration.ts';
import { ANONYMOUS_ACCOUNT, allowsAnonymousPulls, anonymousAcl } from './pull-through-cache.ts';
import { tokenIssuer } from './names.ts';
import { type AclEntry, type ImageRegistry, type ImageRegistryAccount } from './types.ts';
import { validateAcl } from './validation/acl.ts';

/** Files of the `<r>-auth-config` Secret, mounted as one directory at AUTH_CONFIG_DIR. */
export const AUTH_CONFIG_FILE = 'auth_config.yml';
export const TOKEN_CERT_FILE = 'token.crt';
export const TOKEN_KEY_FILE = 'token.key';
/** Container paths (see registry-objects.ts) docker_auth reads. */
export const AUTH_CONFIG_DIR = '/config';
export const AUTH_CONFIG_PATH = `${AUTH_CONFIG_DIR}/${AUTH_CONFIG_FILE}`;
export const TOKEN_CERT_PATH = `${AUTH_CONFIG_DIR}/${TOKEN_CERT_FILE}`;
export const TOKEN_KEY_PATH = `${AUTH_CONFIG_DIR}/${TOKEN_KEY_FILE}`;
export const DEFAULT_AUTH_ADDRESS = '127.0.0.1:5001';
/** Header nginx fills with the client address, so ACL `ip` rules see the client, not nginx. */
export const REAL_IP_HEADER = 'X-Real-IP';
/** Token lifetime in seconds (docker_auth's `token.expiration`). */
export const TOKEN_EXPIRATION_SECONDS = 900;

export interface DockerAuthConfigInput {
  registry: ImageRegistry;
  /** the accounts of the registry's namespace; others, expired and deleting ones are skipped */
  accounts: readonly ImageRegistryAccount[];
  hostname: string;
  now: Date;
  /** host:port docker_auth listens on (nginx proxies /auth/token to it) */
  address?: string;
  /**
   * Token key IDs as RFC 7638 thumbprints (true, the default: RSA keys) or libtrust key IDs (false:
   * EC keys, see token-keys.ts tokenKeyId). Follows the active key: usesThumbprintKeyId(certPem).
   */
  thumbprintKeyId?: boolean;
  /** logins that tell a Job its write was loaded (confirmation-logins.ts); they get no access */
  confirmationLogins?: readonly ConfirmationLogin[];
}

/**
 * The repositories of an account's own namespace: `<namespace>/…`, nested paths included. A glob
 * cannot say it (path.Match's `*` stops at `/`), so it is a regexp anchored at the start, with the
 * account's `namespace` label put in by docker_auth. An account without that label matches nothing.
 */
export const OWN_NAMESPACE_REPOSITORIES = '/^${labels:namespace}/.+$/';

/**
 * Namespace isolation: push accounts may push and pull the repositories under their own namespace
 * (`<namespace>/…`), pull accounts may pull every repository of the registry; nothing else
 * matches, so everything else is denied.
 */
export function defaultAcl(): AclEntry[] {
  return [
    {
      match: { type: 'repository', name: OWN_NAMESPACE_REPOSITORIES, labels: { accessMode: 'push' } },
      actions: ['push', 'pull'],
      comment: "push accounts: push and pull the repositories of their own namespace (<namespace>/...)",
    },
    { match: { type: 'repository', labels: { accessMode: 'pull' } }, actions: ['pull'], comment: 'pull accounts: pull every repository' },
  ];
}

/** When the account stops being valid (creationTimestamp + ttl); undefined when it never expires. */
export function accountExpiry(account: ImageRegistryAccount): Date | undefined {
  const ttl = account.spec.ttl;
  const created = account.metadata.creationTimestamp;
  // An account without creationTimestamp has not been stored yet, so its ttl has not started.
  if (!ttl || !created) return undefined;
  return new Date(Date.parse(created) + parseDuration(ttl));
}

/** Accounts the registry should accept at `now`, sorted by name. */
export function activeAccounts(registry: ImageRegistry, accounts: readonly ImageRegistryAccount[], now: Date): ImageRegistryAccount[] {
  const namespace = registry.metadata.namespace;
  return accounts
    .filter((a) => a.metadata.namespace === namespace && !a.metadata.deletionTimestamp && a.metadata.name)
    .filter((a) => {
      const expiry = accountExpiry(a);
      return expiry === undefined || expiry.getTime() > now.getTime();
    })
    .sort((a, b) => compare(a.metadata.name as string, b.metadata.name as string));
}

/** Kubernetes refuses a Secret whose data values (decoded) sum to more than 1 MiB. */
export const SECRET_DATA_LIMIT_BYTES = 1024 * 1024;

/** The bytes of a Secret's `data` as the API server counts them: its base64 values decoded. */
export function secretDataBytes(data: Record<string, string> | undefined): number {
  return Object.values(data ?? {}).reduce((sum, value) => sum + Buffer.byteLength(value, 'base64'), 0);
}

/** The `auth_config.yml` text; deterministic for equal input so an unchanged run writes nothing. */
export function dockerAuthConfig(input: DockerAuthConfigInput): string {
  const acl = input.registry.spec?.auth?.acl ?? defaultAcl();
  assertAclValidForDockerAuth(acl);
  const users: Record<string, { password?: string; labels?: Record<string, string[]> }> = {};
  // a pull-through cache's anonymous pulls: docker_auth's user without a name or password, whose
  // rights are anonymousAcl's alone (first in the ACL)
  if (allowsAnonymousPulls(input.registry)) users[ANONYMOUS_ACCOUNT] = {};
  for (const account of activeAccounts(input.registry, input.accounts, input.now)) {
    const name = account.metadata.name as string;
    // No `account` label: it would repeat the user name (ACLs match that as `match.account`) and cost
    // ~45 bytes per account of the 1 MiB Secret. One set by hand is dropped, so no ACL can be fooled.
    users[name] = { password: account.spec.password, labels: sortedLabels(account.spec.labels) };
  }
  const logins = input.confirmationLogins ?? [];
  for (const login of logins) users[login.name] = { password: login.passwordHash, labels: {} };
  const config = {
    server: { addr: input.address ?? DEFAULT_AUTH_ADDRESS, real_ip_header: REAL_IP_HEADER },
    token: {
      issuer: tokenIssuer(input.hostname),
      certificate: TOKEN_CERT_PATH,
      key: TOKEN_KEY_PATH,
      expiration: TOKEN_EXPIRATION_SECONDS,
      // The registry finds the signing key by this ID in its trusted keys (token-keys.ts tokenKeyId).
      disable_legacy_key_id: input.thumbprintKeyId ?? true,
    },
    users,
    acl: [...(logins.length ? [confirmationLoginAcl()] : []), ...anonymousAcl(input.registry), ...acl].map(copyAclEntry),
  };
  // Collections from depth 2 on are written in flow style: one line per user keeps the Secret
  // small enough for thousands of accounts.
  return dump(config, {
    flowLevel: 2,
    lineWidth: -1,
    noRefs: true,
    flowSkipCommaSpace: true,
    scalarStyleRules: [quoteForGoYaml, ...Object.values(DEFAULT_SCALAR_STYLE_RULES)],
  });
}

// docker_auth parses with go-yaml v2 (YAML 1.1), which ends plain scalars inside flow collections
// at characters YAML 1.2 allows there (`?`, `:`, ...). Any string beyond a conservative character
// set (names, bcrypt hashes, paths) is therefore double-quoted.
const GO_YAML_SAFE_PLAIN = /^[A-Za-z0-9$][A-Za-z0-9._/$+=@-]*$/;

function quoteForGoYaml(layout: ScalarLayout): void {
  if (layout.style === SCALAR_STYLE.PLAIN && !GO_YAML_SAFE_PLAIN.test(layout.node.value)) {
    layout.style = SCALAR_STYLE.DOUBLE_QUOTED;
  }
}

/**
 * Refuses, naming every offending field, an ACL docker_auth 1.14 would refuse (a regexp Go does not
 * compile, a bad IP), panic on (no match, no actions), silently drop (unknown keys, which widen a
 * rule) or never match (a bad glob, placeholders it does not replace): the same check the
 * validating webhook makes (validateAcl), so an ACL stored before a check existed is not written.
 */
export function assertAclValidForDockerAuth(acl: unknown): asserts acl is AclEntry[] {
  const problems = validateAcl(acl, 'spec.auth.acl');
  if (problems.length > 0) throw new Error(`the ACL cannot be given to docker_auth: ${problems.join('; ')}`);
}

function copyAclEntry(entry: AclEntry): AclEntry {
  const match = Object.fromEntries(Object.entries(entry.match).filter(([, v]) => v !== undefined));
  return { match, actions: [...entry.actions], ...(entry.comment ? { comment: entry.comment } : {}) };
}

function sortedLabels(labels: Record<string, string[]> | undefined): Record<string, string[]> {
  return Object.fromEntries(
    Object.keys(labels ?? {})
      .filter((key) => key !== 'account')
      .sort(compare)
      .map((key) => [key, [...((labels ?? {})[key] ?? [])]]),
  );
}

// Code-point order, independent of the Job's locale.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
