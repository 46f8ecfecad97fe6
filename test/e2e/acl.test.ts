// End to end: the default ACL isolates namespaces, with the real docker_auth. One registry in its
// own namespace serves push/pull secrets of two team namespaces; its objects come from the real
// reconcile Job (run by the real Job controller), and its pod — made by the real StatefulSet
// controller — runs on the real node (kubelet, containerd and runc running registry, docker_auth
// and nginx from their images). Grants are read from the tokens docker_auth issues through nginx,
// and a real skopeo pushes and pulls through the registry's LoadBalancer address.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import bcrypt from 'bcryptjs';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryHostname } from '../../functions/names.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { installOperatorBase } from '../support/operator.ts';
import { readOciImageFiles, writeOciImage, type OciImage } from '../support/oci-image.ts';
import { nodeAccess, processAlive } from '../support/node/node-access.ts';
import { waitFor } from '../support/processes.ts';
import { applyObjects, serverSide } from '../support/kubectl.ts';
import { loadBalancer, podWithReadyContainers, runReconcileJob, secretKey } from '../support/registry-e2e.ts';
import { tokenClaims } from '../support/registry-token.ts';

const NAME = 'registry';
const SKOPEO = '/usr/bin/skopeo';

interface Account {
  name: string;
  password: string;
}

/** What the tests need of a running registry pod; start() is the one place that makes it. */
interface Registry {
  hostname: string;
  certDir: string;
  workDir: string;
  /** an HTTPS GET to the registry's hostname, trusting only its CA */
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  /** skopeo with the registry's hostname resolving to the pod */
  skopeo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
  /** host pids of the pod's running containers' main processes, by container name */
  containerPids(): Promise<Map<string, number>>;
  /** containerd's ids of the pod's running containers */
  runningContainers(): Promise<string[]>;
}

interface Setup {
  registry: Registry;
  namespace: string;
  teamA: string;
  teamB: string;
  teamAPush: Account;
  teamAPull: Account;
  teamBPush: Account;
  teamBPull: Account;
  expired: Account;
  unlabelled: Account;
  image: OciImage;
}

