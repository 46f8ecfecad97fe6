// The admission webhooks end to end: kustomize/ installed the way a user installs it (an overlay,
// `kubectl apply -k`, the bootstrap Job, the webhook Deployment), and the real API server calling
// the webhook pods over TLS through the Service the shipped configurations name. The pods run with
// their own ServiceAccount's token, so the webhook's RBAC is exercised too; the Jobs they enqueue are
// run by the real Job controller and the real node from their own manifests. At the end the
// webhook is taken away again (the files after this one run without it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { defaultAcl } from '../../functions/docker-auth-config.ts';
import { DEFAULT_WINDOW_SECONDS, desiredReconcileJob, reconcileWindow, registryLabelValue, REGISTRY_LABEL, type RegistryKey } from '../../functions/reconcile-job.ts';
import { GROUP_VERSION, type OperatorConfig } from '../../functions/types.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { installOperator, OPERATOR_NAMESPACE, uninstallWebhook, webhookPodLogs } from '../support/operator.ts';
import { waitFor } from '../support/processes.ts';
import { buildBundles, OPERATOR_ENTRY_POINTS, repoRoot, type Obj } from '../support/webhook.ts';
import { getObject, kubectlApply, listObjects } from '../support/kubectl.ts';

// A real bcrypt hash (cost 10) of a random password nobody knows.
const HASH = '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq';

/** The admissions the webhook pods logged (kubectl logs of both). */
async function webhookLog(cluster: TestCluster): Promise<{ msg?: string; webhook?: string; result?: string; namespace?: string; name?: string }[]> {
  return (await webhookPodLogs(cluster)).split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
}

/** Whether the webhook's log shows it denied this object (kubectl prints the causes, not who refused). */
function deniedByWebhook(log: Awaited<ReturnType<typeof webhookLog>>, namespace: string, name: string): boolean {
  return log.some((event) => event.msg === 'admission' && event.webhook === 'validate' && event.result === 'denied' && event.namespace === namespace && event.name === name);
}

interface Setup {
  cluster: TestCluster;
  config: OperatorConfig;
}

interface JobObject {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { template: { spec: Record<string, any> } } & Record<string, unknown>;
}

let setup: Promise<Setup> | undefined;
function installed(): Promise<Setup> {
  setup ??= install();
  return setup;
}

async function install(): Promise<Setup> {
  const cluster = await testCluster();
  await buildBundles(OPERATOR_ENTRY_POINTS);
  // the registries here are not what is tested: the reconcile Jobs the webhook creates (it passes
  // its configuration on) must not wait long for their pods
  const config = await installOperator(cluster, { OPERATOR_ROLLOUT_TIMEOUT: '2s' });
  await webhookEffective(cluster);
  return { cluster, config };
}

/** The API server picks webhook configurations up asynchronously: wait until ours is called. */
async function webhookEffective(cluster: TestCluster): Promise<void> {
  const probe = JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'probe', namespace: 'default' }, spec: { auth: { acl: [{ match: { account: '/(/' }, actions: ['pull'] }] } } });
  // only the webhook compiles ACL regexes
  await waitFor('the API server to call the webhook', async () => /invalid regular expression/.test((await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: probe })).stderr), 30_000);
}

const namespaces: string[] = [];
async function namespace(cluster: TestCluster, prefix: string): Promise<string> {
  const ns = await cluster.createNamespace(prefix);
  namespaces.push(ns);
  return ns;
}

async function reconcileJobsOf(registry: RegistryKey): Promise<JobObject[]> {
  const { cluster, config } = await installed();
  return listObjects<JobObject>(cluster, 'jobs', config.namespace, { selector: `${REGISTRY_LABEL}=${registryLabelValue(registry)}` });
}

