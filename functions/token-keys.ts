// The token-signing keys of a registry and how a renewed key goes live without a token ever being
// refused.
//
// docker_auth signs tokens with the *active* key; it re-reads that key whenever its config Secret
// changes. The registry verifies tokens against its *trusted keys*, which it reads only at start. So a
// new key from the source Secret (`<r>-auth-tls`: self-signed, the user's or cert-manager's) goes live
// in three steps:
//
//   stage  — trusted = [active, source]; the new trust set rolls the pods (their template hashes it)
//   switch — once every running pod trusts the source key: active = source (docker_auth reloads)
//   drop   — the old key stays trusted until the next staging, which waits until every token the old
//            key signed has expired (TOKEN_KEY_RETENTION_SECONDS after the switch)
//
// One roll per renewal, and a roll never removes a key whose tokens may still be in use. The state
// (active key, trusted keys, switch time) lives in the docker_auth config Secret only, so one
// resourceVersion guards the whole decision against concurrent Jobs.
//
// The registry reads the trusted keys as a JWKS, not as a certificate bundle: distribution v3.0.0
// (like docker_auth 1.14) derives an EC key's "RFC 7638 thumbprint" from the curve's base point, so
// two P-256 certificates in a rootcertbundle share one key ID and only the last one is trusted. A JWKS
// names each key by exactly the `kid` docker_auth writes into the tokens that key signs.
import { createHash, createPublicKey } from 'node:crypto';
import { certificateMatchesKey } from './certificates.ts';
import { TOKEN_CERT_FILE, TOKEN_EXPIRATION_SECONDS, TOKEN_KEY_FILE } from './docker-auth-config.ts';

/** `<r>-auth-config` key holding the trusted keys (a JWKS); the registry mounts only this one. */
export const TRUSTED_TOKEN_KEYS_FILE = 'trusted-token-keys.jwks';
/** Annotation on `<r>-auth-config`: when docker_auth was last told to sign with a new key. */
export const TOKEN_KEY_SWITCHED_AT_ANNOTATION = 'registry.mgoltzsche.github.com/token-key-switched-at';
/**
 * How long a key stays trusted after docker_auth stopped signing with it: the token lifetime, plus
 * the time until every pod's docker_auth has reloaded the switch (the kubelet's volume sync, about a
 * minute, and docker_auth's 2 s reload) and some clock skew.
 */
export const TOKEN_KEY_RETENTION_SECONDS = TOKEN_EXPIRATION_SECONDS + 5 * 60;

/** Curves docker_auth's libtrust can sign with (and the registry's ES256/384/512 verify). */
const SUPPORTED_CURVES = ['P-256', 'P-384', 'P-521'];

export interface TokenKeyPair {
  certPem: string;
  keyPem: string;
}

