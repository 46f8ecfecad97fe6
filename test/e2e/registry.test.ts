// End to end: one ImageRegistry as the real reconcile Job (run by the real Job controller on the
// kubelet stand-in) writes it; its StatefulSet's pod, created by the real StatefulSet controller and
// bound by the real scheduler, runs from its own spec on the kubelet stand-in — registry, docker_auth
// and nginx as local binaries under bubblewrap, volumes materialised from the stored Secrets and
// ConfigMap. Clients reach it as a cluster's clients would: the registry hostname resolves to the
// LoadBalancer Service's address (the kubelet stand-in's load balancer).
//
// The tests that need docker_auth (auth_server) skip, saying why, where it could not be built (the
// Go module proxy some machines reach refuses it). Without it the pod is never Ready, so the
// Service sends it no connection (checked below, as a cluster would behave); the tests of TLS,
// nginx and the registry's half of token auth — it must accept tokens signed with the key of
// `<r>-auth-tls` and refuse others; the tests sign their own — need no docker_auth and reach the
// pod's nginx at its pod IP instead, as a client in the cluster network can.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { registryHostname, tokenIssuer } from '../../functions/names.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { installOperatorBase } from '../support/operator.ts';
import { readOciImageFiles, writeOciImage, type OciImage } from '../support/oci-image.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { podDirectory, podProcesses } from '../support/pod-sandbox.ts';
import { waitFor } from '../support/processes.ts';
import { applyObjects, requireObject, serverSide } from '../support/kubectl.ts';
import { loadBalancer, podNginx, podWithReadyContainers, runReconcileJob, secretKey, type RegistryAddress } from '../support/registry-e2e.ts';
import { signRegistryToken, tokenClaims } from '../support/registry-token.ts';
import { stepTimer } from '../support/timings.ts';

const NAME = 'registry';
/** Under the push account's namespace, where the default ACL lets it push (set once the namespace exists). */
let REPO = '';
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
  service: RegistryAddress;
  /** where the clients below connect: the Service, or the pod's nginx while the pod cannot be Ready */
  front: RegistryAddress;
  /** /etc/hosts for skopeo when front is not the Service: the registry hostname → the pod IP */
  frontHosts?: string;
  pod: V1Pod;
  tokenKeyPem: string;
  push: Account;
  pull: Account;
  image: OciImage;
}

const { timings, timed } = stepTimer();

