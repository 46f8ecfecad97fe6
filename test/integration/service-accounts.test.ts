// ImagePullSecret spec.serviceAccounts end to end: kustomize/ installed the way a user installs it
// (the webhook Deployment behind its Service, called by the real API server over TLS), the reconcile
// Jobs the webhook enqueues run by the real Job controller on the real node with their own
// ServiceAccount's token (our RBAC), and the API server's own ServiceAccount admission plugin
// copying the entries into Pods. At the end the webhook is taken away again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeConfig } from '@kubernetes/client-node';
import { ADDED_PULL_SECRETS_ANNOTATION, ADDED_PULL_SECRETS_LABEL, type ServiceAccount } from '../../functions/service-accounts.ts';
import { REGISTRY_LABEL, registryLabelValue } from '../../functions/reconcile-job.ts';
import { GROUP_VERSION, type OperatorConfig } from '../../functions/types.ts';
import { connectKube, KubeError, type Kube } from '../../cronjobs/kube.ts';
import { reconcileServiceAccounts } from '../../cronjobs/service-accounts.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { getObject, kubectlApply, listObjects } from '../support/kubectl.ts';
import { installOperator, killWebhookPods, OPERATOR_NAMESPACE, uninstallWebhook, webhookPodLogs } from '../support/operator.ts';
import { delay, waitFor } from '../support/processes.ts';
import { buildBundles, OPERATOR_ENTRY_POINTS } from '../support/webhook.ts';

interface Setup {
  cluster: TestCluster;
  config: OperatorConfig;
  /** the test's own reads and writes, straight to the API server (kubectl costs ~0.3 s a call) */
  kube: Kube;
}

let setup: Promise<Setup> | undefined;
function installed(): Promise<Setup> {
  setup ??= (async () => {
    const cluster = await testCluster();
    await buildBundles(OPERATOR_ENTRY_POINTS);
    // no registry exists here: the Jobs the webhook enqueues only mark the CRs RegistryNotFound
    const config = await installOperator(cluster, { OPERATOR_ROLLOUT_TIMEOUT: '2s' });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfig);
    const s = { cluster, config, kube: connectKube(kubeConfig) };
    await serviceAccountWebhookEffective(s);
    return s;
  })();
  return setup;
}

const namespaces: string[] = [];
async function namespace(cluster: TestCluster, prefix: string): Promise<string> {
  const ns = await cluster.createNamespace(prefix);
  namespaces.push(ns);
  return ns;
}

const pullSecret = (name: string, serviceAccounts: string[], registry = 'registry') => ({
  apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name }, spec: { registryRef: { name: registry }, serviceAccounts },
});
const serviceAccount = (name: string, entries: string[] = []) => ({
  apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name }, ...(entries.length ? { imagePullSecrets: entries.map((e) => ({ name: e })) } : {}),
});

async function apply(s: Setup, objects: object | object[], ns: string): Promise<void> {
  const result = await kubectlApply(s.cluster, objects, ns);
  assert.is(result.code, 0, result.stderr);
}

function readAccount(s: Setup, ns: string, name: string): Promise<ServiceAccount | undefined> {
  return s.kube.read<ServiceAccount>({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: ns, name });
}
const entries = (account: ServiceAccount | undefined) => (account?.imagePullSecrets ?? []).map((e) => e.name);

/** Polls (every 50 ms) until the account's imagePullSecrets are `wanted` (any order); the time it took. */
async function entriesBecome(s: Setup, ns: string, name: string, wanted: string[], timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  const sorted = [...wanted].sort();
  let last: string[] = [];
  for (;;) {
    last = entries(await readAccount(s, ns, name)).map(String).sort();
    if (JSON.stringify(last) === JSON.stringify(sorted)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.unreachable(`${ns}/${name}: imagePullSecrets ${JSON.stringify(last)}, wanted ${JSON.stringify(sorted)} within ${timeoutMs} ms`);
    await delay(50);
  }
}

/** The API server picks webhook configurations up asynchronously: wait until the ServiceAccount webhook answers. */
async function serviceAccountWebhookEffective(s: Setup): Promise<void> {
  const ns = await namespace(s.cluster, 'sa-probe');
  await apply(s, pullSecret('probe', ['*']), ns);
  await waitFor('the API server to call the ServiceAccount webhook', async () => {
    const dry = await s.cluster.kubectl(['create', 'serviceaccount', 'probe', '--dry-run=server', '-o', 'json'], { namespace: ns });
    return dry.code === 0 && dry.stdout.includes('probe-image-pull-secret');
  }, 30_000);
}

/** A Pod that nothing runs (a scheduling gate keeps it from the scheduler), as the API server stores it. */
async function podFor(s: Setup, ns: string, name: string, serviceAccountName: string): Promise<{ spec: { imagePullSecrets?: { name: string }[] } }> {
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { serviceAccountName, automountServiceAccountToken: false, schedulingGates: [{ name: 'image-registry-operator.test/never' }], containers: [{ name: 'app', image: `registry.${ns}.svc.example.org/${ns}/app:v1` }] },
  };
  const created = await s.cluster.kubectl(['create', '-f', '-', '-o', 'json'], { namespace: ns, input: JSON.stringify(pod) });
  assert.is(created.code, 0, created.stderr);
  return JSON.parse(created.stdout);
}

