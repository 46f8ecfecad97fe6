// docker_auth's ACL match patterns as it reads them: a value between slashes is a Go regexp
// (whether it compiles is functions/go-regexp.ts's verdict, cached here), anything else a Go
// path.Match glob; placeholders are replaced before each request is matched. validateAcl holds
// every pattern against these checks, for the webhook and the auth config writer alike;
// test/unit/acl-pattern-parity.test.ts holds the checks against Go's own verdicts.
import { GO_UNICODE_CLASS_NAMES, goRegexpCaptureCount, goRegexpProblem } from './go-regexp.ts';

/** docker_auth's test for a regexp: longer than 2 bytes, a slash first and last. */
export function isRegexpForm(pattern: string): boolean {
  return pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/');
}

// Verdicts on regexps already checked: every admission of a registry checks the same ACL again.
// Patterns are user input, so the cache is emptied when full.
const REGEXP_VERDICTS_MAX = 1024;
const regexpVerdicts = new Map<string, string | undefined>();

/** Why Go's regexp.Compile (docker_auth) refuses `source`, or undefined when it compiles. */
export function regexpProblem(source: string): string | undefined {
  if (regexpVerdicts.has(source)) return regexpVerdicts.get(source);
  const problem = goRegexpProblem(source);
  if (regexpVerdicts.size >= REGEXP_VERDICTS_MAX) regexpVerdicts.clear();
  regexpVerdicts.set(source, problem);
  return problem;
}

/** Why Go's path.Match would return ErrBadPattern for `pattern` (docker_auth: never matches). */
export function globProblem(pattern: string): string | undefined {
  const chars = [...pattern];
  const member = (i: number): number | string => {
    const c = chars[i];
    if (c === undefined || c === '-' || c === ']') return 'malformed character class';
    if (c !== '\\') return i + 1;
    return chars[i + 1] === undefined ? 'trailing backslash' : i + 2;
  };
  for (let i = 0; i < chars.length; ) {
    if (chars[i] === '\\') {
      if (chars[i + 1] === undefined) return 'trailing backslash';
      i += 2;
    } else if (chars[i] === '[') {
      i += chars[i + 1] === '^' ? 2 : 1;
      for (let ranges = 0; ; ranges++) {
        if (chars[i] === ']' && ranges > 0) break;
        const lo = member(i);
        if (typeof lo === 'string') return lo;
        i = lo;
        if (chars[i] === '-') {
          const hi = member(i + 1);
          if (typeof hi === 'string') return hi;
          i = hi;
        }
      }
      i += 1;
    } else {
      i += 1;
    }
  }
  return undefined;
}

/** Go's regexp.QuoteMeta: docker_auth escapes ${account}, ${type}, ${name} and ${service} with it. */
export function quoteMeta(text: string): string {
  return text.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** The match keys whose values docker_auth fills placeholders into, with the label permutations. */
const PLACEHOLDER_FIELDS = ['account', 'type', 'name', 'service'] as const;
export type PlaceholderField = (typeof PLACEHOLDER_FIELDS)[number];

/**
 * What the check puts in for each placeholder, as docker_auth does (acl.go, Matches): request
 * fields escaped with regexp.QuoteMeta, label values and capture groups as they are.
 */
export const PLACEHOLDER_EXAMPLES = {
  account: 'push.team-a.app.1',
  type: 'repository',
  name: 'team-a/app',
  service: 'registry.default.svc.example.org',
  label: 'team-a',
  capture: 'x',
} as const;

// docker_auth's captureGroupRegex, `\$\{(.+?):(\d+)\}`: `${name:1}` is group 1 of match.name's regexp.
const CAPTURE_PLACEHOLDER = /\$\{(.+?):(\d+)\}/g;
const PLACEHOLDER = /\$\{[^{}]*\}/g;

/** The field docker_auth reads for `${<key>:<n>}`: reflect's FieldByName(strings.Title(key)). */
function captureTarget(key: string): PlaceholderField | undefined {
  return PLACEHOLDER_FIELDS.find((field) => key.charAt(0).toUpperCase() + key.slice(1) === field.charAt(0).toUpperCase() + field.slice(1));
}

/**
 * The capture placeholders docker_auth replaces in this match, token → problem (undefined when it
 * is replaced). It looks for them in account, type, name and service only.
 */
function capturePlaceholders(match: Record<string, unknown>): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  for (const field of PLACEHOLDER_FIELDS) {
    const value = match[field];
    if (typeof value !== 'string') continue;
    for (const [token, key = '', index = ''] of value.matchAll(CAPTURE_PLACEHOLDER)) {
      const target = captureTarget(key);
      const source = target === undefined ? undefined : match[target];
      let problem: string | undefined;
      if (target === undefined) problem = `docker_auth replaces \${<field>:<n>} only for account, type, name and service`;
      else if (typeof source !== 'string' || !isRegexpForm(source)) problem = `match.${target} must be a /regexp/ for ${token} to be replaced`;
      else {
        const groups = goRegexpCaptureCount(source.slice(1, -1));
        const n = Number(index);
        if (groups !== undefined && (n < 1 || n > groups)) problem = `match.${target} has ${groups} capture group(s), so ${token} is never replaced`;
      }
      if (!found.has(token) || found.get(token) !== undefined) found.set(token, problem);
    }
  }
  return found;
}

