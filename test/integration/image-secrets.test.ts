// Push/pull secrets, accounts and rotation against the real control plane. Jobs run through the real
// Job controller and the real node from their own manifests, with the Jobs' ServiceAccount
// token (our RBAC, for real). The registry here has 0 replicas: no pod can confirm credentials, so
// Secrets are written and the CRs report RegistryNotReady (test/e2e covers confirmed credentials).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { compareSync } from 'bcryptjs';
import { load } from 'js-yaml';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { applyObjects, getObject, listObjects } from '../support/kubectl.ts';
import { waitFor } from '../support/processes.ts';
import { waitForJob } from '../support/jobs.ts';
import { installOperatorBase, OPERATOR_NAMESPACE } from '../support/operator.ts';
import { run } from '../support/processes.ts';
import { desiredAccount } from '../../functions/accounts.ts';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { connectKube } from '../../cronjobs/kube.ts';
import { reconcileRegistry } from '../../cronjobs/reconcile-registry.ts';

type Obj = Record<string, any>;
const root = fileURLToPath(new URL('../..', import.meta.url));
const config = operatorConfigFromEnv({ OPERATOR_ROLLOUT_TIMEOUT: '0s' });
const test = suite('image secrets');

interface Setup {
  cluster: TestCluster;
  ns: string;
}
let ready: Promise<Setup> | undefined;
function setup(): Promise<Setup> {
  ready ??= (async () => {
    const cluster = await testCluster();
    await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: '0s' });
    const ns = await cluster.createNamespace('secrets');
    await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'reg' }, spec: { replicas: 0 } }, ns);
    return { cluster, ns };
  })();
  return ready;
}

/** Creates the reconcile Job the webhook would create; the Job controller and the kubelet run it. */
let jobCounter = 0;
async function reconcileJob({ cluster, ns }: Setup): Promise<void> {
  const job = desiredReconcileJob({ registry: { namespace: ns, name: 'reg' }, config, windowEnd: new Date() });
  job.metadata.name = `reconcile-secrets-test-${++jobCounter}`;
  await applyObjects(cluster, job, OPERATOR_NAMESPACE);
  const finished = await waitForJob(cluster, OPERATOR_NAMESPACE, job.metadata.name, 90_000);
  assert.is(finished.result, 'Complete', finished.logs);
}

const secretData = (secret: Obj, key: string) => Buffer.from(secret.data[key], 'base64').toString('utf8');

async function authUsers(cluster: TestCluster, ns: string): Promise<Record<string, { password: string; labels: Record<string, string[]> }>> {
  const secret = await getObject(cluster, 'secret', 'reg-auth-config', ns);
  return (load(secretData(secret!, 'auth_config.yml')) as { users: Record<string, { password: string; labels: Record<string, string[]> }> }).users;
}

const pushSecret = (name: string) => ({ apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name }, spec: { registryRef: { name: 'reg' } } });
const pullSecret = (name: string) => ({ apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name }, spec: { registryRef: { name: 'reg' } } });

test('push and pull Secrets have the exact names, types and keys; auths holds only the hostname', async () => {
  const s = await setup();
  await applyObjects(s.cluster, [pushSecret('app'), pullSecret('app')], s.ns);
  await reconcileJob(s);
  const hostname = `reg.${s.ns}.svc.example.org`;
  const push = await getObject(s.cluster, 'secret', 'app-image-push-secret', s.ns);
  const pull = await getObject(s.cluster, 'secret', 'app-image-pull-secret', s.ns);
  assert.is(push?.type, 'Opaque');
  assert.is(pull?.type, 'kubernetes.io/dockerconfigjson');
  assert.equal(Object.keys(push!.data).sort(), ['ca.crt', 'config.json', 'hostname', 'password', 'username']);
  assert.equal(Object.keys(pull!.data).sort(), ['.dockerconfigjson', 'ca.crt', 'hostname', 'password', 'username']);
  for (const [secret, key] of [[push!, 'config.json'], [pull!, '.dockerconfigjson']] as const) {
    const auths = JSON.parse(secretData(secret, key)).auths;
    assert.equal(Object.keys(auths), [hostname]);
    assert.is(auths[hostname].username, secretData(secret, 'username'));
    assert.is(Buffer.from(auths[hostname].auth, 'base64').toString(), `${secretData(secret, 'username')}:${secretData(secret, 'password')}`);
    assert.is(secretData(secret, 'hostname'), hostname);
    assert.match(secretData(secret, 'ca.crt'), /BEGIN CERTIFICATE/);
  }
  assert.is(secretData(push!, 'username'), `push.${s.ns}.app.1`);
  assert.is(secretData(pull!, 'username'), `pull.${s.ns}.app.1`);
});

