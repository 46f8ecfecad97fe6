// Self-signed ECDSA and Ed25519 certificates for tests, as cert-manager or a user might bring them
// for the token-signing key. node-forge signs RSA only, so the certificate is assembled with forge's
// ASN.1 helpers and signed with node:crypto.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import forge from 'node-forge';

export type EcCurve = 'P-256' | 'P-384';
type KeyKind = EcCurve | 'ed25519';

const { asn1 } = forge;
const SIGNATURE: Record<KeyKind, { oid: string; hash: string | null }> = {
  'P-256': { oid: '1.2.840.10045.4.3.2', hash: 'sha256' }, // ecdsa-with-SHA256
  'P-384': { oid: '1.2.840.10045.4.3.3', hash: 'sha384' }, // ecdsa-with-SHA384
  ed25519: { oid: '1.3.101.112', hash: null }, // Ed25519 hashes internally
};
const COMMON_NAME_OID = '2.5.4.3';

/** A new EC key and a self-signed certificate for it, valid from an hour before `now` for `days`. */
export function selfSignedEcCertificate(commonName: string, curve: EcCurve = 'P-256', now = new Date(), days = 90): { certPem: string; keyPem: string } {
  const keyPem = generateKeyPairSync('ec', { namedCurve: curve }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem: selfSigned(commonName, keyPem, curve, now, days), keyPem };
}

/** Like selfSignedEcCertificate, for an Ed25519 key (which docker_auth cannot sign with). */
export function selfSignedEd25519Certificate(commonName: string, now = new Date(), days = 90): { certPem: string; keyPem: string } {
  const keyPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem: selfSigned(commonName, keyPem, 'ed25519', now, days), keyPem };
}

function selfSigned(commonName: string, keyPem: string, kind: KeyKind, now: Date, days: number): string {
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const algorithm = seq([oid(SIGNATURE[kind].oid)]);
  const name = seq([set([seq([oid(COMMON_NAME_OID), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(commonName))])])]);
  const validity = seq([utcTime(new Date(now.getTime() - 3600_000)), utcTime(new Date(now.getTime() + days * 86_400_000))]);
  const tbs = seq([
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [integer('\x02')]), // v3
    integer(`\x01${randomBytes(15).toString('binary')}`), // positive, minimal
    algorithm,
    name,
    validity,
    name,
    asn1.fromDer(forge.util.createBuffer(spki.toString('binary'))),
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign(SIGNATURE[kind].hash, tbsDer, createPrivateKey(keyPem)); // ECDSA: DER (r, s)
  const certificate = seq([tbs, algorithm, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${signature.toString('binary')}`)]);
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
}

function seq(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function set(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
}

function oid(dotted: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(dotted).getBytes());
}

function integer(bytes: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, bytes);
}

function utcTime(date: Date): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date));
}
