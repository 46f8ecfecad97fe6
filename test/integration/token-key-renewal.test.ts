// Token-signing key renewal through the reconcile Job's edge against the real API server: the user
// replaces the key Secret (spec.auth.ca.secretName) twice; the Job stages, waits for the roll,
// switches, and defers a renewal that would drop a key whose tokens may still be valid.
//
// Nothing here runs the StatefulSet controller: the test plays it by writing the status a completed
// roll-out has (observedGeneration, replicas, revisions) with the status subresource.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeConfig } from '@kubernetes/client-node';
import { connectKube } from '../../cronjobs/kube.ts';
import { reconcileRegistry } from '../../cronjobs/reconcile-registry.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { ROLLOUT_CHECKSUM_ANNOTATION } from '../../functions/registry-objects.ts';
import { TOKEN_KEY_RETENTION_SECONDS, TOKEN_KEY_SWITCHED_AT_ANNOTATION, tokenKeyId } from '../../functions/token-keys.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { waitFor } from '../support/processes.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { applyObjects, getObject, listObjects } from '../support/kubectl.ts';
import { selfSignedEcCertificate } from '../support/non-rsa-certificates.ts';
import { issueTestCertificate, type KeyPairPem } from '../support/pki.ts';

type Obj = Record<string, any>;
const OPERATOR_NAMESPACE = 'image-registry-operator';
const config = operatorConfigFromEnv({});

let ready: Promise<{ cluster: TestCluster; ns: string; reconcile: (now: Date) => Promise<unknown> }> | undefined;
function setup() {
  ready ??= (async () => {
    const cluster = await testCluster();
    await cluster.installCrds();
    await cluster.kubectl(['create', 'namespace', OPERATOR_NAMESPACE]);
    const ns = await cluster.createNamespace('token-keys');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfig);
    const kube = connectKube(kubeConfig);
    const reconcile = (now: Date) => reconcileRegistry({ namespace: ns, name: 'reg' }, { kube, config, now: () => now, rolloutTimeoutMs: 0, credentialsTimeoutMs: 10_000 });
    return { cluster, ns, reconcile };
  })();
  return ready;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const decode = (secret: Obj, key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
const signerSecret = (pair: KeyPairPem) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'signer' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem) } });

/** What the pods would see: the active key, the trusted key IDs, the switch time, the template checksum. */
async function observed(cluster: TestCluster, ns: string) {
  const authConfig = (await getObject(cluster, 'secret', 'reg-auth-config', ns)) as Obj;
  const statefulSet = (await getObject(cluster, 'statefulset', 'reg', ns)) as Obj;
  return {
    active: tokenKeyId(decode(authConfig, 'token.crt')),
    trusted: (JSON.parse(decode(authConfig, 'trusted-token-keys.jwks')) as { keys: { kid: string }[] }).keys.map((k) => k.kid),
    switchedAt: authConfig.metadata.annotations?.[TOKEN_KEY_SWITCHED_AT_ANNOTATION] as string | undefined,
    checksum: statefulSet.spec.template.metadata.annotations[ROLLOUT_CHECKSUM_ANNOTATION] as string,
    resourceVersion: authConfig.metadata.resourceVersion as string,
  };
}

/** The real StatefulSet controller rolls the pods (the real node runs them): wait until done. */
async function completeRollout(cluster: TestCluster, ns: string): Promise<void> {
  await waitFor('the StatefulSet roll-out', async () => {
    const statefulSet = (await getObject(cluster, 'statefulset', 'reg', ns)) as Obj;
    const st = statefulSet.status ?? {};
    return st.observedGeneration >= statefulSet.metadata.generation && st.updatedReplicas === 1 && st.readyReplicas === 1 && st.currentRevision === st.updateRevision;
  }, 120_000);
}

async function eventReasons(cluster: TestCluster, ns: string): Promise<string[]> {
  const events = await listObjects(cluster, 'events', ns, { fieldSelector: 'involvedObject.name=reg,involvedObject.kind=ImageRegistry' });
  return events.sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp)).map((e) => e.reason);
}

// the roll-out completes only when the pods get ready, which needs docker_auth
const authMissing = authServerUnavailable((await testCluster()).assetsDir);
if (authMissing) console.log(`SKIP token-key renewal with a real roll-out: auth_server could not be built: ${authMissing}`);
(authMissing ? test.skip : test)('a replaced key Secret: staged (one roll), switched once rolled out (no second roll), the next renewal deferred while the old key may have valid tokens', async () => {
  const { cluster, ns, reconcile } = await setup();
  const A = issueTestCertificate({ commonName: 'signer A' });
  const B = selfSignedEcCertificate('signer B');
  const C = selfSignedEcCertificate('signer C');
  const [kidA, kidB, kidC] = [tokenKeyId(A.certPem), tokenKeyId(B.certPem), tokenKeyId(C.certPem)];
  const T0 = new Date();
  const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

  await applyObjects(cluster, signerSecret(A), ns);
  await applyObjects(cluster, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'reg' }, spec: { auth: { ca: { secretName: 'signer' } } } }, ns);
  await reconcile(T0);
  const fresh = await observed(cluster, ns);
  assert.equal([fresh.active, fresh.trusted, fresh.switchedAt], [kidA, [kidA], undefined], 'fresh: A active and the only trusted key');
  const statefulSet = (await getObject(cluster, 'statefulset', 'reg', ns)) as Obj;
  assert.not.ok(statefulSet.spec.template.spec.volumes.some((v: Obj) => v.secret?.secretName === 'signer'), 'the source Secret is not mounted');

  // the user replaces the key: staged, docker_auth keeps signing with A
  await applyObjects(cluster, signerSecret(B), ns);
  await reconcile(minutes(1));
  const staged = await observed(cluster, ns);
  assert.equal([staged.active, staged.trusted], [kidA, [kidA, kidB]]);
  assert.is.not(staged.checksum, fresh.checksum, 'the new trust set rolls the pods');
  assert.ok((await eventReasons(cluster, ns)).includes('TokenKeyStaged'));

  // no roll-out yet: nothing changes, however often the Job runs
  await reconcile(minutes(2));
  assert.equal(await observed(cluster, ns), staged);

  // every pod runs the new template: switch, without another roll
  await completeRollout(cluster, ns);
  await reconcile(minutes(3));
  const switched = await observed(cluster, ns);
  assert.equal([switched.active, switched.trusted, switched.switchedAt], [kidB, [kidA, kidB], minutes(3).toISOString()]);
  assert.is(switched.checksum, staged.checksum, 'the switch does not roll the pods');
  assert.ok((await eventReasons(cluster, ns)).includes('TokenKeySwitched'));

  // replaced again right away: deferred until A's tokens have expired
  await applyObjects(cluster, signerSecret(C), ns);
  await reconcile(minutes(5));
  assert.equal(await observed(cluster, ns), switched, 'deferred: nothing written');
  const retention = new Date(minutes(3).getTime() + TOKEN_KEY_RETENTION_SECONDS * 1000);
  await reconcile(retention);
  const restaged = await observed(cluster, ns);
  assert.equal([restaged.active, restaged.trusted], [kidB, [kidB, kidC]], 'A dropped at this stage, with its roll');
  assert.is.not(restaged.checksum, switched.checksum);
  const readyCondition = ((await getObject(cluster, 'imageregistry', 'reg', ns))!.status.conditions as Obj[]).find((c) => c.type === 'Ready');
  assert.is(readyCondition?.status, 'True', 'the registry stays Ready throughout');
});

test.run();
