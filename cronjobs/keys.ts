// Randomness and key generation for the Jobs; functions/ takes their results as parameters.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

/** RSA 2048 private key in PKCS#8 PEM; node:crypto is ~10× faster than node-forge's keygen. */
export function newRsaKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** 128-bit certificate serial number as hex. */
export function randomSerial(): string {
  return randomBytes(16).toString('hex');
}

/** A random token, e.g. the registry's http.secret. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
