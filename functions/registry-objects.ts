// The Kubernetes objects one ImageRegistry consists of, as the reconcile Job applies them
// (server-side apply): StatefulSet, its PodDisruptionBudget, the data PersistentVolumeClaim (a
// volume registry's; registry-storage.ts says what the pod needs of its storage), LoadBalancer Service, config
// Secrets/ConfigMap, TLS Secrets and, with issuerRef, cert-manager Certificates. All carry the
// registry's labels and a controller ownerReference, so deleting the ImageRegistry garbage-collects
// them — the claim only with deleteClaim.
import type { ConfirmationLogin } from './confirmation-logins.ts';
import { createHash } from 'node:crypto';
import type {
  V1ConfigMap,
  V1Container,
  V1CronJob,
  V1ObjectMeta,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Probe,
  V1Secret,
  V1SecurityContext,
  V1Service,
  V1StatefulSet,
  V1Volume,
} from '@kubernetes/client-node';
import { AUTH_CONFIG_DIR, AUTH_CONFIG_FILE, AUTH_CONFIG_PATH, dockerAuthConfig } from './docker-auth-config.ts';
import {
  authConfigSecretName,
  dataClaimName,
  nginxConfigMapName,
  registryAuthCertificateName,
  registryConfigSecretName,
  registryDnsNames,
  registryLabels,
  registrySelectorLabels,
  registryTlsCertificateName,
  registryTlsSecretName,
  registryAuthSecretName,
  serviceName,
  statefulSetName,
  tokenSignerCommonName,
  DEFAULT_CLUSTER_DOMAIN,
  maintenanceConfigMapName,
} from './names.ts';
import { MAINTENANCE_DIR } from './maintenance.ts';
import {
  AUTH_HEALTH_PATH,
  HEALTH_PATH,
  NGINX_COMMAND,
  NGINX_CONFIG_FILE,
  NGINX_CONFIG_PATH,
  NGINX_IPV4_CONFIG_FILE,
  NGINX_IPV4_CONFIG_PATH,
  NGINX_PORT,
  NGINX_TLS_DIR,
  METRICS_PORT,
  REGISTRY_HEALTH_PATH,
  nginxConfigFiles,
  type NginxConfigInput,
} from './nginx-config.ts';
import { REGISTRY_CONFIG_PATH, REGISTRY_METRICS_PATH, TRUSTED_TOKEN_KEYS_DIR, registryConfig } from './registry-config.ts';
import { REGISTRY_DATA_PATH, registryStorage, type RegistryStorage } from './registry-storage.ts';
import { mergeContainerEnv, pushRefusal, registryUpstream, type RegistryUpstream } from './pull-through-cache.ts';
import { volumeCheckContainer } from './volume-check.ts';
import { TRUSTED_TOKEN_KEYS_FILE, tokenKeySecretContent, usesThumbprintKeyId, type TokenKeys } from './token-keys.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount, type IssuerRef, type OperatorConfig } from './types.ts';

export const EXTERNAL_DNS_HOSTNAME_ANNOTATION = 'external-dns.alpha.kubernetes.io/hostname';
/** Pod template annotation whose change rolls the pods (renewed certificates, changed configs). */
export const ROLLOUT_CHECKSUM_ANNOTATION = 'registry.mgoltzsche.github.com/rollout-checksum';
export const DEFAULT_STORAGE_SIZE = '8Gi';
export const SERVICE_PORT = 443;
/** Container users: nginx's and distribution's image conventions, nobody for docker_auth. */
export const NGINX_UID = 101;
export const REGISTRY_UID = 1000;
export const AUTH_UID = 65534;

// Secrets are readable by owner and group: the pod's fsGroup (REGISTRY_UID) is every container's
// supplementary group, so each container reads exactly the volumes it mounts.
const SECRET_MODE = 0o440;
const CONFIG_MAP_MODE = 0o444;

