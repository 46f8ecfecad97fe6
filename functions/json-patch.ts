// RFC 6902 JSON Patch helpers: building `add` operations for defaults (RFC 6901 pointers) and a
// small pure applier, so tests and callers can see what a mutating webhook's patch does.

export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown };

/** A patch that cannot be applied (bad pointer, missing parent, failed test). */
export class JsonPatchError extends Error {
  override name = 'JsonPatchError';
}

/** Escapes one reference token (RFC 6901: `~` → `~0`, `/` → `~1`, in that order). */
export function escapePointerToken(token: string): string {
  // most tokens need no escaping, and checking is far cheaper than two replaceAll calls
  if (!token.includes('~') && !token.includes('/')) return token;
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function unescapePointerToken(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** Builds a JSON pointer from unescaped tokens: pointer('metadata', 'labels', 'a/b') → /metadata/labels/a~1b */
export function pointer(...tokens: (string | number)[]): string {
  return tokens.map((t) => '/' + escapePointerToken(String(t))).join('');
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at `path` in untrusted JSON, or undefined where the path leaves the objects. */
export function field(object: unknown, ...path: string[]): unknown {
  return path.reduce<unknown>((node, key) => (isPlainObject(node) ? node[key] : undefined), object);
}

/**
 * A deep copy of JSON data (objects, arrays, primitives). Several times faster than structuredClone
 * for the small values of a patch, which is on the webhook's request path.
 */
export function cloneJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneJson) as T;
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = cloneJson(value[key]);
  return copy as T;
}

/**
 * Equality of JSON data regardless of key order (undefined counts as null, as both mean "absent"
 * to the callers). Compares in place: no sorted copies and no serialisation, which the webhook would
 * otherwise pay on every UPDATE. Recursive: callers bound the depth (the webhook refuses bodies
 * nesting deeper than 512 levels).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || a === null) return b === undefined || b === null;
  if (typeof a !== 'object' || typeof b !== 'object' || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  for (const key of keys) if (!Object.hasOwn(right, key) || !jsonEqual(left[key], right[key])) return false;
  return true;
}

/**
 * `add` operations that give `target` every member of `defaults` it lacks. A missing (or null)
 * member is added with its whole default subtree, so parents are created along the way; a member
 * that is present is never touched (also when it has another type: validation reports that).
 * Arrays in `defaults` are leaves.
 */
export function missingAddOps(target: unknown, defaults: Record<string, unknown>, basePath = ''): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  collectMissing(target, defaults, basePath, ops);
  return ops;
}

// Plain loops into one list: this runs on every mutating admission, and flatMap over
// Object.entries allocated an array per member and level.
function collectMissing(target: unknown, defaults: Record<string, unknown>, basePath: string, ops: JsonPatchOp[]): void {
  if (!isPlainObject(target)) return;
  for (const key of Object.keys(defaults)) {
    const value = defaults[key];
    const current = target[key];
    const path = `${basePath}/${escapePointerToken(key)}`;
    if (current === undefined || current === null) ops.push({ op: 'add', path, value: cloneJson(value) });
    else if (isPlainObject(value) && isPlainObject(current)) collectMissing(current, value, path, ops);
  }
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new JsonPatchError(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split('/').map(unescapePointerToken);
}

function arrayIndex(token: string, length: number, forAdd: boolean): number {
  if (forAdd && token === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`invalid array index ${JSON.stringify(token)}`);
  const index = Number(token);
  if (index > (forAdd ? length : length - 1)) throw new JsonPatchError(`array index ${index} out of bounds`);
  return index;
}

function getAt(doc: unknown, tokens: string[]): unknown {
  let node = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[arrayIndex(token, node.length, false)];
    else if (isPlainObject(node) && Object.hasOwn(node, token)) node = node[token];
    else throw new JsonPatchError(`path /${tokens.map(escapePointerToken).join('/')} does not exist`);
  }
  return node;
}

function applyOne(doc: unknown, op: JsonPatchOp): unknown {
  const tokens = parsePointer(op.path);
  if (op.op === 'test') {
    if (JSON.stringify(getAt(doc, tokens)) !== JSON.stringify(op.value)) throw new JsonPatchError(`test failed at ${op.path}`);
    return doc;
  }
  const last = tokens.at(-1);
  if (last === undefined) {
    if (op.op === 'remove') throw new JsonPatchError('cannot remove the document root');
    return cloneJson(op.value);
  }
  const parent = getAt(doc, tokens.slice(0, -1));
  if (Array.isArray(parent)) {
    const index = arrayIndex(last, parent.length, op.op === 'add');
    if (op.op === 'add') parent.splice(index, 0, cloneJson(op.value));
    else if (op.op === 'replace') parent[index] = cloneJson(op.value);
    else parent.splice(index, 1);
  } else if (isPlainObject(parent)) {
    if (op.op !== 'add' && !Object.hasOwn(parent, last)) throw new JsonPatchError(`path ${op.path} does not exist`);
    if (op.op === 'remove') delete parent[last];
    else parent[last] = cloneJson(op.value);
  } else {
    throw new JsonPatchError(`parent of ${op.path} is not a container`);
  }
  return doc;
}

/** Applies a patch to a copy of `doc` (the input is not changed); throws JsonPatchError. */
export function applyJsonPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  return ops.reduce<unknown>((current, op) => applyOne(current, op), cloneJson(doc)) as T;
}
