// End to end: a pull-through cache (spec.proxy) on the real node. The upstream stands in for Docker
// Hub: a real `registry` of the test's own, outside the cluster, under the name upstream.test (the
// cluster's CoreDNS answers it), TLS from a CA of its own and an account it asks for (Basic auth).
// The cache runs as every registry does (nginx, registry in proxy mode, docker_auth) from the
// StatefulSet the reconcile Job applies; node trust writes containerd's hosts.toml for the mirrored
// hosts; the kubelet pulls `upstream.test/library/app:v1` for a Pod that names nothing else.
//
// Needs docker_auth (auth_server): without it the tests skip, saying why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcCronJobName } from '../../functions/garbage-collection.ts';
import { dataClaimName, registryHostname } from '../../functions/names.ts';
import { mergeMirrorBlock, mirrorHostsToml } from '../../functions/node-trust.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { PROXY_PASSWORD_ENV, UPSTREAM_AVAILABLE } from '../../functions/pull-through-cache.ts';
import { GROUP_VERSION, type Condition, type ImageRegistry, type OperatorConfig } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { applyObjects, listObjects, requireObject, serverSide } from '../support/kubectl.ts';
import { waitForJob } from '../support/jobs.ts';
import { cacheRoot } from '../support/node/cache.ts';
import { nodeAccess } from '../support/node/node-access.ts';
import { extendOciImage, writeOciImage } from '../support/oci-image.ts';
import { installOperatorBase, nodeTrustComponentObjects, NODE_TRUST_NAMESPACE, OPERATOR_NAMESPACE, setOperatorConfig } from '../support/operator.ts';
import { waitFor } from '../support/processes.ts';
import { loadBalancer, podWithReadyContainers, runReconcileJob, secretKey, type RegistryAddress } from '../support/registry-e2e.ts';
import { stepTimer } from '../support/timings.ts';
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream-registry.ts';

const NAME = 'cache';
const REPO = 'library/app';
/** a host someone else (e.g. Spegel) keeps a hosts.toml for: ours is merged into it */
const FOREIGN_HOST = 'other.test';
const FOREIGN_HOSTS_TOML = '# kept by another tool\nserver = "https://other.test"\n\n[host."http://127.0.0.1:30020"]\n  capabilities = ["pull", "resolve"]\n';

const cluster = await testCluster();
const node = nodeAccess(cluster);
const skipReason = authServerUnavailable(cluster.assetsDir) ? `auth_server could not be built: ${authServerUnavailable(cluster.assetsDir)}` : undefined;
if (skipReason) console.log(`SKIP pull-through cache tests: ${skipReason}`);
const run = skipReason ? test.skip : test;
const { timings, timed } = stepTimer();

interface Setup {
  namespace: string;
  apps: string;
  hostname: string;
  workDir: string;
  upstream: UpstreamRegistry;
  service: RegistryAddress;
  trustConfig: OperatorConfig;
  componentObjects: object[];
  /** the blobs of app:v1 the node does not have already (its config and own layer) */
  blobs: string[];
  pull: string;
  push: string;
  caDir: string;
  containerdCertsD: string;
}

let setup: Promise<Setup> | undefined;
let current: Setup | undefined;
const started = () => (setup ??= start());

