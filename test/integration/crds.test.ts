// The four CRDs of kustomize/crds on a real kube-apiserver: they install, the examples are accepted,
// invalid objects are rejected by the API server itself (OpenAPI schema, CEL rules, strict field
// validation — no webhook involved) with a message naming the field, `kubectl explain` teaches the
// API and `kubectl get` shows the printer columns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { getObject, kubectlApply } from '../support/kubectl.ts';
import { GROUP_VERSION } from '../../functions/types.ts';

type Obj = Record<string, unknown>;

const root = fileURLToPath(new URL('../..', import.meta.url));
const CRD_NAMES = ['imageregistries', 'imageregistryaccounts', 'imagepushsecrets', 'imagepullsecrets'].map(
  (plural) => `${plural}.registry.mgoltzsche.github.com`,
);
// A real bcrypt hash (cost 10) of a random password nobody knows.
const HASH = '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq';

interface Setup {
  cluster: TestCluster;
  crds: Obj[];
}

// Set up once, inside the tests: uvu swallows errors thrown by before() hooks.
let setup: Promise<Setup> | undefined;
function installed(): Promise<Setup> {
  setup ??= installCrds();
  return setup;
}

async function installCrds(): Promise<Setup> {
  const cluster = await testCluster();
  const rendered = await cluster.kubectl(['kustomize', `${root}kustomize/crds`]);
  if (rendered.code !== 0) throw new Error(`kubectl kustomize kustomize/crds: ${rendered.stderr}`);
  const applied = await cluster.kubectl(
    ['apply', '--server-side', '--force-conflicts', '--field-manager=crds-test', '-f', '-'],
    { input: rendered.stdout },
  );
  if (applied.code !== 0) throw new Error(`applying the CRDs: ${applied.stderr}`);
  const waited = await cluster.kubectl(['wait', '--for', 'condition=Established', '--timeout=60s', ...CRD_NAMES.map((n) => `crd/${n}`)]);
  if (waited.code !== 0) throw new Error(`waiting for the CRDs: ${waited.stderr}`);
  return { cluster, crds: loadAll(rendered.stdout) as Obj[] };
}

const namespaces = new Map<string, Promise<string>>();
function namespace(purpose: string): Promise<string> {
  let ns = namespaces.get(purpose);
  if (!ns) {
    ns = installed().then(({ cluster }) => cluster.createNamespace(`crds-${purpose}`));
    namespaces.set(purpose, ns);
  }
  return ns;
}

function object(kind: string, name: string, spec?: unknown): Obj {
  return { apiVersion: GROUP_VERSION, kind, metadata: { name }, ...(spec === undefined ? {} : { spec }) };
}
const registry = (name: string, spec?: unknown) => object('ImageRegistry', name, spec);
const account = (name: string, spec?: unknown) => object('ImageRegistryAccount', name, spec);
const pushSecret = (name: string, spec?: unknown) => object('ImagePushSecret', name, spec);
const pullSecret = (name: string, spec?: unknown) => object('ImagePullSecret', name, spec);
const acl = (...entries: unknown[]) => ({ auth: { acl: entries } });

function spec(obj: Obj | undefined): Record<string, unknown> {
  return (obj?.spec ?? {}) as Record<string, unknown>;
}

const flat = (s: string) => s.replace(/\s+/g, ' ');

// ── the CRDs themselves ───────────────────────────────────────────────────────────────────────────

test('the CRDs from kustomize/crds are established with their names, short names and category', async () => {
  const { cluster } = await installed();
  const result = await cluster.kubectl(['get', 'crd', ...CRD_NAMES, '-o', 'json']);
  assert.is(result.code, 0, result.stderr);
  const items = (JSON.parse(result.stdout) as { items: Obj[] }).items;
  const names = items.map((crd) => {
    const status = crd.status as { acceptedNames: { kind: string; shortNames?: string[]; categories?: string[] } };
    const version = (crd.spec as { versions: { name: string; served: boolean; storage: boolean; subresources?: Obj }[] }).versions;
    assert.equal(version.map((v) => [v.name, v.served, v.storage, 'status' in (v.subresources ?? {})]), [['v1alpha1', true, true, true]]);
    assert.is((crd.spec as { scope: string }).scope, 'Namespaced');
    assert.equal(status.acceptedNames.categories, ['image-registry']);
    return `${status.acceptedNames.kind}:${status.acceptedNames.shortNames?.join(',')}`;
  });
  assert.equal(names.sort(), ['ImagePullSecret:ipullsecret', 'ImagePushSecret:ipushsecret', 'ImageRegistry:ireg', 'ImageRegistryAccount:iracc']);
});

