import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  containerdHostsToml,
  decodeTrustSet,
  desiredNodeTrustJob,
  encodeTrustSet,
  nodeTrustDecisions,
  nodeTrustDirectories,
  nodeTrustJobName,
  nodeTrustPlan,
  NODE_TRUST_ANNOTATION,
  NODE_TRUST_MARKER,
  NODE_TRUST_NODE_ANNOTATION,
  NODE_TRUST_SET_ENV,
  normalizeTrustSet,
  TRUST_ROOTS,
  trustSetDigest,
  type NodeTrustJobState,
} from '../../functions/node-trust.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { operatorConfigEnv } from '../../functions/reconcile-job.ts';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(body).toString('base64')}\n-----END CERTIFICATE-----\n`;
const CA1 = pem('operator ca 1');
const CA2 = pem('operator ca 2');
const a = { hostname: 'a.team.svc.example.org', caPem: CA1 };
const b = { hostname: 'b.team.svc.example.org', caPem: CA1 };
const c = { hostname: 'c.other.svc.example.org', caPem: CA2 };
const config = { ...operatorConfigFromEnv({ OPERATOR_NODE_TRUST_NAMESPACE: 'image-registry-operator-node-trust' }), nodeTrustNamespace: 'image-registry-operator-node-trust' };

test('containerd hosts.toml: the registry as server and as a pull/resolve host verified with the ca.crt beside it', () => {
  assert.is(containerdHostsToml('r.ns.svc.example.org'), [
    "# Written by image-registry-operator (node trust). Replaced when the registry's CA changes, removed with the registry.",
    'server = "https://r.ns.svc.example.org"',
    '',
    '[host."https://r.ns.svc.example.org"]',
    '  capabilities = ["pull", "resolve"]',
    '  ca = "ca.crt"',
    '',
  ].join('\n'));
});

test('the files per node: hosts.toml + ca.crt for containerd, ca.crt for CRI-O/podman and Docker, a marker in each directory', () => {
  const dirs = nodeTrustDirectories([c, a]);
  assert.equal(dirs.map((d) => `${d.root}/${d.host}: ${Object.keys(d.files).sort().join(' ')}`), [
    `containerd/a.team.svc.example.org: ${NODE_TRUST_MARKER} ca.crt hosts.toml`,
    `containers/a.team.svc.example.org: ${NODE_TRUST_MARKER} ca.crt`,
    `docker/a.team.svc.example.org: ${NODE_TRUST_MARKER} ca.crt`,
    `containerd/c.other.svc.example.org: ${NODE_TRUST_MARKER} ca.crt hosts.toml`,
    `containers/c.other.svc.example.org: ${NODE_TRUST_MARKER} ca.crt`,
    `docker/c.other.svc.example.org: ${NODE_TRUST_MARKER} ca.crt`,
  ]);
  assert.is(dirs[0]?.files['ca.crt'], CA1);
  assert.is(dirs[3]?.files['ca.crt'], CA2);
  assert.equal(TRUST_ROOTS, { containerd: '/etc/containerd/certs.d', containers: '/etc/containers/certs.d', docker: '/etc/docker/certs.d' });
});

test('the set refuses hostnames that could leave certs.d and CAs that are not PEM; a CA gets one trailing newline', () => {
  for (const hostname of ['../etc', 'a/b', '', '.hidden', 'UPPER..x', 'a b']) {
    assert.throws(() => normalizeTrustSet([{ hostname, caPem: CA1 }]), /is not a registry hostname/, hostname);
  }
  assert.throws(() => normalizeTrustSet([{ hostname: 'r.example.org', caPem: 'not a certificate' }]), /not a PEM certificate/);
  assert.throws(() => normalizeTrustSet([a, { ...a, caPem: CA2 }]), /two registries claim/);
  assert.equal(normalizeTrustSet([{ hostname: 'R.Example.org:5000', caPem: `\n${CA1}\n\n` }]), [{ hostname: 'r.example.org:5000', caPem: CA1 }]);
});

