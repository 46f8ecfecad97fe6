// Installs kustomize/ into the test cluster. The Job tests need the parts without the webhook —
// namespace, config, the Jobs' RBAC and the CronJobs (installOperatorBase): no webhook runs in
// those tests, they create the Jobs themselves. The webhook tests install the whole of it the way a
// user does (installOperator): `kubectl apply -k` of an overlay, then the README's waits; and take
// the webhook away again when they are done (uninstallWebhook), so that the files after them run
// without it.
import { loadAll } from 'js-yaml';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { OperatorConfig } from '../../functions/types.ts';
import type { TestCluster } from './cluster.ts';
import { installObjects, listObjects } from './kubectl.ts';
import { nodeAccess } from './node/node-access.ts';
import { waitFor } from './processes.ts';

const kustomizeDir = fileURLToPath(new URL('../../kustomize', import.meta.url));

const WITHOUT = new Set(['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'Deployment', 'PodDisruptionBudget', 'Job']);

export const OPERATOR_NAMESPACE = 'image-registry-operator';

let installed: Promise<void> | undefined;

/**
 * kustomize/ minus the webhook; installed once per process. `env` sets variables of the operator
 * ConfigMap (the CronJobs' Jobs read it with envFrom); the returned configuration has them too, for
 * the reconcile Jobs a test creates as the webhook would (desiredReconcileJob passes it as env).
 */
export async function installOperatorBase(cluster: TestCluster, env: Record<string, string> = {}): Promise<OperatorConfig> {
  await installBase(cluster);
  if (Object.keys(env).length > 0) await setOperatorConfig(cluster, env);
  return operatorConfigFromEnv(env);
}

/**
 * Merges variables into the operator ConfigMap the CronJobs read now (named with kustomize's content
 * hash: earlier installs with other settings leave ConfigMaps of other names behind, so the name is
 * the one the resync CronJob refers to).
 */
export async function setOperatorConfig(cluster: TestCluster, env: Record<string, string>): Promise<void> {
  const jsonPath = '{.spec.jobTemplate.spec.template.spec.containers[0].envFrom[0].configMapRef.name}';
  const referenced = await cluster.kubectl(['get', 'cronjob', 'image-registry-operator-resync', '-o', `jsonpath=${jsonPath}`], { namespace: OPERATOR_NAMESPACE });
  const name = referenced.stdout.trim();
  if (referenced.code !== 0 || !name) throw new Error(`no operator ConfigMap referenced by the resync CronJob in ${OPERATOR_NAMESPACE}: ${referenced.stderr}`);
  const patched = await cluster.kubectl(['patch', 'configmap', name, '--type=merge', '-p', JSON.stringify({ data: env })], { namespace: OPERATOR_NAMESPACE });
  if (patched.code !== 0) throw new Error(`setting ${Object.keys(env).join(', ')}: ${patched.stderr}`);
}

/**
 * `kubectl apply -k` of an overlay of kustomize/ that merges `env` into the operator ConfigMap —
 * the way the README tells users to configure it — then the README's waits for the bootstrap Job
 * and the webhook Deployment. The webhook then runs as its Deployment's pods, behind its Service.
 * `components`: opt-in components of kustomize/ to include, e.g. 'node-trust'.
 */
export async function installOperator(cluster: TestCluster, env: Record<string, string> = {}, components: string[] = []): Promise<OperatorConfig> {
  const overlay = mkdtempSync(join(tmpdir(), 'iro-overlay-'));
  const base = relative(overlay, kustomizeDir);
  const literals = Object.entries(env).map(([key, value]) => `  - ${JSON.stringify(`${key}=${value}`)}`);
  writeFileSync(join(overlay, 'kustomization.yaml'), [
    'resources:', `- ${base}`,
    ...(literals.length ? ['configMapGenerator:', '- name: image-registry-operator-config', `  namespace: ${OPERATOR_NAMESPACE}`, '  behavior: merge', '  literals:', ...literals] : []),
    'components:', ...components.map((component) => `- ${base}/${component}`), `- ${base}/operator-image`, '',
  ].join('\n'));
  const steps = [
    ['apply', '-k', overlay],
    ['-n', OPERATOR_NAMESPACE, 'wait', '--for=condition=Complete', 'job/image-registry-operator-bootstrap', '--timeout=180s'],
    ['-n', OPERATOR_NAMESPACE, 'rollout', 'status', 'deployment/image-registry-operator-webhook', '--timeout=180s'],
  ];
  for (const step of steps) {
    const result = await cluster.kubectl(step);
    if (result.code !== 0) throw new Error(`kubectl ${step.join(' ')}: ${result.stderr}`);
  }
  // the configuration the pods got: the overlay's ConfigMap
  const rendered = await cluster.kubectl(['kustomize', overlay]);
  const config = (loadAll(rendered.stdout) as { kind?: string; data?: Record<string, string> }[]).find((o) => o?.kind === 'ConfigMap');
  return operatorConfigFromEnv(config?.data ?? {});
}

/** kustomize/node-trust's namespace (its Jobs run there). */
export const NODE_TRUST_NAMESPACE = 'image-registry-operator-node-trust';

/**
 * kustomize/node-trust's own objects, rendered as a user's overlay renders them (apply them, then
 * setOperatorConfig with OPERATOR_NODE_TRUST_NAMESPACE: the variable the component sets).
 */
export async function nodeTrustComponentObjects(cluster: TestCluster): Promise<object[]> {
  const overlay = mkdtempSync(join(tmpdir(), 'iro-overlay-'));
  const base = relative(overlay, kustomizeDir);
  writeFileSync(join(overlay, 'kustomization.yaml'), `resources:\n- ${base}\ncomponents:\n- ${base}/node-trust\n- ${base}/operator-image\n`);
  const rendered = await cluster.kubectl(['kustomize', overlay]);
  rmSync(overlay, { recursive: true, force: true });
  if (rendered.code !== 0) throw new Error(`kubectl kustomize: ${rendered.stderr}`);
  const all = loadAll(rendered.stdout) as { kind: string; metadata: { name: string; namespace?: string } }[];
  return all.filter((o) => o.metadata.name.includes('node-trust') || o.metadata.namespace === NODE_TRUST_NAMESPACE);
}

export const WEBHOOK_POD_SELECTOR = 'app.kubernetes.io/name=image-registry-operator,app.kubernetes.io/component=webhook';

/** What the webhook pods logged, one JSON line an event (kubectl logs of every pod of the Deployment). */
export async function webhookPodLogs(cluster: TestCluster): Promise<string> {
  const result = await cluster.kubectl(['logs', '-l', WEBHOOK_POD_SELECTOR, '--tail=-1'], { namespace: OPERATOR_NAMESPACE });
  return result.stdout;
}

/**
 * No webhook pod left, at once: the Deployment scaled to 0 and its pods killed while they drain (as
 * on a lost node) — a draining pod would go on answering the API server's kept-alive connections
 * until the API server closes them, up to 90 s. The configurations stay.
 */
export async function killWebhookPods(cluster: TestCluster): Promise<void> {
  const pods = () => listObjects<{ metadata: { uid: string } }>(cluster, 'pods', OPERATOR_NAMESPACE, { selector: WEBHOOK_POD_SELECTOR });
  const victims = await pods();
  const scaled = await cluster.kubectl(['scale', 'deployment/image-registry-operator-webhook', '--replicas=0'], { namespace: OPERATOR_NAMESPACE });
  if (scaled.code !== 0) throw new Error(`scaling the webhook to 0: ${scaled.stderr}`);
  const node = nodeAccess(cluster);
  for (const pod of victims) await node.killPodContainers(pod.metadata.uid);
  await waitFor('no webhook pod left', async () => (await pods()).length === 0, 60_000);
}

/** Takes the webhook out of the cluster again (configurations first: nothing may call a webhook that is gone). */
export async function uninstallWebhook(cluster: TestCluster): Promise<void> {
  await cluster.kubectl(['delete', '--ignore-not-found', 'mutatingwebhookconfiguration/image-registry-operator', 'validatingwebhookconfiguration/image-registry-operator']);
  await cluster.kubectl(['delete', '--ignore-not-found', 'deployment/image-registry-operator-webhook', 'poddisruptionbudget/image-registry-operator-webhook', 'job/image-registry-operator-bootstrap'], { namespace: OPERATOR_NAMESPACE });
}

function installBase(cluster: TestCluster): Promise<void> {
  installed ??= (async () => {
    await cluster.installCrds();
    const rendered = await cluster.kubectl(['kustomize', kustomizeDir]);
    if (rendered.code !== 0) throw new Error(`kubectl kustomize kustomize: ${rendered.stderr}`);
    const objects = (loadAll(rendered.stdout) as { kind: string }[]).filter((o) => o && !WITHOUT.has(o.kind));
    await installObjects(cluster, objects);
  })();
  return installed;
}
