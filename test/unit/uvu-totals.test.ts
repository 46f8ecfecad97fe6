import { test } from 'uvu';
import * as assert from 'uvu/assert';
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

test.run();
