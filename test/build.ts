// `npm run build`: bundles each entry point into one minified ESM file in dist/.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { statSync } from 'node:fs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** dist/<name>.js ← source entry point */
export const entryPoints: Record<string, string> = {
};

// ESM bundles that pull in CommonJS packages need a real `require`.
const banner = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

for (const [name, source] of Object.entries(entryPoints)) {
  const outfile = `${root}dist/${name}.js`;
  await build({
    entryPoints: [`${root}${source}`],
    outfile,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    banner: { js: banner },
    legalComments: 'linked',
    logLevel: 'warning',
  });
  console.log(`dist/${name}.js ${(statSync(outfile).size / 1024).toFixed(0)} KiB`);
}
