// End to end: one ImageRegistry's objects (written by the real reconcile Job against the real API
// server) run as a pod *from the stored StatefulSet's own spec* — registry, docker_auth and nginx
// as local binaries under bubblewrap, volumes materialised from the stored Secrets/ConfigMap —
// with the Service port on a loopback address and the registry hostname resolving to it. Real
// clients (node:tls/https, skopeo) talk to it.
//
// docker_auth (auth_server) cannot be built on this machine (the Go module proxy refuses it); the
// tests that need it are written for real and skip with that reason. The registry's half of token
// auth is still tested: it must accept tokens signed with the key of `<r>-auth-tls` and refuse others.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { registryHostname, tokenIssuer } from '../../functions/names.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { installOperatorBase } from '../support/operator.ts';
import { readOciImageFiles, writeOciImage, type OciImage } from '../support/oci-image.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { runStatefulSetPod, type RunningPod } from '../support/pod-runner.ts';
import { run } from '../support/processes.ts';
import { signRegistryToken, tokenClaims } from '../support/registry-token.ts';

const NAME = 'registry';
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const REPO = 'test/hello';
const SKOPEO = '/usr/bin/skopeo';

interface Account {
  name: string;
  password: string;
}

interface Setup {
  cluster: TestCluster;
  namespace: string;
  hostname: string;
  workDir: string;
  certDir: string;
  pod: RunningPod;
  authMissing: string | undefined;
  tokenKeyPem: string;
  push: Account;
  pull: Account;
  image: OciImage;
}

const timings: Record<string, number> = {};
async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await work();
  } finally {
    timings[what] = Date.now() - started;
  }
}

