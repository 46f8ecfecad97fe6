// Loaded with `--import` into every test file's process by test/run.ts: a test registered after
// its suite's `.run()` (or in a suite never run) never runs, and uvu says nothing about it. This
// makes uvu record its suites; at exit every test still waiting to run is named, on one line
// parseUvuTotals counts as failures, and the exit code is set.
import { registerHooks } from 'node:module';

/** The line printed for tests that never ran; test/support/uvu-totals.ts counts them. */
export const NEVER_RAN_PREFIX = 'uvu-guard: tests registered but never run (after .run()?):';

interface UvuContext {
  tests: { name: string }[];
  only: { name: string }[];
  state: { __suite__?: string };
}

const SETUP = "function setup(ctx, name = '') {";
const contexts: UvuContext[] = [];
(globalThis as { UVU_GUARD_CONTEXTS?: UvuContext[] }).UVU_GUARD_CONTEXTS = contexts;

registerHooks({
  load(url, context, nextLoad) {
    const loaded = nextLoad(url, context);
    if (!/\/node_modules\/uvu\/dist\/index\.mjs$/.test(url)) return loaded;
    const source = String(loaded.source);
    if (!source.includes(SETUP)) throw new Error(`test/support/uvu-guard.ts: uvu's ${url} has no "${SETUP}"; update the guard for this uvu version`);
    return { ...loaded, source: source.replace(SETUP, `${SETUP}\n\tglobalThis.UVU_GUARD_CONTEXTS?.push(ctx);`) };
  },
});

process.on('exit', () => {
  const waiting = contexts.flatMap((ctx) => [...ctx.tests, ...ctx.only].map((t) => (ctx.state.__suite__ ? `${ctx.state.__suite__}: ${t.name}` : t.name)));
  if (waiting.length === 0) return;
  process.stdout.write(`\n${NEVER_RAN_PREFIX} ${waiting.length} ${JSON.stringify(waiting)}\n`);
  process.exitCode = 1;
});