/** One key of the registry's JWKS: the public key and the `kid` docker_auth's tokens name it by. */
export interface TrustedTokenKey {
  kty: string;
  kid: string;
  use: 'sig';
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

/** What `<r>-auth-config` holds; `active` is missing before the first reconcile. */
export interface StoredTokenKeys {
  active?: TokenKeyPair;
  trusted: TrustedTokenKey[];
  switchedAt?: Date;
}

/** The state to write: docker_auth always has a key to sign with. */
export interface TokenKeys extends StoredTokenKeys {
  active: TokenKeyPair;
}

export interface TokenKeyInput {
  /** the key pair of the source Secret (`<r>-auth-tls` or spec.auth.ca.secretName) */
  source: TokenKeyPair;
  current: StoredTokenKeys;
  /**
   * Key IDs that every running registry pod trusts: known once the StatefulSet has fully rolled out
   * the template of a trust set (all replicas updated and ready); undefined while pods roll. A switch
   * needs it to hold the whole current trust set: pods that rolled out another set prove nothing.
   */
  trustedByAllPods?: readonly string[];
  now: Date;
}

export type TokenKeyPhase =
  /** no active key yet: the source key becomes active and the only trusted key */
  | 'Initialized'
  /** docker_auth signs with the source key already */
  | 'Current'
  /** the source key joined the trusted keys; the pods roll to read them */
  | 'Staged'
  /** the source key is trusted by the new template, not yet by every running pod */
  | 'RolloutPending'
  /** every running pod trusts the source key: docker_auth signs with it from now on */
  | 'Switched'
  /** staging waits: the previously active key still verifies tokens signed before the last switch */
  | 'Deferred';

export interface TokenKeyDecision {
  phase: TokenKeyPhase;
  state: TokenKeys;
  message: string;
  /** Deferred: when staging may drop the previous key */
  retryAt?: Date;
}

/** The next state of a registry's token keys; pure: the clock and the roll-out state come in. */
export function decideTokenKeys(input: TokenKeyInput): TokenKeyDecision {
  const { source, current } = input;
  const sourceKey = trustedTokenKey(source.certPem);
  if (!current.active) {
    return { phase: 'Initialized', state: { active: source, trusted: [sourceKey] }, message: `docker_auth signs with key ${sourceKey.kid}, the registry trusts only that key` };
  }
  const activeKey = trustedTokenKey(current.active.certPem);
  // The registry must always trust what docker_auth signs with; a trust set without it is repaired.
  const trusted = current.trusted.some((k) => k.kid === activeKey.kid) ? current.trusted : [...current.trusted, activeKey];
  const state: TokenKeys = { ...current, active: current.active, trusted };
  if (sourceKey.kid === activeKey.kid) {
    // Same key, maybe a renewed certificate: tokens do not change, nothing needs to roll.
    return { phase: 'Current', state: { ...state, active: source }, message: `docker_auth signs with the current key ${activeKey.kid}` };
  }
  if (trusted.some((k) => k.kid === sourceKey.kid)) return switchOnceTrusted(input, state, sourceKey.kid);
  return stage(input, state, activeKey, sourceKey);
}

function switchOnceTrusted(input: TokenKeyInput, state: TokenKeys, sourceKid: string): TokenKeyDecision {
  const trustedByAllPods = input.trustedByAllPods ?? [];
  if (!state.trusted.every((k) => trustedByAllPods.includes(k.kid))) {
    return { phase: 'RolloutPending', state, message: `new token-signing key ${sourceKid} is staged; waiting until every registry pod trusts it` };
  }
  const previous = trustedTokenKey(state.active.certPem).kid;
  return {
    phase: 'Switched',
    state: { ...state, active: input.source, switchedAt: input.now },
    message: `docker_auth signs with the new key ${sourceKid}; the previous key ${previous} stays trusted until its tokens have expired`,
  };
}

function stage(input: TokenKeyInput, state: TokenKeys, activeKey: TrustedTokenKey, sourceKey: TrustedTokenKey): TokenKeyDecision {
  const dropped = state.trusted.filter((k) => k.kid !== activeKey.kid);
  const retryAt = state.switchedAt && new Date(state.switchedAt.getTime() + TOKEN_KEY_RETENTION_SECONDS * 1000);
  if (dropped.length > 0 && retryAt && input.now.getTime() < retryAt.getTime()) {
    return {
      phase: 'Deferred',
      state,
      retryAt,
      message:
        `new token-signing key ${sourceKey.kid} waits until ${retryAt.toISOString()}: ` +
        `tokens signed before the last key switch (${state.switchedAt?.toISOString()}) must stay valid; docker_auth keeps signing with ${activeKey.kid}`,
    };
  }
  const droppedText = dropped.length ? `; no longer trusted: ${dropped.map((k) => k.kid).join(', ')}` : '';
  return {
    phase: 'Staged',
    state: { ...state, trusted: [activeKey, sourceKey] },
    message: `staged new token-signing key ${sourceKey.kid}: registry pods roll to trust it before docker_auth signs with it${droppedText}`,
  };
}

/** True while the decision waits for the pods to roll before it can switch. */
export function awaitsRollout(decision: TokenKeyDecision): boolean {
  return decision.phase === 'Staged' || decision.phase === 'RolloutPending';
}

/**
 * The `kid` docker_auth 1.14 writes into tokens signed by this key, with the config we generate: the
 * RFC 7638 thumbprint for RSA keys (disable_legacy_key_id), the libtrust key ID for EC keys, whose
 * thumbprint docker_auth computes from the curve's base point and so shares with every key on the curve.
 */
export function tokenKeyId(pem: string): string {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType === 'rsa') {
    const { e, n } = key.export({ format: 'jwk' });
    // members in lexicographic order, no whitespace (RFC 7638 section 3)
    return createHash('sha256').update(`{"e":"${e}","kty":"RSA","n":"${n}"}`).digest('base64url');
  }
  return libtrustKeyId(key.export({ type: 'spki', format: 'der' }));
}

