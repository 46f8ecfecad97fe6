import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyJsonPatch,
  cloneJson,
  escapePointerToken,
  JsonPatchError,
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

test.run();