test('every property of every CRD schema has a description', async () => {
  const { crds } = await installed();
  const missing: string[] = [];
  const walk = (schema: Obj, path: string) => {
    if (path !== '' && !schema.description && !path.endsWith('.metadata')) missing.push(path);
    for (const [key, child] of Object.entries((schema.properties ?? {}) as Record<string, Obj>)) walk(child, `${path}.${key}`);
    if (schema.items) walk(schema.items as Obj, `${path}[]`);
    if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties as Obj, `${path}{}`);
  };
  for (const crd of crds) {
    const kind = ((crd.spec as Obj).names as { kind: string }).kind;
    for (const version of (crd.spec as { versions: { schema: { openAPIV3Schema: Obj } }[] }).versions) {
      const schema = version.schema.openAPIV3Schema;
      if (!schema.description) missing.push(kind);
      walk(schema, kind);
    }
  }
  assert.equal(missing, []);
  assert.is(crds.length, 4);
});

// ── examples ──────────────────────────────────────────────────────────────────────────────────────

test('every example CR in kustomize/examples is accepted', async () => {
  const { cluster } = await installed();
  const ns = await namespace('examples');
  const rendered = await cluster.kubectl(['kustomize', `${root}kustomize/examples`]);
  assert.is(rendered.code, 0, rendered.stderr);
  const examples = loadAll(rendered.stdout) as { kind: string; metadata: { name: string } }[];
  assert.equal(examples.map((e) => `${e.kind}/${e.metadata.name}`).sort(), [
    'ImagePullSecret/example', 'ImagePushSecret/example', 'ImageRegistry/registry', 'ImageRegistryAccount/ci-bot',
  ]);
  const applied = await cluster.kubectl(['apply', '-f', '-'], { input: rendered.stdout, namespace: ns });
  assert.is(applied.code, 0, applied.stderr);
  for (const e of examples) assert.ok(await getObject(cluster, e.kind, e.metadata.name, ns), `${e.kind}/${e.metadata.name} stored`);
  assert.is(spec(await getObject(cluster, 'ImageRegistryAccount', 'ci-bot', ns)).password, HASH);
  // the example ImageRegistry's documented defaults match what the schema itself defaults
  assert.is(spec(await getObject(cluster, 'ImageRegistry', 'registry', ns)).replicas, 1);
});

// ── valid edge cases: the rules are not stricter than the API promises ────────────────────────────