const authMissing = authServerUnavailable((await testCluster()).assetsDir);
if (authMissing) console.log(`SKIP docker_auth tests: auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;
/** How the clients of the tests below reach the registry (see Setup.front). */
const FRONT = authMissing ? "the pod IP's nginx port" : 'the Service port';

// Set up once, inside the tests: uvu swallows errors thrown by before() hooks.
let setup: Promise<Setup> | undefined;
let createdWorkDir: string | undefined;
function started(): Promise<Setup> {
  setup ??= start();
  return setup;
}

async function start(): Promise<Setup> {
  const cluster = await testCluster();
  // the reconcile Job waits for a ready replica before it confirms credentials (without docker_auth the pod never is)
  const config = await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: authMissing ? '3s' : '120s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' });
  const namespace = await cluster.createNamespace('e2e-registry');
  const hostname = registryHostname(NAME, namespace, config.dnsZone);
  REPO = `${namespace}/hello`;
  await applyObjects(cluster, [
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME }, spec: {} },
    { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
    { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
  ], namespace, serverSide('e2e-test'));
  await timed('reconcile Job', () => runReconcileJob(cluster, namespace, NAME, config));
  const credentials = async (secret: string): Promise<Account> => ({
    name: await secretKey(cluster, namespace, secret, 'username'),
    password: await secretKey(cluster, namespace, secret, 'password'),
  });
  const push = await credentials('app-image-push-secret');
  const pull = await credentials('app-image-pull-secret');
  const tokenKeyPem = await secretKey(cluster, namespace, `${NAME}-auth-tls`, 'tls.key');

  const workDir = mkdtempSync(join(tmpdir(), 'iro-e2e-'));
  createdWorkDir = workDir;
  // The client trusts exactly the CA the TLS Secret hands out, read back from the API server.
  const certDir = join(workDir, 'certs');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'ca.crt'), await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt'));
  const wanted = authMissing ? ['nginx', 'registry'] : ['nginx', 'registry', 'auth'];
  const pod = await timed('pod ready', () => podWithReadyContainers(cluster, namespace, `${NAME}-0`, wanted));
  const service = await loadBalancer(cluster, namespace, NAME, hostname);
  const front = authMissing ? podNginx(pod, hostname) : service;
  const frontHosts = front === service ? undefined : join(workDir, 'hosts');
  if (frontHosts) writeFileSync(frontHosts, `127.0.0.1\tlocalhost\n${front.address}\t${hostname}\n`);
  const image = writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': `hello from ${namespace}\n` });
  return { cluster, namespace, hostname, workDir, certDir, service, front, ...(frontHosts ? { frontHosts } : {}), pod, tokenKeyPem, push, pull, image };
}

const client = (s: Setup, args: string[]) => s.cluster.runClient(SKOPEO, args, { binds: [s.workDir], ...(s.frontHosts ? { hostsFile: s.frontHosts } : {}) });
/** The registry in image references: its hostname, with the front's port unless that is 443. */
const registryRef = (s: Setup) => (s.front.port === 443 ? s.hostname : `${s.hostname}:${s.front.port}`);
const processes = (s: Setup) => podProcesses(s.cluster.kubeletDir, s.pod.metadata?.uid ?? '');

test('the StatefulSet controller made the pod from the stored template; the scheduler bound it; its containers run the spec', async () => {
  const s = await started();
  const stored = await requireObject<V1StatefulSet>(s.cluster, 'statefulset', NAME, s.namespace);
  const specs = stored.spec?.template.spec?.containers ?? [];
  assert.equal(s.pod.spec?.containers.map((c) => c.name), specs.map((c) => c.name));
  assert.is(s.pod.spec?.nodeName, 'local');
  assert.is(s.pod.metadata?.ownerReferences?.[0]?.kind, 'StatefulSet');
  const byName = Object.fromEntries((s.pod.status?.containerStatuses ?? []).map((c) => [c.name, c]));
  // each container is `bwrap … -- setpriv … -- <argv>`: the argv is what the container runs
  const commands = processes(s).map((pid) => readProc(pid, 'cmdline').split('\0').filter(Boolean).join(' '));
  const runs = (argv: string[]) => commands.some((command) => /^\S*bwrap /.test(command) && command.endsWith(` -- ${argv.join(' ')}`));
  assert.ok(runs(specs.find((c) => c.name === 'nginx')?.command ?? []), `nginx runs the container command: ${commands.join('\n')}`);
  // registry has only args: the image's entrypoint `registry` runs them
  assert.ok(runs(['registry', ...(specs.find((c) => c.name === 'registry')?.args ?? [])]), commands.join('\n'));
  assert.ok(byName.nginx?.ready && byName.registry?.ready, JSON.stringify(s.pod.status?.containerStatuses));
  if (authMissing) {
    assert.is(byName.auth?.state?.waiting?.reason, 'BinaryUnavailable');
    assert.match(byName.auth?.state?.waiting?.message ?? '', /auth_server/);
  } else {
    assert.ok(byName.auth?.ready, 'docker_auth is ready');
    assert.ok(runs(['/docker_auth/auth_server', ...(specs.find((c) => c.name === 'auth')?.args ?? [])]), commands.join('\n'));
  }
});

test('containers run as their securityContext users, in the pod network namespace, with volumes owned by fsGroup', async () => {
  const s = await started();
  const users = new Map<string, Set<number>>();
  for (const pid of processes(s)) {
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
  const podDir = podDirectory(s.cluster.kubeletDir, s.pod.metadata?.uid ?? '');
  const key = statSync(join(podDir, 'volumes', 'tls', 'tls.key'));
  assert.is(key.mode & 0o777, 0o440, 'Secret defaultMode 0440');
  assert.is(key.gid, 1000, 'owned by the fsGroup');
  assert.is(key.uid, 0);
  assert.not.ok(existsSync(join(podDir, 'volumes', 'tls', 'ca.crt')), 'items projection: only tls.crt and tls.key');
});

test(`TLS to the registry hostname through ${FRONT} verifies with ca.crt of the TLS Secret`, async () => {
  const s = await started();
  const { hostname, cluster, namespace } = s;
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  const peer = await tlsHandshake(s.front, hostname, { ca });
  assert.ok(peer.authorized, String(peer.error));
  assert.match(peer.cert?.subjectaltname ?? '', new RegExp(`DNS:${hostname.replace(/\./g, '\\.')}`));
  // The verification is real: without the CA, or for a name the certificate does not carry, it fails.
  const untrusted = await tlsHandshake(s.front, hostname, {});
  assert.not.ok(untrusted.authorized);
  assert.match(String(untrusted.error), /self[- ]signed|unable to (get|verify)/i);
  const wrongName = await tlsHandshake(s.front, hostname, { ca, servername: `other.${namespace}.svc.example.org` });
  assert.not.ok(wrongName.authorized);
  assert.match(String(wrongName.error), /altnames|Hostname\/IP does not match/i);
});

test('GET https://<hostname>/v2/ → 401 with a Bearer challenge whose realm is on the hostname', async () => {
  const s = await started();
  const { hostname, certDir } = s;
  const res = await get(s, hostname, certDir, '/v2/');
  assert.is(res.status, 401, res.body);
  assert.is(res.headers['www-authenticate'], `Bearer realm="https://${hostname}/auth/token",service="${hostname}"`);
  assert.is(res.headers['docker-distribution-api-version'], 'registry/2.0');
  // nginx itself answers health checks and nothing outside /v2/ and /auth/token
  assert.is((await get(s, hostname, certDir, '/health')).status, 200);
  assert.is((await get(s, hostname, certDir, '/')).status, 404);
});

test('skopeo verifies the certificate with the Secret CA and gets to the registry auth challenge', async () => {
  const s = await started();
  const { hostname, certDir } = s;
  const verified = await client(s, ['inspect', '--cert-dir', certDir, '--creds', 'nobody:wrong', `docker://${registryRef(s)}/${REPO}:v1`]);
  assert.is.not(verified.code, 0);
  assert.not.match(verified.stderr, /x509|certificate/i, 'TLS verification succeeded');
  // skopeo parsed the registry's challenge and went to its realm for a token: docker_auth refuses
  // these credentials. Without auth_server the realm (port 443 of the hostname, which resolves to
  // the pod IP here) has nobody listening: the refused connection names the realm skopeo asked.
  assert.match(verified.stderr, authMissing ? realmRefused(hostname, s.front.address) : /unable to retrieve auth token: invalid username\/password: unauthorized/i, verified.stderr);
  const unverified = await client(s, ['inspect', '--creds', 'nobody:wrong', `docker://${registryRef(s)}/${REPO}:v1`]);
  assert.is.not(unverified.code, 0);
  assert.match(unverified.stderr, /x509: certificate signed by unknown authority|certificate/i, unverified.stderr);
});

