// Installs the parts of kustomize/ that the Job tests need — namespace, config, the Jobs' RBAC and
// the CronJobs — without the webhook configurations (no webhook server runs in those tests, and a
// registered webhook with failurePolicy Fail would block every CR).
import { loadAll } from 'js-yaml';
import { fileURLToPath } from 'node:url';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { OperatorConfig } from '../../functions/types.ts';
import type { TestCluster } from './cluster.ts';
import { installObjects } from './kubectl.ts';

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

/** Merges variables into the operator ConfigMap (named with kustomize's content hash). */
export async function setOperatorConfig(cluster: TestCluster, env: Record<string, string>): Promise<void> {
  const listed = await cluster.kubectl(['get', 'configmaps', '-o', 'name'], { namespace: OPERATOR_NAMESPACE });
  const name = listed.stdout.split('\n').map((line) => line.trim()).find((line) => line.startsWith('configmap/image-registry-operator-config'));
  if (!name) throw new Error(`no operator ConfigMap in ${OPERATOR_NAMESPACE}: ${listed.stderr}`);
  const patched = await cluster.kubectl(['patch', name, '--type=merge', '-p', JSON.stringify({ data: env })], { namespace: OPERATOR_NAMESPACE });
  if (patched.code !== 0) throw new Error(`setting ${Object.keys(env).join(', ')}: ${patched.stderr}`);
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