const validRows: { name: string; manifest: Obj; check?: (stored: Obj) => void }[] = [
  {
    name: 'ImageRegistry without spec gets the schema default replicas 1',
    manifest: registry('no-spec'),
    check: (stored) => assert.is(spec(stored).replicas, 1),
  },
  { name: 'ImageRegistry with replicas 0 (stopped, data kept)', manifest: registry('stopped', { replicas: 0 }) },
  {
    name: 'ImageRegistry with 3 replicas on a ReadWriteMany volume and an integer storage size',
    manifest: registry('ha', { replicas: 3, persistentVolumeClaim: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: 10737418240 } } } }),
  },
  { name: 'ImageRegistry with 3 replicas and accessModes left to the defaults', manifest: registry('ha-defaulted', { replicas: 3 }) },
  {
    name: 'ImageRegistry with cert-manager ClusterIssuer for tls and an existing Secret for auth.ca',
    manifest: registry('certs', { tls: { secretName: 'registry-tls', issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } }, auth: { ca: { secretName: 'token-ca' } } }),
  },
  {
    name: 'ImageRegistry with an ACL using every match key, placeholders, a deny rule and a catch-all',
    manifest: registry('acl', acl(
      { match: { account: 'ci-*', type: 'repository', name: '${labels:namespace}/*', service: 'registry.*', ip: '10.0.0.0/8', labels: { accessMode: '/^(push|pull)$/' } }, actions: ['push', 'pull'], comment: 'namespaced CI' },
      { match: { ip: 'fd00::1' }, actions: [] },
      { match: { account: '/.*/' }, actions: ['*'] },
    )),
    check: (stored) => assert.is(((spec(stored).auth as { acl: unknown[] }).acl).length, 3),
  },
  { name: 'ImageRegistryAccount with a $2y$ hash, labels and ttl 1h30m', manifest: account('ci', { password: HASH.replace('$2b$', '$2y$'), labels: { accessMode: ['push'], team: ['a', 'b'] }, ttl: '1h30m' }) },
  { name: 'ImageRegistryAccount with a fractional ttl 1.5h', manifest: account('fractional', { password: HASH, ttl: '1.5h' }) },
  { name: 'ImagePushSecret without spec (default registry)', manifest: pushSecret('default-registry') },
  { name: 'ImagePullSecret naming only the registry namespace', manifest: pullSecret('other-ns', { registryRef: { namespace: 'infra' } }) },
  { name: 'ImagePullSecret handing its Secret to named ServiceAccounts', manifest: pullSecret('to-accounts', { serviceAccounts: ['default', 'builder.ci'] }) },
  { name: 'ImagePullSecret handing its Secret to every ServiceAccount', manifest: pullSecret('to-all', { serviceAccounts: ['*'] }) },
];

for (const row of validRows) {
  test(`accepted: ${row.name}`, async () => {
    const { cluster } = await installed();
    const ns = await namespace('valid');
    const result = await kubectlApply(cluster, row.manifest, ns);
    assert.is(result.code, 0, result.stderr);
    const meta = row.manifest.metadata as { name: string };
    const stored = await getObject(cluster, row.manifest.kind as string, meta.name, ns);
    assert.ok(stored, 'stored');
    row.check?.(stored);
  });
}

test('accepted: ImageRegistryAccount metadata may change while its spec stays', async () => {
  const { cluster } = await installed();
  const ns = await namespace('valid');
  const manifest = account('relabelled', { password: HASH });
  assert.is((await kubectlApply(cluster, manifest, ns)).code, 0);
  const result = await kubectlApply(cluster, { ...manifest, metadata: { name: 'relabelled', labels: { owner: 'ci' } } }, ns);
  assert.is(result.code, 0, result.stderr);
  assert.equal(((await getObject(cluster, 'ImageRegistryAccount', 'relabelled', ns))?.metadata as Obj).labels, { owner: 'ci' });
});

// ── invalid objects: each rejected by the API server, naming the field ───────────────────────────

interface InvalidRow {
  name: string;
  manifest: Obj;
  /** texts stderr must contain: the field path first */
  expect: string[];
  /** applied (and accepted) first: the row is then an update */
  before?: Obj;
  /** extra kubectl apply flags */
  args?: string[];
  /** a merge patch of the status subresource of `manifest` (created first) */
  statusPatch?: Obj;
}

const pvc = (persistentVolumeClaim: unknown) => ({ persistentVolumeClaim });
const condition = (extra: Obj) => ({ type: 'Ready', status: 'True', lastTransitionTime: '2025-01-01T00:00:00Z', reason: 'Available', message: 'ok', ...extra });

