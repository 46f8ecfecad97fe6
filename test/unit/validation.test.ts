import bcrypt from 'bcryptjs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { globProblem, matchPatternProblem, regexpProblem } from '../../functions/acl-patterns.ts';
import { validateImageRegistryAccount } from '../../functions/validation/account.ts';
import { validateAcl } from '../../functions/validation/acl.ts';
import { isBcryptHash, isIpOrCidr, isPositiveQuantity, quantityValue } from '../../functions/validation/formats.ts';
import { validateImageSecret } from '../../functions/validation/image-secret.ts';
import { validateImageRegistry } from '../../functions/validation/registry.ts';

const hash = bcrypt.hashSync('s3cret-password', 4);

function registry(spec: unknown, name = 'registry') {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name, namespace: 'ns' }, spec };
}
function account(spec: unknown) {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistryAccount', metadata: { name: 'a', namespace: 'ns' }, spec };
}
function pushSecret(spec: unknown, name = 'example') {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImagePushSecret', metadata: { name, namespace: 'ns' }, spec };
}
function acl(entries: unknown) {
  return validateAcl(entries, 'spec.auth.acl');
}
/** asserts exactly one problem, for `field`, mentioning `text` */
function oneProblem(problems: string[], fieldPath: string, text = '') {
  assert.is(problems.length, 1, `expected one problem, got ${JSON.stringify(problems)}`);
  assert.ok(problems[0]?.startsWith(`${fieldPath}: `), `problem ${problems[0]} should start with ${fieldPath}`);
  assert.ok(problems[0]?.includes(text), `problem ${problems[0]} should mention ${text}`);
}

// --- value checks ----------------------------------------------------------------------------

test('isBcryptHash accepts the hashes Go bcrypt verifies', () => {
  assert.ok(isBcryptHash(hash));
  assert.ok(isBcryptHash(hash.replace(/^\$2b/, '$2y')));
  assert.ok(isBcryptHash(hash.replace(/^\$2b/, '$2a')));
  assert.not.ok(isBcryptHash(hash.replace('$04$', '$03$')));
  assert.not.ok(isBcryptHash(hash.slice(0, -1)));
  assert.ok(isBcryptHash(hash.replace(/^\$2b/, '$2x')), 'Go bcrypt accepts any minor version');
  assert.ok(isBcryptHash(hash.replace(/^\$2b/, '$2')));
  assert.not.ok(isBcryptHash(hash.replace(/^\$2b/, '$3a')));
  assert.not.ok(isBcryptHash(hash.replace('$04$', '$32$')));
  assert.not.ok(isBcryptHash('password'));
});

