import { createHash } from 'node:crypto';
import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultImageRegistry } from '../../functions/defaults.ts';
import {
  defaultGcSchedule, desiredGcCronJob, desiredGcJob, EMPTY_JSON_BLOB, FREEZE_MARGIN_MS, GC_SCRIPT, gcCronJobName, gcEventMessage, gcJobName, gcPodReportLine, gcRegistryConfig, gcSettings,
  keptTags, parseGcOutput, parseGcPodReport, retentionPlan, type TagState,
} from '../../functions/garbage-collection.ts';
import { FREEZE_DRAIN_MS } from '../../functions/maintenance.ts';
import { registrySelectorLabels } from '../../functions/names.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { registryStorage } from '../../functions/registry-storage.ts';
import type { ImageRegistry } from '../../functions/types.ts';
import { cronProblem } from '../../functions/validation/garbage-collection.ts';
import { validateImageRegistry } from '../../functions/validation/registry.ts';

const config = operatorConfigFromEnv({});
function registry(spec: ImageRegistry['spec'] = {}, name = 'registry'): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name, namespace: 'infra', uid: 'uid-1' }, spec };
}
const now = new Date('2026-12-01T12:00:00Z');
const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000);
const tag = (name: string, digest: string, h: number, references?: string[]): TagState => ({ tag: name, digest, pushedAt: hoursAgo(h), ...(references ? { references } : {}) });

test('defaults: collection on daily at a time of its own, nothing deleted but unreferenced data', () => {
  const settings = gcSettings(registry());
  assert.equal({ ...settings, schedule: undefined }, { enabled: true, schedule: undefined, deleteUntagged: false, dryRun: false, timeoutMs: 900_000, retention: [] });
  assert.match(settings.schedule, /^\d{1,2} [0-5] \* \* \*$/);
  assert.is(settings.schedule, defaultGcSchedule('infra', 'registry'));
  assert.is.not(defaultGcSchedule('infra', 'registry'), defaultGcSchedule('other', 'registry'));
  // the webhook writes the same defaults into the spec (the request's namespace when metadata has none)
  const ops = defaultImageRegistry({ metadata: { name: 'registry' }, spec: {} }, undefined, 'infra');
  const gc = ops.find((op) => op.path === '/spec/garbageCollection');
  assert.equal(gc && 'value' in gc ? gc.value : undefined, { enabled: true, schedule: defaultGcSchedule('infra', 'registry'), deleteUntagged: false, dryRun: false, timeout: '15m' });
  // a user's own settings stay
  const mine = defaultImageRegistry({ metadata: { name: 'registry' }, spec: { garbageCollection: { schedule: '0 4 * * 0' } } }, undefined, 'infra');
  assert.equal(mine.filter((op) => op.path.startsWith('/spec/garbageCollection')).map((op) => op.path).sort(), ['/spec/garbageCollection/deleteUntagged', '/spec/garbageCollection/dryRun', '/spec/garbageCollection/enabled', '/spec/garbageCollection/timeout']);
});

test('names: the CronJob ≤ 52 characters and distinct for dash-ambiguous registries; the GC Job ≤ 63', () => {
  const long = { namespace: 'n'.repeat(63), name: 'r'.repeat(52) };
  assert.ok(gcCronJobName(long).length <= 52, gcCronJobName(long));
  assert.match(gcCronJobName({ namespace: 'infra', name: 'registry' }), /^gc-infra-registry-[0-9a-f]{8}$/);
  assert.is.not(gcCronJobName({ namespace: 'a-b', name: 'c' }), gcCronJobName({ namespace: 'a', name: 'b-c' }));
  assert.ok(gcJobName('r'.repeat(52), '0123456789').length <= 63);
});

