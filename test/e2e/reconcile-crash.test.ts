// A crash at every API call: the reconcile's client (the real one, against the real API server) is
// wrapped so that the run dies right after its N-th request — every request after it fails, as
// in a process that exited — for every N of a run that issues new credentials, rotates and revokes
// at once, and of a rotation run over every registry. After each crash the invariants are checked,
// then a normal run follows and they are checked again:
//
// - every push/pull Secret of a live CR names an account the auth config holds, with its password
//   (bcrypt), and every ready registry pod accepts it (a token request by pod IP);
// - no live CR is Ready=True unless its Secret passes that check;
// - after the normal run no account of a deleted CR is left, and a further run issues nothing.
//
// With docker_auth (auth_server) present the registry runs one pod, so "a pod accepts it" is asked
// of the real docker_auth; without it the registry has no replicas and the auth config is checked.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { compareSync } from 'bcryptjs';
import { load } from 'js-yaml';
import { request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { registryHostname } from '../../functions/names.ts';
import { tokenProbePath, readyRegistryPods } from '../../functions/credential-check.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { NGINX_PORT } from '../../functions/nginx-config.ts';
import { connectKube, type Kube } from '../../cronjobs/kube.ts';
import { reconcileRegistry } from '../../cronjobs/reconcile-registry.ts';
import { runReconcile } from '../../cronjobs/run-reconcile.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { installOperatorBase } from '../support/operator.ts';
import { applyObjects, serverSide } from '../support/kubectl.ts';
import { podWithReadyContainers, runReconcileJob } from '../support/registry-e2e.ts';

type Obj = Record<string, any>;
const test = suite('reconcile crash points');
const cluster = await testCluster();
const withPods = !authServerUnavailable(cluster.assetsDir);
if (!withPods) console.log('NOTE crash points checked against the auth config only: docker_auth (auth_server) is absent, so the registry runs no pod');
const env = { OPERATOR_ROLLOUT_TIMEOUT: withPods ? '60s' : '0s', OPERATOR_CREDENTIALS_TIMEOUT: '20s' };
const config = operatorConfigFromEnv(env);
await installOperatorBase(cluster, env);
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(cluster.kubeconfig);

/** Thrown by every request after the crash point; the run stops as a dead process would. */
class Crashed extends Error {}

/** The real client; after `limit` completed requests every further request fails. */
function crashingKube(limit: number): { kube: Kube; requests: () => number } {
  const real = connectKube(kubeConfig);
  let count = 0;
  const wrap = <F extends (...args: never[]) => Promise<unknown>>(call: F) => (async (...args: Parameters<F>) => {
    if (count >= limit) throw new Crashed(`crashed after request ${limit}`);
    try {
      return await call(...args);
    } finally {
      count++;
    }
  }) as F;
  const kube: Kube = {
    read: wrap(real.read), list: wrap(real.list), listPaged: wrap(real.listPaged), apply: wrap(real.apply), applyStatus: wrap(real.applyStatus),
    create: wrap(real.create), replace: wrap(real.replace), jsonPatch: wrap(real.jsonPatch), remove: wrap(real.remove), containerLog: wrap(real.containerLog),
  };
  return { kube, requests: () => count };
}

const namespace = await cluster.createNamespace('crash');
const key = { namespace, name: 'reg' };
const hostname = registryHostname(key.name, namespace, config.dnsZone);
await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'reg' }, spec: { replicas: withPods ? 1 : 0 } }, namespace, serverSide('e2e-test'));
await runReconcileJob(cluster, namespace, 'reg', config);
if (withPods) await podWithReadyContainers(cluster, namespace, 'reg-0', ['nginx', 'registry', 'auth']);

// the test's own reads and writes go straight to the API server (kubectl would cost ~0.3 s a call)
const direct = connectKube(kubeConfig);
const KINDS: Record<string, [string, string]> = {
  secret: ['v1', 'Secret'], pod: ['v1', 'Pod'], imagepushsecret: [GROUP_VERSION, 'ImagePushSecret'],
  imagepullsecret: [GROUP_VERSION, 'ImagePullSecret'], imageregistryaccount: [GROUP_VERSION, 'ImageRegistryAccount'],
};
function list(kind: keyof typeof KINDS): Promise<Obj[]> {
  const [apiVersion, kindName] = KINDS[kind] as [string, string];
  return direct.list<Obj>(apiVersion, kindName, namespace);
}

const data = (secret: Obj, name: string) => Buffer.from(secret.data?.[name] ?? '', 'base64').toString('utf8');

