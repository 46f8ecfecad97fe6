// End to end: registries whose data lives in an S3 bucket. The S3 server is a real one (versitygw,
// built by test/binaries/build.sh) outside the cluster, on the root end of the real node's veth,
// which the registry pods reach by the node's routes, as a cluster reaches a cloud's object
// storage; the registry, nginx and docker_auth run on the real node (kubelet, containerd, runc) from
// the StatefulSet the real reconcile Job wrote. Clients reach the registry through its LoadBalancer
// Service, or one pod by its IP. The containers' logs are the kubelet's own files (CRI log format,
// under the node's /var/log/pods); a pod's go with it, so the logs of pods a test deletes or a
// rollout replaces are kept before, for the final search for leaked credentials.
//
// What needs docker_auth (pushes and pulls) skips, saying why, where auth_server could not be
// built; what the reconcile Job reports of a broken bucket does not need it and always runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, type Dirent } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import type { V1Pod } from '@kubernetes/client-node';
import { registryHostname } from '../../functions/names.ts';
import { NGINX_PORT } from '../../functions/nginx-config.ts';
import { desiredReconcileJob } from '../../functions/reconcile-job.ts';
import { STORAGE_HEALTH } from '../../functions/registry-storage.ts';
import { GROUP_VERSION, type Condition } from '../../functions/types.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { testCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { applyObjects, getObject, listObjects, requireObject, serverSide } from '../support/kubectl.ts';
import { writeLargeOciImage } from '../support/large-image.ts';
import { writeOciImage, type OciImage } from '../support/oci-image.ts';
import { installOperatorBase, OPERATOR_NAMESPACE } from '../support/operator.ts';
import { podWithReadyContainers, secretKey } from '../support/registry-e2e.ts';
import { nodeAccess } from '../support/node/node-access.ts';
import { startS3Server } from '../support/s3-server.ts';
import { waitFor } from '../support/processes.ts';