test('username is the account; the password verifies against its bcrypt hash; the auth config lists it', async () => {
  const s = await setup();
  const users = await authUsers(s.cluster, s.ns);
  for (const [secretName, mode] of [['app-image-push-secret', 'push'], ['app-image-pull-secret', 'pull']] as const) {
    const secret = await getObject(s.cluster, 'secret', secretName, s.ns);
    const username = secretData(secret!, 'username');
    const account = await getObject(s.cluster, 'imageregistryaccount', username, s.ns);
    assert.ok(account, `account ${username}`);
    assert.ok(compareSync(secretData(secret!, 'password'), account!.spec.password), 'password matches the account hash');
    assert.equal(account!.spec.labels, { namespace: [s.ns], name: ['app'], accessMode: [mode] });
    assert.is(users[username]?.password, account!.spec.password);
    assert.equal(users[username]?.labels.accessMode, [mode]);
  }
  const cr = await getObject(s.cluster, 'imagepushsecret', 'app', s.ns);
  assert.is(cr!.status.rotation, 1);
  assert.equal(cr!.status.registry, { name: 'reg', namespace: s.ns, hostname: `reg.${s.ns}.svc.example.org` });
  // no registry pod could confirm them: Ready=False until one does (the e2e tests show True)
  const condition = cr!.status.conditions.find((c: Obj) => c.type === 'Ready');
  assert.equal([condition.status, condition.reason], ['False', 'RegistryNotReady']);
  assert.match(condition.message, 'no ready pod to confirm the credentials');
});

test('a no-op reconcile does not rotate', async () => {
  const s = await setup();
  const before = await getObject(s.cluster, 'secret', 'app-image-push-secret', s.ns);
  const accounts = (await listObjects(s.cluster, 'imageregistryaccount', s.ns)).length;
  await reconcileJob(s);
  const after = await getObject(s.cluster, 'secret', 'app-image-push-secret', s.ns);
  assert.is(after!.metadata.resourceVersion, before!.metadata.resourceVersion);
  assert.is((await getObject(s.cluster, 'imagepushsecret', 'app', s.ns))!.status.rotation, 1);
  assert.is((await listObjects(s.cluster, 'imageregistryaccount', s.ns)).length, accounts);
});

test('a CR another Job is still issuing for (its account exists, its Secret not yet) is left to that Job: no second account, no status', async () => {
  const s = await setup();
  await applyObjects(s.cluster, pushSecret('pending'), s.ns);
  const cr = await getObject(s.cluster, 'imagepushsecret', 'pending', s.ns);
  // the account a reconcile Job of the neighbouring coalescing window created a moment ago; that Job
  // now waits for the registry pods to accept it before it writes the Secret
  const account = desiredAccount({ cr: cr as never, registry: { namespace: s.ns, name: 'reg' }, rotation: 1, passwordHash: '$2b$04$abcdefghijklmnopqrstuu5UQ0Jq2OUn3nTf8Jl4DX2xEqkjLrGLa', intervalSeconds: config.rotationIntervalSeconds });
  await applyObjects(s.cluster, account, s.ns);
  await reconcileJob(s);
  const owned = (await listObjects(s.cluster, 'imageregistryaccount', s.ns)).filter((a) => a.metadata.name.startsWith('push.') && a.metadata.name.includes('.pending.'));
  assert.equal(owned.map((a) => a.metadata.name), [account.metadata.name], 'no second account for the CR');
  assert.not.ok(await getObject(s.cluster, 'secret', 'pending-image-push-secret', s.ns), 'no Secret from this Job');
  assert.is((await getObject(s.cluster, 'imagepushsecret', 'pending', s.ns))!.status?.rotation, undefined, 'status left to the issuing Job');
  await s.cluster.kubectl(['delete', 'imagepushsecret', 'pending'], { namespace: s.ns });
});