function object(kind: string, name: string, spec?: unknown, metadata: Record<string, unknown> = {}): Obj {
  return { apiVersion: GROUP_VERSION, kind, metadata: { name, ...metadata }, ...(spec === undefined ? {} : { spec }) };
}
const registry = (name: string, spec?: unknown) => object('ImageRegistry', name, spec);
const account = (name: string, spec?: unknown) => object('ImageRegistryAccount', name, spec);
const pushSecret = (name: string, spec?: unknown) => object('ImagePushSecret', name, spec);
const pullSecret = (name: string, spec?: unknown) => object('ImagePullSecret', name, spec);
const acl = (...entries: unknown[]) => ({ auth: { acl: entries } });
const match = (m: Record<string, unknown>, actions: string[] = ['pull']) => ({ match: m, actions });
const spec = (o: Obj | undefined) => (o?.spec ?? {}) as Record<string, unknown>;

// ── defaults ──────────────────────────────────────────────────────────────────────────────────────

test('kubectl apply of kustomize/examples: the webhook’s defaults are in the stored objects', async () => {
  const { cluster } = await installed();
  const ns = await namespace(cluster, 'wh-examples');
  const applied = await cluster.kubectl(['apply', '-k', join(repoRoot, 'kustomize/examples')], { namespace: ns });
  assert.is(applied.code, 0, applied.stderr);
  const label = registryLabelValue({ namespace: ns, name: 'registry' });
  for (const kind of ['ImagePushSecret', 'ImagePullSecret']) {
    const stored = await getObject<Obj>(cluster, kind, 'example', ns);
    // the push example has no registryRef at all, the pull example one without namespace
    assert.equal(spec(stored).registryRef, { name: 'registry', namespace: ns }, kind);
    assert.is(stored?.metadata.labels?.[REGISTRY_LABEL], label, kind);
  }
  const example = await getObject<Obj>(cluster, 'ImageRegistry', 'registry', ns);
  assert.equal(spec(example).persistentVolumeClaim, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } }, deleteClaim: false });

  // what the examples write out explicitly is what the webhook fills in for an empty spec
  assert.is((await kubectlApply(cluster, [registry('minimal'), registry('replicated', { replicas: 3 })], ns)).code, 0);
  const minimal = spec(await getObject<Obj>(cluster, 'ImageRegistry', 'minimal', ns));
  assert.is(minimal.replicas, 1);
  assert.equal(minimal.persistentVolumeClaim, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } });
  assert.equal((minimal.auth as { acl: unknown }).acl, defaultAcl());
  assert.equal((spec(example).auth as { acl: unknown[] }).acl.map((e) => ({ ...(e as object), comment: undefined })), defaultAcl().map((e) => ({ ...e, comment: undefined })));
  const replicated = spec(await getObject<Obj>(cluster, 'ImageRegistry', 'replicated', ns));
  assert.equal((replicated.persistentVolumeClaim as { accessModes: string[] }).accessModes, ['ReadWriteMany']);
  const issuer = await kubectlApply(cluster, registry('issued', { tls: { issuerRef: { name: 'letsencrypt' } } }), ns);
  assert.is(issuer.code, 0, issuer.stderr);
  assert.equal((spec(await getObject<Obj>(cluster, 'ImageRegistry', 'issued', ns)).tls as { issuerRef: unknown }).issuerRef, { name: 'letsencrypt', kind: 'Issuer' });
});

test('a registryRef to a registry that does not exist yet is allowed with a warning', async () => {
  const { cluster } = await installed();
  const ns = await namespace(cluster, 'wh-warning');
  const result = await kubectlApply(cluster, pushSecret('early', { registryRef: { name: 'later' } }), ns);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stderr, `Warning: spec.registryRef: ImageRegistry ${ns}/later does not exist (yet)`);
  assert.ok(await getObject<Obj>(cluster, 'ImagePushSecret', 'early', ns));
  const quiet = await kubectlApply(cluster, [registry('present'), pullSecret('on-time', { registryRef: { name: 'present' } })], ns);
  assert.is(quiet.code, 0, quiet.stderr);
  assert.not.match(quiet.stderr, 'Warning');
});

// ── validation ────────────────────────────────────────────────────────────────────────────────────

