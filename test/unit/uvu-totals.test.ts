import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseUvuTotals } from '../support/uvu-totals.ts';

const summary = (total: number, passed: number, skipped: number) =>
  `\n  Total:     ${total}\n  Passed:    ${passed}\n  Skipped:   ${skipped}\n  Duration:  1.2ms\n`;

test('counts passes, failures and skips from uvu totals', () => {
  assert.equal(parseUvuTotals(summary(10, 7, 1), 1), { passed: 7, failed: 3, skipped: 1 });
});

test('reads totals through ANSI colour codes', () => {
  assert.equal(parseUvuTotals('\x1b[2m  Total:     \x1b[0m3\n  Passed:    \x1b[32m3\x1b[0m\n  Skipped:   0', 0), { passed: 3, failed: 0, skipped: 0 });
});

test('a file that died before its totals counts as one failure', () => {
  assert.equal(parseUvuTotals('TypeError: boom\n', 1), { passed: 0, failed: 1, skipped: 0 });
});

test('a non-zero exit after all-passing totals still counts as a failure', () => {
  assert.equal(parseUvuTotals(summary(2, 2, 0), 1), { passed: 2, failed: 1, skipped: 0 });
});

test('tests registered after .run() (or in a suite never run) count as failures, through the guard test/run.ts loads', () => {
  const guard = fileURLToPath(new URL('../support/uvu-guard.ts', import.meta.url));
  const fixture = fileURLToPath(new URL('../support/uvu-late-registration.fixture.ts', import.meta.url));
  // this file itself may run under the guard (npm test): the runs here choose for themselves
  const execArgv = process.execArgv.filter((arg, i, all) => arg !== guard && !(arg === '--import' && all[i + 1] === guard));
  const child = spawnSync(process.execPath, [...execArgv, '--import', guard, fixture], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
  const output = child.stdout + child.stderr;
  assert.match(output, /never run \(after \.run\(\)\?\): 2 \["registered after run\(\)","named suite never run: in a suite without run\(\)"\]/, output);
  assert.is(child.status, 1);
  assert.equal(parseUvuTotals(output, child.status ?? 1), { passed: 1, failed: 2, skipped: 0 });
  // without the guard uvu reports all passed
  const unguarded = spawnSync(process.execPath, [...execArgv, fixture], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
  assert.equal(parseUvuTotals(unguarded.stdout, unguarded.status ?? 1), { passed: 1, failed: 0, skipped: 0 });
});

test('the guard\'s line is counted even when uvu printed totals', () => {
  assert.equal(parseUvuTotals(`${summary(3, 3, 0)}\nuvu-guard: tests registered but never run (after .run()?): 2 ["a","b"]\n`, 1), { passed: 3, failed: 2, skipped: 0 });
});

test.run();
