import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { retentionPlan, type TagState } from '../../functions/garbage-collection.ts';
import { attachmentSubject } from '../../functions/retention/attachments.ts';
import { namesRegistry, parseImageReference } from '../../functions/retention/image-reference.ts';
import { inUseOf, inUseSummary, podSpecImages } from '../../functions/retention/in-use.ts';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const now = new Date('2026-12-07T12:00:00Z');
const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000);
const tag = (name: string, digest: string, h: number, references?: string[]): TagState => ({ tag: name, digest, pushedAt: hoursAgo(h), ...(references ? { references } : {}) });
const HOST = 'reg.team.svc.example.org';

test('parseImageReference: docker\'s defaults (docker.io, library/), hosts with ports, localhost, tags and digests', () => {
  assert.equal(parseImageReference('nginx'), { host: 'docker.io', repository: 'library/nginx' });
  assert.equal(parseImageReference('nginx:1.27'), { host: 'docker.io', repository: 'library/nginx', tag: '1.27' });
  assert.equal(parseImageReference('bitnami/redis:7'), { host: 'docker.io', repository: 'bitnami/redis', tag: '7' });
  assert.equal(parseImageReference('index.docker.io/nginx'), { host: 'docker.io', repository: 'library/nginx' });
  assert.equal(parseImageReference('docker.io/library/nginx:1'), { host: 'docker.io', repository: 'library/nginx', tag: '1' });
  assert.equal(parseImageReference(`${HOST}/team/app:old-7`), { host: HOST, repository: 'team/app', tag: 'old-7' });
  assert.equal(parseImageReference(`${HOST}:443/team/app`), { host: `${HOST}:443`, repository: 'team/app' });
  assert.equal(parseImageReference('localhost:5000/a/b:c'), { host: 'localhost:5000', repository: 'a/b', tag: 'c' });
  assert.equal(parseImageReference('localhost/app'), { host: 'localhost', repository: 'app' });
  assert.equal(parseImageReference('Registry/app'), { host: 'registry', repository: 'app' }, 'an upper-case first component is a domain');
  assert.equal(parseImageReference(`${HOST}/team/app@${D('a')}`), { host: HOST, repository: 'team/app', digest: D('a') });
  assert.equal(parseImageReference(`${HOST}/team/app:v1@${D('b')}`), { host: HOST, repository: 'team/app', tag: 'v1', digest: D('b') });
  assert.equal(parseImageReference('[fd00::1]:5000/app:v1'), { host: '[fd00::1]:5000', repository: 'app', tag: 'v1' });
  for (const bad of ['', 'UPPER/Case:1', 'app:', 'app@sha256:short', `${HOST}/Team/app`, 'a//b', 'app:bad tag']) assert.is(parseImageReference(bad), undefined, bad);
});

test('namesRegistry: the hostname, in any case, with or without :443', () => {
  const ref = (text: string) => parseImageReference(text) ?? { host: '', repository: '' };
  assert.ok(namesRegistry(ref(`${HOST}/a`), HOST));
  assert.ok(namesRegistry(ref(`${HOST.toUpperCase()}/a`), HOST));
  assert.ok(namesRegistry(ref(`${HOST}:443/a`), HOST));
  assert.not.ok(namesRegistry(ref(`${HOST}:5000/a`), HOST));
  assert.not.ok(namesRegistry(ref('nginx'), HOST));
});

test('inUseOf: this registry\'s references by repository; no tag means latest; a digest pins the manifest, its tag kept too', () => {
  const images = podSpecImages({
    containers: [{ image: `${HOST}/team/app:old-7` }, { image: 'nginx:1.27' }],
    initContainers: [{ image: `${HOST}/team/tool` }],
    ephemeralContainers: [{ image: `${HOST}/team/app:v2@${D('c')}` }, { image: `${HOST}/team/job@${D('d')}` }],
  });
  const inUse = inUseOf(images, HOST);
  assert.equal(inUse, { tags: { 'team/app': ['old-7', 'v2'], 'team/tool': ['latest'] }, digests: { 'team/app': [D('c')], 'team/job': [D('d')] } });
  assert.equal(inUseSummary(inUse).count, 5);
  assert.equal(inUseSummary(inUse).examples, ['team/app:old-7', 'team/app:v2', 'team/tool:latest']);
  assert.equal(inUseOf(['garbage::', 'other.example/x:1'], HOST), { tags: {}, digests: {} });
  // a pull-through cache: what runs under a host it mirrors is its own copy
  assert.equal(inUseOf(['nginx:1.27', `docker.io/library/redis@${D('e')}`, 'quay.io/x/y:1'], [HOST, 'docker.io']), { tags: { 'library/nginx': ['1.27'] }, digests: { 'library/redis': [D('e')] } });
});