async function start(): Promise<Setup> {
  const env = { OPERATOR_ROLLOUT_TIMEOUT: '120s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' };
  const config = await installOperatorBase(cluster, env);
  const trustConfig = operatorConfigFromEnv({ ...env, OPERATOR_NODE_TRUST_NAMESPACE: NODE_TRUST_NAMESPACE });
  const namespace = await cluster.createNamespace('e2e-cache');
  const apps = await cluster.createNamespace('e2e-cache-apps');
  const hostname = registryHostname(NAME, namespace, config.dnsZone);
  const workDir = mkdtempSync(join(tmpdir(), 'iro-cache-'));
  const upstream = await startUpstreamRegistry({ assetsDir: cluster.assetsDir, workDir, address: node.network.hostAddress });
  // the image: the node's pause image (a static binary that runs) with a label and a layer of its
  // own — another image ID, so removing it from the node never removes the sandbox image, and a
  // config and layer the node does not have (the pause layer it has is never fetched) — as
  // library/app:v1 and :v2
  const images = join(cacheRoot(), 'node-images');
  const pause = readdirSync(images).find((file) => /_pause_.*\.tar$/.test(file));
  assert.ok(pause, 'the pause image archive');
  let blobs: string[] = [];
  for (const tag of ['v1', 'v2']) {
    const layout = join(workDir, `app-${tag}`);
    const copied = await cluster.runClient('skopeo', ['copy', `oci-archive:${join(images, pause ?? '')}`, `oci:${layout}:${tag}`], { binds: [workDir, images] });
    assert.is(copied.code, 0, copied.stderr);
    const extended = extendOciImage(layout, tag, { 'org.example.test': `pull-through-cache ${tag}` }, { [`etc/app-${tag}.txt`]: `${tag} ${randomUUID()}\n` });
    if (tag === 'v1') blobs = [extended.configDigest, extended.layerDigest];
    const pushed = await cluster.runClient('skopeo', ['copy', '--dest-cert-dir', upstream.certDir, '--dest-creds', `${upstream.username}:${upstream.password}`,
      `oci:${layout}:${tag}`, `docker://${upstream.host}/${REPO}:${tag}`], { binds: [workDir] });
    assert.is(pushed.code, 0, pushed.stderr);
  }
  // node trust, as kustomize/node-trust installs it; someone else's hosts.toml for FOREIGN_HOST
  const componentObjects = await nodeTrustComponentObjects(cluster);
  await applyObjects(cluster, componentObjects, '', serverSide('e2e-test'));
  await setOperatorConfig(cluster, { OPERATOR_NODE_TRUST_NAMESPACE: NODE_TRUST_NAMESPACE });
  const containerdCertsD = node.nodePath('/etc/containerd/certs.d');
  mkdirSync(join(containerdCertsD, FOREIGN_HOST), { recursive: true });
  writeFileSync(join(containerdCertsD, FOREIGN_HOST, 'hosts.toml'), FOREIGN_HOSTS_TOML);
  // the upstream account and CA, as a platform team stores them
  await applyObjects(cluster, [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'upstream-account' }, stringData: { username: upstream.username, password: upstream.password } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'upstream-ca' }, data: { 'ca.crt': upstream.caPem } },
    {
      apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME },
      spec: {
        proxy: {
          remoteURL: upstream.url,
          credentialsSecret: { name: 'upstream-account' },
          ca: { configMapName: 'upstream-ca' },
          mirrorFor: [upstream.host, FOREIGN_HOST],
          // the node's pod network: the kubelet's pulls reach nginx from the bridge's address
          anonymousPull: { networks: [node.network.podCidr], includePrivateUpstreamImages: true },
        },
      },
    },
    { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'ci' }, spec: { registryRef: { name: NAME } } },
    { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'puller' }, spec: { registryRef: { name: NAME } } },
  ], namespace, serverSide('e2e-test'));
  await timed('reconcile Job (cache, node trust)', () => runReconcileJob(cluster, namespace, NAME, trustConfig));
  const service = await loadBalancer(cluster, namespace, NAME, hostname);
  const creds = async (secret: string) => `${await secretKey(cluster, namespace, secret, 'username')}:${await secretKey(cluster, namespace, secret, 'password')}`;
  const caDir = join(workDir, 'cache-ca');
  mkdirSync(caDir);
  writeFileSync(join(caDir, 'ca.crt'), await secretKey(cluster, namespace, 'puller-image-pull-secret', 'ca.crt'));
  current = { namespace, apps, hostname, workDir, upstream, service, trustConfig, componentObjects, blobs, pull: await creds('puller-image-pull-secret'), push: await creds('ci-image-push-secret'), caDir, containerdCertsD };
  return current;
}

const IMAGE = (tag: string) => `upstream.test/${REPO}:${tag}`;

function appPod(name: string, tag = 'v1') {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: {
      terminationGracePeriodSeconds: 1,
      securityContext: { runAsNonRoot: true, runAsUser: 65535, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'app', image: IMAGE(tag), securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } }],
    },
  };
}

async function registryStatus(s: Setup): Promise<{ conditions?: Condition[] }> {
  return (await requireObject<{ status?: { conditions?: Condition[] } }>(cluster, 'imageregistry', NAME, s.namespace)).status ?? {};
}

