import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeTrustSet,
  encodeTrustSet,
  hasMirrorBlock,
  mergeMirrorBlock,
  MIRROR_BLOCK_BEGIN,
  MIRROR_BLOCK_END,
  mirrorEntries,
  mirrorHostsToml,
  NODE_TRUST_MARKER,
  NODE_TRUST_SET_ENV,
  nodeTrustDirectories,
  nodeTrustPlan,
  normalizeTrustSet,
  stripMirrorBlock,
  trustSetDigest,
  type MirrorEntry,
  type TrustedRegistry,
} from '../../functions/node-trust.ts';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(body).toString('base64')}\n-----END CERTIFICATE-----\n`;
const CA1 = pem('operator ca 1');
const CA2 = pem('operator ca 2');
const HUB = 'https://registry-1.docker.io';
/** caches: hub.a mirrors docker.io and quay.io; hub.b docker.io; plain is no cache */
const hubA: TrustedRegistry = { hostname: 'hub.a.svc.example.org', caPem: CA1, mirror: { hosts: ['Quay.io', 'docker.io'], server: HUB } };
const hubB: TrustedRegistry = { hostname: 'hub.b.svc.example.org', caPem: CA2, mirror: { hosts: ['docker.io'], server: 'https://mirror.gcr.io' } };
const plain: TrustedRegistry = { hostname: 'plain.team.svc.example.org', caPem: CA1 };

/** trustSetDigest as it was before caches existed: a set without mirrors must keep this digest (no node re-runs its Job) */
function digestWithoutMirrors(registries: readonly { hostname: string; caPem: string }[]): string {
  const hash = createHash('sha256');
  for (const { hostname, caPem } of [...registries].sort((x, y) => (x.hostname < y.hostname ? -1 : 1))) hash.update(`${hostname.length}:${hostname}${caPem.length}:${caPem}`);
  return hash.digest('hex');
}

test('normalizeTrustSet keeps a mirror with lower-case, unique, sorted hosts; drops one without hosts; refuses bad hosts and servers', () => {
  assert.equal(normalizeTrustSet([{ ...hubA, mirror: { hosts: ['Quay.io', 'docker.io', 'DOCKER.IO'], server: HUB } }, plain]), [
    { hostname: hubA.hostname, caPem: CA1, mirror: { hosts: ['docker.io', 'quay.io'], server: HUB } },
    plain,
  ]);
  assert.equal(normalizeTrustSet([{ ...plain, mirror: { hosts: [], server: HUB } }]), [plain]);
  assert.throws(() => normalizeTrustSet([{ ...plain, mirror: { hosts: ['../etc'], server: HUB } }]), /"\.\.\/etc" \(mirrorFor of plain\.team\.svc\.example\.org\) is not an image host/);
  assert.throws(() => normalizeTrustSet([{ ...plain, mirror: { hosts: ['docker.io'], server: 'registry-1.docker.io' } }]), /the upstream of plain\.team\.svc\.example\.org is not a URL/);
  assert.throws(() => normalizeTrustSet([{ ...plain, mirror: { hosts: ['docker.io'], server: 'https://x"\n[host."evil"]' } }]), /is not a URL/);
  const input = { ...hubA, mirror: { hosts: ['Quay.io', 'docker.io'], server: HUB } };
  normalizeTrustSet([input]);
  assert.equal(input.mirror.hosts, ['Quay.io', 'docker.io'], 'input not mutated');
});

test('mirrorEntries: per image host the caches in hostname order, the first cache\'s upstream as server; own hostnames never mirrored', () => {
  assert.equal(mirrorEntries([plain, hubB, hubA]), [
    { host: 'docker.io', server: HUB, caches: [hubA.hostname, hubB.hostname] },
    { host: 'quay.io', server: HUB, caches: [hubA.hostname] },
  ]);
  assert.equal(mirrorEntries([hubB]), [{ host: 'docker.io', server: 'https://mirror.gcr.io', caches: [hubB.hostname] }]);
  assert.equal(mirrorEntries([plain]), []);
  assert.equal(mirrorEntries([]), []);
  // a cache "mirroring" another registry of the set (or itself): that host keeps its own hosts.toml
  const loop = { ...hubA, mirror: { hosts: [plain.hostname, hubA.hostname, 'docker.io'], server: HUB } };
  assert.equal(mirrorEntries([loop, plain]), [{ host: 'docker.io', server: HUB, caches: [hubA.hostname] }]);
});

test('mirrorHostsToml: the caches first, each verified with its own ca.crt, the upstream as server', () => {
  const entry: MirrorEntry = { host: 'docker.io', server: HUB, caches: [hubA.hostname, hubB.hostname] };
  assert.is(mirrorHostsToml(entry), [
    '# Written by image-registry-operator (node trust): pulls of docker.io go through its pull-through caches first, the upstream last. Removed with them.',
    'server = "https://registry-1.docker.io"',
    '',
    '[host."https://hub.a.svc.example.org"]',
    '  capabilities = ["pull", "resolve"]',
    '  ca = "/etc/containerd/certs.d/hub.a.svc.example.org/ca.crt"',
    '',
    '[host."https://hub.b.svc.example.org"]',
    '  capabilities = ["pull", "resolve"]',
    '  ca = "/etc/containerd/certs.d/hub.b.svc.example.org/ca.crt"',
    '',
  ].join('\n'));
});

const entryA: MirrorEntry = { host: 'docker.io', server: HUB, caches: [hubA.hostname] };
const blockA = [
  MIRROR_BLOCK_BEGIN,
  '[host."https://hub.a.svc.example.org"]',
  '  capabilities = ["pull", "resolve"]',
  '  ca = "/etc/containerd/certs.d/hub.a.svc.example.org/ca.crt"',
  '',
  MIRROR_BLOCK_END,
].join('\n');
// e.g. Spegel's: its own mirror and the upstream
const spegel = [
  '# written by spegel',
  'server = "https://registry-1.docker.io"',
  '',
  '[host."http://127.0.0.1:30020"]',
  '  capabilities = ["pull", "resolve"]',
  '',
  '[host."http://127.0.0.1:30021"]',
  '  capabilities = ["pull", "resolve"]',
  '',
].join('\n');

test('mergeMirrorBlock: our tables between the markers before the first table of someone else\'s file, their top-level keys kept first', () => {
  assert.is(MIRROR_BLOCK_BEGIN, '# BEGIN image-registry-operator pull-through caches (node trust): this part is replaced and removed by it');
  assert.is(MIRROR_BLOCK_END, '# END image-registry-operator pull-through caches');
  const merged = mergeMirrorBlock(spegel, entryA);
  assert.is(merged, [
    '# written by spegel',
    'server = "https://registry-1.docker.io"',
    '',
    blockA,
    '',
    '[host."http://127.0.0.1:30020"]',
    '  capabilities = ["pull", "resolve"]',
    '',
    '[host."http://127.0.0.1:30021"]',
    '  capabilities = ["pull", "resolve"]',
    '',
  ].join('\n'));
  assert.is(mergeMirrorBlock(merged, entryA), merged, 'merging again changes nothing');
  // another set of caches replaces our block, theirs stays
  const entryAB = { ...entryA, caches: [hubA.hostname, hubB.hostname] };
  const again = mergeMirrorBlock(merged, entryAB);
  assert.is(again, mergeMirrorBlock(spegel, entryAB));
  assert.is(again.split(MIRROR_BLOCK_BEGIN).length, 2, 'one block');
  assert.ok(again.includes('[host."https://hub.b.svc.example.org"]'));
  // no file, an empty file, top-level keys only
  assert.is(mergeMirrorBlock(undefined, entryA), `${blockA}\n`);
  assert.is(mergeMirrorBlock('', entryA), `${blockA}\n`);
  assert.is(mergeMirrorBlock('server = "https://x.example.org"\n', entryA), `server = "https://x.example.org"\n\n${blockA}\n`);
});

test('stripMirrorBlock / hasMirrorBlock: their file back as it was; undefined when only our block was in it', () => {
  const merged = mergeMirrorBlock(spegel, entryA);
  assert.is(hasMirrorBlock(merged), true);
  assert.is(hasMirrorBlock(spegel), false);
  assert.is(hasMirrorBlock(`  ${MIRROR_BLOCK_BEGIN}\n`), false, 'a whole line only');
  assert.is(stripMirrorBlock(merged), spegel);
  assert.is(stripMirrorBlock(spegel), spegel, 'nothing of ours: unchanged');
  assert.is(stripMirrorBlock(mergeMirrorBlock(undefined, entryA)), undefined);
  assert.is(stripMirrorBlock(''), undefined);
  assert.is(stripMirrorBlock(`${MIRROR_BLOCK_BEGIN}\n[host."https://x"]\n`), `${MIRROR_BLOCK_BEGIN}\n[host."https://x"]\n`, 'a block without its end is not touched');
  // a file of tables only: merge, strip and merge again give the same merge
  const tablesOnly = spegel.split('\n').slice(3).join('\n');
  const mergedTables = mergeMirrorBlock(tablesOnly, entryA);
  assert.is(mergedTables, `${blockA}\n\n${tablesOnly}`);
  assert.is(mergeMirrorBlock(stripMirrorBlock(mergedTables), entryA), mergedTables);
});

test('nodeTrustDirectories: a containerd directory per mirrored host (hosts.toml and marker, no CA); none for the other runtimes', () => {
  const dirs = nodeTrustDirectories([hubA, plain]);
  assert.equal(dirs.map((d) => `${d.root}/${d.host}: ${Object.keys(d.files).sort().join(' ')}${d.mirror ? ' (mirror)' : ''}`), [
    `containerd/${hubA.hostname}: ${NODE_TRUST_MARKER} ca.crt hosts.toml`,
    `containers/${hubA.hostname}: ${NODE_TRUST_MARKER} ca.crt`,
    `docker/${hubA.hostname}: ${NODE_TRUST_MARKER} ca.crt`,
    `containerd/${plain.hostname}: ${NODE_TRUST_MARKER} ca.crt hosts.toml`,
    `containers/${plain.hostname}: ${NODE_TRUST_MARKER} ca.crt`,
    `docker/${plain.hostname}: ${NODE_TRUST_MARKER} ca.crt`,
    `containerd/docker.io: ${NODE_TRUST_MARKER} hosts.toml (mirror)`,
    `containerd/quay.io: ${NODE_TRUST_MARKER} hosts.toml (mirror)`,
  ]);
  const docker = dirs[6];
  assert.equal(docker?.mirror, { host: 'docker.io', server: HUB, caches: [hubA.hostname] });
  assert.is(docker?.files['hosts.toml'], mirrorHostsToml({ host: 'docker.io', server: HUB, caches: [hubA.hostname] }));
  assert.is(dirs[0]?.mirror, undefined, "a registry's own directory is no mirror");
});

test('nodeTrustPlan: someone else\'s directory of a mirrored host is merged into, our block of a host no longer mirrored taken out', () => {
  const plan = nodeTrustPlan([hubB], [
    { root: 'containerd', host: 'docker.io', owned: false },
    { root: 'containerd', host: 'quay.io', owned: false, mirrorBlock: true },
    { root: 'containerd', host: 'ghcr.io', owned: true },
    { root: 'containerd', host: 'gcr.io', owned: false },
    { root: 'docker', host: 'docker.io', owned: false },
    { root: 'docker', host: hubB.hostname, owned: false },
  ]);
  assert.equal(plan.write.map((d) => `${d.root}/${d.host}`), [`containerd/${hubB.hostname}`, `containers/${hubB.hostname}`], 'not the foreign docker.io');
  assert.equal(plan.merge, [{ directory: { root: 'containerd', host: 'docker.io', owned: false }, mirror: { host: 'docker.io', server: 'https://mirror.gcr.io', caches: [hubB.hostname] } }]);
  assert.equal(plan.unmerge, [{ root: 'containerd', host: 'quay.io', owned: false, mirrorBlock: true }]);
  assert.equal(plan.remove, [{ root: 'containerd', host: 'ghcr.io', owned: true }], 'our own mirror directory of a host no longer mirrored');
  assert.equal(plan.foreign, [{ root: 'docker', host: hubB.hostname, owned: false }], 'a merged directory is not reported as foreign');

  // our own mirror directory (or none): written as a whole
  const owned = nodeTrustPlan([hubB], [{ root: 'containerd', host: 'docker.io', owned: true }]);
  assert.equal(owned.write.map((d) => `${d.root}/${d.host}`), [`containerd/${hubB.hostname}`, `containers/${hubB.hostname}`, `docker/${hubB.hostname}`, 'containerd/docker.io']);
  assert.equal([owned.merge, owned.unmerge, owned.remove, owned.foreign], [[], [], [], []]);
  // a merged block that is still wanted is merged again (its caches may have changed), not unmerged
  const still = nodeTrustPlan([hubB], [{ root: 'containerd', host: 'docker.io', owned: false, mirrorBlock: true }]);
  assert.equal(still.merge.map((m) => m.directory.host), ['docker.io']);
  assert.equal(still.unmerge, []);
  // nothing left: every block of ours taken out, our directories removed
  assert.equal(nodeTrustPlan([], [
    { root: 'containerd', host: 'docker.io', owned: false, mirrorBlock: true },
    { root: 'containerd', host: 'quay.io', owned: true },
    { root: 'containerd', host: 'gcr.io', owned: false },
  ]), {
    write: [], remove: [{ root: 'containerd', host: 'quay.io', owned: true }], foreign: [], merge: [],
    unmerge: [{ root: 'containerd', host: 'docker.io', owned: false, mirrorBlock: true }],
  });
});

test('encodeTrustSet / decodeTrustSet: mirrors round-trip; a set without mirrors is encoded as before', () => {
  const text = encodeTrustSet([plain, hubB, hubA]);
  assert.equal(JSON.parse(text), {
    cas: [CA1, CA2],
    hosts: { [hubA.hostname]: 0, [hubB.hostname]: 1, [plain.hostname]: 0 },
    mirrors: { [hubA.hostname]: { hosts: ['docker.io', 'quay.io'], server: HUB }, [hubB.hostname]: { hosts: ['docker.io'], server: 'https://mirror.gcr.io' } },
  });
  assert.equal(decodeTrustSet(text), normalizeTrustSet([hubA, hubB, plain]));
  assert.equal(decodeTrustSet(text)[0], { hostname: hubA.hostname, caPem: CA1, mirror: { hosts: ['docker.io', 'quay.io'], server: HUB } });
  assert.is(encodeTrustSet(decodeTrustSet(text)), text);
  assert.equal(JSON.parse(encodeTrustSet([plain])), { cas: [CA1], hosts: { [plain.hostname]: 0 } }, 'no mirrors key');
  const bad = JSON.stringify({ cas: [CA1], hosts: { [plain.hostname]: 0 }, mirrors: { [plain.hostname]: { hosts: 'docker.io', server: HUB } } });
  assert.throws(() => decodeTrustSet(bad), (e: Error) => e.message === `${NODE_TRUST_SET_ENV}: the mirror of ${plain.hostname} must be {"hosts": [host, …], "server": URL}`);
  const noServer = JSON.stringify({ cas: [CA1], hosts: { [plain.hostname]: 0 }, mirrors: { [plain.hostname]: { hosts: ['docker.io'] } } });
  assert.throws(() => decodeTrustSet(noServer), /the mirror of plain\.team\.svc\.example\.org must be/);
  const badHost = JSON.stringify({ cas: [CA1], hosts: { [plain.hostname]: 0 }, mirrors: { [plain.hostname]: { hosts: ['a/b'], server: HUB } } });
  assert.throws(() => decodeTrustSet(badHost), /is not an image host/);
});

test('trustSetDigest: unchanged for sets without mirrors; changed by a mirror, its hosts or its server; independent of order', () => {
  const plainB = { hostname: 'b.team.svc.example.org', caPem: CA2 };
  assert.is(trustSetDigest([plain, plainB]), digestWithoutMirrors([plain, plainB]));
  assert.is(trustSetDigest([plain]), digestWithoutMirrors([plain]));
  assert.is(trustSetDigest([]), digestWithoutMirrors([]));
  assert.is(trustSetDigest([{ ...plain, mirror: { hosts: [], server: HUB } }]), digestWithoutMirrors([plain]), 'a mirror without hosts is none');
  const withMirror = trustSetDigest([{ ...plain, mirror: { hosts: ['docker.io'], server: HUB } }]);
  assert.is.not(withMirror, digestWithoutMirrors([plain]));
  assert.is.not(trustSetDigest([{ ...plain, mirror: { hosts: ['docker.io', 'quay.io'], server: HUB } }]), withMirror, 'another host');
  assert.is.not(trustSetDigest([{ ...plain, mirror: { hosts: ['docker.io'], server: 'https://mirror.gcr.io' } }]), withMirror, 'another upstream');
  assert.is(trustSetDigest([{ ...plain, mirror: { hosts: ['DOCKER.io'], server: HUB } }]), withMirror, 'normalized hosts');
  assert.is(trustSetDigest([hubB, plain, hubA]), trustSetDigest([hubA, hubB, plain]));
  assert.is(trustSetDigest([{ ...hubA, mirror: { hosts: ['docker.io', 'Quay.io'], server: HUB } }]), trustSetDigest([hubA]));
});

test.run();