test('forced rotation with the real `kubectl create job --from=cronjob/…` increments rotation and keeps the previous account', async () => {
  const s = await setup();
  const created = await s.cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-rotate', 'rotate-now'], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  const finished = await waitForJob(s.cluster, OPERATOR_NAMESPACE, 'rotate-now', 90_000);
  assert.is(finished.result, 'Complete', finished.logs);
  assert.equal(finished.pods[0]?.spec.containers[0].command, ['node', '/app/dist/rotate.js']);
  assert.is(finished.pods[0]?.spec.serviceAccountName, 'image-registry-operator-jobs');
  const cr = await getObject(s.cluster, 'imagepushsecret', 'app', s.ns);
  assert.is(cr!.status.rotation, 2);
  const secret = await getObject(s.cluster, 'secret', 'app-image-push-secret', s.ns);
  assert.is(secretData(secret!, 'username'), `push.${s.ns}.app.2`);
  const users = await authUsers(s.cluster, s.ns);
  assert.ok(users[`push.${s.ns}.app.1`], 'previous account still valid until its TTL');
  assert.ok(users[`push.${s.ns}.app.2`], 'new account valid');
  const events = await listObjects(s.cluster, 'events', s.ns);
  assert.ok(events.some((e) => e.reason === 'Rotated' && e.involvedObject.name === 'app'), 'Rotated event');
});

test('a user-created static account is honoured and left alone', async () => {
  const s = await setup();
  const hash = '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq';
  await applyObjects(s.cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: 'ci-bot' }, spec: { password: hash, labels: { accessMode: ['push'] } } }, s.ns);
  await reconcileJob(s);
  const users = await authUsers(s.cluster, s.ns);
  assert.equal(users['ci-bot'], { password: hash, labels: { accessMode: ['push'] } });
});

test('with the clock past the TTL (injected), expired accounts disappear and credentials are rotated', async () => {
  const s = await setup();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(s.cluster.kubeconfig);
  const later = new Date(Date.now() + 2 * config.rotationIntervalSeconds * 1000 + 60_000);
  await reconcileRegistry({ namespace: s.ns, name: 'reg' }, { kube: connectKube(kubeConfig), config, now: () => later, rolloutTimeoutMs: 0, credentialsTimeoutMs: 10_000 });
  const names = (await listObjects(s.cluster, 'imageregistryaccount', s.ns)).map((a) => a.metadata.name);
  assert.not.ok(names.includes(`push.${s.ns}.app.1`), 'rotation 1 expired and deleted');
  assert.not.ok(names.includes(`push.${s.ns}.app.2`), 'rotation 2 expired and deleted');
  const current = secretData((await getObject(s.cluster, 'secret', 'app-image-push-secret', s.ns))!, 'username');
  assert.is(current, `push.${s.ns}.app.3`, 'a fresh account replaced them');
  assert.ok(names.includes(current), 'the Secret names a live account');
  assert.ok(names.includes('ci-bot'), 'the static account is never deleted');
  const users = await authUsers(s.cluster, s.ns);
  assert.not.ok(users[`push.${s.ns}.app.1`]);
});

test('deleting the CR revokes its accounts; the garbage collector deletes its Secret', async () => {
  const s = await setup();
  const deleted = await s.cluster.kubectl(['delete', 'imagepullsecret', 'app'], { namespace: s.ns });
  assert.is(deleted.code, 0, deleted.stderr);
  await waitFor('the garbage collector to delete app-image-pull-secret', async () => (await getObject(s.cluster, 'secret', 'app-image-pull-secret', s.ns)) === undefined, 30_000);
  await reconcileJob(s);
  const accounts = await listObjects(s.cluster, 'imageregistryaccount', s.ns);
  assert.not.ok(accounts.some((a) => a.spec.labels?.accessMode?.[0] === 'pull' && a.spec.labels?.name?.[0] === 'app'), 'pull accounts of app revoked');
  assert.ok(accounts.some((a) => a.metadata.name.startsWith(`push.${s.ns}.app.`)), 'the push CR keeps its account');
  assert.not.ok(Object.keys(await authUsers(s.cluster, s.ns)).some((u) => u.startsWith(`pull.${s.ns}.app.`)));
});

