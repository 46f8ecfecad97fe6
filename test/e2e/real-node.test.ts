// End to end on a real node: the kubelet and kube-proxy of the pinned release, containerd and runc,
// the bridge CNI plugin (test/support/node/). Every pod runs from its image, assembled locally under
// the exact name the manifests use (test/support/node/images.ts) — the toolkit's own (bootstrap Job,
// webhook Deployment, reconcile Jobs) and the registry's (registry, nginx, docker_auth where it
// could be built). The API server reaches the webhook through its Service's ClusterIP (kube-proxy's
// rules in the node's network namespace), and pods reach the API server through `kubernetes`.
//
// What only a real kubelet shows: a container killed with SIGKILL is restarted by the
// kubelet, and the pod is Ready again (nginx's pacing listener used to be a unix socket on the
// emptyDir /tmp, which a restarted nginx could not bind again: a crash loop); nginx answers on the
// pod's IPv6 address too; and stopping the node leaves nothing behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import { dataClaimName, registryHostname, tokenIssuer } from '../../functions/names.ts';
import { NGINX_PORT, HEALTH_PATH } from '../../functions/nginx-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { clusterClient, startClusterOnRealNode, type RealNodeCluster, type TestCluster } from '../support/cluster.ts';
import { applyObjects, getObject, requireObject, serverSide } from '../support/kubectl.ts';
import { installOperator, OPERATOR_NAMESPACE, WEBHOOK_POD_SELECTOR } from '../support/operator.ts';
import { delay, run, waitFor } from '../support/processes.ts';
import { loadBalancer, podNginx, secretKey } from '../support/registry-e2e.ts';
import { damage, newImage, pushImage, registryClient } from '../support/registry-api.ts';
import { signRegistryToken } from '../support/registry-token.ts';
import { stepTimer } from '../support/timings.ts';
import { nodeNamespacesPresent } from '../support/node/network.ts';
import { killContainer as killContainerProcess } from '../support/node/node-access.ts';

const NAME = 'registry';
/**
 * After a SIGKILL of a webhook container, how long admissions may still be sent to the dead pod: the
 * kubelet's PLEG relist (1 s) marks the pod unready, the EndpointSlice controller drops it, kube-proxy
 * syncs its rules (≥ 1 s apart). A killed process drains nothing, and the API server does not retry
 * an admission (README, troubleshooting).
 */
const KILL_WINDOW_MS = 5_000;
const { timings, timed } = stepTimer();

interface Setup {
  running: RealNodeCluster;
  cluster: TestCluster;
  namespace: string;
  hostname: string;
}