test('the registry accepts a token signed with the key of <r>-auth-tls and refuses tokens it must not trust', async () => {
  const s = await started();
  const { hostname, certDir, tokenKeyPem } = s;
  const good = { keyPem: tokenKeyPem, issuer: tokenIssuer(hostname), audience: hostname, subject: 'e2e' };
  const access = [{ type: 'repository' as const, name: REPO, actions: ['pull'] }];
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  assert.is((await get(s, hostname, certDir, '/v2/', bearer(signRegistryToken({ ...good, access: [] })))).status, 200);
  const unknown = await get(s, hostname, certDir, `/v2/${REPO}/tags/list`, bearer(signRegistryToken({ ...good, access })));
  assert.is(unknown.status, 404, `authorized, the repository does not exist yet: ${unknown.body}`);
  const refused = {
    'another key': { ...good, keyPem: newRsaKeyPem().privateKeyPem },
    'another issuer': { ...good, issuer: 'https://evil.example.org/auth/token' },
    'another service': { ...good, audience: 'other.example.org' },
    expired: { ...good, now: new Date(Date.now() - 3_600_000), ttlSeconds: 60 },
  };
  for (const [what, request] of Object.entries(refused)) {
    const res = await get(s, hostname, certDir, `/v2/${REPO}/tags/list`, bearer(signRegistryToken({ ...request, access })));
    assert.is(res.status, 401, `${what}: ${res.status} ${res.body}`);
  }
  const otherRepo = await get(s, hostname, certDir, '/v2/other/repo/tags/list', bearer(signRegistryToken({ ...good, access })));
  assert.is(otherRepo.status, 401, `a token for ${REPO} does not open other/repo`);
});

