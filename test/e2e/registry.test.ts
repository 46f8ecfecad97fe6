// End to end: one ImageRegistry as the real reconcile Job (run by the real Job controller on the
// real node) writes it; its StatefulSet's pod, created by the real StatefulSet controller and bound
// by the real scheduler, runs on the real node — kubelet, containerd and runc run registry,
// docker_auth and nginx from their images, with the volumes the kubelet materialises from the
// stored Secrets and ConfigMap. The checks of what runs look at the containers' processes from the
// host, where containerd reports them (test/support/node/node-access.ts). Clients reach the
// registry as a cluster's clients would: its hostname resolves to the LoadBalancer Service's
// address, which kube-proxy's rules answer in the node's network namespace.
//
// The tests that need docker_auth (auth_server) skip, saying why, where it could not be built (the
// Go module proxy some machines reach refuses it). Without it the pod is never Ready, so the
// Service sends it no connection (checked below, as a cluster behaves); the tests of TLS, nginx
// and the registry's half of token auth — it must accept tokens signed with the key of
// `<r>-auth-tls` and refuse others; the tests sign their own — need no docker_auth and reach the
// pod's nginx at its pod IP instead (routed from the host into the node's network), as a client
// in the cluster network can.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { registryHostname, tokenIssuer } from '../../functions/names.ts';
import { NGINX_CONFIG_PATH, NGINX_IPV4_CONFIG_PATH, NGINX_TLS_DIR } from '../../functions/nginx-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { installOperatorBase } from '../support/operator.ts';
import { readOciImageFiles, writeOciImage, type OciImage } from '../support/oci-image.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { containerPid, nodeAccess, type NodeAccess, processAlive } from '../support/node/node-access.ts';
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
  node: NodeAccess;
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
  /** the pod's uid: containerd labels its containers with it */
  podUid: string;
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
  const podUid = pod.metadata?.uid;
  if (!podUid) throw new Error(`pod ${NAME}-0 has no uid`);
  return { cluster, node: nodeAccess(cluster), namespace, hostname, workDir, certDir, service, front, ...(frontHosts ? { frontHosts } : {}), pod, podUid, tokenKeyPem, push, pull, image };
}

const client = (s: Setup, args: string[]) => s.cluster.runClient(SKOPEO, args, { binds: [s.workDir], ...(s.frontHosts ? { hostsFile: s.frontHosts } : {}) });
/** The registry in image references: its hostname, with the front's port unless that is 443. */
const registryRef = (s: Setup) => (s.front.port === 443 ? s.hostname : `${s.hostname}:${s.front.port}`);
/** host pid of each running container's main process (its pid 1), by container name */
const containerPids = (s: Setup) => s.node.podContainerPids(s.podUid);

