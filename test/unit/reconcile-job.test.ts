import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  desiredReconcileJob,
  operatorConfigEnv,
  reconcileJobName,
  reconcileWindow,
  REGISTRY_LABEL,
  registryLabelValue,
} from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { OperatorConfig } from '../../functions/types.ts';
import { reconcileEnqueuer } from '../../webhooks/enqueue.ts';
import { isConflict, isNotFound, KubeError } from '../../cronjobs/kube.ts';

// the operator's defaults, as the webhook and the Jobs read them from an empty environment
const config: OperatorConfig = operatorConfigFromEnv({});
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const t0 = Date.parse('2025-06-01T12:00:00.000Z');

test('reconcileWindow: 1 s buckets; end = bucket end + 1 s grace', () => {
  const w = reconcileWindow(new Date(t0 + 400));
  assert.is(w.start.toISOString(), '2025-06-01T12:00:00.000Z');
  assert.is(w.end.toISOString(), '2025-06-01T12:00:02.000Z');
  assert.equal(reconcileWindow(new Date(t0)).start, w.start, 'the bucket includes its start');
  assert.is(reconcileWindow(new Date(t0 + 1_000)).start.getTime(), t0 + 1_000, 'and excludes its end');
  assert.is(reconcileWindow(new Date(t0 + 61_000), { lengthSeconds: 30, graceSeconds: 0 }).end.getTime(), t0 + 90_000);
});

test('reconcileJobName: same registry and window → same name; otherwise different', () => {
  const reg = { namespace: 'apps', name: 'registry' };
  const a = reconcileJobName(reg, reconcileWindow(new Date(t0 + 100)).start);
  assert.is(a, reconcileJobName(reg, reconcileWindow(new Date(t0 + 999)).start));
  assert.is.not(a, reconcileJobName(reg, reconcileWindow(new Date(t0 + 1_000)).start));
  assert.is.not(a, reconcileJobName({ namespace: 'apps', name: 'registry2' }, new Date(t0)));
  assert.match(a, /^reconcile-apps-registry-[0-9a-f]{8}-1748779200$/);
});

test('reconcileJobName: dashes cannot make two registries share a name', () => {
  const a = reconcileJobName({ namespace: 'a-b', name: 'c' }, new Date(t0));
  const b = reconcileJobName({ namespace: 'a', name: 'b-c' }, new Date(t0));
  assert.is.not(a, b);
});

test('reconcileJobName: always a DNS-1123 label of at most 63 characters', () => {
  const long = { namespace: 'n'.repeat(63), name: 'r'.repeat(52) };
  const cut = { namespace: 'x'.repeat(20), name: '-'.repeat(0) + 'y-'.repeat(8) + 'z' };
  for (const reg of [long, cut, { namespace: 'a', name: 'b' }]) {
    const name = reconcileJobName(reg, new Date(t0));
    assert.ok(name.length <= 63, name);
    assert.match(name, DNS_LABEL);
  }
  assert.is.not(
    reconcileJobName(long, new Date(t0)),
    reconcileJobName({ ...long, name: 'r'.repeat(51) + 's' }, new Date(t0)),
    'names that differ only in the cut-off part still differ',
  );
});

test('registryLabelValue: readable when it fits, hashed and valid when not', () => {
  assert.is(registryLabelValue({ namespace: 'apps', name: 'registry' }), 'apps.registry');
  const a = registryLabelValue({ namespace: 'n'.repeat(63), name: 'r'.repeat(52) });
  const b = registryLabelValue({ namespace: 'n'.repeat(63), name: 'r'.repeat(51) });
  for (const v of [a, b]) {
    assert.ok(v.length <= 63, v);
    assert.match(v, LABEL_VALUE);
  }
  assert.is.not(a, b);
  assert.ok(a.startsWith('nnnn'));
});

test('operatorConfigEnv: the variables the entry points read; unset default namespace omitted', () => {
  const env = Object.fromEntries(operatorConfigEnv(config).map((e) => [e.name, e.value]));
  assert.equal(env, {
    OPERATOR_NAMESPACE: 'image-registry-operator',
    OPERATOR_DNS_ZONE: 'svc.example.org',
    OPERATOR_DEFAULT_REGISTRY_NAME: 'registry',
    OPERATOR_IMAGE_REGISTRY: 'registry:3.1.2',
    OPERATOR_IMAGE_AUTH: 'cesanta/docker_auth:1.14.0',
    OPERATOR_IMAGE_NGINX: 'nginx:1.30.0-alpine',
    OPERATOR_IMAGE: 'image-registry-operator:0.1.0',
    OPERATOR_ROTATION_INTERVAL: '24h',
    OPERATOR_ROLLOUT_TIMEOUT: '60s',
    OPERATOR_CREDENTIALS_TIMEOUT: '90s',
  });
  assert.is(Object.fromEntries(operatorConfigEnv({ ...config, rotationIntervalSeconds: 5400 }).map((e) => [e.name, e.value]))['OPERATOR_ROTATION_INTERVAL'], '1h30m');
  const withNs = operatorConfigEnv({ ...config, defaultRegistry: { name: 'r', namespace: 'infra' } });
  assert.ok(withNs.some((e) => e.name === 'OPERATOR_DEFAULT_REGISTRY_NAMESPACE' && e.value === 'infra'));
});

