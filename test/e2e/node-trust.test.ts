// End to end: node trust (kustomize/node-trust) on the real node. A registry of ours, signed by the
// operator's CA, runs as a pod of the node behind its LoadBalancer Service (nginx TLS front,
// registry, docker_auth). The real reconcile Job (run by the Job controller) starts the node-trust
// Job; the Job controller creates its pod, pinned to the node; the kubelet runs it from its spec,
// its hostPath volumes the node's /etc/containerd/certs.d, /etc/containers/certs.d and
// /etc/docker/certs.d. The node's containerd has its CRI registry config_path on
// /etc/containerd/certs.d. Then containerd pulls with full TLS verification, twice: through its CRI
// (crictl, the kubelet's side of a pull: containerd itself resolves and fetches, finding hosts.toml
// through config_path) and with ctr run on the node (`--hosts-dir` on the same directory: ctr reads
// no config_path) — and before the Job, the same pulls fail with x509. The registry hostname
// resolves through the node's resolver: the cluster's CoreDNS answers it with the LoadBalancer address.
//
// Needs docker_auth (auth_server): without it the tests skip, saying why (without docker_auth no
// registry pod is Ready, so its Service serves nothing).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { registryHostname } from '../../functions/names.ts';
import { containerdHostsToml, NODE_TRUST_ANNOTATION, NODE_TRUST_MARKER, trustSetDigest } from '../../functions/node-trust.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION, type OperatorConfig } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { applyObjects, listObjects, requireObject, serverSide } from '../support/kubectl.ts';
import { nodeAccess } from '../support/node/node-access.ts';
import { readOciImageFiles, writeOciImage } from '../support/oci-image.ts';
import { installOperatorBase, nodeTrustComponentObjects, NODE_TRUST_NAMESPACE, OPERATOR_NAMESPACE, setOperatorConfig } from '../support/operator.ts';
import { waitFor } from '../support/processes.ts';
import { loadBalancer, runReconcileJob, secretKey, type RegistryAddress } from '../support/registry-e2e.ts';
import { stepTimer } from '../support/timings.ts';

const SKOPEO = '/usr/bin/skopeo';
const NAME = 'registry';
/** the containerd namespace of ctr's pulls (the kubelet's images are in k8s.io) */
const CTR_NAMESPACE = 'iro-node-trust-test';

const cluster = await testCluster();
const node = nodeAccess(cluster);
const NODE = node.nodeName;
const skipReason = authServerUnavailable(cluster.assetsDir) ? `auth_server could not be built: ${authServerUnavailable(cluster.assetsDir)}` : undefined;
if (skipReason) console.log(`SKIP node trust tests: ${skipReason}`);
const run = skipReason ? test.skip : test;

interface Setup {
  namespace: string;
  hostname: string;
  workDir: string;
  /** the node's certs.d directories as this process opens them (the Job's hostPath volumes) */
  certsD: { containerd: string; containers: string; docker: string };
  service: RegistryAddress;
  pull: string;
  ref: string;
  /** the operator config without and with node trust (the reconcile Jobs get it as env) */
  config: OperatorConfig;
  trustConfig: OperatorConfig;
  componentObjects: object[];
}

const { timings, timed } = stepTimer();

let setup: Promise<Setup> | undefined;
let current: Setup | undefined;
let createdWorkDir: string | undefined;
const started = () => (setup ??= start());