test('an auth config over the 1 MiB Secret limit: clear error and Warning Event, no credentials handed out, no account left behind', async () => {
  const s = await setup();
  const ns = await s.cluster.createNamespace('oversize');
  await applyObjects(s.cluster, [{ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'reg' }, spec: { replicas: 0 } }, pushSecret('app')], ns);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(s.cluster.kubeconfig);
  const reconcile = (forcedBefore?: Date) =>
    reconcileRegistry({ namespace: ns, name: 'reg' }, { kube: connectKube(kubeConfig), config, now: () => new Date(), rolloutTimeoutMs: 0, credentialsTimeoutMs: 10_000, ...(forcedBefore ? { forcedBefore } : {}) });
  await reconcile();
  const before = await getObject(s.cluster, 'secret', 'app-image-push-secret', ns);
  assert.is(secretData(before!, 'username'), `push.${ns}.app.1`);
  // 5 static accounts with the most labels the schema allows (~260 KB each) push the config past 1 MiB
  const bulky = Object.fromEntries(Array.from({ length: 32 }, (_, l) => [`label-${l}`, Array.from({ length: 32 }, (_, v) => `${l}-${v}-`.padEnd(253, 'x'))]));
  const hash = '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq';
  for (let i = 0; i < 5; i++) {
    const account = { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: `bulky-${i}` }, spec: { password: hash, labels: bulky } };
    const created = await s.cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify(account), namespace: ns });
    assert.is(created.code, 0, created.stderr);
  }
  const error = await reconcile(new Date()).then(() => undefined, (e: Error) => e);
  assert.instance(error, Error, 'the reconcile fails');
  assert.match(error!.message, /docker_auth config of \d+ accounts is \d+ bytes, over the 1048576-byte Secret limit/);
  assert.match(error!.message, /more registries/);
  // the Secret still holds the credentials the (unchanged) auth config accepts
  const after = await getObject(s.cluster, 'secret', 'app-image-push-secret', ns);
  assert.is(secretData(after!, 'username'), `push.${ns}.app.1`);
  const users = await authUsers(s.cluster, ns);
  assert.ok(compareSync(secretData(after!, 'password'), users[`push.${ns}.app.1`]!.password));
  assert.not.ok(Object.keys(users).some((u) => u.startsWith('bulky-')));
  // the forced rotation's new account was never handed out: deleted again
  const names = (await listObjects(s.cluster, 'imageregistryaccount', ns)).map((a) => a.metadata.name);
  assert.equal(names.filter((n: string) => n.startsWith('push.')), [`push.${ns}.app.1`]);
  const events = await listObjects(s.cluster, 'events', ns);
  const warning = events.find((e) => e.reason === 'AuthConfigTooLarge' && e.involvedObject.kind === 'ImageRegistry');
  assert.ok(warning, 'a Warning Event on the registry');
  assert.is(warning!.type, 'Warning');
});

test('an ACL stored before the webhook checked it never reaches docker_auth: field named, Warning Event, no account created', async () => {
  const s = await setup();
  const ns = await s.cluster.createNamespace('bad-acl');
  const acl = [{ match: { account: '/^[a-\\d]+$/' }, actions: ['pull'] }];
  await applyObjects(s.cluster, [{ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'reg' }, spec: { auth: { acl } } }, pushSecret('app')], ns);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(s.cluster.kubeconfig);
  const error = await reconcileRegistry({ namespace: ns, name: 'reg' }, { kube: connectKube(kubeConfig), config, now: () => new Date(), rolloutTimeoutMs: 0, credentialsTimeoutMs: 10_000 }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.instance(error, Error, 'the reconcile fails');
  assert.match(error!.message, /spec\.auth\.acl\[0\]\.match\.account: invalid regular expression: invalid escape sequence/);
  assert.is(await getObject(s.cluster, 'secret', 'reg-auth-config', ns), undefined, 'no auth config written');
  assert.equal(await listObjects(s.cluster, 'imageregistryaccount', ns), [], 'no account created');
  const warning = (await listObjects(s.cluster, 'events', ns)).find((e) => e.reason === 'AclInvalid' && e.involvedObject.kind === 'ImageRegistry');
  assert.ok(warning, 'a Warning Event on the registry');
  assert.match(warning!.message, /spec\.auth\.acl\[0\]\.match\.account/);
});

test('a push secret for a registry that does not exist reports RegistryNotFound', async () => {
  const s = await setup();
  await applyObjects(s.cluster, { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'lost' }, spec: { registryRef: { name: 'nowhere' } } }, s.ns);
  const job = desiredReconcileJob({ registry: { namespace: s.ns, name: 'nowhere' }, config, windowEnd: new Date() });
  job.metadata.name = 'reconcile-nowhere-test';
  await applyObjects(s.cluster, job, OPERATOR_NAMESPACE);
  assert.is((await waitForJob(s.cluster, OPERATOR_NAMESPACE, job.metadata.name, 90_000)).result, 'Complete');
  const condition = (await getObject(s.cluster, 'imagepushsecret', 'lost', s.ns))!.status.conditions.find((c: Obj) => c.type === 'Ready');
  assert.equal([condition.status, condition.reason], ['False', 'RegistryNotFound']);
  assert.match(condition.message, `${s.ns}/nowhere`);
});

