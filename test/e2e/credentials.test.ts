// "Ready means usable", end to end with the real docker_auth on the real node: a push secret's
// credentials push on the first try the moment its CR is Ready — for new CRs and after a forced
// rotation (the old credentials still push too) — and with two replicas a credential is not
// declared usable while one pod's docker_auth still refuses it, and an image pushed to one pod is
// pulled from the other. The node's kubelet refreshes a pod's Secret volumes on its periodic sync
// (--sync-frequency, 1m by default, plus jitter) and at once when the pod is updated; the Jobs
// annotate the pods to get the latter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashSync } from 'bcryptjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUTH_CONFIG_PATH } from '../../functions/docker-auth-config.ts';
import { registryHostname } from '../../functions/names.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { nodeAccess } from '../support/node/node-access.ts';
import { writeOciImage, type OciImage } from '../support/oci-image.ts';
import { installOperatorBase, OPERATOR_NAMESPACE } from '../support/operator.ts';
import { delay, waitFor } from '../support/processes.ts';
import { applyObjects, getObject, listObjects, serverSide } from '../support/kubectl.ts';
import { podWithReadyContainers, runReconcileJob, secretKey } from '../support/registry-e2e.ts';
import { waitForJob } from '../support/jobs.ts';

type Obj = Record<string, any>;
const SKOPEO = '/usr/bin/skopeo';
const cluster = await testCluster();
const authMissing = authServerUnavailable(cluster.assetsDir);
if (authMissing) console.log(`SKIP credential tests: they need docker_auth, and auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;
let config = operatorConfigFromEnv({});
const node = nodeAccess(cluster);

interface Registry {
  namespace: string;
  name: string;
  hostname: string;
  workDir: string;
  image: OciImage;
}

const workDirs: string[] = [];
const namespaces: string[] = [];

async function registry(prefix: string, spec: Obj = {}): Promise<Registry> {
  const namespace = await cluster.createNamespace(prefix);
  namespaces.push(namespace);
  const name = 'registry';
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name }, spec }, namespace, serverSide('e2e-test'));
  await runReconcileJob(cluster, namespace, name, config);
  for (let i = 0; i < (spec.replicas ?? 1); i++) await podWithReadyContainers(cluster, namespace, `${name}-${i}`, ['nginx', 'registry', 'auth']);
  const workDir = mkdtempSync(join(tmpdir(), 'iro-credentials-'));
  workDirs.push(workDir);
  const image = writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': `hello from ${namespace}\n` });
  return { namespace, name, hostname: registryHostname(name, namespace, config.dnsZone), workDir, image };
}

const readyOf = (cr: Obj | undefined) => (cr?.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');

/** A push with exactly what the Secret hands out (config.json as authfile, ca.crt), first try. */
async function pushWithSecret(r: Registry, secretName: string, tag: string): Promise<{ code: number; stderr: string }> {
  const dir = join(r.workDir, `${secretName}-${tag}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), await secretKey(cluster, r.namespace, secretName, 'config.json'));
  writeFileSync(join(dir, 'ca.crt'), await secretKey(cluster, r.namespace, secretName, 'ca.crt'));
  return pushWithFiles(r, dir, tag);
}

function pushWithFiles(r: Registry, dir: string, tag: string): Promise<{ code: number; stderr: string }> {
  return cluster.runClient(SKOPEO, ['copy', '--authfile', join(dir, 'config.json'), '--dest-cert-dir', dir, r.image.reference, `docker://${r.hostname}/${r.namespace}/app:${tag}`], { binds: [r.workDir] });
}