const invalidRows: InvalidRow[] = [
  // ImageRegistry
  { name: 'replicas as a string', manifest: registry('r-string', { replicas: 'two' }), expect: ['spec.replicas', 'integer'] },
  { name: 'negative replicas', manifest: registry('r-negative', { replicas: -1 }), expect: ['spec.replicas', 'greater than or equal to 0'] },
  { name: 'fractional replicas', manifest: registry('r-fraction', { replicas: 1.5 }), expect: ['spec.replicas', 'integer'] },
  {
    name: 'two replicas on a ReadWriteOnce volume',
    manifest: registry('r-rwo', { replicas: 2, ...pvc({ accessModes: ['ReadWriteOnce'] }) }),
    expect: ['spec.persistentVolumeClaim.accessModes', 'ReadWriteMany'],
  },
  { name: 'read-only access mode', manifest: registry('r-rox', pvc({ accessModes: ['ReadOnlyMany'] })), expect: ['spec.persistentVolumeClaim.accessModes[0]', 'Unsupported value'] },
  { name: 'duplicate access mode', manifest: registry('r-dup', pvc({ accessModes: ['ReadWriteOnce', 'ReadWriteOnce'] })), expect: ['spec.persistentVolumeClaim.accessModes[1]', 'Duplicate value'] },
  { name: 'storage size that is no quantity', manifest: registry('r-size', pvc({ resources: { requests: { storage: 'lots' } } })), expect: ['spec.persistentVolumeClaim.resources.requests.storage'] },
  { name: 'negative storage size', manifest: registry('r-size-neg', pvc({ resources: { requests: { storage: '-5Gi' } } })), expect: ['spec.persistentVolumeClaim.resources.requests.storage'] },
  { name: 'deleteClaim as a string', manifest: registry('r-delete', pvc({ deleteClaim: 'yes' })), expect: ['spec.persistentVolumeClaim.deleteClaim', 'boolean'] },
  { name: 'tls.issuerRef of an unknown kind', manifest: registry('r-kind', { tls: { issuerRef: { name: 'ca', kind: 'Certificate' } } }), expect: ['spec.tls.issuerRef.kind', 'Unsupported value', 'ClusterIssuer'] },
  { name: 'tls.issuerRef without a name', manifest: registry('r-noname', { tls: { issuerRef: { kind: 'Issuer' } } }), expect: ['spec.tls.issuerRef.name', 'Required value'] },
  { name: 'tls.secretName that is no Secret name', manifest: registry('r-secret', { tls: { secretName: 'My_Secret' } }), expect: ['spec.tls.secretName'] },
  { name: 'auth.ca.issuerRef kind in lower case', manifest: registry('r-ca-kind', { auth: { ca: { issuerRef: { name: 'ca', kind: 'issuer' } } } }), expect: ['spec.auth.ca.issuerRef.kind', 'Unsupported value'] },
  { name: 'ACL action docker_auth does not grant here', manifest: registry('r-action', acl({ match: { account: 'a' }, actions: ['delete'] })), expect: ['spec.auth.acl[0].actions[0]', 'Unsupported value'] },
  { name: "ACL '*' next to other actions", manifest: registry('r-star', acl({ match: { account: 'a' }, actions: ['push', '*'] })), expect: ['spec.auth.acl[0].actions', 'must stand alone'] },
  { name: 'ACL entry without actions', manifest: registry('r-noactions', acl({ match: { account: 'a' } })), expect: ['spec.auth.acl[0].actions', 'Required value'] },
  { name: 'ACL entry without match', manifest: registry('r-nomatch', acl({ actions: ['pull'] })), expect: ['spec.auth.acl[0].match', 'Required value'] },
  { name: 'ACL entry with an empty match', manifest: registry('r-emptymatch', acl({ match: {}, actions: ['pull'] })), expect: ['spec.auth.acl[0].match', 'at least one of'] },
  { name: 'ACL match on empty labels', manifest: registry('r-emptylabels', acl({ match: { labels: {} }, actions: ['pull'] })), expect: ['spec.auth.acl[0].match', 'at least one of'] },
  {
    name: 'ACL match key docker_auth does not know (kubectl strict field validation)',
    manifest: registry('r-unknownkey', acl({ match: { account: 'a' }, actions: ['pull'] }, { match: { repository: 'x' }, actions: ['pull'] })),
    expect: ['unknown field "spec.auth.acl[1].match.repository"'],
  },
  {
    name: 'ACL match with only an unknown key, sent without field validation (pruned to empty)',
    manifest: registry('r-pruned', acl({ match: { repository: 'x' }, actions: ['pull'] })),
    args: ['--validate=false'],
    expect: ['spec.auth.acl[0].match', 'at least one of'],
  },
  { name: 'ACL match on an IP that is no IP', manifest: registry('r-ip', acl({ match: { ip: '10.0.0.300' }, actions: ['pull'] })), expect: ['spec.auth.acl[0].match.ip', 'IP address or a CIDR'] },
  { name: 'ACL label pattern as a number', manifest: registry('r-labelnum', acl({ match: { labels: { accessMode: 1 } }, actions: ['pull'] })), expect: ['spec.auth.acl[0].match.labels.accessMode', 'string'] },
  // kubectl's strict field validation would report acl.match as an unknown field; without it the schema's type check speaks
  { name: 'ACL as an object', manifest: registry('r-aclobj', { auth: { acl: { match: { account: 'a' }, actions: ['pull'] } } }), args: ['--validate=false'], expect: ['spec.auth.acl', 'must be of type array'] },
  { name: 'misspelt spec field (kubectl strict field validation)', manifest: registry('r-typo', { replica: 2 }), expect: ['unknown field "spec.replica"'] },
  { name: 'ImageRegistry named with a leading digit', manifest: registry('1registry'), expect: ['metadata.name: Invalid value: "1registry"', 'it names the registry\'s Service'] },
  { name: 'ImageRegistry named with a dot', manifest: registry('my.registry'), expect: ['metadata.name: Invalid value: "my.registry"', 'lower-case letter'] },
  { name: 'ImageRegistry name longer than 52 characters', manifest: registry('r'.repeat(53)), expect: ['metadata.name: Too long'] },
  { name: 'bucket name with upper case', manifest: registry('r-bucket', { storage: { s3: { bucket: 'Images' } } }), expect: ['spec.storage.s3.bucket', 'should match'] },
  { name: 'bucket without a name', manifest: registry('r-nobucket', { storage: { s3: { region: 'eu-1' } } }), expect: ['spec.storage.s3.bucket', 'Required value'] },
  { name: 'credentialsSecret without a name', manifest: registry('r-nocreds', { storage: { s3: { bucket: 'images', credentialsSecret: { accessKeyIDKey: 'id' } } } }), expect: ['spec.storage.s3.credentialsSecret.name', 'Required value'] },
  { name: 'an endpoint with a path', manifest: registry('r-endpoint', { storage: { s3: { bucket: 'images', endpoint: 'https://s3.example.org/images' } } }), expect: ['spec.storage.s3.endpoint', 'should match'] },
  {
    name: 'a bucket and a volume at once',
    manifest: registry('r-both', { storage: { s3: { bucket: 'images' } }, ...pvc({ accessModes: ['ReadWriteOnce'] }) }),
    expect: ['spec.persistentVolumeClaim', 'must be left out with storage.s3'],
  },
  {
    name: 'a volume registry switched to a bucket',
    before: registry('r-switch', { replicas: 1, ...pvc({ accessModes: ['ReadWriteOnce'] }) }),
    manifest: registry('r-switch', { storage: { s3: { bucket: 'images' } } }),
    expect: ['spec.storage.s3', 'cannot switch between its volume and a bucket'],
  },
  {
    name: 'the bucket of a bucket registry changed',
    before: registry('r-rebucket', { replicas: 1, storage: { s3: { bucket: 'images', region: 'us-east-1' } } }),
    manifest: registry('r-rebucket', { storage: { s3: { bucket: 'other' } } }),
    expect: ['spec.storage.s3.bucket', 'is immutable'],
  },
  // ImageRegistryAccount
  { name: 'account without spec', manifest: account('a-nospec'), expect: ['spec', 'Required value'] },
  { name: 'account without password', manifest: account('a-nopassword', { labels: { accessMode: ['pull'] } }), expect: ['spec.password', 'Required value'] },
  { name: 'account with a plain password', manifest: account('a-plain', { password: 'secret' }), expect: ['spec.password', 'never the plain password', 'htpasswd'] },
  { name: 'account with a truncated bcrypt hash', manifest: account('a-short', { password: HASH.slice(0, -1) }), expect: ['spec.password', 'should match'] },
  { name: 'account with an unknown bcrypt variant', manifest: account('a-variant', { password: HASH.replace('$2b$', '$2z$') }), expect: ['spec.password', 'should match'] },
  { name: 'account with an Apache MD5 hash', manifest: account('a-md5', { password: '$apr1$hVb9cVw8$tsPgzY6/AWHDCJl4sZvy9/' }), expect: ['spec.password', 'never the plain password'] },
  { name: 'account ttl in days', manifest: account('a-days', { password: HASH, ttl: '2d' }), expect: ['spec.ttl', 'should match'] },
  { name: 'account ttl of zero', manifest: account('a-zero', { password: HASH, ttl: '0s' }), expect: ['spec.ttl', 'longer than zero'] },
  { name: 'negative account ttl', manifest: account('a-negative', { password: HASH, ttl: '-1h' }), expect: ['spec.ttl', 'should match'] },
  { name: 'account ttl as a number', manifest: account('a-ttlnum', { password: HASH, ttl: 48 }), expect: ['spec.ttl', 'string'] },
  { name: 'account label value not a list', manifest: account('a-label', { password: HASH, labels: { accessMode: 'push' } }), expect: ['spec.labels.accessMode', 'array'] },
  {
    name: 'account password changed after creation',
    before: account('a-immutable', { password: HASH }),
    manifest: account('a-immutable', { password: HASH.replace('$2b$', '$2y$') }),
    expect: ['spec', 'is immutable'],
  },
  {
    name: 'account ttl added after creation',
    before: account('a-immutable-ttl', { password: HASH }),
    manifest: account('a-immutable-ttl', { password: HASH, ttl: '1h' }),
    expect: ['spec', 'is immutable'],
  },
  // ImagePushSecret / ImagePullSecret
  { name: 'push secret registryRef.name in upper case', manifest: pushSecret('p-name', { registryRef: { name: 'Registry' } }), expect: ['spec.registryRef.name', 'should match'] },
  { name: 'pull secret registryRef.namespace with an underscore', manifest: pullSecret('p-ns', { registryRef: { namespace: 'team_a' } }), expect: ['spec.registryRef.namespace', 'should match'] },
  { name: 'pull secret registryRef as a string', manifest: pullSecret('p-ref', { registryRef: 'registry' }), expect: ['spec.registryRef', 'object'] },
  { name: 'pull secret serviceAccounts naming an invalid ServiceAccount', manifest: pullSecret('p-sa-name', { serviceAccounts: ['default', 'Build_Bot'] }), expect: ['spec.serviceAccounts[1]', 'should match'] },
  { name: "pull secret serviceAccounts with '*' beside a name", manifest: pullSecret('p-sa-star', { serviceAccounts: ['*', 'default'] }), expect: ['spec.serviceAccounts', "'*' (every ServiceAccount of the namespace) must be the only entry"] },
  { name: 'pull secret serviceAccounts listing a name twice', manifest: pullSecret('p-sa-twice', { serviceAccounts: ['ci', 'ci'] }), expect: ['spec.serviceAccounts[1]', 'Duplicate value'] },
  { name: 'pull secret serviceAccounts as a string', manifest: pullSecret('p-sa-string', { serviceAccounts: 'default' }), expect: ['spec.serviceAccounts', 'array'], args: ['--validate=false'] },
  { name: 'push secret named with a dot', manifest: pushSecret('p.dot'), expect: ['metadata.name: Invalid value: "p.dot"', 'part of account names'] },
  // status, written by the operator's Jobs through the status subresource
  {
    name: 'push secret status condition with an unknown status',
    manifest: pushSecret('s-condition'),
    statusPatch: { status: { conditions: [condition({ status: 'Yes' })] } },
    expect: ['status.conditions[0].status', 'Unsupported value'],
  },
  {
    name: 'pull secret status with a negative rotation',
    manifest: pullSecret('s-rotation'),
    statusPatch: { status: { rotation: -1 } },
    expect: ['status.rotation', 'greater than or equal to 0'],
  },
  {
    name: 'registry status condition without a reason',
    manifest: registry('s-reason'),
    statusPatch: { status: { conditions: [condition({ reason: undefined })] } },
    expect: ['status.conditions[0].reason', 'Required value'],
  },
];