/** What the machine looks like before the node starts: compared after it stopped. */
const before = {
  sysctls: readSysctls(),
  iptables: (await run('iptables-save', [])).stdout.replace(/^#.*\n/gm, ''),
  links: (await run('ip', ['-o', 'link'])).stdout.split('\n').map((line) => line.split(':')[1]?.trim()).filter(Boolean),
  // what the node-trust Jobs write through hostPath: the node's /etc, never the machine's
  trustDirectories: readTrustDirectories(),
};

let setup: Promise<Setup> | undefined;
function started(): Promise<Setup> {
  setup ??= (async () => {
    const running = await timed('cluster with a real node up', () => startClusterOnRealNode());
    const cluster = clusterClient(running.plane.kubeconfig, running.plane.assetsDir, running.node.workDir);
    const namespace = await cluster.createNamespace('real-node');
    return { running, cluster, namespace, hostname: registryHostname(NAME, namespace, 'svc.example.org') };
  })();
  return setup;
}

const authMissing = authServerUnavailable((await import('../support/binaries.ts').then((m) => m.testBinaries())));
if (authMissing) console.log(`SKIP docker_auth parts: auth_server could not be built: ${authMissing}`);
const registryContainers = authMissing ? ['nginx', 'registry'] : ['nginx', 'registry', 'auth'];

test('the node is Ready with containerd holding every image under the name the manifests use', async () => {
  const { running } = await started();
  const listed = await running.node.crictl(['images', '-o', 'json']);
  assert.is(listed.code, 0, listed.stderr);
  const tags = (JSON.parse(listed.stdout) as { images: { repoTags: string[] }[] }).images.flatMap((image) => image.repoTags);
  for (const image of running.images.images) assert.ok(tags.includes(image.name), `${image.name} imported (have ${tags.join(', ')})`);
  for (const missing of running.images.unavailable) assert.not.ok(tags.includes(missing.name));
});

test('kubectl apply -k ./kustomize: the bootstrap Job and the webhook run from the operator image; the API server calls the webhook through its ClusterIP', async () => {
  const { cluster } = await started();
  await timed('install (apply -k, bootstrap Job Complete, webhook rolled out)', () => installOperator(cluster));
  const pods = await cluster.kubectl(['get', 'pods', '-l', WEBHOOK_POD_SELECTOR, '-o', 'jsonpath={range .items[*]}{.status.containerStatuses[0].imageID}{" "}{.status.podIP}{"\\n"}{end}'], { namespace: OPERATOR_NAMESPACE });
  assert.is(pods.stdout.trim().split('\n').length, 2, pods.stdout);
  // an admission through the webhook: defaults written by the mutating webhook
  const dryRun = await cluster.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'dry', namespace: 'default' }, spec: {} }) });
  assert.is(dryRun.code, 0, dryRun.stderr);
  assert.ok((JSON.parse(dryRun.stdout) as { spec: { replicas?: number } }).spec.replicas === 1, 'defaulted by the webhook');
});

test('an ImageRegistry: its Job reconciles it, and its pod runs registry and nginx from their images; an image pushed and pulled through nginx', async () => {
  const { cluster, namespace, hostname } = await started();
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME, namespace }, spec: {} }, namespace, serverSide('e2e-test'));
  const pod = await timed('registry pod: containers ready', () => podWithReadyContainers(cluster, namespace, `${NAME}-0`, registryContainers));
  const token = signRegistryToken({
    keyPem: await secretKey(cluster, namespace, `${NAME}-auth-tls`, 'tls.key'),
    issuer: tokenIssuer(hostname), audience: hostname, subject: 'real-node-test',
    access: [{ type: 'repository', name: `${namespace}/app`, actions: ['push', 'pull'] }],
  });
  const front = podNginx(pod, hostname);
  const ca = await secretKey(cluster, namespace, `${NAME}-tls`, 'ca.crt');
  const client = registryClient(front.address, front.port, ca, token, hostname);
  const image = newImage('v1', []);
  assert.equal(await pushImage(client, `${namespace}/app`, image), { result: 'pushed' });
  assert.is(await damage(client, `${namespace}/app`, image), undefined, 'pulls whole, every digest verified');
});

for (const container of registryContainers) {
  test(`SIGKILL of the registry pod's ${container} container: the kubelet restarts it and the pod is ready again`, async () => {
    const { running, cluster, namespace } = await started();
    const restarts = await killContainer(running, cluster, namespace, `${NAME}-0`, container);
    const pod = await timed(`${container} restarted and ready`, () => podWithReadyContainers(cluster, namespace, `${NAME}-0`, registryContainers, (p) =>
      (p.status?.containerStatuses?.find((s) => s.name === container)?.restartCount ?? 0) > restarts));
    assert.ok(pod.status?.containerStatuses?.find((s) => s.name === container)?.ready);
  });
}

