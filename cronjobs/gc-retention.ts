// Entry point (dist/gc-retention.js) of the GC pod's retention container (functions/garbage-collection.ts,
// desiredGcJob). Beside it, the registry container serves the registry's storage on the pod's
// loopback without auth; this container
//
//   1. measures the blob bytes in the storage,
//   2. lists every repository and tag through that registry, reads each tag's push time from the
//      storage (the mtime, or the object's LastModified, of the tag's `current/link`: the registry
//      rewrites it on every push of the tag), and deletes what the retention policies leave out —
//      through the registry's API, so links stay the registry's business,
//   3. tells the registry container to stop serving and collect (`retention.done`), waits for its
//      exit code (`gc.exit`), and prints one report line (gcPodReportLine) with what went.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { load } from 'js-yaml';
import {
  EMPTY_JSON_BLOB, GC_CONFIG_DIR, KEEP_UNTAGGED_FILE, GC_REGISTRY_ADDRESS, GC_SETTINGS_ENV, GC_WORK_DIR, gcPodReportLine, parseGcOutput, retentionPlan,
  type GcPodReport, type GcPodSettings, type RepositoryState, type TagState,
} from '../functions/garbage-collection.ts';
import { bucketSettings } from '../functions/upload-cleanup.ts';
import { s3Client } from './bucket.ts';
import { runEntryPoint } from './entry-point.ts';
import { errorMessage, log } from './log.ts';

const API = `http://${GC_REGISTRY_ADDRESS}`;
const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const INDEX_TYPES = new Set(MANIFEST_TYPES.slice(0, 2));

/** What the run needs of the storage, read as the registry keeps it (`docker/registry/v2/…`). */
interface StorageReader {
  tagPushedAt(repository: string, tag: string): Promise<Date>;
  /** the bytes of every blob's data */
  blobBytes(): Promise<number>;
  blobSize(digest: string): Promise<number>;
}

function volumeReader(root: string): StorageReader {
  const v2 = join(root, 'docker/registry/v2');
  const blobData = (digest: string) => {
    const [algorithm = '', hex = ''] = digest.split(':');
    return join(v2, 'blobs', algorithm, hex.slice(0, 2), hex, 'data');
  };
  const walk = (dir: string): number => readdirSync(dir, { withFileTypes: true })
    .reduce((sum, entry) => sum + (entry.isDirectory() ? walk(join(dir, entry.name)) : entry.name === 'data' ? statSync(join(dir, entry.name)).size : 0), 0);
  return {
    tagPushedAt: async (repository, tag) => statSync(join(v2, 'repositories', repository, '_manifests/tags', tag, 'current/link')).mtime,
    blobBytes: async () => (existsSync(join(v2, 'blobs')) ? walk(join(v2, 'blobs')) : 0),
    blobSize: async (digest) => (existsSync(blobData(digest)) ? statSync(blobData(digest)).size : 0),
  };
}

function bucketReader(configPath: string, env: NodeJS.ProcessEnv): StorageReader {
  const settings = bucketSettings(load(readFileSync(configPath, 'utf8')));
  const client = s3Client(settings, env);
  const repositories = settings.uploadsPrefix;
  const blobs = repositories.replace(/repositories\/$/, 'blobs/');
  const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: settings.bucket, Key: key }));
  return {
    tagPushedAt: async (repository, tag) => (await head(`${repositories}${repository}/_manifests/tags/${tag}/current/link`)).LastModified ?? new Date(0),
    blobBytes: async () => {
      let total = 0;
      let page: ListObjectsV2CommandOutput | undefined;
      do {
        page = await client.send(new ListObjectsV2Command({ Bucket: settings.bucket, Prefix: blobs, ...(page?.NextContinuationToken ? { ContinuationToken: page.NextContinuationToken } : {}) }));
        total += (page.Contents ?? []).filter((o) => o.Key?.endsWith('/data')).reduce((sum, o) => sum + (o.Size ?? 0), 0);
      } while (page.IsTruncated && page.NextContinuationToken);
      return total;
    },
    blobSize: async (digest) => {
      const [algorithm = '', hex = ''] = digest.split(':');
      return head(`${blobs}${algorithm}/${hex.slice(0, 2)}/${hex}/data`).then((o) => o.ContentLength ?? 0, () => 0);
    },
  };
}