test('the StatefulSet controller made the pod from the stored template; the scheduler bound it; its containers run the spec', async () => {
  const s = await started();
  const stored = await requireObject<V1StatefulSet>(s.cluster, 'statefulset', NAME, s.namespace);
  const specs = stored.spec?.template.spec?.containers ?? [];
  const spec = (name: string) => specs.find((c) => c.name === name);
  assert.equal(s.pod.spec?.containers.map((c) => c.name), specs.map((c) => c.name));
  assert.is(s.pod.spec?.nodeName, s.node.nodeName);
  assert.is(s.pod.metadata?.ownerReferences?.[0]?.kind, 'StatefulSet');
  const byName = Object.fromEntries((s.pod.status?.containerStatuses ?? []).map((c) => [c.name, c]));
  // What each container runs: the argv containerd handed runc (its runtime spec) is the container's
  // command as Kubernetes defines it — `command`, else the image's entrypoint, followed by `args`,
  // else (no command) the image's cmd.
  const containers = await runningContainers(s);
  const described = [...containers].map(([name, c]) => `${name} (pid ${c.pid}): ${c.args.join(' ')} → ${c.cmdline.join(' ')}`).join('\n');
  for (const name of authMissing ? ['nginx', 'registry'] : ['nginx', 'registry', 'auth']) {
    const c = containers.get(name);
    assert.ok(c, `${name} runs:\n${described}`);
    const { command, args } = spec(name) ?? {};
    assert.equal(c.args, [...(command ?? c.imageEntrypoint), ...(args ?? (command ? [] : c.imageCmd))], `${name} runs the container command:\n${described}`);
    // the container's main process is pid 1 of its own pid namespace
    assert.match(readProc(c.pid, 'status'), /^NSpid:\s+\d+\s+1$/m, described);
  }
  // The processes they became. nginx: the start script execs nginx with the config for this
  // kernel (nginx then names itself "nginx: master process <its argv>").
  const conf = existsSync('/proc/net/if_inet6') ? NGINX_CONFIG_PATH : NGINX_IPV4_CONFIG_PATH;
  assert.equal(containers.get('nginx')?.cmdline, [`nginx: master process nginx -e stderr -c ${conf} -g daemon off;`], described);
  // registry has only args: the image's entrypoint (upstream's entrypoint.sh) execs `registry` with them
  assert.equal(containers.get('registry')?.args[0], '/entrypoint.sh');
  assert.equal(containers.get('registry')?.cmdline, ['registry', ...(spec('registry')?.args ?? [])], described);
  if (!authMissing) {
    // auth has only args too: the image's entrypoint is auth_server itself
    assert.equal(containers.get('auth')?.cmdline, ['/docker_auth/auth_server', ...(spec('auth')?.args ?? [])], described);
  }
  assert.ok(byName.nginx?.ready && byName.registry?.ready, JSON.stringify(s.pod.status?.containerStatuses));
  if (authMissing) {
    // the node has no docker_auth image, and no registry to pull it from
    const image = spec('auth')?.image ?? '';
    assert.match(byName.auth?.state?.waiting?.reason ?? '', /^(ErrImagePull|ImagePullBackOff)$/, JSON.stringify(byName.auth));
    assert.ok((byName.auth?.state?.waiting?.message ?? '').includes(image.split('/').at(-1) ?? image), JSON.stringify(byName.auth));
    assert.not.ok(containers.has('auth'));
  } else {
    assert.ok(byName.auth?.ready, 'docker_auth is ready');
  }
});