test('nginx answers on the pod IPv4 and IPv6 addresses', async () => {
  const { cluster, namespace, hostname } = await started();
  const pod = await requireObject<V1Pod>(cluster, 'pod', `${NAME}-0`, namespace);
  const addresses = (pod.status?.podIPs ?? []).map((ip) => ip.ip ?? '');
  assert.ok(addresses.some((a) => a.includes('.')), `an IPv4 pod IP in ${addresses.join(', ')}`);
  const ipv6 = addresses.find((a) => a.includes(':'));
  if (!existsSync('/proc/net/if_inet6')) return console.log('SKIP IPv6: this kernel has no IPv6');
  assert.ok(ipv6, `an IPv6 pod IP in ${addresses.join(', ')}`);
  for (const address of addresses) assert.is(await healthOverTls(address, hostname), 200, `GET ${HEALTH_PATH} at [${address}]:${NGINX_PORT}`);
});

test('a volume the registry user cannot write (hostPath: no fsGroup) shows as Ready=False VolumeNotWritable; writable, the registry comes up', async () => {
  const { running, cluster, namespace } = await started();
  const name = 'readonly';
  // a claim bound ahead to a volume whose directory is root's, 0755: what NFS or a CSI driver that
  // ignores fsGroup gives the registry's user
  const dir = join(running.node.workDir, 'pv-readonly');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const claim = dataClaimName(name);
  await applyObjects(cluster, [
    { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: `${namespace}-readonly` }, spec: {
      capacity: { storage: '8Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', storageClassName: '',
      hostPath: { path: dir, type: 'Directory' }, claimRef: { namespace, name: claim } } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: claim, namespace }, spec: {
      accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } }, storageClassName: '', volumeName: `${namespace}-readonly` } },
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name, namespace }, spec: {} },
  ], '', serverSide('e2e-test'));
  const readiness = () => cluster.kubectl(['get', 'imageregistry', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}'], { namespace });
  let condition = '';
  await timed('Ready=False VolumeNotWritable', () => waitFor('Ready=False VolumeNotWritable', async () => {
    condition = (await readiness()).stdout;
    return condition.startsWith('False VolumeNotWritable');
  }, 180_000).catch((error: Error) => { throw new Error(`${error.message}: ${condition}`); }));
  assert.match(condition, `pod ${name}-0: the registry volume at /var/lib/registry is not writable by uid 1000`);
  // the fix the README gives: the registry's user may write it; the pod starts again, the next reconcile sees it
  chownSync(dir, 1000, 1000);
  await cluster.kubectl(['delete', 'pod', `${name}-0`, '--wait=false'], { namespace });
  await podWithReadyContainers(cluster, namespace, `${name}-0`, ['nginx', 'registry']);
  const resync = await cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-resync', `resync-${namespace}`], { namespace: OPERATOR_NAMESPACE });
  assert.is(resync.code, 0, resync.stderr);
  await waitFor('no VolumeNotWritable after the fix', async () => {
    condition = (await readiness()).stdout;
    return !condition.includes('VolumeNotWritable');
  }, 120_000).catch((error: Error) => { throw new Error(`${error.message}: ${condition}`); });
});

