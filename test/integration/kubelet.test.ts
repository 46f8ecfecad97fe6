// Jobs on the real control plane: the real Job controller creates pods, the real scheduler binds
// them to the kubelet stand-in's node, which runs them from their own spec (the operator image's
// command, env, downward API, projected ServiceAccount token) and reports their status; the Job
// controller turns that into Complete/Failed, retries and deadlines; `kubectl logs` works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { createObjects, listObjects, requireObject } from '../support/kubectl.ts';
import { waitFor } from '../support/processes.ts';

interface Setup {
  cluster: TestCluster;
  ns: string;
}

type Obj = Record<string, any>;

let setup: Promise<Setup> | undefined;
function ready(): Promise<Setup> {
  setup ??= (async () => {
    const cluster = await testCluster();
    const ns = await cluster.createNamespace('kubelet');
    await createObjects(cluster, [
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
    ], ns);
    return { cluster, ns };
  })();
  return setup;
}

function job(name: string, container: Record<string, unknown>, spec: Record<string, unknown> = {}, serviceAccountName = 'reader') {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: { backoffLimit: 0, ...spec, template: { spec: { serviceAccountName, restartPolicy: 'Never', containers: [{ name: 'main', image: 'image-registry-operator:0.1.0', ...container }] } } },
  };
}

const jobPods = (cluster: TestCluster, ns: string, name: string) => listObjects(cluster, 'pods', ns, { selector: `batch.kubernetes.io/job-name=${name}` });

async function waitJob(cluster: TestCluster, ns: string, name: string, condition: 'Complete' | 'Failed', timeout = '90s'): Promise<void> {
  const waited = await cluster.kubectl(['wait', `--for=condition=${condition}`, `--timeout=${timeout}`, `job/${name}`], { namespace: ns });
  const logs = await cluster.kubectl(['logs', `job/${name}`], { namespace: ns });
  assert.is(waited.code, 0, `${waited.stderr}\n${logs.stdout}${logs.stderr}`);
}

function events(cluster: TestCluster, ns: string, name: string): Promise<Obj[]> {
  return listObjects(cluster, 'events', ns, { fieldSelector: `involvedObject.name=${name}` });
}

test('a Job’s pod runs its own command, args and env; kubectl wait and kubectl logs work', async () => {
  const { cluster, ns } = await ready();
  const script = 'console.log(JSON.stringify({ argv: process.argv.slice(1), cwd: process.cwd(), uid: process.getuid(), env: process.env }))';
  await createObjects(cluster, job('env', {
    command: ['node', '-e', script],
    args: ['$(GREETING)-$(TARGET)', '$$(GREETING)'],
    envFrom: [{ configMapRef: { name: 'settings' } }, { prefix: 'OPT_', configMapRef: { name: 'absent', optional: true } }],
    env: [
      { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'credentials', key: 'token' } } },
      { name: 'COMBINED', value: '$(GREETING) $(TOKEN) $(UNDEFINED)' },
      { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ],
  }), ns);
  await waitJob(cluster, ns, 'env', 'Complete');
  const logs = await cluster.kubectl(['logs', 'job/env'], { namespace: ns });
  assert.is(logs.code, 0, logs.stderr);
  const output = JSON.parse(logs.stdout) as { argv: string[]; cwd: string; uid: number; env: Record<string, string> };
  assert.equal(output.argv, ['hello-world', '$(GREETING)']);
  assert.is(output.cwd, '/app', "the image's WORKDIR");
  assert.is(output.uid, 65532, "the image's USER");
  assert.is(output.env.GREETING, 'hello');
  assert.is(output.env.TOKEN, 's3cret');
  assert.is(output.env.COMBINED, 'hello s3cret $(UNDEFINED)');
  assert.is(output.env.NAMESPACE, ns);
  assert.ok(output.env.KUBERNETES_SERVICE_HOST && output.env.KUBERNETES_SERVICE_PORT, 'the API server address the kubelet sets');
  assert.not.ok(Object.keys(output.env).some((key) => key.startsWith('OPT_')), 'the optional missing ConfigMap adds nothing');
  const [pod] = await jobPods(cluster, ns, 'env');
  assert.is(pod?.status.phase, 'Succeeded');
  assert.is(pod?.spec.nodeName, 'local', 'bound by the real scheduler');
  assert.is(output.env.POD_IP, pod?.status.podIP);
  assert.is(pod?.status.containerStatuses[0].state.terminated.reason, 'Completed');
  const status = (await requireObject(cluster, 'job', 'env', ns)).status;
  assert.is(status.succeeded, 1);
  assert.equal(status.conditions.map((c: Obj) => c.type).sort(), ['Complete', 'SuccessCriteriaMet']);
});

test('the pod has its ServiceAccount’s projected token (and nothing more), the cluster CA and its namespace', async () => {
  const { cluster, ns } = await ready();
  // in-cluster configuration, as client-node reads it: token, ca.crt, namespace and the env
  const script = `
    const fs = require('node:fs'), https = require('node:https');
    const dir = '/var/run/secrets/kubernetes.io/serviceaccount';
    const token = fs.readFileSync(dir + '/token', 'utf8'), ca = fs.readFileSync(dir + '/ca.crt'), ns = fs.readFileSync(dir + '/namespace', 'utf8');
    const call = (method, path, body) => new Promise((resolve, reject) => {
      const req = https.request({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT, method, path, ca,
        headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' } }, (res) => { let t = ''; res.on('data', (c) => t += c); res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(t) })); });
      req.on('error', reject); req.end(body && JSON.stringify(body));
    });
    (async () => {
      const who = await call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
      const configMap = await call('GET', '/api/v1/namespaces/' + ns + '/configmaps/settings');
      const secrets = await call('GET', '/api/v1/namespaces/' + ns + '/secrets');
      console.log(JSON.stringify({ ns, user: who.body.status.userInfo.username, pod: who.body.status.userInfo.extra['authentication.kubernetes.io/pod-name'], configMap: configMap.status, secrets: secrets.status }));
    })();`;
  await createObjects(cluster, job('whoami', { command: ['node', '-e', script] }), ns);
  await waitJob(cluster, ns, 'whoami', 'Complete');
  const output = JSON.parse((await cluster.kubectl(['logs', 'job/whoami'], { namespace: ns })).stdout) as Obj;
  const [pod] = await jobPods(cluster, ns, 'whoami');
  assert.equal(output, { ns, user: `system:serviceaccount:${ns}:reader`, pod: [pod?.metadata.name], configMap: 200, secrets: 403 });
});

