import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  defaultAcl,
  defaultImageRegistry,
  defaultImageSecret,
  resolveRegistryRef,
} from '../../functions/defaults.ts';
import { defaultAcl as dockerAuthDefaultAcl } from '../../functions/docker-auth-config.ts';
import { defaultGcSchedule } from '../../functions/gc-defaults.ts';
import { applyJsonPatch } from '../../functions/json-patch.ts';
import { REGISTRY_LABEL } from '../../functions/reconcile-job.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import type { OperatorConfig } from '../../functions/types.ts';

// the operator's defaults, as the webhook and the Jobs read them from an empty environment
const config: OperatorConfig = operatorConfigFromEnv({});

const DEFAULT_ACL = defaultAcl();

/** spec.garbageCollection's defaults: collection on, daily at a time of ns/registry's own, nothing else deleted */
const GC_DEFAULTS = { enabled: true, schedule: defaultGcSchedule('ns', 'registry'), deleteUntagged: false, dryRun: false, timeout: '15m' };

function registry(spec?: unknown): Record<string, unknown> {
  const base = { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'ns' } };
  return spec === undefined ? base : { ...base, spec };
}
function secret(kind: string, spec?: unknown, metadata: Record<string, unknown> = { name: 'example', namespace: 'apps' }) {
  const base = { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind, metadata };
  return spec === undefined ? base : { ...base, spec };
}

test('defaultAcl is the documented default (as docker_auth gets it) and a fresh copy each time', () => {
  assert.equal(defaultAcl().map(({ match, actions }) => ({ match, actions })), [
    { match: { type: 'repository', name: '/^${labels:namespace}/.+$/', labels: { accessMode: 'push' } }, actions: ['push', 'pull'] },
    { match: { type: 'repository', labels: { accessMode: 'pull' } }, actions: ['pull'] },
  ]);
  assert.equal(defaultAcl(), dockerAuthDefaultAcl());
  const acl = defaultAcl();
  acl.pop();
  assert.is(defaultAcl().length, 2);
});

test('ImageRegistry without spec: one add of the whole defaulted spec', () => {
  const ops = defaultImageRegistry(registry());
  assert.is(ops.length, 1);
  assert.ok(ops.every((op) => op.op === 'add'));
  assert.equal(applyJsonPatch(registry(), ops).spec, {
    replicas: 1,
    persistentVolumeClaim: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } },
    auth: { acl: DEFAULT_ACL },
    garbageCollection: GC_DEFAULTS,
  });
});

test('ImageRegistry with several replicas defaults to ReadWriteMany', () => {
  const obj = registry({ replicas: 3 });
  assert.equal((applyJsonPatch(obj, defaultImageRegistry(obj)).spec as any).persistentVolumeClaim.accessModes, ['ReadWriteMany']);
  const zero = registry({ replicas: 0 });
  assert.equal((applyJsonPatch(zero, defaultImageRegistry(zero)).spec as any).persistentVolumeClaim.accessModes, ['ReadWriteOnce']);
});

test('ImageRegistry: only missing fields are added; present ones are kept', () => {
  const obj = registry({
    replicas: 2,
    persistentVolumeClaim: { storageClassName: 'nfs', accessModes: ['ReadWriteMany'] },
    auth: { acl: [] },
    garbageCollection: { ...GC_DEFAULTS, dryRun: true },
  });
  const ops = defaultImageRegistry(obj);
  assert.equal(ops, [{ op: 'add', path: '/spec/persistentVolumeClaim/resources', value: { requests: { storage: '8Gi' } } }]);
  const partial = registry({ persistentVolumeClaim: { resources: { limits: { storage: '1Ti' } } } });
  assert.equal(defaultImageRegistry(partial).map((op) => op.path), [
    '/spec/replicas',
    '/spec/persistentVolumeClaim/accessModes',
    '/spec/persistentVolumeClaim/resources/requests',
    '/spec/auth',
    '/spec/garbageCollection',
  ]);
});

test('ImageRegistry: a fully specified object gets no patch; the input is not mutated', () => {
  const obj = registry({
    replicas: 1,
    persistentVolumeClaim: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    auth: { acl: DEFAULT_ACL },
    garbageCollection: { ...GC_DEFAULTS, schedule: '0 1 * * *' },
  });
  const copy = structuredClone(obj);
  assert.equal(defaultImageRegistry(obj), []);
  assert.equal(obj, copy);
});

