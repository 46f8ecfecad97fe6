import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getCondition, isReady, notReady, ready, readyCondition, setCondition } from '../../functions/conditions.ts';
import type { Condition } from '../../functions/types.ts';

const t0 = new Date('2025-01-01T00:00:00.500Z');
const t1 = new Date('2025-01-01T01:00:00Z');

test('setCondition adds a condition with the transition time and generation', () => {
  const list = setCondition(undefined, notReady('SecretNotFound', 'secret x not found'), t0, 3);
  assert.equal(list, [
    { type: 'Ready', status: 'False', observedGeneration: 3, lastTransitionTime: '2025-01-01T00:00:00Z', reason: 'SecretNotFound', message: 'secret x not found' },
  ]);
});

test('setCondition keeps lastTransitionTime while the status stays, moves it on a flip', () => {
  const first = setCondition([], notReady('RolloutPending', '0/1 ready'), t0, 1);
  const same = setCondition(first, notReady('CertificatePending', 'waiting'), t1, 2);
  assert.is(same[0]?.lastTransitionTime, '2025-01-01T00:00:00Z');
  assert.is(same[0]?.reason, 'CertificatePending');
  assert.is(same[0]?.observedGeneration, 2);
  const flipped = setCondition(same, ready('registry is ready'), t1, 2);
  assert.is(flipped[0]?.lastTransitionTime, '2025-01-01T01:00:00Z');
  assert.is(flipped[0]?.status, 'True');
});

test('setCondition does not mutate its input and keeps other conditions in order', () => {
  const input: Condition[] = [
    { type: 'Synced', status: 'True', lastTransitionTime: '2024-01-01T00:00:00Z', reason: 'Ok', message: '' },
    { type: 'Ready', status: 'False', lastTransitionTime: '2024-01-01T00:00:00Z', reason: 'Pending', message: 'x' },
  ];
  const snapshot = structuredClone(input);
  const out = setCondition(input, ready('fine'), t1);
  assert.equal(input, snapshot);
  assert.equal(out.map((c) => c.type), ['Synced', 'Ready']);
  assert.is.not(out[0], input[0]);
  assert.is(out[1]?.observedGeneration, undefined);
  const added = setCondition(input, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }, t1);
  assert.equal(added.map((c) => c.type), ['Synced', 'Ready', 'Degraded']);
});

test('setCondition rejects reasons the API server would reject', () => {
  assert.throws(() => setCondition([], notReady('not ready', 'x'), t0), /PascalCase/);
  assert.throws(() => setCondition([], notReady('', 'x'), t0), /PascalCase/);
});

test('readyCondition helpers', () => {
  assert.equal(readyCondition(true, 'Ready', 'ok'), { type: 'Ready', status: 'True', reason: 'Ready', message: 'ok' });
  assert.equal(ready('ok'), { type: 'Ready', status: 'True', reason: 'Ready', message: 'ok' });
  assert.equal(notReady('SecretNotFound', 'm'), { type: 'Ready', status: 'False', reason: 'SecretNotFound', message: 'm' });
});

test('isReady needs Ready=True for the current generation', () => {
  const conditions = setCondition([], ready('ok'), t0, 2);
  assert.ok(isReady({ metadata: { generation: 2 }, status: { conditions } }));
  assert.not.ok(isReady({ metadata: { generation: 3 }, status: { conditions } }));
  assert.ok(isReady({ status: { conditions } }));
  assert.not.ok(isReady({ metadata: { generation: 2 }, status: { conditions: setCondition([], notReady('X', 'x'), t0, 2) } }));
  assert.not.ok(isReady({}));
  assert.is(getCondition(conditions, 'Ready')?.status, 'True');
  assert.is(getCondition(conditions, 'Other'), undefined);
});

test.run();
