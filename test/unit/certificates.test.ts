import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  certificateInfo,
  certificateIssuedBy,
  certificateMatchesKey,
  needsRenewal,
  renewalTime,
  selfSignedCa,
  signedCertificate,
} from '../../functions/certificates.ts';

// RSA keys take ~150 ms each: generate them once per file.
const rsaKey = (format: 'pkcs1' | 'pkcs8') =>
  generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: format, format: 'pem' }) as string;
const caKey = rsaKey('pkcs8');
const otherCaKey = rsaKey('pkcs1');
const leafKey = rsaKey('pkcs1');
const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const DAY = 86_400_000;
const now = new Date('2025-01-01T12:00:00Z');
const dnsNames = ['registry.infra.svc.example.org', 'registry.infra.svc', 'registry.infra.svc.cluster.local'];
const ca = selfSignedCa({ commonName: 'image-registry-operator CA', keyPem: caKey, now, serial: '01', validDays: 3650 });
const otherCa = selfSignedCa({ commonName: 'image-registry-operator CA', keyPem: otherCaKey, now, serial: '01' });
const leaf = signedCertificate({
  commonName: dnsNames[0] as string,
  dnsNames,
  ipAddresses: ['10.1.2.3', '::1'],
  keyPem: leafKey,
  ca: { certPem: ca, keyPem: caKey },
  now,
  serial: 'f00d',
  validDays: 90,
  usage: 'server',
});

test('selfSignedCa: a CA certificate for the given key', () => {
  const info = certificateInfo(ca);
  assert.ok(info.isCa);
  assert.is(info.subject, 'CN=image-registry-operator CA');
  assert.is(info.issuer, info.subject);
  assert.is(info.notAfter.getTime() - now.getTime(), 3650 * DAY);
  assert.ok(info.notBefore.getTime() < now.getTime(), 'backdated for clock skew');
  assert.ok(certificateMatchesKey(ca, caKey));
  assert.ok(certificateIssuedBy(ca, ca));
  const forgeCa = forge.pki.certificateFromPem(ca);
  assert.equal((forgeCa.getExtension('basicConstraints') as { cA?: boolean }).cA, true);
  assert.ok((forgeCa.getExtension('keyUsage') as { keyCertSign?: boolean }).keyCertSign);
});

test('signedCertificate: a server leaf that chains to its CA (forge caStore)', () => {
  // forge checks validity against its own clock unless told the date.
  const verify = (caPem: string, at: Date): boolean => {
    try {
      return forge.pki.verifyCertificateChain(forge.pki.createCaStore([caPem]), [forge.pki.certificateFromPem(leaf)], { validityCheckDate: at });
    } catch {
      return false; // forge throws plain objects, not Errors
    }
  };
  assert.ok(verify(ca, now));
  assert.not.ok(verify(otherCa, now), 'other CA key with the same subject');
  assert.not.ok(verify(ca, new Date(now.getTime() + 91 * DAY)), 'expired');
  assert.ok(forge.pki.certificateFromPem(ca).verify(forge.pki.certificateFromPem(leaf)));

  const info = certificateInfo(leaf);
  assert.not.ok(info.isCa);
  assert.equal(info.dnsNames, dnsNames);
  assert.equal(info.ipAddresses, ['10.1.2.3', '0:0:0:0:0:0:0:1']);
  assert.is(info.issuer, 'CN=image-registry-operator CA');
  assert.is(info.subject, 'CN=registry.infra.svc.example.org');
  assert.is(info.serialNumber, 'f00d');
  assert.is(info.notAfter.getTime() - now.getTime(), 90 * DAY);
  assert.ok(certificateMatchesKey(leaf, leafKey));
  assert.not.ok(certificateMatchesKey(leaf, caKey));
  assert.not.ok(certificateMatchesKey(leaf, ecKey));
  assert.ok(certificateIssuedBy(leaf, ca));
  assert.not.ok(certificateIssuedBy(leaf, otherCa), 'same subject, other key');

  const forgeLeaf = forge.pki.certificateFromPem(leaf);
  assert.ok((forgeLeaf.getExtension('extKeyUsage') as { serverAuth?: boolean }).serverAuth);
  assert.is((forgeLeaf.getExtension('basicConstraints') as { cA?: boolean }).cA, false);
});

