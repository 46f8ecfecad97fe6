// Validation of docker_auth ACLs (ImageRegistry spec.auth.acl); see formats.ts for the conventions.
import { isRegexpForm, matchPatternProblem, type PlaceholderField } from '../acl-patterns.ts';
import { isPlainObject } from '../json-patch.ts';
import { ACL_ACTIONS, ACL_MATCH_KEYS } from '../types.ts';
import { isIpOrCidr, type Problems } from './formats.ts';

/** Resource types in the token scopes the distribution registry asks docker_auth for. */
export const ACL_TYPES = ['repository', 'registry'] as const;

// docker_auth's users carry no `account` label (functions/docker-auth-config.ts): it would only
// repeat the account name. An ACL matching on it would never match; an account setting it is refused.
export const RESERVED_ACCOUNT_LABEL = 'account';
export const RESERVED_ACCOUNT_LABEL_REASON = 'reserved: accounts carry no `account` label in docker_auth';

function isPattern(value: string): boolean {
  return isRegexpForm(value) || /[*?[\\$]/.test(value);
}

function validateMatch(match: unknown, path: string): Problems {
  const keys = ACL_MATCH_KEYS.join(', ');
  if (!isPlainObject(match)) return [`${path}: required; an object with at least one of ${keys}`];
  const labels = match['labels'];
  const effective = Object.keys(match).filter((key) => (ACL_MATCH_KEYS as readonly string[]).includes(key) && key !== 'labels');
  if (effective.length === 0 && !(isPlainObject(labels) && Object.keys(labels).length > 0)) {
    // an empty match (also one whose unknown keys docker_auth or the API server dropped) matches every request
    return [
      ...Object.keys(match).filter((key) => key !== 'labels').map((key) => unknownMatchKey(`${path}.${key}`)),
      `${path}: must set at least one of ${keys}: an empty match matches every request; write account: '/.*/' to match everything on purpose`,
    ];
  }
  return Object.entries(match).flatMap(([key, value]): Problems => {
    const at = `${path}.${key}`;
    if (!(ACL_MATCH_KEYS as readonly string[]).includes(key)) return [unknownMatchKey(at)];
    if (key === 'labels') {
      if (!isPlainObject(value)) return [`${at}: must be an object of label name to pattern`];
      return Object.entries(value).flatMap(([label, pattern]): Problems => {
        if (label === RESERVED_ACCOUNT_LABEL) return [`${at}[${label}]: ${RESERVED_ACCOUNT_LABEL_REASON}; match the account name with ${path}.account`];
        if (typeof pattern !== 'string') return [`${at}[${label}]: must be a string pattern`];
        const problem = matchPatternProblem(pattern, 'labels', match);
        return problem ? [`${at}[${label}]: ${problem}`] : [];
      });
    }
    if (typeof value !== 'string') return [`${at}: must be a string`];
    if (key === 'ip') return isIpOrCidr(value) ? [] : [`${at}: must be an IP address or CIDR, e.g. 10.0.0.0/8`];
    if (key === 'type' && !isPattern(value) && !(ACL_TYPES as readonly string[]).includes(value)) {
      return [`${at}: must be one of ${ACL_TYPES.join(', ')} (or a pattern)`];
    }
    const problem = matchPatternProblem(value, key as PlaceholderField, match);
    return problem ? [`${at}: ${problem}`] : [];
  });
}

function unknownMatchKey(path: string): string {
  return `${path}: unknown match key; docker_auth would drop it and the rule would match more than intended (allowed: ${ACL_MATCH_KEYS.join(', ')})`;
}

/**
 * A list of push, pull, or `*` alone (docker_auth grants every action only for exactly ["*"]).
 * An empty list is a deny rule (docker_auth: "stop processing"); a missing one would crash it.
 */
function validateActions(actions: unknown, path: string): Problems {
  if (!Array.isArray(actions)) {
    return [`${path}: required; a list of ${ACL_ACTIONS.join(', ')} ([] denies the request and stops the search)`];
  }
  const unknown = actions.flatMap((action, i): Problems =>
    (ACL_ACTIONS as readonly unknown[]).includes(action) ? [] : [`${path}[${i}]: must be one of ${ACL_ACTIONS.join(', ')}`],
  );
  const lonelyStar = actions.includes('*') && actions.length > 1 ? [`${path}: '*' must stand alone: docker_auth grants every action only for ["*"]`] : [];
  return [...unknown, ...lonelyStar];
}

/** docker_auth ACL entries (first match wins), strictly: unknown keys would widen a rule. */
export function validateAcl(acl: unknown, path: string): Problems {
  if (!Array.isArray(acl)) return [`${path}: must be a list of ACL entries`];
  return acl.flatMap((entry, i): Problems => {
    const at = `${path}[${i}]`;
    if (!isPlainObject(entry)) return [`${at}: must be an object with match and actions`];
    const unknown = Object.keys(entry)
      .filter((key) => !['match', 'actions', 'comment'].includes(key))
      .map((key) => `${at}.${key}: unknown field (allowed: match, actions, comment)`);
    const comment = entry['comment'] === undefined || typeof entry['comment'] === 'string' ? [] : [`${at}.comment: must be a string`];
    return [...unknown, ...validateMatch(entry['match'], `${at}.match`), ...validateActions(entry['actions'], `${at}.actions`), ...comment];
  });
}
