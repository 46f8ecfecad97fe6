// End to end: what kustomize/monitoring ships, against real processes. A registry on the real node;
// kube-state-metrics (built from its Go module) run with the shipped custom-resource-state
// configuration against the test cluster; a real Prometheus server (built from its Go module)
// scraping kube-state-metrics and the registry pod's `metrics` port by its pod IP, as the PodMonitor
// has it do. Pushes and pulls go to the pod's nginx with tokens the test signs with the registry's
// token key (as in garbage-collection.test.ts), so the registry part runs without docker_auth; the
// push secret and its rotation need docker_auth and skip without it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { gcCronJobName } from '../../functions/garbage-collection.ts';
import { registryHostname } from '../../functions/names.ts';
import { METRICS_PORT } from '../../functions/nginx-config.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageSecret, type OperatorConfig } from '../../functions/types.ts';
import { createMetrics } from '../../webhooks/metrics.ts';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { applyObjects, getObject, requireObject, serverSide } from '../support/kubectl.ts';
import { dashboardQueries, metricNames, MONITORING_DIR, shippedRuleGroups, withGrafanaVariables } from '../support/monitoring.ts';
import { installOperatorBase, OPERATOR_NAMESPACE } from '../support/operator.ts';
import { damage, newImage, pushImage, removeImage, type RegistryClient } from '../support/registry-api.ts';
import { podWithReadyContainers, runReconcileJob, signedFrontClients } from '../support/registry-e2e.ts';
import { exitedMessage, freePort, startProcess, waitFor, type ManagedProcess } from '../support/processes.ts';
import { stepTimer } from '../support/timings.ts';

const NAME = 'registry';
const REPO = 'team/app';
const cluster = await testCluster();
const authMissing = authServerUnavailable(cluster.assetsDir);
const withAuth = authMissing ? test.skip : test;
const { timings, timed } = stepTimer();
const workDir = mkdtempSync(join(tmpdir(), 'iro-monitoring-'));
const processes: ManagedProcess[] = [];

interface Setup {
  namespace: string;
  config: OperatorConfig;
  pod: V1Pod;
  client: RegistryClient;
  ksm: string;
  prometheus: string;
}

let setup: Promise<Setup> | undefined;
const started = () => (setup ??= start());

async function start(): Promise<Setup> {
  const config = await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: authMissing ? '3s' : '120s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' });
  const namespace = await cluster.createNamespace('e2e-monitoring');
  const hostname = registryHostname(NAME, namespace, config.dnsZone);
  await applyObjects(cluster, [{ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME, annotations: { 'registry.mgoltzsche.github.com/storage-budget': '1Gi' } }, spec: {} }], namespace, serverSide('e2e-test'));
  if (!authMissing) await applyObjects(cluster, [{ apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'ci' }, spec: {} }], namespace, serverSide('e2e-test'));
  await timed('reconcile Job', () => runReconcileJob(cluster, namespace, NAME, config));
  const pod = await podWithReadyContainers(cluster, namespace, `${NAME}-0`, ['nginx', 'registry']);
  const client = (await signedFrontClients(cluster, namespace, NAME, hostname, pod, 'e2e-monitoring'))(REPO);
  const ksm = await timed('kube-state-metrics started', () => startKubeStateMetrics());
  const prometheus = await timed('Prometheus started', () => startPrometheus(ksm, `${pod.status?.podIP}:${METRICS_PORT}`, namespace));
  return { namespace, config, pod, client, ksm, prometheus };
}

