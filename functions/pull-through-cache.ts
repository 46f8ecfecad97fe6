// A registry that is a pull-through cache of one upstream (spec.proxy): distribution in proxy mode.
// What the cache adds to the registry pod, beside its storage (registry-storage.ts):
//
// - config.yml's `proxy` section: the upstream URL and the expiry of cached content, never the
//   upstream credentials. Those reach the registry container alone, as environment variables from
//   the user's Secret (distribution reads REGISTRY_PROXY_USERNAME / _PASSWORD as overrides of
//   proxy.username / password), so they are in no Secret or ConfigMap the operator writes, no
//   status, Event or log; the references' digest rolls the pods when the Secret changes.
// - the upstream's CA (an in-house registry behind a private CA), mounted beside a bucket's CA.
// - nginx refuses pushes and deletes with a message saying why (pushRefusal).
// - docker_auth: anonymous pulls from the networks of spec.proxy.anonymousPull only (anonymousAcl).
// - node trust: containerd's hosts.toml of each spec.proxy.mirrorFor host (node-trust.ts).
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { DEFAULT_PROXY_PASSWORD_KEY, DEFAULT_PROXY_TTL, DEFAULT_PROXY_USERNAME_KEY } from './defaults.ts';
import { caMount, type StorageReference } from './registry-storage.ts';
import type { AclEntry, ImageRegistry, ProxySpec } from './types.ts';

export const PROXY_USERNAME_ENV = 'REGISTRY_PROXY_USERNAME';
export const PROXY_PASSWORD_ENV = 'REGISTRY_PROXY_PASSWORD';
/** Where the upstream's CA is mounted (Go reads every directory of SSL_CERT_DIR, colon-separated). */
export const UPSTREAM_CA_DIR = '/etc/registry-upstream-ca';
export const UPSTREAM_CA_FILE = 'ca.crt';
/** The user name docker_auth gives a token request without credentials. */
export const ANONYMOUS_ACCOUNT = '';

export function proxyOf(registry: ImageRegistry): ProxySpec | undefined {
  return registry.spec?.proxy ?? undefined;
}

/** config.yml's `proxy` section; credentials come from the environment (registryUpstream). */
export function proxyConfig(proxy: ProxySpec): Record<string, unknown> {
  return { remoteurl: new URL(proxy.remoteURL).origin, ttl: proxy.ttl ?? DEFAULT_PROXY_TTL };
}

/** What the registry container needs to reach the upstream: the credentials' env, the CA's volume. */
export interface RegistryUpstream {
  env: V1EnvVar[];
  volumes: V1Volume[];
  volumeMounts: V1VolumeMount[];
  /** the objects the container reads only at start: a change must roll the pods */
  readAtStart: StorageReference[];
  /** the upstream's CA among them (the Jobs ask the upstream with it too) */
  caReference?: StorageReference;
}

export function registryUpstream(registry: ImageRegistry): RegistryUpstream {
  const proxy = proxyOf(registry);
  const upstream: RegistryUpstream = { env: [], volumes: [], volumeMounts: [], readAtStart: [] };
  if (!proxy) return upstream;
  const credentials = proxy.credentialsSecret;
  if (credentials) {
    const field = 'spec.proxy.credentialsSecret';
    const keys = { username: credentials.usernameKey ?? DEFAULT_PROXY_USERNAME_KEY, password: credentials.passwordKey ?? DEFAULT_PROXY_PASSWORD_KEY };
    upstream.env.push(
      { name: PROXY_USERNAME_ENV, valueFrom: { secretKeyRef: { name: credentials.name, key: keys.username } } },
      { name: PROXY_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: credentials.name, key: keys.password } } },
    );
    const ref = { kind: 'Secret', name: credentials.name, nameField: `${field}.name`, reason: 'UpstreamCredentialsNotFound' } as const;
    upstream.readAtStart.push({ ...ref, key: keys.username, keyField: `${field}.usernameKey` }, { ...ref, key: keys.password, keyField: `${field}.passwordKey` });
  }
  const ca = proxy.ca && caMount(proxy.ca, { volume: 'upstream-ca', dir: UPSTREAM_CA_DIR, file: UPSTREAM_CA_FILE, field: 'spec.proxy.ca', reason: 'UpstreamCANotFound' });
  if (ca) {
    upstream.volumes.push(ca.volume);
    upstream.volumeMounts.push(ca.mount);
    upstream.env.push({ name: 'SSL_CERT_DIR', value: UPSTREAM_CA_DIR });
    upstream.readAtStart.push(ca.reference);
    upstream.caReference = ca.reference;
  }
  return upstream;
}