(authMissing ? test.skip : test)('the kubelet pulls an image pushed with an ImagePushSecret, for a Pod in another namespace: x509 until node trust, refused without the pull secret, then running', async () => {
  const { running, cluster, namespace, hostname } = await started();
  const apps = await cluster.createNamespace('apps');
  const strangers = await cluster.createNamespace('strangers');
  const registryRef = { name: NAME, namespace };
  await applyObjects(cluster, [
    { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'ci', namespace }, spec: { registryRef } },
    { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'pull', namespace: apps }, spec: { registryRef, serviceAccounts: ['default'] } },
  ], '', serverSide('e2e-test'));
  for (const [kind, ns, name] of [['imagepushsecret', namespace, 'ci'], ['imagepullsecret', apps, 'pull']] as const) {
    const ready = await cluster.kubectl(['wait', '--for=condition=Ready', `${kind}/${name}`, '--timeout=120s'], { namespace: ns });
    assert.is(ready.code, 0, `${kind} ${ns}/${name} Ready: ${ready.stderr}`);
  }
  // pushed as a CI job would: the push secret's Docker config and CA, the registry hostname
  // resolving to the LoadBalancer address; the image is the node's pause image (a static binary)
  const work = mkdtempSync(join(tmpdir(), 'iro-real-node-push-'));
  writeFileSync(join(work, 'config.json'), await secretKey(cluster, namespace, 'ci-image-push-secret', 'config.json'));
  writeFileSync(join(work, 'ca.crt'), await secretKey(cluster, namespace, 'ci-image-push-secret', 'ca.crt'));
  const pause = running.images.images.find((image) => image.name.includes('/pause:'));
  assert.ok(pause, 'the pause image archive');
  const image = `${hostname}/${namespace}/app:v1`;
  // the kubelet's containerd resolves it as every client does: the node's resolver, the cluster's CoreDNS
  await loadBalancer(cluster, namespace, NAME, hostname);
  const pushed = await cluster.runClient('skopeo', ['copy', '--authfile', join(work, 'config.json'), '--dest-cert-dir', work, `oci-archive:${pause.archive}`, `docker://${image}`], { binds: [work] });
  rmSync(work, { recursive: true, force: true });
  assert.is(pushed.code, 0, `skopeo copy: ${pushed.stderr}`);

  const appPod = (name: string, ns: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns },
    spec: {
      terminationGracePeriodSeconds: 1,
      securityContext: { runAsNonRoot: true, runAsUser: 65535, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'app', image, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } }],
    },
  });
  await applyObjects(cluster, appPod('before-trust', apps), apps);
  const untrusted = await timed('pull refused: unknown CA', () => pullFailure(cluster, apps, 'before-trust'));
  assert.match(untrusted, /x509|certificate signed by unknown authority/, untrusted);

  // node trust enabled the README's way; the resync's reconcile starts the node-trust Job
  await timed('node trust enabled (apply -k with the component, resync Job)', async () => {
    await installOperator(cluster, {}, ['node-trust']);
    const resync = await cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-resync', 'resync-trust'], { namespace: OPERATOR_NAMESPACE });
    assert.is(resync.code, 0, resync.stderr);
    await waitFor(`certs.d/${hostname}/hosts.toml on the node`, async () => existsSync(join(running.node.containerdCertsDir, hostname, 'hosts.toml')), 120_000);
  });
  await applyObjects(cluster, appPod('trusted', apps), apps);
  const runningPod = await timed('pod pulled by the kubelet and running', () => podWithReadyContainers(cluster, apps, 'trusted', ['app']));
  assert.match(runningPod.status?.containerStatuses?.[0]?.imageID ?? '', new RegExp(`^${hostname.replace(/\./g, '\\.')}/${namespace}/app@sha256:`));

  await applyObjects(cluster, appPod('no-pull-secret', strangers), strangers);
  const refused = await pullFailure(cluster, strangers, 'no-pull-secret');
  assert.match(refused, /401|403|unauthorized|authorization failed|insufficient_scope|denied/i, refused);
});