test('skopeo pushes and pulls through nginx with registry tokens; a pull-only token cannot push; data lands on the PVC', async () => {
  const s = await started();
  const { hostname, certDir, workDir, tokenKeyPem, image, namespace } = s;
  const token = (actions: string[]) =>
    signRegistryToken({ keyPem: tokenKeyPem, issuer: tokenIssuer(hostname), audience: hostname, subject: 'e2e', access: [{ type: 'repository', name: REPO, actions }] });
  const ref = `docker://${registryRef(s)}/${REPO}`;
  const pushed = await timed('skopeo push', () =>
    client(s, ['copy', '--dest-cert-dir', certDir, '--dest-registry-token', token(['push', 'pull']), image.reference, `${ref}:v1`]),
  );
  assert.is(pushed.code, 0, pushed.stderr);
  const inspected = await client(s, ['inspect', '--cert-dir', certDir, '--registry-token', token(['pull']), `${ref}:v1`]);
  assert.is(inspected.code, 0, inspected.stderr);
  assert.is((JSON.parse(inspected.stdout) as { Digest: string }).Digest, image.manifestDigest);
  const out = join(workDir, 'pulled');
  const pulled = await timed('skopeo pull', () =>
    client(s, ['copy', '--src-cert-dir', certDir, '--src-registry-token', token(['pull']), `${ref}:v1`, `oci:${out}:v1`]),
  );
  assert.is(pulled.code, 0, pulled.stderr);
  assert.equal(readOciImageFiles(out, 'v1'), { 'hello.txt': `hello from ${namespace}\n` });
  const denied = await client(s, ['copy', '--dest-cert-dir', certDir, '--dest-registry-token', token(['pull']), image.reference, `${ref}:v2`]);
  assert.is.not(denied.code, 0, 'a pull-only token cannot push');
  assert.match(denied.stderr, /denied|unauthorized|authentication required/i, denied.stderr);
  const claim = await requireObject<{ spec: { volumeName: string } }>(s.cluster, 'pvc', `data-${NAME}-0`, namespace);
  const pv = await requireObject<{ spec: { hostPath: { path: string } } }>(s.cluster, 'pv', claim.spec.volumeName);
  const stored = join(pv.spec.hostPath.path, 'docker', 'registry', 'v2', 'repositories', ...REPO.split('/'));
  assert.ok(existsSync(stored), `the image is stored on the volume bound to claim data-${NAME}-0`);
});