type Obj = Record<string, any>;
const SKOPEO = '/usr/bin/skopeo';
const NAME = 'registry';
const cluster = await testCluster();
const authMissing = authServerUnavailable(cluster.assetsDir);
if (authMissing) console.log(`SKIP pushes and pulls to bucket registries: they need docker_auth, and auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;

const workDir = mkdtempSync(join(tmpdir(), 'iro-s3-'));
const s3 = await startS3Server({ assetsDir: cluster.assetsDir, workDir, address: nodeAccess(cluster).network.hostAddress });
// a pod whose bucket is broken may never be ready: the Job waits this long, then reports
const config = await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: authMissing ? '5s' : '45s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' });
const WRONG_SECRET_KEY = `wrong-${randomBytes(12).toString('hex')}`;
const jobLogs: string[] = [];
/** logs of pods deleted during the run (the kubelet removes a pod's log files with the pod) */
const keptPodLogs: { pod: string; container: string; text: string }[] = [];

/** The reconcile Job as the webhook creates it; its logs are kept for the credentials check at the end. */
async function reconcile(namespace: string): Promise<void> {
  const job = desiredReconcileJob({ registry: { namespace, name: NAME }, config, windowEnd: new Date() });
  job.metadata.name = `e2e-${randomBytes(4).toString('hex')}`;
  await applyObjects(cluster, job, OPERATOR_NAMESPACE, serverSide('e2e-test'));
  const finished = await waitForJob(cluster, OPERATOR_NAMESPACE, job.metadata.name, 240_000);
  jobLogs.push(finished.logs);
  if (finished.result !== 'Complete') throw new Error(`reconcile Job failed:\n${finished.logs}`);
}

async function readiness(namespace: string): Promise<Condition | undefined> {
  const registry = await getObject<Obj>(cluster, 'imageregistry', NAME, namespace);
  return (registry?.status?.conditions ?? []).find((c: Condition) => c.type === 'Ready');
}

/** Reconciles until Ready says what `wanted` accepts (a pod may still be starting at the first run). */
async function reconcileUntil(namespace: string, what: string, wanted: (ready: Condition | undefined) => boolean, runs = 4): Promise<Condition | undefined> {
  let ready: Condition | undefined;
  for (let run = 0; run < runs; run++) {
    await reconcile(namespace);
    ready = await readiness(namespace);
    if (wanted(ready)) return ready;
  }
  throw new Error(`Ready is not ${what} after ${runs} reconciles: ${JSON.stringify(ready)}`);
}

const credentials = (accessKey: string, secretAccessKey?: string) => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name: 'registry-s3' }, type: 'Opaque',
  stringData: { AWS_ACCESS_KEY_ID: accessKey, ...(secretAccessKey === undefined ? {} : { AWS_SECRET_ACCESS_KEY: secretAccessKey }) },
});

const bucketRegistry = (bucket: string, spec: Obj = {}) => ({
  apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME },
  spec: { ...spec, storage: { s3: { bucket, endpoint: s3.endpoint, credentialsSecret: { name: 'registry-s3' } } } },
});

async function registryPod(namespace: string, ordinal: number): Promise<V1Pod> {
  return podWithReadyContainers(cluster, namespace, `${NAME}-${ordinal}`, ['nginx', 'registry', 'auth']);
}

// ---------------------------------------------------------------------------------------------
// Two replicas on one bucket (needs docker_auth)

interface Shared {
  namespace: string;
  hostname: string;
  dir: string;
  pods: V1Pod[];
  caPem: string;
  push: { username: string; password: string };
  pull: { username: string; password: string };
  images: OciImage[];
}

let shared: Promise<Shared> | undefined;
function twoReplicas(): Promise<Shared> {
  shared ??= (async () => {
    const namespace = await cluster.createNamespace('e2e-s3-replicas');
    s3.createBucket('images-two');
    await applyObjects(cluster, [
      credentials(s3.accessKey, s3.secretKey),
      bucketRegistry('images-two', { replicas: 2 }),
      { apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
      { apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'app' }, spec: { registryRef: { name: NAME } } },
    ], namespace, serverSide('e2e-test'));
    await reconcileUntil(namespace, 'True', (ready) => ready?.status === 'True');
    const pods = [await registryPod(namespace, 0), await registryPod(namespace, 1)];
    // the Secrets come once every ready pod accepts them: wait for the push/pull CRs' Ready
    const dir = join(workDir, namespace);
    mkdirSync(dir, { recursive: true });
    const pushSecret = `app-image-push-secret`;
    writeFileSync(join(dir, 'config.json'), await secretKey(cluster, namespace, pushSecret, 'config.json'));
    const caPem = await secretKey(cluster, namespace, pushSecret, 'ca.crt');
    writeFileSync(join(dir, 'ca.crt'), caPem);
    const account = async (secret: string) => ({ username: await secretKey(cluster, namespace, secret, 'username'), password: await secretKey(cluster, namespace, secret, 'password') });
    const images = Array.from({ length: 6 }, (_, i) => writeOciImage(join(dir, `image-${i}`), `v${i}`, { 'hello.txt': `image ${i} of ${namespace}\n`, 'noise.bin': randomBytes(4096).toString('base64') }));
    return { namespace, hostname: registryHostname(NAME, namespace, config.dnsZone), dir, pods, caPem, push: await account(pushSecret), pull: await account('app-image-pull-secret'), images };
  })();
  return shared;
}

withAuth('two replicas on one bucket: no claim, a PodDisruptionBudget, spread softly; pushes through the load balancer land on both pods', async () => {
  const s = await twoReplicas();
  assert.equal(await listObjects(cluster, 'persistentvolumeclaims', s.namespace), [], 'the bucket holds the data: no claim');
  const pdb = await requireObject<Obj>(cluster, 'poddisruptionbudget', NAME, s.namespace);
  assert.is(pdb.spec.maxUnavailable, 1);
  const template = (await requireObject<Obj>(cluster, 'statefulset', NAME, s.namespace)).spec.template.spec;
  assert.equal(template.topologySpreadConstraints.map((t: Obj) => t.whenUnsatisfiable), ['ScheduleAnyway', 'ScheduleAnyway']);
  assert.not.ok(template.volumes.some((v: Obj) => v.persistentVolumeClaim));

  for (const image of s.images) {
    const pushed = await cluster.runClient(SKOPEO, ['copy', '--authfile', join(s.dir, 'config.json'), '--dest-cert-dir', s.dir, image.reference, `docker://${s.hostname}/${s.namespace}/app:${image.tag}`], { binds: [workDir] });
    assert.is(pushed.code, 0, pushed.stderr);
  }
  // skopeo opens a connection per request; the load balancer hands them round-robin to the pods
  const puts = s.pods.map((pod) => registryLog(pod).split('\n').filter((line) => line.includes('"http.request.method":"PUT"')).length);
  console.log(`PUT requests per pod (${s.images.length} images pushed through the load balancer): ${puts.join(', ')}`);
  assert.ok(puts.every((n) => n > 0), `both pods took part of the pushes: ${puts}`);
  const repository = join(s3.dataDir, 'images-two', 'docker', 'registry', 'v2', 'repositories', s.namespace, 'app');
  assert.ok(existsSync(repository), 'the repository is in the bucket (versitygw keeps objects as files)');
  assert.is(readdirSync(join(repository, '_manifests', 'tags')).length, s.images.length);
});