async function start(): Promise<Setup> {
  const env = { OPERATOR_ROLLOUT_TIMEOUT: '120s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' };
  const config = await installOperatorBase(cluster, env);
  const trustConfig = operatorConfigFromEnv({ ...env, OPERATOR_NODE_TRUST_NAMESPACE: NODE_TRUST_NAMESPACE });
  const namespace = await cluster.createNamespace('e2e-node-trust');
  const hostname = registryHostname(NAME, namespace, config.dnsZone);
  await applyObjects(cluster, [
    { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME }, spec: {} },
    { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'ci' }, spec: { registryRef: { name: NAME } } },
    { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'node' }, spec: { registryRef: { name: NAME } } },
  ], namespace, serverSide('e2e-test'));
  await timed('reconcile Job (node trust off)', () => runReconcileJob(cluster, namespace, NAME, config));
  const service = await loadBalancer(cluster, namespace, NAME, hostname);
  const workDir = mkdtempSync(join(tmpdir(), 'iro-node-trust-'));
  createdWorkDir = workDir;
  const certsD = {
    containerd: node.nodePath('/etc/containerd/certs.d'),
    containers: node.nodePath('/etc/containers/certs.d'),
    docker: node.nodePath('/etc/docker/certs.d'),
  };
  // the image, pushed the way a CI would (the push Secret's credentials and CA)
  const push = `${await secretKey(cluster, namespace, 'ci-image-push-secret', 'username')}:${await secretKey(cluster, namespace, 'ci-image-push-secret', 'password')}`;
  const pull = `${await secretKey(cluster, namespace, 'node-image-pull-secret', 'username')}:${await secretKey(cluster, namespace, 'node-image-pull-secret', 'password')}`;
  mkdirSync(join(workDir, 'push-certs'));
  writeFileSync(join(workDir, 'push-certs', 'ca.crt'), await secretKey(cluster, namespace, 'ci-image-push-secret', 'ca.crt'));
  const image = writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': `hello from ${namespace}\n` });
  const ref = `${hostname}/${namespace}/hello:v1`;
  const pushed = await cluster.runClient(SKOPEO, ['copy', '--dest-cert-dir', join(workDir, 'push-certs'), '--dest-creds', push, image.reference, `docker://${ref}`], { binds: [workDir] });
  assert.is(pushed.code, 0, pushed.stderr);

  // kustomize/node-trust's own objects, rendered as a user's overlay renders them; the operator
  // config (the CronJobs read it) gets the variable the component sets
  const componentObjects = await nodeTrustComponentObjects(cluster);
  await applyObjects(cluster, componentObjects, '', serverSide('e2e-test'));
  await setOperatorConfig(cluster, { OPERATOR_NODE_TRUST_NAMESPACE: NODE_TRUST_NAMESPACE });
  current = { namespace, hostname, workDir, certsD, service, pull, ref, config, trustConfig, componentObjects };
  return current;
}

/** ctr against the node's containerd, on the node. */
const ctr = (args: string[]) => node.onNode('ctr', ['--address', node.containerdSocket, '-n', CTR_NAMESPACE, ...args]);

type Pulled = { code: number; stdout: string; stderr: string; ms: number };

/** ctr pulls in its own process, reading hosts.toml from --hosts-dir. */
async function pull(s: Setup): Promise<Pulled> {
  await ctr(['images', 'rm', '--sync', s.ref]);
  const t0 = Date.now();
  const result = await ctr(['images', 'pull', '--hosts-dir', '/etc/containerd/certs.d', '--user', s.pull, s.ref]);
  return { ...result, ms: Date.now() - t0 };
}

/** A CRI pull, as the kubelet asks for one: the node's containerd pulls, with hosts.toml from config_path. */
async function criPull(s: Setup): Promise<Pulled> {
  await node.crictl(['rmi', s.ref]);
  const t0 = Date.now();
  const result = await node.crictl(['pull', '--creds', s.pull, s.ref]);
  return { ...result, ms: Date.now() - t0 };
}

