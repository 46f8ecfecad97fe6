// Expanding and defaulting of the project's custom resources, as JSON Patch `add` operations for
// what is missing (the mutating webhook's answer). Values already present are never replaced,
// except the registry label on push/pull CRs, which the operator owns (a stale value would hide
// the CR from the Jobs that select by it).
//
// On UPDATE, fields that are immutable once set (registryRef, storageClassName, accessModes) are
// filled from the previous object when the new one omits them: an apply that leaves them out
// keeps them instead of tripping the immutability check or picking up a changed default.
import { defaultAcl } from './docker-auth-config.ts';
import { DEFAULT_GC_TIMEOUT, defaultGcSchedule } from './gc-defaults.ts';
import { field, isPlainObject, missingAddOps, pointer, type JsonPatchOp } from './json-patch.ts';
import { registryLabelValue, REGISTRY_LABEL, type RegistryKey } from './reconcile-job.ts';
import type { OperatorConfig } from './types.ts';
import { isDns1035Label, isDns1123Label } from './validation/formats.ts';

// The ACL made explicit is the one docker_auth gets for a registry without spec.auth.acl.
export { defaultAcl };

export const DEFAULT_REPLICAS = 1;
export const DEFAULT_STORAGE = '8Gi';
/** distribution's s3 driver needs a region; S3-compatible servers mostly accept any, AWS's default is this. */
export const DEFAULT_S3_REGION = 'us-east-1';
/** The key names `aws configure export-credentials --format env` and most tools use. */
export const DEFAULT_ACCESS_KEY_ID_KEY = 'AWS_ACCESS_KEY_ID';
export const DEFAULT_SECRET_ACCESS_KEY_KEY = 'AWS_SECRET_ACCESS_KEY';
export const DEFAULT_CA_KEY = 'ca.crt';
/** A pull-through cache (spec.proxy): distribution's own default expiry, and the usual key names of an account. */
export const DEFAULT_PROXY_TTL = '168h';
export const DEFAULT_PROXY_USERNAME_KEY = 'username';
export const DEFAULT_PROXY_PASSWORD_KEY = 'password';

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Gives `issuerRef` an explicit kind (cert-manager's own default is Issuer). */
function issuerKindDefaults(source: unknown): Record<string, unknown> | undefined {
  return isPlainObject(field(source, 'issuerRef')) ? { issuerRef: { kind: 'Issuer' } } : undefined;
}

/**
 * A bucket: region us-east-1, path-style addressing with an endpoint of its own (S3-compatible
 * servers rarely have the wildcard DNS names virtual-hosted style needs), the usual key names of
 * an AWS key pair, the CA's key ca.crt.
 */
function s3Defaults(s3: unknown): Record<string, unknown> {
  const endpoint = field(s3, 'endpoint');
  const credentials = field(s3, 'credentialsSecret');
  const ca = field(s3, 'ca');
  return {
    region: DEFAULT_S3_REGION,
    forcePathStyle: typeof endpoint === 'string' && endpoint !== '',
    ...(isPlainObject(credentials) ? { credentialsSecret: { accessKeyIDKey: DEFAULT_ACCESS_KEY_ID_KEY, secretAccessKeyKey: DEFAULT_SECRET_ACCESS_KEY_KEY } } : {}),
    ...(isPlainObject(ca) ? { ca: { key: DEFAULT_CA_KEY } } : {}),
  };
}

/**
 * ImageRegistry: replicas 1; the volume (accessModes ReadWriteOnce for one replica, ReadWriteMany
 * for more; storage 8Gi) unless spec.storage.s3 chooses a bucket (then s3Defaults); the default ACL
 * made explicit; issuerRef.kind Issuer.
 */
export function defaultImageRegistry(registry: unknown, old?: unknown, namespace?: string): JsonPatchOp[] {
  const spec = field(registry, 'spec');
  if (present(spec) && !isPlainObject(spec)) return [];
  const s3 = field(spec, 'storage', 's3');
  if (isPlainObject(s3)) return missingAddOps(registry, { spec: { replicas: DEFAULT_REPLICAS, storage: { s3: s3Defaults(s3) }, ...certificateAndAclDefaults(spec), ...proxyDefaults(spec), ...gcDefaults(registry, namespace) } });
  const replicas = field(spec, 'replicas');
  const oldPvc = (key: string) => field(old, 'spec', 'persistentVolumeClaim', key);
  const accessModes = oldPvc('accessModes') ?? [typeof replicas === 'number' && replicas > 1 ? 'ReadWriteMany' : 'ReadWriteOnce'];
  const storage = field(old, 'spec', 'persistentVolumeClaim', 'resources', 'requests', 'storage') ?? DEFAULT_STORAGE;
  const storageClassName = oldPvc('storageClassName');
  return missingAddOps(registry, {
    spec: {
      replicas: DEFAULT_REPLICAS,
      persistentVolumeClaim: {
        ...(present(storageClassName) ? { storageClassName } : {}),
        accessModes,
        resources: { requests: { storage } },
      },
      ...certificateAndAclDefaults(spec),
      ...proxyDefaults(spec),
      ...gcDefaults(registry, namespace),
    },
  });
}

/** Collection of unreferenced data on (it deletes nothing an image needs); no tag or untagged manifest deleted unless asked. */
function gcDefaults(registry: unknown, requestNamespace?: string): Record<string, unknown> {
  const gc = field(registry, 'spec', 'garbageCollection');
  if (present(gc) && !isPlainObject(gc)) return {};
  // metadata.namespace may be left out of a created object: the admission request's namespace is its own
  const namespace = String(field(registry, 'metadata', 'namespace') ?? requestNamespace ?? '');
  const name = String(field(registry, 'metadata', 'name') ?? '');
  return { garbageCollection: { enabled: true, schedule: defaultGcSchedule(namespace, name), deleteUntagged: false, dryRun: false, timeout: DEFAULT_GC_TIMEOUT } };
}

/** A pull-through cache: content expires after 168h, the account's keys username and password, the CA's ca.crt. */
function proxyDefaults(spec: unknown): Record<string, unknown> {
  const proxy = field(spec, 'proxy');
  if (!isPlainObject(proxy)) return {};
  return {
    proxy: {
      ttl: DEFAULT_PROXY_TTL,
      ...(isPlainObject(proxy['credentialsSecret']) ? { credentialsSecret: { usernameKey: DEFAULT_PROXY_USERNAME_KEY, passwordKey: DEFAULT_PROXY_PASSWORD_KEY } } : {}),
      ...(isPlainObject(proxy['ca']) ? { ca: { key: DEFAULT_CA_KEY } } : {}),
    },
  };
}

function certificateAndAclDefaults(spec: unknown): Record<string, unknown> {
  const tls = issuerKindDefaults(field(spec, 'tls'));
  const ca = issuerKindDefaults(field(spec, 'auth', 'ca'));
  return { ...(tls ? { tls } : {}), auth: { ...(ca ? { ca } : {}), acl: defaultAcl() } };
}

export interface ImageSecretContext {
  config: OperatorConfig;
  /** the namespace of the ImagePushSecret / ImagePullSecret */
  namespace: string;
  /** the previous object on UPDATE */
  old?: unknown;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * The registry a push/pull CR belongs to. No registryRef → the operator's default registry (in
 * the configured default namespace, else the CR's own). A name without a namespace → the CR's
 * namespace, as for most references in Kubernetes.
 */
export function resolveRegistryRef(secret: unknown, { config, namespace, old }: ImageSecretContext): RegistryKey {
  const ref = (obj: unknown, key: string) => nonEmptyString(field(obj, 'spec', 'registryRef', key));
  const name = ref(secret, 'name') ?? ref(old, 'name');
  const refNamespace = ref(secret, 'namespace') ?? ref(old, 'namespace');
  if (name !== undefined) return { name, namespace: refNamespace ?? namespace };
  return { name: config.defaultRegistry.name, namespace: refNamespace ?? config.defaultRegistry.namespace ?? namespace };
}

/** ImagePushSecret / ImagePullSecret: registryRef filled in, the registry label set. */
export function defaultImageSecret(secret: unknown, context: ImageSecretContext): JsonPatchOp[] {
  const spec = field(secret, 'spec');
  if (!isPlainObject(secret) || (present(spec) && !isPlainObject(spec))) return [];
  const registry = resolveRegistryRef(secret, context);
  const ops = missingAddOps(secret, { spec: { registryRef: { name: registry.name, namespace: registry.namespace } } });
  // an invalid reference is denied by validation; a label made of it would fail earlier and less clearly
  if (!isDns1035Label(registry.name) || !isDns1123Label(registry.namespace)) return ops;
  const value = registryLabelValue(registry);
  const metadata = secret['metadata'];
  const labels = field(metadata, 'labels');
  if (!isPlainObject(metadata)) return [...ops, { op: 'add', path: '/metadata', value: { labels: { [REGISTRY_LABEL]: value } } }];
  if (!isPlainObject(labels)) return [...ops, { op: 'add', path: '/metadata/labels', value: { [REGISTRY_LABEL]: value } }];
  if (labels[REGISTRY_LABEL] === value) return ops;
  return [...ops, { op: 'add', path: pointer('metadata', 'labels', REGISTRY_LABEL), value }];
}
