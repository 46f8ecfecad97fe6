// The registry's HTTP API spoken directly (no skopeo): small images made in memory, pushed blob by
// blob as docker and skopeo push, pulled with every digest verified, deleted by digest; and
// `registry garbage-collect` under the write freeze as the GC Job runs it (functions/maintenance.ts).
// For process tests and benchmarks that need hundreds of images in seconds.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';
import { freezeId, maintenanceFiles, type Freeze } from '../../functions/maintenance.ts';
import { awaitFreezeState, drainWrites, type Drain, type FreezeTarget } from '../../cronjobs/freeze.ts';
import { writeAtomic } from './atomic-writer.ts';
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST } from './oci-image.ts';
import { delay, run } from './processes.ts';

export interface Blob {
  digest: string;
  data: Buffer;
}

export interface Image {
  tag: string;
  digest: string;
  manifest: Buffer;
  blobs: Blob[];
  /** a layer only this image has: garbage once the image is deleted */
  own: Blob;
}

export const blob = (data: Buffer): Blob => ({ digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, data });

/** An image of a random layer of `ownBytes` of its own, then the `reused` layers, and a config of its own. */
export function newImage(tag: string, reused: Blob[], ownBytes = 2048): Image {
  const own = blob(randomBytes(ownBytes));
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag, nonce: randomBytes(8).toString('hex') })));
  const layers = [own, ...reused];
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.data.length },
    layers: layers.map((layer) => ({ mediaType: OCI_LAYER_GZIP, digest: layer.digest, size: layer.data.length })),
  }));
  return { tag, digest: blob(manifest).digest, manifest, blobs: [config, ...layers], own };
}

export interface Answer {
  status: number;
  body: Buffer;
  location?: string;
}

/**
 * One registry API client through a front (TLS verified), with a bearer token. `servername`: the
 * registry's hostname where host is a pod IP (the certificate names the hostname).
 */
export function registryClient(host: string, port: number, caPem: string, token: string, servername?: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: caPem });
  const call = (method: string, path: string, options: { body?: Buffer; contentType?: string; accept?: string } = {}): Promise<Answer> =>
    new Promise((resolve) => {
      const headers: Record<string, string | number> = { authorization: `Bearer ${token}` };
      if (options.accept) headers.accept = options.accept;
      if (options.body || method === 'PUT' || method === 'POST') {
        headers['content-type'] = options.contentType ?? 'application/octet-stream';
        headers['content-length'] = options.body?.length ?? 0;
      }
      const req = request({ host, port, ...(servername ? { servername } : {}), method, path, headers, agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ...(res.headers.location ? { location: res.headers.location } : {}) }));
        res.on('error', (error) => resolve({ status: 0, body: Buffer.from(error.message) }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => resolve({ status: 0, body: Buffer.from(error.message) }));
      req.end(options.body);
    });
  return { call, close: () => agent.destroy() };
}
export type RegistryClient = ReturnType<typeof registryClient>;

export type PushResult = { result: 'pushed' } | { result: 'refused'; message: string } | { result: 'failed'; why: string };

/** The freeze's refusal text (nginx's 503 with the maintenance body), else undefined. */
export const refusal = (answer: Answer): string | undefined => (answer.status === 503 && answer.body.includes('under maintenance') ? answer.body.toString() : undefined);

/** A push as docker and skopeo do it: blobs the registry has (HEAD 200) are not sent again. */
export async function pushImage(c: RegistryClient, repo: string, image: Image): Promise<PushResult> {
  const fail = (step: string, answer: Answer): PushResult => {
    const refused = refusal(answer);
    return refused ? { result: 'refused', message: refused } : { result: 'failed', why: `${step}: HTTP ${answer.status} ${answer.body.toString().slice(0, 200)}` };
  };
  for (const b of image.blobs) {
    const head = await c.call('HEAD', `/v2/${repo}/blobs/${b.digest}`);
    if (head.status === 200) continue;
    const started = await c.call('POST', `/v2/${repo}/blobs/uploads/`);
    if (started.status !== 202 || !started.location) return fail('POST upload', started);
    const url = new URL(started.location, 'https://registry.invalid');
    url.searchParams.set('digest', b.digest);
    const put = await c.call('PUT', `${url.pathname}${url.search}`, { body: b.data });
    if (put.status !== 201) return fail('PUT blob', put);
  }
  const manifest = await c.call('PUT', `/v2/${repo}/manifests/${image.tag}`, { body: image.manifest, contentType: OCI_MANIFEST });
  return manifest.status === 201 ? { result: 'pushed' } : fail('PUT manifest', manifest);
}

