import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { registryConfig } from '../../functions/registry-config.ts';
import {
  ACCESS_KEY_ENV,
  SECRET_KEY_ENV,
  registryStorage,
  storageHealthProblem,
  storageKind,
  storageReferenceProblem,
  storageReferencesDigest,
} from '../../functions/registry-storage.ts';
import type { ImageRegistry, S3StorageSpec } from '../../functions/types.ts';

function registry(spec: ImageRegistry['spec'] = {}): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'uid-1' }, spec };
}
const bucket = (s3: Partial<S3StorageSpec> = {}) => registry({ storage: { s3: { bucket: 'images', ...s3 } } });

test('volume: filesystem on the data claim, as before; no env, nothing read at start', () => {
  const storage = registryStorage(registry());
  assert.is(storage.kind, 'volume');
  assert.equal(storage.config, { filesystem: { rootdirectory: '/var/lib/registry' }, delete: { enabled: true }, cache: { blobdescriptor: 'inmemory' }, maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false } } });
  assert.equal(storage.health, { enabled: true, interval: '10s', threshold: 3 });
  assert.equal(storage.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data-registry-0' } }]);
  assert.equal(storage.volumeMounts, [{ name: 'data', mountPath: '/var/lib/registry' }]);
  assert.equal(storage.env, []);
  assert.equal(storage.readAtStart, []);
  assert.is(storage.serviceAccountName, undefined);
  assert.is(storageKind(registry()), 'volume');
});

test('bucket: s3 driver settings from the spec, redirects off, no volume', () => {
  const storage = registryStorage(bucket({ endpoint: 'http://127.0.0.9:7070', forcePathStyle: true, region: 'eu-1', rootDirectory: '/reg' }));
  assert.is(storage.kind, 's3');
  assert.equal(storage.config, {
    s3: { bucket: 'images', region: 'eu-1', regionendpoint: 'http://127.0.0.9:7070', forcepathstyle: true, secure: false, v4auth: true, rootdirectory: '/reg' },
    delete: { enabled: true },
    cache: { blobdescriptor: 'inmemory' },
    maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false } },
    redirect: { disable: true },
  });
  assert.equal(storage.volumes, []);
  assert.equal(storage.volumeMounts, []);
  assert.ok(storage.health.threshold * Number.parseInt(storage.health.interval, 10) <= 10, 'a broken bucket shows within 10 s');
});

test('bucket: AWS without endpoint is https, virtual-hosted, us-east-1; an https endpoint is secure and path style by default', () => {
  const aws = registryStorage(bucket()).config.s3 as Record<string, unknown>;
  assert.equal(aws, { bucket: 'images', region: 'us-east-1', forcepathstyle: false, secure: true, v4auth: true });
  const own = registryStorage(bucket({ endpoint: 'https://s3.storage.svc:9000/' })).config.s3 as Record<string, unknown>;
  assert.is(own.regionendpoint, 'https://s3.storage.svc:9000');
  assert.is(own.secure, true);
  assert.is(own.forcepathstyle, true);
});

test('bucket credentials: secretKeyRef env on the container only, never in config.yml', () => {
  const storage = registryStorage(bucket({ credentialsSecret: { name: 'registry-s3' } }));
  assert.equal(storage.env, [
    { name: ACCESS_KEY_ENV, valueFrom: { secretKeyRef: { name: 'registry-s3', key: 'AWS_ACCESS_KEY_ID' } } },
    { name: SECRET_KEY_ENV, valueFrom: { secretKeyRef: { name: 'registry-s3', key: 'AWS_SECRET_ACCESS_KEY' } } },
  ]);
  const custom = registryStorage(bucket({ credentialsSecret: { name: 's', accessKeyIDKey: 'id', secretAccessKeyKey: 'key' } }));
  assert.equal(custom.env.map((e) => e.valueFrom?.secretKeyRef?.key), ['id', 'key']);
  const yaml = registryConfig({ hostname: 'r.example.org', httpSecret: 'x', storage });
  assert.not.match(yaml, /accesskey|secretkey|registry-s3/);
  assert.equal(storage.readAtStart.map((r) => [r.kind, r.name, r.key]), [['Secret', 'registry-s3', 'AWS_ACCESS_KEY_ID'], ['Secret', 'registry-s3', 'AWS_SECRET_ACCESS_KEY']]);
});

test('bucket without credentials: the driver\'s default chain; serviceAccountName for workload identity', () => {
  const storage = registryStorage(bucket({ serviceAccountName: 'registry-s3' }));
  assert.equal(storage.env, []);
  assert.is(storage.serviceAccountName, 'registry-s3');
});

