// The reconcile Job against the real control plane: run as a process from the command, args and env
// of our reconcile Job manifest, it creates the registry's objects; a second run changes nothing;
// all three certificate modes; the pod template passes PodSecurity "restricted"; renewal; deleting
// a registry lets the real garbage collector remove what it owns; replicas share one data claim, and
// a StatefulSet of an earlier version (a claim per pod) is replaced. The registries in the shared
// namespace never get a pod (a ResourceQuota of 0 pods); the tests that need pods (the real
// node runs them) make a namespace of their own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { run, waitFor } from '../support/processes.ts';
import { issueTestCertificate } from '../support/pki.ts';
import { fulfilCertificates, installCertificateCrd } from '../support/cert-manager.ts';
import { applyObjects, createObjects, getObject, listObjects } from '../support/kubectl.ts';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { connectKube } from '../../cronjobs/kube.ts';
import { reconcileRegistry } from '../../cronjobs/reconcile-registry.ts';
import { KubeConfig } from '@kubernetes/client-node';

type Obj = Record<string, any>;
const root = fileURLToPath(new URL('../..', import.meta.url));
const OPERATOR_NAMESPACE = 'image-registry-operator';

let ready: Promise<{ cluster: TestCluster; ns: string }> | undefined;
function setup() {
  ready ??= (async () => {
    const cluster = await testCluster();
    await cluster.installCrds();
    await installCertificateCrd(cluster);
    await cluster.kubectl(['create', 'namespace', OPERATOR_NAMESPACE]);
    const ns = await cluster.createNamespace('reconcile');
    const quota = { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'no-pods' }, spec: { hard: { pods: '0' } } };
    await createObjects(cluster, quota, ns);
    return { cluster, ns };
  })();
  return ready;
}