/** The cache's volume as files (the hostPath provisioner's directory). */
async function cacheVolume(s: Setup): Promise<string> {
  const claim = await requireObject<{ spec: { volumeName: string } }>(cluster, 'pvc', dataClaimName(NAME), s.namespace);
  return (await requireObject<{ spec: { hostPath: { path: string } } }>(cluster, 'pv', claim.spec.volumeName)).spec.hostPath.path;
}

const skopeo = (args: string[], s: Setup) => cluster.runClient('skopeo', args, { binds: [s.workDir] });

run('the cache is Ready, its upstream answers, and node trust wrote hosts.toml for the mirrored hosts: ours, and merged into someone else\'s', async () => {
  const s = await started();
  const status = await registryStatus(s);
  assert.is(status.conditions?.find((c) => c.type === 'Ready')?.status, 'True', JSON.stringify(status));
  const upstreamCondition = status.conditions?.find((c) => c.type === UPSTREAM_AVAILABLE);
  assert.is(upstreamCondition?.status, 'True', JSON.stringify(upstreamCondition));
  assert.match(upstreamCondition?.message ?? '', /https:\/\/upstream\.test\/v2\/ answers HTTP 401/);
  const entry = (host: string) => ({ host, server: s.upstream.url, caches: [s.hostname] });
  assert.is(readFileSync(join(s.containerdCertsD, s.upstream.host, 'hosts.toml'), 'utf8'), mirrorHostsToml(entry(s.upstream.host)));
  const merged = readFileSync(join(s.containerdCertsD, FOREIGN_HOST, 'hosts.toml'), 'utf8');
  assert.is(merged, mergeMirrorBlock(FOREIGN_HOSTS_TOML, entry(FOREIGN_HOST)));
  // their server line and table kept, ours first among the hosts
  assert.ok(merged.indexOf('server = "https://other.test"') < merged.indexOf(`[host."https://${s.hostname}"]`), merged);
  assert.ok(merged.indexOf(`[host."https://${s.hostname}"]`) < merged.indexOf('[host."http://127.0.0.1:30020"]'), merged);
});

run('a Pod with image upstream.test/library/app:v1 and no pull secret runs; the kubelet pulled through the cache, whose storage holds the blobs; 3 pulls, each blob once from the upstream', async () => {
  const s = await started();
  await applyObjects(cluster, appPod('first'), s.apps);
  const pod = await timed('Pod pulled through the cache and running', () => podWithReadyContainers(cluster, s.apps, 'first', ['app']));
  assert.match(pod.status?.containerStatuses?.[0]?.imageID ?? '', /^upstream\.test\/library\/app@sha256:[0-9a-f]{64}$/);
  // the cache's storage holds every blob of the image
  // (the cache writes a blob to its storage while it streams it to the client: give the last write a moment)
  const volume = await cacheVolume(s);
  const stored = (blob: string) => existsSync(join(volume, 'docker/registry/v2/blobs/sha256', blob.slice(7, 9), blob.slice(7), 'data'));
  await waitFor('every blob of the image in the cache\'s volume', async () => s.blobs.every(stored), 15_000, () => undefined).catch(() => undefined);
  const listing = (await node.onNode('find', [join(volume, 'docker/registry/v2'), '-maxdepth', '6'])).stdout;
  for (const blob of s.blobs) assert.ok(stored(blob), `blob ${blob} in the cache's volume: ${listing}`);
  // two more pulls, as other nodes would pull: the image removed from the node between them
  for (let i = 0; i < 2; i++) {
    const removed = await node.crictl(['rmi', IMAGE('v1')]);
    assert.is(removed.code, 0, removed.stderr);
    const pulled = await timed(`CRI pull ${i + 2} (warm cache)`, () => node.crictl(['pull', IMAGE('v1')]));
    assert.is(pulled.code, 0, pulled.stderr);
  }
  for (const blob of s.blobs) assert.is(s.upstream.blobGets(REPO, blob), 1, `the upstream served ${blob} once`);
});

run('pulls without credentials from outside the allowed networks are refused; a pull secret still works from there', async () => {
  const s = await started();
  const anonymous = await skopeo(['inspect', '--cert-dir', s.caDir, '--no-creds', `docker://${s.hostname}/${REPO}:v1`], s);
  assert.is.not(anonymous.code, 0);
  assert.match(anonymous.stderr, /unauthorized|authentication required|denied|401/i, anonymous.stderr);
  const withSecret = await skopeo(['inspect', '--cert-dir', s.caDir, '--creds', s.pull, `docker://${s.hostname}/${REPO}:v1`], s);
  assert.is(withSecret.code, 0, withSecret.stderr);
});

