import { readFileSync } from 'node:fs';
import { mock } from 'node:test';
import bcrypt from 'bcryptjs';
import { loadAll } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultAcl } from '../../functions/defaults.ts';
import { defaultGcSchedule } from '../../functions/gc-defaults.ts';
import { applyJsonPatch, type JsonPatchOp } from '../../functions/json-patch.ts';
import { REGISTRY_LABEL, type RegistryKey } from '../../functions/reconcile-job.ts';
import { ADDED_PULL_SECRETS_ANNOTATION, ADDED_PULL_SECRETS_LABEL } from '../../functions/service-accounts.ts';
import type { ImageSecret, OperatorConfig } from '../../functions/types.ts';
import { admissionReview, allowed, denied, nestsDeeperThan, patched } from '../../webhooks/admission.ts';
import { createApp, DEFAULT_DEPENDENCY_TIMEOUT_MS, SERVICE_ACCOUNT_WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_TIMEOUT_SECONDS, type WebhookDeps } from '../../webhooks/app.ts';
import { createMetrics } from '../../webhooks/metrics.ts';

const GV = 'registry.mgoltzsche.github.com/v1alpha1';
const hash = bcrypt.hashSync('s3cret-password', 4);
const config: OperatorConfig = {
  namespace: 'image-registry-operator',
  dnsZone: 'svc.example.org',
  defaultRegistry: { name: 'registry' },
  images: { registry: 'registry:3.1.2', auth: 'cesanta/docker_auth:1.14.0', nginx: 'nginx:1.30.0-alpine', operator: 'image-registry-operator:0.1.0' },
  rotationIntervalSeconds: 86400,
  rolloutTimeoutSeconds: 60,
  credentialsTimeoutSeconds: 90,
};

/** The ImagePullSecrets the harness's listImagePullSecrets knows (namespace apps unless said). */
const pullSecrets: ImageSecret[] = [
  { apiVersion: GV, kind: 'ImagePullSecret', metadata: { name: 'builders', namespace: 'apps' }, spec: { serviceAccounts: ['builder', 'ci'] } },
  { apiVersion: GV, kind: 'ImagePullSecret', metadata: { name: 'everyone', namespace: 'team' }, spec: { serviceAccounts: ['*'] } },
  { apiVersion: GV, kind: 'ImagePullSecret', metadata: { name: 'gone', namespace: 'apps', deletionTimestamp: '2025-06-01T00:00:00Z' }, spec: { serviceAccounts: ['builder'] } },
  { apiVersion: GV, kind: 'ImagePullSecret', metadata: { name: 'none', namespace: 'apps' }, spec: {} },
];

interface Harness {
  app: ReturnType<typeof createApp>;
  enqueued: { registry: RegistryKey; uid: string }[];
  logs: Record<string, unknown>[];
}

function harness(overrides: Partial<WebhookDeps> = {}, existing = ['apps/registry', 'infra/registry']): Harness {
  const enqueued: Harness['enqueued'] = [];
  const logs: Record<string, unknown>[] = [];
  let clock = Date.parse('2025-06-01T12:00:00Z');
  const deps: WebhookDeps = {
    config,
    now: () => (clock += 3),
    log: (level, msg, fields) => void logs.push({ level, msg, ...fields }),
    enqueueReconcile: async (registry, request) => {
      enqueued.push({ registry, uid: request.uid });
      return 'created';
    },
    registryExists: async (r) => existing.includes(`${r.namespace}/${r.name}`),
    listRegistries: async (namespace) => existing.filter((ref) => ref.startsWith(`${namespace}/`)).map((ref) => ref.split('/')[1] as string),
    listImagePullSecrets: async (namespace) => pullSecrets.filter((cr) => cr.metadata.namespace === namespace),
    ...overrides,
  };
  return { app: createApp(deps), enqueued, logs };
}

