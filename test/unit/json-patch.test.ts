import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyJsonPatch,
  cloneJson,
  escapePointerToken,
  JsonPatchError,
  jsonEqual,
  missingAddOps,
  pointer,
  unescapePointerToken,
} from '../../functions/json-patch.ts';

test('pointer tokens escape ~ and / per RFC 6901 (~ first)', () => {
  assert.is(escapePointerToken('registry.mgoltzsche.github.com/registry'), 'registry.mgoltzsche.github.com~1registry');
  assert.is(escapePointerToken('a~/b'), 'a~0~1b');
  assert.is(escapePointerToken('~1'), '~01', 'a literal "~1" must not turn into "/"');
  assert.is(unescapePointerToken('~01'), '~1');
  assert.is(pointer('metadata', 'labels', 'a/b'), '/metadata/labels/a~1b');
  assert.is(pointer('spec', 'acl', 0), '/spec/acl/0');
});

test('missingAddOps adds whole subtrees where parents are missing, nothing that is present', () => {
  const target = { spec: { replicas: 3, pvc: { size: null } } };
  const ops = missingAddOps(target, { spec: { replicas: 1, pvc: { size: '8Gi', modes: ['RWO'] }, auth: { acl: [] } } });
  assert.equal(ops, [
    { op: 'add', path: '/spec/pvc/size', value: '8Gi' },
    { op: 'add', path: '/spec/pvc/modes', value: ['RWO'] },
    { op: 'add', path: '/spec/auth', value: { acl: [] } },
  ]);
  assert.equal(missingAddOps({}, { 'a/b': { '~': 1 } }), [{ op: 'add', path: '/a~1b', value: { '~': 1 } }]);
  assert.equal(missingAddOps({ spec: 'text' }, { spec: { replicas: 1 } }), [], 'a present value of another type is left alone');
  assert.equal(missingAddOps('not an object', { a: 1 }), []);
});

test('applyJsonPatch applies add/replace/remove/test to a copy', () => {
  const doc = { metadata: { labels: { 'a/b': 'x' } }, list: [1, 3] };
  const result = applyJsonPatch(doc, [
    { op: 'add', path: '/metadata/labels/c~1d', value: 'y' },
    { op: 'add', path: '/list/1', value: 2 },
    { op: 'add', path: '/list/-', value: 4 },
    { op: 'replace', path: '/metadata/labels/a~1b', value: 'z' },
    { op: 'test', path: '/list/0', value: 1 },
    { op: 'remove', path: '/list/3' },
  ]);
  assert.equal(result, { metadata: { labels: { 'a/b': 'z', 'c/d': 'y' } }, list: [1, 2, 3] });
  assert.equal(doc, { metadata: { labels: { 'a/b': 'x' } }, list: [1, 3] }, 'input unchanged');
});

test('applyJsonPatch refuses what RFC 6902 refuses', () => {
  const doc = { a: { b: 1 }, list: [1] };
  assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/missing/child', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/list/5', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/list/01', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'replace', path: '/a/c', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'remove', path: '' }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'test', path: '/a/b', value: 2 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: 'a', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
  assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/a/b/c', value: 1 }]), (error: unknown) => error instanceof JsonPatchError);
});

test('cloneJson copies JSON deeply; the copy shares nothing with the original', () => {
  const original = { a: [1, { b: 'c' }, null], d: { e: true, f: { g: [] as unknown[] } }, h: 0 };
  const copy = cloneJson(original);
  assert.equal(copy, original);
  copy.a.push(2);
  (copy.a[1] as { b: string }).b = 'changed';
  copy.d.f.g.push('x');
  assert.equal(original, { a: [1, { b: 'c' }, null], d: { e: true, f: { g: [] } }, h: 0 });
  assert.is(cloneJson('text'), 'text');
  assert.is(cloneJson(null), null);
  // the patch carries copies: changing an added value later does not change the patch
  const defaults = { spec: { acl: [{ actions: ['pull'] }] } };
  const [op] = missingAddOps({}, defaults);
  defaults.spec.acl[0]?.actions.push('push');
  assert.equal((op as { value: unknown }).value, { acl: [{ actions: ['pull'] }] });
});

test('jsonEqual compares JSON data regardless of key order', () => {
  assert.ok(jsonEqual({ a: 1, b: { c: [1, 'x', null], d: true } }, { b: { d: true, c: [1, 'x', null] }, a: 1 }));
  assert.ok(jsonEqual(undefined, null), 'absent and null are both "no value"');
  assert.ok(jsonEqual([undefined], [null]));
  assert.ok(jsonEqual([], []));
  assert.ok(jsonEqual({}, {}));
  assert.not.ok(jsonEqual({}, []), 'an object is no array');
  assert.not.ok(jsonEqual([], {}));
  assert.not.ok(jsonEqual([1, 2], [2, 1]), 'array order counts');
  assert.not.ok(jsonEqual({ a: 1 }, { a: 1, b: 2 }));
  assert.not.ok(jsonEqual({ a: 1, b: 2 }, { a: 1, c: 2 }), 'same size, other keys');
  assert.not.ok(jsonEqual({ a: null }, {}), 'a member set to null is still a member');
  assert.not.ok(jsonEqual('1', 1));
  assert.not.ok(jsonEqual({ a: { b: [1] } }, { a: { b: [1, 1] } }));
  assert.not.ok(jsonEqual(null, {}));
  assert.not.ok(jsonEqual({}, null));
  // the same answers as comparing canonical (key-sorted) serialisations, on random JSON
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const value = (depth: number): unknown => {
    const r = random();
    if (depth === 0 || r < 0.3) return [null, true, 0, 1, 'a', 'b'][Math.floor(random() * 6)];
    if (r < 0.6) return Array.from({ length: Math.floor(random() * 3) }, () => value(depth - 1));
    return Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, () => [['x', 'y', 'z'][Math.floor(random() * 3)] as string, value(depth - 1)]));
  };
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])])) : v;
  const reversed = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(reversed) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed((v as Record<string, unknown>)[k])])) : v;
  let equalPairs = 0;
  for (let i = 0; i < 5000; i++) {
    const a = value(3);
    const b = random() < 0.5 ? reversed(a) : value(3);
    const expected = JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
    if (expected) equalPairs++;
    assert.is(jsonEqual(a, b), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
  assert.ok(equalPairs > 1000 && equalPairs < 4900, 'both outcomes were exercised');
});

test.run();
