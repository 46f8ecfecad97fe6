import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import {
  issueWebhookTls,
  pemBlocks,
  webhookCaBundle,
  webhookDnsNames,
  webhookTlsRenewal,
  WEBHOOK_CA_VALID_DAYS,
  WEBHOOK_LEAF_VALID_DAYS,
  type NewKey,
  type WebhookTlsData,
} from '../../functions/webhook-tls.ts';

const NS = 'image-registry-operator';
const DAY = 86_400_000;
const T0 = new Date('2025-06-01T12:00:00Z');
const keys = Array.from({ length: 5 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
let serial = 0x10;
const newKey = (i: number): NewKey => ({ keyPem: keys[i] as string, serial: (serial++).toString(16) });
const at = (days: number) => new Date(T0.getTime() + days * DAY);
const cert = (pem: string) => new X509Certificate(pem);

function fresh(): WebhookTlsData {
  return issueWebhookTls({ namespace: NS, now: T0, current: undefined, ca: newKey(0), leaf: newKey(1) });
}

test('webhookDnsNames: the Service names the API server dials', () => {
  assert.equal(webhookDnsNames('ops'), ['image-registry-operator-webhook.ops.svc', 'image-registry-operator-webhook.ops.svc.cluster.local']);
  assert.equal(webhookDnsNames('ops', 'k8s.internal'), ['image-registry-operator-webhook.ops.svc', 'image-registry-operator-webhook.ops.svc.k8s.internal']);
});

test('nothing yet → CA and leaf are due; issuing both gives a leaf for the Service, signed by the CA', () => {
  const due = webhookTlsRenewal(undefined, NS, T0);
  assert.is(due.ca?.reason, 'Invalid');
  assert.ok(due.leaf);
  const data = fresh();
  const leaf = cert(data['tls.crt']);
  const ca = cert(data['ca.crt']);
  assert.ok(ca.ca);
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  assert.is(leaf.subjectAltName, webhookDnsNames(NS).map((n) => `DNS:${n}`).join(', '));
  assert.is(data['ca.key'], keys[0]);
  assert.is(data['tls.key'], keys[1]);
  assert.is(pemBlocks(data['ca.crt']).length, 1);
  assert.not.match(data['tls.crt'] + data['ca.crt'], '\r', 'LF line endings');
  assert.is(Math.round((leaf.validToDate.getTime() - T0.getTime()) / DAY), WEBHOOK_LEAF_VALID_DAYS);
  assert.is(Math.round((ca.validToDate.getTime() - T0.getTime()) / DAY), WEBHOOK_CA_VALID_DAYS);
  assert.equal(webhookTlsRenewal(data, NS, T0), {}, 'nothing due right after issuing');
});

test('the leaf is renewed after 2/3 of its life by the same CA: ca.crt stays byte for byte', () => {
  const data = fresh();
  assert.equal(webhookTlsRenewal(data, NS, at(59)), {});
  const due = webhookTlsRenewal(data, NS, at(61));
  assert.is(due.ca, undefined);
  assert.is(due.leaf?.reason, 'RenewalDue');
  const frozen = Object.freeze({ ...data });
  const renewed = issueWebhookTls({ namespace: NS, now: at(61), current: frozen, leaf: newKey(2) });
  assert.is(renewed['ca.crt'], data['ca.crt']);
  assert.is(renewed['ca.key'], data['ca.key']);
  assert.is.not(renewed['tls.crt'], data['tls.crt']);
  assert.is(renewed['tls.key'], keys[2]);
  assert.ok(cert(renewed['tls.crt']).checkIssued(cert(data['ca.crt'])));
  assert.is(webhookCaBundle(renewed), webhookCaBundle(data), 'the configurations need no change');
  assert.equal(webhookTlsRenewal(renewed, NS, at(61)), {});
  assert.equal(frozen, data, 'input not mutated');
});

test('a leaf for other names, another CA or another key is reissued', () => {
  const data = fresh();
  assert.is(webhookTlsRenewal(data, 'elsewhere', T0).leaf?.reason, 'DnsNamesChanged');
  assert.is(webhookTlsRenewal({ ...data, 'tls.key': keys[3] as string }, NS, T0).leaf?.reason, 'KeyMismatch');
  const other = issueWebhookTls({ namespace: NS, now: T0, current: undefined, ca: newKey(3), leaf: newKey(4) });
  assert.is(webhookTlsRenewal({ ...data, 'tls.crt': other['tls.crt'], 'tls.key': other['tls.key'] }, NS, T0).leaf?.reason, 'IssuerChanged');
  assert.is(webhookTlsRenewal({ ...data, 'tls.crt': 'garbage' }, NS, T0).leaf?.reason, 'Invalid');
  assert.is(webhookTlsRenewal({ ...data, 'tls.key': '' }, NS, T0).leaf?.reason, 'Invalid');
});

test('a CA past 2/3 of its life is renewed with a new leaf; the old CA stays in the bundle while valid', () => {
  const data = fresh();
  const now = at(Math.ceil(WEBHOOK_CA_VALID_DAYS * 2 / 3) + 1);
  const due = webhookTlsRenewal(data, NS, now);
  assert.is(due.ca?.reason, 'RenewalDue');
  assert.ok(due.leaf, 'a new CA needs a new leaf');
  const renewed = issueWebhookTls({ namespace: NS, now, current: data, ca: newKey(2), leaf: newKey(3) });
  const bundle = pemBlocks(renewed['ca.crt']);
  assert.is(bundle.length, 2);
  assert.is(bundle[1]?.trim(), data['ca.crt'].trim(), 'previous CA second');
  const newCa = cert(bundle[0] as string);
  assert.ok(cert(renewed['tls.crt']).checkIssued(newCa));
  assert.is(renewed['ca.key'], keys[2]);
  assert.equal(webhookTlsRenewal(renewed, NS, now), {});
  // by the next CA renewal the first CA has expired: the bundle never grows past two
  const later = new Date(now.getTime() + Math.ceil(WEBHOOK_CA_VALID_DAYS * 2 / 3 + 1) * DAY);
  const again = issueWebhookTls({ namespace: NS, now: later, current: renewed, ca: newKey(4), leaf: newKey(0) });
  const next = pemBlocks(again['ca.crt']);
  assert.is(next.length, 2);
  assert.is(next[1]?.trim(), bundle[0]?.trim());
});

test('issuing without the material it needs throws', () => {
  assert.throws(() => issueWebhookTls({ namespace: NS, now: T0, current: undefined, leaf: newKey(1) }), /needs a CA/);
  assert.throws(() => issueWebhookTls({ namespace: NS, now: T0, current: undefined, ca: newKey(0) }), /pass `leaf`/);
  const data = fresh();
  assert.throws(() => issueWebhookTls({ namespace: NS, now: T0, current: data, ca: newKey(2) }), /pass `leaf`/, 'a new CA without a new leaf');
});

test('pemBlocks and webhookCaBundle', () => {
  const data = fresh();
  assert.is(pemBlocks(`junk\n${data['ca.crt']}\n${data['tls.crt']}`).length, 2);
  assert.equal(pemBlocks('no pem here'), []);
  assert.is(Buffer.from(webhookCaBundle(data), 'base64').toString('utf8'), data['ca.crt']);
});

test.run();