withAuth('every image pulls from each pod by its pod IP, manifest and blobs verified against their digests', async () => {
  const s = await twoReplicas();
  let verified = 0;
  for (const pod of s.pods) {
    const token = await bearerToken(s, pod, s.pull, `repository:${s.namespace}/app:pull`);
    for (const image of s.images) {
      const manifest = await podRequest(s, pod, 'GET', `/v2/${s.namespace}/app/manifests/${image.tag}`, { token, accept: 'application/vnd.oci.image.manifest.v1+json' });
      assert.is(manifest.status, 200, manifest.body.toString());
      assert.is(sha256(manifest.body), image.manifestDigest, `${pod.metadata?.name}: manifest of ${image.tag}`);
      for (const blob of [image.configDigest, image.layerDigest]) {
        const got = await podRequest(s, pod, 'GET', `/v2/${s.namespace}/app/blobs/${blob}`, { token });
        assert.is(got.status, 200, `${pod.metadata?.name}: blob ${blob} answered ${got.status} (a 307 would send clients to the bucket)`);
        assert.is(sha256(got.body), blob);
        verified += 1;
      }
    }
  }
  console.log(`verified ${verified} blob pulls from ${s.pods.length} pods by pod IP`);
});

withAuth('an upload started on one replica, continued on the other and finished on the first verifies on both (shared http.secret and bucket)', async () => {
  const s = await twoReplicas();
  const [first, second] = s.pods as [V1Pod, V1Pod];
  const repository = `${s.namespace}/hop`;
  const token = await bearerToken(s, first, s.push, `repository:${repository}:push,pull`);
  const data = randomBytes(6 * 1024 * 1024 + 123); // above S3's 5 MiB part minimum
  const digest = sha256(data);
  const started = await podRequest(s, first, 'POST', `/v2/${repository}/blobs/uploads/`, { token });
  assert.is(started.status, 202, started.body.toString());
  const half = 3 * 1024 * 1024;
  const chunk1 = await podRequest(s, second, 'PATCH', uploadPath(started.location), { token, body: data.subarray(0, half), range: `0-${half - 1}` });
  assert.is(chunk1.status, 202, `the other pod continues the upload: ${chunk1.body.toString()}`);
  const chunk2 = await podRequest(s, first, 'PATCH', uploadPath(chunk1.location), { token, body: data.subarray(half), range: `${half}-${data.length - 1}` });
  assert.is(chunk2.status, 202, chunk2.body.toString());
  const done = await podRequest(s, second, 'PUT', `${uploadPath(chunk2.location)}&digest=${digest}`, { token });
  assert.is(done.status, 201, done.body.toString());
  for (const pod of s.pods) {
    const got = await podRequest(s, pod, 'GET', `/v2/${repository}/blobs/${digest}`, { token });
    assert.is(got.status, 200);
    assert.is(sha256(got.body), digest, `${pod.metadata?.name} serves the blob intact`);
  }
});

