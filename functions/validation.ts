// Validation of the project's custom resources. Every validator takes the object as received
// (untrusted JSON: any shape) and returns ALL problems at once, each as "<field path>: <problem>";
// an empty list means valid. On UPDATE the previous object is passed to check immutable fields.
import { isIPv4, isIPv6 } from 'node:net';
import { isRegexpForm, matchPatternProblem, type PlaceholderField } from './acl-patterns.ts';
import { isDuration, parseDuration } from './duration.ts';
import { GC_TIMEOUT_RANGE_MS } from './gc-defaults.ts';
import { field, isPlainObject, jsonEqual } from './json-patch.ts';
import { ACL_ACTIONS, ACL_MATCH_KEYS } from './types.ts';

export const HASH_HINT = "hash it, e.g. htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n'";
/** Resource types in the token scopes the distribution registry asks docker_auth for. */
export const ACL_TYPES = ['repository', 'registry'] as const;
export const ACCESS_MODES = ['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod'] as const;
export const ISSUER_KINDS = ['Issuer', 'ClusterIssuer'] as const;
/** StatefulSet pods carry `<name>-<revision hash>` as a label value (≤ 63), which leaves 52. */
export const MAX_REGISTRY_NAME = 52;
/** Rotating accounts are named `push.<namespace ≤ 63>.<name>.<rotation>` (≤ 253 in all). */
export const MAX_IMAGE_SECRET_NAME = 170;

type Problems = string[];

// ---------------------------------------------------------------------------------------------
// Small value checks

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

/** The duration the Jobs will read (functions/duration.ts), in ms; undefined when invalid. */
function durationMs(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseDuration(text);
  } catch {
    return undefined;
  }
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

// ---------------------------------------------------------------------------------------------
// ACL

// docker_auth's users carry no `account` label (functions/docker-auth-config.ts): it would only
// repeat the account name. An ACL matching on it would never match; an account setting it is refused.
const RESERVED_ACCOUNT_LABEL = 'account';
const RESERVED_ACCOUNT_LABEL_REASON = 'reserved: accounts carry no `account` label in docker_auth';

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

// ---------------------------------------------------------------------------------------------
// Resources

function objectOrAbsent(value: unknown, path: string): Problems {
  return value === undefined || value === null || isPlainObject(value) ? [] : [`${path}: must be an object`];
}

function validateCertificateSource(source: unknown, path: string): Problems {
  if (source === undefined || source === null) return [];
  if (!isPlainObject(source)) return [`${path}: must be an object`];
  const problems: Problems = [];
  const secretName = source['secretName'];
  if (secretName !== undefined && !isDns1123Subdomain(secretName)) {
    problems.push(`${path}.secretName: must be a Secret name (DNS-1123 subdomain)`);
  }
  const issuerRef = source['issuerRef'];
  if (issuerRef !== undefined && issuerRef !== null) {
    if (!isPlainObject(issuerRef)) return [...problems, `${path}.issuerRef: must be an object with name and kind`];
    if (typeof issuerRef['name'] !== 'string' || issuerRef['name'] === '') problems.push(`${path}.issuerRef.name: required`);
    const kind = issuerRef['kind'];
    if (kind !== undefined && !(ISSUER_KINDS as readonly unknown[]).includes(kind)) {
      problems.push(`${path}.issuerRef.kind: must be ${ISSUER_KINDS.join(' or ')}`);
    }
  }
  return problems;
}

