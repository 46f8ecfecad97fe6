// AdmissionReview admission.k8s.io/v1: the shapes the API server sends and expects back, a
// parser that refuses anything else with a reason (→ HTTP 400), and response constructors.
import type { JsonPatchOp } from '../functions/json-patch.ts';
import { isPlainObject } from '../functions/json-patch.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo?: { username?: string; uid?: string; groups?: string[] };
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  options?: unknown;
}

export interface StatusCause {
  field?: string;
  message: string;
  reason?: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: {
    code: number;
    reason?: string;
    message: string;
    details?: { name?: string; group?: string; kind?: string; causes: StatusCause[] };
  };
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** A request body that is not a usable AdmissionReview; the message says why. */
export class InvalidAdmissionReviewError extends Error {
  override name = 'InvalidAdmissionReviewError';
}

function fail(message: string): never {
  throw new InvalidAdmissionReviewError(message);
}

/** Deeper JSON than any of our objects has; refusing it keeps recursive checks off stack limits. */
export const MAX_JSON_DEPTH = 512;

/**
 * Whether parsed JSON nests objects/arrays deeper than `max` levels. Iterative, so it copes with any
 * depth (V8's JSON.parse is iterative too); it walks the parsed value rather than the text, which
 * has a few dozen containers where the text has thousands of characters, and stops at the first
 * node below the limit.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const nodes: object[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop() as object;
    const depth = depths.pop() as number;
    if (depth > max) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** Parses and checks a request body; throws InvalidAdmissionReviewError (never anything else). */
export function parseAdmissionReview(body: string): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body);
  } catch {
    fail('body is not JSON');
  }
  if (nestsDeeperThan(review, MAX_JSON_DEPTH)) fail(`body nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (!isPlainObject(review)) fail('body is not a JSON object');
  if (review['kind'] !== 'AdmissionReview') fail('kind must be AdmissionReview');
  if (review['apiVersion'] !== ADMISSION_API_VERSION) fail(`apiVersion must be ${ADMISSION_API_VERSION}`);
  const request = review['request'];
  if (!isPlainObject(request)) fail('request must be an object');
  if (typeof request['uid'] !== 'string' || request['uid'] === '') fail('request.uid must be a non-empty string');
  const kind = request['kind'];
  if (!isPlainObject(kind) || typeof kind['kind'] !== 'string' || typeof kind['group'] !== 'string' || typeof kind['version'] !== 'string') {
    fail('request.kind must be {group, version, kind} strings');
  }
  if (!(OPERATIONS as readonly unknown[]).includes(request['operation'])) fail(`request.operation must be one of ${OPERATIONS.join(', ')}`);
  for (const key of ['name', 'namespace', 'subResource'] as const) {
    if (request[key] !== undefined && typeof request[key] !== 'string') fail(`request.${key} must be a string`);
  }
  if (request['dryRun'] !== undefined && typeof request['dryRun'] !== 'boolean') fail('request.dryRun must be a boolean');
  return request as unknown as AdmissionRequest;
}

/** Wraps a response into the AdmissionReview the API server expects. */
export function admissionReview(response: AdmissionResponse): AdmissionReview {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

function withWarnings(response: AdmissionResponse, warnings: readonly string[]): AdmissionResponse {
  return warnings.length > 0 ? { ...response, warnings: [...warnings] } : response;
}

export function allowed(uid: string, warnings: readonly string[] = []): AdmissionResponse {
  return withWarnings({ uid, allowed: true }, warnings);
}

/** Allowed with a JSON Patch; without operations this is a plain `allowed` (no empty patch). */
export function patched(uid: string, ops: readonly JsonPatchOp[], warnings: readonly string[] = []): AdmissionResponse {
  if (ops.length === 0) return allowed(uid, warnings);
  const patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  return withWarnings({ uid, allowed: true, patchType: 'JSONPatch', patch }, warnings);
}

const STATUS_REASONS: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 409: 'Conflict', 422: 'Invalid' };

/** The object a denial is about: with it, kubectl says `The ImageRegistry "x" is invalid: …`. */
export interface DeniedObject {
  name?: string;
  group?: string;
  kind?: string;
}

/**
 * Denied with 422 Invalid (as the API server answers invalid objects). The message lists every
 * problem; each "<field>: <problem>" also becomes a status cause naming the field.
 */
export function denied(uid: string, problems: readonly string[], code = 422, object: DeniedObject = {}): AdmissionResponse {
  const causes = problems.map((problem): StatusCause => {
    const at = problem.indexOf(': ');
    return at > 0
      ? { reason: 'FieldValueInvalid', field: problem.slice(0, at), message: problem.slice(at + 2) }
      : { reason: 'FieldValueInvalid', message: problem };
  });
  return {
    uid,
    allowed: false,
    status: { code, reason: STATUS_REASONS[code] ?? 'BadRequest', message: problems.join('; '), details: { ...object, causes } },
  };
}