withAuth('a replica deleted in the middle of a push through the load balancer: the client\'s retry succeeds, the image pulls intact from both pods', async () => {
  const s = await twoReplicas();
  const image = writeLargeOciImage(join(s.dir, 'large'), 'big', 96 * 1024 * 1024);
  const target = `docker://${s.hostname}/${s.namespace}/big:v1`;
  const push = () => cluster.runClient(SKOPEO, ['copy', '--preserve-digests', '--authfile', join(s.dir, 'config.json'), '--dest-cert-dir', s.dir, image.reference, target], { binds: [workDir], timeoutMs: 300_000 });
  const first = push();
  // the pod that started the layer's upload (its POST is logged once answered) goes, with a grace
  // of 1 s, while the upload goes on: its PATCH, to whichever pod, or the PUT that ends it
  let started: V1Pod | undefined;
  await waitFor('the push started', async () => {
    started = s.pods.find((pod) => registryLog(pod).includes(`/v2/${s.namespace}/big/blobs/uploads/`));
    return started !== undefined;
  }, 60_000);
  const victim = s.pods.indexOf(started as V1Pod);
  keepPodLogs(started as V1Pod);
  const deleted = await cluster.kubectl(['delete', 'pod', `${NAME}-${victim}`, '--grace-period=1', '--wait=false'], { namespace: s.namespace });
  assert.is(deleted.code, 0, deleted.stderr);
  const attempts = [await first];
  while (attempts.at(-1)?.code !== 0 && attempts.length < 4) attempts.push(await push());
  console.log(`push while ${NAME}-${victim} (which took the upload's POST) was deleted: ${attempts.map((a) => (a.code === 0 ? 'ok' : `failed (${a.stderr.trim().split('\n').at(-1)})`)).join(', then ')}`);
  assert.is(attempts.at(-1)?.code, 0, attempts.at(-1)?.stderr);
  // the StatefulSet controller brings the pod back; pull from both, every byte hashed
  await waitFor(`pod ${victim} replaced`, async () => (await getObject<V1Pod>(cluster, 'pod', `${NAME}-${victim}`, s.namespace))?.metadata?.uid !== started?.metadata?.uid, 60_000);
  s.pods[victim] = await registryPod(s.namespace, victim);
  for (const pod of s.pods) {
    const token = await bearerToken(s, pod, s.pull, `repository:${s.namespace}/big:pull`);
    const manifest = await podRequest(s, pod, 'GET', `/v2/${s.namespace}/big/manifests/v1`, { token, accept: 'application/vnd.oci.image.manifest.v1+json' });
    assert.is(manifest.status, 200, manifest.body.toString());
    const layer = await podRequest(s, pod, 'GET', `/v2/${s.namespace}/big/blobs/${image.layerDigest}`, { token });
    assert.is(layer.status, 200);
    assert.is(sha256(layer.body), image.layerDigest, `${pod.metadata?.name} serves the whole layer intact`);
  }
});

// ---------------------------------------------------------------------------------------------
// What the reconcile Job reports of a broken bucket