test('bucket CA: one key of a Secret or ConfigMap at SSL_CERT_DIR, read at start', () => {
  const fromSecret = registryStorage(bucket({ ca: { secretName: 'storage-ca', key: 'root.pem' } }));
  assert.equal(fromSecret.volumes, [{ name: 'storage-ca', secret: { secretName: 'storage-ca', items: [{ key: 'root.pem', path: 'ca.crt' }], defaultMode: 0o440 } }]);
  assert.equal(fromSecret.volumeMounts, [{ name: 'storage-ca', mountPath: '/etc/registry-storage-ca', readOnly: true }]);
  assert.equal(fromSecret.env, [{ name: 'SSL_CERT_DIR', value: '/etc/registry-storage-ca' }]);
  const fromConfigMap = registryStorage(bucket({ ca: { configMapName: 'bundle' } }));
  assert.equal(fromConfigMap.volumes[0]?.configMap, { name: 'bundle', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o444 });
  assert.equal(fromConfigMap.readAtStart.map((r) => [r.kind, r.name, r.key, r.reason]), [['ConfigMap', 'bundle', 'ca.crt', 'StorageCANotFound']]);
});

test('storageReferenceProblem names the field of a missing Secret or key', () => {
  const storage = registryStorage(bucket({ credentialsSecret: { name: 'creds', secretAccessKeyKey: 'secret' } }));
  const missing = storageReferenceProblem(storage, () => undefined);
  assert.is(missing?.reason, 'StorageCredentialsNotFound');
  assert.match(missing?.message ?? '', /^spec\.storage\.s3\.credentialsSecret\.name: Secret creds not found/);
  const noKey = storageReferenceProblem(storage, () => ['AWS_ACCESS_KEY_ID']);
  assert.match(noKey?.message ?? '', /^spec\.storage\.s3\.credentialsSecret\.secretAccessKeyKey: Secret creds has no key secret$/);
  assert.is(storageReferenceProblem(storage, () => ['AWS_ACCESS_KEY_ID', 'secret']), undefined);
  assert.is(storageReferenceProblem(registryStorage(registry()), () => undefined), undefined);
  const ca = registryStorage(bucket({ ca: { configMapName: 'bundle' } }));
  assert.match(storageReferenceProblem(ca, () => ['other'])?.message ?? '', /^spec\.storage\.s3\.ca\.key: ConfigMap bundle has no key ca\.crt/);
});

test('storageReferencesDigest changes with a value, is empty without references, and holds no value', () => {
  const storage = registryStorage(bucket({ credentialsSecret: { name: 'creds' } }));
  const a = storageReferencesDigest(storage, (ref) => (ref.key === 'AWS_ACCESS_KEY_ID' ? 'AKID' : 'SECRET-ONE'));
  const b = storageReferencesDigest(storage, (ref) => (ref.key === 'AWS_ACCESS_KEY_ID' ? 'AKID' : 'SECRET-TWO'));
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.is.not(a, b);
  assert.is(storageReferencesDigest(registryStorage(registry()), () => 'x'), '');
});

test('storageHealthProblem: a 503 with the last health check error of the registry log, secrets blanked', () => {
  const line = (msg: string) => JSON.stringify({ level: 'error', msg, time: '2026-12-02T00:59:03Z' });
  const log = [
    line('storage driver health check: s3aws: NoSuchBucket: old'),
    '{"level":"info","msg":"response completed"}',
    line('storage driver health check: s3aws: SignatureDoesNotMatch: key AKIDEXAMPLE\n\tstatus code: 403'),
    'not json',
  ].join('\n');
  const problem = storageHealthProblem([{ pod: 'r-0', status: 200 }, { pod: 'r-1', status: 503, log }], ['AKIDEXAMPLE']);
  assert.is(problem?.reason, 'StorageUnavailable');
  assert.is(problem?.message, "pod r-1: the registry's storage health check fails: s3aws: SignatureDoesNotMatch: key [redacted] status code: 403; check spec.storage.s3 (bucket, endpoint, credentials) and the bucket's permissions");
  assert.match(storageHealthProblem([{ pod: 'r-0', status: 503 }])?.message ?? '', /fails: see kubectl logs r-0 -c registry;/, 'without the log: where to look');
  assert.is(storageHealthProblem([{ pod: 'r-0', status: 200 }]), undefined);
  assert.is(storageHealthProblem([{ pod: 'r-0', status: 0 }]), undefined, 'an unreachable pod says nothing of the storage');
});

test('registryConfig with a bucket: the storage section and its health check', () => {
  const storage = registryStorage(bucket({ endpoint: 'http://127.0.0.9:7070' }));
  const parsed = load(registryConfig({ hostname: 'r.example.org', httpSecret: 'x', storage })) as Record<string, any>;
  assert.equal(parsed.storage, storage.config);
  assert.equal(parsed.health, { storagedriver: { enabled: true, interval: '5s', threshold: 2 } });
});

test.run();
