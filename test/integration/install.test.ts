// `kubectl apply -k ./kustomize` against the real API server (server-side dry run), and every pod
// template we ship — webhook, bootstrap Job, CronJobs, reconcile Job, registry StatefulSet — passes
// PodSecurity "restricted" where it is enforced.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAll } from 'js-yaml';
import { fileURLToPath } from 'node:url';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { desiredStatefulSet } from '../../functions/registry-objects.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION, type ImageRegistry } from '../../functions/types.ts';

type Obj = Record<string, any>;
const kustomizeDir = fileURLToPath(new URL('../../kustomize', import.meta.url));

let rendered: Promise<{ cluster: TestCluster; objects: Obj[] }> | undefined;
function install() {
  rendered ??= (async () => {
    const cluster = await testCluster();
    const result = await cluster.kubectl(['kustomize', kustomizeDir]);
    assert.is(result.code, 0, result.stderr);
    return { cluster, objects: (loadAll(result.stdout) as Obj[]).filter(Boolean) };
  })();
  return rendered;
}

test('kubectl apply -k ./kustomize --dry-run=server is accepted by the API server', async () => {
  const { cluster } = await install();
  // a server-side dry run persists nothing, so the namespace and CRDs the rest refers to must exist
  await cluster.installCrds();
  await cluster.kubectl(['create', 'namespace', 'image-registry-operator']);
  const result = await cluster.kubectl(['apply', '-k', kustomizeDir, '--dry-run=server']);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stdout, /customresourcedefinition.apiextensions.k8s.io\/imageregistries.registry.mgoltzsche.github.com .*\(server dry run\)/);
  assert.match(result.stdout, /cronjob.batch\/image-registry-operator-rotate .*\(server dry run\)/);
});

test('the installation holds what DESIGN.md lists: CRDs, webhook, configurations, CronJobs, bootstrap Job, RBAC', async () => {
  const { objects } = await install();
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  for (const wanted of [
    'CustomResourceDefinition/imageregistries.registry.mgoltzsche.github.com',
    'Deployment/image-registry-operator-webhook',
    'MutatingWebhookConfiguration/image-registry-operator',
    'ValidatingWebhookConfiguration/image-registry-operator',
    'CronJob/image-registry-operator-rotate',
    'CronJob/image-registry-operator-resync',
    'ServiceAccount/image-registry-operator-jobs',
    'ClusterRole/image-registry-operator-jobs',
  ]) assert.ok(kinds.includes(wanted), `${wanted} in ${kinds.join(', ')}`);
  assert.ok(objects.some((o) => o.kind === 'Job'), 'bootstrap Job');
  const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('image-registry-operator-config'));
  assert.is(config?.data.OPERATOR_DNS_ZONE, 'svc.example.org');
});

test('webhook configurations match our API group; the ServiceAccount webhook only creations, and never refuses', async () => {
  const { objects } = await install();
  const names: string[] = [];
  for (const configuration of objects.filter((o) => o.kind.endsWith('WebhookConfiguration'))) {
    for (const webhook of configuration.webhooks) {
      names.push(webhook.name);
      if (webhook.name === 'serviceaccounts.registry.mgoltzsche.github.com') {
        assert.is(configuration.kind, 'MutatingWebhookConfiguration');
        assert.equal(webhook.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['serviceaccounts'], scope: 'Namespaced' }]);
        assert.equal([webhook.failurePolicy, webhook.sideEffects, webhook.timeoutSeconds], ['Ignore', 'None', 3]);
        continue;
      }
      assert.is(webhook.sideEffects, 'NoneOnDryRun');
      assert.is(webhook.failurePolicy, 'Fail');
      for (const rule of webhook.rules) assert.equal(rule.apiGroups, ['registry.mgoltzsche.github.com'], `${configuration.kind} ${webhook.name}`);
    }
  }
  assert.equal(names.sort(), ['mutate.registry.mgoltzsche.github.com', 'serviceaccounts.registry.mgoltzsche.github.com', 'validate.registry.mgoltzsche.github.com']);
});

/** Pod templates of every workload we ship, with where they come from. */
function podTemplates(objects: Obj[]): [string, Obj][] {
  const templates: [string, Obj][] = [];
  for (const o of objects) {
    if (o.kind === 'Deployment' || o.kind === 'Job') templates.push([`${o.kind}/${o.metadata.name}`, o.spec.template]);
    if (o.kind === 'CronJob') templates.push([`CronJob/${o.metadata.name}`, o.spec.jobTemplate.spec.template]);
  }
  const config = operatorConfigFromEnv({});
  templates.push(['reconcile Job (webhook)', desiredReconcileJob({ registry: { namespace: 'ns', name: 'registry' }, config, windowEnd: new Date() }).spec.template]);
  const registry: ImageRegistry = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'ns', uid: '00000000-0000-0000-0000-000000000001' }, spec: {} };
  const statefulSet = desiredStatefulSet(registry, config, { tlsSecretName: 'registry-tls' });
  templates.push(['registry StatefulSet', statefulSet.spec!.template as Obj]);
  return templates;
}

test('every pod template we ship passes PodSecurity "restricted" (server-side dry run in an enforcing namespace)', async () => {
  const { cluster, objects } = await install();
  const ns = await cluster.createNamespace('restricted', { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' });
  const templates = podTemplates(objects);
  assert.ok(templates.length >= 6, `${templates.length} templates`);
  // the ServiceAccount admission plugin refuses pods whose ServiceAccount does not exist
  const accounts = [...new Set(templates.map(([, t]) => t.spec.serviceAccountName).filter(Boolean))];
  for (const name of accounts) assert.is((await cluster.kubectl(['create', 'serviceaccount', name], { namespace: ns })).code, 0);
  for (const [source, template] of templates) {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pod-security-check', labels: template.metadata?.labels ?? {} }, spec: template.spec };
    const result = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod), namespace: ns });
    assert.is(result.code, 0, `${source}: ${result.stderr}`);
    assert.not.match(result.stderr, /Warning: would violate PodSecurity/, `${source}: ${result.stderr}`);
  }
});

test.run();
