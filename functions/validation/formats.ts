// Validation of the project's custom resources. Every validator takes the object as received
// (untrusted JSON: any shape) and returns ALL problems at once, each as "<field path>: <problem>";
// an empty list means valid. On UPDATE the previous object is passed to check immutable fields.
// This module: the Problems type, the small value checks and the helpers several kinds share.
import { isIPv4, isIPv6 } from 'node:net';
import { isPlainObject, jsonEqual } from '../json-patch.ts';

export type Problems = string[];

export function isDns1123Label(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value);
}

export function isDns1035Label(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(value);
}

export function isDns1123Subdomain(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length <= 253 &&
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value)
  );
}

/** The hashes golang.org/x/crypto/bcrypt (docker_auth) verifies: $2$, $2a$, $2b$, $2x$, $2y$; cost 04–31. */
export function isBcryptHash(value: unknown): boolean {
  return typeof value === 'string' && /^\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/.test(value);
}

/** An IP address or CIDR as Go's net.ParseIP / net.ParseCIDR (docker_auth's `ip` match) accept. */
export function isIpOrCidr(value: unknown): boolean {
  if (typeof value !== 'string' || value.includes('%')) return false;
  const [address = '', bits, ...extra] = value.split('/');
  if (extra.length > 0) return false;
  const maxBits = isIPv4(address) ? 32 : isIPv6(address) ? 128 : 0;
  if (maxBits === 0) return false;
  return bits === undefined || (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= maxBits);
}

/** A Kubernetes resource quantity ("8Gi", "500M", "1e9") greater than zero. */
export function isPositiveQuantity(value: unknown): boolean {
  return (quantityValue(value) ?? 0) > 0;
}

const QUANTITY_SUFFIXES: Record<string, number> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The value of a non-negative Kubernetes resource quantity, or undefined when it is not one. */
export function quantityValue(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?$/.exec(value);
  if (!match) return undefined;
  const [, number = '', suffix = ''] = match;
  const multiplier = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : QUANTITY_SUFFIXES[suffix]!;
  return Number(number) * multiplier;
}

/** S3's bucket naming rules (the ones every S3-compatible server accepts). */
export function isS3BucketName(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 3 && value.length <= 63 && /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(value) && !value.includes('..') && !isIPv4(value);
}

/** A Secret or ConfigMap key (Kubernetes: [-._a-zA-Z0-9]+, at most 253). */
export function isConfigKey(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && /^[-._a-zA-Z0-9]+$/.test(value) && value !== '.' && value !== '..';
}

export function immutableOnceSet(oldValue: unknown, newValue: unknown, path: string, hint: string): Problems {
  if (oldValue === undefined || oldValue === null) return [];
  const normalise = (v: unknown) => (Array.isArray(v) ? [...v].map(String).sort() : v);
  return jsonEqual(normalise(oldValue), normalise(newValue)) ? [] : [`${path}: is immutable once set (was ${JSON.stringify(oldValue)}); ${hint}`];
}

/** A key of a Secret or ConfigMap the spec names, if given. */
export function validateKeyName(value: unknown, path: string): Problems {
  return value === undefined || isConfigKey(value) ? [] : [`${path}: must be a key name (letters, digits, '-', '_' and '.')`];
}

/** A CaReference (functions/types.ts): exactly one of secretName and configMapName, and a key. */
export function validateCaReference(ca: unknown, path: string): Problems {
  if (ca === undefined || ca === null) return [];
  if (!isPlainObject(ca)) return [`${path}: must be an object with secretName or configMapName, and key`];
  const { secretName, configMapName, key } = ca;
  const problems: Problems = [];
  if ((secretName === undefined) === (configMapName === undefined)) problems.push(`${path}: set exactly one of secretName and configMapName`);
  if (secretName !== undefined && !isDns1123Subdomain(secretName)) problems.push(`${path}.secretName: must be a Secret name (DNS-1123 subdomain)`);
  if (configMapName !== undefined && !isDns1123Subdomain(configMapName)) problems.push(`${path}.configMapName: must be a ConfigMap name (DNS-1123 subdomain)`);
  return [...problems, ...validateKeyName(key, `${path}.key`)];
}

/** What serverUrlProblem answers for each way a URL can be wrong (each field's own wording). */
export interface ServerUrlMessages {
  missing: string;
  invalid: string;
  scheme: string;
  credentials: string;
  path: string;
}

/** A server's URL: http or https, a host and port, nothing a client would ignore or leak (no user info, path, query). */
export function serverUrlProblem(value: unknown, messages: ServerUrlMessages): string | undefined {
  if (typeof value !== 'string' || value === '') return messages.missing;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return messages.invalid;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return messages.scheme;
  if (url.username || url.password) return messages.credentials;
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return messages.path;
  return undefined;
}