test('signedCertificate: usages, high-bit serials, long names', () => {
  const signing = signedCertificate({ commonName: 'registry.infra token signer', keyPem: leafKey, ca: { certPem: ca, keyPem: caKey }, now, serial: '8a', usage: 'signing' });
  const forgeSigning = forge.pki.certificateFromPem(signing);
  assert.not.ok(forgeSigning.getExtension('extKeyUsage'), 'no extended key usage');
  const ku = forgeSigning.getExtension('keyUsage') as { digitalSignature?: boolean; keyEncipherment?: boolean };
  assert.ok(ku.digitalSignature);
  assert.not.ok(ku.keyEncipherment);
  // 0x8a has the high bit set: it must stay a positive DER integer that node/Go parse.
  assert.is(certificateInfo(signing).serialNumber, '8a');

  const client = signedCertificate({ commonName: 'client', keyPem: leafKey, ca: { certPem: ca, keyPem: caKey }, now, serial: '0002', usage: 'client' });
  assert.ok((forge.pki.certificateFromPem(client).getExtension('extKeyUsage') as { clientAuth?: boolean }).clientAuth);
  assert.is(certificateInfo(client).serialNumber, '02');

  const longName = `${'a'.repeat(60)}.infra.svc.example.org`;
  const noCn = signedCertificate({ commonName: longName, dnsNames: [longName], keyPem: leafKey, ca: { certPem: ca, keyPem: caKey }, now, serial: '03', usage: 'server' });
  assert.is(certificateInfo(noCn).subject, '');
  assert.equal(certificateInfo(noCn).dnsNames, [longName]);

  for (const serial of ['', '00', 'xyz', 'ab'.repeat(21)]) {
    assert.throws(() => signedCertificate({ commonName: 'x', keyPem: leafKey, ca: { certPem: ca, keyPem: caKey }, now, serial, usage: 'server' }), /serial/, serial);
  }
  assert.throws(() => selfSignedCa({ commonName: 'x', keyPem: ecKey, now, serial: '01' }), /RSA private key/);
});

test('needsRenewal: a leaf past 2/3 of its life is renewed, a fresh one is not, the CA not', () => {
  const due = renewalTime(leaf);
  const info = certificateInfo(leaf);
  assert.is(due.getTime(), info.notBefore.getTime() + ((info.notAfter.getTime() - info.notBefore.getTime()) * 2) / 3);
  assert.is(needsRenewal(leaf, now, { dnsNames, caCertPem: ca, keyPem: leafKey }), undefined);
  assert.is(needsRenewal(leaf, new Date(due.getTime() - 1000)), undefined);
  assert.is(needsRenewal(leaf, new Date(now.getTime() + 61 * DAY))?.reason, 'RenewalDue');
  assert.is(needsRenewal(leaf, new Date(now.getTime() + 91 * DAY))?.reason, 'Expired');
  // The same moment is early in the CA's 10-year life: the CA is kept across leaf renewals.
  assert.is(needsRenewal(ca, new Date(now.getTime() + 61 * DAY)), undefined);
  assert.is(needsRenewal(ca, new Date(now.getTime() + 2434 * DAY))?.reason, 'RenewalDue');

  // A reissued leaf from the kept CA is fresh again and still verifies against the same CA.
  const later = new Date(now.getTime() + 61 * DAY);
  const renewed = signedCertificate({ commonName: 'r', dnsNames, keyPem: leafKey, ca: { certPem: ca, keyPem: caKey }, now: later, serial: '04', usage: 'server' });
  assert.is(needsRenewal(renewed, later, { dnsNames, caCertPem: ca }), undefined);
});

