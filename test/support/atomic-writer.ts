// The kubelet's atomic writer (pkg/volume/util/atomic_writer.go), as it updates a Secret, ConfigMap,
// projected or downwardAPI volume: the files go into a new timestamped directory, a `..data_tmp`
// symlink to it is renamed over `..data` (the one atomic step), the user-visible top-level names are
// symlinks through `..data`, and the previous timestamped directory is deleted last. Processes
// watching the files (docker_auth's fsnotify, nginx reading certificates per handshake) see exactly
// what they would see in a pod. The one model of it: the pod sandbox's volumes and the process and
// end-to-end tests that stand in for a volume sync all write through here.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

export interface AtomicWrite {
  /** the new timestamped directory's name, e.g. `..2026_11_28_04_40_01.123456789` */
  version: string;
  /** the one it replaced (deleted again), if any */
  previous?: string;
}

/** A file of the payload with a mode of its own (the kubelet's FileProjection). */
export interface FileProjection {
  data: string | Buffer;
  mode: number;
}

export interface AtomicWriteOptions {
  /** the mode of files given as bare data (default 0644) */
  mode?: number;
  /** the pod's fsGroup: the timestamped directory and the files become root:fsGroup (setOwnership) */
  fsGroup?: number | undefined;
  /** runs after the `..data` swap and before the old directory is deleted */
  between?: () => void;
}

/**
 * Writes the payload (relative path → data) into dir the kubelet's way. Paths may name
 * subdirectories (a volume item's `path: a/b`); `between` runs at the moment the kubelet is between
 * the swap and the deletion of the old directory.
 */
export function writeAtomic(dir: string, payload: Record<string, string | Buffer | FileProjection>, options: AtomicWriteOptions = {}): AtomicWrite {
  const files = Object.entries(payload).map(([path, file]) => ({ path: insidePath(path), ...projection(file, options.mode ?? 0o644) }));
  mkdirSync(dir, { recursive: true });
  const version = timestampedName(new Date());
  const versionDir = join(dir, version);
  mkdirSync(versionDir, { mode: 0o755 });
  setOwnership(versionDir, 0o755, options.fsGroup, true);
  for (const file of files) {
    const target = join(versionDir, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.data);
    setOwnership(target, file.mode, options.fsGroup, true);
  }
  const dataLink = join(dir, '..data');
  const previous = existsSync(dataLink) ? readlinkSync(dataLink) : undefined;
  const tmpLink = join(dir, '..data_tmp');
  rmSync(tmpLink, { force: true });
  symlinkSync(version, tmpLink);
  renameSync(tmpLink, dataLink);
  const topLevel = new Set(files.map((f) => f.path.split('/')[0] as string));
  for (const name of topLevel) if (!existsSync(join(dir, name))) symlinkSync(join('..data', name), join(dir, name));
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith('..') && !topLevel.has(entry)) rmSync(join(dir, entry), { force: true });
  }
  options.between?.();
  if (previous && previous !== version) rmSync(join(dir, previous), { recursive: true, force: true });
  return { version, ...(previous ? { previous } : {}) };
}

/**
 * As the kubelet applies fsGroup to a volume: group-owned, group-readable (read-only volumes) or
 * -writable, setgid directories; without an fsGroup only the mode.
 */
export function setOwnership(path: string, mode: number, fsGroup: number | undefined, readOnly: boolean): void {
  if (fsGroup === undefined) {
    chmodSync(path, mode);
    return;
  }
  chownSync(path, 0, fsGroup);
  const isDir = lstatSync(path).isDirectory();
  let effective = mode | (readOnly ? 0o440 : 0o660);
  if (isDir) effective |= 0o2000 | 0o110;
  chmodSync(path, effective);
}

const projection = (file: string | Buffer | FileProjection, mode: number): FileProjection =>
  typeof file === 'string' || Buffer.isBuffer(file) ? { data: file, mode } : file;

/** The kubelet refuses payload paths that are absolute or leave the volume. */
function insidePath(path: string): string {
  const clean = normalize(path);
  // a leading `..` also covers the writer's own `..data` and timestamped names
  if (clean.startsWith('/') || clean.startsWith('..')) throw new Error(`atomic writer: ${path} is not a path inside the volume`);
  return clean;
}

/** `..2006_01_02_15_04_05.<9 digits>`, the kubelet's timestamped directory name. */
function timestampedName(now: Date): string {
  const stamp = now.toISOString().slice(0, 19).replace(/[-T:]/g, '_');
  return `..${stamp}.${randomBytes(4).readUInt32BE(0).toString().padStart(9, '0').slice(0, 9)}`;
}