/** The host pid of the node's containerd (its --config is in the node's work dir). */
function containerdPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (basename(argv[0] ?? '') === 'containerd' && argv[argv.indexOf('--config') + 1]?.startsWith(`${cluster.nodeDir}/`)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const nodeDigest = async () => (await requireObject<{ metadata: { annotations?: Record<string, string> } }>(cluster, 'node', NODE)).metadata.annotations?.[NODE_TRUST_ANNOTATION];
const nodeTrustJobs = () => listObjects<{ metadata: { name: string; annotations: Record<string, string> }; status?: { succeeded?: number } }>(cluster, 'jobs', NODE_TRUST_NAMESPACE);
const registryCa = (s: Setup) => secretKey(cluster, s.namespace, `${NAME}-tls`, 'ca.crt');
let renewedDigest = '';
const X509 = /x509: certificate signed by unknown authority/;

run('the component: its namespace enforces PodSecurity privileged (hostPath), the core install stays restricted', async () => {
  const s = await started();
  const ns = await requireObject<{ metadata: { labels: Record<string, string> } }>(cluster, 'namespace', NODE_TRUST_NAMESPACE);
  assert.is(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  const core = await requireObject<{ metadata: { labels: Record<string, string> } }>(cluster, 'namespace', OPERATOR_NAMESPACE);
  assert.is(core.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
  assert.ok(s.componentObjects.some((o) => (o as { kind: string }).kind === 'ValidatingAdmissionPolicy'));
});

run('before the node-trust Job, the node\'s containerd refuses the registry: x509, certificate signed by unknown authority', async () => {
  const s = await started();
  assert.not.ok(existsSync(join(s.certsD.containerd, s.hostname)), 'no certs.d entry for the registry yet');
  const before = await pull(s);
  timings['ctr pull before (x509)'] = before.ms;
  assert.is.not(before.code, 0);
  assert.match(before.stderr, X509, before.stderr);
  const cri = await criPull(s);
  timings['CRI pull before (x509)'] = cri.ms;
  assert.is.not(cri.code, 0);
  assert.match(cri.stderr, X509, cri.stderr);
});

run('the reconcile Job starts a node-trust Job on the node; it writes certs.d for containerd, CRI-O/podman and Docker; the Node records the digest', async () => {
  const s = await started();
  // a certs.d entry of the node's admin for another registry: never touched
  mkdirSync(join(s.certsD.containerd, 'mirror.example.org'), { recursive: true });
  writeFileSync(join(s.certsD.containerd, 'mirror.example.org', 'hosts.toml'), 'server = "https://mirror.example.org"\n');
  await timed('reconcile Job with node trust', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
  const ca = await registryCa(s);
  const digest = trustSetDigest([{ hostname: s.hostname, caPem: ca }]);
  const jobs = await nodeTrustJobs();
  const job = jobs.find((j) => j.metadata.annotations[NODE_TRUST_ANNOTATION] === digest);
  assert.ok(job, `a node-trust Job for the set: ${JSON.stringify(jobs.map((j) => j.metadata))}`);
  assert.is(job?.status?.succeeded, 1);
  assert.is(await nodeDigest(), digest, 'the reconcile recorded the set on the Node');
  const dir = (root: string) => join(root, s.hostname);
  assert.is(readFileSync(join(dir(s.certsD.containerd), 'hosts.toml'), 'utf8'), containerdHostsToml(s.hostname));
  for (const root of Object.values(s.certsD)) {
    assert.is(readFileSync(join(dir(root), 'ca.crt'), 'utf8'), `${ca.trim()}\n`, root);
    assert.ok(existsSync(join(dir(root), NODE_TRUST_MARKER)), root);
  }
  assert.equal(readdirSync(dir(s.certsD.docker)).sort(), [NODE_TRUST_MARKER, 'ca.crt'].sort());
  // the pod ran from the Job's spec: pinned, as root, the three certs.d directories its only host paths
  const [pod] = await listObjects<{ spec: { nodeName: string; volumes: { hostPath?: { path: string } }[]; automountServiceAccountToken?: boolean } }>(cluster, 'pods', NODE_TRUST_NAMESPACE, { selector: `batch.kubernetes.io/job-name=${job?.metadata.name}` });
  assert.is(pod?.spec.nodeName, NODE);
  assert.equal(pod?.spec.volumes.flatMap((v) => (v.hostPath ? [v.hostPath.path] : [])), ['/etc/containerd/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d']);
  assert.is(pod?.spec.automountServiceAccountToken, false);
  assert.is(readFileSync(join(s.certsD.containerd, 'mirror.example.org', 'hosts.toml'), 'utf8'), 'server = "https://mirror.example.org"\n');
});

run('the node\'s containerd pulls the image through its CRI, finding hosts.toml + ca.crt through config_path (the kubelet\'s pull)', async () => {
  const s = await started();
  const cri = await criPull(s);
  timings['CRI pull after'] = cri.ms;
  assert.is(cri.code, 0, cri.stderr);
  assert.match(cri.stdout, /Image is up to date for sha256:[0-9a-f]{64}/, cri.stdout);
});

run('ctr on the node pulls the image from the registry through nginx with full TLS verification (--hosts-dir: the same hosts.toml)', async () => {
  const s = await started();
  const after = await pull(s);
  timings['ctr pull after'] = after.ms;
  assert.is(after.code, 0, after.stderr);
  const listed = await ctr(['images', 'ls', '-q']);
  assert.ok(listed.stdout.split('\n').includes(s.ref), listed.stdout);
});

run('skopeo on the node pulls from the registry trusting /etc/containers/certs.d as the Job wrote it (no --cert-dir); without it, x509', async () => {
  const s = await started();
  const out = join(s.workDir, 'skopeo-pulled');
  // on the node: its /etc/containers/certs.d is the Job's hostPath volume
  const trusted = await node.onNode(SKOPEO, ['copy', '--src-creds', s.pull, `docker://${s.ref}`, `oci:${out}:v1`]);
  assert.is(trusted.code, 0, trusted.stderr);
  assert.equal(readOciImageFiles(out, 'v1'), { 'hello.txt': `hello from ${s.namespace}\n` });
  // the same client given an empty certificate directory instead (skopeo then reads no certs.d):
  // nothing else trusts the registry's CA
  const empty = join(s.workDir, 'no-certs');
  mkdirSync(empty);
  const untrusted = await node.onNode(SKOPEO, ['copy', '--src-cert-dir', empty, '--src-creds', s.pull, `docker://${s.ref}`, `oci:${join(s.workDir, 'untrusted')}:v1`]);
  assert.is.not(untrusted.code, 0);
  assert.match(untrusted.stderr, X509, untrusted.stderr);
});

run('a reconcile with nothing changed starts no node-trust Job (the Node annotation matches)', async () => {
  const s = await started();
  const before = (await nodeTrustJobs()).length;
  await timed('reconcile Job, nothing to do', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
  assert.is((await nodeTrustJobs()).length, before);
});

run('a renewed CA reaches the node without restarting containerd: x509 until the resync CronJob\'s Job wrote it, then it pulls', async () => {
  const s = await started();
  const oldCa = await registryCa(s);
  const pidBefore = containerdPid();
  assert.ok(pidBefore, 'the node\'s containerd runs');
  // the operator's CA renewed (here: its Secret deleted); a reconcile without node trust re-issues the registry's certificate
  const deleted = await cluster.kubectl(['delete', 'secret', 'image-registry-operator-ca'], { namespace: OPERATOR_NAMESPACE });
  assert.is(deleted.code, 0, deleted.stderr);
  await timed('reconcile Job (CA renewal, node trust off)', () => runReconcileJob(cluster, s.namespace, NAME, s.config));
  const newCa = await registryCa(s);
  assert.is.not(newCa, oldCa, 'a new CA');
  await waitFor('the registry to serve the certificate of the new CA', () => verifies(s, newCa), 120_000);
  const stale = await criPull(s);
  assert.is.not(stale.code, 0);
  assert.match(stale.stderr, X509, stale.stderr);
  // the resync CronJob's Job (its ConfigMap has the component's variable) notices the Node lacks the current set
  const job = `resync-${Date.now()}`;
  const created = await cluster.kubectl(['create', 'job', `--from=cronjob/image-registry-operator-resync`, job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  const finished = await timed('resync Job with node trust', () => waitForJob(cluster, OPERATOR_NAMESPACE, job, 240_000));
  assert.is(finished.result, 'Complete', finished.logs);
  // the set is every registry's of the cluster (in the full run, other files' registries may still be
  // there): the Node records a new set, and this registry's files hold the new CA
  renewedDigest = (await nodeDigest()) ?? '';
  assert.ok(renewedDigest, 'the resync recorded a set on the Node');
  assert.is.not(renewedDigest, trustSetDigest([{ hostname: s.hostname, caPem: oldCa }]), 'not the set of the old CA');
  assert.is(readFileSync(join(s.certsD.containerd, s.hostname, 'ca.crt'), 'utf8'), `${newCa.trim()}\n`);
  const renewed = await pull(s);
  timings['ctr pull after renewal'] = renewed.ms;
  assert.is(renewed.code, 0, renewed.stderr);
  // the daemon re-read hosts.toml for this pull: it was never restarted
  const cri = await criPull(s);
  timings['CRI pull after renewal'] = cri.ms;
  assert.is(cri.code, 0, cri.stderr);
  assert.is(containerdPid(), pidBefore, 'the same containerd process still runs');
});

run('the admission policy refuses a pod in the node-trust namespace with any other host path', async () => {
  await started();
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'escape', namespace: NODE_TRUST_NAMESPACE },
    spec: { containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'root', hostPath: { path: '/' } }] },
  };
  const refused = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod) });
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, /only host paths allowed here are \/etc\/containerd\/certs\.d/, refused.stderr);
  const allowed = { ...pod, spec: { ...pod.spec, volumes: [{ name: 'c', hostPath: { path: '/etc/containerd/certs.d' } }] } };
  const accepted = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(allowed) });
  assert.is(accepted.code, 0, accepted.stderr);
});