test('touching the pod makes the kubelet sync a changed Secret into directory mounts at once, never into subPath mounts', async () => {
  const s = await started();
  const { cluster, namespace } = s;
  const pidOf = (comm: string) => processes(s).find((pid) => readProc(pid, 'comm').trim() === comm);
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
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.is(inContainer(registryPid, '/etc/docker/registry/marker.txt'), '', 'not before the next sync (periodic: a minute)');
  const touched = await cluster.kubectl(['annotate', 'pod', `${NAME}-0`, `e2e/touched=${Date.now()}`, '--overwrite'], { namespace });
  assert.is(touched.code, 0, touched.stderr);
  await waitFor('the new key in the directory mount', async () => inContainer(registryPid, '/etc/docker/registry/marker.txt') === marker, 5_000);
  assert.is(inContainer(nginxPid, '/etc/nginx/nginx.conf'), nginxConf, 'the subPath mount keeps the file it started with');
});

withAuth('docker_auth issues a token for an ImageRegistryAccount and the registry accepts it', async () => {
  const s = await started();
  const { hostname, certDir, push } = s;
  const res = await get(s, hostname, certDir, tokenPath(hostname, `repository:${REPO}:push,pull`), basic(push));
  assert.is(res.status, 200, res.body);
  const token = tokenOf(res.body);
  const claims = tokenClaims(token);
  assert.is(claims.iss, tokenIssuer(hostname));
  // docker_auth answers the granted actions sorted
  assert.equal(claims.access, [{ type: 'repository', name: REPO, actions: ['pull', 'push'] }]);
  const tags = await get(s, hostname, certDir, `/v2/${REPO}/tags/list`, { authorization: `Bearer ${token}` });
  assert.ok(tags.status === 200 || tags.status === 404, `the registry accepts docker_auth's token: ${tags.status} ${tags.body}`);
  assert.is.not(tags.status, 401);
});

withAuth('anonymous and wrong-password token requests are refused; a pull account gets pull only', async () => {
  const s = await started();
  const { hostname, certDir, push, pull } = s;
  const scope = `repository:${REPO}:push,pull`;
  const wrong = await get(s, hostname, certDir, tokenPath(hostname, scope), basic({ name: push.name, password: `${push.password}x` }));
  assert.is(wrong.status, 401, wrong.body);
  const anonymous = await get(s, hostname, certDir, tokenPath(hostname, scope));
  // refused outright, or a token that grants nothing
  if (anonymous.status === 200) assert.equal(tokenClaims(tokenOf(anonymous.body)).access ?? [], []);
  else assert.is(anonymous.status, 401, anonymous.body);
  const pullOnly = await get(s, hostname, certDir, tokenPath(hostname, scope), basic(pull));
  assert.is(pullOnly.status, 200, pullOnly.body);
  assert.equal(tokenClaims(tokenOf(pullOnly.body)).access, [{ type: 'repository', name: REPO, actions: ['pull'] }]);
});

withAuth('skopeo pushes with the push account and pulls with the pull account, which cannot push', async () => {
  const s = await started();
  const { certDir, workDir, image, push, pull, namespace } = s;
  const ref = `docker://${registryRef(s)}/${REPO}`;
  const pushed = await client(s, ['copy', '--dest-cert-dir', certDir, '--dest-creds', `${push.name}:${push.password}`, image.reference, `${ref}:creds`]);
  assert.is(pushed.code, 0, pushed.stderr);
  const out = join(workDir, 'pulled-creds');
  const pulled = await client(s, ['copy', '--src-cert-dir', certDir, '--src-creds', `${pull.name}:${pull.password}`, `${ref}:creds`, `oci:${out}:creds`]);
  assert.is(pulled.code, 0, pulled.stderr);
  assert.equal(readOciImageFiles(out, 'creds'), { 'hello.txt': `hello from ${namespace}\n` });
  const denied = await client(s, ['copy', '--dest-cert-dir', certDir, '--dest-creds', `${pull.name}:${pull.password}`, image.reference, `${ref}:denied`]);
  assert.is.not(denied.code, 0);
  assert.match(denied.stderr, /denied|unauthorized|authentication required/i, denied.stderr);
});

