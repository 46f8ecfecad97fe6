// Abandoned uploads of a bucket registry. distribution's upload purger removes an abandoned
// upload's objects (`_uploads/<id>/startedat`, hash states), but the data of an upload to S3 is an
// incomplete multipart upload, which object listings do not show and the purger never aborts: the
// bucket keeps (and bills) its parts forever. A daily CronJob per bucket registry aborts the
// multipart uploads under the registry's own upload directories that are older than the purge age
// the registry itself uses. This module decides what that CronJob is and which uploads go.
import { createHash } from 'node:crypto';
import type { V1CronJob } from '@kubernetes/client-node';
import { parseDuration } from './duration.ts';
import { maintenanceLabels, registryConfigSecretName } from './names.ts';
import { REGISTRY_CONFIG_PATH } from './registry-config.ts';
import { maintenanceCronJob, registryOwnerReference } from './registry-objects.ts';
import { nodeStorageEnv, registryStorage } from './registry-storage.ts';
import type { ImageRegistry, OperatorConfig } from './types.ts';

export const UPLOAD_CLEANUP_COMMAND = ['node', '/app/dist/upload-cleanup.js'];
const CRONJOB_NAME_MAX = 52; // a CronJob's Jobs append 11 characters to its name; 63 is the limit

/** `<registry>-upload-cleanup`, shortened with a hash where the registry's name is long. */
export function uploadCleanupCronJobName(registryName: string): string {
  const name = `${registryName}-upload-cleanup`;
  if (name.length <= CRONJOB_NAME_MAX) return name;
  const hash = createHash('sha256').update(registryName).digest('hex').slice(0, 8);
  return `${registryName.slice(0, CRONJOB_NAME_MAX - '-upload-cleanup'.length - 9)}-${hash}-upload-cleanup`;
}

/**
 * Once a day at a time of its own (from a hash of namespace/name), so that the registries of a
 * cluster do not all list their buckets in the same minute.
 */
export function uploadCleanupSchedule(namespace: string, name: string): string {
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest();
  return `${(hash[0] as number) % 60} ${(hash[1] as number) % 24} * * *`;
}

/**
 * The CronJob of a bucket registry (undefined for a volume registry: there the purger deletes the
 * files themselves). Its pod opens the bucket exactly as the registry does — the registry's own
 * config.yml, the storage's env (credentials by secretKeyRef), CA and ServiceAccount from
 * registryStorage() — and needs no Kubernetes API access.
 */
export function desiredUploadCleanupCronJob(registry: ImageRegistry, config: OperatorConfig): V1CronJob | undefined {
  const storage = registryStorage(registry);
  if (storage.kind !== 's3') return undefined;
  const name = registry.metadata.name ?? '';
  const namespace = registry.metadata.namespace ?? '';
  const labels = maintenanceLabels(name, 'upload-cleanup');
  const env = nodeStorageEnv(storage);
  return maintenanceCronJob({
    metadata: { name: uploadCleanupCronJobName(name), namespace, labels, ownerReferences: [registryOwnerReference(registry)] },
    schedule: uploadCleanupSchedule(namespace, name),
    backoffLimit: 2,
    activeDeadlineSeconds: 1800,
    podSpec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(storage.serviceAccountName ? { serviceAccountName: storage.serviceAccountName } : {}),
      // fsGroup: the config and credentials are mounted 0440, readable by the group only
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'upload-cleanup',
        image: config.images.operator,
        imagePullPolicy: 'IfNotPresent',
        command: [...UPLOAD_CLEANUP_COMMAND],
        args: ['--config', REGISTRY_CONFIG_PATH],
        env,
        resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '192Mi' } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
        volumeMounts: [
          { name: 'registry-config', mountPath: REGISTRY_CONFIG_PATH, subPath: 'config.yml', readOnly: true },
          ...storage.volumeMounts,
        ],
      }],
      volumes: [
        { name: 'registry-config', secret: { secretName: registryConfigSecretName(name), defaultMode: 0o440, items: [{ key: 'config.yml', path: 'config.yml' }] } },
        ...storage.volumes,
      ],
    },
  });
}

/** What the cleanup reads of config.yml: the bucket and the purge age. */
export interface BucketSettings {
  bucket: string;
  region: string;
  /** regionendpoint; undefined for AWS itself */
  endpoint?: string;
  forcePathStyle: boolean;
  /** where the registry's keys start: rootdirectory without its slashes, then `docker/registry/v2/repositories/` */
  uploadsPrefix: string;
  /** storage.maintenance.uploadpurging.age */
  purgeAgeMs: number;
}

/** Reads config.yml (parsed) as distribution does; throws naming the missing field. */
export function bucketSettings(config: unknown): BucketSettings {
  const storage = (config as { storage?: Record<string, any> } | undefined)?.storage ?? {};
  const s3 = storage.s3 as Record<string, unknown> | undefined;
  if (!s3) throw new Error('config.yml: storage.s3 is missing (the registry does not keep its data in a bucket)');
  const text = (key: string): string | undefined => (typeof s3[key] === 'string' && s3[key] !== '' ? (s3[key] as string) : undefined);
  const bucket = text('bucket');
  const region = text('region');
  if (!bucket) throw new Error('config.yml: storage.s3.bucket is missing');
  if (!region) throw new Error('config.yml: storage.s3.region is missing');
  const age = storage.maintenance?.uploadpurging?.age;
  if (typeof age !== 'string') throw new Error('config.yml: storage.maintenance.uploadpurging.age is missing');
  const root = (text('rootdirectory') ?? '').replace(/^\/+|\/+$/g, '');
  const endpoint = text('regionendpoint');
  return {
    bucket,
    region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: s3.forcepathstyle === true,
    uploadsPrefix: `${root ? `${root}/` : ''}docker/registry/v2/repositories/`,
    purgeAgeMs: parseDuration(age),
  };
}

export interface MultipartUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

// distribution's s3 driver writes an upload's data to <repositories>/<name>/_uploads/<uuid>/data
const UPLOAD_DATA = /\/_uploads\/[^/]+\/data$/;

/**
 * The multipart uploads to abort: a registry upload's data under `prefix`, started more than
 * `maxAgeMs` before `now`. Anything else in the bucket (another tool's uploads) is left alone.
 */
export function abandonedUploads(uploads: readonly MultipartUpload[], prefix: string, now: Date, maxAgeMs: number): MultipartUpload[] {
  return uploads.filter((upload) => upload.key.startsWith(prefix) && UPLOAD_DATA.test(upload.key) && now.getTime() - upload.initiated.getTime() > maxAgeMs);
}
