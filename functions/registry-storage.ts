// Where a registry keeps its data, as everything that runs the `registry` binary on it needs it:
// the `storage` section of config.yml, the container's environment, volumes and mounts, and the
// pod's ServiceAccount. The registry pod (registry-objects.ts) uses it, and so must anything else
// that opens the same storage (e.g. a `registry garbage-collect` Job): one description, one truth.
//
// Credentials never enter config.yml (a Secret the operator writes and anyone who may read it sees):
// they reach the container as environment variables from the user's Secret (secretKeyRef), which
// distribution reads as overrides of storage.s3.accesskey / secretkey.
import { createHash } from 'node:crypto';
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { DEFAULT_ACCESS_KEY_ID_KEY, DEFAULT_CA_KEY, DEFAULT_S3_REGION, DEFAULT_SECRET_ACCESS_KEY_KEY } from './defaults.ts';
import { dataClaimName } from './names.ts';
import type { CaReference, ImageRegistry, S3StorageSpec } from './types.ts';

export const REGISTRY_DATA_PATH = '/var/lib/registry';
/** Where the CA of a private S3 endpoint is mounted; Go reads SSL_CERT_DIR beside its system bundle. */
export const STORAGE_CA_DIR = '/etc/registry-storage-ca';
export const STORAGE_CA_FILE = 'ca.crt';
export const ACCESS_KEY_ENV = 'REGISTRY_STORAGE_S3_ACCESSKEY';
export const SECRET_KEY_ENV = 'REGISTRY_STORAGE_S3_SECRETKEY';
/** The health check of the storage driver: a bucket that fails it makes the pod unready after interval × threshold. */
export const STORAGE_HEALTH = { interval: '5s', threshold: 2 } as const;
const VOLUME_HEALTH = { interval: '10s', threshold: 3 } as const;

export type StorageKind = 'volume' | 's3';

export interface RegistryStorage {
  kind: StorageKind;
  /** config.yml's `storage` section */
  config: Record<string, unknown>;
  /** config.yml's `health.storagedriver` */
  health: { enabled: true; interval: string; threshold: number };
  /** for the container that runs `registry` */
  env: V1EnvVar[];
  volumeMounts: V1VolumeMount[];
  /** for its pod */
  volumes: V1Volume[];
  serviceAccountName?: string;
  /** the objects whose content the container reads only at start: a change must restart it */
  readAtStart: StorageReference[];
}

/** A Secret or ConfigMap key the storage needs, with the spec fields that name the object and the key. */
export interface StorageReference {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  key: string;
  nameField: string;
  keyField: string;
  /** the reason a missing object or key gives */
  reason: 'StorageCredentialsNotFound' | 'StorageCANotFound' | 'UpstreamCredentialsNotFound' | 'UpstreamCANotFound';
}

const SECRET_MODE = 0o440;

export function storageKind(registry: ImageRegistry): StorageKind {
  return registry.spec?.storage?.s3 ? 's3' : 'volume';
}

/** The storage of the registry, for its pod and for any Job that opens the same storage. */
export function registryStorage(registry: ImageRegistry): RegistryStorage {
  const s3 = registry.spec?.storage?.s3;
  return s3 ? bucketStorage(s3) : volumeStorage(registry);
}

/**
 * distribution's purge of abandoned uploads, written out (its defaults, which a later version may
 * change): uploads older than `age` are removed every `interval`. A bucket's multipart uploads of
 * that age are aborted by the upload-cleanup CronJob (upload-cleanup.ts), which reads `age` here.
 */
export const UPLOAD_PURGING = { enabled: true, age: '168h', interval: '24h', dryrun: false } as const;

/**
 * Settings both kinds share: deletes allowed (the API's DELETE, garbage collection), uploads
 * purged. No blob descriptor cache: garbage collection runs in another process, and a registry
 * whose in-memory cache still knows a blob GC deleted answers HEAD 200 for it — a push then skips
 * the layer and leaves an image that cannot be pulled (test/process/gc-freeze.test.ts saw GETs of
 * such blobs aborted after their 200). Without it each blob lookup is a stat of the storage.
 */
function common(driver: Record<string, unknown>): Record<string, unknown> {
  return { ...driver, delete: { enabled: true }, maintenance: { uploadpurging: { ...UPLOAD_PURGING } } };
}

/** config.yml's part of the volume storage (the claim mounted at REGISTRY_DATA_PATH). */
export function volumeStorageConfig(): Pick<RegistryStorage, 'config' | 'health'> {
  return { config: common({ filesystem: { rootdirectory: REGISTRY_DATA_PATH } }), health: { enabled: true, ...VOLUME_HEALTH } };
}

