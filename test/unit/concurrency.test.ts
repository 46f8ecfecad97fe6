import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalJson, mapLimit } from '../../cronjobs/concurrency.ts';

test('mapLimit keeps input order and never runs more than the limit at once', async () => {
  let running = 0;
  let peak = 0;
  const results = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (ms, i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, ms));
    running--;
    return `${i}:${ms}`;
  });
  assert.equal(results, ['0:5', '1:1', '2:4', '3:2', '4:3', '5:0']);
  assert.is(peak, 2);
});

test('mapLimit propagates the first failure', async () => {
  try {
    await mapLimit([1, 2, 3], 3, async (n) => {
      if (n === 2) throw new Error('boom');
      return n;
    });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.is((error as Error).message, 'boom');
  }
});

test('canonicalJson ignores key order but not values or array order', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }));
  assert.is.not(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
  assert.is.not(canonicalJson({ a: 1 }), canonicalJson({ a: '1' }));
});

test.run();
