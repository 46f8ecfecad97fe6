// Bearer tokens in the format of the distribution token-auth spec, signed in the test with a key the
// test chooses. This checks the *registry's* side of the contract (issuer, service, trusted keys,
// signing algorithms from the generated config.yml): the registry must accept a token signed by the
// key of the `<r>-auth-tls` Secret and refuse any other. It is not a docker_auth stand-in — the
// tests that need docker_auth to issue tokens skip when auth_server is missing.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';

export interface RepositoryAccess {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

export interface RegistryTokenRequest {
  /** PEM of the RSA private key that signs the token */
  keyPem: string;
  /** the registry's auth.token.issuer */
  issuer: string;
  /** the registry's auth.token.service */
  audience: string;
  subject: string;
  access: RepositoryAccess[];
  now?: Date;
  ttlSeconds?: number;
}

/** A compact RS256 JWT whose `kid` is the RFC 7638 thumbprint of the signing key (as docker_auth with disable_legacy_key_id). */
export function signRegistryToken(request: RegistryTokenRequest): string {
  const key = createPrivateKey(request.keyPem);
  const now = Math.floor((request.now ?? new Date()).getTime() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', kid: rfc7638Thumbprint(request.keyPem) };
  const claims = {
    iss: request.issuer,
    sub: request.subject,
    aud: request.audience,
    exp: now + (request.ttlSeconds ?? 300),
    nbf: now - 10,
    iat: now,
    jti: randomBytes(12).toString('hex'),
    access: request.access,
  };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), key);
  return `${signingInput}.${base64url(signature)}`;
}

/** RFC 7638 JWK thumbprint of an RSA key (public or private PEM, or a certificate's key). */
export function rfc7638Thumbprint(pem: string): string {
  const jwk = createPublicKey(pem).export({ format: 'jwk' }) as { kty: string; n?: string; e?: string };
  if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e) throw new Error(`expected an RSA key, got ${jwk.kty}`);
  // Members in lexicographic order, no whitespace (RFC 7638 section 3).
  return base64url(createHash('sha256').update(`{"e":"${jwk.e}","kty":"RSA","n":"${jwk.n}"}`).digest());
}

/** The claims of a JWT, unverified (for assertions on tokens a server issued). */
export function tokenClaims(token: string): Record<string, unknown> {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}
