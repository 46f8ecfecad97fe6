// TypeScript shapes of the project's custom resources (registry.mgoltzsche.github.com/v1alpha1)
// and the few Kubernetes shapes the pure functions work on.

export const API_GROUP = 'registry.mgoltzsche.github.com';
export const API_VERSION = 'v1alpha1';
export const GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

export const KINDS = ['ImageRegistry', 'ImageRegistryAccount', 'ImagePushSecret', 'ImagePullSecret'] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface IssuerRef {
  name: string;
  kind?: 'Issuer' | 'ClusterIssuer';
}

/** tls / auth.ca: none → self-signed; secretName → existing Secret; issuerRef → cert-manager. */
export interface CertificateSource {
  secretName?: string;
  issuerRef?: IssuerRef;
}

export const ACL_ACTIONS = ['push', 'pull', '*'] as const;
export type AclAction = (typeof ACL_ACTIONS)[number];

/** The match keys docker_auth knows; any other key would be silently dropped by it. */
export const ACL_MATCH_KEYS = ['account', 'type', 'name', 'ip', 'service', 'labels'] as const;

export interface AclMatch {
  account?: string;
  type?: string;
  name?: string;
  ip?: string;
  service?: string;
  labels?: Record<string, string>;
}

export interface AclEntry {
  match: AclMatch;
  actions: string[];
  comment?: string;
}

export interface PersistentVolumeClaimSpec {
  storageClassName?: string;
  accessModes?: string[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  deleteClaim?: boolean;
}

/** A key of a Secret or ConfigMap in the registry's namespace that holds PEM CA certificates. */
export interface CaReference {
  secretName?: string;
  configMapName?: string;
  /** default ca.crt */
  key?: string;
}

/** The Secret (in the registry's namespace) whose keys hold an S3 access key pair. */
export interface S3CredentialsSecret {
  name: string;
  /** default AWS_ACCESS_KEY_ID */
  accessKeyIDKey?: string;
  /** default AWS_SECRET_ACCESS_KEY */
  secretAccessKeyKey?: string;
}

/** An S3-compatible bucket that holds the registry's data (distribution's s3 driver). */
export interface S3StorageSpec {
  bucket: string;
  /** default us-east-1 */
  region?: string;
  /** http(s) URL of an S3-compatible server; absent → AWS S3 of the region */
  endpoint?: string;
  /** default true with an endpoint, false without */
  forcePathStyle?: boolean;
  /** key prefix in the bucket, e.g. /registry */
  rootDirectory?: string;
  /** CA to trust for the endpoint's TLS certificate, beside the system roots */
  ca?: CaReference;
  /** absent → the driver's default credential chain (environment, workload identity, instance role) */
  credentialsSecret?: S3CredentialsSecret;
  /** ServiceAccount the registry pods run as (workload identity binds a cloud role to it) */
  serviceAccountName?: string;
}

/** Where the registry keeps its data: absent or without s3 → the volume of spec.persistentVolumeClaim. */
export interface StorageSpec {
  s3?: S3StorageSpec;
}

/** The Secret (in the registry's namespace) with the upstream account of a pull-through cache. */
export interface ProxyCredentialsSecret {
  name: string;
  /** default username */
  usernameKey?: string;
  /** default password */
  passwordKey?: string;
}

/** Pulls without credentials a pull-through cache answers. */
export interface AnonymousPull {
  /** client addresses (CIDRs or single IPs) that may pull without credentials, e.g. the cluster's pod and node networks */
  networks: string[];
  /** required with credentialsSecret: every image the upstream account can read becomes pullable from these networks */
  includePrivateUpstreamImages?: boolean;
}

/** The registry is a pull-through cache of one upstream registry (distribution's proxy mode). */
export interface ProxySpec {
  /** the upstream, e.g. https://registry-1.docker.io (Docker Hub) */
  remoteURL: string;
  /** the upstream account (e.g. Docker Hub's higher pull limit); absent: anonymous upstream pulls */
  credentialsSecret?: ProxyCredentialsSecret;
  /** the upstream's CA, beside the system roots */
  ca?: CaReference;
  /** how long cached content is kept after it was fetched; 0: forever; default 168h */
  ttl?: string;
  /** image hosts (e.g. docker.io) the nodes pull through this cache, with node trust on */
  mirrorFor?: string[];
  anonymousPull?: AnonymousPull;
}

export interface ImageRegistrySpec {
  replicas?: number;
  proxy?: ProxySpec;
  persistentVolumeClaim?: PersistentVolumeClaimSpec;
  storage?: StorageSpec;
  tls?: CertificateSource;
  auth?: { ca?: CertificateSource; acl?: AclEntry[] };
  garbageCollection?: GarbageCollectionSpec;
}

/** Which tags of the repositories a retention policy covers are kept; every other tag is deleted. */
export interface KeepTags {
  /** tags whose name matches one of these globs, e.g. release-* */
  patterns?: string[];
  /** the N tags pushed last */
  mostRecentlyPushedCount?: number;
  /** tags pushed within this duration before the run, e.g. 720h */
  pushedWithin?: string;
}

/** Tag retention for the repositories matching `repositories` (globs; ** crosses slashes). */
export interface RetentionPolicy {
  repositories: string[];
  keepTags: KeepTags;
}

/** Scheduled garbage collection (under a write freeze) and tag retention. */
export interface GarbageCollectionSpec {
  /** false: no scheduled runs (a run forced from the CronJob still runs); default true */
  enabled?: boolean;
  /** cron, UTC; default once a day at a time from a hash of namespace/name */
  schedule?: string;
  /** also delete manifests no tag points to (an overwritten :latest); default false */
  deleteUntagged?: boolean;
  /** report what would be deleted, delete nothing; default false */
  dryRun?: boolean;
  /** the longest a run may take (the write freeze ends by then at the latest); default 15m */
  timeout?: string;
  /** absent: no tag is ever deleted */
  retention?: RetentionPolicy[];
}

/** What the last garbage collection run did. */
export interface GarbageCollectionRun {
  startTime: string;
  completionTime: string;
  result: 'Succeeded' | 'Failed';
  dryRun?: boolean;
  message?: string;
  tagsDeleted?: number;
  manifestsDeleted?: number;
  blobsDeleted?: number;
  bytesReclaimed?: number;
  /** first refused write to writes accepted again */
  freezeSeconds?: number;
  /** tags retention kept because a workload of the cluster uses them */
  tagsKeptInUse?: number;
}

export interface ImageRegistryStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  hostname?: string;
  tlsSecretName?: string;
  garbageCollection?: {
    /** `<operator namespace>/<name>` of the CronJob: create a Job from it to run one now */
    cronJob?: string;
    lastRun?: GarbageCollectionRun;
    /** the freeze a run holds now; removed by its report */
    writeFreeze?: { since: string; until: string };
  };
  /** the registry's blobs, as the last garbage collection measured them */
  storage?: { usedBytes: number; measuredAt: string };
}

