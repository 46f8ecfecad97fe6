// Confirmation logins: how a Job learns that every registry pod has loaded the auth config it wrote.
//
// Every write that changes the docker_auth config adds one login of its own: a name no
// ImageRegistryAccount can have ('_' is not allowed in object names), a password from the CSPRNG
// that only the writing Job holds, and only its bcrypt hash in the config. The ACL's first entry
// gives these logins no action, so a token issued to one is worth nothing. A registry pod whose
// docker_auth accepts the login has loaded that write or a later one. Every later write was built
// from an account list taken after it (the auth config Secret is read before the accounts are
// listed, and a write with a stale resourceVersion is refused), so such a pod accepts the accounts
// the write listed and refuses those deleted before it. Later writes keep the recent logins of
// other writers, so a Job racing another one can still confirm.
import { load } from 'js-yaml';
import type { AclEntry } from './types.ts';

export const CONFIRMATION_LOGIN_PREFIX = '_confirm.';

export interface ConfirmationLogin {
  name: string;
  passwordHash: string;
}

/** How many logins a write keeps from earlier writes (the newest); one Job's run needs one. */
export const MAX_KEPT_CONFIRMATION_LOGINS = 16;

/** `_confirm.<epoch ms>.<id>`: the time says when the login may be dropped. */
export function confirmationLoginName(now: Date, id: string): string {
  return `${CONFIRMATION_LOGIN_PREFIX}${now.getTime()}.${id}`;
}

/** First ACL entry whenever the config holds confirmation logins: they authenticate, nothing more. */
export function confirmationLoginAcl(): AclEntry {
  return { match: { account: `${CONFIRMATION_LOGIN_PREFIX}*` }, actions: [], comment: 'confirmation logins of the reconcile Jobs: no access' };
}

export function isConfirmationLogin(username: string): boolean {
  return username.startsWith(CONFIRMATION_LOGIN_PREFIX);
}

/** The confirmation logins of an `auth_config.yml` text (none when it does not parse). */
export function confirmationLoginsOf(authConfigText: string | undefined): ConfirmationLogin[] {
  if (!authConfigText) return [];
  let users: unknown;
  try {
    users = (load(authConfigText) as { users?: unknown } | undefined)?.users;
  } catch {
    return [];
  }
  if (!users || typeof users !== 'object') return [];
  return Object.entries(users as Record<string, { password?: unknown }>)
    .filter(([name, user]) => isConfirmationLogin(name) && typeof user?.password === 'string')
    .map(([name, user]) => ({ name, passwordHash: user.password as string }));
}

/**
 * The logins a new write carries forward: those younger than `retentionMs` (the longest a Job waits
 * between its write and its confirmation), newest first, at most MAX_KEPT_CONFIRMATION_LOGINS.
 */
export function keptConfirmationLogins(logins: readonly ConfirmationLogin[], now: Date, retentionMs: number): ConfirmationLogin[] {
  return logins
    .map((login) => ({ login, at: loginTime(login.name) }))
    .filter(({ at }) => at !== undefined && now.getTime() - at < retentionMs)
    .sort((a, b) => (b.at ?? 0) - (a.at ?? 0))
    .slice(0, MAX_KEPT_CONFIRMATION_LOGINS)
    .map(({ login }) => login);
}

function loginTime(name: string): number | undefined {
  const time = Number(name.slice(CONFIRMATION_LOGIN_PREFIX.length).split('.')[0]);
  return Number.isSafeInteger(time) ? time : undefined;
}