test('the CronJob: operator namespace, the Jobs account, the config as env, suspended when disabled, deadline past the freeze', () => {
  const cronJob = desiredGcCronJob(registry({ garbageCollection: { schedule: '5 1 * * 0', enabled: false, timeout: '2m' } }), config);
  assert.is(cronJob.metadata?.namespace, config.namespace);
  assert.is(cronJob.spec?.schedule, '5 1 * * 0');
  assert.is(cronJob.spec?.suspend, true);
  assert.is(cronJob.spec?.concurrencyPolicy, 'Forbid');
  const spec = cronJob.spec?.jobTemplate.spec;
  assert.is(spec?.backoffLimit, 0);
  assert.ok((spec?.activeDeadlineSeconds ?? 0) * 1000 > 120_000 + FREEZE_DRAIN_MS + FREEZE_MARGIN_MS);
  const container = spec?.template.spec?.containers[0];
  assert.is(spec?.template.spec?.serviceAccountName, 'image-registry-operator-jobs');
  assert.equal(container?.command, ['node', '/app/dist/garbage-collect.js']);
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
  assert.is(env['GC_REGISTRY_NAMESPACE'], 'infra');
  assert.is(env['GC_REGISTRY_NAME'], 'registry');
  assert.is(env['OPERATOR_NAMESPACE'], config.namespace);
});

test('the GC Job: the registry image on its own storage, no API token, not selected by the Service, stopped before the freeze ends', () => {
  const r = registry({ garbageCollection: { deleteUntagged: true, timeout: '1m' } });
  const job = desiredGcJob({ registry: r, config, run: 'abc', settings: gcSettings(r), besideRegistryPods: true });
  const pod = job.spec?.template.spec;
  assert.is(job.metadata?.namespace, 'infra');
  assert.is(job.spec?.activeDeadlineSeconds, 60);
  assert.is(pod?.automountServiceAccountToken, false);
  const labels = job.spec?.template.metadata?.labels ?? {};
  assert.ok(Object.entries(registrySelectorLabels('registry')).some(([k, v]) => labels[k] !== v), 'the Service selector does not match the GC pod');
  const [registryContainer, retention] = pod?.containers ?? [];
  assert.is(registryContainer?.image, config.images.registry);
  assert.equal(registryContainer?.command, ['sh', '-c', GC_SCRIPT]);
  assert.ok(registryContainer?.env?.some((e) => e.name === 'GC_FLAGS' && e.value === '--delete-untagged'));
  assert.ok(registryContainer?.volumeMounts?.some((m) => m.name === 'data' && !m.readOnly), 'the collector deletes');
  assert.ok(retention?.volumeMounts?.every((m) => m.name === 'work' || m.readOnly), 'retention only reads the storage');
  assert.equal(pod?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.labelSelector?.matchLabels, registrySelectorLabels('registry'));
  assert.is(desiredGcJob({ registry: r, config, run: 'abc', settings: gcSettings(r), besideRegistryPods: false }).spec?.template.spec?.affinity, undefined);
  const settings = JSON.parse(retention?.env?.find((e) => e.name === 'GC_SETTINGS')?.value ?? '{}');
  assert.equal(settings, { dryRun: false, retention: [], storage: { kind: 'volume', root: '/var/lib/registry' } });
});

test('the GC registry config: the same storage, loopback only, no auth, no upload purging', () => {
  const r = registry({ storage: { s3: { bucket: 'images', endpoint: 'https://s3.example.org' } } });
  const parsed = load(gcRegistryConfig(registryStorage(r))) as Record<string, any>;
  assert.is(parsed['http'].addr, '127.0.0.1:5001');
  assert.is(parsed['auth'], undefined);
  assert.is(parsed['storage'].s3.bucket, 'images');
  assert.equal(parsed['storage'].maintenance.uploadpurging, { enabled: false, age: '168h', interval: '24h', dryrun: false });
  assert.equal(parsed['storage'].delete, { enabled: true });
});

test('keptTags: patterns, the N pushed last and the pushed-within window each keep a tag', () => {
  const tags = [tag('a', 'd1', 50), tag('b', 'd2', 40), tag('release-1', 'd3', 300), tag('c', 'd4', 2), tag('d', 'd5', 1)];
  assert.equal([...keptTags(tags, { mostRecentlyPushedCount: 2 }, now)].sort(), ['c', 'd']);
  assert.equal([...keptTags(tags, { patterns: ['release-*'] }, now)], ['release-1']);
  assert.equal([...keptTags(tags, { pushedWithin: '45h' }, now)].sort(), ['b', 'c', 'd']);
  assert.equal([...keptTags(tags, { patterns: ['release-*'], mostRecentlyPushedCount: 1 }, now)].sort(), ['d', 'release-1']);
});