for (const row of invalidRows) {
  test(`rejected: ${row.name}`, async () => {
    const { cluster } = await installed();
    const ns = await namespace('invalid');
    const kind = row.manifest.kind as string;
    const name = (row.manifest.metadata as { name: string }).name;
    let result;
    if (row.statusPatch) {
      const created = await kubectlApply(cluster, row.manifest, ns);
      assert.is(created.code, 0, created.stderr);
      result = await cluster.kubectl(
        ['patch', kind, name, '--subresource=status', '--type=merge', '-p', JSON.stringify(row.statusPatch)],
        { namespace: ns },
      );
    } else {
      if (row.before) {
        const created = await kubectlApply(cluster, row.before, ns);
        assert.is(created.code, 0, created.stderr);
      }
      result = await kubectlApply(cluster, row.manifest, ns, row.args);
    }
    assert.is.not(result.code, 0, `accepted: ${result.stdout}`);
    assert.match(result.stderr, /is invalid|Error from server/);
    for (const text of row.expect) assert.ok(result.stderr.includes(text), `stderr names "${text}":\n${result.stderr}`);
    const stored = await getObject(cluster, kind, name, ns);
    if (row.before) assert.equal(stored?.spec, row.before.spec, 'the stored spec is unchanged');
    else if (row.statusPatch) assert.is(stored?.status, undefined, 'the status is unchanged');
    else assert.is(stored, undefined, 'nothing was stored');
  });
}