let uidCounter = 0;
function review(kind: string, operation: string, object: unknown, extra: Record<string, unknown> = {}) {
  const group = kind === 'ConfigMap' ? '' : 'registry.mgoltzsche.github.com';
  const version = kind === 'ConfigMap' ? 'v1' : 'v1alpha1';
  const name = (object as any)?.metadata?.name ?? (extra['oldObject'] as any)?.metadata?.name;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${++uidCounter}`,
      kind: { group, version, kind },
      resource: { group, version, resource: kind.toLowerCase() + 's' },
      name,
      namespace: 'apps',
      operation,
      userInfo: { username: 'tester' },
      object,
      oldObject: null,
      dryRun: false,
      ...extra,
    },
  };
}

async function post(app: Harness['app'], path: string, body: unknown) {
  const res = await app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

function decodePatch(response: any): JsonPatchOp[] {
  assert.is(response.patchType, 'JSONPatch');
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
}

const imageRegistry = (spec?: unknown, name = 'registry') => ({ apiVersion: GV, kind: 'ImageRegistry', metadata: { name, namespace: 'apps' }, ...(spec === undefined ? {} : { spec }) });
const account = (spec: unknown) => ({ apiVersion: GV, kind: 'ImageRegistryAccount', metadata: { name: 'ci', namespace: 'apps' }, spec });
const pushSecret = (spec?: unknown, kind = 'ImagePushSecret') => ({ apiVersion: GV, kind, metadata: { name: 'example', namespace: 'apps' }, ...(spec === undefined ? {} : { spec }) });

// --- constructors ----------------------------------------------------------------------------

test('admission constructors: allowed, patched, denied', () => {
  assert.equal(allowed('u'), { uid: 'u', allowed: true });
  assert.equal(allowed('u', ['careful']), { uid: 'u', allowed: true, warnings: ['careful'] });
  assert.equal(patched('u', []), { uid: 'u', allowed: true }, 'no empty patch');
  const p = patched('u', [{ op: 'add', path: '/a', value: 1 }]);
  assert.equal(JSON.parse(Buffer.from(p.patch ?? '', 'base64').toString()), [{ op: 'add', path: '/a', value: 1 }]);
  const d = denied('u', ['spec.replicas: must be an integer >= 0', 'spec.ttl: bad']);
  assert.is(d.allowed, false);
  assert.is(d.status?.code, 422);
  assert.is(d.status?.reason, 'Invalid');
  assert.is(d.status?.message, 'spec.replicas: must be an integer >= 0; spec.ttl: bad');
  assert.equal(d.status?.details?.causes[0], { reason: 'FieldValueInvalid', field: 'spec.replicas', message: 'must be an integer >= 0' });
  assert.equal(admissionReview(allowed('u')), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } });
});

// --- plain routes ----------------------------------------------------------------------------

test('GET /healthz answers ok; unknown routes 404', async () => {
  const { app } = harness();
  const health = await app.request('/healthz');
  assert.is(health.status, 200);
  assert.is(await health.text(), 'ok');
  assert.is((await app.request('/nope')).status, 404);
  assert.is((await app.request('/mutate')).status, 404, 'GET on an admission route');
});

test('GET /readyz follows deps.ready: 503 until ready and after a shutdown began', async () => {
  let ready = false;
  const { app } = harness({ ready: () => ready });
  assert.is((await app.request('/readyz')).status, 503);
  ready = true;
  const answer = await app.request('/readyz');
  assert.is(answer.status, 200);
  assert.is(await answer.text(), 'ok');
});

// --- mutate ----------------------------------------------------------------------------------

test('mutate ImageRegistry CREATE: the patch yields the documented defaults', async () => {
  const { app } = harness();
  const object = imageRegistry();
  const body = review('ImageRegistry', 'CREATE', object);
  const { status, json } = await post(app, '/mutate', body);
  assert.is(status, 200);
  assert.is(json.apiVersion, 'admission.k8s.io/v1');
  assert.is(json.kind, 'AdmissionReview');
  assert.is(json.response.uid, body.request.uid);
  assert.is(json.response.allowed, true);
  const ops = decodePatch(json.response);
  assert.ok(ops.every((op) => op.op === 'add'));
  assert.equal(applyJsonPatch(object, ops).spec, {
    replicas: 1,
    persistentVolumeClaim: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } },
    auth: { acl: defaultAcl() },
    garbageCollection: { enabled: true, schedule: defaultGcSchedule('apps', 'registry'), deleteUntagged: false, dryRun: false, timeout: '15m' },
  });
  const rules = (applyJsonPatch(object, ops).spec as any).auth.acl.map(({ match, actions }: any) => ({ match, actions }));
  assert.equal(rules, [
    { match: { type: 'repository', name: '/^${labels:namespace}/.+$/', labels: { accessMode: 'push' } }, actions: ['push', 'pull'] },
    { match: { type: 'repository', labels: { accessMode: 'pull' } }, actions: ['pull'] },
  ]);
});

test('mutate ImageRegistry UPDATE keeps immutable volume fields from the old object', async () => {
  const { app } = harness();
  const oldObject = imageRegistry({ replicas: 1, persistentVolumeClaim: { storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } }, auth: { acl: [] } });
  const object = imageRegistry({ replicas: 2, auth: { acl: [] } });
  const { json } = await post(app, '/mutate', review('ImageRegistry', 'UPDATE', object, { oldObject }));
  const pvc = (applyJsonPatch(object, decodePatch(json.response)).spec as any).persistentVolumeClaim;
  assert.equal(pvc, { storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } });
});

test('mutate ImagePushSecret / ImagePullSecret CREATE: registryRef and registry label', async () => {
  const { app } = harness();
  for (const kind of ['ImagePushSecret', 'ImagePullSecret']) {
    const object = pushSecret(undefined, kind);
    const { json } = await post(app, '/mutate', review(kind, 'CREATE', object));
    const result = applyJsonPatch(object, decodePatch(json.response)) as any;
    assert.equal(result.spec.registryRef, { name: 'registry', namespace: 'apps' });
    assert.is(result.metadata.labels[REGISTRY_LABEL], 'apps.registry');
  }
});

test('mutate ImageRegistryAccount and DELETEs: allowed without patch', async () => {
  const { app } = harness();
  const a = await post(app, '/mutate', review('ImageRegistryAccount', 'CREATE', account({ password: hash })));
  assert.equal(a.json.response, { uid: a.json.response.uid, allowed: true });
  const d = await post(app, '/mutate', review('ImageRegistry', 'DELETE', null, { oldObject: imageRegistry({}) }));
  assert.is(d.json.response.allowed, true);
  assert.is(d.json.response.patch, undefined);
});

test('kinds that are not ours are allowed unchanged, whatever their object', async () => {
  const { app, enqueued } = harness();
  for (const path of ['/mutate', '/validate']) {
    const cm = await post(app, path, review('ConfigMap', 'CREATE', { data: 'garbage', spec: [1] }));
    assert.is(cm.status, 200);
    assert.equal(Object.keys(cm.json.response).sort(), ['allowed', 'uid']);
    assert.is(cm.json.response.allowed, true);
    const foreign = review('ImageRegistry', 'CREATE', 'not even an object');
    foreign.request.kind.group = 'example.com';
    const other = await post(app, path, foreign);
    assert.is(other.status, 200);
    assert.is(other.json.response.allowed, true);
  }
  assert.is(enqueued.length, 0);
});

// --- validate --------------------------------------------------------------------------------

test('validate: a plain account password is denied with 422, the field and the hint', async () => {
  const { app, enqueued } = harness();
  const { status, json } = await post(app, '/validate', review('ImageRegistryAccount', 'CREATE', account({ password: 'plaintext-pw', ttl: 'forever' })));
  assert.is(status, 200);
  assert.is(json.response.allowed, false);
  assert.is(json.response.status.code, 422);
  assert.ok(json.response.status.message.includes('spec.password: must be a bcrypt hash'));
  assert.ok(json.response.status.message.includes('htpasswd -nbBC 10'));
  assert.ok(json.response.status.message.includes('spec.ttl: must be a Go duration'));
  assert.not.ok(json.response.status.message.includes('plaintext-pw'));
  assert.equal(json.response.status.details.causes.map((c: any) => c.field), ['spec.password', 'spec.ttl']);
  // kubectl prints `The ImageRegistryAccount "<name>" is invalid: …` from these
  assert.equal(
    { kind: json.response.status.details.kind, group: json.response.status.details.group, name: json.response.status.details.name },
    { kind: 'ImageRegistryAccount', group: 'registry.mgoltzsche.github.com', name: 'ci' },
  );
  assert.is(enqueued.length, 0, 'denied → nothing enqueued');
});

test('validate: a valid account CREATE is allowed and enqueues every registry of its namespace', async () => {
  const { app, enqueued } = harness({}, ['apps/registry', 'apps/second', 'infra/registry']);
  const body = review('ImageRegistryAccount', 'CREATE', account({ password: hash, labels: { accessMode: ['push'] }, ttl: '48h' }));
  const { json } = await post(app, '/validate', body);
  assert.equal(json.response, { uid: body.request.uid, allowed: true });
  assert.equal(enqueued.map((e) => e.registry), [{ namespace: 'apps', name: 'registry' }, { namespace: 'apps', name: 'second' }]);
});

test('validate: account spec is immutable on UPDATE', async () => {
  const { app } = harness();
  const oldObject = account({ password: hash });
  const { json } = await post(app, '/validate', review('ImageRegistryAccount', 'UPDATE', account({ password: hash, ttl: '1h' }), { oldObject }));
  assert.is(json.response.allowed, false);
  assert.match(json.response.status.message, /^spec: is immutable/);
});

test('validate: ImageRegistry problems are all reported; immutable volume fields on UPDATE', async () => {
  const { app } = harness();
  const bad = imageRegistry({ replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] }, tls: { issuerRef: { name: 'x', kind: 'Foo' } }, auth: { acl: [{ match: { account: 'x', user: 'x' }, actions: ['pull'] }] } });
  const { json } = await post(app, '/validate', review('ImageRegistry', 'CREATE', bad));
  assert.is(json.response.allowed, false);
  assert.equal(json.response.status.details.causes.map((c: any) => c.field), [
    'spec.persistentVolumeClaim.accessModes',
    'spec.tls.issuerRef.kind',
    'spec.auth.acl[0].match.user',
  ]);
  const oldObject = imageRegistry({ persistentVolumeClaim: { storageClassName: 'fast' } });
  const upd = await post(app, '/validate', review('ImageRegistry', 'UPDATE', imageRegistry({ persistentVolumeClaim: { storageClassName: 'slow' } }), { oldObject }));
  assert.is(upd.json.response.allowed, false);
  assert.match(upd.json.response.status.message, /spec.persistentVolumeClaim.storageClassName: is immutable/);
});

test('validate: an account the Jobs manage (rotation accounts) enqueues nothing — the Job that wrote it already did the work', async () => {
  const { app, enqueued } = harness({}, ['apps/registry']);
  const managed = { ...account({ password: hash, labels: { accessMode: ['push'], namespace: ['apps'], name: ['app'] }, ttl: '48h' }) };
  managed.metadata = { ...managed.metadata, labels: { 'app.kubernetes.io/managed-by': 'image-registry-operator', 'registry.mgoltzsche.github.com/owner-kind': 'ImagePushSecret' } } as never;
  const { json } = await post(app, '/validate', review('ImageRegistryAccount', 'CREATE', managed));
  assert.is(json.response.allowed, true);
  assert.equal(enqueued, []);
});

test('validate: ImageRegistry CREATE and DELETE enqueue the registry itself', async () => {
  const { app, enqueued } = harness();
  await post(app, '/validate', review('ImageRegistry', 'CREATE', imageRegistry({ replicas: 1 }, 'main')));
  await post(app, '/validate', review('ImageRegistry', 'DELETE', null, { oldObject: imageRegistry({}, 'old') }));
  assert.equal(enqueued.map((e) => e.registry), [{ namespace: 'apps', name: 'main' }, { namespace: 'apps', name: 'old' }]);
});

test('validate: push secret to a missing registry → allowed with a warning, still enqueued', async () => {
  const { app, enqueued } = harness();
  const object = pushSecret({ registryRef: { name: 'later', namespace: 'apps' } });
  const { json } = await post(app, '/validate', review('ImagePushSecret', 'CREATE', object));
  assert.is(json.response.allowed, true);
  assert.equal(json.response.warnings, ['spec.registryRef: ImageRegistry apps/later does not exist (yet); the ImagePushSecret becomes ready once it does']);
  assert.equal(enqueued.map((e) => e.registry), [{ namespace: 'apps', name: 'later' }]);
});

test('validate: push secret to an existing registry → no warning; lookup failure → no warning', async () => {
  const ok = await post(harness().app, '/validate', review('ImagePullSecret', 'CREATE', pushSecret({ registryRef: { name: 'registry', namespace: 'infra' } }, 'ImagePullSecret')));
  assert.is(ok.json.response.allowed, true);
  assert.is(ok.json.response.warnings, undefined);
  const failing = harness({ registryExists: async () => { throw new Error('apiserver down'); } });
  const res = await post(failing.app, '/validate', review('ImagePushSecret', 'CREATE', pushSecret({})));
  assert.is(res.json.response.allowed, true);
  assert.is(res.json.response.warnings, undefined);
  assert.ok(failing.logs.some((l) => l['msg'] === 'registry lookup failed'));
});

test('validate: registryRef change on UPDATE is denied', async () => {
  const { app } = harness();
  const oldObject = pushSecret({ registryRef: { name: 'registry', namespace: 'apps' } });
  const { json } = await post(app, '/validate', review('ImagePushSecret', 'UPDATE', pushSecret({ registryRef: { name: 'other', namespace: 'apps' } }), { oldObject }));
  assert.is(json.response.allowed, false);
  assert.match(json.response.status.message, /^spec.registryRef.name: is immutable once set/);
});

test('validate: push secret DELETE enqueues the registry of the old object', async () => {
  const { app, enqueued } = harness();
  const oldObject = pushSecret({ registryRef: { name: 'registry', namespace: 'infra' } });
  const { json } = await post(app, '/validate', review('ImagePushSecret', 'DELETE', null, { oldObject }));
  assert.is(json.response.allowed, true);
  assert.equal(enqueued.map((e) => e.registry), [{ namespace: 'infra', name: 'registry' }]);
});

test('validate: dryRun never enqueues', async () => {
  const { app, enqueued } = harness();
  for (const [kind, object] of [['ImageRegistry', imageRegistry({})], ['ImagePushSecret', pushSecret({})], ['ImageRegistryAccount', account({ password: hash })]] as const) {
    const { json } = await post(app, '/validate', review(kind, 'CREATE', object, { dryRun: true }));
    assert.is(json.response.allowed, true);
  }
  assert.is(enqueued.length, 0);
});

test('validate: UPDATE without spec change, status subresource → no enqueue; spec change or deletion → enqueue', async () => {
  const { app, enqueued } = harness();
  const oldObject = imageRegistry({ replicas: 1 });
  const relabelled = { ...imageRegistry({ replicas: 1 }), metadata: { name: 'registry', namespace: 'apps', annotations: { a: 'b' } } };
  await post(app, '/validate', review('ImageRegistry', 'UPDATE', relabelled, { oldObject }));
  await post(app, '/validate', review('ImageRegistry', 'UPDATE', imageRegistry({ replicas: 3 }), { oldObject, subResource: 'status' }));
  assert.is(enqueued.length, 0);
  await post(app, '/validate', review('ImageRegistry', 'UPDATE', imageRegistry({ replicas: 0 }), { oldObject }));
  const deleting = { ...oldObject, metadata: { ...oldObject.metadata, deletionTimestamp: '2025-06-01T12:00:00Z' } };
  await post(app, '/validate', review('ImageRegistry', 'UPDATE', deleting, { oldObject }));
  assert.is(enqueued.length, 2);
});

test('validate: an enqueue failure never blocks the admission; it is logged and counted', async () => {
  const metrics = createMetrics();
  const { app, logs } = harness({ metrics, enqueueReconcile: async () => { throw new Error('jobs is forbidden'); } });
  const { status, json } = await post(app, '/validate', review('ImageRegistry', 'CREATE', imageRegistry({})));
  assert.is(status, 200);
  assert.is(json.response.allowed, true);
  assert.ok(logs.some((l) => l['level'] === 'error' && String(l['error']).includes('jobs is forbidden')));
  assert.match(metrics.render(), /^webhook_enqueue_failures_total 1$/m);
});

test('validate: a hanging enqueue or listing is abandoned after the dependency timeout', async () => {
  const never = new Promise<never>(() => {});
  const { app } = harness({ dependencyTimeoutMs: 30, enqueueReconcile: () => never, listRegistries: () => never, registryExists: () => never });
  const started = Date.now();
  for (const [kind, object] of [['ImageRegistry', imageRegistry({})], ['ImageRegistryAccount', account({ password: hash })], ['ImagePushSecret', pushSecret({})]] as const) {
    const { json } = await post(app, '/validate', review(kind, 'CREATE', object));
    assert.is(json.response.allowed, true);
  }
  assert.ok(Date.now() - started < 2000);
});

// The budget's clock is a fake setTimeout here: it moves only when the test ticks it, so "answered
// after one budget, not two" is checked to the millisecond without waiting for either.

const hanging = (started: string[], name: string) => () => {
  started.push(name);
  return new Promise<never>(() => {});
};

async function eventLoopTurns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Sends the review under fake timers; `answered()` tells whether the response has arrived. */
function admitWithFakeTimers(app: Harness['app'], body: unknown) {
  let answered = false;
  const response = post(app, '/validate', body).finally(() => (answered = true));
  return { response, answered: () => answered };
}

test('validate: a registry lookup and an enqueue that both hang start together and are given up together, after one budget', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const started: string[] = [];
    const { app } = harness({ dependencyTimeoutMs: 1000, registryExists: hanging(started, 'registryExists'), enqueueReconcile: hanging(started, 'enqueueReconcile') });
    const admission = admitWithFakeTimers(app, review('ImagePushSecret', 'CREATE', pushSecret({})));
    await eventLoopTurns();
    assert.equal([...started].sort(), ['enqueueReconcile', 'registryExists'], 'both started before either answered');
    mock.timers.tick(999);
    await eventLoopTurns();
    assert.is(admission.answered(), false, 'within the budget the admission waits');
    mock.timers.tick(1);
    await eventLoopTurns();
    assert.is(admission.answered(), true, 'answered when the one budget is over, not after a budget per dependency');
    const { json } = await admission.response;
    assert.is(json.response.allowed, true);
    assert.is(json.response.warnings, undefined, 'no answer from the lookup → no warning');
  } finally {
    mock.timers.reset();
  }
});

test('validate: listing the registries and enqueueing after it share the one budget', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const started: string[] = [];
    const { app, logs } = harness({
      dependencyTimeoutMs: 1000,
      listRegistries: () => new Promise((resolve) => setTimeout(() => resolve(['registry']), 600)),
      enqueueReconcile: hanging(started, 'enqueueReconcile'),
    });
    const admission = admitWithFakeTimers(app, review('ImageRegistryAccount', 'CREATE', account({ password: hash })));
    await eventLoopTurns();
    mock.timers.tick(600);
    await eventLoopTurns();
    assert.equal(started, ['enqueueReconcile'], 'the enqueue starts once the listing answered');
    mock.timers.tick(399);
    await eventLoopTurns();
    assert.is(admission.answered(), false);
    mock.timers.tick(1);
    await eventLoopTurns();
    assert.is(admission.answered(), true, 'the enqueue gets what the listing left of the budget');
    assert.is((await admission.response).json.response.allowed, true);
    assert.ok(logs.some((l) => l['msg'] === 'enqueue failed; the resync CronJob repairs' && l['error'] === 'no answer within 1000 ms'));
  } finally {
    mock.timers.reset();
  }
});

test("the dependency budget fits inside the webhook configurations' timeoutSeconds, with a margin", () => {
  const configurations = loadAll(readFileSync(new URL('../../kustomize/webhook-configurations.yaml', import.meta.url), 'utf8')) as { webhooks: { name: string; timeoutSeconds: number }[] }[];
  const timeouts = configurations.flatMap((configuration) => configuration.webhooks.map((webhook) => [webhook.name, webhook.timeoutSeconds]));
  assert.equal(timeouts, [
    ['mutate.registry.mgoltzsche.github.com', WEBHOOK_TIMEOUT_SECONDS],
    ['serviceaccounts.registry.mgoltzsche.github.com', SERVICE_ACCOUNT_WEBHOOK_TIMEOUT_SECONDS],
    ['validate.registry.mgoltzsche.github.com', WEBHOOK_TIMEOUT_SECONDS],
  ]);
  assert.ok(DEFAULT_DEPENDENCY_TIMEOUT_MS > 0 && DEFAULT_DEPENDENCY_TIMEOUT_MS < WEBHOOK_TIMEOUT_SECONDS * 1000);
});

test('mutate then validate: the defaulted objects are valid', async () => {
  const { app } = harness();
  for (const [kind, object] of [['ImageRegistry', imageRegistry()], ['ImageRegistry', imageRegistry({ replicas: 3 })], ['ImagePushSecret', pushSecret()], ['ImagePullSecret', pushSecret(undefined, 'ImagePullSecret')]] as const) {
    const m = await post(app, '/mutate', review(kind, 'CREATE', object));
    const defaulted = applyJsonPatch(object, decodePatch(m.json.response));
    const v = await post(app, '/validate', review(kind, 'CREATE', defaulted));
    assert.is(v.json.response.allowed, true, `${kind}: ${JSON.stringify(v.json.response.status)}`);
  }
});

// --- malformed input -------------------------------------------------------------------------

test('malformed bodies → 400 with a JSON error, on both routes', async () => {
  const { app } = harness();
  const good = review('ImageRegistry', 'CREATE', imageRegistry());
  const variants: [string, unknown][] = [
    ['not JSON', '{"apiVersion":'],
    ['empty', ''],
    ['array', [good]],
    ['number', 42],
    ['wrong apiVersion', { ...good, apiVersion: 'admission.k8s.io/v1beta1' }],
    ['wrong kind', { ...good, kind: 'Review' }],
    ['no request', { apiVersion: good.apiVersion, kind: good.kind }],
    ['missing uid', { ...good, request: { ...good.request, uid: undefined } }],
    ['empty uid', { ...good, request: { ...good.request, uid: '' } }],
    ['numeric uid', { ...good, request: { ...good.request, uid: 7 } }],
    ['no request.kind', { ...good, request: { ...good.request, kind: undefined } }],
    ['bad operation', { ...good, request: { ...good.request, operation: 'PATCH' } }],
    ['object missing on CREATE', { ...good, request: { ...good.request, object: null } }],
    ['object not an object', { ...good, request: { ...good.request, object: 'x' } }],
    ['oldObject missing on UPDATE', { ...good, request: { ...good.request, operation: 'UPDATE' } }],
    ['no namespace', { ...good, request: { ...good.request, namespace: undefined, object: { kind: 'ImageRegistry', metadata: {} } } }],
    ['dryRun not boolean', { ...good, request: { ...good.request, dryRun: 'yes' } }],
  ];
  for (const path of ['/mutate', '/validate']) {
    for (const [what, body] of variants) {
      const res = await app.request(path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
      assert.is(res.status, 400, `${path} ${what}`);
      const json = (await res.json()) as { error: string };
      assert.match(json.error, /^invalid AdmissionReview: /, what);
    }
  }
});

test('deeply nested bodies → 400, not a stack overflow', async () => {
  const { app } = harness();
  const three = JSON.parse('{"a":[1,{"b":"[[[{{"}],"c":"\\"["}');
  assert.is(nestsDeeperThan(three, 3), false, 'brackets inside strings do not count');
  assert.is(nestsDeeperThan(three, 2), true);
  assert.is(nestsDeeperThan('[[[', 0), false, 'a string is no container');
  const nested = (depth: number) => JSON.parse('['.repeat(depth) + ']'.repeat(depth));
  assert.is(nestsDeeperThan(nested(512), 512), false, 'the limit itself is fine');
  assert.is(nestsDeeperThan(nested(513), 512), true);
  assert.is(nestsDeeperThan([{ a: 1 }, [], [[{ b: [] }]]], 5), false, 'the deepest branch counts, wherever it is');
  assert.is(nestsDeeperThan([{ a: 1 }, [], [[{ b: [] }]]], 4), true);
  for (const depth of [600, 20_000, 200_000]) {
    const deep = '['.repeat(depth) + ']'.repeat(depth);
    const body = review('ImageRegistryAccount', 'UPDATE', null, { oldObject: null }) as any;
    const text = JSON.stringify(body).replace('"object":null', `"object":{"spec":{"password":${deep}}}`).replace('"oldObject":null', `"oldObject":{"spec":{"password":${deep}}}`);
    for (const path of ['/mutate', '/validate']) {
      const res = await app.request(path, { method: 'POST', body: text });
      assert.is(res.status, 400, `${depth} ${path}`);
      assert.match(((await res.json()) as any).error, /deeper than/);
    }
  }
  const ok = await post(app, '/validate', review('ImageRegistryAccount', 'CREATE', account({ password: hash, labels: { x: [[[['a']]]] } })));
  assert.is(ok.status, 200, 'ordinary nesting is fine');
});

test('bodies over the limit → 413 (default limit 3 MiB)', async () => {
  const { app } = harness();
  const big = JSON.stringify(review('ImageRegistry', 'CREATE', { ...imageRegistry(), pad: 'x'.repeat(3 * 1024 * 1024) }));
  const res = await app.request('/validate', { method: 'POST', body: big, headers: { 'content-length': String(Buffer.byteLength(big)) } });
  assert.is(res.status, 413);
  // the rest of the body stays unread: a keep-alive client must not send its next request on this connection
  assert.is(res.headers.get('connection'), 'close');
  const small = harness({ maxBodyBytes: 1000 });
  const chunked = await small.app.request('/mutate', { method: 'POST', body: JSON.stringify(review('ImageRegistry', 'CREATE', { ...imageRegistry(), pad: 'x'.repeat(2000) })) });
  assert.is(chunked.status, 413);
  const fits = await small.app.request('/mutate', { method: 'POST', body: JSON.stringify(review('ImageRegistry', 'CREATE', imageRegistry())) });
  assert.is(fits.status, 200);
});


// --- ServiceAccounts (ImagePullSecret spec.serviceAccounts) ----------------------------------

function serviceAccountReview(object: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${++uidCounter}`,
      kind: { group: '', version: 'v1', kind: 'ServiceAccount' },
      resource: { group: '', version: 'v1', resource: 'serviceaccounts' },
      name: (object.metadata as { name?: string } | undefined)?.name,
      namespace: (object.metadata as { namespace?: string } | undefined)?.namespace,
      operation: 'CREATE',
      object,
      dryRun: false,
      ...extra,
    },
  };
}
const serviceAccount = (name: string, namespace = 'apps', extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace }, ...extra });