function volumeStorage(registry: ImageRegistry): RegistryStorage {
  const name = registry.metadata.name ?? '';
  return {
    kind: 'volume',
    ...volumeStorageConfig(),
    env: [],
    volumeMounts: [{ name: 'data', mountPath: REGISTRY_DATA_PATH }],
    volumes: [{ name: 'data', persistentVolumeClaim: { claimName: dataClaimName(name) } }],
    readAtStart: [],
  };
}

function bucketStorage(s3: S3StorageSpec): RegistryStorage {
  const endpoint = s3.endpoint ? new URL(s3.endpoint) : undefined;
  const driver = {
    bucket: s3.bucket,
    region: s3.region ?? DEFAULT_S3_REGION,
    ...(endpoint ? { regionendpoint: endpoint.origin } : {}),
    forcepathstyle: s3.forcePathStyle ?? endpoint !== undefined,
    // the scheme of the endpoint decides; AWS itself is always https
    secure: endpoint ? endpoint.protocol === 'https:' : true,
    v4auth: true,
    ...(s3.rootDirectory ? { rootdirectory: s3.rootDirectory } : {}),
  };
  const readAtStart: StorageReference[] = [];
  const env: V1EnvVar[] = [];
  const credentials = s3.credentialsSecret;
  if (credentials) {
    const accessKey = credentials.accessKeyIDKey ?? DEFAULT_ACCESS_KEY_ID_KEY;
    const secretKey = credentials.secretAccessKeyKey ?? DEFAULT_SECRET_ACCESS_KEY_KEY;
    env.push(
      { name: ACCESS_KEY_ENV, valueFrom: { secretKeyRef: { name: credentials.name, key: accessKey } } },
      { name: SECRET_KEY_ENV, valueFrom: { secretKeyRef: { name: credentials.name, key: secretKey } } },
    );
    const field = 'spec.storage.s3.credentialsSecret';
    const ref = { kind: 'Secret', name: credentials.name, nameField: `${field}.name`, reason: 'StorageCredentialsNotFound' } as const;
    readAtStart.push({ ...ref, key: accessKey, keyField: `${field}.accessKeyIDKey` }, { ...ref, key: secretKey, keyField: `${field}.secretAccessKeyKey` });
  }
  const volumes: V1Volume[] = [];
  const volumeMounts: V1VolumeMount[] = [];
  const ca = s3.ca && caMount(s3.ca, { volume: 'storage-ca', dir: STORAGE_CA_DIR, file: STORAGE_CA_FILE, field: 'spec.storage.s3.ca', reason: 'StorageCANotFound' });
  if (ca) {
    volumes.push(ca.volume);
    volumeMounts.push(ca.mount);
    // Go adds the certificates of SSL_CERT_DIR to its system bundle (which it still reads from its
    // usual file), once per process: the CA is read at start
    env.push({ name: 'SSL_CERT_DIR', value: STORAGE_CA_DIR });
    readAtStart.push(ca.reference);
  }
  return {
    kind: 's3',
    // Without redirect.disable a blob GET answers 307 to a presigned URL of the endpoint, which
    // clients outside the cluster (or without a route to a private endpoint) cannot reach.
    config: { ...common({ s3: driver }), redirect: { disable: true } },
    health: { enabled: true, ...STORAGE_HEALTH },
    env,
    volumeMounts,
    volumes,
    ...(s3.serviceAccountName ? { serviceAccountName: s3.serviceAccountName } : {}),
    readAtStart,
  };
}

/**
 * A CA key of a Secret or ConfigMap (a bucket's, a pull-through cache's upstream's) mounted as `file`
 * in `dir` of the registry container, and the reference whose change rolls the pods; undefined when
 * the reference names no object.
 */
export function caMount(
  ca: CaReference,
  where: { volume: string; dir: string; file: string; field: string; reason: StorageReference['reason'] },
): { volume: V1Volume; mount: V1VolumeMount; reference: StorageReference } | undefined {
  if (!ca.secretName && !ca.configMapName) return undefined;
  const key = ca.key ?? DEFAULT_CA_KEY;
  const items = [{ key, path: where.file }];
  const volume: V1Volume = ca.secretName
    ? { name: where.volume, secret: { secretName: ca.secretName, items, defaultMode: SECRET_MODE } }
    : { name: where.volume, configMap: { name: ca.configMapName ?? '', items, defaultMode: 0o444 } };
  const ref = { key, keyField: `${where.field}.key`, reason: where.reason } as const;
  const reference: StorageReference = ca.secretName
    ? { ...ref, kind: 'Secret', name: ca.secretName, nameField: `${where.field}.secretName` }
    : { ...ref, kind: 'ConfigMap', name: ca.configMapName ?? '', nameField: `${where.field}.configMapName` };
  return { volume, mount: { name: where.volume, mountPath: where.dir, readOnly: true }, reference };
}