/** Waits for every reconcile Job enqueued so far for the registry (default: `registry`) of the namespace; their logs. */
async function reconcileJobsDone(s: Setup, ns: string, registry = 'registry'): Promise<string> {
  const jobs = await listObjects(s.cluster, 'jobs', OPERATOR_NAMESPACE, { selector: `${REGISTRY_LABEL}=${registryLabelValue({ namespace: ns, name: registry })}` });
  assert.ok(jobs.length > 0, `a reconcile Job for ${ns}/${registry}`);
  let logs = '';
  for (const job of jobs) {
    const run = await waitForJob(s.cluster, OPERATOR_NAMESPACE, job.metadata.name, 90_000);
    assert.is(run.result, 'Complete', run.logs);
    logs += run.logs;
  }
  return logs;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;

// ── the webhook: accounts created after the CR ───────────────────────────────────────────────────

test('a ServiceAccount created right after the CR carries the entry in its stored object (webhook); its Pods get it from the API server', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-webhook');
  await apply(s, pullSecret('app', ['builder']), ns);
  // at once: the reconcile Job of this CR cannot have started yet (it waits out its coalescing window)
  const created = await s.cluster.kubectl(['create', '-f', '-', '-o', 'json'], { namespace: ns, input: JSON.stringify(serviceAccount('builder', ['mine'])) });
  assert.is(created.code, 0, created.stderr);
  const stored = JSON.parse(created.stdout) as ServiceAccount;
  assert.equal(entries(stored), ['mine', 'app-image-pull-secret'], 'the create answer is the stored object');
  assert.is(stored.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'app-image-pull-secret', 'recorded as ours');
  assert.is(stored.metadata?.labels?.[ADDED_PULL_SECRETS_LABEL], 'true');
  const log = await webhookPodLogs(s.cluster);
  assert.ok(log.split('\n').some((line) => line.includes('"webhook":"serviceaccount"') && line.includes('"result":"patched"') && line.includes(`"namespace":"${ns}"`)), 'the webhook patched it');
  // the CR's own Job then finds nothing left to do
  assert.not.match(await reconcileJobsDone(s, ns), `"serviceAccount":"${ns}/builder"`);
  assert.equal(entries(await readAccount(s, ns, 'builder')), ['mine', 'app-image-pull-secret']);
  // an account the CR does not list is left alone
  const other = await s.cluster.kubectl(['create', 'serviceaccount', 'other', '-o', 'json'], { namespace: ns });
  assert.equal(entries(JSON.parse(other.stdout)), []);
  // the ServiceAccount admission plugin copies the account's imagePullSecrets into a Pod without any
  const pod = await podFor(s, ns, 'app', 'builder');
  assert.equal(pod.spec.imagePullSecrets, [{ name: 'mine' }, { name: 'app-image-pull-secret' }]);
  const plain = await podFor(s, ns, 'plain', 'other');
  assert.is(plain.spec.imagePullSecrets, undefined);
});

test('"*": every account of the namespace, those there before (Job) and those created later (webhook)', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-star');
  await apply(s, pullSecret('all', ['*']), ns);
  // `default` exists since the namespace was made: the Job adds it
  await entriesBecome(s, ns, 'default', ['all-image-pull-secret']);
  await delay(1500);
  const later = await s.cluster.kubectl(['create', 'serviceaccount', 'later', '-o', 'json'], { namespace: ns });
  assert.equal(entries(JSON.parse(later.stdout)), ['all-image-pull-secret']);
  const pod = await podFor(s, ns, 'later', 'later');
  assert.equal(pod.spec.imagePullSecrets, [{ name: 'all-image-pull-secret' }]);
});

// ── the Jobs: accounts that existed before, removal ──────────────────────────────────────────────