interface InvalidRow {
  name: string;
  /** applied first and must be accepted (update rows) */
  before?: Obj;
  manifest: Obj;
  /** the field the message must name */
  field: string;
  args?: string[];
  /** refused by the validating webhook (not the CRD schema): checked when set */
  byWebhook?: true;
}

const long = (n: number) => `r${'a'.repeat(n - 1)}`;
const invalidRows: InvalidRow[] = [
  // ImageRegistry: ACL patterns docker_auth could not compile — only the webhook can see these
  { name: 'ACL regex with an unclosed group', manifest: registry('re-group', acl(match({ account: '/(ci/' }))), field: 'spec.auth.acl[0].match.account', byWebhook: true },
  { name: 'ACL regex with a lookahead (not RE2)', manifest: registry('re-lookahead', acl(match({ name: '/a(?=b)/' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL regex with a backreference (not RE2)', manifest: registry('re-backref', acl(match({ name: '/(a)\\1/' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL regex with a reversed range', manifest: registry('re-range', acl(match({ service: '/[z-a]/' }))), field: 'spec.auth.acl[0].match.service', byWebhook: true },
  { name: 'ACL regex with a repeat count over 1000', manifest: registry('re-repeat', acl(match({ labels: { team: '/x{1001}/' } }))), field: 'spec.auth.acl[0].match.labels[team]', byWebhook: true },
  { name: 'ACL regex with an escape Go does not know', manifest: registry('re-escape', acl(match({ account: '/\\C/' }))), field: 'spec.auth.acl[0].match.account', byWebhook: true },
  // found with the real docker_auth: admitted by the hand-written checker, refused by Go (invalid escape sequence / class range)
  { name: 'ACL regex with an escape as a range end', manifest: registry('re-range-escape', acl(match({ account: '/^[a-\\d]+$/' }))), field: 'spec.auth.acl[0].match.account', byWebhook: true },
  { name: 'ACL regex with an unknown Unicode class', manifest: registry('re-unicode', acl(match({ name: '/\\p{Foo}/' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL regex with a nested repetition', manifest: registry('re-nested', acl(match({ name: '/a**/' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL regex with an unknown POSIX class', manifest: registry('re-posix', acl(match({ name: '/[[:foo:]]/' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL regex in the second entry', manifest: registry('re-second', acl(match({ account: 'ci' }), match({ account: '/[/' }, ['push']))), field: 'spec.auth.acl[1].match.account', byWebhook: true },
  { name: 'ACL glob with an unclosed class', manifest: registry('glob-class', acl(match({ account: 'ci-[' }))), field: 'spec.auth.acl[0].match.account', byWebhook: true },
  { name: 'ACL glob with a dangling range', manifest: registry('glob-range', acl(match({ name: 'team/[a-' }))), field: 'spec.auth.acl[0].match.name', byWebhook: true },
  { name: 'ACL glob with a trailing backslash', manifest: registry('glob-escape', acl(match({ labels: { accessMode: 'push\\' } }))), field: 'spec.auth.acl[0].match.labels[accessMode]', byWebhook: true },
  // ImageRegistry: immutable once set — only the webhook sees the old object for these
  {
    name: 'changing storageClassName',
    before: registry('sc', { persistentVolumeClaim: { storageClassName: 'fast' } }),
    manifest: registry('sc', { persistentVolumeClaim: { storageClassName: 'slow' } }),
    field: 'spec.persistentVolumeClaim.storageClassName',
    byWebhook: true,
  },
  {
    name: 'changing accessModes',
    before: registry('modes', { persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } }),
    manifest: registry('modes', { persistentVolumeClaim: { accessModes: ['ReadWriteMany'] } }),
    field: 'spec.persistentVolumeClaim.accessModes',
    byWebhook: true,
  },
  {
    // accessModes were defaulted to ReadWriteOnce for 1 replica and stay so: 3 replicas cannot share it
    name: 'scaling to 3 replicas with defaulted ReadWriteOnce',
    before: registry('scale'),
    manifest: registry('scale', { replicas: 3 }),
    field: 'accessModes',
  },
  // ImageRegistry: schema-level problems
  { name: 'replicas negative', manifest: registry('neg', { replicas: -1 }), field: 'spec.replicas' },
  { name: 'replicas too many', manifest: registry('many', { replicas: 101 }), field: 'spec.replicas' },
  { name: 'replicas a string (client-side validation off)', manifest: registry('str', { replicas: 'three' }), field: 'spec.replicas', args: ['--validate=false'] },
  { name: '3 replicas on an explicit ReadWriteOnce volume', manifest: registry('rwo3', { replicas: 3, persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } }), field: 'accessModes' },
  { name: 'accessModes ReadOnlyMany', manifest: registry('rom', { persistentVolumeClaim: { accessModes: ['ReadOnlyMany'] } }), field: 'spec.persistentVolumeClaim.accessModes' },
  { name: 'accessModes unknown', manifest: registry('bogus', { persistentVolumeClaim: { accessModes: ['Sometimes'] } }), field: 'spec.persistentVolumeClaim.accessModes' },
  { name: 'storage request zero', manifest: registry('zero', { persistentVolumeClaim: { resources: { requests: { storage: '0' } } } }), field: 'storage' },
  { name: 'storage request not a quantity', manifest: registry('lots', { persistentVolumeClaim: { resources: { requests: { storage: 'lots' } } } }), field: 'storage' },
  { name: 'storageClassName not a name', manifest: registry('scname', { persistentVolumeClaim: { storageClassName: 'Fast_SSD' } }), field: 'spec.persistentVolumeClaim.storageClassName' },
  { name: 'tls.issuerRef.kind unknown', manifest: registry('kind', { tls: { issuerRef: { name: 'x', kind: 'Authority' } } }), field: 'spec.tls.issuerRef.kind' },
  { name: 'tls.issuerRef without name', manifest: registry('noname', { tls: { issuerRef: { kind: 'Issuer' } } }), field: 'spec.tls.issuerRef.name' },
  { name: 'auth.ca.issuerRef.kind unknown', manifest: registry('cakind', { auth: { ca: { issuerRef: { name: 'x', kind: 'Cluster' } } } }), field: 'spec.auth.ca.issuerRef.kind' },
  { name: 'tls.secretName not a name', manifest: registry('secret', { tls: { secretName: 'My_Secret' } }), field: 'spec.tls.secretName' },
  { name: 'ACL action unknown', manifest: registry('action', acl(match({ account: 'ci' }, ['delete']))), field: 'spec.auth.acl[0].actions' },
  { name: "ACL '*' with other actions", manifest: registry('star', acl(match({ account: 'ci' }, ['*', 'pull']))), field: 'spec.auth.acl[0].actions' },
  { name: 'ACL empty match (matches everything)', manifest: registry('empty', acl(match({}))), field: 'spec.auth.acl[0].match' },
  { name: 'ACL match on an invalid IP', manifest: registry('ip', acl(match({ ip: '300.1.1.1' }))), field: 'spec.auth.acl[0].match.ip' },
  { name: 'ACL entry without actions', manifest: registry('noactions', acl({ match: { account: 'ci' } })), field: 'spec.auth.acl[0].actions' },
  { name: 'registry name with upper case', manifest: registry('Registry'), field: 'metadata.name' },
  { name: 'registry name starting with a digit', manifest: registry('1registry'), field: 'metadata.name' },
  { name: 'registry name longer than 52', manifest: registry(long(53)), field: 'metadata.name' },
  // ImageRegistryAccount
  { name: 'account with a plain password (client-side validation off)', manifest: account('plain', { password: 'hunter2hunter2' }), field: 'spec.password', args: ['--validate=false'] },
  { name: 'account with a malformed bcrypt hash', manifest: account('short', { password: '$2b$10$tooShort' }), field: 'spec.password' },
  { name: 'account without password', manifest: account('nopass', { labels: { accessMode: ['push'] } }), field: 'spec.password' },
  { name: 'account ttl not a duration', manifest: account('forever', { password: HASH, ttl: 'forever' }), field: 'spec.ttl' },
  { name: 'account ttl zero', manifest: account('zero-ttl', { password: HASH, ttl: '0s' }), field: 'spec.ttl' },
  { name: 'account label values not a list', manifest: account('labels', { password: HASH, labels: { accessMode: 'push' } }), field: 'spec.labels' },
  {
    name: 'changing an account’s labels',
    before: account('immutable', { password: HASH, labels: { accessMode: ['pull'] } }),
    manifest: account('immutable', { password: HASH, labels: { accessMode: ['push'] } }),
    field: 'spec',
  },
  {
    name: 'changing an account’s ttl',
    before: account('ttl-change', { password: HASH, ttl: '48h' }),
    manifest: account('ttl-change', { password: HASH, ttl: '96h' }),
    field: 'spec',
  },
  // ImagePushSecret / ImagePullSecret
  {
    name: 'moving a push secret to another registry',
    before: pushSecret('moved', { registryRef: { name: 'one' } }),
    manifest: pushSecret('moved', { registryRef: { name: 'two' } }),
    field: 'spec.registryRef.name',
    byWebhook: true,
  },
  {
    name: 'moving a pull secret to another namespace’s registry',
    before: pullSecret('moved', { registryRef: { name: 'one', namespace: 'team-a' } }),
    manifest: pullSecret('moved', { registryRef: { name: 'one', namespace: 'team-b' } }),
    field: 'spec.registryRef.namespace',
    byWebhook: true,
  },
  {
    // the defaulted namespace counts as set
    name: 'pointing a defaulted push secret at another namespace',
    before: pushSecret('defaulted'),
    manifest: pushSecret('defaulted', { registryRef: { name: 'registry', namespace: 'elsewhere' } }),
    field: 'spec.registryRef.namespace',
    byWebhook: true,
  },
  { name: 'push secret registryRef.name not a registry name', manifest: pushSecret('badref', { registryRef: { name: 'Bad_Name' } }), field: 'spec.registryRef.name' },
  { name: 'pull secret registryRef.namespace not a namespace', manifest: pullSecret('badns', { registryRef: { name: 'registry', namespace: 'Team_A' } }), field: 'spec.registryRef.namespace' },
  { name: 'push secret name too long for its accounts', manifest: pushSecret(long(200)), field: 'metadata.name' },
];

test(`${invalidRows.length} invalid CRs are rejected through the API server, each naming the field; none is stored`, async () => {
  const { cluster } = await installed();
  const ns = await namespace(cluster, 'wh-invalid');
  const outcomes: { row: InvalidRow; code: number; stderr: string; previous?: Obj; stored?: Obj }[] = [];
  const queue = [...invalidRows];
  const worker = async () => {
    for (let row = queue.shift(); row; row = queue.shift()) {
      let previous: Obj | undefined;
      if (row.before) {
        const before = await kubectlApply(cluster, row.before, ns);
        assert.is(before.code, 0, `${row.name}: the object before the change must be accepted: ${before.stderr}`);
        previous = await getObject<Obj>(cluster, row.before.kind, row.before.metadata.name, ns);
      }
      const result = await kubectlApply(cluster, row.manifest, ns, row.args);
      outcomes.push({ row, ...result, previous, stored: await getObject<Obj>(cluster, row.manifest.kind, row.manifest.metadata.name, ns) });
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  const accepted = outcomes.filter((o) => o.code === 0).map((o) => o.row.name);
  assert.equal(accepted, [], 'accepted although invalid');
  const log = await webhookLog(cluster);
  for (const { row, stderr, previous, stored } of outcomes) {
    assert.ok(stderr.includes(row.field), `${row.name}: the message names ${row.field}:\n${stderr}`);
    if (row.byWebhook) assert.ok(deniedByWebhook(log, ns, row.manifest.metadata.name), `${row.name}: refused by the webhook:\n${stderr}`);
    if (!row.before) assert.is(stored, undefined, `${row.name}: not stored`);
    else {
      // the refused change left the stored spec as it was (the resourceVersion may move: reconcile
      // Jobs of the earlier tests keep writing the status subresource)
      assert.equal(spec(stored), spec(previous), `${row.name}: spec unchanged`);
    }
  }
  const byWebhook = outcomes.filter((o) => deniedByWebhook(log, ns, o.row.manifest.metadata.name)).length;
  assert.ok(invalidRows.length >= 40);
  assert.ok(byWebhook >= invalidRows.filter((r) => r.byWebhook).length);
  console.log(`   ${outcomes.length} invalid CRs rejected: ${byWebhook} by the webhook, ${outcomes.length - byWebhook} by the CRD schema`);
});

// ── enqueue ───────────────────────────────────────────────────────────────────────────────────────

test('kubectl apply --dry-run=server enqueues nothing; a real apply creates the reconcile Job the Job controller runs', async () => {
  const { cluster, config } = await installed();
  const ns = await namespace(cluster, 'wh-enqueue');
  const key = { namespace: ns, name: 'registry' };
  const dry = await kubectlApply(cluster, registry('registry'), ns, ['--dry-run=server']);
  assert.is(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, '(server dry run)');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(await reconcileJobsOf(key), [], 'no Job for a dry run');
  assert.is(await getObject<Obj>(cluster, 'ImageRegistry', 'registry', ns), undefined);

  const real = await kubectlApply(cluster, registry('registry'), ns);
  assert.is(real.code, 0, real.stderr);
  const jobs = await reconcileJobsOf(key);
  assert.is(jobs.length, 1, 'one Job for the real apply');
  const job = jobs[0] as JobObject & { spec: Record<string, unknown> };
  // the Job is exactly the one functions/reconcile-job.ts describes for its window
  const windowStart = new Date(Number(/-(\d+)$/.exec(job.metadata.name)?.[1]) * 1000);
  const desired = desiredReconcileJob({ registry: key, config, windowStart, windowEnd: reconcileWindow(windowStart).end });
  assert.is(job.metadata.name, desired.metadata.name);
  assert.equal({ ...job.metadata.labels, ...desired.metadata.labels }, job.metadata.labels, 'labels');
  assert.equal(job.metadata.annotations?.[`registry.mgoltzsche.github.com/registry-ref`], `${ns}/registry`);
  for (const key of ['backoffLimit', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished'] as const) assert.is(job.spec[key], desired.spec[key], key);
  const pod = job.spec.template.spec as unknown as typeof desired.spec.template.spec;
  assert.is(pod.serviceAccountName, 'image-registry-operator-jobs');
  assert.equal(pod.securityContext, desired.spec.template.spec.securityContext);
  const [container] = pod.containers;
  const [wanted] = desired.spec.template.spec.containers;
  assert.equal(
    { image: container?.image, command: container?.command, args: container?.args, env: container?.env, securityContext: container?.securityContext },
    { image: wanted?.image, command: wanted?.command, args: wanted?.args, env: wanted?.env, securityContext: wanted?.securityContext },
  );
  assert.equal(container?.command, ['node', '/app/dist/reconcile.js']);

  // the Job controller makes its pod, the real node runs it as image-registry-operator-jobs
  const run = await waitForJob(cluster, config.namespace, job.metadata.name, 90_000);
  assert.is(run.result, 'Complete', run.logs);
  assert.is(run.pods[0]?.spec.serviceAccountName, 'image-registry-operator-jobs');
  assert.match(run.logs, '"msg":"registry reconciled"');
  // what the reconcile entry point made of it: the registry's objects exist
  const tlsSecret = await getObject<Obj>(cluster, 'Secret', 'registry-tls', ns);
  assert.ok(tlsSecret, 'the registry TLS Secret appears');
  assert.is((tlsSecret as { type?: string }).type, 'kubernetes.io/tls');
  assert.ok(await getObject<Obj>(cluster, 'StatefulSet', 'registry', ns), 'the StatefulSet appears');
});

test('burst: 50 ImagePushSecrets in one apply → one reconcile Job per window it spans; all 50 Secrets appear', async () => {
  const { cluster, config } = await installed();
  const ns = await namespace(cluster, 'wh-burst');
  const key = { namespace: ns, name: 'registry' };
  // the registry first, and its own Job done, so that only the burst's Jobs are counted
  assert.is((await kubectlApply(cluster, registry('registry'), ns)).code, 0);
  const [first] = await reconcileJobsOf(key);
  assert.ok(first);
  assert.is((await waitForJob(cluster, config.namespace, first.metadata.name, 90_000)).result, 'Complete');
  const before = new Set((await reconcileJobsOf(key)).map((job) => job.metadata.name));

  const secrets = Array.from({ length: 50 }, (_, i) => pushSecret(`app-${i}`));
  const started = Date.now();
  const result = await kubectlApply(cluster, secrets, ns);
  const seconds = (Date.now() - started) / 1000;
  assert.is(result.code, 0, result.stderr);
  assert.is(result.stdout.trim().split('\n').length, 50);
  const jobs = (await reconcileJobsOf(key)).filter((job) => !before.has(job.metadata.name));
  console.log(`   50 ImagePushSecrets applied in ${seconds.toFixed(1)} s → ${jobs.length} reconcile Job(s)`);
  assert.ok(jobs.length >= 1, 'the burst is enqueued');
  // O(1) per window: the apply spans at most ceil(seconds / window) + 1 windows
  const windows = Math.ceil(seconds / DEFAULT_WINDOW_SECONDS) + 1;
  assert.ok(jobs.length <= windows, `at most ${windows} Jobs for ${seconds.toFixed(1)} s, got ${jobs.map((j) => j.metadata.name).join(', ')}`);
  // every one of them is labelled for the registry the Jobs select by
  const listed = await cluster.kubectl(['get', 'imagepushsecrets', '-l', `${REGISTRY_LABEL}=${registryLabelValue(key)}`, '-o', 'name'], { namespace: ns });
  assert.is(listed.stdout.trim().split('\n').length, 50);
  // the coalesced Jobs run: every push secret gets its Secret
  for (const job of jobs) {
    const run = await waitForJob(cluster, config.namespace, job.metadata.name, 120_000);
    assert.is(run.result, 'Complete', run.logs);
  }
  const names = new Set(secrets.map((s) => `${s.metadata.name}-image-push-secret`));
  let missing: string[] = [];
  await waitFor('all 50 push Secrets', async () => {
    const stored = await cluster.kubectl(['get', 'secrets', '-o', 'name'], { namespace: ns });
    const present = new Set(stored.stdout.trim().split('\n').map((line) => line.replace('secret/', '')));
    missing = [...names].filter((name) => !present.has(name));
    return missing.length === 0;
  }, 60_000).catch((error: Error) => assert.unreachable(`${error.message}; missing: ${missing.join(', ')}`));
});

test('clean up: the webhook configurations and Deployment are removed, the namespaces deleted', async () => {
  const { cluster, config } = await installed();
  await uninstallWebhook(cluster);
  const left = await cluster.kubectl(['get', 'mutatingwebhookconfigurations,validatingwebhookconfigurations', '-o', 'name']);
  assert.not.match(left.stdout, 'image-registry-operator');
  assert.is(await getObject(cluster, 'deployment', 'image-registry-operator-webhook', OPERATOR_NAMESPACE), undefined);
  // the Jobs enqueued by this file are of no use to the next one, and its CRs would only make the
  // cluster-wide rotation and resync Jobs of later files slower
  await cluster.kubectl(['delete', 'jobs', '-l', 'app.kubernetes.io/component=reconcile', '--wait=false'], { namespace: config.namespace });
  for (const ns of namespaces) {
    const deleted = await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
    assert.is(deleted.code, 0, deleted.stderr);
  }
});

test.run();