test('containers run as their securityContext users, in the pod network namespace, with volumes owned by fsGroup', async () => {
  const s = await started();
  const processes = await s.node.podContainerProcesses(s.podUid);
  assert.equal([...processes.keys()].sort(), (authMissing ? ['nginx', 'registry'] : ['auth', 'nginx', 'registry']));
  // nginx: its master and the workers it started (worker_processes 2), all in the container
  assert.ok((processes.get('nginx') ?? []).length >= 3, `nginx master and workers: ${processes.get('nginx')}`);
  const users = new Map<string, Set<number>>();
  const networks = new Set<string>();
  for (const [name, pids] of processes) {
    for (const pid of pids) {
      const status = readProc(pid, 'status');
      if (!status) continue; // exited meanwhile
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
      users.set(name, (users.get(name) ?? new Set()).add(uid));
      assert.ok(groups.includes(1000), `${name} has the fsGroup as supplementary group: ${groups}`);
      assert.match(status, /^CapEff:\s+0+$/m, `${name} has no capabilities`);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      networks.add(readLink(pid, 'ns/net'));
    }
  }
  assert.equal([...(users.get('nginx') ?? [])], [101], 'nginx master and workers run as 101');
  assert.equal([...(users.get('registry') ?? [])], [1000]);
  if (!authMissing) {
    const authUser = (await requireObject<V1StatefulSet>(s.cluster, 'statefulset', NAME, s.namespace)).spec?.template.spec?.containers.find((c) => c.name === 'auth')?.securityContext?.runAsUser;
    assert.equal([...(users.get('auth') ?? [])], [authUser]);
  }
  // one network namespace for every container: the pod sandbox's, not the host's
  assert.is(networks.size, 1, [...networks].join(', '));
  const sandbox = await podSandboxPid(s);
  assert.equal([...networks], [readLink(sandbox, 'ns/net')], 'the containers join the pod sandbox network namespace');
  assert.is.not([...networks][0], readLink(process.pid, 'ns/net'));
  // the Secret volume as the kubelet made it: its files are symlinks into ..data/, stat follows them
  const tls = s.node.podVolume(s.podUid, 'secret', 'tls');
  const key = statSync(join(tls, 'tls.key'));
  assert.is(key.mode & 0o777, 0o440, 'Secret defaultMode 0440');
  assert.is(key.gid, 1000, 'owned by the fsGroup');
  assert.is(key.uid, 0);
  assert.ok(existsSync(join(tls, 'tls.crt')));
  assert.not.ok(existsSync(join(tls, 'ca.crt')), 'items projection: only tls.crt and tls.key');
  // and nginx sees exactly that volume at its mount path
  const nginxPid = (await containerPids(s)).get('nginx') ?? 0;
  assert.is(readProc(nginxPid, `root${NGINX_TLS_DIR}/tls.key`), readFileSync(join(tls, 'tls.key'), 'utf8'));
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
  const pids = await containerPids(s);
  const registryPid = pids.get('registry');
  const nginxPid = pids.get('nginx');
  assert.ok(registryPid && nginxPid, 'registry and nginx run');
  // a file as the container sees it: its root, with its mounts, through /proc/<pid>/root
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
  // the kubelet's periodic sync of the pod comes every --sync-frequency (a minute, plus up to half of
  // it as jitter): about one run in fifty has it fall in these 1.5 s, and then the touch proves nothing
  const syncedAlready = inContainer(registryPid, '/etc/docker/registry/marker.txt') === marker;
  if (syncedAlready) console.log('the periodic sync came before the touch: the at-once part is not shown this run');
  const touched = await cluster.kubectl(['annotate', 'pod', `${NAME}-0`, `e2e/touched=${Date.now()}`, '--overwrite'], { namespace });
  assert.is(touched.code, 0, touched.stderr);
  // any update of the pod makes the kubelet sync it, and that sync remounts its Secret and ConfigMap volumes
  await waitFor('the new key in the directory mount', async () => inContainer(registryPid, '/etc/docker/registry/marker.txt') === marker, 5_000);
  assert.is((await containerPids(s)).get('registry'), registryPid, 'the same registry process sees the new file: no restart');
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
  // The Service sends connections only to ready pods: without one, kube-proxy's rules reject them
  // (an ICMP port unreachable: the client sees the connection refused).
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  const throughService = await tlsHandshake(s.service, hostname, { ca });
  if (authMissing) assert.is((throughService.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED', String(throughService.error));
  else assert.ok(throughService.authorized, String(throughService.error));
  const registry = await requireObject<{ status: { conditions: { type: string; status: string; reason: string }[] } }>(cluster, 'imageregistry', NAME, namespace);
  const ready = registry.status.conditions.find((c) => c.type === 'Ready');
  assert.equal([ready?.status, ready?.reason], authMissing ? ['False', 'RolloutPending'] : ['True', 'Ready']);
});

test('deleting the registry: the garbage collector deletes the StatefulSet, the kubelet stops the pod, nothing is left running', async () => {
  const s = await started();
  const before = await containerPids(s);
  assert.equal([...before.keys()].sort(), authMissing ? ['nginx', 'registry'] : ['auth', 'nginx', 'registry'], 'the pod had its containers running');
  const sandbox = await podSandboxPid(s);
  // before: the address answers (kube-proxy sends the connection to the pod, or rejects it while the pod is not ready)
  assert.is(await connectResult(s.service), authMissing ? 'ECONNREFUSED' : 'connected');
  const deleted = await timed('delete', () => s.cluster.kubectl(['delete', 'imageregistry', NAME, '--wait=true', '--timeout=60s'], { namespace: s.namespace }));
  assert.is(deleted.code, 0, deleted.stderr);
  await waitFor('the pod to be gone', async () => (await s.cluster.kubectl(['get', 'pod', `${NAME}-0`], { namespace: s.namespace })).code !== 0, 60_000);
  await waitFor('no container of the pod running', async () => (await s.node.runningContainerIds(s.podUid)).length === 0, 30_000);
  // the kubelet had containerd stop every container and the sandbox: none of their processes is left
  await waitFor('the processes of the pod to end', async () => [...before.values(), sandbox].every((pid) => !processAlive(pid)), 30_000);
  const sandboxes = await s.node.crictl(['pods', '-q', '--state', 'ready', '--label', `io.kubernetes.pod.uid=${s.podUid}`]);
  assert.is(sandboxes.code, 0, sandboxes.stderr);
  assert.is(sandboxes.stdout.trim(), '', 'no ready pod sandbox');
  // The garbage collector deletes the Service too, and its load-balancer address goes with it:
  // kube-proxy drops its rules (while the Service has no endpoints they still reject connections),
  // then nothing in the node's network answers the address any more — a connection attempt gets
  // no answer at all, where it was accepted before.
  await waitFor('the Service to be gone', async () => (await s.cluster.kubectl(['get', 'service', NAME], { namespace: s.namespace })).code !== 0, 30_000);
  const results: string[] = [];
  await waitFor(`the load-balancer address of ${s.hostname} to answer no more`, async () => {
    results.push(await connectResult(s.service));
    return results.at(-1) === 'timeout';
  }, 30_000).catch((error: Error) => {
    throw new Error(`${error.message}: ${results.join(', ')}`);
  });
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

interface RunningContainer {
  /** host pid of its main process */
  pid: number;
  /** the argv containerd gave runc (the OCI runtime spec's process.args) */
  args: string[];
  /** that process's argv now (after the execs of an entrypoint script; nginx rewrites its own) */
  cmdline: string[];
  imageEntrypoint: string[];
  imageCmd: string[];
}

/** The running containers of the pod as containerd knows them, by container name. */
async function runningContainers(s: Setup): Promise<Map<string, RunningContainer>> {
  const listed = await s.node.crictl(['ps', '-o', 'json', '--state', 'running', '--label', `io.kubernetes.pod.uid=${s.podUid}`]);
  if (listed.code !== 0) throw new Error(`crictl ps: ${listed.stderr}`);
  const containers = new Map<string, RunningContainer>();
  for (const { id, metadata, imageRef } of (JSON.parse(listed.stdout) as { containers: { id: string; metadata: { name: string }; imageRef: string }[] }).containers) {
    const inspected = await s.node.crictl(['inspect', id]);
    if (inspected.code !== 0) throw new Error(`crictl inspect ${id}: ${inspected.stderr}`);
    const info = (JSON.parse(inspected.stdout) as { info: { pid: number; runtimeSpec: { process: { args: string[] } } } }).info;
    const image = await s.node.crictl(['inspecti', imageRef]);
    if (image.code !== 0) throw new Error(`crictl inspecti ${imageRef}: ${image.stderr}`);
    const config = (JSON.parse(image.stdout) as { info: { imageSpec: { config: { Entrypoint?: string[]; Cmd?: string[] } } } }).info.imageSpec.config;
    containers.set(metadata.name, {
      pid: info.pid,
      args: info.runtimeSpec.process.args,
      cmdline: readProc(info.pid, 'cmdline').split('\0').filter(Boolean),
      imageEntrypoint: config.Entrypoint ?? [],
      imageCmd: config.Cmd ?? [],
    });
  }
  return containers;
}

/** host pid of the pod sandbox's process (the pause container, which holds the pod's namespaces) */
async function podSandboxPid(s: Setup): Promise<number> {
  const listed = await s.node.crictl(['pods', '-q', '--state', 'ready', '--label', `io.kubernetes.pod.uid=${s.podUid}`]);
  const id = listed.stdout.trim().split('\n')[0];
  if (listed.code !== 0 || !id) throw new Error(`no ready sandbox of pod ${s.podUid}: ${listed.stderr}`);
  const pid = await containerPid(s.node.crictl, id, 'inspectp');
  if (!pid) throw new Error(`crictl inspectp ${id}: no pid`);
  return pid;
}

function readLink(pid: number, file: string): string {
  try {
    return readlinkSync(`/proc/${pid}/${file}`);
  } catch {
    return '';
  }
}

/** 'connected', the error code of a refused or failed connect, or 'timeout' when nothing answers within 3 s */
function connectResult(to: RegistryAddress): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = tcpConnect(to.port, to.address);
    socket.setTimeout(3_000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

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
