// A minimal OCI image layout on disk (oci-layout, index.json, blobs/sha256/…): gzip layers with
// the given files (one layer, or one per file map), an image config and a manifest tagged in
// index.json. skopeo copies it with
// `oci:<dir>:<tag>`, so the end-to-end tests push real images without a Docker engine.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface OciImage {
  dir: string;
  tag: string;
  /** `oci:<dir>:<tag>`, as skopeo names it */
  reference: string;
  manifestDigest: string;
  configDigest: string;
  /** the first layer's */
  layerDigest: string;
  layers: { digest: string; size: number }[];
}

/** Writes an image whose layer holds `files` (path → content), or one layer per file map, into a new layout at dir. */
export function writeOciImage(dir: string, tag: string, files: Record<string, string> | Record<string, string>[]): OciImage {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const tars = (Array.isArray(files) ? files : [files]).map(tarArchive);
  const layers = tars.map((tar) => {
    const layer = gzipSync(tar);
    return { digest: writeBlob(dir, layer), size: layer.length };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: tars.map(digest) },
    }),
  );
  const configDigest = writeBlob(dir, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((layer) => ({ mediaType: OCI_LAYER_GZIP, ...layer })),
    }),
  );
  const manifestDigest = writeBlob(dir, manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir, tag, reference: `oci:${dir}:${tag}`, manifestDigest, configDigest, layerDigest: layers[0]?.digest ?? '', layers };
}

/** Reads the files of every layer of the image tagged `tag` in an OCI layout (e.g. one skopeo pulled). */
export function readOciImageFiles(dir: string, tag: string): Record<string, string> {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no image tagged ${tag} in ${dir}`);
  const manifest = JSON.parse(readBlob(dir, entry.digest).toString('utf8')) as { layers: { digest: string; mediaType: string }[] };
  const files: Record<string, string> = {};
  for (const layer of manifest.layers) {
    const blob = readBlob(dir, layer.digest);
    const tar = layer.mediaType.endsWith('+gzip') ? gunzipSync(blob) : blob;
    Object.assign(files, untar(tar));
  }
  return files;
}

/**
 * Gives the image tagged `tag` in an OCI layout (e.g. one skopeo copied there) a config with these
 * labels and a layer with `files` on top, under the same tag: another image (its config digest is
 * the image ID runtimes key it by), so a test can pull and remove it without touching the image it
 * came from, and a layer no node has yet. Returns the digests of the blobs that are new.
 */
export function extendOciImage(dir: string, tag: string, labels: Record<string, string>, files: Record<string, string>): { manifestDigest: string; configDigest: string; layerDigest: string } {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no image tagged ${tag} in ${dir}`);
  type Manifest = { config: { digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] };
  type Config = { config?: { Labels?: Record<string, string> }; rootfs: { type: string; diff_ids: string[] } };
  const manifest = JSON.parse(readBlob(dir, entry.digest).toString('utf8')) as Manifest;
  const config = JSON.parse(readBlob(dir, manifest.config.digest).toString('utf8')) as Config;
  const tar = tarArchive(files);
  const layer = gzipSync(tar);
  const layerDigest = writeBlob(dir, layer);
  const extended = Buffer.from(JSON.stringify({
    ...config,
    config: { ...config.config, Labels: { ...config.config?.Labels, ...labels } },
    rootfs: { ...config.rootfs, diff_ids: [...config.rootfs.diff_ids, digest(tar)] },
  }));
  const configDigest = writeBlob(dir, extended);
  const newManifest = Buffer.from(JSON.stringify({
    ...manifest,
    config: { ...manifest.config, digest: configDigest, size: extended.length },
    layers: [...manifest.layers, { mediaType: OCI_LAYER_GZIP, digest: layerDigest, size: layer.length }],
  }));
  const manifestDigest = writeBlob(dir, newManifest);
  entry.digest = manifestDigest;
  entry.size = newManifest.length;
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  return { manifestDigest, configDigest, layerDigest };
}

export function digest(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function writeBlob(dir: string, data: Buffer): string {
  const d = digest(data);
  writeFileSync(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)), data);
  return d;
}

function readBlob(dir: string, d: string): Buffer {
  const data = readFileSync(join(dir, 'blobs', 'sha256', d.replace(/^sha256:/, '')));
  if (digest(data) !== d) throw new Error(`blob ${d} in ${dir} does not match its digest`);
  return data;
}

// ustar: a 512-byte header per file, the content padded to 512 bytes, two zero blocks at the end.
function tarArchive(files: Record<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [path, text] of Object.entries(files)) {
    const content = Buffer.from(text, 'utf8');
    if (Buffer.byteLength(path) > 100) throw new Error(`tar path too long for this writer: ${path}`);
    const header = Buffer.alloc(512);
    header.write(path, 0, 100, 'utf8');
    header.write('0000644\0', 100); // mode
    header.write('0000000\0', 108); // uid
    header.write('0000000\0', 116); // gid
    header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write('00000000000\0', 136); // mtime 0: the same files give the same digest
    header.write('        ', 148); // checksum field counts as spaces while summing
    header.write('0', 156); // regular file
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

function untar(tar: Buffer): Record<string, string> {
  const files: Record<string, string> = {};
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    offset += 512;
    if (type === '0' || type === '\0') files[name] = tar.subarray(offset, offset + size).toString('utf8');
    offset += Math.ceil(size / 512) * 512;
  }
  return files;
}
