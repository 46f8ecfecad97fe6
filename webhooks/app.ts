// The webhook's hono app. Routes:
//   POST /mutate    mutating admission for all four kinds (defaults as a JSON Patch)
//   POST /validate  validating admission for all four kinds; enqueues reconcile Jobs
//   GET  /healthz   liveness/readiness
//   GET  /metrics   Prometheus text
// Both admission routes dispatch on request.kind; a kind that is not ours is allowed unchanged
// (the webhook must never block other resources). A body that is not an AdmissionReview → 400,
// larger than maxBodyBytes → 413. Everything that does I/O comes in through `deps`, so the TLS
// server and the Kubernetes client plug in from outside and tests run with app.request().
import { Hono, type Context } from 'hono';
import { defaultImageRegistry, defaultImageSecret, resolveRegistryRef } from '../functions/defaults.ts';
import { field, isPlainObject, jsonEqual, type JsonPatchOp } from '../functions/json-patch.ts';
import { errorMessage, logLine, type Logger } from '../functions/log-line.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { API_GROUP, API_VERSION, KINDS, type ImageRegistryAccount, type Kind, type OperatorConfig } from '../functions/types.ts';
import { validateImageRegistry, validateImageRegistryAccount, validateImageSecret } from '../functions/validation.ts';
import { isManagedAccount } from '../functions/accounts.ts';
import { admissionBodyLimit } from './admission-body-limit.ts';
import {
  admissionReview,
  allowed,
  denied,
  InvalidAdmissionReviewError,
  parseAdmissionReview,
  patched,
  type AdmissionRequest,
  type AdmissionResponse,
} from './admission.ts';
import type { EnqueueResult } from './enqueue.ts';
import { createMetrics, type Metrics } from './metrics.ts';

/** Kubernetes' own limit for a request body. */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;
/** How long an admission waits for a dependency (enqueue, lookup) before it answers without it. */
export const DEFAULT_DEPENDENCY_TIMEOUT_MS = 2000;

export interface WebhookDeps {
  config: OperatorConfig;
  /** Enqueue a reconcile of one registry (see reconcileEnqueuer); a rejection never blocks admission. */
  enqueueReconcile: (registry: RegistryKey, request: AdmissionRequest) => Promise<EnqueueResult>;
  /** Whether the ImageRegistry exists; false → admission warning; a rejection → no warning. */
  registryExists: (registry: RegistryKey) => Promise<boolean>;
  /** Names of the ImageRegistries in a namespace: an account change concerns all of them. */
  listRegistries: (namespace: string) => Promise<string[]>;
  /** epoch milliseconds; defaults to Date.now */
  now?: () => number;
  /** one event per call; defaults to a JSON line on stdout. Never gets secret material. */
  log?: Logger;
  metrics?: Metrics;
  maxBodyBytes?: number;
  dependencyTimeoutMs?: number;
}

type Webhook = 'mutate' | 'validate';

interface Outcome {
  response: AdmissionResponse;
  result: string;
}

const TIMED_OUT = Symbol('timed out');

/** Resolves like `promise`, or to TIMED_OUT after `ms` (the promise keeps running). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function ourKind(request: AdmissionRequest): Kind | undefined {
  const { group, version, kind } = request.kind;
  if (group !== API_GROUP || version !== API_VERSION) return undefined;
  return (KINDS as readonly string[]).includes(kind) ? (kind as Kind) : undefined;
}

/** The objects our handlers need; their absence makes the review unusable (→ 400). */
function checkObjects(request: AdmissionRequest): string {
  const { operation, object, oldObject } = request;
  if ((operation === 'CREATE' || operation === 'UPDATE') && !isPlainObject(object)) {
    throw new InvalidAdmissionReviewError(`request.object must be an object for ${operation}`);
  }
  if (operation === 'UPDATE' && !isPlainObject(oldObject)) {
    throw new InvalidAdmissionReviewError('request.oldObject must be an object for UPDATE');
  }
  const namespace = request.namespace || field(object ?? oldObject, 'metadata', 'namespace');
  if (typeof namespace !== 'string' || namespace === '') {
    throw new InvalidAdmissionReviewError('request.namespace is required for namespaced kinds');
  }
  return namespace;
}

