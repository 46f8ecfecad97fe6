// A large OCI image for data-plane benchmarks: one *uncompressed* tar layer holding one file of
// random bytes (incompressible, so no transport compression could flatter a figure), written in
// 1 MiB pieces and hashed as it is written. Copy it with `skopeo copy --preserve-digests` so the
// layer stays uncompressed (skopeo would otherwise be free to compress it on the way).
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

export interface LargeImage {
  dir: string;
  tag: string;
  reference: string;
  layerBytes: number;
  layerDigest: string;
}

export function writeLargeOciImage(dir: string, tag: string, sizeBytes: number): LargeImage {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const tmp = join(blobs, 'layer.tmp');
  const fd = openSync(tmp, 'w');
  const hash = createHash('sha256');
  const write = (data: Buffer) => {
    hash.update(data);
    writeSync(fd, data);
  };
  write(tarHeader('random.bin', sizeBytes));
  const chunk = Buffer.alloc(1024 * 1024);
  for (let left = sizeBytes; left > 0; left -= chunk.length) {
    const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
    randomFillSync(piece);
    write(piece);
  }
  write(Buffer.alloc(((512 - (sizeBytes % 512)) % 512) + 1024));
  closeSync(fd);
  const layerHex = hash.digest('hex');
  const layerBytes = 512 + sizeBytes + ((512 - (sizeBytes % 512)) % 512) + 1024;
  renameSync(tmp, join(blobs, layerHex));
  const blob = (data: Buffer) => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return `sha256:${hex}`;
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] } }));
  const configDigest = blob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: OCI_LAYER_TAR, digest: `sha256:${layerHex}`, size: layerBytes }],
    }),
  );
  const manifestDigest = blob(manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return { dir, tag, reference: `oci:${dir}:${tag}`, layerBytes, layerDigest: `sha256:${layerHex}` };
}

function tarHeader(path: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(path, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}