withAuth('20 push secrets created one after another: the first push the moment each Secret appears, and again at Ready, succeeds (0 failures)', async () => {
  config = await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: '120s', OPERATOR_CREDENTIALS_TIMEOUT: '90s' });
  // the node's kubelet runs with the default --sync-frequency: the first pushes below cannot owe
  // their success to a quick periodic refresh of the registry pods' Secret volumes
  assert.is(await kubeletSyncFrequencyMs(), 60_000, 'the kubelet refreshes Secret volumes every 60 s (its default 1m)');
  const r = await registry('ready-usable');
  const failures: string[] = [];
  const secretAfterMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const name = `app-${i}`;
    const secretName = `${name}-image-push-secret`;
    const started = Date.now();
    await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name }, spec: {} }, r.namespace, serverSide('e2e-test'));
    // the Job the webhook would enqueue for this registry
    const jobDone = runReconcileJob(cluster, r.namespace, r.name, config);
    // a client that reads the Secret the moment it exists (before Ready is even set) …
    await waitFor(`Secret ${secretName}`, async () => (await getObject(cluster, 'secret', secretName, r.namespace)) !== undefined, 180_000, () => undefined);
    secretAfterMs.push(Date.now() - started);
    const early = await pushWithSecret(r, secretName, `early-${i}`);
    if (early.code !== 0) failures.push(`${name} (Secret just written): ${early.stderr.trim().split('\n').at(-1)}`);
    // … and one that waits for Ready, as `kubectl wait --for=condition=Ready` does
    await waitFor(`${name} Ready`, async () => readyOf(await getObject(cluster, 'imagepushsecret', name, r.namespace))?.status === 'True', 60_000, () => undefined);
    const atReady = await pushWithSecret(r, secretName, `ready-${i}`);
    if (atReady.code !== 0) failures.push(`${name} (Ready): ${atReady.stderr.trim().split('\n').at(-1)}`);
    await jobDone;
  }
  const sorted = [...secretAfterMs].sort((a, b) => a - b);
  console.log(`   applied → Secret (incl. the Job's start): p50 ${(sorted[9]! / 1000).toFixed(1)} s, max ${(sorted[19]! / 1000).toFixed(1)} s; first pushes failed: ${failures.length}/40`);
  assert.equal(failures, [], 'every first push succeeds');
});

withAuth('forced rotation: the moment the status shows the new rotation, the new credentials push on the first try; the old ones still push', async () => {
  const r = await registry('rotation');
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: {} }, r.namespace, serverSide('e2e-test'));
  await runReconcileJob(cluster, r.namespace, r.name, config);
  const before = await getObject(cluster, 'imagepushsecret', 'app', r.namespace);
  assert.is(readyOf(before)?.status, 'True', JSON.stringify(readyOf(before)));
  assert.ok(before?.status.expiryDate, 'the status says when the credentials expire');
  const oldDir = join(r.workDir, 'old');
  mkdirSync(oldDir);
  writeFileSync(join(oldDir, 'config.json'), await secretKey(cluster, r.namespace, 'app-image-push-secret', 'config.json'));
  writeFileSync(join(oldDir, 'ca.crt'), await secretKey(cluster, r.namespace, 'app-image-push-secret', 'ca.crt'));

  const job = `rotate-${Date.now()}`;
  const created = await cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-rotate', job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  await waitFor('the status to show the new rotation', async () => (await getObject(cluster, 'imagepushsecret', 'app', r.namespace))?.status.rotation === before?.status.rotation + 1, 180_000, () => undefined);
  const pushed = await pushWithSecret(r, 'app-image-push-secret', 'rotated');
  assert.is(pushed.code, 0, `new credentials, first try: ${pushed.stderr}`);
  const old = await pushWithFiles(r, oldDir, 'old');
  assert.is(old.code, 0, `the previous credentials still work: ${old.stderr}`);
  const after = await getObject(cluster, 'imagepushsecret', 'app', r.namespace);
  assert.ok(Date.parse(after?.status.expiryDate) > Date.parse(before?.status.expiryDate), 'a later expiry');
  assert.is((await waitForJob(cluster, OPERATOR_NAMESPACE, job, 180_000)).result, 'Complete');
});