test('ServiceAccount CREATE: a listed account gets the entry of every CR that lists it, recorded; others stay unchanged', async () => {
  const { app } = harness();
  const listed = await post(app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('builder', 'apps', { imagePullSecrets: [{ name: 'mine' }] })));
  assert.is(listed.status, 200);
  assert.is(listed.json.response.allowed, true);
  const after = applyJsonPatch(serviceAccount('builder', 'apps', { imagePullSecrets: [{ name: 'mine' }] }), decodePatch(listed.json.response)) as any;
  assert.equal(after.imagePullSecrets, [{ name: 'mine' }, { name: 'builders-image-pull-secret' }], 'the CR being deleted adds nothing');
  assert.is(after.metadata.annotations[ADDED_PULL_SECRETS_ANNOTATION], 'builders-image-pull-secret');
  assert.is(after.metadata.labels[ADDED_PULL_SECRETS_LABEL], 'true');
  const star = await post(app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('anything', 'team')));
  assert.equal((applyJsonPatch(serviceAccount('anything', 'team'), decodePatch(star.json.response)) as any).imagePullSecrets, [{ name: 'everyone-image-pull-secret' }]);
  for (const unlisted of [serviceAccount('default', 'apps'), serviceAccount('builder', 'elsewhere')]) {
    const answer = await post(app, '/mutate-serviceaccount', serviceAccountReview(unlisted));
    assert.equal(answer.json.response, { uid: answer.json.response.uid, allowed: true }, 'no patch');
  }
});