export interface ImageRegistry {
  apiVersion: string;
  kind: 'ImageRegistry';
  metadata: ObjectMeta;
  spec?: ImageRegistrySpec;
  status?: ImageRegistryStatus;
}

export interface ImageRegistryAccountSpec {
  /** bcrypt hash of the password, never the password itself */
  password: string;
  labels?: Record<string, string[]>;
  /** lifetime from creation, e.g. 48h; absent → never expires */
  ttl?: string;
}

export interface ImageRegistryAccount {
  apiVersion: string;
  kind: 'ImageRegistryAccount';
  metadata: ObjectMeta;
  spec: ImageRegistryAccountSpec;
}

export interface RegistryRef {
  name?: string;
  namespace?: string;
}

export interface ImageSecretSpec {
  registryRef?: RegistryRef;
  /** ImagePullSecret only: ServiceAccounts of the CR's namespace whose imagePullSecrets name its Secret; `["*"]`: all */
  serviceAccounts?: string[];
}

export interface ImageSecretStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  rotation?: number;
  rotationDate?: string;
  /** when the current credentials' account expires */
  expiryDate?: string;
  registry?: { name: string; namespace: string; hostname: string };
}

export type AccessMode = 'push' | 'pull';

export interface ImageSecret {
  apiVersion: string;
  kind: 'ImagePushSecret' | 'ImagePullSecret';
  metadata: ObjectMeta;
  spec?: ImageSecretSpec;
  status?: ImageSecretStatus;
}

/** Operator-wide settings, read from the environment of the webhook and the Jobs. */
export interface OperatorConfig {
  /** namespace the operator (webhook, Jobs, CA Secret) runs in */
  namespace: string;
  /** registries are reachable as <name>.<namespace>.<dnsZone> */
  dnsZone: string;
  /** registry used by push/pull secrets that have no registryRef */
  defaultRegistry: { name: string; namespace?: string };
  images: { registry: string; auth: string; nginx: string; operator: string };
  /** how often push/pull secrets rotate; account TTL defaults to twice this */
  rotationIntervalSeconds: number;
  /** how long a reconcile Job waits for a ready replica */
  rolloutTimeoutSeconds: number;
  /** how long a reconcile Job waits for every ready registry pod to accept new credentials */
  credentialsTimeoutSeconds: number;
  /** node trust (kustomize/node-trust): the namespace of the node-trust Jobs; unset: off */
  nodeTrustNamespace?: string;
}
