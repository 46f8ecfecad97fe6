// TLS bootstrap of the webhook, from kustomize/ as installed: the bootstrap Job (run by the real Job
// controller and the real node from its own manifest, as the image-registry-operator-bootstrap
// ServiceAccount) creates
// the serving CA/certificate Secret and injects the CA into both webhook configurations; reruns
// (also from the renewal CronJob) change nothing unless something is due. Also: the RBAC of the
// webhook and the bootstrap Job is least privilege.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEBHOOK_TLS_SECRET_NAME, webhookDnsNames } from '../../functions/webhook-tls.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { issueTestCertificate } from '../support/pki.ts';
import {
  buildBundles,
  configEnv,
  createWebhookConfigurations,
  deleteWebhookConfigurations,
  deleteWebhookConfigurationsOnExit,
  httpsRequest,
  isWebhookConfiguration,
  renderInstall,
  startWebhook,
  type Obj,
} from '../support/webhook.ts';
import { installObjects, requireObject } from '../support/kubectl.ts';

const NS = 'image-registry-operator';
const CONFIGURATION_KINDS = ['mutatingwebhookconfiguration', 'validatingwebhookconfiguration'];

interface Setup {
  cluster: TestCluster;
  objects: Obj[];
}

let setup: Promise<Setup> | undefined;
function installed(): Promise<Setup> {
  setup ??= (async () => {
    const cluster = await testCluster();
    deleteWebhookConfigurationsOnExit(cluster);
    await buildBundles(['bootstrap', 'webhook']);
    const objects = await renderInstall(cluster);
    // the installation without workloads and webhook configurations; those are created below as rendered
    await installObjects(cluster, objects.filter((o) => !isWebhookConfiguration(o) && !['Job', 'Deployment'].includes(o.kind)));
    await createWebhookConfigurations(cluster, objects.filter(isWebhookConfiguration));
    await cluster.kubectl(['delete', 'secret', WEBHOOK_TLS_SECRET_NAME, '--ignore-not-found'], { namespace: NS });
    return { cluster, objects };
  })();
  return setup;
}

interface Secret {
  type: string;
  metadata: { resourceVersion: string };
  data: Record<string, string>;
}

interface Configuration {
  kind: string;
  metadata: { resourceVersion: string };
  webhooks: { clientConfig: { caBundle?: string } }[];
}

const secret = (cluster: TestCluster) => requireObject<Secret>(cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
const decoded = (s: Secret, key: string) => Buffer.from(s.data[key] ?? '', 'base64').toString('utf8');

const configurations = (cluster: TestCluster) => Promise.all(CONFIGURATION_KINDS.map((kind) => requireObject<Configuration>(cluster, kind, 'image-registry-operator')));

/** Creates a Job from the rendered bootstrap Job manifest under another name and waits for its run. */
async function runBootstrap(name: string) {
  const { cluster, objects } = await installed();
  const job = objects.find((o) => o.kind === 'Job' && o.metadata.name === 'image-registry-operator-bootstrap');
  assert.ok(job, 'kustomize/ renders the bootstrap Job');
  const created = await cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify({ ...job, metadata: { ...job.metadata, name } }) });
  assert.is(created.code, 0, created.stderr);
  const run = await waitForJob(cluster, NS, name, 90_000);
  assert.is(run.result, 'Complete', run.logs);
  return run;
}