test('retentionPlan: 30 tags, keep the 5 pushed last and release-*: the others go, by manifest', () => {
  const tags = Array.from({ length: 30 }, (_, i) => tag(i % 10 === 0 ? `release-${i}` : `build-${i}`, `sha256:${i}`, 100 - i));
  const plan = retentionPlan([{ repository: 'team/app', tags }], [{ repositories: ['team/**'], keepTags: { patterns: ['release-*'], mostRecentlyPushedCount: 5 } }], now);
  const deleted = plan.deleteManifests.flatMap((m) => m.tags).sort();
  const expectedKept = ['release-0', 'release-10', 'release-20', 'build-25', 'build-26', 'build-27', 'build-28', 'build-29'];
  assert.is(plan.keptTags, expectedKept.length);
  assert.equal(deleted, tags.map((t) => t.tag).filter((t) => !expectedKept.includes(t)).sort());
  assert.equal(plan.deleteTags, []);
});

test('retentionPlan: repositories without a policy keep everything; the first matching policy applies', () => {
  const tags = [tag('old', 'sha256:1', 10), tag('new', 'sha256:2', 1)];
  const policies = [{ repositories: ['tools/*'], keepTags: { mostRecentlyPushedCount: 1 } }, { repositories: ['**'], keepTags: { mostRecentlyPushedCount: 2 } }];
  const plan = retentionPlan([{ repository: 'tools/x', tags }, { repository: 'apps/y', tags }, { repository: 'tools/deep/z', tags }], policies, now);
  assert.equal(plan.deleteManifests, [{ repository: 'tools/x', digest: 'sha256:1', tags: ['old'] }]);
  assert.equal(retentionPlan([{ repository: 'apps/y', tags }], [{ repositories: ['tools/*'], keepTags: { mostRecentlyPushedCount: 0 } }], now).deleteManifests, []);
});

test('retentionPlan: a tag sharing a kept tag\'s manifest goes alone; a manifest a kept index references stays with its tags', () => {
  const tags = [
    tag('v2', 'sha256:index', 1, ['sha256:amd64', 'sha256:arm64']),
    tag('v2-amd64', 'sha256:amd64', 50),
    tag('latest-copy', 'sha256:index', 60),
    tag('v1', 'sha256:old', 70),
  ];
  const plan = retentionPlan([{ repository: 'app', tags }], [{ repositories: ['app'], keepTags: { mostRecentlyPushedCount: 1 } }], now);
  assert.equal(plan.deleteTags, [{ repository: 'app', tag: 'latest-copy' }]);
  assert.equal(plan.deleteManifests, [{ repository: 'app', digest: 'sha256:old', tags: ['v1'] }]);
  assert.is(plan.keptTags, 2);
});

test('parseGcOutput: the summary line and the blobs, as registry garbage-collect prints them', () => {
  const output = [
    'a/c: marking manifest sha256:05d1d34f829ca2aa9886620de9b3744ea497146742a13ac258956e9776542a89 ',
    '',
    '5 blobs marked, 2 blobs and 1 manifests eligible for deletion',
    `blob eligible for deletion: sha256:${'7'.repeat(64)}`,
    `time="2026-12-02T07:30:31Z" level=info msg="Deleting blob: /docker/registry/v2/blobs/sha256/77/${'7'.repeat(64)}"`,
    `blob eligible for deletion: sha256:${'8'.repeat(64)}`,
  ].join('\n');
  assert.equal(parseGcOutput(output), { blobsMarked: 5, blobsDeleted: 2, manifestsDeleted: 1, blobDigests: [`sha256:${'7'.repeat(64)}`, `sha256:${'8'.repeat(64)}`] });
  assert.is(parseGcOutput('failed to garbage collect: failed to mark: filesystem: Path not found'), undefined);
});