async function api(method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${API}${path}`, { method, headers, signal: AbortSignal.timeout(60_000) });
}

async function waitForRegistry(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const answer = await api('GET', '/v2/');
      if (answer.ok) return;
      last = `HTTP ${answer.status}`;
    } catch (error) {
      last = errorMessage(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the pod's loopback registry did not answer within ${timeoutMs / 1000} s: ${last}`);
}

/** Follows the Link header's rel="next", as distribution paginates the catalog and tag lists. */
async function listAll<T>(first: string, items: (body: T) => string[]): Promise<string[]> {
  const all: string[] = [];
  for (let path: string | undefined = first; path;) {
    const answer = await api('GET', path);
    if (answer.status === 404) break; // a repository whose tags are all gone
    if (!answer.ok) throw new Error(`GET ${path}: HTTP ${answer.status} ${await answer.text()}`);
    all.push(...items((await answer.json()) as T));
    path = /<([^>]+)>;\s*rel="next"/.exec(answer.headers.get('link') ?? '')?.[1];
  }
  return all;
}

async function tagState(storage: StorageReader, repository: string, tag: string): Promise<TagState> {
  const path = `/v2/${repository}/manifests/${encodeURIComponent(tag)}`;
  const head = await api('HEAD', path, { accept: MANIFEST_TYPES.join(', ') });
  const digest = head.headers.get('docker-content-digest');
  if (!head.ok || !digest) throw new Error(`HEAD ${path}: HTTP ${head.status}`);
  const state: TagState = { tag, digest, pushedAt: await storage.tagPushedAt(repository, tag) };
  if (!INDEX_TYPES.has(head.headers.get('content-type') ?? '')) return state;
  const index = (await (await api('GET', path, { accept: MANIFEST_TYPES.join(', ') })).json()) as { manifests?: { digest: string }[] };
  return { ...state, references: (index.manifests ?? []).map((m) => m.digest) };
}

/** Applies the retention policies; returns the tags and manifests deleted (or that a dry run would delete). */
interface RetentionOutcome {
  tags: number;
  manifests: number;
  keptInUse: string[];
  untaggedInUse: string[];
}

async function applyRetention(settings: GcPodSettings, storage: StorageReader, repositories: string[], problems: string[]): Promise<RetentionOutcome> {
  const none = { tags: 0, manifests: 0, keptInUse: [], untaggedInUse: [] };
  // with in-use images (retention or deleteUntagged on) every repository's tags are read: an
  // untagged manifest in use is found in repositories no policy covers too
  if (settings.retention.length === 0 && !settings.inUse) return none;
  const states: RepositoryState[] = [];
  for (const repository of repositories) {
    const tags = await listAll<{ tags?: string[] | null }>(`/v2/${repository}/tags/list?n=1000`, (body) => body.tags ?? []);
    states.push({ repository, tags: await Promise.all(tags.map((tag) => tagState(storage, repository, tag))) });
  }
  const plan = retentionPlan(states, settings.retention, new Date(), settings.inUse);
  // the collector's --delete-untagged would take a manifest the cluster runs by digest: not this run
  if (plan.untaggedInUse.length) writeFileSync(join(GC_WORK_DIR, KEEP_UNTAGGED_FILE), plan.untaggedInUse.join('\n'));
  const outcome = {
    tags: plan.deleteTags.length + plan.deleteManifests.reduce((n, m) => n + m.tags.length, 0), manifests: plan.deleteManifests.length,
    keptInUse: plan.keptInUse, untaggedInUse: plan.untaggedInUse,
  };
  log('info', settings.dryRun ? 'retention (dry run): would delete' : 'retention: deleting', { manifests: plan.deleteManifests, tags: plan.deleteTags, keptTags: plan.keptTags, keptInUse: plan.keptInUse, untaggedInUse: plan.untaggedInUse });
  if (settings.dryRun) return outcome;
  const remove = async (repository: string, reference: string) => {
    const answer = await api('DELETE', `/v2/${repository}/manifests/${encodeURIComponent(reference)}`);
    if (answer.status !== 202 && answer.status !== 404) problems.push(`DELETE ${repository}@${reference}: HTTP ${answer.status} ${(await answer.text()).slice(0, 200)}`);
  };
  for (const { repository, tag } of plan.deleteTags) await remove(repository, tag);
  for (const { repository, digest } of plan.deleteManifests) await remove(repository, digest);
  return outcome;
}