function tokenAccepted(ip: string, caPem: string, username: string, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({
      host: ip, port: NGINX_PORT, servername: hostname, ca: caPem, path: tokenProbePath(hostname, username), agent: false, timeout: 5_000,
      headers: { host: hostname, authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
    }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Every violation of the invariants, as readable lines. */
async function violations(): Promise<string[]> {
  const [authSecret] = (await list('secret')).filter((s) => s.metadata.name === 'reg-auth-config');
  const users = (load(data(authSecret ?? {}, 'auth_config.yml')) as { users?: Record<string, { password: string }> } | undefined)?.users ?? {};
  const crs = [...(await list('imagepushsecret')), ...(await list('imagepullsecret'))];
  const live = new Map(crs.filter((cr) => !cr.metadata.deletionTimestamp).map((cr) => [cr.metadata.uid, cr]));
  const secrets = (await list('secret')).filter((s) => live.has(s.metadata.ownerReferences?.[0]?.uid));
  const pods = withPods ? readyRegistryPods(await list('pod')) : [];
  const problems: string[] = [];
  const working = new Set<string>();
  for (const secret of secrets) {
    const username = data(secret, 'username');
    const password = data(secret, 'password');
    const user = users[username];
    if (!user || !compareSync(password, user.password)) {
      problems.push(`Secret ${secret.metadata.name} names ${username}, which the auth config does not accept`);
      continue;
    }
    const refusing = [];
    for (const pod of pods) if (!(await tokenAccepted(pod.ip, data(secret, 'ca.crt'), username, password))) refusing.push(pod.name);
    // a pod loads a new config within the kubelet's sync; a credential still in its old config is fine
    if (refusing.length) problems.push(`Secret ${secret.metadata.name}: pod(s) ${refusing.join(', ')} refuse ${username}`);
    else working.add(secret.metadata.ownerReferences[0].uid);
  }
  for (const cr of live.values()) {
    const ready = cr.status?.conditions?.find((c: Obj) => c.type === 'Ready')?.status === 'True';
    if (ready && !working.has(cr.metadata.uid)) problems.push(`${cr.kind} ${cr.metadata.name} is Ready=True without working credentials`);
  }
  return problems;
}

async function accountsOfDeletedCrs(): Promise<string[]> {
  const live = new Set([...(await list('imagepushsecret')).map((c) => `push/${c.metadata.name}`), ...(await list('imagepullsecret')).map((c) => `pull/${c.metadata.name}`)]);
  return (await list('imageregistryaccount'))
    .filter((a) => a.metadata.labels?.['app.kubernetes.io/managed-by'] && a.spec.labels?.accessMode)
    .filter((a) => !live.has(`${a.spec.labels.accessMode[0]}/${a.spec.labels.name[0]}`))
    .map((a) => a.metadata.name);
}

const push = (name: string) => ({ apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name }, spec: { registryRef: { name: 'reg' } } });
const pull = (name: string) => ({ apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name }, spec: { registryRef: { name: 'reg' } } });
const options = (kube: Kube, forcedBefore?: Date) => ({
  kube, config, now: () => new Date(), rolloutTimeoutMs: config.rolloutTimeoutSeconds * 1000, credentialsTimeoutMs: config.credentialsTimeoutSeconds * 1000,
  ...(forcedBefore ? { forcedBefore } : {}),
});

/**
 * Crash point after crash point until a run finishes within its limit. Before each: a new CR to
 * issue for, the CR created two points earlier deleted (to revoke), and a forced rotation of the rest.
 */
async function everyCrashPoint(label: string, run: (kube: Kube, forcedBefore: Date) => Promise<unknown>): Promise<{ points: number; violations: string[] }> {
  const found: string[] = [];
  let point = 0;
  for (let limit = 1; ; limit++) {
    await direct.create({ ...(limit % 2 ? push(`${label}-${limit}`) : pull(`${label}-${limit}`)), metadata: { name: `${label}-${limit}`, namespace } });
    if (limit > 2) await direct.remove({ apiVersion: GROUP_VERSION, kind: limit % 2 ? 'ImagePushSecret' : 'ImagePullSecret', namespace, name: `${label}-${limit - 2}` });
    const crashing = crashingKube(limit);
    // whole seconds: the rotation must replace credentials issued in this very second too
    const forcedBefore = new Date(Math.ceil(Date.now() / 1000) * 1000);
    const failure = await run(crashing.kube, forcedBefore).then(() => '', (error: unknown) => (error as Error).message);
    if (failure && crashing.requests() < limit) found.push(`${label} #${limit}: the run failed before its crash point: ${failure}`);
    for (const v of await violations()) found.push(`${label} after crash #${limit}: ${v}`);
    const normal = await run(connectKube(kubeConfig), new Date(0)).then(() => '', (error: unknown) => (error as Error).message);
    if (normal) found.push(`${label} #${limit}: the normal run after the crash failed: ${normal}`);
    for (const v of await violations()) found.push(`${label} after the normal run following #${limit}: ${v}`);
    point = limit;
    if (crashing.requests() < limit) break; // this run finished before its crash point: every point is covered
  }
  return { points: point - 1, violations: found };
}

test('a reconcile that issues, rotates and revokes at once, crashed after each of its API requests, never hands out a credential a pod refuses', async () => {
  const result = await everyCrashPoint('one', (kube, forcedBefore) => reconcileRegistry(key, options(kube, forcedBefore)));
  console.log(`   reconcile: ${result.points} crash points, ${result.violations.length} violations`);
  assert.ok(result.points > 20, `covered ${result.points} crash points`);
  assert.equal(result.violations, []);
  assert.equal(await accountsOfDeletedCrs(), [], 'no account outlives its CR');
});

test('a rotation of every registry, crashed after each of its API requests, converges with nothing lost', async () => {
  // every registry of the cluster (a crash inside one is logged by runReconcile as that registry's failure)
  const rotate = (kube: Kube, forcedBefore: Date) => runReconcile([], { ...process.env, ...env }, { kube, forcedBefore });
  const result = await everyCrashPoint('all', rotate);
  console.log(`   rotation: ${result.points} crash points, ${result.violations.length} violations`);
  assert.ok(result.points > 10, `covered ${result.points} crash points`);
  assert.equal(result.violations, []);
  assert.equal(await accountsOfDeletedCrs(), [], 'no account outlives its CR');
  // converged: one more normal run issues nothing
  const before = (await list('imageregistryaccount')).length;
  await reconcileRegistry(key, options(connectKube(kubeConfig)));
  assert.is((await list('imageregistryaccount')).length, before);
});

test.run();