test('isIpOrCidr follows Go net.ParseIP / ParseCIDR', () => {
  for (const ok of ['10.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '::ffff:1.2.3.4', '2001:db8::/128']) assert.ok(isIpOrCidr(ok), ok);
  for (const bad of ['10.0.0', '010.0.0.1', '10.0.0.0/33', 'fd00::/129', 'fe80::1%eth0', '10.0.0.0/8/1', '10.0.0.0/', 'example.org', '']) {
    assert.not.ok(isIpOrCidr(bad), bad);
  }
});

test('isPositiveQuantity accepts Kubernetes quantities above zero', () => {
  for (const ok of ['8Gi', '500M', '1', '1.5Ti', '1e9', '.5Gi']) assert.ok(isPositiveQuantity(ok), ok);
  for (const bad of ['0', '0Gi', '-1Gi', '8GB', 'Gi', '', '8 Gi']) assert.not.ok(isPositiveQuantity(bad), bad);
  assert.not.ok(isPositiveQuantity(8));
});

test('quantityValue reads binary, decimal and exponent suffixes', () => {
  assert.is(quantityValue('8Gi'), 8 * 2 ** 30);
  assert.is(quantityValue('500M'), 5e8);
  assert.is(quantityValue('1e9'), 1e9);
  assert.is(quantityValue('.5Ki'), 512);
  assert.is(quantityValue('1500m'), 1.5);
  assert.ok(quantityValue('9Gi')! > quantityValue('9G')!, '9Gi is more than 9G');
  for (const bad of ['-1Gi', '8GB', 'Gi', '', 8]) assert.is(quantityValue(bad), undefined, String(bad));
});

test('regexpProblem accepts Go regexp syntax, including what JavaScript lacks', () => {
  for (const ok of ['.+', '^(foo|bar)$', '[a-z]+/[^/]+', '(?i)foo', '(?i:foo)bar', '(?P<ns>[a-z]+)/x', '(?<ns>[a-z]+)', '\\Afoo\\z',
    '[[:alpha:]]+', '\\pL+', '\\p{Greek}', '\\Qa.b\\E', '\\x41\\x{263a}', 'a{2,1000}', '[]a]', '${account}/.*', '${labels:group}-shared', '(?U)a+',
    '(?P<n>a)(?P<n>b)', '(?:' + 'a*'.repeat(450) + '){1000}']) {
    assert.is(regexpProblem(ok), undefined, ok);
  }
});

test('regexpProblem refuses what Go refuses, in Go\'s words', () => {
  const cases: [string, string][] = [
    ['foo(?=bar)', 'invalid or unsupported Perl syntax: `(?=`'],
    ['foo(?!bar)', 'invalid or unsupported Perl syntax'],
    ['(?<=a)b', 'invalid named capture'],
    ['(?<!a)b', 'invalid named capture'],
    ['(a)\\1', 'invalid escape sequence: `\\1`'],
    ['(?>a)', 'invalid or unsupported Perl syntax'],
    ['\\e', 'invalid escape sequence'],
    ['a{1001}', 'invalid repeat count'],
    ['(a{100}){11}', 'invalid repeat count'],
    ['(foo', 'missing closing )'],
    ['foo)', 'unexpected )'],
    ['a**', 'invalid nested repetition operator'],
    ['[a-', 'missing closing ]'],
    ['[a-\\d]+', 'invalid escape sequence: `\\d`'],
    ['\\p{Foo}', 'invalid character class range: `\\p{Foo}`'],
    ['\\p{Letter}', 'invalid character class range'],
    ['[[:nope:]]', 'invalid character class range'],
    ['\\xZZ', 'invalid escape sequence'],
    ['x\\', 'trailing backslash'],
    ['(?z)', 'invalid or unsupported Perl syntax'],
    ['('.repeat(1001) + ')'.repeat(1001), 'expression nests too deeply'],
    ['(?:' + 'b'.repeat(3356) + '){1000}', 'expression too large'],
    ['\uD800', 'invalid UTF-8'],
  ];
  for (const [bad, text] of cases) {
    const problem = regexpProblem(bad);
    assert.type(problem, 'string', bad);
    assert.ok(problem?.includes(text), `${bad.slice(0, 40)}: ${problem?.slice(0, 200)}`);
  }
});

test('globProblem reports patterns Go path.Match refuses', () => {
  for (const ok of ['*', 'team-?/*', '[a-z]*', '[^a]', '\\*', '${account}/*', '[\\]]']) assert.is(globProblem(ok), undefined, ok);
  for (const bad of ['[', '[a', '[]', '[-a]', 'a\\', '[a-]']) assert.type(globProblem(bad), 'string', bad);
});

test('matchPatternProblem treats /.../ as a regex and anything else as a glob', () => {
  assert.is(matchPatternProblem('/.+/'), undefined);
  assert.ok(matchPatternProblem('/(?=a)/')?.startsWith('invalid regular expression'));
  assert.ok(matchPatternProblem('[')?.startsWith('invalid glob'));
  assert.is(matchPatternProblem('//'), undefined, '"//" is a glob for docker_auth');
});

test('matchPatternProblem checks placeholders after replacing them as docker_auth does', () => {
  // ${account}, ${name}, ${service} are put in regexp-quoted; label values and capture groups as they are
  for (const ok of ['/^${labels:namespace}/.+$/', '${labels:namespace}/*', '/^${account}$/', '${account}/*', '/^${service}$/', 'team-?/*']) {
    assert.is(matchPatternProblem(ok, 'name'), undefined, ok);
  }
  assert.is(matchPatternProblem('/^${name:1}$/', 'account', { account: '/^${name:1}$/', name: '/^([a-z]+)\\/.*$/' }), undefined);
  // compiles as written, but not once ${account} is in: `\p` + `ush.…` → docker_auth never matches
  assert.match(matchPatternProblem('/^\\${account}$/', 'name') ?? '', /once its placeholders are replaced .*invalid character class range/);
  assert.match(matchPatternProblem('/[z${labels:team}]/', 'name') ?? '', /"\/\[zteam-a\]\/".*invalid character class range: `m-a`/);
  assert.match(matchPatternProblem('${labels:team}', 'labels') ?? '', /does not replace \$\{labels:team\} in match.labels/);
  assert.match(matchPatternProblem('/^${nmae}$/', 'name') ?? '', /\$\{nmae\} would stay as written/);
  assert.match(matchPatternProblem('/^${name:2}$/', 'account', { account: '/^${name:2}$/', name: '/^([a-z]+)\\/.*$/' }) ?? '', /1 capture group/);
  assert.match(matchPatternProblem('/^${name:1}$/', 'account', { account: '/^${name:1}$/', name: 'team-*' }) ?? '', /match.name must be a \/regexp\//);
  assert.match(matchPatternProblem('/(/', 'name') ?? '', /^invalid regular expression: missing closing \): .*refuses the whole configuration/);
});

// --- ACL -------------------------------------------------------------------------------------

test('acl: the default ACL and rich valid entries pass', () => {
  assert.equal(
    acl([
      { match: { labels: { accessMode: 'push' } }, actions: ['push', 'pull'] },
      { match: { labels: { accessMode: 'pull' } }, actions: ['pull'] },
      { match: { account: '/.+/', type: 'registry', name: 'catalog' }, actions: ['*'], comment: 'catalog' },
      { match: { ip: '10.0.0.0/8', service: 'registry.ns.svc.example.org', name: '${account}/*' }, actions: ['pull'] },
      { match: { type: 'repository', labels: { team: '/^(a|b)$/' } }, actions: ['push'] },
      { match: { account: 'ci-bot' }, actions: [], comment: 'deny rule: stops the search' },
      { match: { account: '/.*/' }, actions: ['pull'] },
    ]),
    [],
  );
});

test('acl: an unknown match key is refused (docker_auth would drop it and match everything)', () => {
  oneProblem(acl([{ match: { account: 'a', namespace: 'x' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.namespace', 'unknown match key');
  const onlyUnknown = acl([{ match: { namespace: 'x' }, actions: ['pull'] }]);
  assert.is(onlyUnknown.length, 2, JSON.stringify(onlyUnknown));
  assert.ok(onlyUnknown[0]?.startsWith('spec.auth.acl[0].match.namespace: unknown match key'));
  assert.ok(onlyUnknown[1]?.startsWith('spec.auth.acl[0].match: must set at least one of'));
});

test('acl: an empty match is refused (it matches every request); /.*/ says so on purpose', () => {
  oneProblem(acl([{ match: {}, actions: ['pull'] }]), 'spec.auth.acl[0].match', "account: '/.*/'");
  oneProblem(acl([{ match: { labels: {} }, actions: ['pull'] }]), 'spec.auth.acl[0].match', 'empty match');
  assert.equal(acl([{ match: { account: '/.*/' }, actions: ['pull'] }]), []);
});

test('acl: unknown entry fields are refused (a typo in actions would leave none)', () => {
  const problems = acl([{ match: { account: 'a' }, action: ['pull'] }]);
  assert.ok(problems.includes('spec.auth.acl[0].action: unknown field (allowed: match, actions, comment)'), JSON.stringify(problems));
  assert.ok(problems.some((p) => p.startsWith('spec.auth.acl[0].actions: required')));
});

test('acl: match is required and must be an object', () => {
  oneProblem(acl([{ actions: ['pull'] }]), 'spec.auth.acl[0].match', 'required');
  oneProblem(acl([{ match: 'all', actions: ['pull'] }]), 'spec.auth.acl[0].match', 'required');
});

test('acl: actions are required, push/pull or * alone; [] is a deny rule', () => {
  const m = { account: 'a' };
  oneProblem(acl([{ match: m }]), 'spec.auth.acl[0].actions', 'required');
  oneProblem(acl([{ match: m, actions: ['pull', 'delete'] }]), 'spec.auth.acl[0].actions[1]', 'push, pull, *');
  oneProblem(acl([{ match: m, actions: 'pull' }]), 'spec.auth.acl[0].actions');
  oneProblem(acl([{ match: m, actions: ['push', '*'] }]), 'spec.auth.acl[0].actions', 'stand alone');
  assert.equal(acl([{ match: m, actions: ['*'] }]), []);
  assert.equal(acl([{ match: m, actions: [] }]), []);
});

test('acl: regex match values must compile as RE2', () => {
  oneProblem(acl([{ match: { account: '/(?!admin).*/' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.account', 'lookaround');
  oneProblem(acl([{ match: { name: '/([a-z]+/' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.name', 'invalid regular expression');
  oneProblem(acl([{ match: { labels: { team: '/(a)\\1/' } }, actions: ['pull'] }]), 'spec.auth.acl[0].match.labels[team]', 'backreferences');
  oneProblem(acl([{ match: { service: '/[/' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.service');
});

test('acl: glob match values must be well-formed', () => {
  oneProblem(acl([{ match: { name: 'team-[a/*' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.name', 'never match');
});

test('acl: ip must be an IP or CIDR', () => {
  oneProblem(acl([{ match: { ip: '10.0.0.0/40' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.ip', 'CIDR');
  assert.equal(acl([{ match: { ip: '192.168.1.7' }, actions: ['pull'] }]), []);
});

test('acl: type must be repository or registry (or a pattern)', () => {
  oneProblem(acl([{ match: { type: 'repo' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.type', 'repository, registry');
  assert.equal(acl([{ match: { type: '/^(repository|registry)$/' }, actions: ['pull'] }]), []);
});

test('acl: match values must be strings, labels a map of strings', () => {
  oneProblem(acl([{ match: { account: ['a'] }, actions: ['pull'] }]), 'spec.auth.acl[0].match.account', 'string');
  oneProblem(acl([{ match: { labels: { accessMode: ['push'] } }, actions: ['pull'] }]), 'spec.auth.acl[0].match.labels[accessMode]', 'string');
  oneProblem(acl([{ match: { account: 'a', labels: 'push' }, actions: ['pull'] }]), 'spec.auth.acl[0].match.labels');
  // users carry no `account` label: such a rule would never match, so it is refused with the way out
  oneProblem(acl([{ match: { labels: { account: 'ci' } }, actions: ['pull'] }]), 'spec.auth.acl[0].match.labels[account]', 'match.account');
});

test('acl: comment must be a string; entries objects; acl a list', () => {
  oneProblem(acl([{ match: { account: 'a' }, actions: ['pull'], comment: 1 }]), 'spec.auth.acl[0].comment');
  oneProblem(acl(['pull']), 'spec.auth.acl[0]');
  oneProblem(acl({ match: {} }), 'spec.auth.acl');
});

test('acl: every problem of every entry is reported at once', () => {
  const problems = acl([
    { match: { foo: 'x', ip: 'nope' }, actions: ['*', 'pull'] },
    { match: { name: '/(?=x)/' }, actions: ['write'] },
    { match: {} },
  ]);
  assert.is(problems.length, 7, JSON.stringify(problems));
});

// --- ImageRegistry ---------------------------------------------------------------------------

test('ImageRegistry: empty spec, no spec and a full valid spec pass', () => {
  assert.equal(validateImageRegistry(registry(undefined)), []);
  assert.equal(validateImageRegistry(registry({})), []);
  assert.equal(
    validateImageRegistry(
      registry({
        replicas: 3,
        persistentVolumeClaim: { storageClassName: 'nfs', accessModes: ['ReadWriteMany'], resources: { requests: { storage: '20Gi' } }, deleteClaim: true },
        tls: { secretName: 'my-tls', issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } },
        auth: { ca: { issuerRef: { name: 'ca', kind: 'Issuer' } }, acl: [{ match: { account: '/.+/' }, actions: ['pull'] }] },
      }),
    ),
    [],
  );
});

test('ImageRegistry: replicas is an integer >= 0 (0 scales the registry down)', () => {
  assert.equal(validateImageRegistry(registry({ replicas: 0 })), []);
  oneProblem(validateImageRegistry(registry({ replicas: -1 })), 'spec.replicas', '>= 0');
  oneProblem(validateImageRegistry(registry({ replicas: 1.5 })), 'spec.replicas');
  oneProblem(validateImageRegistry(registry({ replicas: '2' })), 'spec.replicas');
});

test('ImageRegistry: replicas > 1 requires ReadWriteMany', () => {
  oneProblem(
    validateImageRegistry(registry({ replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } })),
    'spec.persistentVolumeClaim.accessModes',
    'ReadWriteMany',
  );
  assert.equal(validateImageRegistry(registry({ replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteOnce', 'ReadWriteMany'] } })), []);
  assert.equal(validateImageRegistry(registry({ replicas: 1, persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } })), []);
});

test('ImageRegistry: access modes must be known and writable', () => {
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { accessModes: ['ReadOnlyMany'] } })), 'spec.persistentVolumeClaim.accessModes[0]', 'writes');
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { accessModes: ['RWO'] } })), 'spec.persistentVolumeClaim.accessModes[0]');
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { accessModes: [] } })), 'spec.persistentVolumeClaim.accessModes');
});

test('ImageRegistry: storage, storageClassName and deleteClaim are checked', () => {
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { resources: { requests: { storage: '0' } } } })), 'spec.persistentVolumeClaim.resources.requests.storage');
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { storageClassName: 'Bad_Name' } })), 'spec.persistentVolumeClaim.storageClassName');
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: { deleteClaim: 'yes' } })), 'spec.persistentVolumeClaim.deleteClaim');
  oneProblem(validateImageRegistry(registry({ persistentVolumeClaim: 'big' })), 'spec.persistentVolumeClaim');
});

test('ImageRegistry: issuerRef needs a name and kind Issuer or ClusterIssuer', () => {
  oneProblem(validateImageRegistry(registry({ tls: { issuerRef: { kind: 'Issuer' } } })), 'spec.tls.issuerRef.name', 'required');
  oneProblem(validateImageRegistry(registry({ tls: { issuerRef: { name: 'x', kind: 'CertIssuer' } } })), 'spec.tls.issuerRef.kind', 'Issuer or ClusterIssuer');
  oneProblem(validateImageRegistry(registry({ auth: { ca: { issuerRef: { name: '', kind: 'Issuer' } } } })), 'spec.auth.ca.issuerRef.name');
  oneProblem(validateImageRegistry(registry({ auth: { ca: { issuerRef: 'ca' } } })), 'spec.auth.ca.issuerRef');
  oneProblem(validateImageRegistry(registry({ tls: { secretName: 'Not A Name' } })), 'spec.tls.secretName');
  assert.equal(validateImageRegistry(registry({ tls: { issuerRef: { name: 'x' } } })), [], 'kind defaults to Issuer');
});

test('ImageRegistry: the ACL is validated in place', () => {
  oneProblem(validateImageRegistry(registry({ auth: { acl: [{ match: { account: 'x', user: 'x' }, actions: ['pull'] }] } })), 'spec.auth.acl[0].match.user');
});

test('ImageRegistry: the name must fit the Service, StatefulSet and hostname', () => {
  oneProblem(validateImageRegistry(registry({}, '1registry')), 'metadata.name', 'DNS-1035');
  oneProblem(validateImageRegistry(registry({}, 'a'.repeat(53))), 'metadata.name', '52');
  assert.equal(validateImageRegistry(registry({}, 'a'.repeat(52))), []);
  assert.equal(validateImageRegistry(registry({}, '')), [], 'generateName: no name yet');
});

test('ImageRegistry: storageClassName and accessModes are immutable once set', () => {
  const old = registry({ persistentVolumeClaim: { storageClassName: 'fast', accessModes: ['ReadWriteOnce'] } });
  const problems = validateImageRegistry(registry({ persistentVolumeClaim: { storageClassName: 'slow', accessModes: ['ReadWriteMany'] } }), old);
  assert.is(problems.length, 2, JSON.stringify(problems));
  assert.ok(problems[0]?.startsWith('spec.persistentVolumeClaim.storageClassName: is immutable'));
  assert.ok(problems[1]?.startsWith('spec.persistentVolumeClaim.accessModes: is immutable'));
  assert.equal(validateImageRegistry(registry({ replicas: 1, persistentVolumeClaim: { storageClassName: 'fast', accessModes: ['ReadWriteOnce'] } }), old), []);
  assert.equal(validateImageRegistry(registry({ persistentVolumeClaim: { storageClassName: 'fast' } }), registry({})), [], 'unset before: may be set');
});

test('ImageRegistry: the storage request may grow, never shrink', () => {
  const sized = (storage: string) => registry({ persistentVolumeClaim: { resources: { requests: { storage } } } });
  oneProblem(validateImageRegistry(sized('8G'), sized('8Gi')), 'spec.persistentVolumeClaim.resources.requests.storage', 'cannot shrink');
  assert.equal(validateImageRegistry(sized('16Gi'), sized('8Gi')), []);
  assert.equal(validateImageRegistry(sized('8192Mi'), sized('8Gi')), [], 'the same size written differently');
  assert.equal(validateImageRegistry(sized('8Gi'), registry({})), [], 'unset before');
});

test('ImageRegistry: all problems at once, spec of the wrong type, any input shape', () => {
  const problems = validateImageRegistry(registry({ replicas: -1, tls: { issuerRef: {} }, auth: { acl: [{ match: { x: '' }, actions: ['x'] }] } }));
  assert.is(problems.length, 5, JSON.stringify(problems));
  oneProblem(validateImageRegistry(registry('big')), 'spec', 'object');
  for (const garbage of [null, 1, 'x', [], { spec: [] }, { metadata: 7 }]) assert.instance(validateImageRegistry(garbage), Array);
});

// --- ImageRegistry storage ------------------------------------------------------------------

const s3 = (fields: Record<string, unknown>) => registry({ storage: { s3: { bucket: 'images', ...fields } } });

test('ImageRegistry bucket: a full valid s3 spec passes, with more than one replica and no volume', () => {
  assert.equal(validateImageRegistry(registry({
    replicas: 3,
    storage: { s3: {
      bucket: 'registry.data-1', region: 'eu-central-1', endpoint: 'https://s3.storage.svc:9000', forcePathStyle: true, rootDirectory: '/registry/a',
      ca: { configMapName: 'ca-bundle', key: 'ca.crt' }, credentialsSecret: { name: 'registry-s3', accessKeyIDKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' },
      serviceAccountName: 'registry',
    } },
  })), []);
  assert.equal(validateImageRegistry(s3({})), [], 'only a bucket: AWS S3 with the default credential chain');
  assert.equal(validateImageRegistry(registry({ storage: {} })), [], 'storage without s3: the volume');
});

test('ImageRegistry bucket: each field is checked and named', () => {
  oneProblem(validateImageRegistry(registry({ storage: { s3: {} } })), 'spec.storage.s3.bucket', 'required');
  oneProblem(validateImageRegistry(s3({ bucket: 'Images_1' })), 'spec.storage.s3.bucket', 'bucket name');
  oneProblem(validateImageRegistry(s3({ bucket: '10.0.0.1' })), 'spec.storage.s3.bucket', 'bucket name');
  oneProblem(validateImageRegistry(s3({ region: 'eu central' })), 'spec.storage.s3.region', 'region');
  oneProblem(validateImageRegistry(s3({ endpoint: 's3.example.org' })), 'spec.storage.s3.endpoint', 'URL');
  oneProblem(validateImageRegistry(s3({ endpoint: 'ftp://s3.example.org' })), 'spec.storage.s3.endpoint', 'http');
  oneProblem(validateImageRegistry(s3({ endpoint: 'https://AK:SK@s3.example.org' })), 'spec.storage.s3.endpoint', 'credentialsSecret');
  oneProblem(validateImageRegistry(s3({ endpoint: 'https://s3.example.org/images' })), 'spec.storage.s3.endpoint', 'without path');
  oneProblem(validateImageRegistry(s3({ forcePathStyle: 'yes' })), 'spec.storage.s3.forcePathStyle', 'true or false');
  oneProblem(validateImageRegistry(s3({ rootDirectory: '/a/../b' })), 'spec.storage.s3.rootDirectory', 'key prefix');
  oneProblem(validateImageRegistry(s3({ rootDirectory: 'a b' })), 'spec.storage.s3.rootDirectory', 'key prefix');
  oneProblem(validateImageRegistry(s3({ ca: {} })), 'spec.storage.s3.ca', 'exactly one');
  oneProblem(validateImageRegistry(s3({ ca: { secretName: 'a', configMapName: 'b' } })), 'spec.storage.s3.ca', 'exactly one');
  oneProblem(validateImageRegistry(s3({ ca: { secretName: 'a', key: 'a/b' } })), 'spec.storage.s3.ca.key', 'key name');
  oneProblem(validateImageRegistry(s3({ credentialsSecret: {} })), 'spec.storage.s3.credentialsSecret.name', 'required');
  oneProblem(validateImageRegistry(s3({ credentialsSecret: { name: 's', accessKeyIDKey: 'k', secretAccessKeyKey: 'k' } })), 'spec.storage.s3.credentialsSecret.secretAccessKeyKey', 'differ');
  oneProblem(validateImageRegistry(s3({ serviceAccountName: 'Not_A_Name' })), 'spec.storage.s3.serviceAccountName', 'ServiceAccount');
  oneProblem(validateImageRegistry(registry({ storage: 'bucket' })), 'spec.storage', 'object');
  oneProblem(validateImageRegistry(registry({ storage: { s3: 'images' } })), 'spec.storage.s3', 'object');
});

test('ImageRegistry bucket: no volume beside it', () => {
  oneProblem(validateImageRegistry(registry({ storage: { s3: { bucket: 'images' } }, persistentVolumeClaim: { accessModes: ['ReadWriteOnce'] } })), 'spec.persistentVolumeClaim', 'left out');
});

test('ImageRegistry storage: switching kind, bucket or prefix of a stored registry is refused with how to migrate', () => {
  const volume = registry({ persistentVolumeClaim: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } } });
  oneProblem(validateImageRegistry(s3({}), volume), 'spec.storage.s3', 'skopeo sync');
  oneProblem(validateImageRegistry(volume, s3({})), 'spec.storage.s3', 'cannot be removed');
  oneProblem(validateImageRegistry(s3({ bucket: 'other' }), s3({})), 'spec.storage.s3.bucket', 'immutable');
  oneProblem(validateImageRegistry(s3({ rootDirectory: '/b' }), s3({ rootDirectory: '/a' })), 'spec.storage.s3.rootDirectory', 'immutable');
  assert.equal(validateImageRegistry(s3({ endpoint: 'https://new.example.org', region: 'x', credentialsSecret: { name: 'rotated' } }), s3({ endpoint: 'http://old.example.org' })), [], 'the same bucket reached another way, with other credentials');
  assert.equal(validateImageRegistry(s3({ replicas: 4 }), s3({})), []);
});

// --- ImageRegistryAccount --------------------------------------------------------------------

test('account: a bcrypt hash, string-list labels and a ttl pass', () => {
  assert.equal(validateImageRegistryAccount(account({ password: hash, labels: { accessMode: ['push'], namespace: ['a', 'b'] }, ttl: '48h' })), []);
  assert.equal(validateImageRegistryAccount(account({ password: hash })), []);
});

test('account: a plain password is refused with a hint and never echoed', () => {
  const problems = validateImageRegistryAccount(account({ password: 'hunter2secret' }));
  oneProblem(problems, 'spec.password', "htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n'");
  assert.not.ok(problems[0]?.includes('hunter2secret'));
});

test('account: a malformed hash is named as such', () => {
  oneProblem(validateImageRegistryAccount(account({ password: hash.slice(0, 40) })), 'spec.password', 'malformed bcrypt hash');
});

test('account: password and spec are required', () => {
  oneProblem(validateImageRegistryAccount(account({})), 'spec.password', 'required');
  oneProblem(validateImageRegistryAccount(account(undefined)), 'spec', 'required');
});

test('account: ttl must be a Go duration greater than zero', () => {
  oneProblem(validateImageRegistryAccount(account({ password: hash, labels: { account: ['other'] } })), 'spec.labels[account]', 'reserved');
  const legacy = account({ password: hash, labels: { account: ['other'] } });
  assert.equal(validateImageRegistryAccount(legacy, legacy), [], 'an account stored earlier can still be updated (e.g. its metadata)');
  oneProblem(validateImageRegistryAccount(account({ password: hash, ttl: '2d' })), 'spec.ttl', 'Go duration');
  oneProblem(validateImageRegistryAccount(account({ password: hash, ttl: '48' })), 'spec.ttl', 'Go duration');
  assert.equal(validateImageRegistryAccount(account({ password: hash, ttl: '1h30m' })), []);
  oneProblem(validateImageRegistryAccount(account({ password: hash, ttl: '0s' })), 'spec.ttl', 'greater than zero');
  oneProblem(validateImageRegistryAccount(account({ password: hash, ttl: '-1h' })), 'spec.ttl', 'greater than zero');
  oneProblem(validateImageRegistryAccount(account({ password: hash, ttl: 3600 })), 'spec.ttl');
});

test('account: label values must be lists of strings', () => {
  oneProblem(validateImageRegistryAccount(account({ password: hash, labels: { accessMode: 'push' } })), 'spec.labels[accessMode]', 'list of strings');
  oneProblem(validateImageRegistryAccount(account({ password: hash, labels: { n: [1] } })), 'spec.labels[n]');
  oneProblem(validateImageRegistryAccount(account({ password: hash, labels: ['push'] })), 'spec.labels');
});

test('account: spec is immutable on update, metadata is not', () => {
  const old = account({ password: hash, labels: { accessMode: ['pull'] } });
  oneProblem(validateImageRegistryAccount(account({ password: hash, labels: { accessMode: ['push'] } }), old), 'spec', 'immutable');
  const relabelled = { ...account({ labels: { accessMode: ['pull'] }, password: hash }), metadata: { name: 'a', namespace: 'ns', labels: { x: 'y' } } };
  assert.equal(validateImageRegistryAccount(relabelled, old), [], 'same spec in another key order, new metadata');
});

// --- ImagePushSecret / ImagePullSecret -------------------------------------------------------

test('push/pull secret: with or without registryRef passes', () => {
  assert.equal(validateImageSecret(pushSecret(undefined)), []);
  assert.equal(validateImageSecret(pushSecret({ registryRef: { name: 'registry', namespace: 'infra' } })), []);
});

test('push/pull secret: registryRef names must be valid', () => {
  oneProblem(validateImageSecret(pushSecret({ registryRef: { name: 'My_Registry' } })), 'spec.registryRef.name');
  oneProblem(validateImageSecret(pushSecret({ registryRef: { name: 'r', namespace: 'In Valid' } })), 'spec.registryRef.namespace');
  oneProblem(validateImageSecret(pushSecret({ registryRef: 'registry' })), 'spec.registryRef');
  oneProblem(validateImageSecret(pushSecret('x')), 'spec');
});

test('push/pull secret: the name leaves room for the rotating account names', () => {
  oneProblem(validateImageSecret(pushSecret({}, 'a'.repeat(171))), 'metadata.name', '170');
  assert.equal(validateImageSecret(pushSecret({}, 'a'.repeat(170))), []);
});

test('push/pull secret: registryRef is immutable once set', () => {
  const old = pushSecret({ registryRef: { name: 'registry', namespace: 'infra' } });
  const problems = validateImageSecret(pushSecret({ registryRef: { name: 'other', namespace: 'infra2' } }), old);
  assert.is(problems.length, 2);
  assert.ok(problems[0]?.startsWith('spec.registryRef.name: is immutable once set (was "registry"); delete and recreate the ImagePushSecret'));
  assert.equal(validateImageSecret(pushSecret({ registryRef: { name: 'registry', namespace: 'infra' } }), old), []);
  assert.equal(validateImageSecret(pushSecret({ registryRef: { name: 'registry' } }), pushSecret({})), [], 'unset before: may be set');
});

const pullSecret = (spec: unknown) => ({ ...pushSecret(spec), kind: 'ImagePullSecret' });

test('pull secret: serviceAccounts lists ServiceAccount names, or "*" alone', () => {
  assert.equal(validateImageSecret(pullSecret({ serviceAccounts: ['default', 'builder.ci', 'a1'] })), []);
  assert.equal(validateImageSecret(pullSecret({ serviceAccounts: ['*'] })), []);
  assert.equal(validateImageSecret(pullSecret({ serviceAccounts: [] })), []);
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['default', 'Bad_Name'] })), 'spec.serviceAccounts[1]', 'DNS-1123 subdomain');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['-dash'] })), 'spec.serviceAccounts[0]');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['a'.repeat(254)] })), 'spec.serviceAccounts[0]');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: [7] })), 'spec.serviceAccounts[0]');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['default', '*'] })), 'spec.serviceAccounts[1]', 'only entry');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['*', 'default'] })), 'spec.serviceAccounts[0]', 'only entry');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: ['app', 'app'] })), 'spec.serviceAccounts[1]', 'twice');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: 'default' })), 'spec.serviceAccounts', 'list');
  oneProblem(validateImageSecret(pullSecret({ serviceAccounts: Array.from({ length: 257 }, (_, i) => `sa-${i}`) })), 'spec.serviceAccounts', 'at most 256');
  oneProblem(validateImageSecret(pushSecret({ serviceAccounts: ['default'] })), 'spec.serviceAccounts', 'only an ImagePullSecret');
});

test('the storage budget annotation: a positive quantity, named in the error', () => {
  const withBudget = (budget: unknown) => ({ ...registry({}), metadata: { name: 'registry', namespace: 'infra', annotations: { 'registry.mgoltzsche.github.com/storage-budget': budget } } });
  assert.equal(validateImageRegistry(withBudget('500Gi')), []);
  assert.equal(validateImageRegistry(withBudget('536870912000')), []);
  for (const bad of ['lots', '0', '-5Gi', '5 GiB']) {
    const problems = validateImageRegistry(withBudget(bad));
    assert.is(problems.length, 1, bad);
    assert.match(problems[0] ?? '', /^metadata\.annotations\["registry\.mgoltzsche\.github\.com\/storage-budget"\]: must be a positive quantity of bytes/);
  }
});

test.run();