test('a missing credentials Secret, then a missing key: Ready=False naming the field; the pods are not waited for', async () => {
  const namespace = await cluster.createNamespace('e2e-s3-secret');
  s3.createBucket('images-secret');
  await applyObjects(cluster, bucketRegistry('images-secret'), namespace, serverSide('e2e-test'));
  const started = Date.now();
  await reconcile(namespace);
  let ready = await readiness(namespace);
  assert.is(ready?.status, 'False');
  assert.is(ready?.reason, 'StorageCredentialsNotFound');
  assert.match(ready?.message ?? '', /^spec\.storage\.s3\.credentialsSecret\.name: Secret registry-s3 not found/);
  console.log(`missing Secret reported by a reconcile Job of ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await applyObjects(cluster, credentials(s3.accessKey), namespace, serverSide('e2e-test'));
  await reconcile(namespace);
  ready = await readiness(namespace);
  assert.is(ready?.reason, 'StorageCredentialsNotFound');
  assert.match(ready?.message ?? '', /^spec\.storage\.s3\.credentialsSecret\.secretAccessKeyKey: Secret registry-s3 has no key AWS_SECRET_ACCESS_KEY/);
  const events = await cluster.kubectl(['get', 'events', '--field-selector', `involvedObject.name=${NAME}`, '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}'], { namespace });
  assert.match(events.stdout, /StorageCredentialsNotFound/, 'a Warning Event says it too');
});

test('wrong credentials: Ready=False StorageUnavailable with the registry\'s own message; corrected credentials roll the pods and recover', async () => {
  const namespace = await cluster.createNamespace('e2e-s3-wrong');
  s3.createBucket('images-wrong');
  await applyObjects(cluster, [credentials(s3.accessKey, WRONG_SECRET_KEY), bucketRegistry('images-wrong')], namespace, serverSide('e2e-test'));
  const wrong = await reconcileUntil(namespace, 'StorageUnavailable', (ready) => ready?.reason === 'StorageUnavailable');
  assert.is(wrong?.status, 'False');
  assert.match(wrong?.message ?? '', /^pod registry-0: the registry's storage health check fails: s3aws: SignatureDoesNotMatch/);
  console.log(`wrong credentials: ${wrong?.message}`);
  // the pod that ran with the wrong key goes with the rollout below, and its log files with it
  const wrongPod = await requireObject<V1Pod>(cluster, 'pod', `${NAME}-0`, namespace);
  const wrongLog = keepPodLogs(wrongPod);
  assert.match(wrongLog, /SignatureDoesNotMatch/, 'the kept registry log is the one of the pod that used the wrong key');
  const before = (await requireObject<Obj>(cluster, 'statefulset', NAME, namespace)).spec.template.metadata.annotations;
  await applyObjects(cluster, credentials(s3.accessKey, s3.secretKey), namespace, serverSide('e2e-test'));
  const fixed = await reconcileUntil(namespace, 'no longer StorageUnavailable', (ready) => ready?.reason !== 'StorageUnavailable' && (authMissing ? true : ready?.status === 'True'));
  const after = (await requireObject<Obj>(cluster, 'statefulset', NAME, namespace)).spec.template.metadata.annotations;
  assert.is.not(after['registry.mgoltzsche.github.com/rollout-checksum'], before['registry.mgoltzsche.github.com/rollout-checksum'], 'the changed Secret rolls the pods (env is read at start)');
  console.log(`corrected credentials: Ready=${fixed?.status} (${fixed?.reason})`);
});

test('a missing bucket: StorageUnavailable saying so; once the bucket exists, the registry recovers by itself', async () => {
  const namespace = await cluster.createNamespace('e2e-s3-nobucket');
  await applyObjects(cluster, [credentials(s3.accessKey, s3.secretKey), bucketRegistry('images-later')], namespace, serverSide('e2e-test'));
  const missing = await reconcileUntil(namespace, 'StorageUnavailable', (ready) => ready?.reason === 'StorageUnavailable');
  assert.match(missing?.message ?? '', /NoSuchBucket/);
  console.log(`missing bucket: ${missing?.message}`);
  s3.createBucket('images-later');
  const recovered = await reconcileUntil(namespace, 'recovered', (ready) => ready?.reason !== 'StorageUnavailable' && (authMissing ? true : ready?.status === 'True'));
  console.log(`bucket created: Ready=${recovered?.status} (${recovered?.reason})`);
});

// ---------------------------------------------------------------------------------------------
// Abandoned uploads: the bucket's incomplete multipart uploads, aborted by the upload-cleanup CronJob

const CLEANUP_CRONJOB = 'registry-upload-cleanup';

/** Runs the CronJob now, as `kubectl create job --from=cronjob/…` does, optionally with `--older-than`. */
async function runUploadCleanup(namespace: string, olderThan?: string): Promise<{ multipartUploads: number; aborted: number; failed: number }> {
  const name = `cleanup-${randomBytes(3).toString('hex')}`;
  if (olderThan === undefined) {
    const created = await cluster.kubectl(['create', 'job', `--from=cronjob/${CLEANUP_CRONJOB}`, name], { namespace });
    assert.is(created.code, 0, created.stderr);
  } else {
    const cronJob = await requireObject<Obj>(cluster, 'cronjob', CLEANUP_CRONJOB, namespace);
    const spec = structuredClone(cronJob.spec.jobTemplate.spec);
    spec.template.spec.containers[0].args.push('--older-than', olderThan);
    const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name, annotations: { 'cronjob.kubernetes.io/instantiate': 'manual' } }, spec };
    await applyObjects(cluster, job, namespace, serverSide('e2e-test'));
  }
  const finished = await waitForJob(cluster, namespace, name, 120_000);
  jobLogs.push(finished.logs);
  assert.is(finished.result, 'Complete', finished.logs);
  const line = finished.logs.split('\n').find((l) => l.includes('abandoned uploads cleaned'));
  assert.ok(line, finished.logs);
  return JSON.parse(line.slice(line.indexOf('{'))) as { multipartUploads: number; aborted: number; failed: number };
}

const s3Client = () => new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } });

async function multipartKeys(bucket: string): Promise<string[]> {
  const listed = await s3Client().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (listed.Uploads ?? []).map((u) => u.Key ?? '').sort();
}

/** A multipart upload with one part, as the registry's s3 driver leaves one behind. */
async function startMultipartUpload(bucket: string, key: string): Promise<void> {
  const client = s3Client();
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(64 * 1024) }));
}

test('abandoned multipart uploads older than the purge age are aborted by the CronJob; younger ones and other keys stay', async () => {
  const namespace = await cluster.createNamespace('e2e-s3-uploads');
  s3.createBucket('images-uploads');
  await applyObjects(cluster, [credentials(s3.accessKey, s3.secretKey), bucketRegistry('images-uploads')], namespace, serverSide('e2e-test'));
  await reconcile(namespace);
  const cronJob = await requireObject<Obj>(cluster, 'cronjob', CLEANUP_CRONJOB, namespace);
  assert.match(cronJob.spec.schedule, /^\d+ \d+ \* \* \*$/, 'daily');
  const uploads = 'docker/registry/v2/repositories';
  const old = [`${uploads}/${namespace}/app/_uploads/1e3c/data`, `${uploads}/${namespace}/lib/_uploads/9f0a/data`];
  const otherTool = 'backups/db.tar';
  for (const key of [...old, otherTool]) await startMultipartUpload('images-uploads', key);
  const oldStarted = Date.now();

  // as scheduled: the purge age of config.yml (168h) keeps them all
  const scheduled = await runUploadCleanup(namespace);
  assert.equal(scheduled, { ...scheduled, multipartUploads: 2, aborted: 0, failed: 0 });
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, oldStarted + 30_000 - Date.now())));
  const young = `${uploads}/${namespace}/app/_uploads/77aa/data`;
  await startMultipartUpload('images-uploads', young);

  // aged past a 20 s limit: the two old uploads go, the young one (seconds old) and the other tool's stay
  const aged = await runUploadCleanup(namespace, '20s');
  assert.equal(aged, { ...aged, multipartUploads: 3, aborted: 2, failed: 0 });
  assert.equal(await multipartKeys('images-uploads'), [otherTool, young].sort());
  console.log(`upload cleanup: ${aged.aborted} of ${aged.multipartUploads} registry multipart uploads aborted, 1 young and 1 outside the registry kept`);
});

withAuth('an upload abandoned through the registry leaves a multipart upload that only the CronJob removes', async () => {
  const s = await twoReplicas();
  const pod = s.pods[0] as V1Pod;
  const token = await bearerToken(s, pod, s.push, `repository:${s.namespace}/abandoned:push,pull`);
  const started = await podRequest(s, pod, 'POST', `/v2/${s.namespace}/abandoned/blobs/uploads/`, { token });
  assert.is(started.status, 202);
  const chunk = randomBytes(6 * 1024 * 1024);
  const patched = await podRequest(s, pod, 'PATCH', uploadPath(started.location), { token, body: chunk, range: `0-${chunk.length - 1}` });
  assert.is(patched.status, 202, patched.body.toString());
  const abandoned = (await multipartKeys('images-two')).filter((key) => key.includes(`/${s.namespace}/abandoned/_uploads/`));
  assert.is(abandoned.length, 1, 'the registry\'s upload is an incomplete multipart upload');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const cleaned = await runUploadCleanup(s.namespace, '2s');
  assert.ok(cleaned.aborted >= 1, JSON.stringify(cleaned));
  assert.equal((await multipartKeys('images-two')).filter((key) => key.includes('/abandoned/')), []);
});

withAuth('the endpoint down and back: StorageUnavailable while it is down, Ready again once it answers, no manual step', async () => {
  const s = await twoReplicas();
  await s3.stop();
  // the registry's check fails `threshold` times in a row, `interval` apart, starting at a moment of
  // its own: up to interval × (threshold + 1) before /debug/health says so (a reconcile sooner sees it healthy)
  await new Promise((resolve) => setTimeout(resolve, Number.parseInt(STORAGE_HEALTH.interval, 10) * 1000 * (STORAGE_HEALTH.threshold + 1) + 1000));
  try {
    const down = await reconcileUntil(s.namespace, 'StorageUnavailable', (ready) => ready?.reason === 'StorageUnavailable');
    assert.match(down?.message ?? '', /connection refused|EOF|reset|dial/i);
    console.log(`endpoint down: ${down?.message}`);
  } finally {
    await s3.start();
  }
  const back = await reconcileUntil(s.namespace, 'True', (ready) => ready?.status === 'True', 6);
  console.log(`endpoint back: ${back?.message}`);
  const token = await bearerToken(s, s.pods[0] as V1Pod, s.pull, `repository:${s.namespace}/app:pull`);
  const manifest = await podRequest(s, s.pods[0] as V1Pod, 'GET', `/v2/${s.namespace}/app/manifests/v0`, { token, accept: 'application/vnd.oci.image.manifest.v1+json' });
  assert.is(manifest.status, 200, 'the images are still there');
});

test('the bucket credentials appear in no log of the test run, in no Event, status or generated config', async () => {
  const secrets = [s3.secretKey, WRONG_SECRET_KEY];
  // the control plane's work dir holds the node's: the API server's, controllers', kubelet's,
  // containerd's logs and the containers' (the node's /var/log/pods); the S3 server knows its key
  const files = logFiles(join(cluster.nodeDir, '..')).filter((file) => !file.startsWith(workDir));
  const leaks = files.filter((file) => secrets.some((secret) => readFileSync(file, 'utf8').includes(secret)));
  assert.equal(leaks, [], 'log files holding a secret key');
  for (const file of [join(cluster.nodeDir, '..', 'kube-apiserver.log'), join(cluster.nodeDir, 'kubelet.log'), join(cluster.nodeDir, 'containerd.log')]) assert.ok(files.includes(file), `${file} was searched`);
  const registryLogs = files.filter((file) => file.startsWith(podLogsDir) && /_registry-\d+_[^/]+\/registry\/\d+\.log$/.test(file));
  assert.ok(registryLogs.length > 0, 'the registry containers\' logs were searched');
  const keptRegistryLogs = keptPodLogs.filter((kept) => kept.container === 'registry');
  assert.ok(keptRegistryLogs.length > 0 && keptRegistryLogs.every((kept) => kept.text.length > 0), 'the deleted pods\' registry logs were kept');
  for (const secret of secrets) assert.equal(keptPodLogs.filter((kept) => kept.text.includes(secret)).map((kept) => `${kept.pod}/${kept.container}`), [], 'a deleted pod logged a secret key');
  const jobs = jobLogs.join('\n');
  assert.ok(jobs.length > 0);
  for (const secret of secrets) assert.not.ok(jobs.includes(secret), 'a reconcile Job logged a secret key');
  const everything = await cluster.kubectl(['get', 'events,imageregistries,configmaps', '-A', '-o', 'yaml']);
  for (const secret of secrets) assert.not.ok(everything.stdout.includes(secret), 'an Event, status or ConfigMap holds a secret key');
  const configs = await cluster.kubectl(['get', 'secrets', '-A', '-l', 'app.kubernetes.io/name=image-registry', '-o', 'jsonpath={range .items[*]}{.data.config\\.yml}{"\\n"}{end}']);
  const decoded = configs.stdout.split('\n').filter(Boolean).map((b64) => Buffer.from(b64, 'base64').toString('utf8'));
  assert.ok(decoded.some((text) => text.includes('s3:')), 'bucket registries\' config.yml were searched');
  for (const secret of [...secrets, s3.accessKey]) assert.not.ok(decoded.some((text) => text.includes(secret)), 'a generated config.yml holds a credential');
  console.log(`searched ${files.length} log files (${registryLogs.length} of registry containers), ${keptPodLogs.length} container logs of deleted pods, ${jobLogs.length} reconcile Job logs, Events, statuses and ${decoded.length} generated config.yml`);
});

test.after(async () => {
  await s3.close();
  rmSync(workDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** the node's /var/log/pods: `<namespace>_<pod>_<uid>/<container>/<restart>.log`, one line per log line in CRI format */
const podLogsDir = join(cluster.nodeDir, 'var-log', 'pods');

/** Every run of the container's log as the kubelet keeps it ('' before it started or once the pod is gone). */
function containerLog(pod: V1Pod, container: string): string {
  const dir = join(podLogsDir, `${pod.metadata?.namespace}_${pod.metadata?.name}_${pod.metadata?.uid}`, container);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return '';
  }
  return names.filter((name) => /^\d+\.log$/.test(name)).sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))
    .map((name) => readFileSync(join(dir, name), 'utf8')).join('');
}

function registryLog(pod: V1Pod): string {
  return containerLog(pod, 'registry');
}

/** Keeps every container's log of a pod about to be deleted; returns the registry container's. */
function keepPodLogs(pod: V1Pod): string {
  const containers = (pod.spec?.containers ?? []).map((c) => c.name);
  for (const container of containers) keptPodLogs.push({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, container, text: containerLog(pod, container) });
  return registryLog(pod);
}

/** The *.log files under dir; symbolic links are not followed (the image layers under containerd's root have absolute ones). */
function logFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(d, entry.name);
      if (entry.isDirectory() && !entry.name.startsWith('..')) walk(path);
      else if (entry.isFile() && entry.name.endsWith('.log')) found.push(path);
    }
  };
  walk(dir);
  return found;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The path and query of an upload Location (absolute URL on the registry hostname). */
function uploadPath(location: string | undefined): string {
  assert.ok(location, 'the registry answered with a Location');
  const url = new URL(location as string, 'https://registry.invalid');
  return `${url.pathname}${url.search}`;
}

async function bearerToken(s: Shared, pod: V1Pod, account: { username: string; password: string }, scope: string): Promise<string> {
  const path = `/auth/token?service=${encodeURIComponent(s.hostname)}&scope=${encodeURIComponent(scope)}`;
  const answer = await podRequest(s, pod, 'GET', path, { basic: account });
  assert.is(answer.status, 200, answer.body.toString());
  return (JSON.parse(answer.body.toString()) as { token: string }).token;
}

interface PodAnswer {
  status: number;
  body: Buffer;
  location?: string;
}

/** One HTTPS request to a pod by its IP, TLS verified for the registry hostname with the Secret's CA. */
function podRequest(s: Shared, pod: V1Pod, method: string, path: string, options: { token?: string; basic?: { username: string; password: string }; body?: Buffer; range?: string; accept?: string }): Promise<PodAnswer> {
  const headers: Record<string, string | number> = { host: s.hostname };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.basic) headers.authorization = `Basic ${Buffer.from(`${options.basic.username}:${options.basic.password}`).toString('base64')}`;
  if (options.accept) headers.accept = options.accept;
  if (options.range) headers['content-range'] = options.range;
  if (options.body || method === 'PUT' || method === 'POST') {
    headers['content-type'] = 'application/octet-stream';
    headers['content-length'] = options.body?.length ?? 0;
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: pod.status?.podIP, port: NGINX_PORT, servername: s.hostname, ca: s.caPem, method, path, headers, agent: false, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ...(res.headers.location ? { location: res.headers.location } : {}) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

test.run();