test('the bootstrap Job creates the serving CA/certificate Secret and injects caBundle into both configurations', async () => {
  const { cluster, objects } = await installed();
  const run = await runBootstrap('image-registry-operator-bootstrap');
  const pod = run.pods[0]?.spec;
  assert.equal(pod?.containers[0].command, ['node', '/app/dist/bootstrap.js']);
  assert.is(pod?.serviceAccountName, 'image-registry-operator-bootstrap');
  // not the operator ConfigMap, whose hashed name would make a changed setting change this
  // immutable template: only its namespace, from the downward API
  assert.is(pod?.containers[0].envFrom, undefined);
  assert.equal(pod?.containers[0].env, [{ name: 'OPERATOR_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } }]);
  assert.is(configEnv(objects).OPERATOR_NAMESPACE, NS);
  assert.match(run.logs, '"secret":"created"');

  const stored = await secret(cluster);
  assert.is(stored.type, 'kubernetes.io/tls');
  assert.equal(Object.keys(stored.data).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  const leaf = new X509Certificate(decoded(stored, 'tls.crt'));
  const ca = new X509Certificate(decoded(stored, 'ca.crt'));
  assert.ok(ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'the leaf is signed by the CA');
  assert.is(leaf.subjectAltName, webhookDnsNames(NS).map((name) => `DNS:${name}`).join(', '));
  assert.equal(webhookDnsNames(NS), [`image-registry-operator-webhook.${NS}.svc`, `image-registry-operator-webhook.${NS}.svc.cluster.local`]);
  for (const configuration of await configurations(cluster)) {
    for (const webhook of configuration.webhooks) assert.is(webhook.clientConfig.caBundle, stored.data['ca.crt'], configuration.kind);
  }
});

test('the certificate serves the webhook under the Service name the API server verifies', async () => {
  const { cluster, objects } = await installed();
  const stored = await secret(cluster);
  const dir = mkdtempSync(join(tmpdir(), 'iro-webhook-tls-'));
  writeFileSync(join(dir, 'tls.crt'), decoded(stored, 'tls.crt'));
  writeFileSync(join(dir, 'tls.key'), decoded(stored, 'tls.key'), { mode: 0o600 });
  const caPem = decoded(stored, 'ca.crt');
  const [serviceName, longName] = webhookDnsNames(NS) as [string, string];
  // started and health-checked as https://image-registry-operator-webhook.<ns>.svc, trusting caBundle only
  const webhook = await startWebhook({
    tls: { ca: { certPem: caPem, keyPem: '' }, dir, certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') },
    env: configEnv(objects),
    kubeconfig: cluster.kubeconfig,
    servername: serviceName,
  });
  try {
    const get = (servername: string) => httpsRequest({ port: webhook.port, caPem, path: '/healthz', method: 'GET', servername }).then((r) => String(r.status), (error: Error) => error.message);
    assert.is(await get(serviceName), '200');
    assert.is(await get(longName), '200');
    assert.match(await get('somebody-else.example.org'), /altnames/i);
  } finally {
    await webhook.stop();
  }
});

test('a second run, and a run from the renewal CronJob, change nothing (resourceVersions equal)', async () => {
  const { cluster } = await installed();
  const before = await secret(cluster);
  const configurationVersions = (await configurations(cluster)).map((c) => c.metadata.resourceVersion);
  const second = await runBootstrap('bootstrap-again');
  assert.match(second.logs, '"secret":"unchanged","issued":[],"injected":[]');
  const fromCron = await cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-webhook-tls', 'tls-now'], { namespace: NS });
  assert.is(fromCron.code, 0, fromCron.stderr);
  const cronRun = await waitForJob(cluster, NS, 'tls-now', 90_000);
  assert.is(cronRun.result, 'Complete', cronRun.logs);
  assert.equal(cronRun.pods[0]?.spec.containers[0].command, ['node', '/app/dist/bootstrap.js']);
  assert.is((await secret(cluster)).metadata.resourceVersion, before.metadata.resourceVersion);
  assert.equal((await configurations(cluster)).map((c) => c.metadata.resourceVersion), configurationVersions);
});

test('a serving certificate that no longer fits is reissued by the same CA; the caBundle stays', async () => {
  const { cluster } = await installed();
  const before = await secret(cluster);
  const configurationVersions = (await configurations(cluster)).map((c) => c.metadata.resourceVersion);
  // a certificate for the wrong names (e.g. after the namespace changed)
  const foreign = issueTestCertificate({ commonName: 'elsewhere', dnsNames: ['elsewhere.example.org'] });
  const patched = await cluster.kubectl(['patch', 'secret', WEBHOOK_TLS_SECRET_NAME, '--type=merge', '-p', JSON.stringify({ data: { 'tls.crt': Buffer.from(foreign.certPem).toString('base64'), 'tls.key': Buffer.from(foreign.keyPem).toString('base64') } })], { namespace: NS });
  assert.is(patched.code, 0, patched.stderr);
  const run = await runBootstrap('bootstrap-renew');
  assert.match(run.logs, '"secret":"updated","issued":["leaf"],"injected":[]', run.logs);
  const after = await secret(cluster);
  assert.is(after.data['ca.crt'], before.data['ca.crt'], 'same CA');
  assert.is(after.data['ca.key'], before.data['ca.key']);
  assert.is.not(after.data['tls.crt'], before.data['tls.crt']);
  const leaf = new X509Certificate(decoded(after, 'tls.crt'));
  assert.ok(leaf.checkIssued(new X509Certificate(decoded(after, 'ca.crt'))));
  assert.match(leaf.subjectAltName ?? '', `DNS:image-registry-operator-webhook.${NS}.svc`);
  assert.equal((await configurations(cluster)).map((c) => c.metadata.resourceVersion), configurationVersions, 'caBundle unchanged');
});

test('RBAC is least privilege for the webhook and the bootstrap Job', async () => {
  const { cluster } = await installed();
  const can = async (serviceAccount: string, ...args: string[]) => {
    const result = await cluster.kubectl(['auth', 'can-i', ...args, `--as=system:serviceaccount:${NS}:${serviceAccount}`]);
    return result.stdout.trim();
  };
  const webhook = 'image-registry-operator-webhook';
  assert.is(await can(webhook, 'create', 'jobs.batch', '-n', NS), 'yes');
  assert.is(await can(webhook, 'create', 'jobs.batch', '-n', 'default'), 'no');
  assert.is(await can(webhook, 'delete', 'jobs.batch', '-n', NS), 'no');
  assert.is(await can(webhook, 'list', 'imageregistries.registry.mgoltzsche.github.com', '--all-namespaces'), 'yes');
  assert.is(await can(webhook, 'create', 'imageregistries.registry.mgoltzsche.github.com', '-n', 'default'), 'no');
  assert.is(await can(webhook, 'get', 'secrets', '-n', NS), 'no');
  assert.is(await can(webhook, 'list', 'imagepushsecrets.registry.mgoltzsche.github.com', '-n', 'default'), 'no');
  const bootstrap = 'image-registry-operator-bootstrap';
  assert.is(await can(bootstrap, 'get', `secrets/${WEBHOOK_TLS_SECRET_NAME}`, '-n', NS), 'yes');
  assert.is(await can(bootstrap, 'update', `secrets/${WEBHOOK_TLS_SECRET_NAME}`, '-n', NS), 'yes');
  assert.is(await can(bootstrap, 'get', 'secrets/image-registry-operator-ca', '-n', NS), 'no');
  assert.is(await can(bootstrap, 'list', 'secrets', '-n', NS), 'no');
  assert.is(await can(bootstrap, 'create', 'secrets', '-n', 'default'), 'no');
  assert.is(await can(bootstrap, 'patch', 'mutatingwebhookconfigurations/image-registry-operator'), 'yes');
  assert.is(await can(bootstrap, 'patch', 'validatingwebhookconfigurations/image-registry-operator'), 'yes');
  assert.is(await can(bootstrap, 'patch', 'validatingwebhookconfigurations/someone-else'), 'no');
  assert.is(await can(bootstrap, 'create', 'mutatingwebhookconfigurations'), 'no');
});

test('clean up: webhook configurations, the Secret and the bootstrap Jobs are removed', async () => {
  const { cluster } = await installed();
  await deleteWebhookConfigurations(cluster);
  await cluster.kubectl(['delete', 'secret', WEBHOOK_TLS_SECRET_NAME, '--ignore-not-found'], { namespace: NS });
  await cluster.kubectl(['delete', 'jobs', '-l', 'app.kubernetes.io/component=bootstrap', '--wait=false'], { namespace: NS });
  const left = await cluster.kubectl(['get', 'mutatingwebhookconfigurations,validatingwebhookconfigurations', '-o', 'name']);
  assert.not.match(left.stdout, 'image-registry-operator');
});

test.run();
