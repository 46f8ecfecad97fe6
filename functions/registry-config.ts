// distribution (registry v3) configuration: filesystem storage on the PVC, token auth against the
// pod's docker_auth, listening on loopback behind nginx.
import { dump } from 'js-yaml';
import { TOKEN_CERT_PATH } from './docker-auth-config.ts';
import { tokenIssuer } from './names.ts';

export const REGISTRY_CONFIG_PATH = '/etc/docker/registry/config.yml';
export const REGISTRY_DATA_PATH = '/var/lib/registry';
export const DEFAULT_REGISTRY_ADDRESS = '127.0.0.1:5000';
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
}

/** The registry's `config.yml` text. */
export function registryConfig(input: RegistryConfigInput): string {
  if (!input.httpSecret) throw new Error('registry http.secret must not be empty');
  const config = {
    version: '0.1',
    log: { level: 'info', formatter: 'json', fields: { service: 'registry' } },
    storage: {
      filesystem: { rootdirectory: REGISTRY_DATA_PATH },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
    },
    http: {
      addr: input.address ?? DEFAULT_REGISTRY_ADDRESS,
      secret: input.httpSecret,
      headers: { 'X-Content-Type-Options': ['nosniff'] },
    },
    auth: {
      token: {
        realm: `https://${input.hostname}/auth/token`,
        service: input.hostname,
        issuer: tokenIssuer(input.hostname),
        // The token-signing certificate itself: registry v3 trusts tokens whose `kid` is the RFC 7638
        // thumbprint of a key in this bundle (docker_auth's disable_legacy_key_id: true).
        rootcertbundle: TOKEN_CERT_PATH,
        signingalgorithms: TOKEN_SIGNING_ALGORITHMS,
      },
    },
    health: { storagedriver: { enabled: true, interval: '10s', threshold: 3 } },
  };
  return dump(config, { lineWidth: -1, noRefs: true });
}