test(`the table holds at least 24 invalid objects (${invalidRows.length})`, () => {
  assert.ok(invalidRows.length >= 24);
  assert.is(new Set(invalidRows.map((r) => `${r.manifest.kind}/${(r.manifest.metadata as { name: string }).name}`)).size, invalidRows.length, 'unique object names');
});

// ── kubectl explain and printer columns ───────────────────────────────────────────────────────────

async function explain(field: string): Promise<string> {
  const { cluster } = await installed();
  // the API server publishes a new CRD's OpenAPI a moment after it is established
  for (let attempt = 0; ; attempt++) {
    const result = await cluster.kubectl(['explain', field]);
    if (result.code === 0 || attempt >= 30) {
      assert.is(result.code, 0, result.stderr);
      return flat(result.stdout);
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

test('kubectl explain imageregistry.spec.tls prints the descriptions', async () => {
  const out = await explain('imageregistry.spec.tls');
  assert.match(out, 'The TLS server certificate clients see at <name>.<namespace>.<dnsZone>');
  assert.match(out, 'issuerRef');
  assert.match(out, 'cert-manager issuer that issues the certificate');
  assert.match(out, 'secretName');
  assert.match(out, 'Default <name>-tls');
});

test('kubectl explain imageregistry.spec.storage.s3 tells bucket, credentials and workload identity', async () => {
  const out = await explain('imageregistry.spec.storage.s3');
  assert.match(out, 'An existing S3-compatible bucket');
  assert.match(out, 'credentialsSecret');
  assert.match(out, "the driver's default credential chain");
  assert.match(out, 'serviceAccountName');
  assert.match(await explain('imageregistry.spec.storage'), 'switching an existing registry is refused');
});

test('kubectl explain teaches the account password, the ACL and the push secret', async () => {
  assert.match(await explain('imageregistryaccount.spec.password'), `htpasswd -nbBC 10 "" 'my-password' | tr -d ':\\n'`);
  const match = await explain('imageregistry.spec.auth.acl.match');
  for (const key of ['account', 'type', 'name', 'ip', 'service', 'labels']) assert.match(match, new RegExp(`\\b${key}\\b`));
  assert.match(match, 'At least one key must be set');
  assert.match(await explain('imagepushsecret.spec.registryRef'), 'default registry');
  assert.match(await explain('imagepullsecret'), '<name>-image-pull-secret (type kubernetes.io/dockerconfigjson)');
  const accounts = await explain('imagepullsecret.spec.serviceAccounts');
  for (const text of ['imagePullSecrets', '["*"]', 'never touched', 'recreate']) assert.match(accounts, text);
});

async function patchStatus(kind: string, name: string, ns: string, status: Obj): Promise<void> {
  const { cluster } = await installed();
  const result = await cluster.kubectl(['patch', kind, name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })], { namespace: ns });
  assert.is(result.code, 0, result.stderr);
}

function table(stdout: string): string[][] {
  return stdout.trim().split('\n').map((line) => line.trim().split(/\s{2,}/));
}

test('kubectl get imageregistry shows Ready, Hostname and Age (wide: Replicas, Reason)', async () => {
  const { cluster } = await installed();
  const ns = await namespace('columns');
  assert.is((await kubectlApply(cluster, registry('registry'), ns)).code, 0);
  const hostname = `registry.${ns}.svc.example.org`;
  await patchStatus('imageregistry', 'registry', ns, { hostname, conditions: [condition({ status: 'False', reason: 'RolloutPending' })] });
  const plain = await cluster.kubectl(['get', 'imageregistry'], { namespace: ns });
  assert.is(plain.code, 0, plain.stderr);
  const rows = table(plain.stdout);
  assert.equal(rows[0], ['NAME', 'READY', 'HOSTNAME', 'AGE']);
  assert.equal(rows[1]?.slice(0, 3), ['registry', 'False', hostname]);
  const wide = table((await cluster.kubectl(['get', 'ireg', '-o', 'wide'], { namespace: ns })).stdout);
  assert.equal(wide[0], ['NAME', 'READY', 'HOSTNAME', 'REPLICAS', 'REASON', 'AGE']);
  assert.equal(wide[1]?.slice(0, 5), ['registry', 'False', hostname, '1', 'RolloutPending']);
});

test('kubectl get imagepushsecrets/imagepullsecrets -o wide shows Ready, Registry, Rotation, Rotated, Expires, Reason, Age', async () => {
  const { cluster } = await installed();
  const ns = await namespace('columns');
  const hostname = `registry.${ns}.svc.example.org`;
  for (const [kind, plural] of [['ImagePushSecret', 'imagepushsecrets'], ['ImagePullSecret', 'imagepullsecrets']] as const) {
    assert.is((await kubectlApply(cluster, object(kind, 'example'), ns)).code, 0);
    await patchStatus(plural, 'example', ns, {
      conditions: [condition({})],
      rotation: 3,
      rotationDate: new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      expiryDate: '2030-01-02T03:04:05Z',
      registry: { name: 'registry', namespace: ns, hostname },
    });
    const result = await cluster.kubectl(['get', plural, '-o', 'wide'], { namespace: ns });
    assert.is(result.code, 0, result.stderr);
    const rows = table(result.stdout);
    assert.equal(rows[0], ['NAME', 'READY', 'REGISTRY', 'ROTATION', 'ROTATED', 'EXPIRES', 'REASON', 'AGE'], plural);
    assert.equal(rows[1]?.slice(0, 7), ['example', 'True', hostname, '3', '3d', '2030-01-02T03:04:05Z', 'Available'], plural);
  }
});

test('kubectl get imageregistryaccounts shows TTL and Age; the category lists all four kinds', async () => {
  const { cluster } = await installed();
  const ns = await namespace('columns');
  assert.is((await kubectlApply(cluster, account('ci-bot', { password: HASH, ttl: '48h' }), ns)).code, 0);
  const rows = table((await cluster.kubectl(['get', 'iracc'], { namespace: ns })).stdout);
  assert.equal(rows[0], ['NAME', 'TTL', 'AGE']);
  assert.equal(rows[1]?.slice(0, 2), ['ci-bot', '48h']);
  const all = await cluster.kubectl(['get', 'image-registry', '-o', 'name'], { namespace: ns });
  assert.is(all.code, 0, all.stderr);
  assert.equal(all.stdout.trim().split('\n').sort(), [
    'imagepullsecret.registry.mgoltzsche.github.com/example',
    'imagepushsecret.registry.mgoltzsche.github.com/example',
    'imageregistry.registry.mgoltzsche.github.com/registry',
    'imageregistryaccount.registry.mgoltzsche.github.com/ci-bot',
  ]);
});

test.run();