test('needsRenewal: changed SANs, issuer or key, and garbage', () => {
  assert.is(needsRenewal(leaf, now, { dnsNames: [...dnsNames, 'extra.example.org'] })?.reason, 'DnsNamesChanged');
  assert.is(needsRenewal(leaf, now, { dnsNames: [...dnsNames].reverse() }), undefined, 'order does not matter');
  assert.is(needsRenewal(leaf, now, { ipAddresses: ['::1', '10.1.2.3'] }), undefined, 'IPv6 compared canonically');
  assert.is(needsRenewal(leaf, now, { ipAddresses: ['10.1.2.4', '::1'] })?.reason, 'IpAddressesChanged');
  assert.is(needsRenewal(leaf, now, { caCertPem: otherCa })?.reason, 'IssuerChanged');
  assert.is(needsRenewal(leaf, now, { keyPem: caKey })?.reason, 'KeyMismatch');
  const invalid = needsRenewal('not a certificate', now);
  assert.is(invalid?.reason, 'Invalid');
  assert.match(invalid?.message ?? '', /cannot be parsed/);
});

// A P-256 certificate as users may bring one (spec.tls.secretName / cert-manager); forge can neither
// create nor parse these, node:crypto reads them. Made with openssl, valid 2026-11-27..2126.
const EC_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQRM3/8zr9/EWiwx9
fcY6F20gWKswVSnJzb9ROmGcoqChRANCAAR5anJqU2RsjswrXHPdhQfJjL+/o56U
5po3kcewDvjOoSDpLDlU9hFHaIPR+2CUuSAIAuf682Da3NjXw5g2UvGw
-----END PRIVATE KEY-----
`;
const EC_CERT = `-----BEGIN CERTIFICATE-----
MIIBnjCCAUSgAwIBAgIULJvzMtffAeJLETH5jXv3nJId6i8wCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKZWMuZXhhbXBsZTAgFw0yNjExMjcxODUzMDJaGA8yMTI2MTEw
MzE4NTMwMlowFTETMBEGA1UEAwwKZWMuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABHlqcmpTZGyOzCtcc92FB8mMv7+jnpTmmjeRx7AO+M6hIOksOVT2
EUdog9H7YJS5IAgC5/rzYNrc2NfDmDZS8bCjcDBuMB0GA1UdDgQWBBQDRzOxp+Tl
pljNuBXXvFKqQD232jAfBgNVHSMEGDAWgBQDRzOxp+TlpljNuBXXvFKqQD232jAP
BgNVHRMBAf8EBTADAQH/MBsGA1UdEQQUMBKCCmVjLmV4YW1wbGWHBMAAAgEwCgYI
KoZIzj0EAwIDSAAwRQIhAPm0ZEt8L8krpjbGFHqPX1aiFWmUskBjWVDF7OSkHU69
AiAonsyIzhjM76DnEdgoQldaW+pZcw0yhKTjGhcc/rkuSw==
-----END CERTIFICATE-----
`;

test('certificateInfo, needsRenewal and certificateMatchesKey read ECDSA certificates', () => {
  const info = certificateInfo(EC_CERT);
  assert.equal(info.dnsNames, ['ec.example']);
  assert.equal(info.ipAddresses, ['192.0.2.1']);
  assert.is(info.subject, 'CN=ec.example');
  assert.ok(certificateMatchesKey(EC_CERT, EC_KEY));
  assert.not.ok(certificateMatchesKey(EC_CERT, ecKey));
  assert.not.ok(certificateMatchesKey(leaf, EC_KEY));
  const at = new Date('2030-01-01T00:00:00Z');
  assert.is(needsRenewal(EC_CERT, at, { dnsNames: ['ec.example'], keyPem: EC_KEY }), undefined);
  assert.is(needsRenewal(EC_CERT, at, { caCertPem: ca })?.reason, 'IssuerChanged');
});

test.run();
