import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { registryConfig } from '../../functions/registry-config.ts';
import { registryStorage } from '../../functions/registry-storage.ts';
import type { ImageRegistry, OperatorConfig, S3StorageSpec } from '../../functions/types.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import {
  abandonedUploads,
  bucketSettings,
  desiredUploadCleanupCronJob,
  uploadCleanupCronJobName,
  uploadCleanupSchedule,
} from '../../functions/upload-cleanup.ts';

const config: OperatorConfig = operatorConfigFromEnv({});
function registry(spec: ImageRegistry['spec'] = {}, name = 'registry'): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name, namespace: 'infra', uid: 'uid-1' }, spec };
}
const bucket = (s3: Partial<S3StorageSpec> = {}) => registry({ storage: { s3: { bucket: 'images', ...s3 } } });
const configOf = (r: ImageRegistry) => load(registryConfig({ hostname: 'registry.infra.example.org', httpSecret: 'x', storage: registryStorage(r) }));

test('a volume registry has no upload-cleanup CronJob (the purger deletes its files)', () => {
  assert.is(desiredUploadCleanupCronJob(registry(), config), undefined);
});

test('a bucket registry: a daily CronJob in its namespace, owned by it, opening the bucket as the registry does', () => {
  const r = bucket({ credentialsSecret: { name: 's3' }, ca: { configMapName: 'ca' }, serviceAccountName: 'irsa' });
  const cronJob = desiredUploadCleanupCronJob(r, config);
  assert.ok(cronJob);
  assert.is(cronJob.metadata?.name, 'registry-upload-cleanup');
  assert.is(cronJob.metadata?.namespace, 'infra');
  assert.is(cronJob.metadata?.ownerReferences?.[0]?.uid, 'uid-1');
  assert.is(cronJob.spec?.concurrencyPolicy, 'Forbid');
  assert.match(cronJob.spec?.schedule ?? '', /^\d{1,2} \d{1,2} \* \* \*$/);
  const pod = cronJob.spec?.jobTemplate.spec?.template.spec;
  assert.is(pod?.serviceAccountName, 'irsa');
  assert.is(pod?.automountServiceAccountToken, false, 'the Job talks to S3 only');
  const container = pod?.containers[0];
  assert.equal(container?.command, ['node', '/app/dist/upload-cleanup.js']);
  assert.equal(container?.args, ['--config', '/etc/docker/registry/config.yml']);
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.secretKeyRef?.name]));
  assert.equal(env, { REGISTRY_STORAGE_S3_ACCESSKEY: 's3', REGISTRY_STORAGE_S3_SECRETKEY: 's3', NODE_EXTRA_CA_CERTS: '/etc/registry-storage-ca/ca.crt' });
  assert.equal(pod?.volumes?.map((v) => v.name), ['registry-config', 'storage-ca']);
  assert.equal(container?.securityContext?.capabilities?.drop, ['ALL']);
  assert.is(container?.securityContext?.readOnlyRootFilesystem, true);
});

test('names stay within what a CronJob may have; schedules spread by name', () => {
  assert.is(uploadCleanupCronJobName('r'), 'r-upload-cleanup');
  const long = 'a'.repeat(63);
  const name = uploadCleanupCronJobName(long);
  assert.ok(name.length <= 52, name);
  assert.ok(name.endsWith('-upload-cleanup'));
  assert.is.not(uploadCleanupCronJobName(`${'a'.repeat(62)}b`), name, 'different long names stay different');
  assert.is(uploadCleanupSchedule('infra', 'registry'), uploadCleanupSchedule('infra', 'registry'));
  const schedules = new Set(Array.from({ length: 20 }, (_, i) => uploadCleanupSchedule('ns', `r${i}`)));
  assert.ok(schedules.size > 10, `${schedules.size} distinct schedules of 20`);
});

test('bucketSettings reads the generated config.yml: bucket, endpoint, path style, prefix, purge age', () => {
  const settings = bucketSettings(configOf(bucket({ endpoint: 'http://127.0.0.9:7070', rootDirectory: '/reg/' })));
  assert.equal(settings, {
    bucket: 'images', region: 'us-east-1', endpoint: 'http://127.0.0.9:7070', forcePathStyle: true,
    uploadsPrefix: 'reg/docker/registry/v2/repositories/', purgeAgeMs: 168 * 3600_000,
  });
  assert.is(bucketSettings(configOf(bucket())).uploadsPrefix, 'docker/registry/v2/repositories/');
  assert.throws(() => bucketSettings(configOf(registry())), /storage\.s3 is missing/);
  assert.throws(() => bucketSettings({ storage: { s3: { bucket: 'b', region: 'r' } } }), /uploadpurging\.age is missing/);
  assert.throws(() => bucketSettings({ storage: { s3: { region: 'r' } } }), /storage\.s3\.bucket/);
});

test('abandonedUploads: only the registry\'s upload data under the prefix, older than the age', () => {
  const now = new Date('2026-12-01T12:00:00Z');
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3600_000);
  const prefix = 'docker/registry/v2/repositories/';
  const uploads = [
    { key: `${prefix}team/app/_uploads/0b1c/data`, uploadId: 'old', initiated: hoursAgo(200) },
    { key: `${prefix}team/app/_uploads/0b1d/data`, uploadId: 'young', initiated: hoursAgo(2) },
    { key: `${prefix}team/app/_uploads/0b1e/data`, uploadId: 'at-the-age', initiated: hoursAgo(168) },
    { key: 'backups/db.tar', uploadId: 'other-tool', initiated: hoursAgo(900) },
    { key: `${prefix}team/app/_layers/sha256/x/link`, uploadId: 'not-an-upload', initiated: hoursAgo(900) },
  ];
  assert.equal(abandonedUploads(uploads, prefix, now, 168 * 3600_000).map((u) => u.uploadId), ['old']);
  assert.equal(abandonedUploads(uploads, prefix, now, 0).map((u) => u.uploadId), ['old', 'young', 'at-the-age']);
});

test.run();
