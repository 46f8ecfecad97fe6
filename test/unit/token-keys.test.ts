import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Secret } from '@kubernetes/client-node';
import { selfSignedCa, signedCertificate } from '../../functions/certificates.ts';
import { keyPairFromSecret, isCertificateProblem } from '../../functions/certificate-sources.ts';
import { TOKEN_EXPIRATION_SECONDS } from '../../functions/docker-auth-config.ts';
import { desiredConfigSecrets } from '../../functions/registry-objects.ts';
import {
  TOKEN_KEY_RETENTION_SECONDS,
  TOKEN_KEY_SWITCHED_AT_ANNOTATION,
  TRUSTED_TOKEN_KEYS_FILE,
  awaitsRollout,
  decideTokenKeys,
  storedTokenKeys,
  tokenKeyId,
  tokenKeyProblem,
  trustedTokenKey,
  trustedTokenKeysDocument,
  usesThumbprintKeyId,
  type StoredTokenKeys,
  type TokenKeyDecision,
  type TokenKeyPair,
} from '../../functions/token-keys.ts';
import type { ImageRegistry } from '../../functions/types.ts';
import { selfSignedEcCertificate, selfSignedEd25519Certificate } from '../support/non-rsa-certificates.ts';
import { rfc7638Thumbprint } from '../support/registry-token.ts';

// RSA keys take ~150 ms each: generate them once per file.
const rsaKey = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
const T0 = new Date('2025-03-01T00:00:00Z');
const caKey = rsaKey();
const ca = { certPem: selfSignedCa({ commonName: 'test CA', keyPem: caKey, now: T0, serial: '01' }), keyPem: caKey };
/** A token-signing key pair as the operator issues it in self-signed mode. */
function rsaSigner(serial: string, now = T0): TokenKeyPair {
  const keyPem = rsaKey();
  return { certPem: signedCertificate({ commonName: 'registry.infra token signer', keyPem, ca, now, serial, usage: 'signing' }), keyPem };
}
const A = rsaSigner('0a');
const B = rsaSigner('0b');
const C = rsaSigner('0c');
const kid = (pair: TokenKeyPair) => tokenKeyId(pair.certPem);
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);
const none: StoredTokenKeys = { trusted: [] };

const registry: ImageRegistry = { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'u1' }, spec: {} };

/** Writes the decision the way the Job does (desiredConfigSecrets) and reads it back, as the next run would. */
function stored(decision: TokenKeyDecision): StoredTokenKeys {
  const [authSecret] = desiredConfigSecrets({ registry, hostname: 'registry.infra.svc.example.org', accounts: [], now: T0, httpSecret: 's', tokenKeys: decision.state });
  return storedTokenKeys(authSecret);
}
const kids = (state: StoredTokenKeys) => state.trusted.map((k) => k.kid);

