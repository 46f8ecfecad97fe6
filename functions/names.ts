// Every name the operator derives, in one place, so Jobs, webhooks and tests agree on them.
import type { AccessMode, ImageRegistry, ImageSecret } from './types.ts';

export const OPERATOR_NAME = 'image-registry-operator';
/** Operator-wide self-signed root CA (tls.crt, tls.key) in the operator namespace. */
export const OPERATOR_CA_SECRET_NAME = 'image-registry-operator-ca';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/** `<name>.<namespace>.<dnsZone>`, the name clients (and kubelets) pull from. */
export function registryHostname(name: string, namespace: string, dnsZone: string): string {
  return `${name}.${namespace}.${dnsZone.replace(/^\.+|\.+$/g, '')}`;
}

/**
 * SANs of a registry's TLS leaf: the external hostname and the in-cluster Service names.
 * The bare `<name>` and `<name>.<namespace>` are left out on purpose: an image reference needs a
 * dot in its first segment to be read as a host, and short names only resolve through search paths.
 */
export function registryDnsNames(name: string, namespace: string, hostname: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string[] {
  return unique([hostname, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${clusterDomain}`]);
}

/** docker_auth's token.issuer; the registry's auth.token.issuer must be the same string. */
export function tokenIssuer(hostname: string): string {
  return `https://${hostname}/auth/token`;
}

/** Subject CN of a registry's token-signing certificate (≤ 64 characters, as X.509 requires). */
export function tokenSignerCommonName(name: string, namespace: string): string {
  const cn = `${name}.${namespace} token signer`;
  return cn.length <= 64 ? cn : 'image registry token signer';
}

/** The registry's serving TLS Secret: spec.tls.secretName or `<r>-tls`. */
export function registryTlsSecretName(registry: ImageRegistry): string {
  return registry.spec?.tls?.secretName || `${registryName(registry)}-tls`;
}

/** The token-signing key pair Secret: spec.auth.ca.secretName or `<r>-auth-tls`. */
export function registryAuthSecretName(registry: ImageRegistry): string {
  return registry.spec?.auth?.ca?.secretName || `${registryName(registry)}-auth-tls`;
}

/** cert-manager Certificate that fills the TLS Secret when spec.tls.issuerRef is set. */
export function registryTlsCertificateName(registryName: string): string {
  return `${registryName}-tls`;
}

/** cert-manager Certificate that fills the token-signing Secret when spec.auth.ca.issuerRef is set. */
export function registryAuthCertificateName(registryName: string): string {
  return `${registryName}-auth-tls`;
}

/** Secret with docker_auth's `auth_config.yml`. */
export function authConfigSecretName(registryName: string): string {
  return `${registryName}-auth-config`;
}

/** Secret with the registry's `config.yml`. */
export function registryConfigSecretName(registryName: string): string {
  return `${registryName}-registry-config`;
}

/** ConfigMap with `nginx.conf`. */
export function nginxConfigMapName(registryName: string): string {
  return `${registryName}-nginx`;
}

/** ConfigMap with the write freeze of storage maintenance (functions/maintenance.ts), mounted into nginx. */
export function maintenanceConfigMapName(registryName: string): string {
  return `${registryName}-maintenance`;
}

/** The StatefulSet and the LoadBalancer Service carry the registry's own name. */
export function statefulSetName(registryName: string): string {
  return registryName;
}

/**
 * The one PersistentVolumeClaim every replica mounts. Named as the StatefulSet's claim template
 * named pod 0's claim in earlier versions, so a registry created by them keeps its data.
 */
export function dataClaimName(registryName: string): string {
  return `data-${statefulSetName(registryName)}-0`;
}

export function serviceName(registryName: string): string {
  return registryName;
}

/** Account for one rotation of a push/pull CR: `push.<ns>.<cr>.<rotation>`. */
export function accountName(accessMode: AccessMode, namespace: string, cr: string, rotation: number): string {
  if (!Number.isInteger(rotation) || rotation < 0) throw new Error(`rotation must be a non-negative integer, got ${rotation}`);
  return `${accessMode}.${namespace}.${cr}.${rotation}`;
}

/** `<cr>-image-push-secret` / `<cr>-image-pull-secret`. */
export function imageSecretName(kind: ImageSecret['kind'], cr: string): string {
  return `${cr}-${kind === 'ImagePushSecret' ? 'image-push-secret' : 'image-pull-secret'}`;
}

/** Labels on everything the operator creates for a registry. */
export function registryLabels(registryName: string): Record<string, string> {
  return { ...registrySelectorLabels(registryName), 'app.kubernetes.io/managed-by': OPERATOR_NAME };
}

/** The immutable subset used as StatefulSet/Service selector. */
export function registrySelectorLabels(registryName: string): Record<string, string> {
  return { 'app.kubernetes.io/name': REGISTRY_APP_NAME, 'app.kubernetes.io/instance': registryName };
}

const REGISTRY_APP_NAME = 'image-registry';

/**
 * Labels of a registry's maintenance Jobs (upload cleanup, garbage collection) in its namespace:
 * never its selector labels, or the registry's Service and PodDisruptionBudget would count their pods.
 */
export function maintenanceLabels(registryName: string, component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': `${REGISTRY_APP_NAME}-maintenance`, 'app.kubernetes.io/instance': registryName, 'app.kubernetes.io/component': component, 'app.kubernetes.io/managed-by': OPERATOR_NAME };
}
/** Selects what the operator made for any registry (every registry's registrySelectorLabels have it). */
export const ANY_REGISTRY_SELECTOR = `app.kubernetes.io/name=${REGISTRY_APP_NAME}`;

/** registrySelectorLabels as a label selector for list requests. */
export function registryLabelSelector(registryName: string): string {
  return Object.entries(registrySelectorLabels(registryName)).map(([k, v]) => `${k}=${v}`).join(',');
}

function registryName(registry: ImageRegistry): string {
  const name = registry.metadata.name;
  if (!name) throw new Error('ImageRegistry has no metadata.name');
  return name;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