test('accounts that existed before the CR get the entry from the Job; a list change and the CR deletion remove only ours', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-job');
  // `b` already names the CR's Secret itself: that entry is the user's, never recorded, never removed
  await apply(s, [serviceAccount('a', ['mine']), serviceAccount('b', ['app-image-pull-secret']), serviceAccount('c')], ns);
  await apply(s, pullSecret('app', ['a', 'b', 'c']), ns);
  await entriesBecome(s, ns, 'a', ['mine', 'app-image-pull-secret']);
  await entriesBecome(s, ns, 'c', ['app-image-pull-secret']);
  assert.equal(entries(await readAccount(s, ns, 'b')), ['app-image-pull-secret'], 'no second copy');
  assert.is((await readAccount(s, ns, 'b'))?.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], undefined, 'not recorded: it was there before');
  const a = await readAccount(s, ns, 'a');
  assert.is(a?.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'app-image-pull-secret');
  assert.match(await reconcileJobsDone(s, ns), `"serviceAccount":"${ns}/a"`);

  // a leaves the list: its entry goes, `mine` stays
  await apply(s, pullSecret('app', ['b', 'c']), ns);
  await entriesBecome(s, ns, 'a', ['mine']);
  const cleared = await readAccount(s, ns, 'a');
  assert.is(cleared?.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], undefined, 'record gone');
  assert.is(cleared?.metadata?.labels?.[ADDED_PULL_SECRETS_LABEL], undefined, 'label gone');
  assert.equal(entries(await readAccount(s, ns, 'c')), ['app-image-pull-secret']);

  // the CR goes: c loses ours; b keeps the entry it had before
  const deleted = await s.cluster.kubectl(['delete', 'imagepullsecret', 'app'], { namespace: ns });
  assert.is(deleted.code, 0, deleted.stderr);
  await entriesBecome(s, ns, 'c', []);
  assert.equal(entries(await readAccount(s, ns, 'b')), ['app-image-pull-secret']);
  assert.equal(entries(await readAccount(s, ns, 'a')), ['mine']);
});

test('window from `kubectl apply` of the CR to the ServiceAccount carrying the entry (10 runs)', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-window');
  const accounts = Array.from({ length: 10 }, (_, i) => `app-${i}`);
  await apply(s, accounts.map((name) => serviceAccount(name)), ns);
  const windows: number[] = [];
  for (const name of accounts) {
    const started = Date.now();
    await apply(s, pullSecret(name, [name]), ns);
    await entriesBecome(s, ns, name, [`${name}-image-pull-secret`]);
    windows.push(Date.now() - started);
  }
  const sorted = [...windows].sort((x, y) => x - y);
  const [p50, p95] = [percentile(sorted, 50), percentile(sorted, 95)];
  console.log(`   apply → ServiceAccount entry: p50 ${(p50 / 1000).toFixed(2)} s, p95 ${(p95 / 1000).toFixed(2)} s (${sorted.map((ms) => (ms / 1000).toFixed(2)).join(' ')})`);
  // the reconcile Job reads after its 1 s window and 1 s grace; well within a minute
  assert.ok(p50 >= 1000, `p50 ${p50} ms: not before the coalescing window ended`);
  assert.ok(p95 < 30_000, `p95 ${p95} ms`);
});

// ── conflicts ────────────────────────────────────────────────────────────────────────────────────

test('two ImagePullSecrets (two registries, two Jobs at once) and a user patching the same account meanwhile lose no entry', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-race');
  await apply(s, serviceAccount('shared', ['user-0']), ns);
  // one apply, two registries: two reconcile Jobs for the same window, started together
  await apply(s, [pullSecret('one', ['shared'], 'registry-one'), pullSecret('two', ['shared'], 'registry-two')], ns);
  const patches: Promise<void>[] = [];
  for (let i = 1; i <= 12; i++) {
    patches.push(s.cluster.kubectl(['patch', 'serviceaccount', 'shared', '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/imagePullSecrets/-', value: { name: `user-${i}` } }])], { namespace: ns })
      .then((result) => assert.is(result.code, 0, result.stderr)));
    await delay(250);
  }
  await Promise.all(patches);
  const users = Array.from({ length: 13 }, (_, i) => `user-${i}`);
  await entriesBecome(s, ns, 'shared', [...users, 'one-image-pull-secret', 'two-image-pull-secret']);
  assert.is((await readAccount(s, ns, 'shared'))?.metadata?.annotations?.[ADDED_PULL_SECRETS_ANNOTATION], 'one-image-pull-secret,two-image-pull-secret');
  // one CR goes: only its entry
  assert.is((await s.cluster.kubectl(['delete', 'imagepullsecret', 'one'], { namespace: ns })).code, 0);
  await entriesBecome(s, ns, 'shared', [...users, 'two-image-pull-secret']);
});

