// distribution (registry v3) configuration: the storage of registry-storage.ts (the volume or a
// bucket), token auth against the pod's docker_auth, listening on loopback behind nginx.
import { dump, load } from 'js-yaml';
import { tokenIssuer } from './names.ts';
import { REGISTRY_DATA_PATH, volumeStorageConfig, type RegistryStorage } from './registry-storage.ts';
import { proxyConfig } from './pull-through-cache.ts';
import { TRUSTED_TOKEN_KEYS_FILE } from './token-keys.ts';
import type { ProxySpec } from './types.ts';

export { REGISTRY_DATA_PATH };

export const REGISTRY_CONFIG_PATH = '/etc/docker/registry/config.yml';
/** The keys whose tokens the registry accepts (a JWKS, read at start; see token-keys.ts). */
export const TRUSTED_TOKEN_KEYS_DIR = '/etc/registry-auth';
export const TRUSTED_TOKEN_KEYS_PATH = `${TRUSTED_TOKEN_KEYS_DIR}/${TRUSTED_TOKEN_KEYS_FILE}`;
export const DEFAULT_REGISTRY_ADDRESS = '127.0.0.1:5000';
/**
 * distribution's debug server: Prometheus metrics at REGISTRY_METRICS_PATH, but also pprof, expvar
 * and `/debug/health/down`, which marks the registry unhealthy — so it listens on the pod's loopback
 * only, and nginx passes on `GET /metrics` alone from the pod's metrics port (nginx-config.ts).
 */
export const REGISTRY_METRICS_PORT = 5002;
export const DEFAULT_REGISTRY_METRICS_ADDRESS = `127.0.0.1:${REGISTRY_METRICS_PORT}`;
export const REGISTRY_METRICS_PATH = '/metrics';
/**
 * Token signature algorithms the registry accepts. docker_auth signs with the token key (RS256
 * for our RSA keys, ES* when a user brings an ECDSA key); HMAC algorithms are left out so a
 * public key can never be used as an HMAC secret.
 */
export const TOKEN_SIGNING_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];

export interface RegistryConfigInput {
  hostname: string;
  /** stable per registry (all replicas must share it: it signs upload state) */
  httpSecret: string;
  /** host:port the registry listens on (nginx proxies /v2/ to it) */
  address?: string;
  /** registryStorage(registry); default the volume */
  storage?: Pick<RegistryStorage, 'config' | 'health'>;
  /** a pull-through cache's upstream (spec.proxy) */
  proxy?: ProxySpec;
  /** host:port of the debug server with the Prometheus metrics; default REGISTRY_METRICS_PORT on the host of `address` */
  metricsAddress?: string;
}

/** The registry's `config.yml` text. */
export function registryConfig(input: RegistryConfigInput): string {
  if (!input.httpSecret) throw new Error('registry http.secret must not be empty');
  const storage = input.storage ?? volumeStorageConfig();
  const address = input.address ?? DEFAULT_REGISTRY_ADDRESS;
  const config = {
    version: '0.1',
    log: { level: 'info', formatter: 'json', fields: { service: 'registry' } },
    storage: storage.config,
    http: {
      addr: address,
      secret: input.httpSecret,
      headers: { 'X-Content-Type-Options': ['nosniff'] },
      // registry_http_* per route (in-flight, totals, durations, sizes) and registry_storage_*:
      // scraped through nginx's metrics port, and read by garbage collection's drain (maintenance.ts)
      debug: { addr: input.metricsAddress ?? address.replace(/:\d+$/, `:${REGISTRY_METRICS_PORT}`), prometheus: { enabled: true, path: REGISTRY_METRICS_PATH } },
    },
    auth: {
      token: {
        realm: `https://${input.hostname}/auth/token`,
        service: input.hostname,
        issuer: tokenIssuer(input.hostname),
        // Trusts tokens whose `kid` names a key of this JWKS: the active token key and, around a
        // renewal, the previous or the next one. No rootcertbundle: it cannot hold two EC keys.
        jwks: TRUSTED_TOKEN_KEYS_PATH,
        signingalgorithms: TOKEN_SIGNING_ALGORITHMS,
      },
    },
    health: { storagedriver: storage.health },
    ...(input.proxy ? { proxy: proxyConfig(input.proxy) } : {}),
  };
  return dump(config, { lineWidth: -1, noRefs: true });
}

/** The http.secret of a stored `config.yml` (base64, as in the Secret); it must stay stable across runs. */
export function httpSecretOf(configYamlBase64: string | undefined): string | undefined {
  if (!configYamlBase64) return undefined;
  let parsed: { http?: { secret?: unknown } } | undefined;
  try {
    parsed = load(Buffer.from(configYamlBase64, 'base64').toString('utf8')) as typeof parsed;
  } catch {
    return undefined;
  }
  return typeof parsed?.http?.secret === 'string' && parsed.http.secret ? parsed.http.secret : undefined;
}
