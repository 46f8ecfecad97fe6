// Obtains the operator CA and each registry's key pairs in the mode the registry asks for,
// issuing or renewing the self-signed ones. Keys and serials are generated here, at the edge.
import {
  certificateMode,
  certificateSecretName,
  certificateSource,
  isCertificateProblem,
  keyPairFromSecret,
  type CertificateProblem,
  type CertificatePurpose,
  type KeyPair,
} from '../functions/certificate-sources.ts';
import { needsRenewal, selfSignedCa, signedCertificate, type RenewalReason } from '../functions/certificates.ts';
import { OPERATOR_CA_SECRET_NAME, registryDnsNames, registryTlsSecretName, tokenSignerCommonName } from '../functions/names.ts';
import { desiredCertificate, desiredTlsSecret } from '../functions/registry-objects.ts';
import type { ImageRegistry, OperatorConfig } from '../functions/types.ts';
import { isConflict, isNotFound, type Kube } from './kube.ts';
import { newRsaKeyPem, randomSerial } from './keys.ts';

interface SecretObject {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const unb64 = (text: string | undefined) => (text ? Buffer.from(text, 'base64').toString('utf8') : '');

/**
 * The operator-wide root CA that signs self-signed registry certificates; created on first use,
 * renewed at 2/3 of its lifetime. Two Jobs racing to create it: the loser reads the winner's.
 */
export async function ensureOperatorCa(kube: Kube, config: OperatorConfig, now: Date): Promise<KeyPair> {
  const ref = { apiVersion: 'v1', kind: 'Secret', namespace: config.namespace, name: OPERATOR_CA_SECRET_NAME };
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await kube.read<SecretObject>(ref);
    const certPem = unb64(current?.data?.['tls.crt']);
    const keyPem = unb64(current?.data?.['tls.key']);
    if (current && certPem && !needsRenewal(certPem, now, { keyPem })) return { certPem, keyPem, caPem: certPem };
    const ca = newCa(now);
    const secret: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: OPERATOR_CA_SECRET_NAME, namespace: config.namespace, labels: { 'app.kubernetes.io/managed-by': 'image-registry-operator' } },
      data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem) },
    };
    try {
      if (current) await kube.replace({ ...secret, metadata: { ...secret.metadata, resourceVersion: current.metadata.resourceVersion } });
      else await kube.create(secret);
      return ca;
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
  throw new Error(`Secret ${config.namespace}/${OPERATOR_CA_SECRET_NAME} keeps changing under us; giving up this run`);
}

function newCa(now: Date): KeyPair {
  const keyPem = newRsaKeyPem();
  const certPem = selfSignedCa({ commonName: 'image-registry-operator root CA', keyPem, now, serial: randomSerial() });
  return { certPem, keyPem, caPem: certPem };
}

/** The CA that verifies the registry's serving certificate: its TLS Secret's ca.crt, else the certificate itself (as the push/pull Secrets hand out); '' before it has one. */
export async function servingCa(kube: Kube, registry: ImageRegistry): Promise<string> {
  const secret = await kube.read<SecretObject>({ apiVersion: 'v1', kind: 'Secret', namespace: registry.metadata.namespace, name: registryTlsSecretName(registry) });
  return unb64(secret?.data?.['ca.crt']) || unb64(secret?.data?.['tls.crt']);
}

export interface ResolvedKeyPair {
  pair?: KeyPair;
  problem?: CertificateProblem;
  /** set when this run issued a new self-signed certificate, with the reason */
  issued?: RenewalReason | { reason: 'Missing'; message: string };
}

/** The key pair for spec.tls ('tls') or spec.auth.ca ('auth'). */
export async function resolveKeyPair(
  kube: Kube,
  registry: ImageRegistry,
  purpose: CertificatePurpose,
  ca: KeyPair,
  hostname: string,
  now: Date,
): Promise<ResolvedKeyPair> {
  const namespace = registry.metadata.namespace ?? '';
  const secretName = certificateSecretName(registry, purpose);
  const mode = certificateMode(certificateSource(registry, purpose));
  if (mode === 'cert-manager') {
    const problem = await applyCertificate(kube, registry, purpose, hostname);
    if (problem) return { problem };
  }
  const secret = await kube.read<SecretObject>({ apiVersion: 'v1', kind: 'Secret', namespace, name: secretName });
  if (mode !== 'self-signed') {
    const pair = keyPairFromSecret(secret, registry, purpose);
    return isCertificateProblem(pair) ? { problem: pair } : { pair };
  }
  const current = keyPairFromSecret(secret, registry, purpose);
  const wanted = purpose === 'tls'
    ? { dnsNames: registryDnsNames(registry.metadata.name ?? '', namespace, hostname), caCertPem: ca.certPem }
    : { caCertPem: ca.certPem };
  const renewal = isCertificateProblem(current)
    ? { reason: 'Missing' as const, message: current.message }
    : needsRenewal(current.certPem, now, { ...wanted, keyPem: current.keyPem });
  if (!renewal && !isCertificateProblem(current)) return { pair: current };
  const pair = issueLeaf(registry, purpose, ca, hostname, now);
  await kube.apply(desiredTlsSecret(registry, secretName, pair));
  return { pair, issued: renewal };
}

/** The cert-manager Certificate; a cluster without cert-manager is a condition to report, not a crash. */
async function applyCertificate(kube: Kube, registry: ImageRegistry, purpose: CertificatePurpose, hostname: string): Promise<CertificateProblem | undefined> {
  const certificate = desiredCertificate(registry, purpose, hostname);
  if (!certificate) return undefined;
  try {
    await kube.apply(certificate);
    return undefined;
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return { reason: 'CertificatePending', message: `${purpose === 'tls' ? 'spec.tls' : 'spec.auth.ca'}.issuerRef needs cert-manager, but the API cert-manager.io/v1 Certificate is not served in this cluster` };
  }
}

function issueLeaf(registry: ImageRegistry, purpose: CertificatePurpose, ca: KeyPair, hostname: string, now: Date): KeyPair {
  const name = registry.metadata.name ?? '';
  const namespace = registry.metadata.namespace ?? '';
  const keyPem = newRsaKeyPem();
  const common = { keyPem, ca: { certPem: ca.certPem, keyPem: ca.keyPem }, now, serial: randomSerial() };
  const certPem = purpose === 'tls'
    ? signedCertificate({ ...common, commonName: hostname, dnsNames: registryDnsNames(name, namespace, hostname), usage: 'server' })
    : signedCertificate({ ...common, commonName: tokenSignerCommonName(name, namespace), usage: 'signing' });
  return { certPem, keyPem, caPem: ca.certPem };
}