run('a tag the upstream does not have: the upstream\'s error passed on', async () => {
  const s = await started();
  const missing = await skopeo(['inspect', '--cert-dir', s.caDir, '--creds', s.pull, `docker://${s.hostname}/${REPO}:no-such-tag`], s);
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, /manifest unknown/i, missing.stderr);
});

run('pushes are refused with the message, also with push credentials', async () => {
  const s = await started();
  const image = writeOciImage(join(s.workDir, 'pushed'), 'v1', { 'hello.txt': 'not for a cache\n' });
  const pushed = await skopeo(['copy', '--dest-cert-dir', s.caDir, '--dest-creds', s.push, image.reference, `docker://${s.hostname}/${s.namespace}/copy:v1`], s);
  assert.is.not(pushed.code, 0);
  assert.match(pushed.stderr, /pull-through cache of https:\/\/upstream\.test: it refuses pushes and deletes/, pushed.stderr);
  const answer = await frontRequest(s, 'POST', `/v2/${s.namespace}/copy/blobs/uploads/`);
  assert.is(answer.status, 405);
  assert.is((JSON.parse(answer.body) as { errors: { code: string }[] }).errors[0]?.code, 'UNSUPPORTED');
});

run('the upstream account\'s password is in the Secret and the registry container\'s environment, nowhere else: no other Secret, ConfigMap, status, Event, log or spec', async () => {
  const s = await started();
  const password = s.upstream.password;
  const [pod] = await listObjects<{ metadata: { name: string; uid: string } }>(cluster, 'pods', s.namespace, { selector: 'app.kubernetes.io/name=image-registry' });
  assert.ok(pod, 'the cache pod');
  // the registry container's environment: the value reached it
  const pids = await node.podContainerPids(pod?.metadata.uid ?? '');
  const registryPid = pids.get('registry');
  assert.ok(registryPid, 'the registry container runs');
  const environ = readFileSync(`/proc/${registryPid}/environ`, 'utf8').split('\0');
  assert.ok(environ.includes(`${PROXY_PASSWORD_ENV}=${password}`), 'the registry container has the password in its environment');
  const places: [string, string][] = [];
  for (const ns of [s.namespace, OPERATOR_NAMESPACE, NODE_TRUST_NAMESPACE]) {
    for (const kind of ['secrets', 'configmaps', 'events', 'statefulsets', 'jobs', 'pods', 'imageregistries']) {
      for (const object of await listObjects<{ metadata: { name: string }; data?: Record<string, string> }>(cluster, kind, ns)) {
        if (kind === 'secrets' && object.metadata.name === 'upstream-account') continue;
        const decoded = kind === 'secrets' ? Object.values(object.data ?? {}).map((v) => Buffer.from(v, 'base64').toString('utf8')).join('\n') : '';
        places.push([`${kind} ${ns}/${object.metadata.name}`, JSON.stringify(object) + decoded]);
      }
    }
    const pods = await listObjects<{ metadata: { name: string }; spec: { containers: { name: string }[] } }>(cluster, 'pods', ns);
    for (const p of pods) {
      for (const c of p.spec.containers) {
        const logs = await cluster.kubectl(['logs', p.metadata.name, '-c', c.name, '--tail=-1'], { namespace: ns });
        places.push([`log ${ns}/${p.metadata.name}/${c.name}`, logs.stdout]);
      }
    }
  }
  assert.ok(places.length > 20, `looked in ${places.length} places`);
  for (const [where, text] of places) assert.not.ok(text.includes(password), `the password in ${where}`);
});

