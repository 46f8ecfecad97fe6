// End to end: garbage collection and tag retention of one volume registry. The real reconcile Job
// writes the registry and its `gc-…` CronJob; each run is a Job created from that CronJob as a user
// forces one (`kubectl create job --from=cronjob/…`), run by the real Job controller: it freezes
// writes on the registry pod's nginx, creates the GC Job in the registry's namespace (the stock
// registry image's `garbage-collect` and the retention container, on the registry's own claim),
// lifts the freeze and reports. The registry's pod and the GC pod run on the real node (kubelet,
// containerd, runc); the claim is a hostPath volume of the test's provisioner, which the GC pod
// mounts as the registry pod does.
//
// The clients talk to the pod's nginx by its pod IP with tokens the test signs with the registry's
// token key (`<r>-auth-tls`): no docker_auth needed, so this runs where auth_server is absent too
// (the pod is then not Ready, which the freeze does not need: it covers every pod with an IP).
// Sizes are measured on the claim's directory, the volume as the node has it (a hostPath the node
// shares with the host); a bucket registry's, on the S3 server's files (versitygw's posix backend),
// which the pods reach on the root end of the node's veth.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { OCI_MANIFEST } from '../support/oci-image.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcCronJobName } from '../../functions/garbage-collection.ts';
import { WRITE_DRAIN_TIMEOUT_MS } from '../../functions/maintenance.ts';
import { dataClaimName, registryHostname } from '../../functions/names.ts';
import { GROUP_VERSION, type GarbageCollectionRun, type ImageRegistry, type OperatorConfig } from '../../functions/types.ts';
import { testCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { applyObjects, listObjects, requireObject, serverSide } from '../support/kubectl.ts';
import { installOperatorBase, OPERATOR_NAMESPACE } from '../support/operator.ts';
import { damage, newImage, pushImage, refusal, removeImage, type Image, type RegistryClient } from '../support/registry-api.ts';
import { podWithReadyContainers, runReconcileJob, signedFrontClients } from '../support/registry-e2e.ts';
import { waitFor } from '../support/processes.ts';
import { stepTimer } from '../support/timings.ts';
import { authServerUnavailable } from '../support/binaries.ts';
import { nodeAccess } from '../support/node/node-access.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';

const NAME = 'registry';
const cluster = await testCluster();
const authMissing = authServerUnavailable(cluster.assetsDir);
const { timings, timed } = stepTimer();
const createdDirs: string[] = [];

interface Setup {
  namespace: string;
  hostname: string;
  /** the storage as files: the claim's directory, or the bucket's in the S3 server; docker/registry/v2 under it */
  volume: string;
  client: (repo: string) => RegistryClient;
}

let setup: Promise<Setup> | undefined;
const started = () => (setup ??= start('e2e-gc', {}));
let config: OperatorConfig | undefined;

/** A registry in a namespace of its own; `spec` as the user applies it. */
async function start(prefix: string, spec: object, before?: (namespace: string) => Promise<void>): Promise<Setup> {
  config ??= await installOperatorBase(cluster, { OPERATOR_ROLLOUT_TIMEOUT: authMissing ? '3s' : '120s', OPERATOR_CREDENTIALS_TIMEOUT: '60s' });
  const namespace = await cluster.createNamespace(prefix);
  await before?.(namespace);
  const hostname = registryHostname(NAME, namespace, config.dnsZone);
  await applyObjects(cluster, [{ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: NAME }, spec }], namespace, serverSide('e2e-test'));
  await timed(`reconcile Job (${prefix})`, () => runReconcileJob(cluster, namespace, NAME, config));
  const pod = await podWithReadyContainers(cluster, namespace, `${NAME}-0`, ['nginx', 'registry']);
  const client = await signedFrontClients(cluster, namespace, NAME, hostname, pod, 'e2e-gc');
  const bucket = (spec as { storage?: { s3?: { bucket: string } } }).storage?.s3?.bucket;
  // the posix backend of the S3 server keeps a bucket's objects as files under <data>/<bucket>
  const volume = bucket ? join(s3Server().dataDir, bucket) : await claimDirectory(namespace);
  return { namespace, hostname, volume, client };
}