function validatePersistentVolumeClaim(pvc: unknown, replicas: unknown, path: string): Problems {
  if (pvc === undefined || pvc === null) return [];
  if (!isPlainObject(pvc)) return [`${path}: must be an object`];
  const problems: Problems = [];
  const { storageClassName, accessModes, resources, deleteClaim } = pvc;
  if (storageClassName !== undefined && !isDns1123Subdomain(storageClassName)) {
    problems.push(`${path}.storageClassName: must be a StorageClass name (DNS-1123 subdomain)`);
  }
  if (accessModes !== undefined) {
    if (!Array.isArray(accessModes) || accessModes.length === 0) {
      problems.push(`${path}.accessModes: must be a non-empty list of ${ACCESS_MODES.join(', ')}`);
    } else {
      accessModes.forEach((mode, i) => {
        if (mode === 'ReadOnlyMany') problems.push(`${path}.accessModes[${i}]: ReadOnlyMany cannot work, the registry writes to its volume`);
        else if (!(ACCESS_MODES as readonly unknown[]).includes(mode)) problems.push(`${path}.accessModes[${i}]: must be one of ${ACCESS_MODES.join(', ')}`);
      });
      if (typeof replicas === 'number' && replicas > 1 && !accessModes.includes('ReadWriteMany')) {
        problems.push(`${path}.accessModes: must include ReadWriteMany when spec.replicas > 1 (the replicas share one volume)`);
      }
    }
  }
  if (resources !== undefined) {
    const storage = field(resources, 'requests', 'storage');
    if (!isPlainObject(resources)) problems.push(`${path}.resources: must be an object`);
    else if (storage !== undefined && !isPositiveQuantity(storage)) {
      problems.push(`${path}.resources.requests.storage: must be a quantity greater than zero, e.g. 8Gi`);
    }
  }
  if (deleteClaim !== undefined && typeof deleteClaim !== 'boolean') problems.push(`${path}.deleteClaim: must be true or false`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Storage

/** S3's bucket naming rules (the ones every S3-compatible server accepts). */
export function isS3BucketName(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 3 && value.length <= 63 && /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(value) && !value.includes('..') && !isIPv4(value);
}

/** A Secret or ConfigMap key (Kubernetes: [-._a-zA-Z0-9]+, at most 253). */
export function isConfigKey(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && /^[-._a-zA-Z0-9]+$/.test(value) && value !== '.' && value !== '..';
}

const MIGRATION_HINT =
  'the images stay where they are; to move them, create a new ImageRegistry with the storage you want, copy the images (e.g. skopeo sync or regctl image copy), point clients at it and delete this one';

function validateKeyName(value: unknown, path: string): Problems {
  return value === undefined || isConfigKey(value) ? [] : [`${path}: must be a key name (letters, digits, '-', '_' and '.')`];
}

/** The endpoint's URL: http or https, a host, nothing the driver would ignore or leak (no user info, query, path). */
function endpointProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return 'must be an http:// or https:// URL, e.g. https://s3.example.org';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an http:// or https:// URL, e.g. https://s3.example.org';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must start with http:// or https://';
  if (url.username || url.password) return 'must not hold credentials; name a Secret in credentialsSecret instead';
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return 'must be the server only (scheme, host, port), without path or query; the bucket goes into bucket';
  return undefined;
}

function validateCaReference(ca: unknown, path: string): Problems {
  if (ca === undefined || ca === null) return [];
  if (!isPlainObject(ca)) return [`${path}: must be an object with secretName or configMapName, and key`];
  const { secretName, configMapName, key } = ca;
  const problems: Problems = [];
  if ((secretName === undefined) === (configMapName === undefined)) problems.push(`${path}: set exactly one of secretName and configMapName`);
  if (secretName !== undefined && !isDns1123Subdomain(secretName)) problems.push(`${path}.secretName: must be a Secret name (DNS-1123 subdomain)`);
  if (configMapName !== undefined && !isDns1123Subdomain(configMapName)) problems.push(`${path}.configMapName: must be a ConfigMap name (DNS-1123 subdomain)`);
  return [...problems, ...validateKeyName(key, `${path}.key`)];
}

function validateCredentialsSecret(secret: unknown, path: string): Problems {
  if (secret === undefined || secret === null) return [];
  if (!isPlainObject(secret)) return [`${path}: must be an object with name, accessKeyIDKey and secretAccessKeyKey`];
  const problems: Problems = [];
  if (!isDns1123Subdomain(secret['name'])) problems.push(`${path}.name: required; the name of a Secret in the registry's namespace`);
  problems.push(...validateKeyName(secret['accessKeyIDKey'], `${path}.accessKeyIDKey`), ...validateKeyName(secret['secretAccessKeyKey'], `${path}.secretAccessKeyKey`));
  if (secret['accessKeyIDKey'] !== undefined && secret['accessKeyIDKey'] === secret['secretAccessKeyKey']) {
    problems.push(`${path}.secretAccessKeyKey: must differ from accessKeyIDKey`);
  }
  return problems;
}

function validateS3(s3: unknown, path: string): Problems {
  if (!isPlainObject(s3)) return [`${path}: must be an object with bucket, region, endpoint, credentialsSecret, ...`];
  const { bucket, region, endpoint, forcePathStyle, rootDirectory, ca, credentialsSecret, serviceAccountName } = s3;
  const problems: Problems = [];
  if (bucket === undefined || bucket === '') problems.push(`${path}.bucket: required; the name of an existing bucket`);
  else if (!isS3BucketName(bucket)) problems.push(`${path}.bucket: must be a bucket name: 3-63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit`);
  if (region !== undefined && !(typeof region === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(region))) problems.push(`${path}.region: must be a region name, e.g. us-east-1`);
  if (endpoint !== undefined) {
    const problem = endpointProblem(endpoint);
    if (problem) problems.push(`${path}.endpoint: ${problem}`);
  }
  if (forcePathStyle !== undefined && typeof forcePathStyle !== 'boolean') problems.push(`${path}.forcePathStyle: must be true or false`);
  if (rootDirectory !== undefined && !(typeof rootDirectory === 'string' && rootDirectory.length <= 512 && /^\/?[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*\/?$/.test(rootDirectory) && !/(^|\/)\.\.?(\/|$)/.test(rootDirectory))) {
    problems.push(`${path}.rootDirectory: must be a key prefix such as /registry (path segments of letters, digits and !_.*'()-, no '.' or '..' segments)`);
  }
  problems.push(...validateCaReference(ca, `${path}.ca`), ...validateCredentialsSecret(credentialsSecret, `${path}.credentialsSecret`));
  if (serviceAccountName !== undefined && !isDns1123Subdomain(serviceAccountName)) problems.push(`${path}.serviceAccountName: must be a ServiceAccount name (DNS-1123 subdomain)`);
  return problems;
}

function validateStorage(spec: Record<string, unknown>): Problems {
  const storage = spec['storage'];
  if (storage === undefined || storage === null) return [];
  if (!isPlainObject(storage)) return ['spec.storage: must be an object; set s3 for a bucket, leave it out for the volume'];
  const s3 = storage['s3'];
  if (s3 === undefined || s3 === null) return [];
  const both = spec['persistentVolumeClaim'] !== undefined && spec['persistentVolumeClaim'] !== null
    ? ['spec.persistentVolumeClaim: must be left out with spec.storage.s3: the bucket holds the data, no volume is made']
    : [];
  return [...both, ...validateS3(s3, 'spec.storage.s3')];
}

/** The storage kind of a stored registry: a bucket, or the volume. */
function storageKind(registry: unknown): 's3' | 'volume' {
  return isPlainObject(field(registry, 'spec', 'storage', 's3')) ? 's3' : 'volume';
}

/**
 * The data stays where it is: no switch between volume and bucket, no other bucket or prefix.
 * Endpoint, region, CA and credentials may change (the same bucket reached another way).
 */
function storageUnchanged(old: unknown, registry: unknown): Problems {
  const [was, now] = [storageKind(old), storageKind(registry)];
  if (was !== now) {
    return was === 'volume'
      ? [`spec.storage.s3: an existing registry cannot move from its volume to a bucket; ${MIGRATION_HINT}`]
      : [`spec.storage.s3: cannot be removed, the registry's images are in bucket ${JSON.stringify(field(old, 'spec', 'storage', 's3', 'bucket'))}; ${MIGRATION_HINT}`];
  }
  if (now === 'volume') return [];
  return ['bucket', 'rootDirectory'].flatMap((key) => {
    const path = ['spec', 'storage', 's3', key];
    const [before, after] = [field(old, ...path), field(registry, ...path)];
    return jsonEqual(before ?? null, after ?? null) ? [] : [`${path.join('.')}: is immutable (was ${JSON.stringify(before ?? null)}): the images are there; ${MIGRATION_HINT}`];
  });
}

function immutableOnceSet(oldValue: unknown, newValue: unknown, path: string, hint: string): Problems {
  if (oldValue === undefined || oldValue === null) return [];
  const normalise = (v: unknown) => (Array.isArray(v) ? [...v].map(String).sort() : v);
  return jsonEqual(normalise(oldValue), normalise(newValue)) ? [] : [`${path}: is immutable once set (was ${JSON.stringify(oldValue)}); ${hint}`];
}

/**
 * ImageRegistry. replicas may be 0 (scaling a registry to zero is a legitimate operation: the
 * volume stays). storageClassName and accessModes are immutable once set, as a claim's are; the
 * storage request may grow, not shrink. The storage kind (volume or bucket), the bucket and its
 * prefix are immutable: the images are there.
 */
export function validateImageRegistry(registry: unknown, old?: unknown): Problems {
  const problems: Problems = [];
  const name = field(registry, 'metadata', 'name');
  if (typeof name === 'string' && name !== '' && (!isDns1035Label(name) || name.length > MAX_REGISTRY_NAME)) {
    problems.push(
      `metadata.name: must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) of at most ${MAX_REGISTRY_NAME} characters: it names the registry's Service and StatefulSet and is part of its hostname`,
    );
  }
  const spec = field(registry, 'spec');
  if (spec === undefined || spec === null) return problems;
  if (!isPlainObject(spec)) return [...problems, 'spec: must be an object'];
  const { replicas, persistentVolumeClaim, tls, auth } = spec;
  if (replicas !== undefined && !(Number.isInteger(replicas) && (replicas as number) >= 0)) {
    problems.push('spec.replicas: must be an integer >= 0');
  }
  problems.push(...validatePersistentVolumeClaim(persistentVolumeClaim, replicas, 'spec.persistentVolumeClaim'));
  problems.push(...validateStorage(spec));
  problems.push(...validateCertificateSource(tls, 'spec.tls'));
  problems.push(...objectOrAbsent(auth, 'spec.auth'));
  problems.push(...validateCertificateSource(field(auth, 'ca'), 'spec.auth.ca'));
  problems.push(...validateGarbageCollection(spec['garbageCollection']));
  const acl = field(auth, 'acl');
  if (acl !== undefined && acl !== null) problems.push(...validateAcl(acl, 'spec.auth.acl'));
  if (old !== undefined && old !== null) {
    const hint = 'a volume claim cannot change them; create a new ImageRegistry instead';
    // a switch to a bucket gets its own message (storageUnchanged), not one per volume field
    if (storageKind(registry) === 'volume') {
      for (const key of ['storageClassName', 'accessModes']) {
        const path = ['spec', 'persistentVolumeClaim', key];
        problems.push(...immutableOnceSet(field(old, ...path), field(registry, ...path), path.join('.'), hint));
      }
      problems.push(...storageNotShrunk(old, registry));
    }
    problems.push(...storageUnchanged(old, registry));
  }
  return problems;
}

/** A volume can grow (where its storage class allows expansion), never shrink. */
function storageNotShrunk(old: unknown, registry: unknown): Problems {
  const path = ['spec', 'persistentVolumeClaim', 'resources', 'requests', 'storage'];
  const before = field(old, ...path);
  const after = field(registry, ...path);
  const [was, now] = [quantityValue(before), quantityValue(after)];
  if (was === undefined || now === undefined || now >= was) return [];
  return [`${path.join('.')}: cannot shrink a volume (was ${String(before)}, now ${String(after)}); the data stays on the volume as it is`];
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

// ---- spec.garbageCollection ----

const CRON_MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const CRON_FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** Why a CronJob schedule (the five fields or a macro, as Kubernetes parses it) is invalid, or undefined. */
export function cronProblem(schedule: unknown): string | undefined {
  if (typeof schedule !== 'string' || schedule.trim() === '') return 'must be a cron schedule, e.g. "30 2 * * *" (02:30 UTC daily)';
  if (/^\s*(CRON_)?TZ=/.test(schedule)) return 'must not set a time zone: schedules are UTC';
  if (CRON_MACROS.has(schedule.trim())) return undefined;
  const parts = schedule.trim().split(/\s+/);
  if (parts.length !== 5) return `must have 5 fields (minute hour day-of-month month day-of-week), has ${parts.length}`;
  for (const [i, part] of parts.entries()) {
    const spec = CRON_FIELDS[i] as (typeof CRON_FIELDS)[number];
    const value = (text: string) => {
      const index = spec.names?.indexOf(text.toLowerCase()) ?? -1;
      return index >= 0 ? index + (spec.name === 'month' ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : Number.NaN;
    };
    for (const item of part.split(',')) {
      const match = /^(\*|\?|([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?)(?:\/(\d+))?$/.exec(item);
      const numbers = match ? [match[2], match[3]].filter((n): n is string => n !== undefined).map(value) : [];
      const inRange = numbers.every((n) => n >= spec.min && n <= spec.max) && (numbers.length < 2 || (numbers[0] as number) <= (numbers[1] as number));
      if (!match || !inRange || (match[4] !== undefined && Number(match[4]) === 0)) return `field ${i + 1} (${spec.name}) ${JSON.stringify(item)}: must be *, a value ${spec.min}-${spec.max}${spec.names ? ' or a name' : ''}, a range a-b, a list or a step /n`;
    }
  }
  return undefined;
}

function validateKeepTags(keep: unknown, path: string): Problems {
  if (!isPlainObject(keep)) return [`${path}: required; an object with patterns, mostRecentlyPushedCount and/or pushedWithin (the tags kept; every other tag is deleted)`];
  const { patterns, mostRecentlyPushedCount, pushedWithin } = keep;
  const problems: Problems = [];
  if (patterns === undefined && mostRecentlyPushedCount === undefined && pushedWithin === undefined) problems.push(`${path}: set at least one of patterns, mostRecentlyPushedCount and pushedWithin (an empty rule would delete every tag)`);
  problems.push(...validateGlobs(patterns, `${path}.patterns`, false));
  if (mostRecentlyPushedCount !== undefined && !(Number.isInteger(mostRecentlyPushedCount) && (mostRecentlyPushedCount as number) >= 0)) problems.push(`${path}.mostRecentlyPushedCount: must be an integer >= 0`);
  if (pushedWithin !== undefined && !(typeof pushedWithin === 'string' && isDuration(pushedWithin) && parseDuration(pushedWithin) > 0)) problems.push(`${path}.pushedWithin: must be a positive duration, e.g. 720h`);
  return problems;
}

function validateGlobs(globs: unknown, path: string, required: boolean): Problems {
  if (globs === undefined && !required) return [];
  if (!Array.isArray(globs) || globs.length === 0) return [`${path}: must be a non-empty list of glob patterns, e.g. ["release-*"]`];
  return globs.flatMap((glob, i) => (typeof glob === 'string' && glob !== '' && glob.length <= 256 ? [] : [`${path}[${i}]: must be a glob pattern of 1-256 characters (* any characters but /, ** also /, ? one character)`]));
}

export function validateGarbageCollection(gc: unknown, path = 'spec.garbageCollection'): Problems {
  if (gc === undefined || gc === null) return [];
  if (!isPlainObject(gc)) return [`${path}: must be an object with enabled, schedule, deleteUntagged, dryRun, timeout and retention`];
  const { enabled, schedule, deleteUntagged, dryRun, timeout, retention } = gc;
  const problems: Problems = [];
  for (const [key, value] of Object.entries({ enabled, deleteUntagged, dryRun })) {
    if (value !== undefined && typeof value !== 'boolean') problems.push(`${path}.${key}: must be true or false`);
  }
  if (schedule !== undefined) {
    const problem = cronProblem(schedule);
    if (problem) problems.push(`${path}.schedule: ${problem}`);
  }
  if (timeout !== undefined && !(typeof timeout === 'string' && isDuration(timeout) && parseDuration(timeout) >= GC_TIMEOUT_RANGE_MS.min && parseDuration(timeout) <= GC_TIMEOUT_RANGE_MS.max)) {
    problems.push(`${path}.timeout: must be a duration from 30s to 24h, e.g. 15m (pushes are refused for at most this long if a run fails)`);
  }
  if (retention !== undefined) {
    if (!Array.isArray(retention)) return [...problems, `${path}.retention: must be a list of policies {repositories, keepTags}`];
    retention.forEach((policy, i) => {
      const at = `${path}.retention[${i}]`;
      if (!isPlainObject(policy)) return problems.push(`${at}: must be an object with repositories and keepTags`);
      problems.push(...validateGlobs(policy['repositories'], `${at}.repositories`, true), ...validateKeepTags(policy['keepTags'], `${at}.keepTags`));
    });
  }
  return problems;
}