run('the upstream account\'s password changed and its Secret updated: the reconcile rolls the cache pod, which fetches with the new one', async () => {
  const s = await started();
  const creds = () => `${s.upstream.username}:${s.upstream.password}`;
  const image = writeOciImage(join(s.workDir, 'rotated'), 'v1', { 'rotated.txt': `${randomUUID()}\n` });
  const pushed = await skopeo(['copy', '--dest-cert-dir', s.upstream.certDir, '--dest-creds', creds(), image.reference, `docker://${s.upstream.host}/library/rotated:v1`], s);
  assert.is(pushed.code, 0, pushed.stderr);
  const pullRotated = () => skopeo(['inspect', '--cert-dir', s.caDir, '--creds', s.pull, `docker://${s.hostname}/library/rotated:v1`], s);
  s.upstream.setPassword(randomUUID());
  const refused = await pullRotated();
  assert.is.not(refused.code, 0, 'the cache still fetches with the old password');
  const [before] = await listObjects<{ metadata: { uid: string } }>(cluster, 'pods', s.namespace, { selector: 'app.kubernetes.io/name=image-registry' });
  await applyObjects(cluster, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'upstream-account' }, stringData: { username: s.upstream.username, password: s.upstream.password } }, s.namespace, serverSide('e2e-test'));
  await timed('reconcile Job (upstream password changed)', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
  const [after] = await listObjects<{ metadata: { uid: string } }>(cluster, 'pods', s.namespace, { selector: 'app.kubernetes.io/name=image-registry' });
  assert.ok(after && after.metadata.uid !== before?.metadata.uid, 'the cache pod was replaced');
  await waitFor('the cache fetching with the new password', async () => (await pullRotated()).code === 0, 60_000);
});

run('a garbage collection run while clients pull through the cache: every request refused only while frozen (503), and every image a pull completed is served whole afterwards with the upstream stopped', async () => {
  const s = await started();
  // images only the upstream has: each pull of one is a miss that stores what it fetched
  const count = 8;
  const creds = `${s.upstream.username}:${s.upstream.password}`;
  for (let i = 0; i < count; i++) {
    const image = writeOciImage(join(s.workDir, `gc-${i}`), 'v1', [{ [`a-${i}.txt`]: `${randomUUID()}\n` }, { [`b-${i}.txt`]: `${randomUUID()}\n` }]);
    const pushed = await skopeo(['copy', '--dest-cert-dir', s.upstream.certDir, '--dest-creds', creds, image.reference, `docker://${s.upstream.host}/library/gc-${i}:v1`], s);
    assert.is(pushed.code, 0, pushed.stderr);
  }
  const completed = new Set<number>();
  const outcomes: string[] = [];
  let stop = false;
  const puller = async (offset: number) => {
    for (let round = 0; !stop; round++) {
      const i = (round * 2 + offset) % count;
      const out = join(s.workDir, `pulled-${offset}-${round}`);
      const pulled = await skopeo(['copy', '--src-cert-dir', s.caDir, '--src-creds', s.pull, `docker://${s.hostname}/library/gc-${i}:v1`, `oci:${out}:v1`], s);
      rmSync(out, { recursive: true, force: true });
      if (pulled.code === 0) completed.add(i);
      outcomes.push(pulled.code === 0 ? 'pulled' : /503|maintenance|Service Unavailable/i.test(pulled.stderr) ? 'frozen' : `failed: ${pulled.stderr.trim().split('\n').at(-1)}`);
    }
  };
  const pulling = [puller(0), puller(1)];
  try {
    const job = `gc-cache-${Date.now() % 100000}`;
    const created = await cluster.kubectl(['create', 'job', `--from=cronjob/${gcCronJobName({ namespace: s.namespace, name: NAME })}`, job], { namespace: OPERATOR_NAMESPACE });
    assert.is(created.code, 0, created.stderr);
    const finished = await timed('GC run under pulls', () => waitForJob(cluster, OPERATOR_NAMESPACE, job, 300_000));
    assert.is(finished.result, 'Complete', finished.logs);
    // pulls go on after the lift: images not cached yet get their turn
    const after = outcomes.length;
    await waitFor('pulls after the freeze', async () => outcomes.slice(after).filter((o) => o === 'pulled').length >= 4, 120_000);
  } finally {
    stop = true;
    await Promise.all(pulling);
  }
  const run = (await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace)).status?.garbageCollection?.lastRun;
  assert.is(run?.result, 'Succeeded', JSON.stringify(run));
  const failures = outcomes.filter((o) => o.startsWith('failed'));
  assert.equal(failures, [], `only the freeze refuses: ${JSON.stringify(failures)}`);
  assert.ok(outcomes.includes('frozen'), `a pull met the freeze (every request of a cache is frozen): ${JSON.stringify(outcomes)}`);
  assert.ok(completed.size >= 4, `images pulled: ${[...completed].join(', ')}`);
  await s.upstream.stop();
  try {
    for (const i of completed) {
      const out = join(s.workDir, `from-cache-${i}`);
      const pulled = await skopeo(['copy', '--src-cert-dir', s.caDir, '--src-creds', s.pull, `docker://${s.hostname}/library/gc-${i}:v1`, `oci:${out}:v1`], s);
      assert.is(pulled.code, 0, `gc-${i}, upstream down: ${pulled.stderr}`);
    }
  } finally {
    await s.upstream.start();
  }
  timings['GC: pulls during the run'] = outcomes.length;
});

