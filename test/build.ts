// `npm run build`: bundles each entry point into one minified ESM file in dist/.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { bundleOptions } from './bundle-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** dist/<name>.js ← source entry point */
export const entryPoints: Record<string, string> = {
  reconcile: 'cronjobs/reconcile.ts',
  rotate: 'cronjobs/rotate.ts',
  resync: 'cronjobs/resync.ts',
  webhook: 'webhooks/server.ts',
  bootstrap: 'cronjobs/bootstrap.ts',
  'upload-cleanup': 'cronjobs/upload-cleanup.ts',
  // garbage collection: the registry's CronJob (freeze, GC Job, lift) and the GC pod's retention container
  'garbage-collect': 'cronjobs/garbage-collect.ts',
  'gc-retention': 'cronjobs/gc-retention.ts',
  // the node-trust Jobs of kustomize/node-trust (writes certs.d on one node; no API access)
  'node-trust': 'cronjobs/node-trust.ts',
  // not an entry of its own: the bcrypt pool's worker thread (cronjobs/passwords.ts loads it from beside the entry)
  'bcrypt-worker': 'cronjobs/bcrypt-worker.ts',
};

// `test/build.ts webhook bootstrap` builds only the named entry points
const only = process.argv.slice(2);
// Entry points whose dynamic imports become chunks in dist/chunks/, read only when first needed:
// the webhook listens without parsing @kubernetes/client-node (~1 MB with undici) and loads it right after.
const splitEntries = new Set(['webhook']);

for (const [name, source] of Object.entries(entryPoints).filter(([name]) => only.length === 0 || only.includes(name))) {
  // chunk names carry a content hash: without this, chunks of earlier builds would pile up (and ship)
  if (splitEntries.has(name)) rmSync(`${root}dist/chunks`, { recursive: true, force: true });
  const outfile = `${root}dist/${name}.js`;
  await build({
    ...bundleOptions,
    entryPoints: { [name]: `${root}${source}` },
    outdir: `${root}dist`,
    ...(splitEntries.has(name) ? { splitting: true, chunkNames: 'chunks/[name]-[hash]' } : {}),
  });
  console.log(`dist/${name}.js ${(statSync(outfile).size / 1024).toFixed(0)} KiB`);
}

// The image copies dist/ without the repository's package.json. Marking the bundles as ES modules
// spares Node detecting their format by syntax (a second parse of each bundle: 7–12 ms of CPU
// in every Job's cold start with the earlier 1.8 MB bundles; measured by `npm run bench`, test/bench/RESULTS.md).
writeFileSync(`${root}dist/package.json`, '{ "type": "module" }\n');