withAuth('two replicas: a credential is not declared usable while one pod’s docker_auth still refuses it; the pods share their images', async () => {
  const r = await registry('two-replicas', { replicas: 2 });
  // what each pod's docker_auth reads: its auth container's view of the mounted auth config
  const authPids = await Promise.all([0, 1].map(async (i) => {
    const uid = (await getObject(cluster, 'pod', `${r.name}-${i}`, r.namespace))?.metadata.uid as string;
    const pid = (await node.podContainerPids(uid)).get('auth');
    assert.ok(pid, `the auth container of ${r.name}-${i} runs`);
    return pid;
  }));
  const initial = authPids.map(mountedAuthConfig);
  // hold back the kubelet's refresh of pod registry-1's Secret volumes: its docker_auth keeps the old config
  const held = await holdSecretVolumes(r.namespace, `${r.name}-1`);
  const impatient = operatorConfigFromEnv({ OPERATOR_ROLLOUT_TIMEOUT: '120s', OPERATOR_CREDENTIALS_TIMEOUT: '10s' });
  try {
    await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: {} }, r.namespace, serverSide('e2e-test'));
    let everReady = false;
    let loaded = [false, false];
    const job = runReconcileJob(cluster, r.namespace, r.name, impatient);
    let finished = false;
    void job.finally(() => (finished = true));
    while (!finished) {
      everReady ||= readyOf(await getObject(cluster, 'imagepushsecret', 'app', r.namespace))?.status === 'True';
      loaded = loaded.map((seen, i) => seen || mountedAuthConfig(authPids[i]!) !== initial[i]);
      await delay(200);
    }
    await job;
    assert.equal(loaded, [true, false], 'the kubelet refreshed registry-0\'s auth config; registry-1\'s stayed as it was');
    assert.not.ok(everReady, 'never Ready while registry-1 refuses the credentials');
    const cr = await getObject(cluster, 'imagepushsecret', 'app', r.namespace);
    assert.equal([readyOf(cr)?.status, readyOf(cr)?.reason], ['False', 'CredentialsPending']);
    assert.match(readyOf(cr)?.message, `${r.name}-1`, readyOf(cr)?.message);
    assert.not.match(readyOf(cr)?.message, `${r.name}-0`, `registry-0 accepted them: ${readyOf(cr)?.message}`);
    assert.match(readyOf(cr)?.message, 'did not load its new configuration');
    assert.is(await getObject(cluster, 'secret', 'app-image-push-secret', r.namespace), undefined, 'nothing handed out');
    const accounts = await listObjects(cluster, 'imageregistryaccounts', r.namespace);
    assert.equal(accounts.map((a) => a.metadata.name), [], 'the unconfirmed account is deleted again');
  } finally {
    await held.release();
  }
  // the next Job (webhook, resync) finishes: both pods accept, the CR is Ready and each pod's
  // docker_auth issues a token for its Secret's credentials (asked by pod IP, as the Job does)
  await runReconcileJob(cluster, r.namespace, r.name, config);
  const cr = await getObject(cluster, 'imagepushsecret', 'app', r.namespace);
  assert.is(readyOf(cr)?.status, 'True', JSON.stringify(readyOf(cr)));
  const username = await secretKey(cluster, r.namespace, 'app-image-push-secret', 'username');
  const password = await secretKey(cluster, r.namespace, 'app-image-push-secret', 'password');
  const ca = await secretKey(cluster, r.namespace, 'app-image-push-secret', 'ca.crt');
  const ips: string[] = [];
  for (const name of [`${r.name}-0`, `${r.name}-1`]) {
    const ip = (await getObject(cluster, 'pod', name, r.namespace))?.status.podIP as string;
    ips.push(ip);
    assert.is(await tokenStatus(ip, r.hostname, ca, username, password), 200, `${name} accepts the credentials`);
    assert.is(await tokenStatus(ip, r.hostname, ca, username, `${password}x`), 401, `${name} refuses a wrong password`);
  }
  // the replicas share one volume: an image pushed to one pod is pulled from the other. Each pod
  // is addressed by IP (its certificate names the hostname only, hence no TLS verification for
  // these two copies); the token comes from the realm, the registry hostname, as usual.
  const creds = `${username}:${password}`;
  const pushed = await cluster.runClient(SKOPEO, ['copy', '--dest-tls-verify=false', '--dest-creds', creds, r.image.reference, `docker://${ips[0]}:8443/${r.namespace}/app:shared`], { binds: [r.workDir] });
  assert.is(pushed.code, 0, `push to ${r.name}-0: ${pushed.stderr}`);
  const target = join(r.workDir, 'pulled-from-1');
  const pulled = await cluster.runClient(SKOPEO, ['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${ips[1]}:8443/${r.namespace}/app:shared`, `dir:${target}`], { binds: [r.workDir] });
  assert.is(pulled.code, 0, `pull from ${r.name}-1: ${pulled.stderr}`);
  assert.ok(existsSync(join(target, 'manifest.json')), 'the manifest pushed to the other pod');
});

/** Milliseconds from `since` until the pod's docker_auth refuses the credentials (polled every 100 ms). */
async function refusedAfter(ip: string, r: Registry, ca: string, username: string, password: string, since: number): Promise<number> {
  await waitFor(`pod ${ip} to refuse ${username}`, async () => (await tokenStatus(ip, r.hostname, ca, username, password)) === 401, 120_000, () => undefined);
  return Date.now() - since;
}

const p95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.ceil(values.length * 0.95) - 1] ?? NaN;