test('desiredReconcileJob: the Job that runs the reconcile entry point after its window', () => {
  const registry = { namespace: 'apps', name: 'registry' };
  const window = reconcileWindow(new Date(t0 + 1_000));
  const job = desiredReconcileJob({ registry, config, windowStart: window.start, windowEnd: window.end });
  assert.is(job.apiVersion, 'batch/v1');
  assert.is(job.kind, 'Job');
  assert.is(job.metadata.namespace, 'image-registry-operator');
  assert.is(job.metadata.name, reconcileJobName(registry, window.start));
  assert.is(job.metadata.labels['app.kubernetes.io/component'], 'reconcile');
  assert.is(job.metadata.labels[REGISTRY_LABEL], 'apps.registry');
  assert.equal(job.spec.template.metadata.labels, job.metadata.labels);
  assert.is(job.spec.backoffLimit, 3);
  assert.is(job.spec.activeDeadlineSeconds, 600);
  assert.is(job.spec.ttlSecondsAfterFinished, 300);
  const pod = job.spec.template.spec;
  assert.is(pod.serviceAccountName, 'image-registry-operator-jobs');
  assert.is(pod.restartPolicy, 'Never');
  assert.is(pod.containers.length, 1);
  const [container] = pod.containers;
  assert.is(container?.image, 'image-registry-operator:0.1.0');
  assert.equal(container?.command, ['node', '/app/dist/reconcile.js']);
  assert.equal(container?.args, ['--registry', 'apps/registry', '--not-before', '2025-06-01T12:00:03.000Z']);
  assert.equal(container?.env, operatorConfigEnv(config));
});

test('desiredReconcileJob: PodSecurity restricted and bounded resources', () => {
  const job = desiredReconcileJob({ registry: { namespace: 'a', name: 'b' }, config, windowEnd: new Date(t0), image: 'op:dev' });
  const pod = job.spec.template.spec;
  assert.is(pod.securityContext.runAsNonRoot, true);
  assert.is(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  const [c] = pod.containers;
  assert.is(c?.image, 'op:dev');
  assert.is(c?.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c?.securityContext.capabilities.drop, ['ALL']);
  assert.is(c?.securityContext.runAsNonRoot, true);
  assert.ok(c?.resources.limits.memory, 'memory limit set');
  assert.ok(c?.resources.requests.cpu, 'cpu request set');
  assert.ok(!JSON.stringify(pod).includes('hostPath'));
  // without windowStart the name is derived from windowEnd and the default window
  assert.is(job.metadata.name, reconcileJobName({ namespace: 'a', name: 'b' }, new Date(t0 - 2_000)));
});

test('KubeError: isConflict for 409 (AlreadyExists, Conflict), isNotFound for 404, neither for others', () => {
  const exists = new KubeError(409, 'AlreadyExists', 'create', 'Job ns/a', 'jobs.batch "a" already exists');
  assert.ok(isConflict(exists));
  assert.not.ok(isNotFound(exists));
  assert.is(exists.message, 'create Job ns/a: HTTP 409: jobs.batch "a" already exists');
  assert.ok(isConflict(new KubeError(409, 'Conflict', 'replace', 'Secret ns/s', 'the object has been modified')));
  assert.ok(isNotFound(new KubeError(404, 'NotFound', 'delete', 'Pod ns/p', 'not found')));
  assert.not.ok(isConflict(new KubeError(403, 'Forbidden', 'create', 'Job ns/a', 'forbidden')));
  assert.not.ok(isConflict(Object.assign(new Error('boom'), { code: 409 })));
  assert.not.ok(isConflict(undefined));
});

test('reconcileEnqueuer: creates the window Job once, 409 = coalesced, new window = new Job', async () => {
  let clock = t0 + 1_000;
  const created: string[] = [];
  const existing = new Set<string>();
  const enqueue = reconcileEnqueuer({
    config,
    now: () => clock,
    createJob: async (job) => {
      if (existing.has(job.metadata.name)) return 'exists';
      existing.add(job.metadata.name);
      created.push(job.metadata.name);
      return 'created';
    },
  });
  const reg = { namespace: 'apps', name: 'registry' };
  assert.is(await enqueue(reg), 'created');
  assert.is(await enqueue(reg), 'coalesced');
  assert.is(await enqueue({ namespace: 'apps', name: 'other' }), 'created');
  clock += 1_000;
  assert.is(await enqueue(reg), 'created');
  assert.is(created.length, 3);
  // another webhook replica (fresh memory) in the same window: the API server says 409 (exists)
  const replica = reconcileEnqueuer({ config, now: () => clock, createJob: async (job) => (existing.has(job.metadata.name) ? 'exists' : 'created') });
  assert.is(await replica(reg), 'coalesced');
});

test('reconcileEnqueuer: a burst of 50 in one window makes one API call', async () => {
  let calls = 0;
  const enqueue = reconcileEnqueuer({ config, now: () => t0 + 2_000, createJob: async () => (calls++, 'created') });
  const results = [];
  for (let i = 0; i < 50; i++) results.push(await enqueue({ namespace: 'apps', name: 'registry' }));
  assert.is(calls, 1);
  assert.is(results.filter((r) => r === 'created').length, 1);
});

test('reconcileEnqueuer: other errors propagate and are not remembered', async () => {
  let fail = true;
  const enqueue = reconcileEnqueuer({
    config,
    now: () => t0,
    createJob: async () => {
      if (fail) throw Object.assign(new Error('forbidden'), { code: 403 });
      return 'created';
    },
  });
  try {
    await enqueue({ namespace: 'a', name: 'b' });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.is((error as Error).message, 'forbidden');
  }
  fail = false;
  assert.is(await enqueue({ namespace: 'a', name: 'b' }), 'created');
});

test.run();