/** Status writes and spec-less metadata edits (e.g. by the Jobs) must not enqueue more Jobs. */
function needsReconcile(request: AdmissionRequest): boolean {
  if (request.dryRun === true || request.subResource) return false;
  if (request.operation === 'CREATE' || request.operation === 'DELETE') return true;
  if (request.operation !== 'UPDATE') return false;
  const deleting = (o: unknown) => field(o, 'metadata', 'deletionTimestamp') !== undefined;
  return !jsonEqual(field(request.oldObject, 'spec'), field(request.object, 'spec')) || deleting(request.object) !== deleting(request.oldObject);
}

export function createApp(deps: WebhookDeps): Hono {
  const now = deps.now ?? Date.now;
  const log: Logger = deps.log ?? ((level, msg, fields) => console.log(logLine(new Date(now()), level, msg, fields)));
  const metrics = deps.metrics ?? createMetrics();
  const timeoutMs = deps.dependencyTimeoutMs ?? DEFAULT_DEPENDENCY_TIMEOUT_MS;
  const maxSize = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  function mutate(kind: Kind, request: AdmissionRequest, namespace: string): Outcome {
    const { uid, operation, object, oldObject } = request;
    let ops: JsonPatchOp[] = [];
    if (operation === 'CREATE' || operation === 'UPDATE') {
      const old = operation === 'UPDATE' ? oldObject : undefined;
      if (kind === 'ImageRegistry') ops = defaultImageRegistry(object, old);
      else if (kind === 'ImagePushSecret' || kind === 'ImagePullSecret') {
        ops = defaultImageSecret(object, { config: deps.config, namespace, old });
      }
    }
    return { response: patched(uid, ops), result: ops.length > 0 ? 'patched' : 'unchanged' };
  }

  function problemsOf(kind: Kind, request: AdmissionRequest): string[] {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return [];
    const old = request.operation === 'UPDATE' ? request.oldObject : undefined;
    if (kind === 'ImageRegistry') return validateImageRegistry(request.object, old);
    if (kind === 'ImageRegistryAccount') return validateImageRegistryAccount(request.object, old);
    return validateImageSecret(request.object, old);
  }

  /** The registries whose desired state this admission changes. */
  async function affectedRegistries(kind: Kind, request: AdmissionRequest, namespace: string): Promise<RegistryKey[]> {
    if (kind === 'ImageRegistry') {
      const name = field(request.object ?? request.oldObject, 'metadata', 'name') || request.name;
      if (typeof name !== 'string' || name === '') throw new Error('the ImageRegistry has no name yet (generateName)');
      return [{ namespace, name }];
    }
    if (kind === 'ImageRegistryAccount') {
      // the Jobs create and delete the rotation accounts themselves and write the auth config in the
      // same run: a reconcile for those would only be a no-op Job one window later
      const account = (request.object ?? request.oldObject) as ImageRegistryAccount | undefined;
      if (account?.metadata && isManagedAccount(account)) return [];
      const names = await within(deps.listRegistries(namespace), timeoutMs);
      if (names === TIMED_OUT) throw new Error(`listing the registries of namespace ${namespace} timed out`);
      return names.map((name) => ({ namespace, name }));
    }
    const old = request.operation === 'UPDATE' ? request.oldObject : undefined;
    return [resolveRegistryRef(request.object ?? request.oldObject, { config: deps.config, namespace, old })];
  }

  async function enqueue(kind: Kind, request: AdmissionRequest, namespace: string): Promise<void> {
    const context = { uid: request.uid, kind, operation: request.operation, namespace, name: request.name };
    let registries: RegistryKey[];
    try {
      registries = await affectedRegistries(kind, request, namespace);
    } catch (error) {
      metrics.countEnqueueFailure();
      log('error', 'cannot enqueue reconcile', { ...context, error: errorMessage(error) });
      return;
    }
    await Promise.all(
      registries.map(async (registry) => {
        const ref = `${registry.namespace}/${registry.name}`;
        try {
          const result = await within(deps.enqueueReconcile(registry, request), timeoutMs);
          if (result === TIMED_OUT) throw new Error(`no answer within ${timeoutMs} ms`);
          metrics.countEnqueued(result);
          log('info', 'reconcile enqueued', { ...context, registry: ref, result });
        } catch (error) {
          metrics.countEnqueueFailure();
          log('error', 'enqueue failed; the resync CronJob repairs', { ...context, registry: ref, error: errorMessage(error) });
        }
      }),
    );
  }

  async function registryWarnings(kind: Kind, request: AdmissionRequest, namespace: string): Promise<string[]> {
    if (kind !== 'ImagePushSecret' && kind !== 'ImagePullSecret') return [];
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return [];
    const old = request.operation === 'UPDATE' ? request.oldObject : undefined;
    const registry = resolveRegistryRef(request.object, { config: deps.config, namespace, old });
    try {
      const exists = await within(deps.registryExists(registry), timeoutMs);
      if (exists !== false) return [];
    } catch (error) {
      log('warn', 'registry lookup failed', { uid: request.uid, error: errorMessage(error) });
      return [];
    }
    return [`spec.registryRef: ImageRegistry ${registry.namespace}/${registry.name} does not exist (yet); the ${kind} becomes ready once it does`];
  }

  async function validate(kind: Kind, request: AdmissionRequest, namespace: string): Promise<Outcome> {
    // status writes go through the subresource; their spec did not change
    if (request.subResource) return { response: allowed(request.uid), result: 'allowed' };
    const problems = problemsOf(kind, request);
    if (problems.length > 0) {
      const name = request.name || field(request.object, 'metadata', 'name');
      const object = { group: request.kind.group, kind: request.kind.kind, ...(typeof name === 'string' && name ? { name } : {}) };
      return { response: denied(request.uid, problems, 422, object), result: 'denied' };
    }
    const warnings = await registryWarnings(kind, request, namespace);
    if (needsReconcile(request)) await enqueue(kind, request, namespace);
    return { response: allowed(request.uid, warnings), result: 'allowed' };
  }

  async function review(webhook: Webhook, c: Context) {
    const started = now();
    const labels = { kind: 'invalid', operation: 'invalid' };
    const finish = (result: string, response: Response, extra?: Record<string, unknown>) => {
      metrics.countRequest({ kind: labels.kind, operation: labels.operation, result });
      metrics.observeDuration(webhook, Math.max(0, now() - started) / 1000);
      log(result === 'invalid' ? 'warn' : 'info', 'admission', { webhook, kind: labels.kind, operation: labels.operation, result, ...extra });
      return response;
    };
    let request: AdmissionRequest;
    try {
      request = parseAdmissionReview(await c.req.text());
    } catch (error) {
      const message = error instanceof InvalidAdmissionReviewError ? error.message : 'unreadable body';
      return finish('invalid', c.json({ error: `invalid AdmissionReview: ${message}` }, 400));
    }
    labels.operation = request.operation;
    const kind = ourKind(request);
    if (kind === undefined) {
      labels.kind = 'other';
      return finish('ignored', c.json(admissionReview(allowed(request.uid))), { uid: request.uid });
    }
    labels.kind = kind;
    let namespace: string;
    try {
      namespace = checkObjects(request);
    } catch (error) {
      return finish('invalid', c.json({ error: `invalid AdmissionReview: ${errorMessage(error)}` }, 400), { uid: request.uid });
    }
    const { response, result } = webhook === 'mutate' ? mutate(kind, request, namespace) : await validate(kind, request, namespace);
    const context: Record<string, unknown> = { uid: request.uid, namespace, name: request.name, dryRun: request.dryRun === true };
    if (response.status) context['message'] = response.status.message;
    return finish(result, c.json(admissionReview(response)), context);
  }

  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/metrics', (c) => c.text(metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));
  for (const webhook of ['mutate', 'validate'] as const) {
    const limit = admissionBodyLimit(maxSize, () => {
      metrics.countRequest({ kind: 'invalid', operation: 'invalid', result: 'too_large' });
      log('warn', 'admission body too large', { webhook, maxBytes: maxSize });
    });
    app.post(`/${webhook}`, limit, (c) => review(webhook, c));
  }
  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((error, c) => {
    metrics.countRequest({ kind: 'invalid', operation: 'invalid', result: 'error' });
    log('error', 'unhandled error', { path: c.req.path, error: errorMessage(error) });
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}
