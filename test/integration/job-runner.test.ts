// The Job stand-in (test/support/job-runner.ts) on the real API server: it runs a Job's own
// command/args/env with the credentials of the Job's ServiceAccount and records the result on the
// Job's status in a way the API server accepts and `kubectl wait` understands.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { startJobRunner, type JobRunner } from '../support/job-runner.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Setup {
  cluster: TestCluster;
  ns: string;
  runner: JobRunner;
}

let setup: Promise<Setup> | undefined;
function ready(): Promise<Setup> {
  setup ??= (async () => {
    const cluster = await testCluster();
    const ns = await cluster.createNamespace('job-runner');
    const objects = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader' } },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
      },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { GREETING: 'hello', TARGET: 'world' } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'credentials' }, stringData: { token: 's3cret' } },
    ];
    await create(cluster, ns, objects);
    const runner = startJobRunner({ kubeconfig: cluster.kubeconfig, namespace: ns, repoRoot: root, env: { IRO_EXTRA: 'from-runner' } });
    return { cluster, ns, runner };
  })();
  return setup;
}

async function create(cluster: TestCluster, ns: string, objects: unknown[]): Promise<void> {
  const result = await cluster.kubectl(['create', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n'), namespace: ns });
  if (result.code !== 0) throw new Error(result.stderr);
}

function job(name: string, container: Record<string, unknown>, spec: Record<string, unknown> = {}, serviceAccountName = 'reader') {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: { backoffLimit: 0, ...spec, template: { spec: { serviceAccountName, restartPolicy: 'Never', containers: [{ name: 'main', image: 'image-registry-operator:0.1.0', ...container }] } } },
  };
}

async function jobStatus(cluster: TestCluster, ns: string, name: string) {
  const result = await cluster.kubectl(['get', 'job', name, '-o', 'json'], { namespace: ns });
  assert.is(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { status: Record<string, unknown> & { conditions?: { type: string; reason?: string; message?: string }[] } }).status;
}

test('runs the Job’s own command, args and env; `kubectl wait` sees it Complete', async () => {
  const { cluster, ns, runner } = await ready();
  const script = 'console.log(JSON.stringify({ argv: process.argv.slice(1), env: process.env }))';
  await create(cluster, ns, [job('env', {
    command: ['node', '-e', script],
    args: ['$(GREETING)-$(TARGET)', '/app/package.json', '$$(GREETING)'],
    envFrom: [{ configMapRef: { name: 'settings' } }, { prefix: 'OPT_', configMapRef: { name: 'absent', optional: true } }],
    env: [
      { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'credentials', key: 'token' } } },
      { name: 'COMBINED', value: '$(GREETING) $(TOKEN) $(UNDEFINED)' },
      { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
  })]);
  const waited = await cluster.kubectl(['wait', '--for=condition=Complete', '--timeout=60s', 'job/env'], { namespace: ns });
  assert.is(waited.code, 0, waited.stderr + runner.logs('env'));
  const run = await runner.waitForJob('env');
  const output = JSON.parse(run.logs()) as { argv: string[]; env: Record<string, string> };
  assert.equal(output.argv, ['hello-world', join(root, 'package.json'), '$(GREETING)']);
  assert.equal(run.containerArgv, ['node', '-e', script, 'hello-world', '/app/package.json', '$(GREETING)']);
  assert.is(run.argv[0], process.execPath);
  assert.is(output.env.GREETING, 'hello');
  assert.is(output.env.TOKEN, 's3cret');
  assert.is(output.env.COMBINED, 'hello s3cret $(UNDEFINED)');
  assert.is(output.env.NAMESPACE, ns);
  assert.is(output.env.IRO_EXTRA, 'from-runner');
  assert.ok(output.env.KUBECONFIG, 'a kubeconfig is passed');
  assert.not.ok(Object.keys(output.env).some((key) => key.startsWith('OPT_')), 'the optional missing ConfigMap adds nothing');
  const status = await jobStatus(cluster, ns, 'env');
  assert.is(status.succeeded, 1);
  assert.is(status.active ?? 0, 0, 'no active pod left (0 is omitted)');
  assert.ok(status.startTime && status.completionTime);
  assert.equal(status.conditions?.map((c) => c.type), ['SuccessCriteriaMet', 'Complete']);
});

test('the process has the credentials of the Job’s ServiceAccount and nothing more', async () => {
  const { cluster, ns, runner } = await ready();
  const kubectl = join(cluster.assetsDir, 'kubectl');
  await create(cluster, ns, [
    job('whoami', { command: [kubectl, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'] }),
    job('can-get-configmap', { command: [kubectl, 'get', 'configmap', 'settings', '-o', 'name'] }),
    job('cannot-list-secrets', { command: [kubectl, 'get', 'secrets'] }),
  ]);
  await runner.waitIdle(60_000);
  assert.is(runner.logs('whoami'), `system:serviceaccount:${ns}:reader`);
  assert.is(runner.run('can-get-configmap')?.result, 'Complete', runner.logs('can-get-configmap'));
  assert.is(runner.logs('can-get-configmap').trim(), 'configmap/settings');
  const denied = runner.run('cannot-list-secrets');
  assert.is(denied?.result, 'Failed');
  assert.match(denied?.logs() ?? '', /forbidden: User "system:serviceaccount:[^"]+:reader" cannot list resource "secrets"/);
});

test('a failing Job is retried backoffLimit times, then recorded Failed (FailureTarget → Failed)', async () => {
  const { cluster, ns, runner } = await ready();
  await create(cluster, ns, [job('fails', { command: ['node', '-e', 'console.error("attempt"); process.exit(3)'] }, { backoffLimit: 2 })]);
  const waited = await cluster.kubectl(['wait', '--for=condition=Failed', '--timeout=60s', 'job/fails'], { namespace: ns });
  assert.is(waited.code, 0, waited.stderr);
  const run = await runner.waitForJob('fails');
  assert.is(run.attempts.length, 3);
  assert.equal(run.attempts.map((a) => a.exitCode), [3, 3, 3]);
  const status = await jobStatus(cluster, ns, 'fails');
  assert.is(status.failed, 3);
  assert.equal(status.conditions?.map((c) => `${c.type}:${c.reason}`), ['FailureTarget:BackoffLimitExceeded', 'Failed:BackoffLimitExceeded']);
});

test('activeDeadlineSeconds kills the process and fails the Job with DeadlineExceeded', async () => {
  const { cluster, ns, runner } = await ready();
  const started = Date.now();
  await create(cluster, ns, [job('slow', { command: ['node', '-e', 'setTimeout(() => {}, 60000)'] }, { activeDeadlineSeconds: 2, backoffLimit: 3 })]);
  const run = await runner.waitForJob('slow', 30_000);
  assert.ok(Date.now() - started < 15_000, 'killed at the deadline, not after the sleep');
  assert.is(run.attempts.length, 1, 'no retry after the deadline');
  assert.is(run.attempts[0]?.signal, 'SIGTERM');
  const status = await jobStatus(cluster, ns, 'slow');
  assert.equal(status.conditions?.map((c) => `${c.type}:${c.reason}`), ['FailureTarget:DeadlineExceeded', 'Failed:DeadlineExceeded']);
});

test('a missing ConfigMap or ServiceAccount fails the Job with a message naming it', async () => {
  const { cluster, ns, runner } = await ready();
  await create(cluster, ns, [
    job('no-config', { command: ['node', '-e', '0'], envFrom: [{ configMapRef: { name: 'nowhere' } }] }),
    job('no-account', { command: ['node', '-e', '0'] }, {}, 'ghost'),
  ]);
  await runner.waitIdle(60_000);
  assert.is(runner.run('no-config')?.reason, 'CreateContainerConfigError');
  assert.match(runner.run('no-config')?.message ?? '', 'configmap "nowhere" not found');
  assert.is(runner.run('no-account')?.result, 'Failed');
  assert.match(runner.run('no-account')?.message ?? '', /ghost/);
  const status = await jobStatus(cluster, ns, 'no-config');
  assert.ok(status.conditions?.some((c) => c.type === 'Failed' && /nowhere/.test(c.message ?? '')));
});

test('a Job created from a CronJob runs; a suspended Job waits until resumed', async () => {
  const { cluster, ns, runner } = await ready();
  await create(cluster, ns, [{
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly' },
    spec: { schedule: '0 3 * * *', jobTemplate: { spec: job('x', { command: ['node', '-e', 'console.log("from cron")'] }).spec } },
  }]);
  const created = await cluster.kubectl(['create', 'job', '--from=cronjob/nightly', 'nightly-now'], { namespace: ns });
  assert.is(created.code, 0, created.stderr);
  assert.is((await runner.waitForJob('nightly-now')).result, 'Complete');
  assert.is(runner.logs('nightly-now'), 'from cron\n');

  await create(cluster, ns, [job('suspended', { command: ['node', '-e', '0'] }, { suspend: true })]);
  await runner.waitIdle(30_000);
  assert.is(runner.run('suspended'), undefined, 'a suspended Job is not run');
  const before = runner.jobsRun;
  const resumed = await cluster.kubectl(['patch', 'job', 'suspended', '--type=merge', '-p', '{"spec":{"suspend":false}}'], { namespace: ns });
  assert.is(resumed.code, 0, resumed.stderr);
  assert.is((await runner.waitForJob('suspended')).result, 'Complete');
  assert.is(runner.jobsRun, before + 1);
});

test('stop() ends the runner', async () => {
  const { runner } = await ready();
  await runner.waitIdle();
  const names = runner.runs().map((run) => run.name);
  assert.equal([...names].sort(), ['can-get-configmap', 'cannot-list-secrets', 'env', 'fails', 'nightly-now', 'no-account', 'no-config', 'slow', 'suspended', 'whoami']);
  await runner.stop();
});

test.run();