test('digest: the same for the same set in any order, different for another host or CA', () => {
  const digest = trustSetDigest([a, b, c]);
  assert.match(digest, /^[0-9a-f]{64}$/);
  assert.is(trustSetDigest([c, a, b, a]), digest);
  assert.is.not(trustSetDigest([a, b]), digest, 'a registry gone');
  assert.is.not(trustSetDigest([a, b, { ...c, caPem: CA1 }]), digest, 'a renewed CA');
  assert.is.not(trustSetDigest([a, b, { ...c, hostname: 'd.other.svc.example.org' }]), digest);
  assert.is.not(trustSetDigest([]), digest);
});

test('the env value carries each CA once and decodes to the normalized set', () => {
  const text = encodeTrustSet([c, b, a]);
  assert.equal(JSON.parse(text), { cas: [CA1, CA2], hosts: { [a.hostname]: 0, [b.hostname]: 0, [c.hostname]: 1 } });
  assert.equal(decodeTrustSet(text), normalizeTrustSet([a, b, c]));
  assert.throws(() => decodeTrustSet('{"cas": ["x"], "hosts": {"a.example.org": 3}}'), /names no CA/);
  assert.throws(() => decodeTrustSet('{"hosts": {}}'), /expected/);
  assert.throws(() => decodeTrustSet(JSON.stringify({ cas: [CA1], hosts: { '../../etc': 0 } })), /not a registry hostname/);
});

test('plan: writes ours and new ones, removes only our directories of registries gone, never touches someone else\'s', () => {
  const plan = nodeTrustPlan([a, c], [
    { root: 'containerd', host: a.hostname, owned: true },
    { root: 'containerd', host: b.hostname, owned: true },
    { root: 'containerd', host: 'user.example.org', owned: false },
    { root: 'docker', host: c.hostname, owned: false },
    { root: 'docker', host: b.hostname, owned: false },
  ]);
  assert.equal(plan.write.map((d) => `${d.root}/${d.host}`), [
    `containerd/${a.hostname}`, `containers/${a.hostname}`, `docker/${a.hostname}`,
    `containerd/${c.hostname}`, `containers/${c.hostname}`,
  ]);
  assert.equal(plan.remove, [{ root: 'containerd', host: b.hostname, owned: true }]);
  assert.equal(plan.foreign, [{ root: 'docker', host: c.hostname, owned: false }]);
  assert.equal(nodeTrustPlan([], [{ root: 'containers', host: a.hostname, owned: false }]), { write: [], remove: [], foreign: [], merge: [], unmerge: [] });
});

test('decisions: nothing for nodes at the digest; a Job for the others; one Job per node at a time; record what the last completed Job wrote', () => {
  const digest = trustSetDigest([a]);
  const old = trustSetDigest([]);
  const job = (node: string, d: string, state: NodeTrustJobState['state'], completedAt?: string): NodeTrustJobState =>
    ({ name: nodeTrustJobName(node, d), node, digest: d, state, ...(completedAt ? { completedAt } : {}) });
  const decisions = nodeTrustDecisions([
    { name: 'current', digest, ready: true },
    { name: 'new', ready: true },
    { name: 'stale', digest: old, ready: true },
    { name: 'busy', digest: old, ready: true },
    { name: 'done', digest: old, ready: true },
    { name: 'down', ready: false },
    { name: 'retry', digest: old, ready: true },
    { name: 'overtaken', digest, ready: true },
    // deleted and registered again after its Job ran: that Job wrote to the old node's disk
    { name: 'recreated', ready: true, createdAt: '2026-01-01T01:00:00Z' },
  ], [
    job('busy', old, 'active'),
    job('done', old, 'complete', '2026-01-01T00:00:00Z'),
    job('done', digest, 'complete', '2026-01-01T00:05:00Z'),
    job('retry', digest, 'failed'),
    // an older set completed after the current one: the node has the older set
    job('overtaken', digest, 'complete', '2026-01-01T00:00:00Z'),
    job('overtaken', old, 'complete', '2026-01-01T00:01:00Z'),
    job('recreated', digest, 'complete', '2026-01-01T00:30:00Z'),
  ], digest);
  assert.equal(decisions, [
    { node: 'current', action: 'none' },
    { node: 'new', action: 'start', job: nodeTrustJobName('new', digest) },
    { node: 'stale', action: 'start', job: nodeTrustJobName('stale', digest) },
    { node: 'busy', action: 'wait', job: nodeTrustJobName('busy', old) },
    { node: 'done', action: 'record', digest },
    { node: 'down', action: 'skip-not-ready' },
    { node: 'retry', action: 'start', job: nodeTrustJobName('retry', digest), replace: true },
    { node: 'overtaken', action: 'start', job: nodeTrustJobName('overtaken', digest), replace: true },
    { node: 'recreated', action: 'start', job: nodeTrustJobName('recreated', digest), replace: true },
  ]);
});