/**
 * Two env lists for one container: SSL_CERT_DIR of both (a bucket's CA and the upstream's) joined
 * with ':' — Go reads each directory — every other variable once, the first list's first.
 */
export function mergeContainerEnv(first: readonly V1EnvVar[], second: readonly V1EnvVar[]): V1EnvVar[] {
  const certDirs = [...first, ...second].filter((e) => e.name === 'SSL_CERT_DIR' && e.value).map((e) => e.value as string);
  const rest = [...first, ...second].filter((e) => e.name !== 'SSL_CERT_DIR');
  return [...rest, ...(certDirs.length ? [{ name: 'SSL_CERT_DIR', value: certDirs.join(':') }] : [])];
}

/**
 * The answer nginx gives a push or delete to a cache: distribution's own would be UNSUPPORTED with
 * "The operation is unsupported." — after a token dance that ends in a confusing 401 for clients
 * the ACL lets push — so nginx answers first and says why.
 */
export function pushRefusal(proxy: ProxySpec): { status: 405; body: string } {
  const message = `this registry is a pull-through cache of ${new URL(proxy.remoteURL).origin}: it refuses pushes and deletes; push to a registry without spec.proxy`;
  return { status: 405, body: JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message, detail: null }] }) };
}

/**
 * The ACL entries before the registry's own: pulls without credentials from each network of
 * spec.proxy.anonymousPull (docker_auth's `ip` match, which sees the client address nginx passes
 * on), then a rule that gives anonymous requests nothing else — so no rule of the registry's ACL
 * written before anonymous access existed (e.g. one without account or labels) ever matches them.
 */
export function anonymousAcl(registry: ImageRegistry): AclEntry[] {
  const networks = proxyOf(registry)?.anonymousPull?.networks ?? [];
  if (networks.length === 0) return [];
  return [
    ...networks.map((ip) => ({ match: { account: ANONYMOUS_ACCOUNT, type: 'repository', ip }, actions: ['pull'], comment: `anonymous pulls from ${ip} (spec.proxy.anonymousPull)` })),
    { match: { account: ANONYMOUS_ACCOUNT }, actions: [], comment: 'anonymous: nothing else' },
  ];
}

/** Whether docker_auth must know the anonymous user (an empty name with no password). */
export function allowsAnonymousPulls(registry: ImageRegistry): boolean {
  return (proxyOf(registry)?.anonymousPull?.networks ?? []).length > 0;
}

/** The hosts of spec.proxy.mirrorFor, lower case (as directory names of containerd's certs.d), sorted. */
export function mirrorHosts(registry: ImageRegistry): string[] {
  return [...new Set((proxyOf(registry)?.mirrorFor ?? []).map((host) => host.toLowerCase()))].sort();
}

export const UPSTREAM_AVAILABLE = 'UpstreamAvailable';

/** What a Job's request for the upstream's `/v2/` got: an HTTP status, or the error of no answer. */
export interface UpstreamAnswer {
  status?: number;
  error?: string;
}

/**
 * The UpstreamAvailable condition of a cache. The registry's API root answers 200, or 401 with a
 * challenge where it wants a token (Docker Hub): either means it is there. Ready does not depend on
 * it: what is cached is served while the upstream is down, only content not cached yet fails.
 */
export function upstreamCondition(proxy: ProxySpec, answer: UpstreamAnswer): { type: string; status: 'True' | 'False'; reason: string; message: string } {
  const upstream = new URL(proxy.remoteURL).origin;
  if (answer.status === 200 || answer.status === 401) {
    return { type: UPSTREAM_AVAILABLE, status: 'True', reason: 'UpstreamAnswers', message: `${upstream}/v2/ answers HTTP ${answer.status}` };
  }
  const what = answer.status === 429
    ? 'HTTP 429: the upstream\'s rate limit (Docker Hub: set spec.proxy.credentialsSecret for the higher limit of an account)'
    : answer.status !== undefined ? `HTTP ${answer.status}` : (answer.error ?? 'no answer');
  return {
    type: UPSTREAM_AVAILABLE, status: 'False', reason: 'UpstreamUnavailable',
    message: `${upstream}/v2/: ${what}; cached images are still served, images not cached yet fail to pull until it is back`,
  };
}