test('ServiceAccount CREATE: a dry run gets the same answer (the webhook only reads)', async () => {
  const { app, enqueued } = harness();
  const dry = await post(app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('ci'), { dryRun: true }));
  assert.equal(decodePatch(dry.json.response).find((op) => op.path === '/imagePullSecrets'), { op: 'add', path: '/imagePullSecrets', value: [{ name: 'builders-image-pull-secret' }] });
  assert.equal(enqueued, []);
});

test('ServiceAccount webhook: other kinds and operations are allowed unchanged without a lookup', async () => {
  let lookups = 0;
  const { app } = harness({ listImagePullSecrets: async () => { lookups++; return pullSecrets; } });
  const update = await post(app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('builder'), { operation: 'UPDATE', oldObject: serviceAccount('builder') }));
  const configMap = await post(app, '/mutate-serviceaccount', review('ConfigMap', 'CREATE', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'builder', namespace: 'apps' } }));
  for (const answer of [update, configMap]) {
    assert.is(answer.status, 200);
    assert.equal(answer.json.response, { uid: answer.json.response.uid, allowed: true });
  }
  assert.is(lookups, 0);
});

test('ServiceAccount webhook: a failed, hanging or forbidden lookup → allowed without a patch, logged and counted; never 5xx', async () => {
  const metrics = createMetrics();
  const failing = harness({ metrics, listImagePullSecrets: async () => { throw new Error('imagepullsecrets is forbidden'); } });
  const failed = await post(failing.app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('builder')));
  assert.is(failed.status, 200);
  assert.equal(failed.json.response, { uid: failed.json.response.uid, allowed: true });
  assert.ok(failing.logs.some((l) => l['level'] === 'error' && String(l['error']).includes('forbidden') && l['name'] === 'builder'));
  const hanging = harness({ metrics, serviceAccountTimeoutMs: 30, listImagePullSecrets: () => new Promise(() => {}) });
  const started = Date.now();
  const late = await post(hanging.app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('builder')));
  assert.ok(Date.now() - started < 1000, 'answered after the budget');
  assert.equal(late.json.response, { uid: late.json.response.uid, allowed: true });
  assert.ok(hanging.logs.some((l) => String(l['error']).includes('no answer within 30 ms')));
  const noNamespace = await post(failing.app, '/mutate-serviceaccount', serviceAccountReview({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'x' } }));
  assert.equal(noNamespace.json.response.allowed, true);
  const ok = harness({ metrics });
  await post(ok.app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('builder')));
  await post(ok.app, '/mutate-serviceaccount', serviceAccountReview(serviceAccount('default')));
  const text = metrics.render();
  assert.match(text, /^webhook_serviceaccount_admissions_total\{result="error"\} 3$/m);
  assert.match(text, /^webhook_serviceaccount_admissions_total\{result="patched"\} 1$/m);
  assert.match(text, /^webhook_serviceaccount_admissions_total\{result="unchanged"\} 1$/m);
  assert.match(text, /^webhook_requests_total\{kind="ServiceAccount",operation="CREATE",result="error"\} 3$/m);
  assert.match(text, /^webhook_request_duration_seconds_count\{webhook="serviceaccount"\} 5$/m);
  const malformed = await post(ok.app, '/mutate-serviceaccount', '{"kind":"AdmissionReview"');
  assert.is(malformed.status, 400);
});