test('only a pod whose containers are all ready is Ready: the real StatefulSet controller counts it, the Service sends it connections, the ImageRegistry is Ready', async () => {
  const s = await started();
  const { cluster, namespace, hostname } = s;
  const stored = await requireObject<V1StatefulSet>(cluster, 'statefulset', NAME, namespace);
  assert.is(stored.status?.replicas, 1);
  assert.is(stored.status?.observedGeneration, stored.metadata?.generation);
  // A pod is ready only when all its containers are: without docker_auth it is not.
  assert.is(stored.status?.readyReplicas ?? 0, authMissing ? 0 : 1);
  // The Service's load balancer sends connections only to ready pods: without one, it closes them at once.
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  const throughService = await tlsHandshake(s.service, hostname, { ca });
  if (authMissing) assert.is((throughService.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', String(throughService.error));
  else assert.ok(throughService.authorized, String(throughService.error));
  const registry = await requireObject<{ status: { conditions: { type: string; status: string; reason: string }[] } }>(cluster, 'imageregistry', NAME, namespace);
  const ready = registry.status.conditions.find((c) => c.type === 'Ready');
  assert.equal([ready?.status, ready?.reason], authMissing ? ['False', 'RolloutPending'] : ['True', 'Ready']);
});

test('deleting the registry: the garbage collector deletes the StatefulSet, the kubelet stops the pod, nothing is left running', async () => {
  const s = await started();
  assert.ok(processes(s).length >= 3, 'the pod had processes');
  const deleted = await timed('delete', () => s.cluster.kubectl(['delete', 'imageregistry', NAME, '--wait=true', '--timeout=60s'], { namespace: s.namespace }));
  assert.is(deleted.code, 0, deleted.stderr);
  await waitFor('the pod to be gone', async () => (await s.cluster.kubectl(['get', 'pod', `${NAME}-0`], { namespace: s.namespace })).code !== 0, 60_000);
  await waitFor('no process left in the pod', async () => processes(s).length === 0, 30_000);
  const connectResult = () => new Promise<string>((resolve) => {
    const socket = tcpConnect(s.service.port, s.service.address);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
  // the garbage collector deletes the Service too; its load balancer closes with it
  await waitFor(`the load balancer of ${s.hostname} to close`, async () => (await connectResult()) === 'ECONNREFUSED', 30_000);
  console.log(`timings (ms): ${JSON.stringify(timings)}`);
});

test.after(async () => {
  // A failed test must not leave the registry running for the next files, nor files behind.
  const current = await setup?.catch(() => undefined);
  if (current) await current.cluster.kubectl(['delete', 'namespace', current.namespace, '--wait=false']);
  if (createdWorkDir) rmSync(createdWorkDir, { recursive: true, force: true });
});

test.run();

// ---------------------------------------------------------------------------------------------

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

function tlsHandshake(to: RegistryAddress, hostname: string, options: { ca?: string; servername?: string }): Promise<{ authorized: boolean; error?: unknown; cert?: PeerCertificate }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: hostname, port: to.port, lookup: to.lookup, servername: options.servername ?? hostname, ...(options.ca ? { ca: options.ca } : {}) });
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

/** An HTTPS GET to the registry hostname through the front (Setup.front), trusting only the Secret's CA. */
function get(s: Setup, hostname: string, certDir: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port: s.front.port, path, headers, lookup: s.front.lookup, ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'), agent: false },
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

/** skopeo's error when the token realm https://<hostname>/auth/token refuses the connection. */
function realmRefused(hostname: string, address: string): RegExp {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`"https://${escape(hostname)}/auth/token\\?[^"]*": dial tcp ${escape(address)}:443: connect: connection refused`);
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
