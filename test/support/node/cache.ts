// Where test/binaries/build.sh caches its builds (outside the repository, keyed by version); the
// node's assembled images are cached beside them.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheRoot(): string {
  return process.env.IRO_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'image-registry-operator');
}