test('ImageRegistry: issuerRef gets kind Issuer; nothing is added without issuerRef', () => {
  const obj = registry({ tls: { issuerRef: { name: 'le' } }, auth: { ca: { issuerRef: { name: 'ca', kind: 'ClusterIssuer' } } } });
  const spec = applyJsonPatch(obj, defaultImageRegistry(obj)).spec as any;
  assert.equal(spec.tls, { issuerRef: { name: 'le', kind: 'Issuer' } });
  assert.equal(spec.auth.ca, { issuerRef: { name: 'ca', kind: 'ClusterIssuer' } });
  const plain = registry({ tls: { secretName: 'x' } });
  assert.equal((applyJsonPatch(plain, defaultImageRegistry(plain)).spec as any).tls, { secretName: 'x' });
  assert.not.ok('ca' in (applyJsonPatch(plain, defaultImageRegistry(plain)).spec as any).auth);
});

test('ImageRegistry on UPDATE: immutable volume fields come from the old object when omitted', () => {
  const old = registry({ replicas: 1, persistentVolumeClaim: { storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } } });
  const applied = registry({ replicas: 3 });
  const pvc = (applyJsonPatch(applied, defaultImageRegistry(applied, old)).spec as any).persistentVolumeClaim;
  assert.equal(pvc, { storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } });
});