test('the webhook keeps admitting while one of its pods is killed with SIGKILL: only admissions in flight to it, or sent before kube-proxy dropped it, fail', async () => {
  const { running, cluster } = await started();
  // a settled Deployment (a test above may have rolled it), and one of its pods that stays
  const rolled = await cluster.kubectl(['rollout', 'status', 'deployment/image-registry-operator-webhook', '--timeout=180s'], { namespace: OPERATOR_NAMESPACE });
  assert.is(rolled.code, 0, rolled.stderr);
  const pods = await cluster.kubectl(['get', 'pods', '-l', WEBHOOK_POD_SELECTOR, '-o', 'jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\\n"}{end}'], { namespace: OPERATOR_NAMESPACE });
  const victim = pods.stdout.split('\n').map((line) => line.trim()).find((line) => line && !line.includes(' '));
  assert.ok(victim, `a webhook pod that is not terminating: ${pods.stdout}`);
  const results: { startedMs: number; code: number; stderr: string }[] = [];
  let stop = false;
  // four clients at once, as the API server's callers would be: each a server-side dry run, which
  // passes both webhooks and enqueues nothing (sideEffects: NoneOnDryRun)
  const client = async () => {
    while (!stop) {
      const startedMs = Date.now();
      const created = await cluster.kubectl(['create', '--dry-run=server', '-o', 'name', '-f', '-'], { input: JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { generateName: 'load-', namespace: 'default' }, spec: {} }) });
      results.push({ startedMs, code: created.code, stderr: created.stderr.trim() });
    }
  };
  const load = Promise.all([client(), client(), client(), client()]);
  await delay(1_000);
  const restarts = await killContainer(running, cluster, OPERATOR_NAMESPACE, victim, 'webhook');
  const killedMs = Date.now();
  await timed('webhook container restarted and ready', () => podWithReadyContainers(cluster, OPERATOR_NAMESPACE, victim, ['webhook'], (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) > restarts));
  // and on for a while past the window, through both replicas
  await delay(Math.max(2_000, killedMs + KILL_WINDOW_MS + 3_000 - Date.now()));
  stop = true;
  await load;
  const failures = results.filter((r) => r.code !== 0);
  const seconds = (r: { startedMs: number }) => ((r.startedMs - killedMs) / 1000).toFixed(1);
  console.log(`   admissions around the kill: ${results.length}, failed ${failures.length}${failures.map((f) => `\n     at ${seconds(f)} s: ${f.stderr}`).join('')}`);
  assert.ok(results.length >= 40, `${results.length} admissions`);
  // the kubelet sees the container die, the pod turns unready, its endpoint goes, kube-proxy
  // follows: after that window every admission passes, through the other replica and the restarted one
  const settledMs = killedMs + KILL_WINDOW_MS;
  const late = failures.filter((r) => r.startedMs >= settledMs);
  assert.equal(late.map((r) => `${seconds(r)} s: ${r.stderr}`), [], 'admissions started after the window all pass');
  assert.ok(results.filter((r) => r.startedMs >= settledMs).length >= 10, 'admissions after the window');
  for (const failure of failures) assert.match(failure.stderr, /failed calling webhook/, failure.stderr);
});

test('stopping the cluster leaves no process, mount, namespace, link, cgroup, firewall rule or sysctl change behind', async () => {
  const { running } = await started();
  const workDir = running.plane.workDir;
  await timed('cluster stopped', () => running.stop());
  const leftovers: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(workDir)) leftovers.push(`process ${entry}: ${cmdline.replace(/\0/g, ' ')}`);
    } catch {
      // gone
    }
  }
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(workDir)) leftovers.push('mounts under the work dir');
  const netns = nodeNamespacesPresent().filter((name) => name === running.network.namespace);
  if (netns.length) leftovers.push(`network namespace ${netns.join(', ')}`);
  const links = (await run('ip', ['-o', 'link'])).stdout.split('\n').map((line) => line.split(':')[1]?.trim()).filter(Boolean);
  const newLinks = links.filter((l) => !before.links.includes(l));
  if (newLinks.length) leftovers.push(`links ${newLinks.join(', ')}`);
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const root = `/sys/fs/cgroup/${hierarchy}/${running.network.namespace}`;
    if (existsSync(root)) leftovers.push(`cgroup ${root}`);
  }
  const iptables = (await run('iptables-save', [])).stdout.replace(/^#.*\n/gm, '');
  if (iptables !== before.iptables) leftovers.push(`root namespace iptables changed:\n${iptables}`);
  assert.equal(readSysctls(), before.sysctls, 'machine-wide sysctls unchanged');
  assert.equal(readTrustDirectories(), before.trustDirectories, "the machine's certs.d directories unchanged (the node trust was enabled above)");
  assert.equal(leftovers, []);
  if (existsSync(workDir)) leftovers.push(`work dir ${workDir}`);
  assert.equal(leftovers, []);
});