// --- metrics ---------------------------------------------------------------------------------

test('/metrics counts requests by kind, operation and result, latency and enqueued Jobs', async () => {
  const { app } = harness();
  await post(app, '/mutate', review('ImageRegistry', 'CREATE', imageRegistry()));
  await post(app, '/mutate', review('ImageRegistry', 'CREATE', imageRegistry()));
  await post(app, '/validate', review('ImageRegistryAccount', 'CREATE', account({ password: 'x' })));
  await post(app, '/validate', review('ImagePushSecret', 'CREATE', pushSecret({})));
  await post(app, '/validate', review('ConfigMap', 'CREATE', {}));
  await post(app, '/validate', 'garbage');
  const res = await app.request('/metrics');
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
  const text = await res.text();
  const has = (line: string) => assert.ok(text.split('\n').includes(line), `missing "${line}" in\n${text}`);
  has('# TYPE webhook_requests_total counter');
  has('webhook_requests_total{kind="ImageRegistry",operation="CREATE",result="patched"} 2');
  has('webhook_requests_total{kind="ImageRegistryAccount",operation="CREATE",result="denied"} 1');
  has('webhook_requests_total{kind="ImagePushSecret",operation="CREATE",result="allowed"} 1');
  has('webhook_requests_total{kind="other",operation="CREATE",result="ignored"} 1');
  has('webhook_requests_total{kind="invalid",operation="invalid",result="invalid"} 1');
  has('# TYPE webhook_request_duration_seconds histogram');
  has('webhook_request_duration_seconds_count{webhook="mutate"} 2');
  has('webhook_request_duration_seconds_bucket{webhook="validate",le="+Inf"} 4');
  has('webhook_jobs_enqueued_total{result="created"} 1');
  has('webhook_jobs_enqueued_total{result="coalesced"} 0');
  has('webhook_enqueue_failures_total 0');
});