const authMissing = authServerUnavailable((await testCluster()).assetsDir);
if (authMissing) console.log(`SKIP the ACL tests: they need docker_auth, and auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;

let setup: Promise<Setup> | undefined;
let createdWorkDir: string | undefined;
function started(): Promise<Setup> {
  setup ??= start();
  return setup;
}

async function start(): Promise<Setup> {
  const cluster = await testCluster();
  const config = await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: '120s' });
  const namespace = await cluster.createNamespace('e2e-acl');
  const teamA = await cluster.createNamespace('team-a');
  const teamB = await cluster.createNamespace('team-b');
  const registryRef = { name: NAME, namespace };
  const expiredPassword = randomBytes(18).toString('base64url');
  const unlabelledPassword = randomBytes(18).toString('base64url');
  await applyObjects(cluster, [
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME }, spec: {} },
    // static accounts: one whose ttl has passed by the time the Job writes the auth config, one without labels
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: 'expired-bot' }, spec: { password: bcrypt.hashSync(expiredPassword, 4), ttl: '1s', labels: { accessMode: ['push'], namespace: [teamA] } } },
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: 'unlabelled-bot' }, spec: { password: bcrypt.hashSync(unlabelledPassword, 4) } },
  ], namespace, serverSide('e2e-test'));
  for (const team of [teamA, teamB]) {
    await applyObjects(cluster, [
      { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: { registryRef } },
      { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'app' }, spec: { registryRef } },
    ], team, serverSide('e2e-test'));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500)); // expired-bot's ttl ends
  await runReconcileJob(cluster, namespace, NAME, config);
  const credentials = async (ns: string, secret: string): Promise<Account> => ({
    name: await secretKey(cluster, ns, secret, 'username'),
    password: await secretKey(cluster, ns, secret, 'password'),
  });

  const workDir = mkdtempSync(join(tmpdir(), 'iro-e2e-acl-'));
  createdWorkDir = workDir;
  const certDir = join(workDir, 'certs');
  mkdirSync(certDir);
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  writeFileSync(join(certDir, 'ca.crt'), ca);
  const hostname = registryHostname(NAME, namespace, operatorConfigFromEnv({}).dnsZone);

  // the registry's pod, as the StatefulSet controller made it and the real node runs it
  const pod = await podWithReadyContainers(cluster, namespace, `${NAME}-0`, ['nginx', 'registry', 'auth']);
  const podUid = pod.metadata?.uid;
  if (!podUid) throw new Error(`pod ${NAME}-0 has no uid`);
  const lb = await loadBalancer(cluster, namespace, NAME, hostname);
  const node = nodeAccess(cluster);
  const runningContainers = () => node.runningContainerIds(podUid);
  const registry: Registry = {
    hostname,
    certDir,
    workDir,
    get: (path, headers = {}) =>
      new Promise((resolve, reject) => {
        const req = request({ host: hostname, port: lb.port, path, headers, lookup: lb.lookup, ca, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      }),
    skopeo: (args) => cluster.runClient(SKOPEO, args, { binds: [workDir] }),
    stop: async () => {
      await cluster.kubectl(['delete', 'imageregistry', NAME, '--wait=true', '--timeout=60s'], { namespace });
      await waitFor('the registry pod to stop', async () => (await runningContainers()).length === 0, 60_000);
    },
    containerPids: () => node.podContainerPids(podUid),
    runningContainers,
  };

  return {
    registry,
    namespace,
    teamA,
    teamB,
    teamAPush: await credentials(teamA, 'app-image-push-secret'),
    teamAPull: await credentials(teamA, 'app-image-pull-secret'),
    teamBPush: await credentials(teamB, 'app-image-push-secret'),
    teamBPull: await credentials(teamB, 'app-image-pull-secret'),
    expired: { name: 'expired-bot', password: expiredPassword },
    unlabelled: { name: 'unlabelled-bot', password: unlabelledPassword },
    image: writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': 'hello from team-a\n' }),
  };
}

/** The actions docker_auth grants `account` on `repository`, asking for push and pull. */
async function granted(account: Account | undefined, repository: string, type = 'repository'): Promise<string[]> {
  const { registry } = await started();
  const scope = `${type}:${repository}:push,pull`;
  const res = await registry.get(`/auth/token?service=${encodeURIComponent(registry.hostname)}&scope=${encodeURIComponent(scope)}`, account ? basic(account) : {});
  if (res.status !== 200) throw Object.assign(new Error(`token request refused: ${res.status} ${res.body}`), { status: res.status });
  const access = (tokenClaims(tokenOf(res.body)).access ?? []) as { type: string; name: string; actions: string[] }[];
  return access.filter((a) => a.type === type && a.name === repository).flatMap((a) => a.actions);
}

/** How docker_auth refuses `account`: an HTTP status, or a token that grants nothing. Fails when it grants. */
async function refusedStatus(account: Account | undefined, repository: string): Promise<number | 'granted nothing'> {
  let actions: string[];
  try {
    actions = await granted(account, repository);
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === undefined) throw error;
    return status;
  }
  assert.equal(actions, [], `${account?.name ?? 'anonymous'} must get nothing on ${repository}`);
  return 'granted nothing';
}

withAuth("push credentials push and pull their own namespace's repositories, nested ones too", async () => {
  const { teamA, teamAPush } = await started();
  assert.equal(await granted(teamAPush, `${teamA}/app`), ['pull', 'push']);
  assert.equal(await granted(teamAPush, `${teamA}/x/y`), ['pull', 'push']);
  assert.equal(await granted(teamAPush, `${teamA}/a/b/c/d`), ['pull', 'push']);
});

withAuth("push credentials get nothing outside their namespace: another team's, default/, a longer name with the same prefix, the bare namespace", async () => {
  const { teamA, teamB, teamAPush } = await started();
  for (const repository of ['default/hello', `${teamB}/app`, `${teamA}-evil/app`, `${teamA}x/app`, teamA, `x/${teamA}/app`, 'hello']) {
    assert.equal(await granted(teamAPush, repository), [], repository);
  }
  assert.equal(await granted(teamAPush, 'catalog', 'registry'), [], 'no catalog');
});

withAuth("a pull secret of another namespace pulls team-a's repositories; pull credentials never push, not even their own namespace's", async () => {
  const { teamA, teamB, teamBPull, teamAPull } = await started();
  assert.equal(await granted(teamBPull, `${teamA}/app`), ['pull']);
  assert.equal(await granted(teamBPull, `${teamA}/x/y`), ['pull']);
  assert.equal(await granted(teamBPull, `${teamB}/app`), ['pull']);
  assert.equal(await granted(teamAPull, `${teamA}/app`), ['pull']);
  assert.equal(await granted(teamAPull, 'default/hello'), ['pull']);
});

withAuth('anonymous, wrong-password, expired and unlabelled accounts are refused', async () => {
  const { teamA, teamAPush, expired, unlabelled } = await started();
  const repository = `${teamA}/app`;
  const anonymous = await refusedStatus(undefined, repository);
  assert.ok(anonymous === 401 || anonymous === 'granted nothing', String(anonymous));
  assert.is(await refusedStatus({ name: teamAPush.name, password: `${teamAPush.password}x` }, repository), 401);
  assert.is(await refusedStatus({ name: 'nobody', password: 'nothing' }, repository), 401);
  assert.is(await refusedStatus(expired, repository), 401, 'an expired account is not in the auth config');
  assert.is(await refusedStatus(unlabelled, repository), 'granted nothing', 'no rule matches an account without labels');
});

withAuth("skopeo: team-a pushes <team-a>/app, is denied default/hello and team-b's namespace; team-b's pull secret pulls it and cannot push", async () => {
  const { registry, teamA, teamB, teamAPush, teamBPull, image } = await started();
  const ref = (repository: string) => `docker://${registry.hostname}/${repository}`;
  const creds = (a: Account) => `${a.name}:${a.password}`;
  const pushed = await registry.skopeo(['copy', '--dest-cert-dir', registry.certDir, '--dest-creds', creds(teamAPush), image.reference, `${ref(`${teamA}/app`)}:v1`]);
  assert.is(pushed.code, 0, pushed.stderr);
  for (const repository of ['default/hello', `${teamB}/app`]) {
    const denied = await registry.skopeo(['copy', '--dest-cert-dir', registry.certDir, '--dest-creds', creds(teamAPush), image.reference, `${ref(repository)}:v1`]);
    assert.is.not(denied.code, 0, `${repository} must be refused`);
    assert.match(denied.stderr, /denied|unauthorized|authentication required/i, denied.stderr);
  }
  const out = join(registry.workDir, 'pulled');
  const pulled = await registry.skopeo(['copy', '--src-cert-dir', registry.certDir, '--src-creds', creds(teamBPull), `${ref(`${teamA}/app`)}:v1`, `oci:${out}:v1`]);
  assert.is(pulled.code, 0, pulled.stderr);
  assert.equal(readOciImageFiles(out, 'v1'), { 'hello.txt': 'hello from team-a\n' });
  const pullPush = await registry.skopeo(['copy', '--dest-cert-dir', registry.certDir, '--dest-creds', creds(teamBPull), image.reference, `${ref(`${teamB}/app`)}:v1`]);
  assert.is.not(pullPush.code, 0, 'pull credentials cannot push');
  assert.match(pullPush.stderr, /denied|unauthorized|authentication required/i, pullPush.stderr);
});

test('deleting the registry leaves no process of its pod behind', async () => {
  if (!setup) return; // nothing started: every other test was skipped
  const { registry } = await started();
  const before = await registry.containerPids();
  assert.equal([...before.keys()].sort(), ['auth', 'nginx', 'registry'], 'the pod ran its three containers');
  await registry.stop();
  assert.equal(await registry.runningContainers(), [], 'containerd runs no container of the pod');
  // and the processes containerd had started for them are gone (not merely unknown to crictl)
  assert.equal([...before].filter(([, pid]) => processAlive(pid)), []);
});

test.after(async () => {
  const current = await setup?.catch(() => undefined);
  if (current && (await current.registry.runningContainers().catch(() => [])).length > 0) await current.registry.stop().catch(() => undefined);
  if (createdWorkDir) rmSync(createdWorkDir, { recursive: true, force: true });
});

test.run();

// ---------------------------------------------------------------------------------------------

function basic(account: Account): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${account.name}:${account.password}`).toString('base64')}` };
}

function tokenOf(body: string): string {
  const parsed = JSON.parse(body) as { token?: string; access_token?: string };
  const token = parsed.token ?? parsed.access_token;
  if (!token) throw new Error(`no token in ${body}`);
  return token;
}