test.after(async () => {
  console.log(Object.entries(timings).map(([what, ms]) => `   ${what}: ${(ms / 1000).toFixed(1)} s`).join('\n'));
  // a failed test above may have left it running
  const done = await setup?.catch(() => undefined);
  await done?.running.stop().catch(() => undefined);
});

test.run();

function readTrustDirectories(): Record<string, string[] | 'absent'> {
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : 'absent' as const);
  return Object.fromEntries(['/etc/containerd/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d'].map((dir) => [dir, list(dir)]));
}

function readSysctls(): Record<string, string> {
  const read = (path: string) => readFileSync(`/proc/sys/${path}`, 'utf8').trim();
  return Object.fromEntries(['kernel/panic', 'kernel/panic_on_oops', 'vm/overcommit_memory', 'net/ipv4/ip_forward'].map((path) => [path, read(path)]));
}

/** Waits until the named containers are ready and `also(pod)` holds; says what the pod shows on timeout. */
async function podWithReadyContainers(cluster: TestCluster, namespace: string, name: string, containers: string[], also: (pod: V1Pod) => boolean = () => true): Promise<V1Pod> {
  let pod: V1Pod | undefined;
  await waitFor(`pod ${namespace}/${name}: ${containers.join(', ')} ready`, async () => {
    pod = await getObject<V1Pod>(cluster, 'pod', name, namespace);
    return Boolean(pod) && containers.every((c) => pod?.status?.containerStatuses?.find((s) => s.name === c)?.ready) && also(pod as V1Pod);
  }, 180_000).catch(async (error: Error) => {
    const events = await cluster.kubectl(['get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'custom-columns=REASON:.reason,MESSAGE:.message'], { namespace });
    throw new Error(`${error.message}\n${JSON.stringify(pod?.status?.containerStatuses, null, 1)}\n${events.stdout}`);
  });
  return pod as V1Pod;
}

/** The pod's image pull failure as the kubelet reports it (ErrImagePull / ImagePullBackOff and the message). */
async function pullFailure(cluster: TestCluster, namespace: string, name: string): Promise<string> {
  let message = '';
  await waitFor(`pod ${namespace}/${name}: image pull failed`, async () => {
    const pod = await getObject<V1Pod>(cluster, 'pod', name, namespace);
    const waiting = pod?.status?.containerStatuses?.[0]?.state?.waiting;
    if (waiting?.reason === 'ErrImagePull' || waiting?.reason === 'ImagePullBackOff') message = `${waiting.reason}: ${waiting.message ?? ''}`;
    const events = await cluster.kubectl(['get', 'events', '--field-selector', `involvedObject.name=${name},reason=Failed`, '-o', 'jsonpath={.items[*].message}'], { namespace });
    if (events.stdout.includes('pull')) message = `${message}\n${events.stdout}`;
    return message.length > 0;
  }, 120_000);
  return message;
}

/** SIGKILL to the container's main process, found through the CRI as the kubelet knows it; returns its restart count before. */
async function killContainer(running: RealNodeCluster, cluster: TestCluster, namespace: string, podName: string, container: string): Promise<number> {
  const pod = await requireObject<V1Pod>(cluster, 'pod', podName, namespace);
  const status = pod.status?.containerStatuses?.find((s) => s.name === container);
  const id = status?.containerID?.replace(/^containerd:\/\//, '');
  assert.ok(id, `container ${container} of ${podName} has an id`);
  assert.ok(await killContainerProcess(running.node.crictl, id), `${container}'s process killed`);
  return status?.restartCount ?? 0;
}

/** GET of nginx's health path over TLS at address (IPv4 or IPv6), the registry hostname as SNI. */
function healthOverTls(address: string, hostname: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: address, port: NGINX_PORT, servername: hostname, rejectUnauthorized: false, timeout: 5_000 }, () => {
      socket.write(`GET ${HEALTH_PATH} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
    socket.on('error', reject).on('timeout', () => socket.destroy(new Error('timeout')));
  });
}