async function claimDirectory(namespace: string): Promise<string> {
  const claim = await requireObject<{ spec: { volumeName: string } }>(cluster, 'pvc', dataClaimName(NAME), namespace);
  return (await requireObject<{ spec: { hostPath: { path: string } } }>(cluster, 'pv', claim.spec.volumeName)).spec.hostPath.path;
}

let s3: S3Server | undefined;
const s3Server = () => s3 as S3Server;

/** Bytes of every blob's data on the volume, as the registry stores them. */
function blobBytes(s: Setup): number {
  const walk = (dir: string): number => readdirSync(dir, { withFileTypes: true })
    .reduce((sum, e) => sum + (e.isDirectory() ? walk(join(dir, e.name)) : e.name === 'data' ? statSync(join(dir, e.name)).size : 0), 0);
  return walk(join(s.volume, 'docker/registry/v2/blobs'));
}

async function setGarbageCollection(s: Setup, garbageCollection: object): Promise<void> {
  // the run reads the spec when it starts: no reconcile needed in between
  const patched = await cluster.kubectl(['patch', 'imageregistry', NAME, '--type=merge', '-p', JSON.stringify({ spec: { garbageCollection } })], { namespace: s.namespace });
  assert.is(patched.code, 0, patched.stderr);
}

/** A run forced from the registry's CronJob, as the README says; waits for it. */
async function forceRun(s: Setup, label: string): Promise<{ result: string; logs: string; run: GarbageCollectionRun }> {
  const job = `gc-${label}-${Date.now() % 100000}`;
  const cronJob = gcCronJobName({ namespace: s.namespace, name: NAME });
  const created = await cluster.kubectl(['create', 'job', `--from=cronjob/${cronJob}`, job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  const finished = await timed(`GC run (${label})`, () => waitForJob(cluster, OPERATOR_NAMESPACE, job, 300_000));
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  const run = registry.status?.garbageCollection?.lastRun as GarbageCollectionRun;
  assert.ok(run && Date.parse(run.startTime) >= Date.parse(registry.metadata.creationTimestamp as unknown as string), `a lastRun in the status: ${JSON.stringify(registry.status)}`);
  return { ...finished, run };
}

async function pushAll(c: RegistryClient, repo: string, images: Image[]): Promise<void> {
  for (const image of images) {
    const pushed = await pushImage(c, repo, image);
    assert.equal(pushed, { result: 'pushed' }, image.tag);
  }
}

async function tagsOf(c: RegistryClient, repo: string): Promise<string[]> {
  const answer = await c.call('GET', `/v2/${repo}/tags/list?n=1000`);
  assert.is(answer.status, 200, answer.body.toString());
  return ((JSON.parse(answer.body.toString()) as { tags?: string[] | null }).tags ?? []).sort();
}

test('the reconcile wrote the CronJob in the operator namespace and names it in the status', async () => {
  const s = await started();
  const name = gcCronJobName({ namespace: s.namespace, name: NAME });
  const cronJob = await requireObject<{ spec: { schedule: string; suspend: boolean } }>(cluster, 'cronjob', name, OPERATOR_NAMESPACE);
  assert.match(cronJob.spec.schedule, /^\d+ \d \* \* \*$/);
  assert.is(cronJob.spec.suspend, false);
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  assert.is(registry.status?.garbageCollection?.cronJob, `${OPERATOR_NAMESPACE}/${name}`);
});

test('reclaim: an image deleted, a run → the volume shrinks by exactly its own blobs, the kept image pulls, Event and status say so', async () => {
  const s = await started();
  const repo = `${s.namespace}/reclaim`;
  const c = s.client(repo);
  const shared = newImage('base', [], 64 * 1024);
  const gone = newImage('gone', [shared.own], 512 * 1024);
  const kept = newImage('kept', [shared.own], 256 * 1024);
  await pushAll(c, repo, [shared, gone, kept]);
  assert.is(await removeImage(c, repo, gone), undefined);
  const before = blobBytes(s);
  // the deleted image's own blobs: its layer, its config and its manifest (stored as a blob too)
  const ownBytes = gone.own.data.length + (gone.blobs[0]?.data.length ?? 0) + gone.manifest.length;
  const { result, logs, run } = await forceRun(s, 'reclaim');
  assert.is(result, 'Complete', logs);
  assert.is(run.result, 'Succeeded', JSON.stringify(run));
  assert.is(before - blobBytes(s), ownBytes, 'reclaimed exactly the deleted image\'s own blobs');
  assert.is(run.bytesReclaimed, ownBytes);
  assert.is(run.blobsDeleted, 3);
  assert.ok((run.freezeSeconds ?? 0) > 0, 'writes were frozen');
  timings['freeze window (s)'] = run.freezeSeconds ?? -1;
  // the drain read the pod's writes in flight from its metrics port (from the Job's pod, by pod IP)
  const drained = logs.split('\n').map((line) => { try { return JSON.parse(line) as { msg?: string; ms?: number; pods?: { outcome: string }[] }; } catch { return {}; } }).find((line) => line.msg === 'writes in flight drained');
  assert.equal(drained?.pods?.map((pod) => pod.outcome), ['drained'], `the drain's log line: ${JSON.stringify(drained)}`);
  timings['drain (ms)'] = drained?.ms ?? -1;
  for (const image of [shared, kept]) assert.is(await damage(c, repo, image), undefined, image.tag);
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  assert.ok((registry.status?.storage?.usedBytes ?? 0) > 0);
  const events = await listObjects<{ reason: string; message: string }>(cluster, 'events', s.namespace, { fieldSelector: `involvedObject.name=${NAME}` });
  assert.ok(events.some((e) => e.reason === 'GarbageCollected' && /deleted 0 tags, 0 manifests and 3 blobs/.test(e.message)), JSON.stringify(events.map((e) => e.message)));
  // after the lift, pushes are accepted again
  assert.equal(await pushImage(c, repo, newImage('after', [])), { result: 'pushed' });
});

test('retention: 30 tags pushed over 30 hours, keep the 5 pushed last and release-*: a dry run reports and deletes nothing; the run leaves exactly those, which pull', async () => {
  const s = await started();
  const repo = `${s.namespace}/app`;
  const c = s.client(repo);
  const images = Array.from({ length: 30 }, (_, i) => newImage(i % 10 === 0 ? `release-${i}` : `build-${i}`, [], 8 * 1024));
  await pushAll(c, repo, images);
  // push times, test-controlled: tag i pushed 30 - i hours ago (the tag's link file, as the registry wrote it)
  const now = Date.now() / 1000;
  images.forEach((image, i) => {
    const link = join(s.volume, 'docker/registry/v2/repositories', repo, '_manifests/tags', image.tag, 'current/link');
    utimesSync(link, now - (30 - i) * 3600, now - (30 - i) * 3600);
  });
  const keep = ['release-0', 'release-10', 'release-20', 'build-25', 'build-26', 'build-27', 'build-28', 'build-29'];
  const policy = { retention: [{ repositories: [`${s.namespace}/app`], keepTags: { patterns: ['release-*'], mostRecentlyPushedCount: 5 } }] };
  await setGarbageCollection(s, { ...policy, dryRun: true });
  const bytesBefore = blobBytes(s);
  const dry = await forceRun(s, 'dry');
  assert.is(dry.result, 'Complete', dry.logs);
  assert.equal([dry.run.result, dry.run.dryRun, dry.run.tagsDeleted, dry.run.manifestsDeleted], ['Succeeded', true, 22, 22], JSON.stringify(dry.run));
  assert.is(dry.run.freezeSeconds, undefined, 'a dry run freezes nothing');
  assert.equal(await tagsOf(c, repo), images.map((i) => i.tag).sort(), 'the dry run deleted nothing');
  assert.is(blobBytes(s), bytesBefore);

  await setGarbageCollection(s, { ...policy, dryRun: false });
  const real = await forceRun(s, 'retention');
  assert.is(real.result, 'Complete', real.logs);
  assert.equal([real.run.result, real.run.tagsDeleted, real.run.manifestsDeleted], ['Succeeded', 22, 22], JSON.stringify(real.run));
  assert.equal(await tagsOf(c, repo), [...keep].sort());
  for (const image of images) {
    const broken = await damage(c, repo, image);
    if (keep.includes(image.tag)) assert.is(broken, undefined, `${image.tag} pulls`);
    else assert.match(broken ?? '', /HTTP 404/, `${image.tag} is gone`);
  }
  // each deleted image: its 8 KiB layer, its config and its manifest
  const deleted = images.filter((image) => !keep.includes(image.tag));
  const reclaimed = deleted.reduce((sum, image) => sum + image.own.data.length + (image.blobs[0]?.data.length ?? 0) + image.manifest.length, 0);
  assert.is(bytesBefore - blobBytes(s), reclaimed);
  assert.is(real.run.bytesReclaimed, reclaimed);
  assert.is(dry.run.bytesReclaimed, 0, 'the dry run\'s collector saw nothing unreferenced yet (retention deleted nothing)');
});

/** Sets the push time of a tag (its link file's mtime, as the registry rewrites it on every push) to `hours` ago. */
function pushedHoursAgo(s: Setup, repo: string, tag: string, hours: number): void {
  const at = Date.now() / 1000 - hours * 3600;
  utimesSync(join(s.volume, 'docker/registry/v2/repositories', repo, '_manifests/tags', tag, 'current/link'), at, at);
}

test('in use: what workloads run is kept whatever the policy says, signatures travel with their images, deleteUntagged spares a manifest a CronJob pins by digest; the workloads gone, the next run deletes; workloads unreadable, nothing is deleted', async () => {
  const s = await started();
  const repo = `${s.namespace}/svc`;
  const cronRepo = `${s.namespace}/cron`;
  const c = s.client(repo);
  const builds = [5, 6, 7, 8, 9].map((i) => newImage(`old-${i}`, [], 4 * 1024));
  await pushAll(c, repo, builds);
  builds.forEach((image, i) => pushedHoursAgo(s, repo, image.tag, 10 - i));
  const [, , old7, old8, old9] = builds as [Image, Image, Image, Image, Image];
  // cosign-style attachments: of the newest build, of a build retention deletes, and of nothing
  const signature = (subject: string, suffix: string) => newImage(`sha256-${subject.slice('sha256:'.length)}${suffix}`, [], 512);
  const signatures = [signature(old9.digest, '.sig'), signature(old9.digest, '.att'), signature(old8.digest, '.sig'), signature(`sha256:${'f'.repeat(64)}`, '.sig')];
  await pushAll(c, repo, signatures);
  // the CronJob's image: pinned by digest, its tag since moved to another image (the pinned manifest is untagged)
  const cron = s.client(cronRepo);
  const pinned = newImage('nightly', [], 2048);
  await pushAll(cron, cronRepo, [pinned, newImage('nightly', [], 2048)]);
  assert.is((await cron.call('GET', `/v2/${cronRepo}/manifests/${pinned.digest}`, { accept: OCI_MANIFEST })).status, 200, 'the overwritten manifest, untagged');
  const workloads = [
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'svc' },
      // no replica needed: the Deployment and its ReplicaSet name the image
      spec: { replicas: 0, selector: { matchLabels: { app: 'svc' } }, template: { metadata: { labels: { app: 'svc' } }, spec: { containers: [{ name: 'svc', image: `${s.hostname}/${repo}:old-7` }] } } },
    },
    {
      apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly' },
      spec: { schedule: '0 0 1 1 *', suspend: true, jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'n', image: `${s.hostname}/${cronRepo}@${pinned.digest}` }] } } } } },
    },
  ];
  await applyObjects(cluster, workloads, s.namespace, serverSide('e2e-test'));
  await setGarbageCollection(s, { retention: [{ repositories: [repo], keepTags: { mostRecentlyPushedCount: 1 } }], deleteUntagged: true, dryRun: false });

  const first = await forceRun(s, 'in-use');
  assert.is(first.result, 'Complete', first.logs);
  assert.is(first.run.result, 'Succeeded', JSON.stringify(first.run));
  assert.is(first.run.tagsKeptInUse, 1);
  assert.match(first.run.message ?? '', new RegExp(`kept 1 tag\\(s\\) in use by workloads: ${repo}:old-7`));
  assert.match(first.run.message ?? '', /deleteUntagged skipped this run: 1 untagged manifest\(s\) in use by digest/);
  // old-9 (the newest build) and its two attachments, old-7 (in use); the rest gone: old-5, old-6,
  // old-8 with its signature, the orphan signature
  assert.equal(await tagsOf(c, repo), ['old-7', 'old-9', signatures[0]?.tag, signatures[1]?.tag].sort());
  assert.is(first.run.tagsDeleted, 5);
  assert.is((await cron.call('GET', `/v2/${cronRepo}/manifests/${pinned.digest}`, { accept: OCI_MANIFEST })).status, 200, 'the pinned untagged manifest is there');
  for (const image of [old7, old9]) assert.is(await damage(c, repo, image), undefined, `${image.tag} pulls`);

  // the Deployment gone with its ReplicaSets, the CronJob too: the next run deletes old-7 and the untagged manifest
  const deleted = await cluster.kubectl(['delete', 'deployment/svc', 'cronjob/nightly', '--cascade=foreground', '--wait=true', '--timeout=60s'], { namespace: s.namespace });
  assert.is(deleted.code, 0, deleted.stderr);
  await waitFor('the ReplicaSets gone', async () => (await listObjects(cluster, 'replicasets', s.namespace)).length === 0, 60_000);
  const second = await forceRun(s, 'not-in-use');
  assert.is(second.run.result, 'Succeeded', JSON.stringify(second.run));
  assert.is(second.run.tagsKeptInUse, undefined);
  assert.equal(await tagsOf(c, repo), ['old-9', signatures[0]?.tag, signatures[1]?.tag].sort());
  assert.is((await cron.call('GET', `/v2/${cronRepo}/manifests/${pinned.digest}`, { accept: OCI_MANIFEST })).status, 404, 'the untagged manifest collected');

  // the Jobs' ClusterRole without the workload lists: the run deletes nothing and says why
  const role = await requireObject<{ rules: { resources?: string[] }[] }>(cluster, 'clusterrole', 'image-registry-operator-jobs');
  const narrowed = { ...role, rules: role.rules.filter((rule) => !(rule.resources ?? []).includes('deployments')) };
  assert.ok(narrowed.rules.length < role.rules.length);
  const replaced = await cluster.kubectl(['replace', '-f', '-'], { input: JSON.stringify(narrowed) });
  assert.is(replaced.code, 0, replaced.stderr);
  try {
    await pushAll(c, repo, [newImage('old-10', [], 1024)]);
    const refused = await forceRun(s, 'unreadable');
    assert.is(refused.run.result, 'Failed');
    assert.match(refused.run.message ?? '', /cannot read the cluster's workloads to keep the images they use .*nothing was deleted/);
    assert.is(refused.run.freezeSeconds, undefined, 'no freeze');
    assert.equal(await tagsOf(c, repo), ['old-10', 'old-9', signatures[0]?.tag, signatures[1]?.tag].sort());
    const events = await listObjects<{ reason: string; message: string }>(cluster, 'events', s.namespace);
    assert.ok(events.some((e) => e.reason === 'GarbageCollectionFailed' && e.message.includes("cannot read the cluster's workloads")), JSON.stringify(events.map((e) => e.reason)));
  } finally {
    const restored = await cluster.kubectl(['replace', '-f', '-'], { input: JSON.stringify({ ...role, metadata: { ...(role as unknown as { metadata: object }).metadata, resourceVersion: undefined } }) });
    assert.is(restored.code, 0, restored.stderr);
    await setGarbageCollection(s, { retention: null, deleteUntagged: false });
  }
});