export interface CertificateManifest {
  apiVersion: 'cert-manager.io/v1';
  kind: 'Certificate';
  metadata: { name: string; namespace: string; labels: Record<string, string>; ownerReferences: V1OwnerReference[] };
  spec: {
    secretName: string;
    issuerRef: { name: string; kind: string; group: string };
    commonName?: string;
    dnsNames?: string[];
    usages: string[];
    privateKey: { algorithm: 'RSA'; size: number; rotationPolicy: 'Always' };
    secretTemplate: { labels: Record<string, string> };
  };
}

export interface StatefulSetOptions {
  tlsSecretName: string;
  /** e.g. rolloutAnnotations(...): a change rolls the pods */
  templateAnnotations?: Record<string, string>;
}

/** Controller reference to the ImageRegistry; objects without it would outlive the registry. */
export function registryOwnerReference(registry: ImageRegistry): V1OwnerReference {
  const { name, uid } = registry.metadata;
  if (!name || !uid) throw new Error('ImageRegistry needs metadata.name and metadata.uid to own objects');
  return { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', name, uid, controller: true, blockOwnerDeletion: true };
}

/** The registry pod: nginx (TLS on 8443, IPv4 and IPv6) in front of registry and docker_auth on loopback. */
export function desiredStatefulSet(registry: ImageRegistry, config: OperatorConfig, options: StatefulSetOptions): V1StatefulSet {
  const { name } = identity(registry);
  const replicas = registry.spec?.replicas ?? 1;
  const storage = registryStorage(registry);
  const upstream = registryUpstream(registry);
  const spread = { labelSelector: { matchLabels: registrySelectorLabels(name) }, maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: objectMeta(registry, statefulSetName(name)),
    spec: {
      replicas,
      serviceName: serviceName(name),
      selector: { matchLabels: registrySelectorLabels(name) },
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      revisionHistoryLimit: 5,
      template: {
        metadata: { labels: registryLabels(name), annotations: { ...SCRAPE_ANNOTATIONS, ...(options.templateAnnotations ?? {}) } },
        spec: {
          // The pod talks to no Kubernetes API, and service links would inject REGISTRY_* variables
          // (from a Service named "registry") that distribution reads as configuration overrides.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          ...(storage.serviceAccountName ? { serviceAccountName: storage.serviceAccountName } : {}),
          securityContext: {
            runAsNonRoot: true,
            fsGroup: REGISTRY_UID,
            fsGroupChangePolicy: 'OnRootMismatch',
            seccompProfile: { type: 'RuntimeDefault' },
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: registrySelectorLabels(name) } } },
              ],
            },
          },
          // Bucket registries only: a volume registry's template stays as it was (no roll on an
          // upgrade of the operator), and its replicas already spread by the anti-affinity above.
          // Soft: a registry with more replicas than nodes (or zones) still runs them all.
          ...(storage.kind === 's3'
            ? { topologySpreadConstraints: [{ ...spread, topologyKey: 'kubernetes.io/hostname' }, { ...spread, topologyKey: 'topology.kubernetes.io/zone' }] }
            : {}),
          ...(storage.kind === 'volume'
            ? { initContainers: [volumeCheckContainer({ image: config.images.registry, dataPath: REGISTRY_DATA_PATH, volumeMounts: storage.volumeMounts, securityContext: restrictedSecurityContext(REGISTRY_UID) })] }
            : {}),
          containers: [nginxContainer(config), registryContainer(config, storage, upstream), authContainer(config)],
          volumes: [...podVolumes(name, options), ...storage.volumes, ...upstream.volumes],
        },
      },
      // No volumeClaimTemplates: a template gives every pod a claim of its own, and replicas must
      // serve the same blobs (a push through one pod, a pull through another). See desiredDataClaim.
    },
  };
}

/**
 * At most one replica away at a time by a voluntary disruption (a node drain): with one replica a
 * drain may still take it, with more the others keep serving.
 */
export function desiredPodDisruptionBudget(registry: ImageRegistry): V1PodDisruptionBudget {
  const { name } = identity(registry);
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(registry, statefulSetName(name)),
    spec: { maxUnavailable: 1, selector: { matchLabels: registrySelectorLabels(name) } },
  };
}