test('metrics: a hostile kind name cannot create new series', async () => {
  const { app } = harness();
  const body = review('ConfigMap', 'CREATE', {});
  body.request.kind.kind = 'Evil"\nKind';
  await post(app, '/mutate', body);
  const text = await (await app.request('/metrics')).text();
  assert.not.ok(text.includes('Evil'));
});

// --- fuzz ------------------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('fuzz: 500 random and mutated bodies never get a 5xx; 200s are well-formed reviews', async () => {
  const random = prng(20250601);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const randomValue = (depth = 0): unknown => {
    const choice = Math.floor(random() * (depth > 2 ? 6 : 8));
    if (choice === 0) return null;
    if (choice === 1) return random() < 0.5;
    if (choice === 2) return Math.floor(random() * 2000) - 1000;
    if (choice === 3) return random() * 1e6;
    if (choice === 4) return pick(['', 'x', 'CREATE', 'ImageRegistry', '/(?=a)/', '$2y$10$', '../..', '\u0000', '~1/', '48h']);
    if (choice === 5) return 'v'.repeat(Math.floor(random() * 50));
    if (choice === 6) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, () => [pick(['spec', 'metadata', 'replicas', 'acl', 'name', 'kind', 'x']), randomValue(depth + 1)]));
  };
  const seeds = [
    review('ImageRegistry', 'CREATE', imageRegistry({ replicas: 2, auth: { acl: [{ match: { name: '/a+/' }, actions: ['pull'] }] } })),
    review('ImageRegistry', 'UPDATE', imageRegistry({ replicas: 1 }), { oldObject: imageRegistry({ persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } }) }),
    review('ImageRegistryAccount', 'CREATE', account({ password: hash, labels: { a: ['b'] }, ttl: '1h' })),
    review('ImagePushSecret', 'CREATE', pushSecret({ registryRef: { name: 'registry' } })),
    review('ImagePullSecret', 'DELETE', null, { oldObject: pushSecret({}, 'ImagePullSecret') }),
    review('ConfigMap', 'CREATE', { data: {} }),
  ];
  /** replaces or deletes a random node somewhere in a copy of `value` */
  const mutate = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || random() < 0.25) return random() < 0.3 ? undefined : randomValue();
    const copy: any = Array.isArray(value) ? [...value] : { ...value };
    const keys = Object.keys(copy);
    if (keys.length === 0) return randomValue();
    const key = pick(keys);
    copy[key] = mutate(copy[key]);
    return copy;
  };
  const { app } = harness({ dependencyTimeoutMs: 20 });
  const statuses = new Map<number, number>();
  for (let i = 0; i < 500; i++) {
    const style = i % 5;
    let body: string;
    if (style === 0) body = JSON.stringify(randomValue());
    else if (style === 1) body = JSON.stringify(pick(seeds)).slice(0, Math.floor(random() * 400));
    else if (style === 2) body = JSON.stringify(mutate(pick(seeds))) ?? 'undefined';
    else {
      // mostly deep inside the objects, where the handlers (not the envelope check) must cope
      const seed = structuredClone(pick(seeds)) as any;
      const target = style === 3 || seed.request.oldObject === null ? 'object' : 'oldObject';
      seed.request[target] = mutate(mutate(seed.request[target]));
      body = JSON.stringify(seed);
    }
    const path = random() < 0.5 ? '/mutate' : '/validate';
    const res = await app.request(path, { method: 'POST', body });
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    assert.ok(res.status < 500, `#${i} ${path} ${body.slice(0, 300)} → ${res.status}`);
    const json = (await res.json()) as any;
    if (res.status === 200) {
      assert.is(json.kind, 'AdmissionReview');
      assert.is(json.response.uid, JSON.parse(body).request.uid, `#${i}`);
      assert.type(json.response.allowed, 'boolean');
      if (json.response.patch) applyJsonPatch(JSON.parse(body).request.object, decodePatch(json.response));
    } else {
      assert.is(res.status, 400, `#${i} → ${res.status}`);
      assert.type(json.error, 'string');
    }
  }
  assert.ok((statuses.get(200) ?? 0) > 50, `enough bodies got through to the handlers: ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(400) ?? 0) > 50, `and enough were refused: ${JSON.stringify([...statuses])}`);
});

test.run();
