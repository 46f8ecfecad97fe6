// Validation of ImageRegistry: certificate sources, volume claim, storage (S3), immutable fields;
// see formats.ts for the conventions.
import { field, isPlainObject, jsonEqual } from '../json-patch.ts';
import { validateAcl } from './acl.ts';
import { immutableOnceSet, isDns1035Label, isDns1123Subdomain, isPositiveQuantity, isS3BucketName, quantityValue, serverUrlProblem, validateCaReference, validateKeyName, type Problems } from './formats.ts';
import { validateGarbageCollection } from './garbage-collection.ts';
import { validateProxy } from './proxy.ts';

export const ACCESS_MODES = ['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod'] as const;
export const ISSUER_KINDS = ['Issuer', 'ClusterIssuer'] as const;
/** StatefulSet pods carry `<name>-<revision hash>` as a label value (≤ 63), which leaves 52. */
export const MAX_REGISTRY_NAME = 52;
/** The storage budget of a registry (kustomize/monitoring: image_registry_storage_budget_bytes), a quantity. */
export const STORAGE_BUDGET_ANNOTATION = 'registry.mgoltzsche.github.com/storage-budget';

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

const MIGRATION_HINT =
  'the images stay where they are; to move them, create a new ImageRegistry with the storage you want, copy the images (e.g. skopeo sync or regctl image copy), point clients at it and delete this one';


/** The endpoint's URL: nothing the driver would ignore or leak. */
const ENDPOINT_MESSAGES = {
  missing: 'must be an http:// or https:// URL, e.g. https://s3.example.org',
  invalid: 'must be an http:// or https:// URL, e.g. https://s3.example.org',
  scheme: 'must start with http:// or https://',
  credentials: 'must not hold credentials; name a Secret in credentialsSecret instead',
  path: 'must be the server only (scheme, host, port), without path or query; the bucket goes into bucket',
};


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
    const problem = serverUrlProblem(endpoint, ENDPOINT_MESSAGES);
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
  const budget = field(registry, 'metadata', 'annotations', STORAGE_BUDGET_ANNOTATION);
  if (budget !== undefined && !isPositiveQuantity(budget)) {
    problems.push(`metadata.annotations["${STORAGE_BUDGET_ANNOTATION}"]: must be a positive quantity of bytes, e.g. 500Gi (the storage budget the ImageRegistryBucketOverBudget alert compares the stored bytes with)`);
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
  problems.push(...validateProxy(spec, old));
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