test('a failing Job is retried within backoffLimit, then Failed with an Event', async () => {
  const { cluster, ns } = await ready();
  await createObjects(cluster, job('fails', { command: ['node', '-e', 'console.error("attempt"); process.exit(3)'] }, { backoffLimit: 1 }), ns);
  await waitJob(cluster, ns, 'fails', 'Failed', '120s');
  const status = (await requireObject(cluster, 'job', 'fails', ns)).status;
  assert.is(status.failed, 2, 'one try and one retry');
  assert.ok(status.conditions.some((c: Obj) => c.type === 'Failed' && c.reason === 'BackoffLimitExceeded'));
  const pods = await jobPods(cluster, ns, 'fails');
  assert.equal(pods.map((p) => p.status.containerStatuses[0].state.terminated.exitCode), [3, 3]);
  assert.ok((await events(cluster, ns, 'fails')).some((e) => e.reason === 'BackoffLimitExceeded'), 'the Job controller says why');
});

test('activeDeadlineSeconds: the controller deletes the pod, the kubelet stops it, the Job fails with DeadlineExceeded', async () => {
  const { cluster, ns } = await ready();
  const script = 'process.on("SIGTERM", () => { console.log("SIGTERM"); process.exit(143); }); setTimeout(() => {}, 120000)';
  await createObjects(cluster, job('slow', { command: ['node', '-e', script] }, { activeDeadlineSeconds: 3, backoffLimit: 3 }), ns);
  await waitJob(cluster, ns, 'slow', 'Failed', '60s');
  const status = (await requireObject(cluster, 'job', 'slow', ns)).status;
  assert.ok(status.conditions.some((c: Obj) => c.type === 'Failed' && c.reason === 'DeadlineExceeded'), JSON.stringify(status));
  await waitFor('the pod to be gone', async () => (await jobPods(cluster, ns, 'slow')).length === 0, 60_000);
});

test('a missing ConfigMap keeps the pod waiting with CreateContainerConfigError; a missing ServiceAccount is an Event', async () => {
  const { cluster, ns } = await ready();
  await createObjects(cluster, [
    job('no-config', { command: ['node', '-e', '0'], envFrom: [{ configMapRef: { name: 'nowhere' } }] }),
    job('no-account', { command: ['node', '-e', '0'] }, {}, 'ghost'),
  ], ns);
  await waitFor('the pod to report CreateContainerConfigError', async () => {
    const [pod] = await jobPods(cluster, ns, 'no-config');
    const waiting = pod?.status.containerStatuses?.[0]?.state?.waiting;
    return waiting?.reason === 'CreateContainerConfigError' && /nowhere/.test(waiting.message);
  }, 30_000);
  await waitFor('FailedCreate naming the ServiceAccount', async () => (await events(cluster, ns, 'no-account')).some((e) => e.reason === 'FailedCreate' && /ghost/.test(e.message)), 30_000);
});

test('kubectl create job --from=cronjob runs; a suspended Job waits until resumed', async () => {
  const { cluster, ns } = await ready();
  await createObjects(cluster, {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly' },
    spec: { schedule: '0 3 * * *', jobTemplate: { spec: job('x', { command: ['node', '-e', 'console.log("from cron")'] }).spec } },
  }, ns);
  const created = await cluster.kubectl(['create', 'job', '--from=cronjob/nightly', 'nightly-now'], { namespace: ns });
  assert.is(created.code, 0, created.stderr);
  await waitJob(cluster, ns, 'nightly-now', 'Complete');
  assert.is((await cluster.kubectl(['logs', 'job/nightly-now'], { namespace: ns })).stdout, 'from cron\n');

  await createObjects(cluster, job('suspended', { command: ['node', '-e', '0'] }, { suspend: true }), ns);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  assert.is((await jobPods(cluster, ns, 'suspended')).length, 0, 'a suspended Job has no pod');
  const resumed = await cluster.kubectl(['patch', 'job', 'suspended', '--type=merge', '-p', '{"spec":{"suspend":false}}'], { namespace: ns });
  assert.is(resumed.code, 0, resumed.stderr);
  await waitJob(cluster, ns, 'suspended', 'Complete');
});

test('the node is Ready and its Lease is renewed', async () => {
  const { cluster } = await ready();
  const node = await requireObject(cluster, 'node', 'local');
  assert.is(node.status.conditions.find((c: Obj) => c.type === 'Ready').status, 'True');
  assert.not.ok((node.spec.taints ?? []).length, JSON.stringify(node.spec.taints));
  const lease = await requireObject(cluster, 'lease', 'local', 'kube-node-lease');
  assert.ok(Date.now() - Date.parse(lease.spec.renewTime) < 30_000, lease.spec.renewTime);
});

test.run();
