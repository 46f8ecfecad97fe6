// Builds and runs test/go-pattern-check, the Go program that tells how Go itself (regexp.Compile,
// path.Match) judges ACL match patterns. The build is cached outside the repository like
// test/binaries/build.sh's, keyed by the Go version and a hash of the program's source.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const sourceDir = fileURLToPath(new URL('../go-pattern-check', import.meta.url));

export interface GoVerdict {
  /** regexp.Compile's error text, or null when it compiles */
  regexp: string | null;
  /** path.Match's error text (ErrBadPattern), or null when the glob is well-formed */
  glob: string | null;
}

export interface GoUnicodeNames {
  version: string;
  categories: string[];
  scripts: string[];
  aliases: string[];
}

function cacheRoot(): string {
  return process.env.IRO_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'image-registry-operator');
}

const goEnv = () => ({ ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' });

/** The built program's path, or why it cannot be had (no Go toolchain, a failed build). */
export function goPatternCheck(): { binary: string; goVersion: string } | { unavailable: string } {
  const version = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv() });
  if (version.error || version.status !== 0) return { unavailable: `no Go toolchain: ${version.error?.message ?? version.stderr.trim()}` };
  const goVersion = version.stdout.trim();
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'main.go']) hash.update(readFileSync(join(sourceDir, file)));
  const dir = join(cacheRoot(), 'build', `go-pattern-check-${goVersion}-${hash.digest('hex').slice(0, 12)}`);
  const binary = join(dir, 'go-pattern-check');
  if (existsSync(binary)) return { binary, goVersion };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const built = spawnSync('go', ['build', '-trimpath', '-o', join(tmp, 'go-pattern-check'), '.'], { cwd: sourceDir, encoding: 'utf8', env: goEnv(), timeout: 300_000 });
  if (built.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    return { unavailable: `go build of test/go-pattern-check failed: ${built.error?.message ?? built.stderr.trim()}` };
  }
  try {
    renameSync(tmp, dir);
  } catch (error) {
    // another test process built it at the same time
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(binary)) throw error;
  }
  return { binary, goVersion };
}

function runProgram(binary: string, args: string[], input: string): unknown {
  const result = spawnSync(binary, args, { input, encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120_000 });
  if (result.status !== 0) throw new Error(`go-pattern-check failed (${result.status ?? result.signal}): ${result.error?.message ?? result.stderr}`);
  return JSON.parse(result.stdout);
}

/** Go's verdicts on each pattern, in order. */
export function goVerdicts(binary: string, patterns: readonly string[]): GoVerdict[] {
  const verdicts = runProgram(binary, [], JSON.stringify(patterns)) as GoVerdict[];
  if (verdicts.length !== patterns.length) throw new Error(`go-pattern-check answered ${verdicts.length} verdicts for ${patterns.length} patterns`);
  return verdicts;
}

/** The Unicode tables this Go looks \p{Name} up in. */
export function goUnicodeNames(binary: string): GoUnicodeNames {
  return runProgram(binary, ['unicode-names'], '') as GoUnicodeNames;
}