/** The image pulls whole: its manifest by tag, every blob with its digest verified. undefined = intact. */
export async function damage(c: RegistryClient, repo: string, image: Image): Promise<string | undefined> {
  const manifest = await c.call('GET', `/v2/${repo}/manifests/${image.tag}`, { accept: OCI_MANIFEST });
  if (manifest.status !== 200) return `manifest ${image.tag}: HTTP ${manifest.status} ${manifest.body.toString().slice(0, 120)}`;
  if (blob(manifest.body).digest !== image.digest) return `manifest ${image.tag}: another digest`;
  for (const b of image.blobs) {
    const got = await c.call('GET', `/v2/${repo}/blobs/${b.digest}`);
    if (got.status !== 200) return `blob ${b.digest.slice(0, 19)} of ${image.tag}: HTTP ${got.status} ${got.body.toString().slice(0, 120)}`;
    if (blob(got.body).digest !== b.digest) return `blob ${b.digest.slice(0, 19)} of ${image.tag}: ${got.body.length} bytes that do not match`;
  }
  return undefined;
}

/**
 * Deletes the image; undefined when the registry did, else its answer (GC took the manifest: 404).
 * The registry deletes the manifest, then reads every tag's link to untag it — and the filesystem
 * driver rewrites a link in place (truncate, then write): a tag pushed at that moment reads as
 * empty, and the answer is 500 "invalid checksum digest format" with the manifest already gone.
 * That race is distribution's own, of a delete beside a push, not of garbage collection: such a
 * delete is asked again, and its 404 then means the first one did it.
 */
export async function removeImage(c: RegistryClient, repo: string, image: Image): Promise<string | undefined> {
  let torn = false;
  for (let attempt = 1; ; attempt++) {
    const answer = await c.call('DELETE', `/v2/${repo}/manifests/${image.digest}`);
    if (answer.status === 202 || (torn && answer.status === 404)) return undefined;
    torn = answer.status === 500 && answer.body.includes('invalid checksum digest format');
    if (!torn || attempt === 5) return `manifest ${image.tag}: DELETE HTTP ${answer.status} ${answer.body.toString().slice(0, 120)}`;
    await delay(200);
  }
}

/** `registry garbage-collect [flags] <config>` as the GC Job runs it: its wall time and output. Throws when it fails. */
export async function garbageCollect(registryBinary: string, config: string, env: NodeJS.ProcessEnv = {}, flags: string[] = []): Promise<{ ms: number; output: string }> {
  const started = Date.now();
  const gc = await run(registryBinary, ['garbage-collect', ...flags, config], { timeoutMs: 600_000, env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', ...env } });
  if (gc.code !== 0) throw new Error(`registry garbage-collect failed (${gc.code}): ${gc.stderr.slice(-2000)}`);
  return { ms: Date.now() - started, output: `${gc.stdout}\n${gc.stderr}` };
}

/**
 * `work` under the write freeze, the way the GC Job holds it: the maintenance files for the fronts
 * written (the kubelet's way), the freeze confirmed on every front, the writes in flight drained
 * (drainWrites, the Job's own), `work`, the freeze lifted and the lift confirmed. Throws when a
 * confirmation times out. `onDrain` hears how the drain went.
 */
export async function underFreeze<T>(options: { maintenanceDir: string; targets: readonly FreezeTarget[]; run: string; holdMs?: number; onDrain?: (drain: Drain) => void }, work: () => Promise<T>): Promise<T> {
  const from = new Date();
  const frozen: Freeze = { id: freezeId(options.run, from), reason: 'garbage collection', from, until: new Date(from.getTime() + (options.holdMs ?? 120_000)) };
  writeAtomic(options.maintenanceDir, maintenanceFiles(frozen));
  const holding = await awaitFreezeState(options.targets, 'frozen', frozen.id, { timeoutMs: 20_000 });
  if (holding.length) throw new Error(`the freeze does not hold: ${holding.map((p) => p.last).join('; ')}`);
  const drain = await drainWrites(options.targets);
  options.onDrain?.(drain);
  const result = await work();
  writeAtomic(options.maintenanceDir, maintenanceFiles(undefined));
  const open = await awaitFreezeState(options.targets, 'open', frozen.id, { timeoutMs: 20_000 });
  if (open.length) throw new Error(`the freeze is not lifted: ${open.map((p) => p.last).join('; ')}`);
  return result;
}