/**
 * The registry's data on a volume (not with a bucket: see registry-storage.ts): one claim all replicas mount (more than one replica needs ReadWriteMany,
 * which the webhook enforces). Owned by the ImageRegistry only with deleteClaim, so deleting the
 * registry deletes its images only when asked to; applied without an owner, an earlier owner
 * reference of ours is dropped (server-side apply), so deleteClaim can change either way.
 */
export function desiredDataClaim(registry: ImageRegistry): V1PersistentVolumeClaim {
  const { name, namespace } = identity(registry);
  const replicas = registry.spec?.replicas ?? 1;
  const pvc = registry.spec?.persistentVolumeClaim ?? {};
  const accessModes = pvc.accessModes?.length ? [...pvc.accessModes] : [replicas > 1 ? 'ReadWriteMany' : 'ReadWriteOnce'];
  const requests = { storage: DEFAULT_STORAGE_SIZE, ...(pvc.resources?.requests ?? {}) };
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: dataClaimName(name), namespace, labels: registryLabels(name), ...(pvc.deleteClaim ? { ownerReferences: [registryOwnerReference(registry)] } : {}) },
    spec: {
      accessModes,
      ...(pvc.storageClassName ? { storageClassName: pvc.storageClassName } : {}),
      resources: { requests, ...(pvc.resources?.limits ? { limits: { ...pvc.resources.limits } } : {}) },
    },
  };
}

/** LoadBalancer Service 443 → nginx 8443, announced to external-dns under the registry hostname. */
export function desiredService(registry: ImageRegistry, hostname: string): V1Service {
  const { name } = identity(registry);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { ...objectMeta(registry, serviceName(name)), annotations: { [EXTERNAL_DNS_HOSTNAME_ANNOTATION]: hostname } },
    spec: {
      type: 'LoadBalancer',
      // Keeps the client's source address (no SNAT), so docker_auth ACL `ip` rules see the client.
      externalTrafficPolicy: 'Local',
      selector: registrySelectorLabels(name),
      ports: [{ name: 'https', protocol: 'TCP', port: SERVICE_PORT, targetPort: NGINX_PORT }],
    },
  };
}

export interface ConfigSecretsInput {
  registry: ImageRegistry;
  hostname: string;
  /** ImageRegistryAccounts of the registry's namespace */
  accounts: readonly ImageRegistryAccount[];
  now: Date;
  /** stable random secret, kept in the registry config Secret across runs */
  httpSecret: string;
  /** the key docker_auth signs with and the keys the registry trusts (decideTokenKeys) */
  tokenKeys: TokenKeys;
  /** confirmation logins for the auth config (confirmation-logins.ts) */
  confirmationLogins?: readonly ConfirmationLogin[];
  /** loopback addresses; only tests running several registries at once change them */
  authAddress?: string;
  registryAddress?: string;
}

/**
 * docker_auth's `<r>-auth-config` (auth_config.yml, the token key it signs with, the registry's
 * trusted keys) and the registry's `<r>-registry-config` (config.yml).
 */
export function desiredConfigSecrets(input: ConfigSecretsInput): [V1Secret, V1Secret] {
  const { name } = identity(input.registry);
  const auth = dockerAuthConfig({
    registry: input.registry,
    accounts: input.accounts,
    hostname: input.hostname,
    now: input.now,
    thumbprintKeyId: usesThumbprintKeyId(input.tokenKeys.active.certPem),
    ...(input.confirmationLogins ? { confirmationLogins: input.confirmationLogins } : {}),
    ...(input.authAddress ? { address: input.authAddress } : {}),
  });
  const tokenKeys = tokenKeySecretContent(input.tokenKeys);
  const authSecret = opaqueSecret(input.registry, authConfigSecretName(name), { [AUTH_CONFIG_FILE]: auth, ...tokenKeys.files });
  if (Object.keys(tokenKeys.annotations).length) authSecret.metadata = { ...authSecret.metadata, annotations: tokenKeys.annotations };
  const registry = registryConfig({
    hostname: input.hostname,
    httpSecret: input.httpSecret,
    storage: registryStorage(input.registry),
    ...(input.registry.spec?.proxy ? { proxy: input.registry.spec.proxy } : {}),
    ...(input.registryAddress ? { address: input.registryAddress } : {}),
  });
  return [authSecret, opaqueSecret(input.registry, registryConfigSecretName(name), { 'config.yml': registry })];
}

