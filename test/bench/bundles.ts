// The code the benchmarks run: the project's own bundles (built by test/build.ts, then copied to a
// private directory so a concurrent rebuild of dist/ cannot change them mid-run), the benchmark's
// helper processes bundled to plain .mjs (so no TypeScript loader sits in a measured process), and
// a variant of an entry bundle with a source map for attributing CPU profiles.
import { build, type Metafile } from 'esbuild';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { banner, bundleOptions } from '../bundle-options.ts';
import { buildBundles, repoRoot } from '../support/webhook.ts';

export interface AppDir {
  /** what /app is in the image: <root>/dist/<entry>.js */
  root: string;
  dist: string;
}

/** Runs `npm run build` (test/build.ts) and copies dist/ to a fresh directory laid out like the image's /app. */
export async function buildApp(): Promise<AppDir> {
  await buildBundles([]);
  const root = mkdtempSync(join(tmpdir(), 'iro-bench-app-'));
  const dist = join(root, 'dist');
  cpSync(join(repoRoot, 'dist'), dist, { recursive: true });
  return { root, dist };
}

/**
 * Sizes of the entry bundles in dist/ and of the chunks they import (following relative imports):
 * dist/chunks may also hold chunks of earlier builds, which no entry loads and the image never gets.
 */
export function bundleSizes(dist: string): { file: string; bytes: number }[] {
  const files = new Map<string, number>();
  const visit = (path: string) => {
    const file = relative(dist, path);
    if (files.has(file) || !existsSync(path)) return;
    files.set(file, statSync(path).size);
    const code = readFileSync(path, 'utf8');
    for (const match of code.matchAll(/["'](\.\.?\/[\w./-]+\.js)["']/g)) visit(join(dirname(path), match[1] as string));
  };
  for (const name of readdirSync(dist)) if (name.endsWith('.js')) visit(join(dist, name));
  return [...files].map(([file, bytes]) => ({ file, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/** Bundles a benchmark helper (TypeScript) into one .mjs that plain `node` runs. */
export async function bundleHelper(source: string, outDir: string, options: { asProduct?: boolean } = {}): Promise<string> {
  const name = source.replace(/^.*\//, '').replace(/\.ts$/, '');
  const outfile = join(outDir, `${name}.mjs`);
  // asProduct: the product's own options (minified, the same dependencies left out), for a floor to compare the entries with
  await build(options.asProduct
    ? { ...bundleOptions, entryPoints: [source], outfile, legalComments: 'none' }
    : { entryPoints: [source], outfile, bundle: true, format: 'esm', platform: 'node', target: 'node22', banner: { js: banner }, logLevel: 'warning' });
  return outfile;
}

/**
 * An entry bundled as test/build.ts does (its options, no code splitting) plus an
 * external source map and esbuild's metafile: the code is the same, the map lets a CPU profile's
 * positions be attributed to packages.
 */
export async function buildMappedVariant(source: string, name: string): Promise<{ file: string; map: string; metafile: Metafile }> {
  const outDir = mkdtempSync(join(tmpdir(), 'iro-bench-mapped-'));
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    ...bundleOptions,
    entryPoints: { [name]: join(repoRoot, source) },
    outdir: outDir,
    sourcemap: 'external',
    metafile: true,
  });
  // as test/build.ts does for dist/: the bundle is an ES module without Node having to detect it
  writeFileSync(join(outDir, 'package.json'), '{ "type": "module" }\n');
  return { file: join(outDir, `${name}.js`), map: join(outDir, `${name}.js.map`), metafile: result.metafile };
}

/** Bytes of a bundle by npm package (or top-level project directory), from an esbuild metafile. */
export function bytesByPackage(metafile: Metafile): { name: string; bytes: number }[] {
  const totals = new Map<string, number>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [path, input] of Object.entries(output.inputs)) {
      const name = packageOf(path);
      totals.set(name, (totals.get(name) ?? 0) + input.bytesInOutput);
    }
  }
  return [...totals].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/** `node_modules/@scope/pkg/...` → `@scope/pkg`; project files → their top directory (`functions`, `cronjobs`, …). */
export function packageOf(path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (match) return match[1] as string;
  const project = /(?:^|\/)(functions|webhooks|cronjobs|test)\//.exec(path);
  return project ? `${project[1]}/ (ours)` : path;
}