test('Job names: DNS labels of ≤ 63 characters, one per node and digest', () => {
  const digest = trustSetDigest([a]);
  const long = `${'node-with-a-very-long-name.'.repeat(8)}example.org`;
  for (const node of ['local', 'ip-10-0-0-1.eu-west-1.compute.internal', long, 'UPPER_case']) {
    const name = nodeTrustJobName(node, digest);
    assert.ok(name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name), name);
    assert.is.not(name, nodeTrustJobName(node, trustSetDigest([b])));
  }
  assert.is.not(nodeTrustJobName(`${long}1`, digest), nodeTrustJobName(`${long}2`, digest), 'cut names stay apart by the hash');
});

test('the node-trust Job: pinned to its node, every taint tolerated, no API token, root without capabilities, only the three certs.d host paths', () => {
  const job = desiredNodeTrustJob({ node: 'worker-1', registries: [a, c], config });
  assert.is(job.metadata.namespace, 'image-registry-operator-node-trust');
  assert.is(job.metadata.annotations[NODE_TRUST_NODE_ANNOTATION], 'worker-1');
  assert.is(job.metadata.annotations[NODE_TRUST_ANNOTATION], trustSetDigest([a, c]));
  assert.is(job.metadata.name, nodeTrustJobName('worker-1', trustSetDigest([a, c])));
  assert.ok(job.spec.ttlSecondsAfterFinished > 3600, 'kept past the hourly resync, which records slow Jobs');
  const pod = job.spec.template.spec;
  assert.is(pod.nodeName, 'worker-1');
  assert.equal(pod.tolerations, [{ operator: 'Exists' }]);
  assert.is(pod.automountServiceAccountToken, false);
  const [container] = pod.containers;
  assert.is(container?.image, config.images.operator);
  assert.equal(container?.command, ['node', '/app/dist/node-trust.js']);
  assert.equal(container?.securityContext, { privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  assert.equal(pod.volumes.map((v) => [v.hostPath.path, v.hostPath.type]), [
    ['/etc/containerd/certs.d', 'DirectoryOrCreate'], ['/etc/containers/certs.d', 'DirectoryOrCreate'], ['/etc/docker/certs.d', 'DirectoryOrCreate'],
  ]);
  assert.equal(container?.volumeMounts.map((m) => m.mountPath), ['/etc/containerd/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d']);
  const env = container?.env.find((e) => e.name === NODE_TRUST_SET_ENV);
  assert.equal(decodeTrustSet(env?.value ?? ''), normalizeTrustSet([a, c]));
});

test('config: OPERATOR_NODE_TRUST_NAMESPACE turns node trust on and is passed on to the reconcile Jobs; unset, it is off', () => {
  assert.is(operatorConfigFromEnv({}).nodeTrustNamespace, undefined);
  assert.is(operatorConfigFromEnv({ OPERATOR_NODE_TRUST_NAMESPACE: ' ' }).nodeTrustNamespace, undefined);
  assert.ok(!operatorConfigEnv(operatorConfigFromEnv({})).some((e) => e.name === 'OPERATOR_NODE_TRUST_NAMESPACE'));
  assert.ok(operatorConfigEnv(config).some((e) => e.name === 'OPERATOR_NODE_TRUST_NAMESPACE' && e.value === 'image-registry-operator-node-trust'));
  assert.throws(() => operatorConfigFromEnv({ OPERATOR_NODE_TRUST_NAMESPACE: 'Not_A_Namespace' }), /OPERATOR_NODE_TRUST_NAMESPACE="Not_A_Namespace"/);
});

test.run();