/** Same data and no annotation of ours to add: nothing to write. */
export function sameSecretContent(current: V1Secret, desired: V1Secret): boolean {
  const annotations = { ...current.metadata?.annotations, ...desired.metadata?.annotations };
  return sameStrings(current.data, desired.data) && sameStrings(current.metadata?.annotations, annotations);
}

function sameStrings(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  for (const key of keys) if (a?.[key] !== b?.[key]) return false;
  return true;
}

/** `<r>-nginx` with nginx.conf (both stacks) and nginx-ipv4.conf (see NGINX_COMMAND). */
export function desiredNginxConfigMap(registry: ImageRegistry, nginx: Omit<NginxConfigInput, 'listen'> = {}): V1ConfigMap {
  const { name } = identity(registry);
  const proxy = registry.spec?.proxy;
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: objectMeta(registry, nginxConfigMapName(name)), data: nginxConfigFiles({ ...(proxy ? { pushRefusal: pushRefusal(proxy) } : {}), ...nginx }) };
}

/** A kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) the operator maintains in self-signed mode. */
export function desiredTlsSecret(registry: ImageRegistry, secretName: string, pems: { certPem: string; keyPem: string; caPem: string }): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: objectMeta(registry, secretName),
    data: { 'tls.crt': base64(pems.certPem), 'tls.key': base64(pems.keyPem), 'ca.crt': base64(pems.caPem) },
  };
}

/**
 * The cert-manager Certificate for the serving TLS (`which: 'tls'`) or the token-signing key pair
 * (`which: 'auth'`), or undefined when that source has no issuerRef.
 */
export function desiredCertificate(
  registry: ImageRegistry,
  which: 'tls' | 'auth',
  hostname: string,
  clusterDomain = DEFAULT_CLUSTER_DOMAIN,
): CertificateManifest | undefined {
  const { name, namespace } = identity(registry);
  const source = which === 'tls' ? registry.spec?.tls : registry.spec?.auth?.ca;
  if (!source?.issuerRef) return undefined;
  const names =
    which === 'tls'
      ? { dnsNames: registryDnsNames(name, namespace, hostname, clusterDomain), usages: ['digital signature', 'key encipherment', 'server auth'] }
      : { commonName: tokenSignerCommonName(name, namespace), usages: ['digital signature'] };
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: {
      name: which === 'tls' ? registryTlsCertificateName(name) : registryAuthCertificateName(name),
      namespace,
      labels: registryLabels(name),
      ownerReferences: [registryOwnerReference(registry)],
    },
    spec: {
      secretName: which === 'tls' ? registryTlsSecretName(registry) : registryAuthSecretName(registry),
      issuerRef: issuerRef(source.issuerRef),
      ...names,
      // RSA keeps the token algorithm RS256, which the registry config lists first.
      privateKey: { algorithm: 'RSA', size: 2048, rotationPolicy: 'Always' },
      secretTemplate: { labels: registryLabels(name) },
    },
  };
}

/**
 * Template annotations that roll the pods when something the containers read only at start-up
 * changes: the registry's trusted token keys (its `jwks` file), the registry and nginx configs,
 * a bucket's credentials and CA (environment variables and Go's root pool are read once).
 * Left out: docker_auth's config and signing key — it reloads them itself, and the registry already
 * trusts a key before docker_auth signs with it (token-keys.ts) — and the serving certificate: nginx
 * reads it at every TLS handshake from the mounted Secret, so a renewal reaches new connections
 * without a roll (test/process/tls-renewal.test.ts).
 */
