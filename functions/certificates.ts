// X.509 for the operator: the root CA, registry TLS leaves, token-signing certificates, and the
// renewal policy. Keys and serial numbers come from the caller (node:crypto), so this stays pure.
//
// Certificates are *created* with node-forge (it signs RSA only, which is what we generate) and
// *read* with node:crypto's X509Certificate, because users may bring their own ECDSA certificates
// (spec.tls.secretName, cert-manager) that forge cannot parse.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import forge from 'node-forge';

export type CertificateUsage = 'server' | 'client' | 'signing';

export interface SelfSignedCaRequest {
  commonName: string;
  /** PEM of an RSA private key (PKCS#1 or PKCS#8) */
  keyPem: string;
  now: Date;
  /** positive serial number as hex, from the caller's random bytes */
  serial: string;
  validDays?: number;
}

export interface SignedCertificateRequest {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** PEM of the leaf's RSA private key */
  keyPem: string;
  ca: { certPem: string; keyPem: string };
  now: Date;
  serial: string;
  validDays?: number;
  usage: CertificateUsage;
}

export interface CertificateInfo {
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  ipAddresses: string[];
  issuer: string;
  subject: string;
  serialNumber: string;
  isCa: boolean;
}

/** What the current certificate should look like; omitted fields are not checked. */
export interface WantedCertificate {
  dnsNames?: string[];
  ipAddresses?: string[];
  /** the CA that must have signed it (self-signed mode) */
  caCertPem?: string;
  /** the private key it must belong to */
  keyPem?: string;
}

export interface RenewalReason {
  reason: 'Invalid' | 'Expired' | 'RenewalDue' | 'DnsNamesChanged' | 'IpAddressesChanged' | 'IssuerChanged' | 'KeyMismatch';
  message: string;
}

export const CA_VALID_DAYS = 3650;
export const LEAF_VALID_DAYS = 90;
/** Renew once this share of the lifetime has passed, as cert-manager does by default. */
export const RENEWAL_FRACTION = 2 / 3;
// Clients whose clock runs a little behind the Job's must not see a not-yet-valid certificate.
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** A self-signed root CA certificate (PEM) for the given key. */
export function selfSignedCa(request: SelfSignedCaRequest): string {
  const key = rsaPrivateKey(request.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = derSerial(request.serial);
  setValidity(cert, request.now, request.validDays ?? CA_VALID_DAYS);
  const subject = subjectAttributes(request.commonName);
  if (subject.length === 0) throw new Error('a CA needs a common name of 1-64 characters');
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A leaf certificate (PEM) for the given key, signed by the CA. */
export function signedCertificate(request: SignedCertificateRequest): string {
  const caCert = forge.pki.certificateFromPem(request.ca.certPem);
  const caKey = rsaPrivateKey(request.ca.keyPem);
  const key = rsaPrivateKey(request.keyPem);
  const dnsNames = request.dnsNames ?? [];
  const ipAddresses = request.ipAddresses ?? [];
  const subject = subjectAttributes(request.commonName);
  if (subject.length === 0 && dnsNames.length + ipAddresses.length === 0) {
    throw new Error('a certificate needs a common name of 1-64 characters or subject alternative names');
  }
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = derSerial(request.serial);
  setValidity(cert, request.now, request.validDays ?? LEAF_VALID_DAYS);
  cert.setSubject(subject);
  cert.setIssuer(caCert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { ...keyUsage(request.usage), name: 'keyUsage', critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: subjectKeyId(caCert) },
  ];
  const eku = extendedKeyUsage(request.usage);
  if (eku) extensions.push({ name: 'extKeyUsage', ...eku });
  if (dnsNames.length + ipAddresses.length > 0) {
    extensions.push({
      name: 'subjectAltName',
      // RFC 5280: with an empty subject the SAN extension must be critical.
      critical: subject.length === 0,
      altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))],
    });
  }
  cert.setExtensions(extensions);
  cert.sign(caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** Reads validity, names and issuer of the first certificate in a PEM (RSA or ECDSA). */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  const altNames = parseAltNames(cert.subjectAltName);
  return {
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    dnsNames: altNames.dns,
    ipAddresses: altNames.ip,
    issuer: distinguishedName(cert.issuer),
    subject: distinguishedName(cert.subject),
    serialNumber: cert.serialNumber.toLowerCase(),
    isCa: cert.ca,
  };
}

/** When the renewal policy starts asking for a new certificate: 2/3 into its lifetime. */
export function renewalTime(certPem: string): Date {
  const { notBefore, notAfter } = certificateInfo(certPem);
  return new Date(notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) * RENEWAL_FRACTION);
}

/**
 * Why the certificate must be (re)issued now, or undefined when it is fine. Checks, in order:
 * parseable, not expired, not past 2/3 of its lifetime, wanted SANs, issuing CA, matching key.
 */
