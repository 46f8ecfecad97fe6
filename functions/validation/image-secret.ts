// Validation of ImagePushSecret and ImagePullSecret; see formats.ts for the conventions.
import { field, isPlainObject } from '../json-patch.ts';
import { immutableOnceSet, isDns1035Label, isDns1123Label, isDns1123Subdomain, type Problems } from './formats.ts';
import { MAX_REGISTRY_NAME } from './registry.ts';

/** Rotating accounts are named `push.<namespace ≤ 63>.<name>.<rotation>` (≤ 253 in all). */
export const MAX_IMAGE_SECRET_NAME = 170;

/**
 * ImagePushSecret / ImagePullSecret. spec.registryRef is immutable once set: moving a secret to
 * another registry would strand its accounts in the old one; delete and recreate it instead.
 */
export function validateImageSecret(secret: unknown, old?: unknown): Problems {
  const problems: Problems = [];
  const kind = field(secret, 'kind');
  const name = field(secret, 'metadata', 'name');
  if (typeof name === 'string' && name.length > MAX_IMAGE_SECRET_NAME) {
    problems.push(`metadata.name: must be at most ${MAX_IMAGE_SECRET_NAME} characters (rotating accounts are named <push|pull>.<namespace>.<name>.<rotation>)`);
  }
  const spec = field(secret, 'spec');
  if (spec !== undefined && spec !== null && !isPlainObject(spec)) return [...problems, 'spec: must be an object'];
  const ref = field(spec, 'registryRef');
  if (ref !== undefined && ref !== null) {
    if (!isPlainObject(ref)) problems.push('spec.registryRef: must be an object with name and namespace');
    else {
      if (ref['name'] !== undefined && !(isDns1035Label(ref['name']) && ref['name'].length <= MAX_REGISTRY_NAME)) {
        problems.push('spec.registryRef.name: must be the name of an ImageRegistry (DNS-1035 label)');
      }
      if (ref['namespace'] !== undefined && !isDns1123Label(ref['namespace'])) {
        problems.push('spec.registryRef.namespace: must be a namespace name (DNS-1123 label)');
      }
    }
  }
  problems.push(...validateServiceAccounts(field(spec, 'serviceAccounts'), kind));
  if (old !== undefined && old !== null) {
    const hint = `delete and recreate the ${typeof kind === 'string' ? kind : 'secret'} to use another registry`;
    for (const key of ['name', 'namespace']) {
      const path = ['spec', 'registryRef', key];
      problems.push(...immutableOnceSet(field(old, ...path), field(secret, ...path), path.join('.'), hint));
    }
  }
  return problems;
}

/** Most names an ImagePullSecret lists (the CRD's maxItems); more accounts: `["*"]`. */
export const MAX_SERVICE_ACCOUNTS = 256;

/** spec.serviceAccounts of an ImagePullSecret: ServiceAccount names (DNS-1123 subdomains), or `*` alone. */
function validateServiceAccounts(accounts: unknown, kind: unknown): Problems {
  if (accounts === undefined || accounts === null) return [];
  if (kind !== 'ImagePullSecret') return ['spec.serviceAccounts: only an ImagePullSecret hands its Secret to ServiceAccounts'];
  if (!Array.isArray(accounts)) return ['spec.serviceAccounts: must be a list of ServiceAccount names of this namespace, or ["*"] for all of them'];
  const problems: Problems = [];
  if (accounts.length > MAX_SERVICE_ACCOUNTS) problems.push(`spec.serviceAccounts: at most ${MAX_SERVICE_ACCOUNTS} names; use ["*"] for every ServiceAccount of the namespace`);
  accounts.forEach((name, i) => {
    const at = `spec.serviceAccounts[${i}]`;
    if (name === '*') {
      if (accounts.length > 1) problems.push(`${at}: "*" (every ServiceAccount of the namespace) must be the only entry`);
    } else if (!isDns1123Subdomain(name)) {
      problems.push(`${at}: must be a ServiceAccount name (DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253 characters), got ${JSON.stringify(name)}`);
    } else if (accounts.indexOf(name) !== i) {
      problems.push(`${at}: ${JSON.stringify(name)} is listed twice`);
    }
  });
  return problems;
}
