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

export interface ImageRegistrySpec {
  replicas?: number;
  persistentVolumeClaim?: PersistentVolumeClaimSpec;
  tls?: CertificateSource;
  auth?: { ca?: CertificateSource; acl?: AclEntry[] };
}

export interface ImageRegistryStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  hostname?: string;
  tlsSecretName?: string;
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
}
