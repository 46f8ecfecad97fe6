// The kubelet's atomic writer (pkg/volume/util/atomic_writer.go), as it updates a Secret or
// ConfigMap volume: the files go into a new timestamped directory, a `..data_tmp` symlink to it is
// renamed over `..data` (the one atomic step), the user-visible names are symlinks through `..data`,
// and the previous timestamped directory is deleted last. Processes watching the files (docker_auth's
// fsnotify, nginx reading certificates per handshake) see exactly what they would see in a pod.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AtomicWrite {
  /** the new timestamped directory's name, e.g. `..2026_11_28_04_40_01.123456789` */
  version: string;
  /** the one it replaced (deleted again), if any */
  previous?: string;
}

/**
 * Writes `files` (top-level names only) into dir the kubelet's way. `between` runs after the
 * `..data` swap and before the old directory is deleted, the moment the kubelet is between them.
 */
export function writeAtomic(dir: string, files: Record<string, string | Buffer>, options: { mode?: number; between?: () => void } = {}): AtomicWrite {
  mkdirSync(dir, { recursive: true });
  const now = new Date();
  const stamp = now.toISOString().slice(0, 19).replace(/[-T:]/g, '_');
  const version = `..${stamp}.${randomBytes(4).readUInt32BE(0).toString().padStart(9, '0').slice(0, 9)}`;
  const versionDir = join(dir, version);
  mkdirSync(versionDir, { mode: 0o755 });
  for (const [name, data] of Object.entries(files)) {
    if (name.includes('/') || name.startsWith('..')) throw new Error(`atomic writer: top-level names only, got ${name}`);
    const target = join(versionDir, name);
    writeFileSync(target, data);
    chmodSync(target, options.mode ?? 0o644);
  }
  const dataLink = join(dir, '..data');
  const previous = existsSync(dataLink) ? readlinkSync(dataLink) : undefined;
  const tmpLink = join(dir, '..data_tmp');
  rmSync(tmpLink, { force: true });
  symlinkSync(version, tmpLink);
  renameSync(tmpLink, dataLink);
  for (const name of Object.keys(files)) if (!existsSync(join(dir, name))) symlinkSync(join('..data', name), join(dir, name));
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith('..') && !(entry in files)) rmSync(join(dir, entry), { force: true });
  }
  options.between?.();
  if (previous && previous !== version) rmSync(join(dir, previous), { recursive: true, force: true });
  return { version, ...(previous ? { previous } : {}) };
}