/**
 * Secrets of live push/pull CRs whose credentials the auth config would refuse (unknown username or
 * bcrypt mismatch). A deleted CR's Secret is left out: the garbage collector removes it through its
 * ownerReference (shortly after), and its credentials are meant to be revoked.
 */
async function secretsMissingFromAuthConfig(s: Setup, ns: string): Promise<string[]> {
  const users = await authUsers(s.cluster, ns);
  const live = new Set([...(await listObjects(s.cluster, 'imagepushsecret', ns)), ...(await listObjects(s.cluster, 'imagepullsecret', ns))].map((cr) => cr.metadata.uid));
  const secrets = (await listObjects(s.cluster, 'secret', ns))
    .filter((x) => x.metadata.name.endsWith('-image-push-secret') || x.metadata.name.endsWith('-image-pull-secret'))
    .filter((x) => live.has(x.metadata.ownerReferences?.[0]?.uid));
  return secrets.filter((secret) => {
    const user = users[secretData(secret, 'username')];
    return !user || !compareSync(secretData(secret, 'password'), user.password);
  }).map((secret) => secret.metadata.name);
}

test('concurrency: 4 reconcile processes at once on one registry with 40 push/pull CRs lose no account', async () => {
  const s = await setup();
  const crs = Array.from({ length: 20 }, (_, i) => [pushSecret(`c${i}`), pullSecret(`c${i}`)]).flat();
  await applyObjects(s.cluster, crs, s.ns);
  const env = { PATH: process.env.PATH, KUBECONFIG: s.cluster.kubeconfig, OPERATOR_ROLLOUT_TIMEOUT: '0s' };
  const runs = await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, [`${root}dist/reconcile.js`, '--registry', `${s.ns}/reg`], { env })));
  for (const r of runs) assert.is(r.code, 0, r.stdout + r.stderr);
  const secrets = (await listObjects(s.cluster, 'secret', s.ns)).filter((x) => /^c\d+-image-(push|pull)-secret$/.test(x.metadata.name));
  assert.is(secrets.length, 40);
  assert.equal(await secretsMissingFromAuthConfig(s, s.ns), [], 'every Secret works against the auth config');
});

test('faults: 20 rotations killed at random points, each followed by a normal run, converge with nothing lost or orphaned', async () => {
  const s = await setup();
  const env = { PATH: process.env.PATH, KUBECONFIG: s.cluster.kubeconfig, OPERATOR_ROLLOUT_TIMEOUT: '0s' };
  for (let i = 0; i < 20; i++) {
    if (i % 5 === 4) await s.cluster.kubectl(['delete', 'imagepushsecret', `c${i}`], { namespace: s.ns }); // revocations mid-way
    const killAfterMs = Math.floor(Math.random() * 1500);
    await run(process.execPath, [`${root}dist/rotate.js`, '--registry', `${s.ns}/reg`], { env, timeoutMs: killAfterMs });
    const normal = await run(process.execPath, [`${root}dist/reconcile.js`, '--registry', `${s.ns}/reg`], { env });
    assert.is(normal.code, 0, normal.stdout + normal.stderr);
    assert.equal(await secretsMissingFromAuthConfig(s, s.ns), [], `after kill #${i + 1} at ${killAfterMs} ms`);
  }
  const liveCrs = new Set([...(await listObjects(s.cluster, 'imagepushsecret', s.ns)).map((c) => `push/${c.metadata.name}`), ...(await listObjects(s.cluster, 'imagepullsecret', s.ns)).map((c) => `pull/${c.metadata.name}`)]);
  const orphans = (await listObjects(s.cluster, 'imageregistryaccount', s.ns))
    .filter((a) => a.spec.labels?.accessMode)
    .filter((a) => a.metadata.labels?.['app.kubernetes.io/managed-by'] && !liveCrs.has(`${a.spec.labels.accessMode[0]}/${a.spec.labels.name[0]}`));
  assert.equal(orphans.map((a) => a.metadata.name), [], 'no account outlives its CR');
});

test('clean up: deleting the namespace removes everything in it', async () => {
  const s = await setup();
  const deleted = await s.cluster.kubectl(['delete', 'namespace', s.ns, '--wait=false']);
  assert.is(deleted.code, 0, deleted.stderr);
});

test.run();
