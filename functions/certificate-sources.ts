// Where a registry's serving certificate (spec.tls) and token-signing key pair (spec.auth.ca) come
// from: operator-maintained self-signed, an existing Secret the user names, or cert-manager.
import { certificateInfo, certificateMatchesKey } from './certificates.ts';
import { registryAuthSecretName, registryTlsSecretName } from './names.ts';
import { tokenKeyProblem } from './token-keys.ts';
import type { CertificateSource, ImageRegistry } from './types.ts';

export type CertificateMode = 'self-signed' | 'secret' | 'cert-manager';
export type CertificatePurpose = 'tls' | 'auth';

export interface KeyPair {
  certPem: string;
  keyPem: string;
  /** the CA that verifies certPem ('' when the Secret has none) */
  caPem: string;
}

export interface CertificateProblem {
  reason: 'SecretNotFound' | 'CertificatePending' | 'SecretInvalid';
  message: string;
}

interface SecretLike {
  data?: Record<string, string>;
}

export function certificateSource(registry: ImageRegistry, purpose: CertificatePurpose): CertificateSource | undefined {
  return purpose === 'tls' ? registry.spec?.tls : registry.spec?.auth?.ca;
}

/** neither set → self-signed; only secretName → that Secret; issuerRef → cert-manager. */
export function certificateMode(source: CertificateSource | undefined): CertificateMode {
  if (source?.issuerRef) return 'cert-manager';
  if (source?.secretName) return 'secret';
  return 'self-signed';
}

export function certificateSecretName(registry: ImageRegistry, purpose: CertificatePurpose): string {
  return purpose === 'tls' ? registryTlsSecretName(registry) : registryAuthSecretName(registry);
}

const FIELD: Record<CertificatePurpose, string> = { tls: 'spec.tls', auth: 'spec.auth.ca' };

/**
 * Reads a key pair from a user- or cert-manager-provided Secret; a missing or unusable Secret is a
 * problem whose reason and message name the Secret and the field that points to it.
 */
export function keyPairFromSecret(
  secret: SecretLike | undefined,
  registry: ImageRegistry,
  purpose: CertificatePurpose,
): KeyPair | CertificateProblem {
  const name = certificateSecretName(registry, purpose);
  const mode = certificateMode(certificateSource(registry, purpose));
  if (!secret) {
    return mode === 'cert-manager'
      ? { reason: 'CertificatePending', message: `waiting for cert-manager to issue Secret ${name} (${FIELD[purpose]}.issuerRef)` }
      : { reason: 'SecretNotFound', message: `Secret ${name} named by ${FIELD[purpose]}.secretName does not exist in namespace ${registry.metadata.namespace}` };
  }
  const decoded = (key: string) => (secret.data?.[key] ? Buffer.from(secret.data[key], 'base64').toString('utf8') : '');
  const pair = { certPem: decoded('tls.crt'), keyPem: decoded('tls.key'), caPem: decoded('ca.crt') };
  const problem = keyPairProblem(pair, purpose);
  if (problem) {
    return mode === 'cert-manager' && !pair.certPem
      ? { reason: 'CertificatePending', message: `cert-manager has not filled Secret ${name} yet` }
      : { reason: 'SecretInvalid', message: `Secret ${name} (${FIELD[purpose]}): ${problem}` };
  }
  return pair;
}

function keyPairProblem(pair: KeyPair, purpose: CertificatePurpose): string | undefined {
  if (!pair.certPem) return 'has no tls.crt';
  if (!pair.keyPem) return 'has no tls.key';
  try {
    certificateInfo(pair.certPem);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  if (!certificateMatchesKey(pair.certPem, pair.keyPem)) return 'tls.key does not belong to tls.crt';
  // docker_auth would refuse to load the key and keep signing with the previous one.
  return purpose === 'auth' ? tokenKeyProblem(pair.certPem) : undefined;
}

export function isCertificateProblem(value: KeyPair | CertificateProblem): value is CertificateProblem {
  return 'reason' in value;
}
