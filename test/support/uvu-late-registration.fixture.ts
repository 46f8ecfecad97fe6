// Fixture for test/unit/uvu-totals.test.ts (not a test file itself): one test registered before
// .run() and one after it, which uvu alone would silently never run.
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';

test('registered before run()', () => assert.ok(true));
test.run();
test('registered after run()', () => assert.ok(true));

const named = suite('named suite never run');
named('in a suite without run()', () => assert.ok(true));
