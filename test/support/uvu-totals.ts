// Reads the totals uvu prints when a test file's suites have run.

/** The line test/support/uvu-guard.ts prints for tests that never ran, with their count. */
const NEVER_RAN = /^uvu-guard: tests registered but never run \(after \.run\(\)\?\): (\d+) /m;

/**
 * Reads uvu's closing totals; a file that died before printing them counts as one failure, and
 * each test the guard saw registered but never run counts as a failure.
 */
export function parseUvuTotals(output: string, exitCode: number): { passed: number; failed: number; skipped: number } {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const neverRan = Number(NEVER_RAN.exec(plain)?.[1] ?? 0);
  const counts = parseTotals(plain, neverRan > 0 ? 0 : exitCode);
  return { ...counts, failed: counts.failed + neverRan };
}

function parseTotals(plain: string, exitCode: number): { passed: number; failed: number; skipped: number } {
  const total = /Total:\s+(\d+)/.exec(plain);
  const passed = /Passed:\s+(\d+)/.exec(plain);
  const skipped = /Skipped:\s+(\d+)/.exec(plain);
  if (!total || !passed) return { passed: 0, failed: 1, skipped: 0 };
  const counts = { passed: Number(passed[1]), skipped: Number(skipped?.[1] ?? 0) };
  // uvu's Total counts the tests that ran; skipped ones are listed beside it
  const failed = Number(total[1]) - counts.passed;
  return { ...counts, failed: failed === 0 && exitCode !== 0 ? 1 : failed };
}