test('the pod report survives the log around it; the Event message says what went and for how long writes were refused', () => {
  const report = { dryRun: false, tagsDeleted: 3, manifestsDeleted: 4, blobsDeleted: 9, bytesReclaimed: 3 * 1024 * 1024, storageBytes: 10, problems: [] };
  assert.equal(parseGcPodReport(`{"level":"info"}\nnot json\n${gcPodReportLine(report)}\n`), report);
  assert.is(parseGcPodReport('nothing'), undefined);
  const base = { startTime: now.toISOString(), completionTime: now.toISOString(), tagsDeleted: 3, manifestsDeleted: 4, blobsDeleted: 9, bytesReclaimed: 3 * 1024 * 1024 };
  assert.is(gcEventMessage({ ...base, result: 'Succeeded', freezeSeconds: 7.25 }), 'garbage collection deleted 3 tags, 4 manifests and 9 blobs (3.0 MiB); writes refused for 7.3 s');
  assert.is(gcEventMessage({ ...base, result: 'Succeeded', dryRun: true }), 'garbage collection dry run, nothing deleted: would delete 3 tags, 4 manifests and 9 blobs (3.0 MiB); no write freeze');
  assert.match(gcEventMessage({ ...base, result: 'Failed', message: 'the write freeze was not confirmed' }), /failed: the write freeze was not confirmed/);
});

test('cronProblem: what Kubernetes accepts', () => {
  for (const ok of ['0 3 * * *', '*/15 * * * *', '0 0 1,15 * mon-fri', '30 2 * jan-mar 0', '@daily', '0 0 * * 7', '5-10/2 * * * *']) assert.is(cronProblem(ok), undefined, ok);
  for (const bad of ['', '0 3 * *', '60 * * * *', '0 24 * * *', '0 0 0 * *', 'TZ=UTC 0 3 * * *', '*/0 * * * *', '10-5 * * * *', '0 0 * foo *']) assert.type(cronProblem(bad), 'string', bad);
});

test('validation names the field of each bad garbageCollection setting', () => {
  const problems = validateImageRegistry({
    metadata: { name: 'registry' },
    spec: {
      garbageCollection: {
        enabled: 'yes', schedule: '0 25 * * *', timeout: '10s',
        retention: [{ repositories: [], keepTags: {} }, { repositories: ['a/*'], keepTags: { mostRecentlyPushedCount: -1, pushedWithin: 'soon', patterns: [''] } }, 'x'],
      },
    },
  });
  const fields = problems.map((p) => p.split(':')[0]);
  assert.equal(fields, [
    'spec.garbageCollection.enabled',
    'spec.garbageCollection.schedule',
    'spec.garbageCollection.timeout',
    'spec.garbageCollection.retention[0].repositories',
    'spec.garbageCollection.retention[0].keepTags',
    'spec.garbageCollection.retention[1].keepTags.patterns[0]',
    'spec.garbageCollection.retention[1].keepTags.mostRecentlyPushedCount',
    'spec.garbageCollection.retention[1].keepTags.pushedWithin',
    'spec.garbageCollection.retention[2]',
  ]);
  assert.equal(validateImageRegistry({ metadata: { name: 'registry' }, spec: { garbageCollection: { schedule: '0 3 * * 0', retention: [{ repositories: ['**'], keepTags: { mostRecentlyPushedCount: 5, patterns: ['release-*'] } }] } } }), []);
});

test('a pull-through cache\'s GC Job links every repository before the collector runs; a registry\'s does not', () => {
  const settingsOf = (r: ImageRegistry) => {
    const container = desiredGcJob({ registry: r, config, run: 'abc', settings: gcSettings(r), besideRegistryPods: true }).spec?.template.spec?.containers.find((c) => c.name === 'retention');
    return JSON.parse(container?.env?.find((e) => e.name === 'GC_SETTINGS')?.value ?? '{}') as Record<string, unknown>;
  };
  assert.is(settingsOf(registry({ proxy: { remoteURL: 'https://registry-1.docker.io' } }))['linkEveryRepository'], true);
  assert.is(settingsOf(registry())['linkEveryRepository'], undefined);
  assert.is(EMPTY_JSON_BLOB.digest, `sha256:${createHash('sha256').update(EMPTY_JSON_BLOB.content).digest('hex')}`);
});

test.run();
