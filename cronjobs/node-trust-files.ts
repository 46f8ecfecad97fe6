// The node half of node trust (functions/node-trust.ts): writes the trust set into the certs.d
// directories of one node and removes what a deleted registry left. Only host directories that
// carry our marker are ever replaced or removed; everything else there (a user's own entries, other
// tools', `_default`) is left as it is.
//
// Every write is atomic for a reader (containerd reads hosts.toml at each pull): a new host
// directory is assembled under a temporary name and renamed into place; a file of an existing
// directory is written to a temporary file beside it and renamed over the old one. Removal takes
// hosts.toml first (the registry then falls back to containerd's defaults), the marker last.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  NODE_TRUST_MARKER,
  hasMirrorBlock,
  isTrustHost,
  mergeMirrorBlock,
  stripMirrorBlock,
  nodeTrustPlan,
  type ExistingHostDirectory,
  type HostDirectory,
  type TrustedRegistry,
  type TrustRoot,
} from '../functions/node-trust.ts';

/** Temporary directories and files of ours start with this (a host name never does). */
const TEMP_PREFIX = '.iro-tmp-';

export interface NodeTrustResult {
  written: string[];
  removed: string[];
  /** host directories of someone else for one of our hostnames: not touched */
  foreign: string[];
  /** someone else's hosts.toml with our caches merged in, or taken out again */
  merged: string[];
  unmerged: string[];
}

/** Brings the certs.d directories (`roots`: runtime → directory) to the set. */
export function applyNodeTrust(roots: Readonly<Record<TrustRoot, string>>, registries: readonly TrustedRegistry[]): NodeTrustResult {
  const existing: ExistingHostDirectory[] = [];
  for (const [root, dir] of Object.entries(roots) as [TrustRoot, string][]) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const name of readdirSync(dir)) {
      if (name.startsWith(TEMP_PREFIX)) removeStaleTemporary(join(dir, name));
      else if (isTrustHost(name) && isDirectory(join(dir, name))) {
        const owned = isFile(join(dir, name, NODE_TRUST_MARKER));
        existing.push({ root, host: name, owned, ...(!owned && hasMirrorBlock(readHostsToml(join(dir, name)) ?? '') ? { mirrorBlock: true } : {}) });
      }
    }
  }
  const plan = nodeTrustPlan(registries, existing);
  const where = (d: { root: TrustRoot; host: string }) => join(roots[d.root], d.host);
  for (const directory of plan.write) writeHostDirectory(where(directory), directory);
  for (const directory of plan.remove) removeHostDirectory(where(directory));
  for (const { directory, mirror } of plan.merge) replaceHostsToml(where(directory), mergeMirrorBlock(readHostsToml(where(directory)), mirror));
  for (const directory of plan.unmerge) replaceHostsToml(where(directory), stripMirrorBlock(readHostsToml(where(directory)) ?? ''));
  return {
    written: plan.write.map(where), removed: plan.remove.map(where), foreign: plan.foreign.map(where),
    merged: plan.merge.map(({ directory }) => where(directory)), unmerged: plan.unmerge.map(where),
  };
}

function readHostsToml(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, 'hosts.toml'), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Someone else's hosts.toml replaced atomically (a temporary file renamed over it); undefined: removed. */
function replaceHostsToml(dir: string, text: string | undefined): void {
  if (text === undefined) {
    rmSync(join(dir, 'hosts.toml'), { force: true });
    return;
  }
  if (text === readHostsToml(dir)) return;
  const temporary = join(dir, `${TEMP_PREFIX}hosts.toml-${process.pid}`);
  writeFileSync(temporary, text, { mode: 0o644 });
  renameSync(temporary, join(dir, 'hosts.toml'));
}

function writeHostDirectory(target: string, directory: HostDirectory): void {
  // the marker first: whatever happens next, the directory is known to be ours
  const names = [NODE_TRUST_MARKER, ...Object.keys(directory.files).filter((n) => n !== NODE_TRUST_MARKER && n !== 'hosts.toml'), ...('hosts.toml' in directory.files ? ['hosts.toml'] : [])];
  if (!isDirectory(target)) {
    const temporary = join(dirname(target), `${TEMP_PREFIX}${directory.host}-${process.pid}`);
    rmSync(temporary, { recursive: true, force: true });
    mkdirSync(temporary, { mode: 0o755 });
    for (const name of names) writeFileSync(join(temporary, name), directory.files[name] ?? '', { mode: 0o644 });
    renameSync(temporary, target);
    return;
  }
  removeOurTemporaries(target);
  // ca.crt before hosts.toml: hosts.toml never names a CA file that is not there
  for (const name of names) {
    const temporary = join(target, `${TEMP_PREFIX}${name}-${process.pid}`);
    writeFileSync(temporary, directory.files[name] ?? '', { mode: 0o644 });
    renameSync(temporary, join(target, name));
  }
}

/** Our files only, the marker last; the directory itself only when nothing else is in it. */
function removeHostDirectory(target: string): void {
  removeOurTemporaries(target);
  for (const name of ['hosts.toml', 'ca.crt', NODE_TRUST_MARKER]) {
    try {
      unlinkSync(join(target, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  try {
    rmdirSync(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** Temporary files a crashed run left in one of our host directories. */
function removeOurTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) if (name.startsWith(TEMP_PREFIX) && isFile(join(dir, name))) unlinkSync(join(dir, name));
}

/** A temporary directory a crashed run left: removed only when it holds our marker; a temporary file of ours always. */
function removeStaleTemporary(path: string): void {
  if (isDirectory(path)) {
    if (isFile(join(path, NODE_TRUST_MARKER))) rmSync(path, { recursive: true, force: true });
  } else if (isFile(path)) {
    unlinkSync(path);
  }
}

function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}
