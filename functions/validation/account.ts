// Validation of ImageRegistryAccount; see formats.ts for the conventions.
import { parseDuration } from '../duration.ts';
import { field, isPlainObject, jsonEqual } from '../json-patch.ts';
import { RESERVED_ACCOUNT_LABEL, RESERVED_ACCOUNT_LABEL_REASON } from './acl.ts';
import { isBcryptHash, type Problems } from './formats.ts';

export const HASH_HINT = "hash it, e.g. htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n'";

/** The duration the Jobs will read (functions/duration.ts), in ms; undefined when invalid. */
function durationMs(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseDuration(text);
  } catch {
    return undefined;
  }
}

/** ImageRegistryAccount: bcrypt-only password, string-list labels, positive ttl; spec immutable. */
export function validateImageRegistryAccount(account: unknown, old?: unknown): Problems {
  const spec = field(account, 'spec');
  if (!isPlainObject(spec)) return ['spec: required; an object with password (a bcrypt hash), labels and ttl'];
  const problems: Problems = [];
  const { password, labels, ttl } = spec;
  if (typeof password !== 'string' || password === '') {
    problems.push(`spec.password: required; a bcrypt hash of the password (${HASH_HINT})`);
  } else if (!isBcryptHash(password)) {
    // never echo the value: it may be a plain password
    problems.push(
      password.startsWith('$2')
        ? 'spec.password: malformed bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04-31 and 53 characters of salt and hash)'
        : `spec.password: must be a bcrypt hash, not a plain password; ${HASH_HINT}`,
    );
  }
  if (labels !== undefined && labels !== null) {
    if (!isPlainObject(labels)) problems.push('spec.labels: must be an object of label name to a list of strings');
    else {
      for (const [key, values] of Object.entries(labels)) {
        if (key === '') problems.push('spec.labels: label names must not be empty');
        // on CREATE only: an account stored before the label was reserved may still have its metadata edited
        if (key === RESERVED_ACCOUNT_LABEL && (old === undefined || old === null)) problems.push(`spec.labels[${key}]: ${RESERVED_ACCOUNT_LABEL_REASON}; ACLs match the account name as match.account`);
        if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
          problems.push(`spec.labels[${key}]: must be a list of strings`);
        }
      }
    }
  }
  if (ttl !== undefined && ttl !== null) {
    const ms = durationMs(ttl);
    if (ms === undefined) problems.push('spec.ttl: must be a Go duration, e.g. 48h or 90m');
    else if (ms <= 0) problems.push('spec.ttl: must be greater than zero');
  }
  if (old !== undefined && old !== null && !jsonEqual(field(old, 'spec'), spec)) {
    problems.push('spec: is immutable; create a new ImageRegistryAccount (and delete the old one) instead');
  }
  return problems;
}