/**
 * Why docker_auth would refuse, or never match as written, the value of match.<field> (a label
 * pattern when `field` is `labels`), or undefined. A /regexp/ must compile as it stands (docker_auth
 * refuses the whole configuration otherwise). Placeholders must be ones docker_auth replaces there,
 * and the value must still be a valid regexp or glob after they are replaced, as docker_auth does
 * on each request (it ignores a rule whose pattern does not compile then).
 */
export function matchPatternProblem(pattern: string, field: PlaceholderField | 'labels' = 'account', match: Record<string, unknown> = {}): string | undefined {
  if (isRegexpForm(pattern)) {
    const problem = regexpProblem(pattern.slice(1, -1));
    if (problem !== undefined) return `invalid regular expression: ${problem}${regexpHint(problem)}; docker_auth refuses the whole configuration`;
  }
  const captures = capturePlaceholders(match);
  const replacements: string[] = [];
  for (const [token] of pattern.matchAll(PLACEHOLDER)) {
    const variable = /^\$\{(account|type|name|service)\}$/.exec(token)?.[1] as PlaceholderField | undefined;
    if (variable !== undefined) {
      replacements.push(token, quoteMeta(PLACEHOLDER_EXAMPLES[variable]));
    } else if (/^\$\{labels:[^{}]+\}$/.test(token)) {
      if (field === 'labels') return `docker_auth does not replace ${token} in match.labels, only in account, type, name and service`;
      replacements.push(token, PLACEHOLDER_EXAMPLES.label);
    } else if (captures.has(token)) {
      const problem = captures.get(token);
      if (problem !== undefined) return `${token} is not replaced: ${problem}`;
      replacements.push(token, PLACEHOLDER_EXAMPLES.capture);
    } else {
      return `${token} would stay as written: docker_auth replaces only \${account}, \${type}, \${name}, \${service}, \${labels:<label>} and capture groups \${<field>:<n>} (found in account, type, name and service by \\$\\{(.+?):(\\d+)\\})`;
    }
  }
  const replaced = replaceAll(pattern, replacements);
  const shown = replacements.length > 0 ? ` once its placeholders are replaced (e.g. ${JSON.stringify(replaced)})` : '';
  if (isRegexpForm(replaced)) {
    const problem = regexpProblem(replaced.slice(1, -1));
    return problem === undefined ? undefined : `invalid regular expression${shown}: ${problem}; docker_auth would never match this rule`;
  }
  const problem = globProblem(replaced);
  return problem === undefined ? undefined : `invalid glob pattern${shown} (it would never match): ${problem}`;
}

/** What Go's terse message means, for syntax people bring from other regexp dialects. */
function regexpHint(problem: string): string {
  if (/`\(\?<?[=!]/.test(problem)) return ' (lookaround is not Go regexp syntax)';
  if (/`\(\?>/.test(problem)) return ' (atomic groups are not Go regexp syntax)';
  if (/escape sequence: `\\[1-9k]/.test(problem)) return ' (backreferences are not Go regexp syntax)';
  if (/`\\[pP]/.test(problem)) return ` (Unicode classes: ${[...GO_UNICODE_CLASS_NAMES].slice(0, 6).join(', ')}, … — exact names as Go 1.24 knows them)`;
  return '';
}

/** strings.NewReplacer(pairs...).Replace(text): one pass, leftmost match, earlier pairs first. */
function replaceAll(text: string, pairs: readonly string[]): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    let replaced = false;
    for (let p = 0; p < pairs.length; p += 2) {
      if (text.startsWith(pairs[p]!, i)) {
        out += pairs[p + 1];
        i += pairs[p]!.length;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}