test('a run killed after the freeze began: pushes are refused with the maintenance message, and accepted again by the freeze\'s deadline; nothing corrupt', async () => {
  const s = await started();
  const repo = `${s.namespace}/killed`;
  const c = s.client(repo);
  const before = newImage('before', []);
  await pushAll(c, repo, [before]);
  await setGarbageCollection(s, { retention: [], timeout: '30s' });
  const job = `gc-killed-${Date.now() % 100000}`;
  const created = await cluster.kubectl(['create', 'job', `--from=cronjob/${gcCronJobName({ namespace: s.namespace, name: NAME })}`, job], { namespace: OPERATOR_NAMESPACE });
  assert.is(created.code, 0, created.stderr);
  let message = '';
  await waitFor('a push refused for maintenance', async () => {
    const answer = await c.call('POST', `/v2/${repo}/blobs/uploads/`);
    message = refusal(answer) ?? '';
    return Boolean(message);
  }, 120_000);
  const refusedAt = Date.now();
  const until = Date.parse((JSON.parse(message) as { errors: { detail: { until: string } }[] }).errors[0]?.detail.until ?? '');
  assert.match(message, /registry under maintenance \(garbage collection\): writes are refused until .* at the latest; pulls keep working/);
  // the run dies: its Job deleted, its pod killed
  const deleted = await cluster.kubectl(['delete', 'job', job, '--wait=true', '--cascade=foreground', '--timeout=60s'], { namespace: OPERATOR_NAMESPACE });
  assert.is(deleted.code, 0, deleted.stderr);
  // timeout 30 s + the longest drain 30 s + margin 30 s + a slot 10 s
  assert.ok(until - refusedAt <= (30 + WRITE_DRAIN_TIMEOUT_MS / 1000 + 30 + 10) * 1000, `the deadline (${new Date(until).toISOString()}) is at most timeout + the longest drain + margin + a slot away`);
  assert.is(await damage(c, repo, before), undefined, 'pulls keep working during the freeze');
  let accepted = 0;
  const giveUp = until + 15_000;
  while (!accepted && Date.now() < giveUp) {
    const pushed = await pushImage(c, repo, newImage(`after-${Date.now()}`, []));
    if (pushed.result === 'pushed') accepted = Date.now();
    else assert.is(pushed.result, 'refused', `refused for maintenance until then, nothing else: ${JSON.stringify(pushed)}`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  assert.ok(accepted, 'a push is accepted again');
  assert.ok(accepted <= until + 5_000, `accepted ${accepted - until} ms after the deadline`);
  timings['killed run: refused → accepted (s)'] = (accepted - refusedAt) / 1000;
  assert.is(await damage(c, repo, before), undefined);
  // the orphaned GC Job ended by its own deadline; the next run (below) works
  await setGarbageCollection(s, { timeout: '15m' });
  const next = await forceRun(s, 'next');
  assert.is(next.run.result, 'Succeeded', JSON.stringify(next.run));
});

test('a bucket registry: retention by the objects\' LastModified, the collector on the bucket; it shrinks by the deleted images\' blobs, status.storage is what the bucket holds', async () => {
  const workDir = mkdtempSync(join(tmpdir(), 'iro-gc-s3-'));
  createdDirs.push(workDir);
  s3 = await startS3Server({ assetsDir: cluster.assetsDir, workDir, address: nodeAccess(cluster).network.hostAddress });
  s3.createBucket('gc-images');
  const spec = { storage: { s3: { bucket: 'gc-images', endpoint: s3.endpoint, credentialsSecret: { name: 'registry-s3' } } } };
  const s = await start('e2e-gc-bucket', spec, async (namespace) => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'registry-s3' }, type: 'Opaque', stringData: { AWS_ACCESS_KEY_ID: s3Server().accessKey, AWS_SECRET_ACCESS_KEY: s3Server().secretKey } };
    await applyObjects(cluster, [secret], namespace, serverSide('e2e-test'));
  });
  const repo = `${s.namespace}/app`;
  const c = s.client(repo);
  // LastModified has a resolution of a second: the tags are pushed 1.1 s apart
  const images: Image[] = [];
  for (const tag of ['one', 'two', 'three']) {
    images.push(newImage(tag, [], 16 * 1024));
    await pushAll(c, repo, images.slice(-1));
    await new Promise((resolve) => setTimeout(resolve, 1_100));
  }
  await setGarbageCollection(s, { retention: [{ repositories: [repo], keepTags: { mostRecentlyPushedCount: 1 } }] });
  const before = blobBytes(s);
  const run = await forceRun(s, 'bucket');
  assert.is(run.result, 'Complete', run.logs);
  assert.equal([run.run.result, run.run.tagsDeleted, run.run.manifestsDeleted], ['Succeeded', 2, 2], JSON.stringify(run.run));
  assert.equal(await tagsOf(c, repo), ['three']);
  assert.is(await damage(c, repo, images[2] as Image), undefined);
  const reclaimed = images.slice(0, 2).reduce((sum, image) => sum + image.own.data.length + (image.blobs[0]?.data.length ?? 0) + image.manifest.length, 0);
  assert.is(before - blobBytes(s), reclaimed);
  assert.is(run.run.bytesReclaimed, reclaimed);
  const registry = await requireObject<ImageRegistry>(cluster, 'imageregistry', NAME, s.namespace);
  assert.is(registry.status?.storage?.usedBytes, blobBytes(s));
});

test('timings', async () => {
  console.log(`timings: ${JSON.stringify(timings)}`);
  await s3?.close();
  for (const dir of createdDirs) rmSync(dir, { recursive: true, force: true });
});

test.run();
