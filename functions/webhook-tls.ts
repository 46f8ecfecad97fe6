// The webhook's serving certificate: its own small CA (the API server trusts it through the
// webhook configurations' caBundle) and a leaf for the webhook Service. The bootstrap Job asks
// `webhookTlsRenewal()` what is due, generates only the keys it needs, and writes what
// `issueWebhookTls()` returns. Keys, serials and `now` are parameters: this stays pure.
//
// The CA is kept across leaf renewals, so a leaf renewal never changes the caBundle. When the CA
// itself is renewed, the previous CA stays in the bundle (ca.crt) while it is valid: webhook pods
// still serving the old leaf until the kubelet refreshes their volume keep being trusted.
import { certificateInfo, certificateIssuedBy, certificateMatchesKey, needsRenewal, selfSignedCa, signedCertificate, type RenewalReason } from './certificates.ts';
import { DEFAULT_CLUSTER_DOMAIN } from './names.ts';

export const WEBHOOK_SERVICE_NAME = 'image-registry-operator-webhook';
export const WEBHOOK_TLS_SECRET_NAME = 'image-registry-operator-webhook-tls';
/** Name of both the MutatingWebhookConfiguration and the ValidatingWebhookConfiguration. */
export const WEBHOOK_CONFIGURATION_NAME = 'image-registry-operator';
export const WEBHOOK_CA_COMMON_NAME = 'image-registry-operator webhook CA';
/** Leaves live 90 days and are renewed after 60; the daily renewal CronJob has weeks of slack. */
export const WEBHOOK_LEAF_VALID_DAYS = 90;
export const WEBHOOK_CA_VALID_DAYS = 3650;
/** The current CA and at most one predecessor. */
const MAX_BUNDLE = 2;

/** The Secret's keys, decoded: a kubernetes.io/tls Secret plus the CA's own key. */
export interface WebhookTlsData {
  'tls.crt': string;
  'tls.key': string;
  /** trusted CAs, current first: what the webhook configurations get as caBundle */
  'ca.crt': string;
  'ca.key': string;
}

export interface WebhookTlsRenewal {
  /** why the CA must be (re)issued; a new CA implies a new leaf */
  ca?: RenewalReason;
  leaf?: RenewalReason;
}

/** DNS names the API server uses to reach the webhook Service. */
export function webhookDnsNames(namespace: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string[] {
  return [`${WEBHOOK_SERVICE_NAME}.${namespace}.svc`, `${WEBHOOK_SERVICE_NAME}.${namespace}.svc.${clusterDomain}`];
}

/** The PEM blocks of one type in a PEM text, in order. */
export function pemBlocks(text: string, type = 'CERTIFICATE'): string[] {
  const pattern = new RegExp(`-----BEGIN ${type}-----[\\s\\S]*?-----END ${type}-----`, 'g');
  return [...text.matchAll(pattern)].map((match) => `${match[0]}\n`);
}

/** What must be issued now for the Secret data `current` (undefined: no Secret yet). */
export function webhookTlsRenewal(current: Partial<WebhookTlsData> | undefined, namespace: string, now: Date): WebhookTlsRenewal {
  const caPem = pemBlocks(current?.['ca.crt'] ?? '')[0];
  const caKey = current?.['ca.key'] ?? '';
  const ca: RenewalReason | undefined = !caPem || !caKey
    ? { reason: 'Invalid', message: 'no webhook CA yet' }
    : needsRenewal(caPem, now, { keyPem: caKey });
  if (ca) return { ca, leaf: { reason: 'IssuerChanged', message: `a new CA is issued (${ca.reason})` } };
  const leafPem = current?.['tls.crt'] ?? '';
  const leafKey = current?.['tls.key'] ?? '';
  const leaf: RenewalReason | undefined = !leafPem || !leafKey
    ? { reason: 'Invalid', message: 'no serving certificate yet' }
    : needsRenewal(leafPem, now, { dnsNames: webhookDnsNames(namespace), caCertPem: caPem, keyPem: leafKey });
  return leaf ? { leaf } : {};
}

export interface NewKey {
  /** PEM of a fresh RSA private key */
  keyPem: string;
  /** positive serial number as hex */
  serial: string;
}

export interface IssueWebhookTlsInput {
  namespace: string;
  now: Date;
  current: Partial<WebhookTlsData> | undefined;
  /** required when webhookTlsRenewal() said the CA is due */
  ca?: NewKey;
  /** required when it said the leaf (or the CA) is due */
  leaf?: NewKey;
}

/**
 * The Secret data after issuing what `ca`/`leaf` are given for; the rest is kept from `current`.
 * The bundle keeps the previous CA while it is valid at `now`.
 */
export function issueWebhookTls({ namespace, now, current, ca, leaf }: IssueWebhookTlsInput): WebhookTlsData {
  const oldBundle = pemBlocks(current?.['ca.crt'] ?? '');
  let caPem = oldBundle[0] ?? '';
  let caKey = current?.['ca.key'] ?? '';
  // byte for byte the same unless the CA changes: the caBundle in the configurations is compared as is
  let bundle = current?.['ca.crt'] ?? '';
  if (ca) {
    caPem = unixPem(selfSignedCa({ commonName: WEBHOOK_CA_COMMON_NAME, keyPem: ca.keyPem, now, serial: ca.serial, validDays: WEBHOOK_CA_VALID_DAYS }));
    caKey = ca.keyPem;
    bundle = uniquePems([caPem, ...oldBundle.filter((pem) => stillValid(pem, now))]).slice(0, MAX_BUNDLE).join('');
  }
  if (!caPem || !caKey) throw new Error('issuing the webhook certificate needs a CA: pass `ca`');
  let leafPem = current?.['tls.crt'] ?? '';
  let leafKey = current?.['tls.key'] ?? '';
  if (leaf) {
    const dnsNames = webhookDnsNames(namespace);
    leafPem = unixPem(signedCertificate({
      commonName: dnsNames[0] as string,
      dnsNames,
      keyPem: leaf.keyPem,
      ca: { certPem: caPem, keyPem: caKey },
      now,
      serial: leaf.serial,
      validDays: WEBHOOK_LEAF_VALID_DAYS,
      usage: 'server',
    }));
    leafKey = leaf.keyPem;
  }
  if (!certificateIssuedBy(leafPem, caPem) || !certificateMatchesKey(leafPem, leafKey)) {
    throw new Error('the serving certificate does not belong to the CA or its key: pass `leaf`');
  }
  return { 'tls.crt': leafPem, 'tls.key': leafKey, 'ca.crt': bundle, 'ca.key': caKey };
}

/** The base64 caBundle for the webhook configurations. */
export function webhookCaBundle(data: Pick<WebhookTlsData, 'ca.crt'>): string {
  return Buffer.from(data['ca.crt']).toString('base64');
}

/** node-forge writes CRLF line endings; Kubernetes tooling and humans expect LF. */
function unixPem(pem: string): string {
  return pem.replace(/\r\n/g, '\n');
}

function stillValid(pem: string, now: Date): boolean {
  try {
    return certificateInfo(pem).notAfter.getTime() > now.getTime();
  } catch {
    return false;
  }
}

function uniquePems(pems: string[]): string[] {
  const normalise = (pem: string) => pem.replace(/\s+/g, '');
  return pems.filter((pem, i) => pems.findIndex((other) => normalise(other) === normalise(pem)) === i);
}