/** Runs the reconcile Job's container the way a kubelet would: its command, args and env. */
async function runReconcileJob(cluster: TestCluster, namespace: string, name: string) {
  // no replica ever gets ready here: the Job must not wait for one
  const config = operatorConfigFromEnv({ OPERATOR_ROLLOUT_TIMEOUT: '0s' });
  const job = desiredReconcileJob({ registry: { namespace, name }, config, windowEnd: new Date() });
  const container = job.spec.template.spec.containers[0]!;
  const [command, script] = container.command;
  assert.is(command, 'node');
  const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
  const result = await run(process.execPath, [script!.replace(/^\/app\//, root), ...container.args], {
    env: { PATH: process.env.PATH, KUBECONFIG: cluster.kubeconfig, ...env },
  });
  assert.is(result.code, 0, `reconcile Job failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

const registry = (name: string, spec: Obj = {}) => ({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name }, spec });
const readyCondition = (object: Obj | undefined) => (object?.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');
const decode = (secret: Obj, key: string) => Buffer.from(secret.data[key], 'base64').toString('utf8');

const OWNED = [
  ['service', 'reg'],
  ['statefulset', 'reg'],
  ['secret', 'reg-tls'],
  ['secret', 'reg-auth-tls'],
  ['secret', 'reg-auth-config'],
  ['secret', 'reg-registry-config'],
  ['configmap', 'reg-nginx'],
] as const;

test('self-signed: the reconcile Job creates Service, StatefulSet, Secrets and ConfigMap owned by the registry', async () => {
  const { cluster, ns } = await setup();
  await applyObjects(cluster, registry('reg'), ns);
  await runReconcileJob(cluster, ns, 'reg');
  const stored = await getObject(cluster, 'imageregistry', 'reg', ns);
  for (const [kind, name] of OWNED) {
    const object = await getObject(cluster, kind, name, ns);
    assert.ok(object, `${kind} ${name} exists`);
    const owner = object.metadata.ownerReferences?.[0];
    assert.equal([owner?.kind, owner?.name, owner?.uid, owner?.controller], ['ImageRegistry', 'reg', stored!.metadata.uid, true], `${kind} ${name} owner`);
  }
  assert.is(stored!.status.hostname, `reg.${ns}.svc.example.org`);
  assert.is(stored!.status.tlsSecretName, 'reg-tls');
  const claim = await getObject(cluster, 'pvc', 'data-reg-0', ns);
  assert.ok(claim, 'the data claim, made by the Job (not by claim templates)');
  assert.is(claim!.metadata.ownerReferences, undefined, 'without deleteClaim the claim has no owner: it outlives the registry');
  assert.is(claim!.metadata.labels['app.kubernetes.io/instance'], 'reg');
  const service = await getObject(cluster, 'service', 'reg', ns);
  assert.is(service!.spec.type, 'LoadBalancer');
  assert.is(service!.metadata.annotations['external-dns.alpha.kubernetes.io/hostname'], `reg.${ns}.svc.example.org`);
});

test('self-signed: the TLS leaf names the hostname and chains to the operator CA kept in the operator namespace', async () => {
  const { cluster, ns } = await setup();
  const tls = await getObject(cluster, 'secret', 'reg-tls', ns);
  const ca = await getObject(cluster, 'secret', 'image-registry-operator-ca', OPERATOR_NAMESPACE);
  assert.ok(ca, 'operator CA Secret');
  const leaf = new X509Certificate(decode(tls!, 'tls.crt'));
  const caCert = new X509Certificate(decode(ca!, 'tls.crt'));
  assert.ok(leaf.verify(caCert.publicKey), 'leaf signed by the operator CA');
  assert.is(decode(tls!, 'ca.crt'), decode(ca!, 'tls.crt'));
  assert.match(leaf.subjectAltName ?? '', `DNS:reg.${ns}.svc.example.org`);
  assert.match(leaf.subjectAltName ?? '', `DNS:reg.${ns}.svc.cluster.local`);
});

test('no replica is ready (the StatefulSet controller may not create pods here) → Ready=False RolloutPending, with an Event', async () => {
  const { cluster, ns } = await setup();
  const condition = readyCondition(await getObject(cluster, 'imageregistry', 'reg', ns));
  assert.equal([condition?.status, condition?.reason], ['False', 'RolloutPending']);
  const events = await listObjects(cluster, 'events', ns, { fieldSelector: 'involvedObject.name=reg,involvedObject.kind=ImageRegistry' });
  const reasons = events.map((e) => e.reason);
  assert.ok(reasons.includes('CertificateIssued'), reasons.join(','));
  assert.ok(reasons.includes('RolloutPending'), reasons.join(','));
});

test('a second run changes nothing: every resourceVersion stays equal', async () => {
  const { cluster, ns } = await setup();
  const versions = async () => {
    const list: string[] = [];
    for (const [kind, name] of [...OWNED, ['imageregistry', 'reg']] as const) list.push(`${kind}/${name}@${(await getObject(cluster, kind, name, ns))!.metadata.resourceVersion}`);
    list.push(`ca@${(await getObject(cluster, 'secret', 'image-registry-operator-ca', OPERATOR_NAMESPACE))!.metadata.resourceVersion}`);
    return list;
  };
  const before = await versions();
  await runReconcileJob(cluster, ns, 'reg');
  assert.equal(await versions(), before);
});

test('the StatefulSet pod template is accepted in a namespace that enforces PodSecurity restricted', async () => {
  const { cluster, ns } = await setup();
  const restricted = await cluster.createNamespace('restricted', { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' });
  const statefulSet = await getObject(cluster, 'statefulset', 'reg', ns);
  // as the StatefulSet controller builds pod reg-0: the template (the data claim is one of its volumes)
  const template = statefulSet!.spec.template;
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reg-0', ...template.metadata }, spec: template.spec };
  const accepted = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod), namespace: restricted });
  assert.is(accepted.code, 0, accepted.stderr);
  // the check is real: the same pod with an added capability is refused there
  pod.spec = { ...pod.spec, containers: pod.spec.containers.map((c: Obj, i: number) => (i === 0 ? { ...c, securityContext: { ...c.securityContext, capabilities: { drop: ['ALL'], add: ['NET_RAW'] } } } : c)) };
  const refused = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod), namespace: restricted });
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, /violates PodSecurity "restricted/, refused.stderr);
});

test('existing secretName: missing → Ready=False SecretNotFound naming it; once created the registry uses it', async () => {
  const { cluster, ns } = await setup();
  await applyObjects(cluster, registry('mine', { tls: { secretName: 'my-tls' } }), ns);
  await runReconcileJob(cluster, ns, 'mine');
  const condition = readyCondition(await getObject(cluster, 'imageregistry', 'mine', ns));
  assert.equal([condition?.status, condition?.reason], ['False', 'SecretNotFound']);
  assert.match(condition.message, 'my-tls');
  assert.match(condition.message, 'spec.tls.secretName');
  assert.not.ok(await getObject(cluster, 'statefulset', 'mine', ns), 'no StatefulSet without its certificate');

  const ca = issueTestCertificate({ commonName: 'user CA', isCa: true });
  const leaf = issueTestCertificate({ commonName: `mine.${ns}.svc.example.org`, dnsNames: [`mine.${ns}.svc.example.org`], issuer: ca });
  const created = await cluster.kubectl(['create', 'secret', 'tls', 'my-tls', '--cert', await writeTemp(leaf.certPem), '--key', await writeTemp(leaf.keyPem)], { namespace: ns });
  assert.is(created.code, 0, created.stderr);
  await runReconcileJob(cluster, ns, 'mine');
  const statefulSet = await getObject(cluster, 'statefulset', 'mine', ns);
  const tlsVolume = statefulSet!.spec.template.spec.volumes.find((v: Obj) => v.secret?.secretName === 'my-tls');
  assert.ok(tlsVolume, 'the pod mounts the user Secret');
  assert.is((await getObject(cluster, 'imageregistry', 'mine', ns))!.status.tlsSecretName, 'my-tls');
  assert.not.ok(await getObject(cluster, 'secret', 'mine-tls', ns), 'no operator-made TLS Secret in secretName mode');
});

test('a renewed serving certificate (the user Secret replaced) leaves the pod template alone: nginx reads it per handshake, no roll', async () => {
  const { cluster, ns } = await setup();
  await applyObjects(cluster, registry('renew', { tls: { secretName: 'renew-tls' } }), ns);
  const ca = issueTestCertificate({ commonName: 'user CA', isCa: true });
  const hostname = `renew.${ns}.svc.example.org`;
  const writeLeaf = async () => {
    const leaf = issueTestCertificate({ commonName: hostname, dnsNames: [hostname], issuer: ca });
    const secret = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'renew-tls' }, data: { 'tls.crt': Buffer.from(leaf.certPem).toString('base64'), 'tls.key': Buffer.from(leaf.keyPem).toString('base64'), 'ca.crt': Buffer.from(ca.certPem).toString('base64') } };
    await applyObjects(cluster, secret, ns);
    return leaf.certPem;
  };
  const first = await writeLeaf();
  await runReconcileJob(cluster, ns, 'renew');
  const before = await getObject(cluster, 'statefulset', 'renew', ns);
  assert.ok(before, 'StatefulSet created');
  const second = await writeLeaf();
  assert.is.not(second, first);
  await runReconcileJob(cluster, ns, 'renew');
  const after = await getObject(cluster, 'statefulset', 'renew', ns);
  assert.is(after!.metadata.generation, before!.metadata.generation, 'the StatefulSet spec did not change: no roll');
  assert.equal(after!.spec.template.metadata.annotations, before!.spec.template.metadata.annotations);
});

test('cert-manager issuerRef: a Certificate is created; once the issuer stand-in fills its Secret the registry uses it', async () => {
  const { cluster, ns } = await setup();
  await applyObjects(cluster, registry('cm', { tls: { issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } } }), ns);
  await runReconcileJob(cluster, ns, 'cm');
  const certificate = await getObject(cluster, 'certificates.cert-manager.io', 'cm-tls', ns);
  assert.ok(certificate, 'Certificate cm-tls');
  assert.equal(certificate!.spec.issuerRef, { name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  assert.ok(certificate!.spec.dnsNames.includes(`cm.${ns}.svc.example.org`));
  assert.is(readyCondition(await getObject(cluster, 'imageregistry', 'cm', ns))?.reason, 'CertificatePending');

  const fulfilled = await fulfilCertificates(cluster, ns, issueTestCertificate({ commonName: 'issuer', isCa: true }));
  assert.ok(fulfilled.includes('cm-tls'));
  await runReconcileJob(cluster, ns, 'cm');
  assert.is(readyCondition(await getObject(cluster, 'imageregistry', 'cm', ns))?.reason, 'RolloutPending');
  const statefulSet = await getObject(cluster, 'statefulset', 'cm', ns);
  assert.ok(statefulSet!.spec.template.spec.volumes.some((v: Obj) => v.secret?.secretName === certificate!.spec.secretName));
});

test('renewal with an injected clock: leaves past 2/3 of their life are reissued, the token-signing one rolls the pods, the CA is not renewed', async () => {
  const { cluster, ns } = await setup();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfig);
  const kube = connectKube(kubeConfig);
  const config = operatorConfigFromEnv({});
  const before = { tls: await getObject(cluster, 'secret', 'reg-tls', ns), auth: await getObject(cluster, 'secret', 'reg-auth-tls', ns), ca: await getObject(cluster, 'secret', 'image-registry-operator-ca', OPERATOR_NAMESPACE), sts: await getObject(cluster, 'statefulset', 'reg', ns) };
  const notAfter = new Date(new X509Certificate(decode(before.tls!, 'tls.crt')).validTo);
  const pastTwoThirds = new Date(notAfter.getTime() - 24 * 3600_000); // one day before expiry of a 90-day leaf
  await reconcileRegistry({ namespace: ns, name: 'reg' }, { kube, config, now: () => pastTwoThirds, rolloutTimeoutMs: 0, credentialsTimeoutMs: 10_000 });
  const after = { tls: await getObject(cluster, 'secret', 'reg-tls', ns), auth: await getObject(cluster, 'secret', 'reg-auth-tls', ns), ca: await getObject(cluster, 'secret', 'image-registry-operator-ca', OPERATOR_NAMESPACE), sts: await getObject(cluster, 'statefulset', 'reg', ns) };
  assert.is.not(decode(after.tls!, 'tls.crt'), decode(before.tls!, 'tls.crt'), 'leaf reissued');
  assert.is(after.ca!.metadata.resourceVersion, before.ca!.metadata.resourceVersion, 'CA kept');
  const annotation = (s: Obj | undefined) => s!.spec.template.metadata.annotations['registry.mgoltzsche.github.com/rollout-checksum'];
  // the serving certificate alone would not roll them (nginx reads it per handshake); the token-signing
  // key renewed in the same run does: it is staged into the registry's trusted keys, read only at start
  assert.is.not(decode(after.auth!, 'tls.crt'), decode(before.auth!, 'tls.crt'), 'token-signing leaf reissued');
  assert.is.not(annotation(after.sts), annotation(before.sts), 'pod template annotation changed → pods roll');
});

test('deleting a registry: the garbage collector removes its objects, and its volume only with deleteClaim', async () => {
  const { cluster } = await setup();
  const ns = await cluster.createNamespace('gc');
  await applyObjects(cluster, registry('keep', { replicas: 1 }), ns);
  await applyObjects(cluster, registry('drop', { replicas: 1, persistentVolumeClaim: { deleteClaim: true } }), ns);
  await runReconcileJob(cluster, ns, 'keep');
  await runReconcileJob(cluster, ns, 'drop');
  // the reconcile Job creates the claim; the tests' hostPath provisioner binds it
  for (const name of ['keep', 'drop']) {
    await waitFor(`PVC data-${name}-0 bound`, async () => (await getObject(cluster, 'pvc', `data-${name}-0`, ns))?.status?.phase === 'Bound', 60_000);
  }
  for (const name of ['keep', 'drop']) assert.is((await cluster.kubectl(['delete', 'imageregistry', name], { namespace: ns })).code, 0);
  const owned = (name: string) => [['service', name], ['statefulset', name], ['secret', `${name}-tls`], ['secret', `${name}-auth-tls`], ['secret', `${name}-auth-config`], ['secret', `${name}-registry-config`], ['configmap', `${name}-nginx`]] as const;
  for (const [kind, name] of [...owned('keep'), ...owned('drop')]) {
    await waitFor(`${kind} ${name} to be garbage-collected`, async () => (await getObject(cluster, kind, name, ns)) === undefined, 60_000);
  }
  await waitFor('PVC data-drop-0 deleted with its registry (deleteClaim)', async () => (await getObject(cluster, 'pvc', 'data-drop-0', ns)) === undefined, 60_000);
  assert.ok(await getObject(cluster, 'pvc', 'data-keep-0', ns), 'without deleteClaim the volume stays');
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test('a claim the API server will not resize: Warning VolumeUnchanged with its reason, the run goes on, the volume stays', async () => {
  const { cluster, ns } = await setup();
  await applyObjects(cluster, registry('sized', { persistentVolumeClaim: { resources: { requests: { storage: '1Gi' } } } }), ns);
  await runReconcileJob(cluster, ns, 'sized');
  // no StorageClass here allows expansion (the tests' provisioner makes static hostPath volumes)
  await applyObjects(cluster, registry('sized', { persistentVolumeClaim: { resources: { requests: { storage: '2Gi' } } } }), ns);
  await runReconcileJob(cluster, ns, 'sized');
  assert.is((await getObject(cluster, 'pvc', 'data-sized-0', ns))!.spec.resources.requests.storage, '1Gi');
  const events = await listObjects(cluster, 'events', ns);
  const warning = events.find((e) => e.reason === 'VolumeUnchanged' && e.involvedObject.name === 'sized');
  assert.ok(warning, events.map((e) => e.reason).join(','));
  assert.is(warning!.type, 'Warning');
  assert.match(warning!.message, 'data-sized-0');
  assert.match(warning!.message, /resize|Forbidden|immutable/);
  assert.ok(await getObject(cluster, 'statefulset', 'sized', ns), 'the rest of the registry is reconciled');
});

test('two replicas mount one claim (e2e/credentials pushes through one pod and pulls through the other)', async () => {
  const { cluster } = await setup();
  const ns = await cluster.createNamespace('shared');
  await applyObjects(cluster, registry('pair', { replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteMany'] } }), ns);
  await runReconcileJob(cluster, ns, 'pair');
  const pods = async () => (await listObjects(cluster, 'pods', ns, { selector: 'app.kubernetes.io/instance=pair' })).filter((p) => !p.metadata.deletionTimestamp);
  await waitFor('pods pair-0 and pair-1', async () => (await pods()).length === 2, 60_000);
  for (const pod of await pods()) {
    const data = pod.spec.volumes.find((v: Obj) => v.name === 'data');
    assert.equal(data?.persistentVolumeClaim, { claimName: 'data-pair-0' }, `${pod.metadata.name} mounts the shared claim`);
  }
  await waitFor('PVC data-pair-0 bound', async () => (await getObject(cluster, 'pvc', 'data-pair-0', ns))?.status?.phase === 'Bound', 60_000);
  const claims = await listObjects(cluster, 'pvc', ns, { selector: 'app.kubernetes.io/instance=pair' });
  assert.equal(claims.map((c) => c.metadata.name), ['data-pair-0'], 'one claim for both replicas');
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test('a StatefulSet of an earlier version (a claim per pod) is replaced: pods adopted, pod 0\'s claim and data kept, the unused claims named', async () => {
  const { cluster } = await setup();
  const ns = await cluster.createNamespace('legacy');
  await applyObjects(cluster, registry('old', { replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteMany'] } }), ns);
  await runReconcileJob(cluster, ns, 'old');
  // the StatefulSet as earlier versions made it: the data volume from a claim template per pod
  const current = await getObject(cluster, 'statefulset', 'old', ns);
  assert.is((await cluster.kubectl(['delete', 'statefulset', 'old', '--cascade=foreground', '--wait=true'], { namespace: ns })).code, 0);
  assert.is((await cluster.kubectl(['delete', 'pvc', 'data-old-0', '--wait=true'], { namespace: ns })).code, 0);
  const template = current!.spec.template;
  const legacy = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'old', labels: current!.metadata.labels, ownerReferences: current!.metadata.ownerReferences },
    spec: {
      ...current!.spec,
      template: { ...template, spec: { ...template.spec, volumes: template.spec.volumes.filter((v: Obj) => v.name !== 'data') } },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      volumeClaimTemplates: [{ metadata: { name: 'data', labels: current!.metadata.labels }, spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '8Gi' } } } }],
    },
  };
  await applyObjects(cluster, legacy, ns);
  for (const claim of ['data-old-0', 'data-old-1']) {
    await waitFor(`PVC ${claim} bound`, async () => (await getObject(cluster, 'pvc', claim, ns))?.status?.phase === 'Bound', 60_000);
  }
  const before = await getObject(cluster, 'statefulset', 'old', ns);
  const claimBefore = await getObject(cluster, 'pvc', 'data-old-0', ns);
  const volume = await getObject(cluster, 'pv', claimBefore!.spec.volumeName, '');
  const marker = join(volume!.spec.hostPath.path, 'docker', 'marker');
  mkdirSync(dirname(marker), { recursive: true });
  writeFileSync(marker, 'pushed before the upgrade');

  await runReconcileJob(cluster, ns, 'old');
  const after = await getObject(cluster, 'statefulset', 'old', ns);
  assert.is.not(after!.metadata.uid, before!.metadata.uid, 'recreated');
  assert.is(after!.spec.volumeClaimTemplates, undefined);
  assert.is((await getObject(cluster, 'pvc', 'data-old-0', ns))!.metadata.uid, claimBefore!.metadata.uid, 'pod 0\'s claim is the shared one');
  assert.is(readFileSync(marker, 'utf8'), 'pushed before the upgrade', 'its data stays');
  // the new StatefulSet adopts the orphaned pods and rolls them, the highest ordinal first
  await waitFor('both pods owned by the new StatefulSet, old-1 on the shared claim', async () => {
    const pods = (await listObjects(cluster, 'pods', ns, { selector: 'app.kubernetes.io/instance=old' })).filter((p) => !p.metadata.deletionTimestamp);
    const owned = pods.filter((p) => p.metadata.ownerReferences?.some((o: Obj) => o.uid === after!.metadata.uid));
    const one = pods.find((p) => p.metadata.name === 'old-1');
    return owned.length === 2 && one?.spec.volumes.find((v: Obj) => v.name === 'data')?.persistentVolumeClaim?.claimName === 'data-old-0';
  }, 90_000);
  const events = await listObjects(cluster, 'events', ns);
  const shared = events.find((e) => e.reason === 'VolumeShared' && e.involvedObject.name === 'old');
  assert.ok(shared, 'an Event says what happened');
  assert.match(shared!.message, 'data-old-1', 'and names the claim no longer used');
  await runReconcileJob(cluster, ns, 'old');
  assert.is((await getObject(cluster, 'statefulset', 'old', ns))!.metadata.uid, after!.metadata.uid, 'replaced once');
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test('clean up', async () => {
  const { cluster, ns } = await setup();
  assert.is((await cluster.kubectl(['delete', 'namespace', ns, '--wait=false'])).code, 0);
});

async function writeTemp(content: string): Promise<string> {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const file = join(mkdtempSync(join(tmpdir(), 'iro-test-')), 'file.pem');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

test.run();