/** Runs the reconcile Job's container the way a kubelet would: its command, args and env. */
async function runReconcileJob(cluster: TestCluster, namespace: string, name: string): Promise<void> {
  const job = desiredReconcileJob({ registry: { namespace, name }, config: operatorConfigFromEnv({}), windowEnd: new Date() });
  const container = job.spec.template.spec.containers[0]!;
  const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
  const script = container.command[1]!.replace(/^\/app\//, repoRoot);
  const result = await run(process.execPath, [script, ...container.args], { env: { PATH: process.env.PATH, KUBECONFIG: cluster.kubeconfig, OPERATOR_ROLLOUT_TIMEOUT: '0s', ...env } });
  if (result.code !== 0) throw new Error(`reconcile Job failed:\n${result.stdout}\n${result.stderr}`);
}

// Set up once, inside the tests: uvu swallows errors thrown by before() hooks.
let setup: Promise<Setup> | undefined;
let createdWorkDir: string | undefined;
function started(): Promise<Setup> {
  setup ??= start();
  return setup;
}

async function start(): Promise<Setup> {
  const cluster = await testCluster();
  await installOperatorBase(cluster);
  const namespace = await cluster.createNamespace('e2e-registry');
  const config = operatorConfigFromEnv({});
  const hostname = registryHostname(NAME, namespace, config.dnsZone);

  // The objects come from the real reconcile Job, run from its own manifest's command, args and env.
  await apply(cluster, namespace, [
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME }, spec: {} },
    { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
    { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
  ] as never);
  await timed('reconcile Job', () => runReconcileJob(cluster, namespace, NAME));
  const credentials = async (secret: string): Promise<Account> => ({
    name: await secretKey(cluster, namespace, secret, 'username'),
    password: await secretKey(cluster, namespace, secret, 'password'),
  });
  const push = await credentials('app-image-push-secret');
  const pull = await credentials('app-image-pull-secret');
  const tokenKey = await secretKey(cluster, namespace, `${NAME}-auth-tls`, 'tls.key');

  const workDir = mkdtempSync(join(tmpdir(), 'iro-e2e-'));
  createdWorkDir = workDir;
  // The client trusts exactly the CA the TLS Secret hands out, read back from the API server.
  const certDir = join(workDir, 'certs');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'ca.crt'), await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt'));

  const loopbackAddress = `127.${randomInt(100, 200)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const pod = await timed('pod start', () =>
    runStatefulSetPod({ kubeconfig: cluster.kubeconfig, namespace, statefulSet: NAME, assetsDir: cluster.assetsDir, workDir, loopbackAddress, probePeriodMs: 200 }),
  );
  try {
    await timed('pod ready', () => pod.waitReady({ timeoutMs: 60_000 }));
  } catch (error) {
    await pod.stop();
    throw error;
  }
  const image = writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': `hello from ${namespace}\n` });
  return { cluster, namespace, hostname, workDir, certDir, pod, authMissing: authServerUnavailable(cluster.assetsDir), tokenKeyPem: tokenKey, push, pull, image };
}

const authMissing = authServerUnavailable((await testCluster()).assetsDir);
if (authMissing) console.log(`SKIP docker_auth tests: auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;

test('the pod runs from the StatefulSet as stored in the API server', async () => {
  const { cluster, namespace, pod } = await started();
  const stored = JSON.parse((await cluster.kubectl(['get', 'statefulset', NAME, '-o', 'json'], { namespace })).stdout) as V1StatefulSet;
  const specs = stored.spec?.template.spec?.containers ?? [];
  const byName = Object.fromEntries(pod.containers().map((c) => [c.name, c]));
  assert.equal(Object.keys(byName).sort(), specs.map((c) => c.name).sort());
  const nginx = specs.find((c) => c.name === 'nginx');
  assert.equal(byName.nginx?.argv, nginx?.command, 'nginx runs the container command');
  // registry has only args: the image's entrypoint `registry` runs them
  assert.equal(byName.registry?.argv, ['registry', ...(specs.find((c) => c.name === 'registry')?.args ?? [])]);
  assert.ok(byName.nginx?.ready && byName.registry?.ready, JSON.stringify(pod.containers()));
  if (authMissing) {
    assert.is(byName.auth?.started, false);
    assert.is(byName.auth?.waitingReason, 'BinaryUnavailable');
    assert.match(byName.auth?.reason ?? '', /auth_server/);
  } else {
    assert.ok(byName.auth?.ready, 'docker_auth is ready');
    assert.equal(byName.auth?.argv, ['/docker_auth/auth_server', ...(specs.find((c) => c.name === 'auth')?.args ?? [])]);
  }
});

test('containers run as their securityContext users, in the pod network namespace, with volumes owned by fsGroup', async () => {
  const { pod } = await started();
  const users = new Map<string, Set<number>>();
  for (const pid of pod.processIds()) {
    const status = readProc(pid, 'status');
    const comm = readProc(pid, 'comm').trim();
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
    if (comm === 'nginx' || comm === 'registry') {
      users.set(comm, (users.get(comm) ?? new Set()).add(uid));
      assert.ok(groups.includes(1000), `${comm} has the fsGroup as supplementary group: ${groups}`);
      assert.match(status, /^CapEff:\s+0+$/m, `${comm} has no capabilities`);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
    }
  }
  assert.equal([...(users.get('nginx') ?? [])], [101], 'nginx master and workers run as 101');
  assert.equal([...(users.get('registry') ?? [])], [1000]);
  const key = statSync(join(pod.podDir, 'volumes', 'tls', 'tls.key'));
  assert.is(key.mode & 0o777, 0o440, 'Secret defaultMode 0440');
  assert.is(key.gid, 1000, 'owned by the fsGroup');
  assert.is(key.uid, 0);
  assert.not.ok(existsSync(join(pod.podDir, 'volumes', 'tls', 'ca.crt')), 'items projection: only tls.crt and tls.key');
});

test('TLS to the registry hostname through the Service port verifies with ca.crt of the TLS Secret', async () => {
  const { hostname, pod, cluster, namespace } = await started();
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  const peer = await tlsHandshake(pod, hostname, { ca });
  assert.ok(peer.authorized, String(peer.error));
  assert.match(peer.cert?.subjectaltname ?? '', new RegExp(`DNS:${hostname.replace(/\./g, '\\.')}`));
  // The verification is real: without the CA, or for a name the certificate does not carry, it fails.
  const untrusted = await tlsHandshake(pod, hostname, {});
  assert.not.ok(untrusted.authorized);
  assert.match(String(untrusted.error), /self[- ]signed|unable to (get|verify)/i);
  const wrongName = await tlsHandshake(pod, hostname, { ca, servername: `other.${namespace}.svc.example.org` });
  assert.not.ok(wrongName.authorized);
  assert.match(String(wrongName.error), /altnames|Hostname\/IP does not match/i);
});

test('GET https://<hostname>/v2/ → 401 with a Bearer challenge whose realm is on the hostname', async () => {
  const { hostname, pod, certDir } = await started();
  const res = await get(pod, hostname, certDir, '/v2/');
  assert.is(res.status, 401, res.body);
  assert.is(res.headers['www-authenticate'], `Bearer realm="https://${hostname}/auth/token",service="${hostname}"`);
  assert.is(res.headers['docker-distribution-api-version'], 'registry/2.0');
  // nginx itself answers health checks and nothing outside /v2/ and /auth/token
  assert.is((await get(pod, hostname, certDir, '/health')).status, 200);
  assert.is((await get(pod, hostname, certDir, '/')).status, 404);
});

test('skopeo verifies the certificate with the Secret CA and gets to the registry auth challenge', async () => {
  const { hostname, pod, certDir, workDir } = await started();
  const verified = await pod.runClient(SKOPEO, ['inspect', '--cert-dir', certDir, '--creds', 'nobody:wrong', `docker://${hostname}/${REPO}:v1`], { binds: [workDir] });
  assert.is.not(verified.code, 0);
  assert.not.match(verified.stderr, /x509|certificate/i, 'TLS verification succeeded');
  // skopeo parsed the registry's challenge and went to its realm for a token (docker_auth answers
  // 401 for these credentials; without auth_server nginx answers 502)
  assert.match(verified.stderr, /requesting bearer token: invalid status code from registry (401|502)/i, verified.stderr);
  const unverified = await pod.runClient(SKOPEO, ['inspect', '--creds', 'nobody:wrong', `docker://${hostname}/${REPO}:v1`], { binds: [workDir] });
  assert.is.not(unverified.code, 0);
  assert.match(unverified.stderr, /x509: certificate signed by unknown authority|certificate/i, unverified.stderr);
});

test('the registry accepts a token signed with the key of <r>-auth-tls and refuses tokens it must not trust', async () => {
  const { hostname, pod, certDir, tokenKeyPem } = await started();
  const good = { keyPem: tokenKeyPem, issuer: tokenIssuer(hostname), audience: hostname, subject: 'e2e' };
  const access = [{ type: 'repository' as const, name: REPO, actions: ['pull'] }];
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  assert.is((await get(pod, hostname, certDir, '/v2/', bearer(signRegistryToken({ ...good, access: [] })))).status, 200);
  const unknown = await get(pod, hostname, certDir, `/v2/${REPO}/tags/list`, bearer(signRegistryToken({ ...good, access })));
  assert.is(unknown.status, 404, `authorized, the repository does not exist yet: ${unknown.body}`);
  const refused = {
    'another key': { ...good, keyPem: newRsaKeyPem().privateKeyPem },
    'another issuer': { ...good, issuer: 'https://evil.example.org/auth/token' },
    'another service': { ...good, audience: 'other.example.org' },
    expired: { ...good, now: new Date(Date.now() - 3_600_000), ttlSeconds: 60 },
  };
  for (const [what, request] of Object.entries(refused)) {
    const res = await get(pod, hostname, certDir, `/v2/${REPO}/tags/list`, bearer(signRegistryToken({ ...request, access })));
    assert.is(res.status, 401, `${what}: ${res.status} ${res.body}`);
  }
  const otherRepo = await get(pod, hostname, certDir, '/v2/other/repo/tags/list', bearer(signRegistryToken({ ...good, access })));
  assert.is(otherRepo.status, 401, 'a token for test/hello does not open other/repo');
});

test('skopeo pushes and pulls through nginx with registry tokens; a pull-only token cannot push; data lands on the PVC', async () => {
  const { hostname, pod, certDir, workDir, tokenKeyPem, image, namespace } = await started();
  const token = (actions: string[]) =>
    signRegistryToken({ keyPem: tokenKeyPem, issuer: tokenIssuer(hostname), audience: hostname, subject: 'e2e', access: [{ type: 'repository', name: REPO, actions }] });
  const ref = `docker://${hostname}/${REPO}`;
  const pushed = await timed('skopeo push', () =>
    pod.runClient(SKOPEO, ['copy', '--dest-cert-dir', certDir, '--dest-registry-token', token(['push', 'pull']), image.reference, `${ref}:v1`], { binds: [workDir] }),
  );
  assert.is(pushed.code, 0, pushed.stderr);
  const inspected = await pod.runClient(SKOPEO, ['inspect', '--cert-dir', certDir, '--registry-token', token(['pull']), `${ref}:v1`], { binds: [workDir] });
  assert.is(inspected.code, 0, inspected.stderr);
  assert.is((JSON.parse(inspected.stdout) as { Digest: string }).Digest, image.manifestDigest);
  const out = join(workDir, 'pulled');
  const pulled = await timed('skopeo pull', () =>
    pod.runClient(SKOPEO, ['copy', '--src-cert-dir', certDir, '--src-registry-token', token(['pull']), `${ref}:v1`, `oci:${out}:v1`], { binds: [workDir] }),
  );
  assert.is(pulled.code, 0, pulled.stderr);
  assert.equal(readOciImageFiles(out, 'v1'), { 'hello.txt': `hello from ${namespace}\n` });
  const denied = await pod.runClient(SKOPEO, ['copy', '--dest-cert-dir', certDir, '--dest-registry-token', token(['pull']), image.reference, `${ref}:v2`], { binds: [workDir] });
  assert.is.not(denied.code, 0, 'a pull-only token cannot push');
  assert.match(denied.stderr, /denied|unauthorized|authentication required/i, denied.stderr);
  const pvc = join(workDir, 'pvc', namespace, `data-${NAME}-0`, 'docker', 'registry', 'v2', 'repositories', ...REPO.split('/'));
  assert.ok(existsSync(pvc), `the image is stored on the claim data-${NAME}-0`);
});

test('a changed Secret reaches directory mounts after the volume sync, never subPath mounts (as with the kubelet)', async () => {
  const { cluster, namespace, pod } = await started();
  const pidOf = (comm: string) => pod.processIds().find((pid) => readProc(pid, 'comm').trim() === comm);
  const registryPid = pidOf('registry');
  const nginxPid = pidOf('nginx');
  assert.ok(registryPid && nginxPid, 'registry and nginx run');
  const inContainer = (pid: number | undefined, path: string) => readProc(pid ?? 0, `root${path}`);
  const nginxConf = inContainer(nginxPid, '/etc/nginx/nginx.conf');
  assert.match(nginxConf, /listen 8443 ssl;/, 'nginx sees its config at the container path');
  assert.match(inContainer(registryPid, '/etc/docker/registry/config.yml'), /jwks: \/etc\/registry-auth\/trusted-token-keys.jwks/);
  assert.match(inContainer(registryPid, '/etc/registry-auth/trusted-token-keys.jwks'), /"kid"/, 'the registry reads its trusted token keys');

  const marker = `synced ${randomBytes(4).toString('hex')}`;
  const patched = await cluster.kubectl(['patch', 'secret', `${NAME}-registry-config`, '--type=merge', '-p', JSON.stringify({ stringData: { 'marker.txt': marker } })], { namespace });
  assert.is(patched.code, 0, patched.stderr);
  const changedConf = await cluster.kubectl(['patch', 'configmap', `${NAME}-nginx`, '--type=merge', '-p', JSON.stringify({ data: { 'nginx.conf': `${nginxConf}# ${marker}\n` } })], { namespace });
  assert.is(changedConf.code, 0, changedConf.stderr);
  assert.is(inContainer(registryPid, '/etc/docker/registry/marker.txt'), '', 'not before the sync');
  await pod.syncVolumes();
  assert.is(inContainer(registryPid, '/etc/docker/registry/marker.txt'), marker, 'the directory mount shows the new key');
  assert.is(inContainer(nginxPid, '/etc/nginx/nginx.conf'), nginxConf, 'the subPath mount keeps the file it started with');
});

test('a second pod runs beside the first in its own network namespace (same pod ports, another Service address)', async () => {
  const { cluster, namespace, pod, workDir, hostname, certDir } = await started();
  const second = await runStatefulSetPod({
    kubeconfig: cluster.kubeconfig,
    namespace,
    statefulSet: NAME,
    assetsDir: cluster.assetsDir,
    workDir,
    loopbackAddress: otherLoopback(pod.loopbackAddress),
    ordinal: 1,
    probePeriodMs: 200,
  });
  try {
    await second.waitReady({ timeoutMs: 60_000 });
    assert.is.not(second.netns, pod.netns);
    assert.is(second.name, `${NAME}-1`);
    for (const p of [pod, second]) {
      const res = await get(p, hostname, certDir, '/v2/');
      assert.is(res.status, 401, `${p.name} answers on ${p.loopbackAddress}`);
    }
    assert.ok(existsSync(join(workDir, 'pvc', namespace, `data-${NAME}-1`)), 'its own claim, as the StatefulSet controller would create');
  } finally {
    await second.stop();
  }
  assert.equal(second.processIds(), []);
  assert.ok(pod.processIds().length >= 3, 'the first pod is untouched');
});

withAuth('docker_auth issues a token for an ImageRegistryAccount and the registry accepts it', async () => {
  const { hostname, pod, certDir, push } = await started();
  const res = await get(pod, hostname, certDir, tokenPath(hostname, `repository:${REPO}:push,pull`), basic(push));
  assert.is(res.status, 200, res.body);
  const token = tokenOf(res.body);
  const claims = tokenClaims(token);
  assert.is(claims.iss, tokenIssuer(hostname));
  assert.equal(claims.access, [{ type: 'repository', name: REPO, actions: ['push', 'pull'] }]);
  const tags = await get(pod, hostname, certDir, `/v2/${REPO}/tags/list`, { authorization: `Bearer ${token}` });
  assert.ok(tags.status === 200 || tags.status === 404, `the registry accepts docker_auth's token: ${tags.status} ${tags.body}`);
  assert.is.not(tags.status, 401);
});

withAuth('anonymous and wrong-password token requests are refused; a pull account gets pull only', async () => {
  const { hostname, pod, certDir, push, pull } = await started();
  const scope = `repository:${REPO}:push,pull`;
  const wrong = await get(pod, hostname, certDir, tokenPath(hostname, scope), basic({ name: push.name, password: `${push.password}x` }));
  assert.is(wrong.status, 401, wrong.body);
  const anonymous = await get(pod, hostname, certDir, tokenPath(hostname, scope));
  // refused outright, or a token that grants nothing
  if (anonymous.status === 200) assert.equal(tokenClaims(tokenOf(anonymous.body)).access ?? [], []);
  else assert.is(anonymous.status, 401, anonymous.body);
  const pullOnly = await get(pod, hostname, certDir, tokenPath(hostname, scope), basic(pull));
  assert.is(pullOnly.status, 200, pullOnly.body);
  assert.equal(tokenClaims(tokenOf(pullOnly.body)).access, [{ type: 'repository', name: REPO, actions: ['pull'] }]);
});

withAuth('skopeo pushes with the push account and pulls with the pull account, which cannot push', async () => {
  const { hostname, pod, certDir, workDir, image, push, pull, namespace } = await started();
  const ref = `docker://${hostname}/${REPO}`;
  const pushed = await pod.runClient(SKOPEO, ['copy', '--dest-cert-dir', certDir, '--dest-creds', `${push.name}:${push.password}`, image.reference, `${ref}:creds`], { binds: [workDir] });
  assert.is(pushed.code, 0, pushed.stderr);
  const out = join(workDir, 'pulled-creds');
  const pulled = await pod.runClient(SKOPEO, ['copy', '--src-cert-dir', certDir, '--src-creds', `${pull.name}:${pull.password}`, `${ref}:creds`, `oci:${out}:creds`], { binds: [workDir] });
  assert.is(pulled.code, 0, pulled.stderr);
  assert.equal(readOciImageFiles(out, 'creds'), { 'hello.txt': `hello from ${namespace}\n` });
  const denied = await pod.runClient(SKOPEO, ['copy', '--dest-cert-dir', certDir, '--dest-creds', `${pull.name}:${pull.password}`, image.reference, `${ref}:denied`], { binds: [workDir] });
  assert.is.not(denied.code, 0);
  assert.match(denied.stderr, /denied|unauthorized|authentication required/i, denied.stderr);
});

test('the StatefulSet status shows the pod as the controller would see it', async () => {
  const { cluster, namespace, pod } = await started();
  const written = await pod.patchStatefulSetStatus();
  const stored = JSON.parse((await cluster.kubectl(['get', 'statefulset', NAME, '-o', 'json'], { namespace })).stdout) as V1StatefulSet;
  assert.is(stored.status?.replicas, 1);
  assert.is(stored.status?.observedGeneration, stored.metadata?.generation);
  // A pod is ready only when all its containers are: without docker_auth it is not.
  assert.is(stored.status?.readyReplicas ?? 0, authMissing ? 0 : 1);
  assert.is(stored.status?.currentRevision, written.currentRevision);
});

test('stop() leaves no process behind', async () => {
  const { pod, workDir, hostname } = await started();
  assert.ok(pod.processIds().length >= 3, 'the pod had processes');
  await timed('pod stop', () => pod.stop());
  assert.equal(pod.processIds(), [], 'nothing left in the pod network namespace');
  const left = await run('pgrep', ['-af', workDir]);
  assert.is(left.stdout.trim(), '', `processes mentioning ${workDir}`);
  const refused = await new Promise<string>((resolve) => {
    const socket = tcpConnect(pod.servicePorts[0]?.port ?? 443, pod.loopbackAddress);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
  assert.is(refused, 'ECONNREFUSED', `the Service port of ${hostname} is closed`);
  console.log(`timings (ms): ${JSON.stringify(timings)}`);
});

test.after(async () => {
  // A failed test must not leave the pod running until this process exits, nor its files behind.
  const current = await setup?.catch(() => undefined);
  if (current && current.pod.processIds().length > 0) await current.pod.stop().catch(() => undefined);
  if (createdWorkDir) rmSync(createdWorkDir, { recursive: true, force: true });
});

test.run();

// ---------------------------------------------------------------------------------------------

function otherLoopback(address: string): string {
  const last = Number(address.split('.').at(-1));
  return `${address.split('.').slice(0, 3).join('.')}.${last === 254 ? 1 : last + 1}`;
}

async function apply(cluster: TestCluster, namespace: string, objects: unknown[]): Promise<void> {
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
  const result = await cluster.kubectl(['apply', '--server-side', '--field-manager=e2e-test', '-f', '-'], { input: list, namespace });
  if (result.code !== 0) throw new Error(`kubectl apply: ${result.stderr}`);
}

async function secretKey(cluster: TestCluster, namespace: string, name: string, key: string): Promise<string> {
  const read = await cluster.kubectl(['get', 'secret', name, '-o', 'json'], { namespace });
  if (read.code !== 0) throw new Error(`kubectl get secret ${name}: ${read.stderr}`);
  const value = (JSON.parse(read.stdout) as V1Secret).data?.[key];
  if (!value) throw new Error(`Secret ${namespace}/${name} has no ${key}`);
  return Buffer.from(value, 'base64').toString('utf8');
}

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

function tlsHandshake(pod: RunningPod, hostname: string, options: { ca?: string; servername?: string }): Promise<{ authorized: boolean; error?: unknown; cert?: PeerCertificate }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: hostname, port: pod.servicePorts[0]?.port ?? 443, lookup: pod.lookup, servername: options.servername ?? hostname, ...(options.ca ? { ca: options.ca } : {}) });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({ authorized: socket.authorized, cert });
    });
    socket.once('error', (error) => {
      socket.destroy();
      resolve({ authorized: false, error });
    });
  });
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTPS GET to the registry hostname through the Service port, trusting only the Secret's CA. */
function get(pod: RunningPod, hostname: string, certDir: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port: pod.servicePorts[0]?.port ?? 443, path, headers, lookup: pod.lookup, ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'), agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function tokenPath(hostname: string, scope: string): string {
  return `/auth/token?service=${encodeURIComponent(hostname)}&scope=${encodeURIComponent(scope)}`;
}

function basic(account: Account): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${account.name}:${account.password}`).toString('base64')}` };
}

function tokenOf(body: string): string {
  const parsed = JSON.parse(body) as { token?: string; access_token?: string };
  const token = parsed.token ?? parsed.access_token;
  if (!token) throw new Error(`no token in ${body}`);
  return token;
}