withAuth('revocation is prompt: a deleted ImagePushSecret, an account deleted by hand and one expired by TTL are refused by every pod once its Job touched them, not at the kubelet\'s 60 s sync; nothing pushes after the Revoked Event', async () => {
  const r = await registry('revocation', { replicas: 2 });
  const ips = await Promise.all([0, 1].map(async (i) => (await getObject(cluster, 'pod', `${r.name}-${i}`, r.namespace))?.status.podIP as string));
  const deletions: number[] = [];
  const pushesAfterEvent: string[] = [];
  for (let i = 0; i < 10; i++) {
    const name = `gone-${i}`;
    const secretName = `${name}-image-push-secret`;
    await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name }, spec: {} }, r.namespace, serverSide('e2e-test'));
    await runReconcileJob(cluster, r.namespace, r.name, config);
    assert.is(readyOf(await getObject(cluster, 'imagepushsecret', name, r.namespace))?.status, 'True', `${name} Ready`);
    const [username, password, ca] = await Promise.all(['username', 'password', 'ca.crt'].map((k) => secretKey(cluster, r.namespace, secretName, k)));
    const dir = join(r.workDir, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), await secretKey(cluster, r.namespace, secretName, 'config.json'));
    writeFileSync(join(dir, 'ca.crt'), ca!);
    const started = Date.now();
    const deleted = await cluster.kubectl(['delete', 'imagepushsecret', name, '--wait=false'], { namespace: r.namespace });
    assert.is(deleted.code, 0, deleted.stderr);
    // the reconcile Job the webhook enqueues for the deletion (its coalescing window adds up to 2 s)
    const job = runReconcileJob(cluster, r.namespace, r.name, config);
    const times = await Promise.all(ips.map((ip) => refusedAfter(ip, r, ca!, username!, password!, started)));
    deletions.push(Math.max(...times));
    await job;
    await waitFor(`the Revoked Event of ${username}`, async () => {
      const events = (await listObjects(cluster, 'events', r.namespace)).filter((e) => e.reason === 'Revoked');
      return events.some((e: Obj) => String(e.message).includes(username!));
    }, 60_000, () => undefined);
    const pushed = await pushWithFiles(r, dir, `after-revoked-${i}`);
    if (pushed.code === 0) pushesAfterEvent.push(name);
  }
  // an account deleted by hand (a static one): the reconcile of the account change drops it
  const hash = hashSync('hand-deleted-password', 4);
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: 'by-hand' }, spec: { password: hash, labels: { accessMode: ['push'] } } }, r.namespace, serverSide('e2e-test'));
  await runReconcileJob(cluster, r.namespace, r.name, config);
  const caPem = readFileSync(join(r.workDir, 'gone-0', 'ca.crt'), 'utf8');
  await waitFor('by-hand accepted', async () => (await tokenStatus(ips[0]!, r.hostname, caPem, 'by-hand', 'hand-deleted-password')) === 200, 120_000, () => undefined);
  const handStarted = Date.now();
  assert.is((await cluster.kubectl(['delete', 'imageregistryaccount', 'by-hand', '--wait=false'], { namespace: r.namespace })).code, 0);
  const handJob = runReconcileJob(cluster, r.namespace, r.name, config);
  const byHand = Math.max(...(await Promise.all(ips.map((ip) => refusedAfter(ip, r, caPem, 'by-hand', 'hand-deleted-password', handStarted)))));
  await handJob;
  // an account whose ttl ends: refused by the next run (the resync, here a reconcile Job)
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistryAccount', metadata: { name: 'short-lived' }, spec: { password: hash, labels: { accessMode: ['push'] }, ttl: '40s' } }, r.namespace, serverSide('e2e-test'));
  await runReconcileJob(cluster, r.namespace, r.name, config);
  await waitFor('short-lived accepted', async () => (await tokenStatus(ips[0]!, r.hostname, caPem, 'short-lived', 'hand-deleted-password')) === 200, 120_000, () => undefined);
  await delay(41_000);
  const expiryRun = Date.now();
  const run = runReconcileJob(cluster, r.namespace, r.name, config);
  const expired = Math.max(...(await Promise.all(ips.map((ip) => refusedAfter(ip, r, caPem, 'short-lived', 'hand-deleted-password', expiryRun)))));
  await run;
  const sorted = [...deletions].sort((a, b) => a - b);
  console.log(`   revocation, deletion → refused by both pods: p50 ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(1)} s, p95 ${(p95(deletions) / 1000).toFixed(1)} s, max ${(Math.max(...deletions) / 1000).toFixed(1)} s over ${deletions.length}; account deleted by hand ${(byHand / 1000).toFixed(1)} s; expired account after the next run's start ${(expired / 1000).toFixed(1)} s`);
  assert.equal(pushesAfterEvent, [], 'no push with revoked credentials succeeds after the Revoked Event');
  // prompt means by the Job's touch of the pods, not by the kubelet's periodic volume sync (the
  // figures above are the measurement; speed itself is not asserted)
  const sync = await kubeletSyncFrequencyMs();
  assert.ok(Math.max(...deletions, byHand, expired) < sync, `every refusal before the ${sync} ms periodic sync: ${[...deletions, byHand, expired].join(', ')} ms`);
});

