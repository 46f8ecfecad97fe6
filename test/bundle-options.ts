// The esbuild options every product bundle is built with (test/build.ts; the benchmark's profiled
// variant of an entry uses the same, so its profile describes the shipped code).
//
// What a Job pays before its first API request grows with the bytes V8 has to parse and the module
// bodies it has to run, so the bundles leave out what no entry point can reach
// (`npm run bench -- --only 2` measures it; test/bench/RESULTS.md §2):
// - Node built-ins are loaded with require(), never an ES module import (see below).
// - npm dependencies are treated as free of side effects at import, so modules whose exports
//   nothing uses are dropped. @kubernetes/client-node's root re-exports everything; without this,
//   Exec/Attach/PortForward/cp (ws, tar-fs, …) stay in every bundle although nothing calls them.
//   Its polyfill.js is the one module that exists for its side effect and is kept as it is.
// - client-node imports only `fetch`, `Agent` and `ProxyAgent` from undici, a CommonJS package
//   whose index.js loads everything (mock agents, cache stores, WebSocket, …): those three come
//   from undici's own modules instead.
// - undici's experimental Milo HTTP parser (opt-in via UNDICI_USE_MILO; llhttp is the default) is
//   left out the way undici's own esbuild build for Node.js core does it (`esbuildDetection`).
import type { BuildOptions, Plugin } from 'esbuild';
import { dirname, join } from 'node:path';
import { createRequire, isBuiltin } from 'node:module';

// ESM bundles that pull in CommonJS packages need a real `require`.
export const banner = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

/**
 * What client-node's modules import from undici, taken from undici's own files. Like undici's
 * index.js, it gives dispatchers the request API (ProxyAgent tunnels with Client#connect).
 */
const UNDICI_SUBSET = `
import Dispatcher from './lib/dispatcher/dispatcher.js';
import api from './lib/api/index.js';
Object.assign(Dispatcher.prototype, api);
export { default as Agent } from './lib/dispatcher/agent.js';
export { default as ProxyAgent } from './lib/dispatcher/proxy-agent.js';
export { fetch } from './lib/web/fetch/index.js';
`;

const SIDE_EFFECTS_KEPT = /[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]polyfill\.js$/;

export const narrowDependencies: Plugin = {
  name: 'narrow-dependencies',
  setup(build) {
    // An ES module import of a Node built-in builds the module's ESM facade, which reads every
    // export, lazy ones included: `import … from 'node:http'` (client-node's config.js does) loads
    // and runs Node's own bundled copy of undici for http.WebSocket: a module of nothing but
    // `import 'node:http'` took ~100 ms more CPU than one that requires it (median of 21 each).
    // require() (the banner's) returns the module object without reading its lazy exports.
    build.onResolve({ filter: /^[a-z]/ }, (args) => {
      if (args.kind !== 'import-statement' || !isBuiltin(args.path)) return undefined;
      return { path: args.path, namespace: 'builtin-required' };
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin-required' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
    build.onResolve({ filter: /^undici$/ }, (args) => {
      if (!/[\\/]@kubernetes[\\/]client-node[\\/]/.test(args.importer)) return undefined;
      // the undici client-node itself resolves to (not whichever copy is hoisted elsewhere)
      const root = dirname(createRequire(args.importer).resolve('undici'));
      return { path: join(root, 'client-node-subset.js'), namespace: 'undici-subset', pluginData: { root } };
    });
    build.onLoad({ filter: /.*/, namespace: 'undici-subset' }, (args) => ({
      contents: UNDICI_SUBSET,
      resolveDir: (args.pluginData as { root: string }).root,
      loader: 'js',
    }));
    build.onResolve({ filter: /.*/ }, async (args) => {
      if ((args.pluginData as { resolving?: boolean } | undefined)?.resolving) return undefined;
      if (args.path.startsWith('node:') || args.namespace !== 'file' && args.namespace !== 'undici-subset') return undefined;
      // only imports of packages, or relative imports inside one
      const inPackage = /[\\/]node_modules[\\/]/.test(args.resolveDir);
      if (!inPackage && (args.path.startsWith('.') || args.path.startsWith('/'))) return undefined;
      const resolved = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { resolving: true } });
      if (resolved.errors.length > 0 || resolved.external || !/[\\/]node_modules[\\/]/.test(resolved.path)) return undefined;
      if (SIDE_EFFECTS_KEPT.test(resolved.path)) return undefined;
      return { path: resolved.path, namespace: resolved.namespace, sideEffects: false };
    });
  },
};

/** The options test/build.ts bundles every entry point with (minified ESM for Node 22+). */
export const bundleOptions: BuildOptions = {
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  banner: { js: banner },
  define: { esbuildDetection: 'true' },
  plugins: [narrowDependencies],
  legalComments: 'linked',
  logLevel: 'warning',
};