test('tokenKeyId: RFC 7638 thumbprint for RSA (the RFC example), libtrust key ID for EC (as docker_auth 1.14 writes it)', () => {
  // RFC 7638 section 3.1
  const n =
    '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
  const rfcKey = createPublicKey({ key: { kty: 'RSA', n, e: 'AQAB' }, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
  assert.is(tokenKeyId(rfcKey), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  assert.is(kid(A), rfc7638Thumbprint(A.keyPem), 'certificate and private key name the same key');
  // An EC certificate whose kid the real docker_auth 1.14.0 wrote into a token (disable_legacy_key_id: false).
  const ecCert = `-----BEGIN CERTIFICATE-----
MIIBfDCCASGgAwIBAgIUVJF8O04SvHTD6TOJI5hdmwWROUQwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIc2lnbmVyLWEwHhcNMjYxMTI4MDQzOTEwWhcNMjYxMjI4MDQz
OTEwWjATMREwDwYDVQQDDAhzaWduZXItYTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABE4RHlsYM7owORRj2GkrOIR3GHpSR3HYawkoD/8z4yrNtZG/YvMYVj4kY9f6
CluFz/iocE6tK5ddko0E31SaHbWjUzBRMB0GA1UdDgQWBBT254nxDywFPHZTQJOb
P0gaa4cZODAfBgNVHSMEGDAWgBT254nxDywFPHZTQJObP0gaa4cZODAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDBQIABNsnEfJxOj11gN81l0Daw
1zpZuoJ00oEZmVwQtgIhAJ68xHMX6o6Uu1mBnZTdRN7sqYNiX5QDqjGwoV9MmRWN
-----END CERTIFICATE-----
`;
  assert.is(tokenKeyId(ecCert), 'YD3P:XNND:SFAU:YE6T:WDAW:PBVC:CUGC:Q36L:DN64:7SKF:PQ3G:2Q3E');
  // Two keys on one curve get two IDs (docker_auth's and the registry's EC "thumbprints" would not).
  const ec1 = selfSignedEcCertificate('one');
  const ec2 = selfSignedEcCertificate('two');
  assert.match(kid(ec1), /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  assert.is.not(kid(ec1), kid(ec2));
  assert.is(usesThumbprintKeyId(A.certPem), true);
  assert.is(usesThumbprintKeyId(ec1.certPem), false);
});

test('trustedTokenKey / trustedTokenKeysDocument: a JWKS of public keys named by their kid', () => {
  const ec = selfSignedEcCertificate('ec', 'P-384');
  const document = trustedTokenKeysDocument([trustedTokenKey(A.certPem), trustedTokenKey(ec.certPem)]);
  const parsed = JSON.parse(document) as { keys: Record<string, string>[] };
  assert.equal(parsed.keys.map((k) => [k.kty, k.kid, k.use]), [['RSA', kid(A), 'sig'], ['EC', kid(ec), 'sig']]);
  assert.equal(Object.keys(parsed.keys[0] ?? {}), ['kty', 'kid', 'use', 'n', 'e']);
  assert.equal(Object.keys(parsed.keys[1] ?? {}), ['kty', 'kid', 'use', 'crv', 'x', 'y']);
  assert.is(parsed.keys[1]?.crv, 'P-384');
  assert.not.match(document, /PRIVATE|"d"/, 'public keys only');
  assert.is(trustedTokenKeysDocument([trustedTokenKey(A.certPem), trustedTokenKey(ec.certPem)]), document, 'deterministic');
});

test('tokenKeyProblem: RSA and ECDSA P-256/384/521 sign; other keys are refused with the reason', () => {
  assert.is(tokenKeyProblem(A.certPem), undefined);
  assert.is(tokenKeyProblem(selfSignedEcCertificate('p256').certPem), undefined);
  assert.is(tokenKeyProblem(selfSignedEcCertificate('p384', 'P-384').certPem), undefined);
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
  assert.match(tokenKeyProblem(ed) ?? '', /RSA or ECDSA \(P-256, P-384, P-521\), got ed25519/);
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  assert.match(tokenKeyProblem(k1) ?? '', /got secp256k1/);
});

test('fresh registry: the source key becomes active and the only trusted key', () => {
  const decision = decideTokenKeys({ source: A, current: none, now: T0 });
  assert.is(decision.phase, 'Initialized');
  assert.equal(decision.state.active, A);
  assert.equal(kids(decision.state), [kid(A)]);
  assert.is(decision.state.switchedAt, undefined);
  assert.is(awaitsRollout(decision), false);
});

test('steady state: source == active changes nothing, so a rerun writes and rolls nothing', () => {
  const current = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  const decision = decideTokenKeys({ source: A, current, now: minutes(60) });
  assert.is(decision.phase, 'Current');
  assert.equal(stored(decision), current);
});

test('a renewed certificate for the same key replaces the active certificate without staging or roll', () => {
  const current = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  const renewed = { certPem: signedCertificate({ commonName: 'renewed', keyPem: A.keyPem, ca, now: minutes(60), serial: '1a', usage: 'signing' }), keyPem: A.keyPem };
  const decision = decideTokenKeys({ source: renewed, current, now: minutes(60) });
  assert.is(decision.phase, 'Current');
  assert.equal(decision.state.active, renewed);
  assert.equal(decision.state.trusted, current.trusted, 'the trust set (and so the pods) stay');
});

test('renewal: stage (trust both) → wait for the roll → switch (keep trusting the old key)', () => {
  const initial = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  // staged: the registry must trust B before docker_auth signs with it
  const staged = decideTokenKeys({ source: B, current: initial, now: minutes(1) });
  assert.is(staged.phase, 'Staged');
  assert.equal(staged.state.active, A, 'docker_auth keeps signing with A');
  assert.equal(kids(staged.state), [kid(A), kid(B)]);
  assert.ok(awaitsRollout(staged));
  assert.match(staged.message, kid(B));

  // staged but not rolled out: no roll-out known, or the running pods still trust only A
  const afterStage = stored(staged);
  for (const trustedByAllPods of [undefined, [kid(A)]]) {
    const pending = decideTokenKeys({ source: B, current: afterStage, now: minutes(2), ...(trustedByAllPods ? { trustedByAllPods } : {}) });
    assert.is(pending.phase, 'RolloutPending');
    assert.equal(stored(pending), afterStage, 'nothing changes while pods roll');
    assert.ok(awaitsRollout(pending));
  }

  // every pod trusts A and B: switch
  const switched = decideTokenKeys({ source: B, current: afterStage, now: minutes(3), trustedByAllPods: [kid(A), kid(B)] });
  assert.is(switched.phase, 'Switched');
  assert.equal(switched.state.active, B);
  assert.equal(kids(switched.state), [kid(A), kid(B)], 'A still verifies the tokens it signed');
  assert.equal(switched.state.switchedAt, minutes(3));
  assert.is(awaitsRollout(switched), false);

  // afterwards: steady, A stays trusted (dropping it now would cost a roll of its own)
  const after = stored(switched);
  assert.equal(after.switchedAt, minutes(3));
  const steady = decideTokenKeys({ source: B, current: after, now: minutes(600) });
  assert.is(steady.phase, 'Current');
  assert.equal(stored(steady), after);
});

test('a roll-out of another trust set does not switch (pods that trust only part of the set prove nothing)', () => {
  const staged = stored(decideTokenKeys({ source: B, current: stored(decideTokenKeys({ source: A, current: none, now: T0 })), now: T0 }));
  const decision = decideTokenKeys({ source: B, current: staged, now: minutes(1), trustedByAllPods: [kid(B), kid(C)] });
  assert.is(decision.phase, 'RolloutPending');
});

test('the next renewal drops the old key at its staging, but only once its tokens have expired', () => {
  let state = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  state = stored(decideTokenKeys({ source: B, current: state, now: T0 }));
  state = stored(decideTokenKeys({ source: B, current: state, now: minutes(2), trustedByAllPods: [kid(A), kid(B)] }));
  assert.equal([state.active?.certPem, kids(state)], [B.certPem, [kid(A), kid(B)]]);

  // C arrives 5 minutes after the switch: A may still have signed tokens that are valid → deferred
  const deferred = decideTokenKeys({ source: C, current: state, now: minutes(7) });
  assert.is(deferred.phase, 'Deferred');
  assert.equal(deferred.retryAt, new Date(minutes(2).getTime() + TOKEN_KEY_RETENTION_SECONDS * 1000));
  assert.equal(stored(deferred), state, 'nothing is written');
  assert.is(awaitsRollout(deferred), false);
  assert.match(deferred.message, deferred.retryAt?.toISOString() ?? '');
  assert.ok(TOKEN_KEY_RETENTION_SECONDS > TOKEN_EXPIRATION_SECONDS, 'retention covers the token lifetime and the reload delay');

  // one millisecond before the retention ends: still deferred; at the end: staged, A dropped
  const end = deferred.retryAt as Date;
  assert.is(decideTokenKeys({ source: C, current: state, now: new Date(end.getTime() - 1) }).phase, 'Deferred');
  const staged = decideTokenKeys({ source: C, current: state, now: end });
  assert.is(staged.phase, 'Staged');
  assert.equal(kids(staged.state), [kid(B), kid(C)]);
  assert.match(staged.message, `no longer trusted: ${kid(A)}`);
});

test('the user replaces the Secret twice quickly: the staged key that never signed is dropped at once; the switched one waits', () => {
  let state = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  state = stored(decideTokenKeys({ source: B, current: state, now: T0 }));
  // C replaces B before the pods rolled for B: B never signed a token, nothing to wait for
  const restaged = decideTokenKeys({ source: C, current: state, now: minutes(1) });
  assert.is(restaged.phase, 'Staged');
  assert.equal(kids(restaged.state), [kid(A), kid(C)]);
  state = stored(restaged);
  // the roll-out of [A, B] finished meanwhile: it proves nothing for C
  assert.is(decideTokenKeys({ source: C, current: state, now: minutes(2), trustedByAllPods: [kid(A), kid(B)] }).phase, 'RolloutPending');
  state = stored(decideTokenKeys({ source: C, current: state, now: minutes(3), trustedByAllPods: [kid(A), kid(C)] }));
  assert.equal(state.active?.certPem, C.certPem);
  // replaced again right after that switch: deferred until A's tokens expired
  const D = B;
  assert.is(decideTokenKeys({ source: D, current: state, now: minutes(4) }).phase, 'Deferred');
  assert.is(decideTokenKeys({ source: D, current: state, now: new Date(minutes(3).getTime() + TOKEN_KEY_RETENTION_SECONDS * 1000) }).phase, 'Staged');
});

test('switching back to the previous key needs no roll: every pod still trusts it', () => {
  let state = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  state = stored(decideTokenKeys({ source: B, current: state, now: T0 }));
  state = stored(decideTokenKeys({ source: B, current: state, now: minutes(1), trustedByAllPods: [kid(A), kid(B)] }));
  const back = decideTokenKeys({ source: A, current: state, now: minutes(2), trustedByAllPods: [kid(A), kid(B)] });
  assert.is(back.phase, 'Switched');
  assert.equal(kids(back.state), [kid(A), kid(B)]);
  assert.equal(back.state.active, A);
});

test('cert-manager / user ECDSA keys: each renewal stages and switches like RSA, keys told apart by kid', () => {
  const e1 = selfSignedEcCertificate('signer 1');
  const e2 = selfSignedEcCertificate('signer 2');
  let state = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  // RSA → EC (a user switches to an ECDSA Secret)
  let decision = decideTokenKeys({ source: e1, current: state, now: T0 });
  assert.is(decision.phase, 'Staged');
  state = stored(decision);
  decision = decideTokenKeys({ source: e1, current: state, now: minutes(1), trustedByAllPods: kids(state) });
  assert.is(decision.phase, 'Switched');
  state = stored(decision);
  // EC → EC on the same curve, after the retention
  decision = decideTokenKeys({ source: e2, current: state, now: minutes(60) });
  assert.is(decision.phase, 'Staged');
  assert.equal(kids(decision.state), [kid(e1), kid(e2)]);
  assert.equal(decision.state.trusted.map((k) => k.crv), ['P-256', 'P-256']);
  state = stored(decision);
  decision = decideTokenKeys({ source: e2, current: state, now: minutes(61), trustedByAllPods: kids(state) });
  assert.is(decision.phase, 'Switched');
  assert.equal(stored(decision).active, e2);
});

test('a trust set without the active key (edited by hand) is repaired by adding the key', () => {
  const current: StoredTokenKeys = { active: A, trusted: [trustedTokenKey(B.certPem)] };
  const decision = decideTokenKeys({ source: A, current, now: T0 });
  assert.is(decision.phase, 'Current');
  assert.equal(kids(decision.state), [kid(B), kid(A)]);
});

test('decideTokenKeys does not mutate its input', () => {
  const current = stored(decideTokenKeys({ source: A, current: none, now: T0 }));
  const snapshot = structuredClone(current);
  const trustedByAllPods = Object.freeze([kid(A), kid(B)]);
  decideTokenKeys({ source: B, current, now: minutes(1), trustedByAllPods });
  decideTokenKeys({ source: B, current: stored(decideTokenKeys({ source: B, current, now: T0 })), now: minutes(1), trustedByAllPods });
  assert.equal(current, snapshot);
});

test('storedTokenKeys: the auth config Secret read back; unusable parts count as absent', () => {
  assert.equal(storedTokenKeys(undefined), { trusted: [] });
  const [secret] = desiredConfigSecrets({
    registry, hostname: 'h', accounts: [], now: T0, httpSecret: 's', tokenKeys: { active: B, trusted: [trustedTokenKey(A.certPem), trustedTokenKey(B.certPem)], switchedAt: minutes(3) },
  });
  assert.equal(secret.metadata?.annotations, { [TOKEN_KEY_SWITCHED_AT_ANNOTATION]: minutes(3).toISOString() });
  const read = storedTokenKeys(secret);
  assert.equal(read.active, B);
  assert.equal(kids(read), [kid(A), kid(B)]);
  assert.equal(read.switchedAt, minutes(3));
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const broken: V1Secret = { data: { ...secret.data, 'token.key': b64(A.keyPem), [TRUSTED_TOKEN_KEYS_FILE]: b64('{not json') }, metadata: { annotations: { [TOKEN_KEY_SWITCHED_AT_ANNOTATION]: 'yesterday' } } };
  assert.equal(storedTokenKeys(broken), { trusted: [] }, 'a key that does not match its certificate is no active key');
  // a registry from before token keys lived in the auth config: treated as fresh
  assert.equal(storedTokenKeys({ data: { 'auth_config.yml': b64('users: {}') } }), { trusted: [] });
});

test('keyPairFromSecret refuses a token-signing Secret docker_auth cannot sign with (not for serving TLS)', () => {
  const secret = (pair: TokenKeyPair) => ({ data: { 'tls.crt': Buffer.from(pair.certPem).toString('base64'), 'tls.key': Buffer.from(pair.keyPem).toString('base64') } });
  const withSecrets = { ...registry, spec: { tls: { secretName: 'serving' }, auth: { ca: { secretName: 'signer' } } } };
  assert.not.ok(isCertificateProblem(keyPairFromSecret(secret(selfSignedEcCertificate('ec')), withSecrets, 'auth')));
  const ed = selfSignedEd25519Certificate('ed');
  const refused = keyPairFromSecret(secret(ed), withSecrets, 'auth');
  assert.ok(isCertificateProblem(refused));
  assert.equal(isCertificateProblem(refused) && [refused.reason, refused.message], ['SecretInvalid', 'Secret signer (spec.auth.ca): the token-signing key must be RSA or ECDSA (P-256, P-384, P-521), got ed25519']);
  assert.not.ok(isCertificateProblem(keyPairFromSecret(secret(ed), withSecrets, 'tls')));
});

test.run();
