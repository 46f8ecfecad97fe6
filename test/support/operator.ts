// Installs the parts of kustomize/ that the Job tests need — namespace, config, the Jobs' RBAC and
// the CronJobs — without the webhook configurations (no webhook server runs in those tests, and a
// registered webhook with failurePolicy Fail would block every CR).
import { loadAll, dump } from 'js-yaml';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from './cluster.ts';

const kustomizeDir = fileURLToPath(new URL('../../kustomize', import.meta.url));

const WITHOUT = new Set(['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'Deployment', 'PodDisruptionBudget', 'Job']);

export const OPERATOR_NAMESPACE = 'image-registry-operator';

let installed: Promise<void> | undefined;

/** kustomize/ minus the webhook; idempotent and done once per process. */
export function installOperatorBase(cluster: TestCluster): Promise<void> {
  installed ??= (async () => {
    await cluster.installCrds();
    const rendered = await cluster.kubectl(['kustomize', kustomizeDir]);
    if (rendered.code !== 0) throw new Error(`kubectl kustomize kustomize: ${rendered.stderr}`);
    const objects = (loadAll(rendered.stdout) as { kind: string }[]).filter((o) => o && !WITHOUT.has(o.kind));
    const input = objects.map((o) => dump(o)).join('---\n');
    const applied = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=tests', '-f', '-'], { input });
    if (applied.code !== 0) throw new Error(`applying kustomize/ (without the webhook): ${applied.stderr}`);
  })();
  return installed;
}