async function waitForFile(path: string): Promise<string> {
  // the pod's activeDeadlineSeconds bounds this wait
  while (!existsSync(path)) await new Promise((resolve) => setTimeout(resolve, 500));
  return readFileSync(path, 'utf8').trim();
}

/**
 * A cache's repositories each get a link to EMPTY_JSON_BLOB, through the loopback registry (so the
 * registry writes it, on a volume or in a bucket alike): the collector then finds a `_layers`
 * directory in every repository (GcPodSettings.linkEveryRepository says why). A dry run too:
 * without it, the dry run would fail where the run would.
 */
async function linkEveryRepository(repositories: readonly string[]): Promise<void> {
  for (const repository of repositories) {
    // an upload session, then its content with the digest (distribution starts a session for a POST with a body too)
    const session = await fetch(`${API}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await session.arrayBuffer();
    const location = session.headers.get('location');
    if (session.status !== 202 || !location) throw new Error(`linking ${repository}: upload session answered HTTP ${session.status}`);
    const url = new URL(location, API);
    url.searchParams.set('digest', EMPTY_JSON_BLOB.digest);
    const put = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: EMPTY_JSON_BLOB.content });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`linking ${repository}: HTTP ${put.status}`);
  }
}

async function main(env: NodeJS.ProcessEnv): Promise<number> {
  const settings = JSON.parse(env[GC_SETTINGS_ENV] ?? '') as GcPodSettings;
  const storage = settings.storage.kind === 'volume' ? volumeReader(settings.storage.root) : bucketReader(join(GC_CONFIG_DIR, 'config.yml'), env);
  const problems: string[] = [];
  let deleted: RetentionOutcome = { tags: 0, manifests: 0, keptInUse: [], untaggedInUse: [] };
  let bytesBefore = 0;
  try {
    await waitForRegistry(120_000);
    bytesBefore = await storage.blobBytes();
    const repositories = await listAll<{ repositories?: string[] }>('/v2/_catalog?n=1000', (body) => body.repositories ?? []);
    // the collector fails on a storage without repositories ("Path not found"): nothing to collect
    if (repositories.length === 0) writeFileSync(join(GC_WORK_DIR, 'nothing-stored'), '');
    deleted = await applyRetention(settings, storage, repositories, problems);
    if (settings.linkEveryRepository) await linkEveryRepository(repositories);
  } catch (error) {
    problems.push(`retention: ${errorMessage(error)}`);
  } finally {
    writeFileSync(join(GC_WORK_DIR, 'retention.done'), '');
  }
  const exitCode = Number(await waitForFile(join(GC_WORK_DIR, 'gc.exit')));
  const output = readFileSync(join(GC_WORK_DIR, 'gc.out'), 'utf8');
  const summary = parseGcOutput(output);
  if (exitCode !== 0) problems.push(`registry garbage-collect exited with ${exitCode}: ${output.trim().split('\n').slice(-3).join(' | ').slice(0, 500)}`);
  const storageBytes = await storage.blobBytes();
  const bytesReclaimed = settings.dryRun
    ? (await Promise.all((summary?.blobDigests ?? []).map((digest) => storage.blobSize(digest)))).reduce((a, b) => a + b, 0)
    : Math.max(0, bytesBefore - storageBytes);
  const report: GcPodReport = {
    dryRun: settings.dryRun,
    tagsDeleted: deleted.tags,
    manifestsDeleted: deleted.manifests + (summary?.manifestsDeleted ?? 0),
    blobsDeleted: summary?.blobsDeleted ?? 0,
    bytesReclaimed,
    storageBytes,
    problems,
    ...(deleted.keptInUse.length ? { keptInUse: deleted.keptInUse } : {}),
    ...(deleted.untaggedInUse.length ? { untaggedInUse: deleted.untaggedInUse } : {}),
  };
  console.log(gcPodReportLine(report));
  return problems.length === 0 ? 0 : 1;
}

runEntryPoint('gc-retention', () => main(process.env));
