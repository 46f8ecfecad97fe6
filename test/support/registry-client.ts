// A registry API client for the garbage collection tests: pushes as docker and skopeo do (a blob
// the registry has is not sent again), pulls with every digest verified, deletes by digest — with a
// bearer token the test signs (test/support/registry-token.ts), so no docker_auth is needed.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST } from './oci-image.ts';

export interface Blob {
  digest: string;
  data: Buffer;
}
export interface Image {
  repo: string;
  tag: string;
  digest: string;
  manifest: Buffer;
  blobs: Blob[];
  /** a layer only this image has: garbage once the image is deleted */
  own: Blob;
}

export const blob = (data: Buffer): Blob => ({ digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, data });

/** A new image of `repo`: a 2 KiB layer of its own (`own`), the reused layers, a config of its own. */
export function newImage(repo: string, tag: string, reused: Blob[], ownBytes = 2048): Image {
  const own = blob(randomBytes(ownBytes));
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag, nonce: randomBytes(8).toString('hex') })));
  const layers = [own, ...reused];
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.data.length },
    layers: layers.map((layer) => ({ mediaType: OCI_LAYER_GZIP, digest: layer.digest, size: layer.data.length })),
  }));
  return { repo, tag, digest: blob(manifest).digest, manifest, blobs: [config, ...layers], own };
}

export interface Answer {
  status: number;
  body: Buffer;
  location?: string;
}

/** One registry API client through the front (TLS verified), with a bearer token. */
export function registryClient(host: string, port: number, caPem: string, token: string, servername?: string) {
  // servername: the registry's hostname where host is a pod IP (the certificate names the hostname)
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

/** the write freeze's refusal (functions/maintenance.ts), or undefined */
export const refusal = (answer: Answer): string | undefined => (answer.status === 503 && answer.body.includes('under maintenance') ? answer.body.toString() : undefined);

/** A push as docker and skopeo do it: blobs the registry has (HEAD 200) are not sent again. */
export async function push(c: RegistryClient, image: Image): Promise<PushResult> {
  const fail = (step: string, answer: Answer): PushResult => {
    const refused = refusal(answer);
    return refused ? { result: 'refused', message: refused } : { result: 'failed', why: `${step}: HTTP ${answer.status} ${answer.body.toString().slice(0, 200)}` };
  };
  for (const b of image.blobs) {
    const head = await c.call('HEAD', `/v2/${image.repo}/blobs/${b.digest}`);
    if (head.status === 200) continue;
    const started = await c.call('POST', `/v2/${image.repo}/blobs/uploads/`);
    if (started.status !== 202 || !started.location) return fail('POST upload', started);
    const url = new URL(started.location, 'https://registry.invalid');
    url.searchParams.set('digest', b.digest);
    const put = await c.call('PUT', `${url.pathname}${url.search}`, { body: b.data });
    if (put.status !== 201) return fail('PUT blob', put);
  }
  const manifest = await c.call('PUT', `/v2/${image.repo}/manifests/${image.tag}`, { body: image.manifest, contentType: OCI_MANIFEST });
  return manifest.status === 201 ? { result: 'pushed' } : fail('PUT manifest', manifest);
}

/** The image pulls whole: its manifest by tag, every blob with its digest verified. undefined = intact. */
export async function damage(c: RegistryClient, image: Image): Promise<string | undefined> {
  const manifest = await c.call('GET', `/v2/${image.repo}/manifests/${image.tag}`, { accept: OCI_MANIFEST });
  if (manifest.status !== 200) return `manifest ${image.tag}: HTTP ${manifest.status} ${manifest.body.toString().slice(0, 120)}`;
  if (blob(manifest.body).digest !== image.digest) return `manifest ${image.tag}: another digest`;
  for (const b of image.blobs) {
    const got = await c.call('GET', `/v2/${image.repo}/blobs/${b.digest}`);
    if (got.status !== 200) return `blob ${b.digest.slice(0, 19)} of ${image.tag}: HTTP ${got.status} ${got.body.toString().slice(0, 120)}`;
    if (blob(got.body).digest !== b.digest) return `blob ${b.digest.slice(0, 19)} of ${image.tag}: ${got.body.length} bytes that do not match`;
  }
  return undefined;
}

/** Deletes the image; undefined when the registry did, else its answer (GC took the manifest: 404, or a 500 over a dangling link). */
export async function remove(c: RegistryClient, image: Image): Promise<string | undefined> {
  const answer = await c.call('DELETE', `/v2/${image.repo}/manifests/${image.digest}`);
  return answer.status === 202 ? undefined : `manifest ${image.tag}: DELETE HTTP ${answer.status} ${answer.body.toString().slice(0, 120)}`;
}
