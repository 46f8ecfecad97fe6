// The S3 client of the Jobs that open a registry's bucket (upload cleanup, garbage collection): the
// bucket's settings from the registry's own config.yml, the credentials from the same variables the
// registry reads, else the AWS SDK's default chain (workload identity).
import { S3Client } from '@aws-sdk/client-s3';
import { ACCESS_KEY_ENV, SECRET_KEY_ENV } from '../functions/registry-storage.ts';
import type { BucketSettings } from '../functions/upload-cleanup.ts';

export function s3Client(settings: BucketSettings, env: NodeJS.ProcessEnv): S3Client {
  const accessKeyId = env[ACCESS_KEY_ENV];
  const secretAccessKey = env[SECRET_KEY_ENV];
  return new S3Client({
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
  });
}