/**
 * Why the storage cannot work as configured, naming the field, or undefined. `present` tells
 * whether a referenced object exists and which keys it has (undefined: not found).
 */
export function storageReferenceProblem(
  storage: Pick<RegistryStorage, 'readAtStart'>,
  present: (ref: StorageReference) => readonly string[] | undefined,
): { reason: string; message: string } | undefined {
  for (const ref of storage.readAtStart) {
    const keys = present(ref);
    if (keys === undefined) return { reason: ref.reason, message: `${ref.nameField}: ${ref.kind} ${ref.name} not found in the registry's namespace; the registry pods cannot start without it` };
    if (!keys.includes(ref.key)) return { reason: ref.reason, message: `${ref.keyField}: ${ref.kind} ${ref.name} has no key ${ref.key}` };
  }
  return undefined;
}

/**
 * A digest of the referenced keys' values (`value` reads one; undefined when missing), so that a
 * rotated credential or CA rolls the pods; the values themselves never leave this function.
 */
export function storageReferencesDigest(storage: Pick<RegistryStorage, 'readAtStart'>, value: (ref: StorageReference) => string | undefined): string {
  if (storage.readAtStart.length === 0) return '';
  const hash = createHash('sha256');
  for (const ref of storage.readAtStart) {
    const text = value(ref) ?? '';
    hash.update(`${ref.kind}/${ref.name}/${ref.key}:${text.length}:`).update(text);
  }
  return hash.digest('hex');
}

export const STORAGE_UNAVAILABLE = 'StorageUnavailable';
/** How long a registry runs before its storage health check can have failed (interval × threshold, plus a second). */
export const STORAGE_HEALTH_WINDOW_MS = (Number.parseInt(STORAGE_HEALTH.interval, 10) * STORAGE_HEALTH.threshold + 1) * 1000;
const MAX_HEALTH_MESSAGE = 800;

export interface PodHealthAnswer {
  pod: string;
  /** HTTP status of the registry's health endpoint (through the pod's nginx); 0 when unreachable */
  status: number;
  /** the last lines of the pod's registry container log, when they could be read */
  log?: string;
}

/**
 * The registry's own verdict on its storage: once its storage health check has failed `threshold`
 * times, distribution answers every request 503 ("health check failed") and logs each failure as
 * `storage driver health check: <error>` (json formatter). `secrets` are blanked out of the
 * message, in case an error quotes what it was given.
 */
export function storageHealthProblem(answers: readonly PodHealthAnswer[], secrets: readonly string[] = []): { reason: string; message: string } | undefined {
  const failing = answers.find((answer) => answer.status === 503);
  if (!failing) return undefined;
  let detail = lastHealthCheckError(failing.log ?? '') ?? `see kubectl logs ${failing.pod} -c registry`;
  for (const secret of secrets) if (secret.length >= 4) detail = detail.replaceAll(secret, '[redacted]');
  if (detail.length > MAX_HEALTH_MESSAGE) detail = `${detail.slice(0, MAX_HEALTH_MESSAGE)}…`;
  return { reason: STORAGE_UNAVAILABLE, message: `pod ${failing.pod}: the registry's storage health check fails: ${detail}; check spec.storage.s3 (bucket, endpoint, credentials) and the bucket's permissions` };
}

const HEALTH_CHECK_PREFIX = 'storage driver health check: ';

/** The error of the last failed storage health check in a registry log (one JSON object a line). */
function lastHealthCheckError(log: string): string | undefined {
  const lines = log.split('\n').reverse();
  for (const line of lines) {
    if (!line.includes(HEALTH_CHECK_PREFIX)) continue;
    try {
      const msg = (JSON.parse(line) as { msg?: unknown }).msg;
      if (typeof msg === 'string' && msg.startsWith(HEALTH_CHECK_PREFIX)) return msg.slice(HEALTH_CHECK_PREFIX.length).replace(/\s+/g, ' ').trim();
    } catch {
      // not a JSON log line
    }
  }
  return undefined;
}

/**
 * The storage's env for a Node.js container that opens the bucket (upload cleanup, retention): the
 * credentials as the registry gets them; the CA as NODE_EXTRA_CA_CERTS (Node reads extra CAs from
 * one file, at start; Go's SSL_CERT_DIR is for the registry).
 */
export function nodeStorageEnv(storage: RegistryStorage): V1EnvVar[] {
  const caMounted = storage.volumeMounts.some((mount) => mount.mountPath === STORAGE_CA_DIR);
  return [...storage.env.filter((e) => e.name !== 'SSL_CERT_DIR'), ...(caMounted ? [{ name: 'NODE_EXTRA_CA_CERTS', value: `${STORAGE_CA_DIR}/${STORAGE_CA_FILE}` }] : [])];
}