/** kube-state-metrics with the shipped configuration (the ConfigMap's file), the StatefulSet, CronJob and Job metrics the alerts use too. */
async function startKubeStateMetrics(): Promise<string> {
  const port = await freePort();
  const telemetry = await freePort();
  const log = join(workDir, 'kube-state-metrics.log');
  const ksm = startProcess('kube-state-metrics', join(cluster.assetsDir, 'kube-state-metrics'), [
    `--kubeconfig=${cluster.kubeconfig}`, '--host=127.0.0.1', `--port=${port}`, '--telemetry-host=127.0.0.1', `--telemetry-port=${telemetry}`,
    '--resources=statefulsets,cronjobs,jobs', `--custom-resource-state-config-file=${join(MONITORING_DIR, 'kube-state-metrics-config.yaml')}`,
  ], log);
  processes.push(ksm);
  const url = `http://127.0.0.1:${port}/metrics`;
  await waitFor('kube-state-metrics serves the registry\'s series', async () => (await get(url)).body.includes('image_registry_info{'), 60_000, () => exitedMessage(ksm, log));
  return url;
}

/** Prometheus scraping kube-state-metrics and the registry pod's metrics port every second. */
async function startPrometheus(ksm: string, registryTarget: string, namespace: string): Promise<string> {
  const port = await freePort();
  const dir = join(workDir, 'prometheus');
  const configFile = join(workDir, 'prometheus.yml');
  writeFileSync(configFile, JSON.stringify({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: [
      { job_name: 'kube-state-metrics', honor_labels: true, static_configs: [{ targets: [new URL(ksm).host] }] },
      // the PodMonitor's relabeling gives each target its registry's namespace and name
      { job_name: 'image-registries', metrics_path: '/metrics', static_configs: [{ targets: [registryTarget], labels: { namespace, registry: NAME } }] },
    ],
  }));
  const log = join(workDir, 'prometheus.log');
  const prometheus = startProcess('prometheus', join(cluster.assetsDir, 'prometheus'), [
    `--config.file=${configFile}`, `--storage.tsdb.path=${dir}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], log);
  processes.push(prometheus);
  const base = `http://127.0.0.1:${port}`;
  const up = async () => { try { return (await query(base, 'count(up == 1)'))[0]?.value; } catch { return undefined; } };
  await waitFor('Prometheus has scraped both targets', async () => (await up()) === 2, 60_000, () => exitedMessage(prometheus, log));
  return base;
}

function get(url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (error) => resolve({ status: 0, body: error.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** An instant query of the Prometheus HTTP API; throws on an error answer. */
async function query(base: string, promql: string): Promise<Sample[]> {
  const answer = await get(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const parsed = JSON.parse(answer.body || '{}') as { status?: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (parsed.status !== 'success') throw new Error(`query ${promql}: ${answer.status} ${parsed.error ?? answer.body.slice(0, 300)}`);
  if (parsed.data?.resultType === 'scalar') return [{ labels: {}, value: Number((parsed.data.result as unknown as [number, string])[1]) }];
  return (parsed.data?.result ?? []).map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
}

/** kube-state-metrics' samples of one metric of the registry (or of the namespace's secrets). */
async function ksmSamples(s: Setup, name: string): Promise<Sample[]> {
  const text = (await get(s.ksm)).body;
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  return (family?.metrics ?? [])
    .filter((m) => m.labels?.['namespace'] === s.namespace)
    .map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }));
}

async function ksmValue(s: Setup, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const match = (await ksmSamples(s, name)).filter((m) => Object.entries(labels).every(([k, v]) => m.labels[k] === v));
  return match.length === 1 ? match[0]?.value : undefined;
}

/** Waits until kube-state-metrics shows `expected` for the metric (its informers follow the API's watch). */
async function expectKsm(s: Setup, name: string, labels: Record<string, string>, expected: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const last = await ksmValue(s, name, labels);
    if (last === expected) return;
    if (Date.now() > deadline) {
      const lines = (await get(s.ksm)).body.split('\n').filter((line) => line.startsWith(name) && line.includes(s.namespace));
      assert.unreachable(`${name}${JSON.stringify(labels)}: expected ${expected}, last ${last}; kube-state-metrics has:\n${lines.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const epochSeconds = (iso: string | undefined) => Math.floor(Date.parse(iso ?? '') / 1000);

test('the registry pod\'s metrics port: GET /metrics only, plain HTTP; nothing else of the debug server, and not on the TLS front', async () => {
  const s = await started();
  const base = `http://${s.pod.status?.podIP}:${METRICS_PORT}`;
  const metrics = await get(`${base}/metrics`);
  assert.is(metrics.status, 200, metrics.body.slice(0, 300));
  assert.match(metrics.body, /^registry_http_in_flight_requests\{handler="manifest"\} \d+$/m);
  for (const path of ['/debug/pprof/', '/debug/vars', '/debug/health', '/v2/', '/']) assert.is((await get(`${base}${path}`)).status, 404, path);
  assert.is((await get(`${base}/debug/health/down`, 'POST')).status, 404, 'the registry cannot be marked down from outside the pod');
  assert.is((await get(`${base}/metrics`, 'POST')).status, 403, 'GET only');
  const front = await s.client.call('GET', '/metrics');
  assert.is(front.status, 404, 'the TLS front does not serve them');
});

test('registry metrics scraped by Prometheus move with a push and a pull', async () => {
  const s = await started();
  const count = async (method: string) => (await query(s.prometheus, `sum(registry_http_requests_total{handler="manifest", method="${method}", registry="${NAME}", namespace="${s.namespace}"}) or vector(0)`))[0]?.value ?? 0;
  const blobBytesServed = async () => (await query(s.prometheus, `sum(registry_http_response_size_bytes_sum{handler="blob", registry="${NAME}"}) or vector(0)`))[0]?.value ?? 0;
  const before = { put: await count('put'), get: await count('get'), bytes: await blobBytesServed() };
  const image = newImage('v1', [], 64 * 1024);
  assert.equal(await pushImage(s.client, REPO, image), { result: 'pushed' });
  assert.is(await damage(s.client, REPO, image), undefined, 'the image pulls whole');
  // one scrape may fall between the pull's manifest GET and its blob GETs: wait for all three
  await waitFor('Prometheus scraped the push and the pull (the manifest PUT, its GET and the layer\'s bytes)', async () =>
    (await count('put')) === before.put + 1 && (await count('get')) >= before.get + 1 && (await blobBytesServed()) >= before.bytes + 64 * 1024, 30_000);
  console.log(`   manifest PUTs ${before.put} → ${await count('put')}, GETs ${before.get} → ${await count('get')}, blob bytes served ${before.bytes} → ${await blobBytesServed()}`);
});

test('kube-state-metrics with the shipped configuration: the registry\'s status as metrics after a reconcile', async () => {
  const s = await started();
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  await expectKsm(s, 'image_registry_info', { registry: NAME, hostname: registry.status?.hostname ?? '' }, 1);
  const ready = registry.status?.conditions?.find((c) => c.type === 'Ready');
  assert.ok(ready, 'a Ready condition');
  await expectKsm(s, 'image_registry_condition', { registry: NAME, condition: 'Ready' }, ready?.status === 'True' ? 1 : 0);
  await expectKsm(s, 'image_registry_storage_budget_bytes', { registry: NAME }, 2 ** 30);
  const samples = await ksmSamples(s, 'image_registry_info');
  assert.equal(samples[0]?.labels['customresource_kind'], 'ImageRegistry');
});

withAuth('kube-state-metrics: the push secret\'s expiry, rotation time and count, before and after a forced rotation', async () => {
  const s = await started();
  const before = await requireObject<ImageSecret>(cluster, 'imagepushsecret', 'ci', s.namespace);
  const labels = { secret: 'ci', access: 'push', registry: NAME };
  await expectKsm(s, 'image_registry_secret_condition', { ...labels, condition: 'Ready' }, 1);
  await expectKsm(s, 'image_registry_secret_expiry_timestamp_seconds', labels, epochSeconds(before.status?.expiryDate));
  await expectKsm(s, 'image_registry_secret_rotation', labels, before.status?.rotation ?? -1);
  const job = `rotate-${Date.now() % 100000}`;
  const created = await cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-rotate', job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  assert.is((await timed('forced rotation', () => waitForJob(cluster, OPERATOR_NAMESPACE, job, 180_000))).result, 'Complete');
  const after = await requireObject<ImageSecret>(cluster, 'imagepushsecret', 'ci', s.namespace);
  assert.is(after.status?.rotation, (before.status?.rotation ?? 0) + 1);
  await expectKsm(s, 'image_registry_secret_rotation', labels, after.status?.rotation ?? -1);
  await expectKsm(s, 'image_registry_secret_rotation_timestamp_seconds', labels, epochSeconds(after.status?.rotationDate));
  await expectKsm(s, 'image_registry_secret_expiry_timestamp_seconds', labels, epochSeconds(after.status?.expiryDate));
});

test('kube-state-metrics: a garbage collection run\'s result, reclaimed bytes, freeze and storage; the write freeze is in the status only while it holds', async () => {
  const s = await started();
  const doomed = newImage('doomed', [], 256 * 1024);
  assert.equal(await pushImage(s.client, REPO, doomed), { result: 'pushed' });
  assert.is(await removeImage(s.client, REPO, doomed), undefined);
  const job = `gc-monitoring-${Date.now() % 100000}`;
  const created = await cluster.kubectl(['create', 'job', `--from=cronjob/${gcCronJobName({ namespace: s.namespace, name: NAME })}`, job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  // the freeze appears in the status while the run holds it
  let sawFreeze: { since: string; until: string } | undefined;
  const watching = (async () => {
    for (let i = 0; i < 600 && !sawFreeze; i++) {
      sawFreeze = (await getObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace))?.status?.garbageCollection?.writeFreeze;
      if ((await getObject<{ status?: { succeeded?: number; failed?: number } }>(cluster, 'job', job, OPERATOR_NAMESPACE))?.status?.succeeded) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const finished = await timed('GC run', () => waitForJob(cluster, OPERATOR_NAMESPACE, job, 300_000));
  await watching;
  assert.is(finished.result, 'Complete', finished.logs);
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  const run = registry.status?.garbageCollection?.lastRun;
  assert.is(run?.result, 'Succeeded', JSON.stringify(run));
  assert.ok(sawFreeze && Date.parse(sawFreeze.until) > Date.parse(sawFreeze.since), `status.garbageCollection.writeFreeze while the freeze held: ${JSON.stringify(sawFreeze)}`);
  assert.is(registry.status?.garbageCollection?.writeFreeze, undefined, 'the report removed it');
  assert.ok((run?.bytesReclaimed ?? 0) >= 256 * 1024, `the deleted image's layer reclaimed: ${run?.bytesReclaimed}`);
  await expectKsm(s, 'image_registry_gc_last_run_result', { registry: NAME, result: 'Succeeded' }, 1);
  await expectKsm(s, 'image_registry_gc_last_run_result', { registry: NAME, result: 'Failed' }, 0);
  await expectKsm(s, 'image_registry_gc_last_run_reclaimed_bytes', { registry: NAME }, run?.bytesReclaimed ?? -1);
  await expectKsm(s, 'image_registry_gc_last_run_freeze_seconds', { registry: NAME }, run?.freezeSeconds ?? -1);
  await expectKsm(s, 'image_registry_gc_last_run_timestamp_seconds', { registry: NAME }, epochSeconds(run?.completionTime));
  await expectKsm(s, 'image_registry_storage_used_bytes', { registry: NAME }, registry.status?.storage?.usedBytes ?? -1);
  assert.is(await ksmValue(s, 'image_registry_write_freeze_deadline_timestamp_seconds', { registry: NAME }), undefined, 'no freeze series after the run');
  console.log(`   lastRun: ${JSON.stringify(run)}; writeFreeze while held: ${JSON.stringify(sawFreeze)}`);
});

test('the dashboard names only metrics seen exported here, and each of its queries runs on Prometheus', async () => {
  const s = await started();
  const exported = new Set<string>();
  const addNames = (text: string) => {
    for (const family of parsePrometheusTextFormat(text)) {
      exported.add(family.name);
      if (family.type === 'HISTOGRAM') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${family.name}${suffix}`);
    }
  };
  addNames((await get(s.ksm)).body);
  addNames((await get(`http://${s.pod.status?.podIP}:${METRICS_PORT}/metrics`)).body);
  // the webhook's exposition, as its /metrics renders it
  addNames(createMetrics().render());
  const missing: string[] = [];
  for (const q of dashboardQueries()) {
    for (const name of metricNames(q.expr)) if (!exported.has(name)) missing.push(`${q.panel}: ${name}`);
    await query(s.prometheus, withGrafanaVariables(q.expr));
  }
  assert.equal(missing, [], 'metrics the dashboard reads that nothing here exports');
  // and the rules' own: every series the alerts read is exported here, or by the kubelet and the API server
  const elsewhere = /^(kubelet_volume_stats_|apiserver_admission_webhook_|up$)/;
  const ruleMissing = shippedRuleGroups().groups.flatMap((g) => g.rules).flatMap((r) => metricNames(r.expr).filter((n) => !exported.has(n) && !elsewhere.test(n)).map((n) => `${r.alert}: ${n}`));
  assert.equal(ruleMissing, [], 'metrics the alerts read that nothing exports');
});

test('kustomize/monitoring applies where the Prometheus Operator CRDs exist; the base install needs none of them', async () => {
  await started();
  const base = await cluster.kubectl(['kustomize', join(MONITORING_DIR, '..')]);
  assert.is(base.code, 0, base.stderr);
  assert.not.match(base.stdout, /monitoring\.coreos\.com/, 'the base install has no Prometheus Operator kinds');
  const crdDir = join(cluster.assetsDir, 'prometheus-operator-crds');
  const crds = readdirSync(crdDir).filter((f) => f.endsWith('.yaml'));
  assert.equal(crds.sort(), ['monitoring.coreos.com_podmonitors.yaml', 'monitoring.coreos.com_prometheusrules.yaml', 'monitoring.coreos.com_servicemonitors.yaml']);
  for (const crd of crds) {
    const applied = await cluster.kubectl(['apply', '--server-side', '--field-manager=e2e-test', '-f', join(crdDir, crd)]);
    assert.is(applied.code, 0, applied.stderr);
  }
  await waitFor('the CRDs are established', async () => (await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=5s', 'crd/podmonitors.monitoring.coreos.com', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com'])).code === 0, 60_000);
  const applied = await cluster.kubectl(['apply', '-k', MONITORING_DIR]);
  assert.is(applied.code, 0, applied.stderr);
  for (const [kind, name] of [['podmonitor', 'image-registries'], ['servicemonitor', 'image-registry-operator-webhook'], ['prometheusrule', 'image-registry-operator'], ['configmap', 'image-registry-operator-kube-state-metrics'], ['configmap', 'image-registry-operator-dashboard']] as const) {
    assert.ok(await getObject(cluster, kind, name, OPERATOR_NAMESPACE), `${kind} ${name}`);
  }
  const dashboard = await requireObject<{ metadata: { labels?: Record<string, string> } }>(cluster, 'configmap', 'image-registry-operator-dashboard', OPERATOR_NAMESPACE);
  assert.is(dashboard.metadata.labels?.['grafana_dashboard'], '1');
  // the ClusterRole lets kube-state-metrics' ServiceAccount (kube-prometheus' name) list the kinds
  for (const resource of ['imageregistries', 'imagepushsecrets', 'imagepullsecrets', 'imageregistryaccounts']) {
    const can = await cluster.kubectl(['auth', 'can-i', 'list', `${resource}.registry.mgoltzsche.github.com`, '--all-namespaces', '--as=system:serviceaccount:monitoring:kube-state-metrics']);
    assert.is(can.stdout.trim(), 'yes', `${resource}: ${can.stderr}`);
  }
});

test('timings', () => {
  console.log(`   ${Object.entries(timings).map(([step, ms]) => `${step} ${(ms / 1000).toFixed(1)} s`).join('; ')}`);
});

test.after(async () => {
  for (const p of processes) await p.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test.run();