run('a deleted registry\'s files are removed from the node; the admin\'s entry stays', async () => {
  const s = await started();
  const deleted = await cluster.kubectl(['delete', 'imageregistry', NAME, '--wait=true', '--timeout=60s'], { namespace: s.namespace });
  assert.is(deleted.code, 0, deleted.stderr);
  await timed('reconcile Job of the deleted registry', () => runReconcileJob(cluster, s.namespace, NAME, s.trustConfig));
  for (const root of Object.values(s.certsD)) assert.not.ok(existsSync(join(root, s.hostname)), `${root}/${s.hostname} removed`);
  assert.ok(existsSync(join(s.certsD.containerd, 'mirror.example.org', 'hosts.toml')));
  const digest = await nodeDigest();
  assert.ok(digest && digest !== renewedDigest, 'the Node records the set without the registry');
  console.log(`timings (ms): ${JSON.stringify(timings)}`);
});

test.after(async () => {
  const s = current ?? (await setup?.catch(() => undefined));
  if (createdWorkDir) rmSync(createdWorkDir, { recursive: true, force: true });
  if (!s) return;
  // the next test files run without node trust, as the core install
  await setOperatorConfig(cluster, { OPERATOR_NODE_TRUST_NAMESPACE: '' }).catch(() => undefined);
  await cluster.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: s.componentObjects.map((o) => JSON.stringify(o)).join('\n') });
  await cluster.kubectl(['annotate', 'node', NODE, `${NODE_TRUST_ANNOTATION}-`]);
  await cluster.kubectl(['delete', 'namespace', s.namespace, '--wait=false']);
  // the pulled images, the admin's entry, and this registry's files if a test failed before their removal
  await node.crictl(['rmi', s.ref]);
  await ctr(['images', 'rm', '--sync', s.ref]);
  await node.onNode('ctr', ['--address', node.containerdSocket, 'namespaces', 'rm', CTR_NAMESPACE]);
  rmSync(join(s.certsD.containerd, 'mirror.example.org'), { recursive: true, force: true });
  for (const root of Object.values(s.certsD)) {
    if (existsSync(join(root, s.hostname, NODE_TRUST_MARKER))) rmSync(join(root, s.hostname), { recursive: true, force: true });
  }
});

test.run();

/** Whether the registry's front (through its Service) serves a certificate the CA verifies. */
function verifies(s: Setup, caPem: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: s.hostname, port: s.service.port, lookup: s.service.lookup, servername: s.hostname, ca: caPem });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(socket.authorized);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