run('the upstream stopped and the image removed from the node: the same Pod runs again from the cache; a tag never cached fails; the cache says its upstream is unavailable', async () => {
  const s = await started();
  await cluster.kubectl(['delete', 'pod', 'first', '--wait=true', '--timeout=60s'], { namespace: s.apps });
  const removed = await node.crictl(['rmi', IMAGE('v1')]);
  assert.is(removed.code, 0, removed.stderr);
  await s.upstream.stop();
  try {
    await applyObjects(cluster, appPod('first'), s.apps);
    await timed('Pod pulled from the cache, upstream down', () => podWithReadyContainers(cluster, s.apps, 'first', ['app']));
    const uncached = await node.crictl(['pull', IMAGE('v2')]);
    assert.is.not(uncached.code, 0, 'v2 was never cached');
    assert.match(uncached.stderr, /upstream\.test\/library\/app:v2/, uncached.stderr);
    await timed('reconcile Job, upstream down', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
    const condition = (await registryStatus(s)).conditions?.find((c) => c.type === UPSTREAM_AVAILABLE);
    assert.is(condition?.status, 'False', JSON.stringify(condition));
    assert.is(condition?.reason, 'UpstreamUnavailable');
    assert.match(condition?.message ?? '', /cached images are still served/);
    const events = await listObjects<{ reason: string; type: string }>(cluster, 'events', s.namespace);
    assert.ok(events.some((e) => e.reason === 'UpstreamUnavailable' && e.type === 'Warning'), JSON.stringify(events.map((e) => e.reason)));
    const ready = (await registryStatus(s)).conditions?.find((c) => c.type === 'Ready');
    assert.is(ready?.status, 'True', 'the cache stays Ready: it serves what it holds');
  } finally {
    await s.upstream.start();
  }
});

run('the cache deleted: its hosts.toml removed from the node, someone else\'s restored to what it was', async () => {
  const s = await started();
  const deleted = await cluster.kubectl(['delete', 'imageregistry', NAME, '--wait=true', '--timeout=60s'], { namespace: s.namespace });
  assert.is(deleted.code, 0, deleted.stderr);
  await timed('reconcile Job of the deleted cache', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
  await waitFor('the mirror entry removed', async () => !existsSync(join(s.containerdCertsD, s.upstream.host)), 60_000);
  assert.is(readFileSync(join(s.containerdCertsD, FOREIGN_HOST, 'hosts.toml'), 'utf8'), FOREIGN_HOSTS_TOML);
  console.log(`timings (ms): ${JSON.stringify(timings)}`);
});

test.after(async () => {
  const s = current ?? (await setup?.catch(() => undefined));
  if (!s) return;
  await s.upstream.stop().catch(() => undefined);
  await setOperatorConfig(cluster, { OPERATOR_NODE_TRUST_NAMESPACE: '' }).catch(() => undefined);
  await cluster.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: s.componentObjects.map((o) => JSON.stringify(o)).join('\n') });
  await cluster.kubectl(['annotate', 'node', node.nodeName, 'registry.mgoltzsche.github.com/node-trust-']);
  for (const ns of [s.namespace, s.apps]) await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
  for (const tag of ['v1', 'v2']) await node.crictl(['rmi', IMAGE(tag)]);
  rmSync(join(s.containerdCertsD, FOREIGN_HOST), { recursive: true, force: true });
  rmSync(join(s.containerdCertsD, s.upstream.host), { recursive: true, force: true });
  rmSync(s.workDir, { recursive: true, force: true });
});

test.run();

/** One request to the cache's nginx through its LoadBalancer address, TLS verified. */
function frontRequest(s: Setup, method: string, path: string): Promise<{ status: number; body: string }> {
  const caPem = readFileSync(join(s.caDir, 'ca.crt'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request({ host: s.hostname, port: s.service.port, lookup: s.service.lookup, servername: s.hostname, ca: caPem, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}
