// Operator-wide settings from the environment of the webhook and the Jobs (the env object is a
// parameter, so this stays pure and testable).
import { parseDuration } from './duration.ts';
import type { OperatorConfig } from './types.ts';

export const OPERATOR_CONFIG_DEFAULTS = {
  OPERATOR_NAMESPACE: 'image-registry-operator',
  OPERATOR_DNS_ZONE: 'svc.example.org',
  OPERATOR_DEFAULT_REGISTRY_NAME: 'registry',
  OPERATOR_IMAGE_REGISTRY: 'registry:3.1.2',
  OPERATOR_IMAGE_AUTH: 'cesanta/docker_auth:1.14.0',
  OPERATOR_IMAGE_NGINX: 'nginx:1.30.0-alpine',
  OPERATOR_IMAGE: 'image-registry-operator:0.1.0',
  OPERATOR_ROTATION_INTERVAL: '24h',
  OPERATOR_ROLLOUT_TIMEOUT: '60s',
  // one periodic kubelet volume sync (~60 s) plus docker_auth's reload (~2 s), should touching the pods not help
  OPERATOR_CREDENTIALS_TIMEOUT: '90s',
} as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// A Service name (the registry's name becomes one) must be an RFC 1035 label: starts with a letter.
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const IMAGE = /^[^\s]+$/;

/**
 * Reads the operator configuration; unset or empty variables take their defaults.
 * Throws one Error that names every bad variable and its value.
 */
export function operatorConfigFromEnv(env: Record<string, string | undefined>): OperatorConfig {
  const problems: string[] = [];
  const read = (key: keyof typeof OPERATOR_CONFIG_DEFAULTS): string => {
    const value = env[key]?.trim();
    return value ? value : OPERATOR_CONFIG_DEFAULTS[key];
  };
  const check = (key: string, value: string, ok: boolean, expected: string): void => {
    if (!ok) problems.push(`${key}=${JSON.stringify(value)}: ${expected}`);
  };

  const namespace = read('OPERATOR_NAMESPACE');
  check('OPERATOR_NAMESPACE', namespace, DNS_LABEL.test(namespace), 'must be a namespace name (RFC 1123 label)');
  const dnsZone = read('OPERATOR_DNS_ZONE').replace(/\.$/, '');
  check('OPERATOR_DNS_ZONE', dnsZone, isDnsSubdomain(dnsZone), 'must be a lower-case DNS name such as svc.example.org');
  const defaultName = read('OPERATOR_DEFAULT_REGISTRY_NAME');
  check('OPERATOR_DEFAULT_REGISTRY_NAME', defaultName, DNS_1035_LABEL.test(defaultName), 'must be an ImageRegistry name (RFC 1035 label)');
  const defaultNamespace = env.OPERATOR_DEFAULT_REGISTRY_NAMESPACE?.trim() || undefined;
  if (defaultNamespace !== undefined) {
    check('OPERATOR_DEFAULT_REGISTRY_NAMESPACE', defaultNamespace, DNS_LABEL.test(defaultNamespace), 'must be a namespace name (RFC 1123 label)');
  }

  const images = {
    registry: read('OPERATOR_IMAGE_REGISTRY'),
    auth: read('OPERATOR_IMAGE_AUTH'),
    nginx: read('OPERATOR_IMAGE_NGINX'),
    operator: read('OPERATOR_IMAGE'),
  };
  check('OPERATOR_IMAGE_REGISTRY', images.registry, IMAGE.test(images.registry), 'must be an image reference without spaces');
  check('OPERATOR_IMAGE_AUTH', images.auth, IMAGE.test(images.auth), 'must be an image reference without spaces');
  check('OPERATOR_IMAGE_NGINX', images.nginx, IMAGE.test(images.nginx), 'must be an image reference without spaces');
  check('OPERATOR_IMAGE', images.operator, IMAGE.test(images.operator), 'must be an image reference without spaces');

  const interval = read('OPERATOR_ROTATION_INTERVAL');
  const rotationIntervalSeconds = rotationSeconds(interval);
  check('OPERATOR_ROTATION_INTERVAL', interval, rotationIntervalSeconds !== undefined, 'must be a positive duration of whole seconds such as 24h or 90m');

  const timeout = (key: 'OPERATOR_ROLLOUT_TIMEOUT' | 'OPERATOR_CREDENTIALS_TIMEOUT'): number => {
    const text = read(key);
    const seconds = durationSeconds(text);
    check(key, text, seconds !== undefined, 'must be a duration of whole seconds such as 60s or 2m (0s: do not wait)');
    return seconds ?? 0;
  };
  const rolloutTimeoutSeconds = timeout('OPERATOR_ROLLOUT_TIMEOUT');
  const credentialsTimeoutSeconds = timeout('OPERATOR_CREDENTIALS_TIMEOUT');

  // set by kustomize/node-trust; empty or unset: the core install, no node-trust Jobs
  const nodeTrustNamespace = env.OPERATOR_NODE_TRUST_NAMESPACE?.trim() || undefined;
  if (nodeTrustNamespace !== undefined) {
    check('OPERATOR_NODE_TRUST_NAMESPACE', nodeTrustNamespace, DNS_LABEL.test(nodeTrustNamespace), 'must be a namespace name (RFC 1123 label), or empty to leave node trust off');
  }

  if (problems.length > 0) throw new Error(`invalid operator configuration: ${problems.join('; ')}`);
  return {
    namespace,
    dnsZone,
    defaultRegistry: defaultNamespace === undefined ? { name: defaultName } : { name: defaultName, namespace: defaultNamespace },
    images,
    rotationIntervalSeconds: rotationIntervalSeconds as number,
    rolloutTimeoutSeconds,
    credentialsTimeoutSeconds,
    ...(nodeTrustNamespace === undefined ? {} : { nodeTrustNamespace }),
  };
}

function durationSeconds(text: string): number | undefined {
  try {
    const seconds = parseDuration(text) / 1000;
    return Number.isInteger(seconds) && seconds >= 0 ? seconds : undefined;
  } catch {
    return undefined;
  }
}

function rotationSeconds(text: string): number | undefined {
  try {
    const seconds = parseDuration(text) / 1000;
    return Number.isInteger(seconds) && seconds > 0 ? seconds : undefined;
  } catch {
    return undefined;
  }
}

function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && name.split('.').every((label) => DNS_LABEL.test(label));
}
