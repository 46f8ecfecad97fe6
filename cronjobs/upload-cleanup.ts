// Job entry point (dist/upload-cleanup.js), run daily by each bucket registry's
// `<registry>-upload-cleanup` CronJob: aborts the incomplete multipart uploads that abandoned
// uploads leave in the bucket (functions/upload-cleanup.ts says why the registry cannot).
//
//   upload-cleanup --config /etc/docker/registry/config.yml [--older-than 168h]
//
// The bucket, region, endpoint and purge age come from the registry's own config.yml; the
// credentials from the same variables the registry reads (REGISTRY_STORAGE_S3_ACCESSKEY /
// _SECRETKEY), else the AWS SDK's default chain (workload identity). `--older-than` overrides
// the purge age for one run. Prints one JSON line with the counts; never a key.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, type ListMultipartUploadsCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { load } from 'js-yaml';
import { parseDuration } from '../functions/duration.ts';
import { abandonedUploads, bucketSettings, type MultipartUpload } from '../functions/upload-cleanup.ts';
import { s3Client } from './bucket.ts';
import { runEntryPoint } from './entry-point.ts';
import { errorMessage, log } from './log.ts';

/** Every multipart upload under the prefix, page by page. */
async function listMultipartUploads(client: S3Client, bucket: string, prefix: string): Promise<MultipartUpload[]> {
  const uploads: MultipartUpload[] = [];
  let page: ListMultipartUploadsCommandOutput | undefined;
  do {
    page = await client.send(new ListMultipartUploadsCommand({
      Bucket: bucket, Prefix: prefix,
      ...(page?.NextKeyMarker ? { KeyMarker: page.NextKeyMarker } : {}),
      ...(page?.NextUploadIdMarker ? { UploadIdMarker: page.NextUploadIdMarker } : {}),
    }));
    for (const upload of page.Uploads ?? []) {
      if (upload.Key && upload.UploadId && upload.Initiated) uploads.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated });
    }
  } while (page.IsTruncated && (page.NextKeyMarker || page.NextUploadIdMarker));
  return uploads;
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'older-than': { type: 'string' } } });
  if (!values.config) throw new Error('--config <path of the registry config.yml> is required');
  const settings = bucketSettings(load(readFileSync(values.config, 'utf8')));
  const maxAgeMs = values['older-than'] ? parseDuration(values['older-than']) : settings.purgeAgeMs;
  const client = s3Client(settings, env);
  const uploads = await listMultipartUploads(client, settings.bucket, settings.uploadsPrefix);
  const abandoned = abandonedUploads(uploads, settings.uploadsPrefix, new Date(), maxAgeMs);
  let failed = 0;
  for (const upload of abandoned) {
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: settings.bucket, Key: upload.key, UploadId: upload.uploadId }));
    } catch (error) {
      failed++;
      log('warn', 'could not abort a multipart upload', { key: upload.key, error: errorMessage(error) });
    }
  }
  log('info', 'abandoned uploads cleaned', { bucket: settings.bucket, olderThanSeconds: maxAgeMs / 1000, multipartUploads: uploads.length, aborted: abandoned.length - failed, failed });
  return failed === 0 ? 0 : 1;
}

runEntryPoint('upload-cleanup', () => main(process.argv.slice(2), process.env));