test('a write that lost the race with a user (failed resourceVersion test) reads again and keeps the user’s entry', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-conflict');
  await apply(s, pullSecret('app', ['builder']), ns);
  await reconcileJobsDone(s, ns);
  // the webhook adds the entry; the user takes it out again (the record stays): the next run puts it back
  await apply(s, serviceAccount('builder', ['user-0']), ns);
  const removed = await s.cluster.kubectl(['patch', 'serviceaccount', 'builder', '--type=json', '-p', '[{"op":"test","path":"/imagePullSecrets/1/name","value":"app-image-pull-secret"},{"op":"remove","path":"/imagePullSecrets/1"}]'], { namespace: ns });
  assert.is(removed.code, 0, removed.stderr);
  assert.equal(entries(await readAccount(s, ns, 'builder')), ['user-0']);
  const cr = { ...pullSecret('app', ['builder']), metadata: { name: 'app', namespace: ns } };
  // between the run's read of the account and its patch, a user patches the account
  const outcomes: string[] = [];
  let interfered = false;
  const kube: Kube = {
    ...s.kube,
    list: async <T extends object>(...args: Parameters<Kube['list']>) => {
      const items = await s.kube.list<T>(...args);
      if (args[1] === 'ImagePullSecret' && !interfered) {
        interfered = true;
        const user = await s.cluster.kubectl(['patch', 'serviceaccount', 'builder', '--type=json', '-p', '[{"op":"add","path":"/imagePullSecrets/-","value":{"name":"user-1"}}]'], { namespace: ns });
        assert.is(user.code, 0, user.stderr);
      }
      return items;
    },
    jsonPatch: async <T extends object>(...args: Parameters<Kube['jsonPatch']>) => {
      try {
        const patched = await s.kube.jsonPatch<T>(...args);
        outcomes.push('patched');
        return patched;
      } catch (error) {
        // a failed test op: 422, with nothing in the answer to say which operation failed
        outcomes.push(error instanceof KubeError && error.code === 422 ? 'stale' : `error: ${(error as Error).message}`);
        throw error;
      }
    },
  };
  const result = await reconcileServiceAccounts(kube, [cr as never]);
  assert.equal(outcomes, ['stale', 'patched'], 'the stale patch was refused, the retry applied');
  assert.is(result.changed, 1);
  const account = await readAccount(s, ns, 'builder');
  assert.equal(entries(account), ['user-0', 'user-1', 'app-image-pull-secret']);
});

// ── the webhook down ─────────────────────────────────────────────────────────────────────────────

test('with no webhook pod a ServiceAccount is still created at once (failurePolicy Ignore); the resync Job adds the entry', async () => {
  const s = await installed();
  const ns = await namespace(s.cluster, 'sa-down');
  await apply(s, pullSecret('all', ['*']), ns);
  await entriesBecome(s, ns, 'default', ['all-image-pull-secret']);
  await killWebhookPods(s.cluster);
  const started = Date.now();
  const created = await s.cluster.kubectl(['create', 'serviceaccount', 'while-down', '-o', 'json'], { namespace: ns });
  const seconds = (Date.now() - started) / 1000;
  assert.is(created.code, 0, created.stderr);
  assert.equal(entries(JSON.parse(created.stdout)), [], 'no webhook, no entry yet');
  assert.ok(seconds < 4, `created in ${seconds.toFixed(1)} s (timeoutSeconds: 3)`);
  console.log(`   ServiceAccount created without the webhook in ${seconds.toFixed(2)} s`);
  const job = await s.cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-resync', 'resync-now'], { namespace: OPERATOR_NAMESPACE });
  assert.is(job.code, 0, job.stderr);
  const run = await waitForJob(s.cluster, OPERATOR_NAMESPACE, 'resync-now', 90_000);
  assert.is(run.result, 'Complete', run.logs);
  assert.equal(entries(await readAccount(s, ns, 'while-down')), ['all-image-pull-secret'], 'repaired by the resync');
});

test('clean up: the webhook is removed, the namespaces deleted', async () => {
  const { cluster, config } = await installed();
  await uninstallWebhook(cluster);
  const left = await cluster.kubectl(['get', 'mutatingwebhookconfigurations', '-o', 'name']);
  assert.not.match(left.stdout, 'image-registry-operator');
  await cluster.kubectl(['delete', 'jobs', '-l', 'app.kubernetes.io/component=reconcile', '--wait=false'], { namespace: config.namespace });
  await cluster.kubectl(['delete', 'job', 'resync-now', '--ignore-not-found', '--wait=false'], { namespace: config.namespace });
  for (const ns of namespaces) {
    const deleted = await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
    assert.is(deleted.code, 0, deleted.stderr);
  }
  assert.ok(await getObject(cluster, 'serviceaccount', 'image-registry-operator-jobs', OPERATOR_NAMESPACE));
});

test.run();