export function needsRenewal(certPem: string, now: Date, wanted: WantedCertificate = {}): RenewalReason | undefined {
  let info: CertificateInfo;
  try {
    info = certificateInfo(certPem);
  } catch (error) {
    return { reason: 'Invalid', message: `certificate cannot be parsed: ${(error as Error).message}` };
  }
  if (now.getTime() >= info.notAfter.getTime()) {
    return { reason: 'Expired', message: `certificate expired at ${info.notAfter.toISOString()}` };
  }
  const due = renewalTime(certPem);
  if (now.getTime() >= due.getTime()) {
    return { reason: 'RenewalDue', message: `certificate passed 2/3 of its lifetime at ${due.toISOString()}` };
  }
  if (wanted.dnsNames && !sameSet(wanted.dnsNames, info.dnsNames)) {
    return { reason: 'DnsNamesChanged', message: `certificate DNS names [${info.dnsNames.join(', ')}] differ from [${wanted.dnsNames.join(', ')}]` };
  }
  if (wanted.ipAddresses && !sameSet(wanted.ipAddresses.map(canonicalIp), info.ipAddresses.map(canonicalIp))) {
    return { reason: 'IpAddressesChanged', message: `certificate IP addresses [${info.ipAddresses.join(', ')}] differ from [${wanted.ipAddresses.join(', ')}]` };
  }
  if (wanted.caCertPem && !certificateIssuedBy(certPem, wanted.caCertPem)) {
    return { reason: 'IssuerChanged', message: `certificate issued by "${info.issuer}" is not signed by the current CA` };
  }
  if (wanted.keyPem && !certificateMatchesKey(certPem, wanted.keyPem)) {
    return { reason: 'KeyMismatch', message: 'certificate does not belong to the private key' };
  }
  return undefined;
}

/** True when the private key (PEM, RSA or EC) belongs to the certificate's public key. */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** True when the CA's subject is the certificate's issuer and the CA's key verifies its signature. */
export function certificateIssuedBy(certPem: string, caCertPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caCertPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

function rsaPrivateKey(pem: string): forge.pki.rsa.PrivateKey {
  try {
    return forge.pki.privateKeyFromPem(pem);
  } catch (error) {
    throw new Error(`expected an RSA private key in PEM: ${(error as Error).message}`);
  }
}

// DER INTEGERs must be minimal and serials positive: strip leading zero bytes, then add one back
// when the high bit is set. Go's x509 parser rejects anything else.
function derSerial(hex: string): string {
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new Error(`serial must be hex, got ${JSON.stringify(hex)}`);
  let digits = hex.toLowerCase().replace(/^0+/, '');
  if (digits === '') throw new Error('serial must not be zero');
  if (digits.length % 2 === 1) digits = `0${digits}`;
  if (digits.length > 40) throw new Error('serial must not exceed 20 bytes');
  return parseInt(digits.slice(0, 1), 16) >= 8 ? `00${digits}` : digits;
}

function setValidity(cert: forge.pki.Certificate, now: Date, validDays: number): void {
  if (!(validDays > 0)) throw new Error(`validDays must be positive, got ${validDays}`);
  // X.509 times have whole seconds; truncating keeps notBefore/notAfter exactly predictable.
  const seconds = Math.floor(now.getTime() / 1000) * 1000;
  cert.validity.notBefore = new Date(seconds - BACKDATE_MS);
  cert.validity.notAfter = new Date(seconds + validDays * DAY_MS);
}

function subjectAttributes(commonName: string): forge.pki.CertificateField[] {
  // X.509 limits CN to 64 characters; longer names live in the SANs only (as cert-manager does).
  return commonName && commonName.length <= 64 ? [{ name: 'commonName', value: commonName }] : [];
}

function subjectKeyId(caCert: forge.pki.Certificate): string {
  const ext = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  return ext?.subjectKeyIdentifier ? forge.util.hexToBytes(ext.subjectKeyIdentifier) : caCert.generateSubjectKeyIdentifier().getBytes();
}

function keyUsage(usage: CertificateUsage): Record<string, boolean> {
  return usage === 'signing' ? { digitalSignature: true } : { digitalSignature: true, keyEncipherment: true };
}

function extendedKeyUsage(usage: CertificateUsage): Record<string, boolean> | undefined {
  if (usage === 'server') return { serverAuth: true };
  if (usage === 'client') return { clientAuth: true };
  return undefined;
}

// Node renders SANs as "DNS:a, DNS:b, IP Address:10.0.0.1"; values with special characters are
// JSON-quoted.
function parseAltNames(text: string | undefined): { dns: string[]; ip: string[] } {
  const dns: string[] = [];
  const ip: string[] = [];
  const entry = /(DNS|IP Address|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const match of (text ?? '').matchAll(entry)) {
    const raw = match[2] ?? '';
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (match[1] === 'DNS') dns.push(value);
    else if (match[1] === 'IP Address') ip.push(value);
  }
  return { dns, ip };
}

// Node renders a DN one attribute per line, and gives undefined for an empty subject.
function distinguishedName(text: string | undefined): string {
  return (text ?? '').split('\n').filter(Boolean).join(', ');
}

// Node prints IPv6 SANs uncompressed ("0:0:0:0:0:0:0:1"); compare in that form.
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => group.replace(/^0+(?=.)/, '')).join(':');
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a.map((s) => s.toLowerCase()));
  const right = new Set(b.map((s) => s.toLowerCase()));
  return left.size === right.size && [...left].every((s) => right.has(s));
}