test('attachmentSubject: cosign\'s signature, attestation and SBOM tags name their manifest; other tags none', () => {
  const hex = 'e'.repeat(64);
  for (const suffix of ['.sig', '.att', '.sbom', '']) assert.is(attachmentSubject(`sha256-${hex}${suffix}`), `sha256:${hex}`);
  for (const other of ['v1', `sha256-${hex}.txt`, `sha256-${hex.slice(1)}.sig`, `sha512-${hex}.sig`]) assert.is(attachmentSubject(other), undefined, other);
});

test('retentionPlan: a tag outside every keep rule that a workload runs is kept and reported; its siblings go', () => {
  const tags = [tag('v9', D('9'), 1), tag('old-8', D('8'), 50), tag('old-7', D('7'), 60), tag('old-6', D('6'), 70)];
  const policies = [{ repositories: ['team/app'], keepTags: { mostRecentlyPushedCount: 1 } }];
  const without = retentionPlan([{ repository: 'team/app', tags }], policies, now);
  assert.equal(without.deleteManifests.map((m) => m.tags[0]), ['old-8', 'old-7', 'old-6']);
  const plan = retentionPlan([{ repository: 'team/app', tags }], policies, now, { tags: { 'team/app': ['old-7'] }, digests: {} });
  assert.equal(plan.deleteManifests.map((m) => m.tags[0]), ['old-8', 'old-6']);
  assert.equal(plan.keptInUse, ['team/app:old-7']);
  assert.equal(plan.untaggedInUse, []);
  // by digest: the manifest and its tags stay
  const pinned = retentionPlan([{ repository: 'team/app', tags }], policies, now, { tags: {}, digests: { 'team/app': [D('6')] } });
  assert.equal(pinned.deleteManifests.map((m) => m.tags[0]), ['old-8', 'old-7']);
  assert.equal(pinned.keptInUse, ['team/app:old-6']);
});

test('retentionPlan: an untagged manifest in use by digest is reported (deleteUntagged must skip), in repositories without a policy too', () => {
  const plan = retentionPlan([{ repository: 'team/cron', tags: [tag('v2', D('2'), 1)] }], [], now, { tags: {}, digests: { 'team/cron': [D('1')], 'gone/repo': [D('3')] } });
  assert.equal(plan.untaggedInUse, [`team/cron@${D('1')}`]);
  assert.equal(plan.deleteManifests, []);
  // a digest an index references is not untagged
  const indexed = retentionPlan([{ repository: 'team/cron', tags: [tag('v2', D('2'), 1, [D('1')])] }], [], now, { tags: {}, digests: { 'team/cron': [D('1')] } });
  assert.equal(indexed.untaggedInUse, []);
});

test('retentionPlan: signatures are not counted, stay with a kept image, go with a deleted one, and orphans go', () => {
  const sig = (subject: string, suffix: string, digest: string) => tag(`sha256-${subject.slice(7)}${suffix}`, digest, 0.5);
  const tags = [
    tag('v3', D('3'), 1), tag('v2', D('2'), 2), tag('v1', D('1'), 3),
    sig(D('3'), '.sig', D('a')), sig(D('3'), '.att', D('b')), sig(D('1'), '.sig', D('c')), sig(D('f'), '.sig', D('d')),
  ];
  const plan = retentionPlan([{ repository: 'team/app', tags }], [{ repositories: ['team/**'], keepTags: { mostRecentlyPushedCount: 2 } }], now);
  // the 2 most recent builds are v3 and v2 (the signatures, pushed later, are not counted)
  const deleted = plan.deleteManifests.map((m) => m.tags[0]).sort();
  assert.equal(deleted, ['sha256-' + '1'.repeat(64) + '.sig', 'sha256-' + 'f'.repeat(64) + '.sig', 'v1'].sort());
  assert.is(plan.keptTags, 4);
  // a repository no policy covers keeps its attachments, orphans included
  assert.equal(retentionPlan([{ repository: 'other/app', tags }], [{ repositories: ['team/**'], keepTags: { mostRecentlyPushedCount: 1 } }], now).deleteManifests, []);
});

test.run();