export function rolloutAnnotations(inputs: {
  trustedTokenKeys: string;
  registryConfig: string;
  /** every file of the nginx ConfigMap (nginxConfigFiles): nginx starts with either of them */
  nginxConfigFiles: Readonly<Record<string, string>>;
  storageReferences?: string;
}): Record<string, string> {
  const hash = createHash('sha256');
  // by name, in a fixed order: a file renamed or added rolls the pods too
  const nginxFiles = Object.keys(inputs.nginxConfigFiles).sort().flatMap((file) => [file, inputs.nginxConfigFiles[file] ?? '']);
  // storageReferences (storageReferencesDigest) only where there are some: a volume registry's checksum stays as it was
  const parts = [inputs.trustedTokenKeys, inputs.registryConfig, ...nginxFiles, ...(inputs.storageReferences ? [inputs.storageReferences] : [])];
  for (const part of parts) {
    hash.update(String(part.length)).update(':').update(part);
  }
  return { [ROLLOUT_CHECKSUM_ANNOTATION]: hash.digest('hex') };
}

/**
 * The convention annotation-based Prometheus scrape configs read (the community chart's
 * `kubernetes-pods` job): the registry's metrics port. With the Prometheus Operator, the PodMonitor
 * of kustomize/monitoring does the same.
 */
const SCRAPE_ANNOTATIONS = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT), 'prometheus.io/path': REGISTRY_METRICS_PATH };