/** The auth config a docker_auth container sees in its mounted volume (the container's root through /proc). */
function mountedAuthConfig(pid: number): string {
  return readFileSync(`/proc/${pid}/root${AUTH_CONFIG_PATH}`, 'utf8');
}

/** A Go duration as the kubelet's configz writes it ("1m0s", "5s", "1h0m0.5s"), in ms. */
function goDurationMs(value: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) ms += Number(amount) * (units[unit ?? ''] ?? NaN);
  return ms;
}

/** The running kubelet's --sync-frequency, from its /configz through the API server's node proxy, in ms. */
async function kubeletSyncFrequencyMs(): Promise<number> {
  const got = await cluster.kubectl(['get', '--raw', `/api/v1/nodes/${node.nodeName}/proxy/configz`]);
  assert.is(got.code, 0, got.stderr);
  const { syncFrequency } = (JSON.parse(got.stdout) as { kubeletconfig: { syncFrequency: string } }).kubeletconfig;
  return goDurationMs(syncFrequency);
}

/**
 * Holds back the kubelet's refresh of a pod's Secret volumes, as on a node whose kubelet has not
 * synced the pod yet: a tmpfs mounted over each of them in the node's mount namespace takes the
 * kubelet's writes (it finds a memory-backed mount point, as its own, and its atomic writer
 * succeeds), while the containers keep the mount of the volume's own tmpfs they got when they
 * started (nothing propagates into them): the files they read stay as they were while the Secret
 * is new. Released, the kubelet's tmpfs is back, stale, and its next sync of the pod (the pod's
 * next update, or the periodic sync) writes the current Secret into it. A write that fails instead
 * (a read-only mount) would not do: the kubelet then tears the volume down, emptying the
 * containers' files too; nor would the kubelet stopped with SIGSTOP: it would hold back every pod,
 * and the reconcile Job's own pod runs on this node.
 */
async function holdSecretVolumes(namespace: string, podName: string): Promise<{ release(): Promise<void> }> {
  const uid = (await getObject(cluster, 'pod', podName, namespace))?.metadata.uid as string;
  const dir = `/var/lib/kubelet/pods/${uid}/volumes/kubernetes.io~secret`;
  const volumes = readdirSync(node.nodePath(dir));
  assert.ok(volumes.includes('auth-config'), `${podName}'s Secret volumes: ${volumes.join(', ')}`);
  // in the node's mount namespace, where the kubelet mounted them
  const inNode = (command: string, args: string[]) => node.onNode(command, args, { hostNetwork: false });
  const held: string[] = [];
  const release = async () => {
    for (const path of held.splice(0)) {
      let unmounted = await inNode('umount', [path]);
      for (let attempt = 0; unmounted.code !== 0 && attempt < 20; attempt++) {
        await delay(250);
        unmounted = await inNode('umount', [path]);
      }
      if (unmounted.code !== 0) throw new Error(`unmounting the tmpfs over ${path}: ${unmounted.stderr}`);
    }
  };
  try {
    for (const volume of volumes) {
      const path = `${dir}/${volume}`;
      const mounted = await inNode('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'iro-held-volume', path]);
      if (mounted.code !== 0) throw new Error(`mounting a tmpfs over ${path}: ${mounted.stderr}`);
      held.push(path);
    }
  } catch (error) {
    await release();
    throw error;
  }
  return { release };
}

/** GET /auth/token from one pod's nginx by its IP (TLS verified under the registry hostname). */
function tokenStatus(ip: string, hostname: string, ca: string, username: string, password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ip, port: 8443, servername: hostname, ca, path: `/auth/token?service=${hostname}&account=${username}`, agent: false,
      headers: { host: hostname, authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject).end();
  });
}

test.after(async () => {
  for (const ns of namespaces) await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