/** docker_auth's `disable_legacy_key_id` for the key it signs with (see tokenKeyId). */
export function usesThumbprintKeyId(certPem: string): boolean {
  return createPublicKey(certPem).asymmetricKeyType === 'rsa';
}

/** Why docker_auth cannot sign with this certificate's key, or undefined when it can. */
export function tokenKeyProblem(certPem: string): string | undefined {
  const key = createPublicKey(certPem);
  if (key.asymmetricKeyType === 'rsa') return undefined;
  const curve = key.asymmetricKeyType === 'ec' ? key.export({ format: 'jwk' }).crv : undefined;
  if (curve && SUPPORTED_CURVES.includes(curve)) return undefined;
  return `the token-signing key must be RSA or ECDSA (${SUPPORTED_CURVES.join(', ')}), got ${curve ?? key.asymmetricKeyType}`;
}

/** The JWKS entry for a certificate's public key. */
export function trustedTokenKey(certPem: string): TrustedTokenKey {
  const key = createPublicKey(certPem);
  const jwk = key.export({ format: 'jwk' });
  const kid = tokenKeyId(certPem);
  if (jwk.kty === 'RSA') return { kty: 'RSA', kid, use: 'sig', n: jwk.n as string, e: jwk.e as string };
  if (jwk.kty === 'EC') return { kty: 'EC', kid, use: 'sig', crv: jwk.crv as string, x: jwk.x as string, y: jwk.y as string };
  throw new Error(`unsupported token-signing key type ${jwk.kty}`);
}

/** The registry's `jwks` file; deterministic, so an unchanged trust set neither writes nor rolls. */
export function trustedTokenKeysDocument(keys: readonly TrustedTokenKey[]): string {
  return `${JSON.stringify({ keys }, null, 2)}\n`;
}

/** The `<r>-auth-config` data entries (decoded) and annotations of a token key state. */
export function tokenKeySecretContent(state: TokenKeys): { files: Record<string, string>; annotations: Record<string, string> } {
  return {
    files: {
      [TOKEN_CERT_FILE]: state.active.certPem,
      [TOKEN_KEY_FILE]: state.active.keyPem,
      [TRUSTED_TOKEN_KEYS_FILE]: trustedTokenKeysDocument(state.trusted),
    },
    annotations: state.switchedAt ? { [TOKEN_KEY_SWITCHED_AT_ANNOTATION]: state.switchedAt.toISOString() } : {},
  };
}

interface SecretLike {
  metadata?: { annotations?: Record<string, string> };
  data?: Record<string, string>;
}

/** Reads the token key state back from `<r>-auth-config`; anything unusable counts as absent. */
export function storedTokenKeys(secret: SecretLike | undefined): StoredTokenKeys {
  const decoded = (key: string) => (secret?.data?.[key] ? Buffer.from(secret.data[key], 'base64').toString('utf8') : '');
  const certPem = decoded(TOKEN_CERT_FILE);
  const keyPem = decoded(TOKEN_KEY_FILE);
  const switchedAt = Date.parse(secret?.metadata?.annotations?.[TOKEN_KEY_SWITCHED_AT_ANNOTATION] ?? '');
  return {
    ...(certPem && keyPem && certificateMatchesKey(certPem, keyPem) ? { active: { certPem, keyPem } } : {}),
    trusted: parseTrustedTokenKeys(decoded(TRUSTED_TOKEN_KEYS_FILE)),
    ...(Number.isNaN(switchedAt) ? {} : { switchedAt: new Date(switchedAt) }),
  };
}

function parseTrustedTokenKeys(text: string): TrustedTokenKey[] {
  if (!text) return [];
  try {
    const keys = (JSON.parse(text) as { keys?: unknown }).keys;
    return Array.isArray(keys) ? keys.filter((k): k is TrustedTokenKey => typeof k?.kid === 'string' && typeof k?.kty === 'string') : [];
  } catch {
    return [];
  }
}

// libtrust's key ID: SHA-256 of the DER public key, the first 240 bits in base32, in groups of four.
function libtrustKeyId(spkiDer: Buffer): string {
  const base32 = base32Encode(createHash('sha256').update(spkiDer).digest().subarray(0, 30));
  return (base32.match(/.{4}/g) ?? []).join(':');
}

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return bits > 0 ? out + BASE32_ALPHABET[(value << (5 - bits)) & 31] : out;
}