test('ImageRegistry with a bucket: region, path style with an endpoint, key names; no volume', () => {
  const withEndpoint = registry({ storage: { s3: { bucket: 'images', endpoint: 'http://127.0.0.9:7070', credentialsSecret: { name: 'creds' }, ca: { secretName: 'ca' } } } });
  const spec = applyJsonPatch(withEndpoint, defaultImageRegistry(withEndpoint)).spec as any;
  assert.equal(spec.storage.s3, {
    bucket: 'images', endpoint: 'http://127.0.0.9:7070', region: 'us-east-1', forcePathStyle: true,
    credentialsSecret: { name: 'creds', accessKeyIDKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' },
    ca: { secretName: 'ca', key: 'ca.crt' },
  });
  assert.is(spec.persistentVolumeClaim, undefined, 'the bucket holds the data');
  assert.is(spec.replicas, 1);
  assert.equal(spec.auth.acl, DEFAULT_ACL);
  const aws = registry({ replicas: 3, storage: { s3: { bucket: 'images', region: 'eu-west-1', forcePathStyle: true } } });
  const awsSpec = applyJsonPatch(aws, defaultImageRegistry(aws)).spec as any;
  assert.equal(awsSpec.storage.s3, { bucket: 'images', region: 'eu-west-1', forcePathStyle: true }, 'present values kept; no credentials added');
  assert.is(awsSpec.persistentVolumeClaim, undefined);
  const plain = registry({ storage: { s3: { bucket: 'images' } } });
  assert.is((applyJsonPatch(plain, defaultImageRegistry(plain)).spec as any).storage.s3.forcePathStyle, false, 'AWS: virtual-hosted style');
});

test('ImageRegistry: a spec of the wrong type or a non-object gets no patch', () => {
  assert.equal(defaultImageRegistry(registry('text')), []);
  assert.equal(defaultImageRegistry(null), []);
  assert.equal(defaultImageRegistry([1]), []);
});

test('ImageRegistry: null fields count as missing', () => {
  const obj = registry({ replicas: null, persistentVolumeClaim: null });
  const spec = applyJsonPatch(obj, defaultImageRegistry(obj)).spec as any;
  assert.is(spec.replicas, 1);
  assert.equal(spec.persistentVolumeClaim.accessModes, ['ReadWriteOnce']);
});

test('resolveRegistryRef: default registry, configured namespace, explicit refs', () => {
  const ctx = { config, namespace: 'apps' };
  assert.equal(resolveRegistryRef(secret('ImagePushSecret'), ctx), { name: 'registry', namespace: 'apps' });
  const withNs = { ...ctx, config: { ...config, defaultRegistry: { name: 'central', namespace: 'infra' } } };
  assert.equal(resolveRegistryRef(secret('ImagePushSecret', {}), withNs), { name: 'central', namespace: 'infra' });
  assert.equal(resolveRegistryRef(secret('ImagePushSecret', { registryRef: { name: 'mine' } }), withNs), { name: 'mine', namespace: 'apps' });
  assert.equal(resolveRegistryRef(secret('ImagePushSecret', { registryRef: { namespace: 'x' } }), ctx), { name: 'registry', namespace: 'x' });
  const old = secret('ImagePushSecret', { registryRef: { name: 'was', namespace: 'there' } });
  assert.equal(resolveRegistryRef(secret('ImagePushSecret', {}), { ...withNs, old }), { name: 'was', namespace: 'there' });
});

test('ImagePushSecret without spec: registryRef and the registry label are added', () => {
  const obj = secret('ImagePushSecret');
  const ops = defaultImageSecret(obj, { config, namespace: 'apps' });
  assert.ok(ops.every((op) => op.op === 'add'));
  const result = applyJsonPatch(obj, ops) as any;
  assert.equal(result.spec, { registryRef: { name: 'registry', namespace: 'apps' } });
  assert.equal(result.metadata.labels, { [REGISTRY_LABEL]: 'apps.registry' });
  assert.ok(ops.some((op) => op.path === '/metadata/labels'), 'labels object created when absent');
});

test('ImagePullSecret: existing labels are kept and the label key is escaped', () => {
  const obj = secret('ImagePullSecret', { registryRef: { name: 'registry', namespace: 'infra' } }, { name: 'e', namespace: 'apps', labels: { team: 'a' } });
  const ops = defaultImageSecret(obj, { config, namespace: 'apps' });
  assert.equal(ops, [{ op: 'add', path: '/metadata/labels/registry.mgoltzsche.github.com~1registry', value: 'infra.registry' }]);
  assert.equal((applyJsonPatch(obj, ops) as any).metadata.labels, { team: 'a', [REGISTRY_LABEL]: 'infra.registry' });
});

test('ImagePushSecret: a correct label means no patch; a stale one is corrected', () => {
  const labelled = secret('ImagePushSecret', { registryRef: { name: 'registry', namespace: 'apps' } }, { name: 'e', namespace: 'apps', labels: { [REGISTRY_LABEL]: 'apps.registry' } });
  assert.equal(defaultImageSecret(labelled, { config, namespace: 'apps' }), []);
  const stale = secret('ImagePushSecret', { registryRef: { name: 'registry', namespace: 'apps' } }, { name: 'e', namespace: 'apps', labels: { [REGISTRY_LABEL]: 'other.x' } });
  const result = applyJsonPatch(stale, defaultImageSecret(stale, { config, namespace: 'apps' })) as any;
  assert.is(result.metadata.labels[REGISTRY_LABEL], 'apps.registry');
});

test('ImagePushSecret: a partial registryRef gets only the missing namespace', () => {
  const obj = secret('ImagePushSecret', { registryRef: { name: 'mine' } });
  const ops = defaultImageSecret(obj, { config, namespace: 'apps' });
  assert.equal(ops[0], { op: 'add', path: '/spec/registryRef/namespace', value: 'apps' });
  assert.is((applyJsonPatch(obj, ops) as any).metadata.labels[REGISTRY_LABEL], 'apps.mine');
});

test('ImagePushSecret: long registry references get a hashed label value of ≤ 63 characters', () => {
  const ns = 'n'.repeat(63);
  const obj = secret('ImagePushSecret', { registryRef: { name: 'r'.repeat(40), namespace: ns } });
  const value = (applyJsonPatch(obj, defaultImageSecret(obj, { config, namespace: 'apps' })) as any).metadata.labels[REGISTRY_LABEL];
  assert.ok(value.length <= 63, value);
  assert.match(value, /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/);
});

test('ImagePushSecret: an invalid registryRef gets no label (validation names the field instead)', () => {
  const obj = secret('ImagePushSecret', { registryRef: { name: 'Bad_Name' } });
  const ops = defaultImageSecret(obj, { config, namespace: 'apps' });
  assert.not.ok(ops.some((op) => op.path.startsWith('/metadata')));
  assert.equal(defaultImageSecret(secret('ImagePushSecret', 'text'), { config, namespace: 'apps' }), []);
});

test('ImagePushSecret on UPDATE: an omitted registryRef keeps the old one, not a changed default', () => {
  const old = secret('ImagePushSecret', { registryRef: { name: 'registry', namespace: 'infra' } });
  const obj = secret('ImagePushSecret', {});
  const moved = { ...config, defaultRegistry: { name: 'central', namespace: 'elsewhere' } };
  const result = applyJsonPatch(obj, defaultImageSecret(obj, { config: moved, namespace: 'apps', old })) as any;
  assert.equal(result.spec.registryRef, { name: 'registry', namespace: 'infra' });
  assert.is(result.metadata.labels[REGISTRY_LABEL], 'infra.registry');
});

test.run();