function nginxContainer(config: OperatorConfig): V1Container {
  return {
    name: 'nginx',
    image: config.images.nginx,
    // nginx as PID 1 with the config for the node's kernel: both stacks, or IPv4 only where the
    // kernel has no IPv6 (NGINX_COMMAND says why and how). Not the image's entrypoint: its scripts
    // try to edit files on the read-only root.
    command: [...NGINX_COMMAND],
    ports: [
      { name: 'https', containerPort: NGINX_PORT, protocol: 'TCP' },
      // the registry's Prometheus metrics (nginx-config.ts METRICS_PORT); no Service carries it
      { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
    ],
    securityContext: restrictedSecurityContext(NGINX_UID),
    resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    readinessProbe: httpsProbe(HEALTH_PATH, 2),
    livenessProbe: { ...httpsProbe(HEALTH_PATH, 3), initialDelaySeconds: 10 },
    volumeMounts: [
      { name: 'nginx-config', mountPath: NGINX_CONFIG_PATH, subPath: NGINX_CONFIG_FILE, readOnly: true },
      { name: 'nginx-config', mountPath: NGINX_IPV4_CONFIG_PATH, subPath: NGINX_IPV4_CONFIG_FILE, readOnly: true },
      { name: 'tls', mountPath: NGINX_TLS_DIR, readOnly: true },
      // the write freeze of storage maintenance (maintenance.ts): a directory, so changes arrive
      { name: 'maintenance', mountPath: MAINTENANCE_DIR, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

function registryContainer(config: OperatorConfig, storage: RegistryStorage, upstream: RegistryUpstream): V1Container {
  return {
    name: 'registry',
    image: config.images.registry,
    args: ['serve', REGISTRY_CONFIG_PATH],
    // distribution v3 exports traces to localhost:4318 unless told otherwise and logs every failure.
    env: mergeContainerEnv([{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, ...storage.env], upstream.env),
    securityContext: restrictedSecurityContext(REGISTRY_UID),
    resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '512Mi' } },
    // Probed through nginx: the registry listens on loopback, which the kubelet cannot reach.
    readinessProbe: httpsProbe(REGISTRY_HEALTH_PATH, 3),
    volumeMounts: [
      { name: 'registry-config', mountPath: dirname(REGISTRY_CONFIG_PATH), readOnly: true },
      { name: 'trusted-token-keys', mountPath: TRUSTED_TOKEN_KEYS_DIR, readOnly: true },
      ...storage.volumeMounts,
      ...upstream.volumeMounts,
    ],
  };
}

function authContainer(config: OperatorConfig): V1Container {
  return {
    name: 'auth',
    image: config.images.auth,
    // The image's entrypoint is auth_server; glog would otherwise write log files to /tmp.
    args: ['-logtostderr', AUTH_CONFIG_PATH],
    securityContext: restrictedSecurityContext(AUTH_UID),
    resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { memory: '256Mi' } },
    readinessProbe: httpsProbe(AUTH_HEALTH_PATH, 3),
    volumeMounts: [
      // The whole directory, not a subPath: only then does the kubelet swap in a changed config,
      // which docker_auth notices and reloads, together with the token key next to it.
      { name: 'auth-config', mountPath: AUTH_CONFIG_DIR, readOnly: true },
    ],
  };
}

function podVolumes(name: string, options: StatefulSetOptions): V1Volume[] {
  const keys = (...k: string[]) => k.map((key) => ({ key, path: key }));
  return [
    { name: 'nginx-config', configMap: { name: nginxConfigMapName(name), defaultMode: CONFIG_MAP_MODE } },
    { name: 'tls', secret: { secretName: options.tlsSecretName, defaultMode: SECRET_MODE, items: keys('tls.crt', 'tls.key') } },
    { name: 'registry-config', secret: { secretName: registryConfigSecretName(name), defaultMode: SECRET_MODE } },
    // The registry gets only the public keys it trusts; docker_auth also its config and signing key.
    { name: 'trusted-token-keys', secret: { secretName: authConfigSecretName(name), defaultMode: SECRET_MODE, items: keys(TRUSTED_TOKEN_KEYS_FILE) } },
    { name: 'auth-config', secret: { secretName: authConfigSecretName(name), defaultMode: SECRET_MODE } },
    // optional: it exists only around a garbage collection or retention run
    { name: 'maintenance', configMap: { name: maintenanceConfigMapName(name), optional: true, defaultMode: CONFIG_MAP_MODE } },
    { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
  ];
}

export function restrictedSecurityContext(uid: number): V1SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function httpsProbe(path: string, failureThreshold: number): V1Probe {
  return { httpGet: { path, port: NGINX_PORT, scheme: 'HTTPS' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold };
}

function opaqueSecret(registry: ImageRegistry, name: string, files: Record<string, string>): V1Secret {
  const data = Object.fromEntries(Object.entries(files).map(([key, text]) => [key, base64(text)]));
  return { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: objectMeta(registry, name), data };
}

function objectMeta(registry: ImageRegistry, name: string): { name: string; namespace: string; labels: Record<string, string>; ownerReferences: V1OwnerReference[] } {
  const id = identity(registry);
  return { name, namespace: id.namespace, labels: registryLabels(id.name), ownerReferences: [registryOwnerReference(registry)] };
}

function issuerRef(ref: IssuerRef): { name: string; kind: string; group: string } {
  return { name: ref.name, kind: ref.kind ?? 'Issuer', group: 'cert-manager.io' };
}

function identity(registry: ImageRegistry): { name: string; namespace: string } {
  const { name, namespace } = registry.metadata;
  if (!name || !namespace) throw new Error('ImageRegistry needs metadata.name and metadata.namespace');
  return { name, namespace };
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export interface MaintenanceCronJobInput {
  metadata: V1ObjectMeta & { labels: Record<string, string> };
  schedule: string;
  suspend?: boolean;
  backoffLimit: number;
  activeDeadlineSeconds: number;
  podSpec: V1PodSpec;
}

/**
 * A registry's maintenance CronJob (upload cleanup, garbage collection): UTC, never two runs at
 * once, a missed run caught up within the hour, one finished Job of each outcome kept, Jobs kept a day.
 */
export function maintenanceCronJob(input: MaintenanceCronJobInput): V1CronJob {
  const { labels } = input.metadata;
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: input.metadata,
    spec: {
      schedule: input.schedule,
      timeZone: 'Etc/UTC',
      ...(input.suspend === undefined ? {} : { suspend: input.suspend }),
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 1,
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: input.backoffLimit,
          activeDeadlineSeconds: input.activeDeadlineSeconds,
          ttlSecondsAfterFinished: 86_400,
          template: { metadata: { labels }, spec: input.podSpec },
        },
      },
    },
  };
}
