// The webhook's hono app. Routes:
//   POST /mutate    mutating admission for all four kinds (defaults as a JSON Patch)
//   POST /validate  validating admission for all four kinds; enqueues reconcile Jobs
//   POST /mutate-serviceaccount  a ServiceAccount being created gets the imagePullSecrets entries of
//                   the ImagePullSecrets that list it (spec.serviceAccounts); never refuses, and answers
//                   "allowed, unchanged" on any error of its own
//   GET  /healthz   liveness: the TLS server and the app answer
//   GET  /readyz    readiness: also the Kubernetes client is loaded and no shutdown has begun
//   GET  /metrics   Prometheus text
// Both admission routes look request.kind up once, in ADMISSION_KINDS (admission-kinds.ts); a kind
// that is not there is allowed unchanged (the webhook must never block other resources). A body that is not an AdmissionReview → 400,
// larger than maxBodyBytes → 413. Everything that does I/O comes in through `deps`, so the TLS
// server and the Kubernetes client plug in from outside and tests run with app.request().
import { Hono, type Context } from 'hono';
import { field, isPlainObject, jsonEqual } from '../functions/json-patch.ts';
import { errorMessage, logLine, type Logger } from '../functions/log-line.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { desiredPullSecrets, pullSecretChange } from '../functions/service-accounts.ts';
import type { ImageSecret, Kind, OperatorConfig } from '../functions/types.ts';
import { admissionBodyLimit } from './admission-body-limit.ts';
import { admissionKind, type AdmissionKind, type KindContext } from './admission-kinds.ts';
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
/** timeoutSeconds of both webhook configurations (kustomize/webhook-configurations.yaml). */
export const WEBHOOK_TIMEOUT_SECONDS = 5;
// Of the API server's timeoutSeconds, which cover the whole call, 3 s are kept for what lies
// outside the dependencies: connecting (a TLS handshake on a new connection), a body of up to 3 MiB,
// the wait behind a burst of other admissions in this one event loop, the answer's way back. The
// margin is the larger share because an answer too late fails the user's request (failurePolicy:
// Fail), while a dependency given up costs only a warning, or a reconcile the resync CronJob makes up for.
const OUTSIDE_DEPENDENCIES_MS = 3000;
/**
 * How long an admission waits for its dependencies (registry lookup, listing, enqueues), all of
 * them together: they run side by side under this one budget, and whatever has not answered by
 * then is done without.
 */
export const DEFAULT_DEPENDENCY_TIMEOUT_MS = WEBHOOK_TIMEOUT_SECONDS * 1000 - OUTSIDE_DEPENDENCIES_MS;
/** timeoutSeconds of the ServiceAccount webhook: short, it is called for every ServiceAccount created. */
export const SERVICE_ACCOUNT_WEBHOOK_TIMEOUT_SECONDS = 3;
/**
 * How long a ServiceAccount admission waits for the list of ImagePullSecrets; half of its
 * timeoutSeconds, the rest for the way there and back. Too late costs only the entry, which the
 * next reconcile Job of the namespace (or the hourly resync) adds.
 */
export const DEFAULT_SERVICE_ACCOUNT_DEPENDENCY_TIMEOUT_MS = (SERVICE_ACCOUNT_WEBHOOK_TIMEOUT_SECONDS * 1000) / 2;

export interface WebhookDeps {
  config: OperatorConfig;
  /** Enqueue a reconcile of one registry (see reconcileEnqueuer); a rejection never blocks admission. */
  enqueueReconcile: (registry: RegistryKey, request: AdmissionRequest) => Promise<EnqueueResult>;
  /** Whether the ImageRegistry exists; false → admission warning; a rejection → no warning. */
  registryExists: (registry: RegistryKey) => Promise<boolean>;
  /** Names of the ImageRegistries in a namespace: an account change concerns all of them. */
  listRegistries: (namespace: string) => Promise<string[]>;
  /** The ImagePullSecrets of a namespace: which of them list a ServiceAccount being created. */
  listImagePullSecrets: (namespace: string) => Promise<ImageSecret[]>;
  /** epoch milliseconds; defaults to Date.now */
  now?: () => number;
  /** one event per call; defaults to a JSON line on stdout. Never gets secret material. */
  log?: Logger;
  metrics?: Metrics;
  maxBodyBytes?: number;
  dependencyTimeoutMs?: number;
  serviceAccountTimeoutMs?: number;
  /**
   * Whether this pod should get admissions now (/readyz): false until what validation needs is
   * loaded, and again once a shutdown began. Defaults to always.
   */
  ready?: () => boolean;
}

type Webhook = 'mutate' | 'validate' | 'serviceaccount';

/** An admission of one of our kinds, with what its handling needs. */
interface Admission {
  kind: Kind;
  handler: AdmissionKind;
  request: AdmissionRequest;
  context: KindContext;
}

interface Outcome {
  response: AdmissionResponse;
  result: string;
}

const TIMED_OUT = Symbol('timed out');

/** One deadline shared by the dependencies of one admission. */
interface Budget {
  /** Resolves like `promise`, or to TIMED_OUT once the deadline has passed (the promise keeps running). */
  within<T>(promise: Promise<T>): Promise<T | typeof TIMED_OUT>;
  /** Stops the clock once the admission is answered. */
  end(): void;
}

/** A budget of `ms`, counted from its first dependency: admissions without any set no timer. */
function dependencyBudget(ms: number): Budget {
  let timer: NodeJS.Timeout | undefined;
  let expired: Promise<typeof TIMED_OUT> | undefined;
  return {
    within(promise) {
      expired ??= new Promise((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
      return Promise.race([promise, expired]);
    },
    end: () => clearTimeout(timer),
  };
}

/** Whether the admission carries a created or updated object. */
function writes(request: AdmissionRequest): boolean {
  return request.operation === 'CREATE' || request.operation === 'UPDATE';
}

/** The objects our handlers need; their absence makes the review unusable (→ 400). */
function checkObjects(request: AdmissionRequest): string {
  const { operation, object, oldObject } = request;
  if (writes(request) && !isPlainObject(object)) {
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

function mutate({ handler, request, context }: Admission): Outcome {
  const ops = writes(request) ? handler.defaults(request.object, context) : [];
  return { response: patched(request.uid, ops), result: ops.length > 0 ? 'patched' : 'unchanged' };
}

/** The answer to an object with problems: 422, with what kubectl needs to name the object. */
function deny(request: AdmissionRequest, problems: string[]): Outcome {
  const name = request.name || field(request.object, 'metadata', 'name');
  const object = { group: request.kind.group, kind: request.kind.kind, ...(typeof name === 'string' && name ? { name } : {}) };
  return { response: denied(request.uid, problems, 422, object), result: 'denied' };
}

export function createApp(deps: WebhookDeps): Hono {
  const now = deps.now ?? Date.now;
  const log: Logger = deps.log ?? ((level, msg, fields) => console.log(logLine(new Date(now()), level, msg, fields)));
  const metrics = deps.metrics ?? createMetrics();
  const timeoutMs = deps.dependencyTimeoutMs ?? DEFAULT_DEPENDENCY_TIMEOUT_MS;
  const maxSize = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  async function enqueue({ kind, handler, request, context }: Admission, budget: Budget): Promise<void> {
    const about = { uid: request.uid, kind, operation: request.operation, namespace: context.namespace, name: request.name };
    const registriesIn = async (namespace: string) => {
      const names = await budget.within(deps.listRegistries(namespace));
      if (names === TIMED_OUT) throw new Error(`listing the registries of namespace ${namespace} timed out`);
      return names;
    };
    let registries: RegistryKey[];
    try {
      registries = await handler.concerns(request, { ...context, registriesIn });
    } catch (error) {
      metrics.countEnqueueFailure();
      log('error', 'cannot enqueue reconcile', { ...about, error: errorMessage(error) });
      return;
    }
    await Promise.all(
      registries.map(async (registry) => {
        const ref = `${registry.namespace}/${registry.name}`;
        try {
          const result = await budget.within(deps.enqueueReconcile(registry, request));
          if (result === TIMED_OUT) throw new Error(`no answer within ${timeoutMs} ms`);
          metrics.countEnqueued(result);
          log('info', 'reconcile enqueued', { ...about, registry: ref, result });
        } catch (error) {
          metrics.countEnqueueFailure();
          log('error', 'enqueue failed; the resync CronJob repairs', { ...about, registry: ref, error: errorMessage(error) });
        }
      }),
    );
  }

  async function registryWarnings({ kind, handler, request, context }: Admission, budget: Budget): Promise<string[]> {
    if (handler.referencedRegistry === undefined || !writes(request)) return [];
    const registry = handler.referencedRegistry(request.object, context);
    try {
      const exists = await budget.within(deps.registryExists(registry));
      if (exists !== false) return [];
    } catch (error) {
      log('warn', 'registry lookup failed', { uid: request.uid, error: errorMessage(error) });
      return [];
    }
    return [`spec.registryRef: ImageRegistry ${registry.namespace}/${registry.name} does not exist (yet); the ${kind} becomes ready once it does`];
  }

  async function validate(admission: Admission): Promise<Outcome> {
    const { handler, request, context } = admission;
    // status writes go through the subresource; their spec did not change
    if (request.subResource) return { response: allowed(request.uid), result: 'allowed' };
    const problems = writes(request) ? handler.validate(request.object, context.old) : [];
    if (problems.length > 0) return deny(request, problems);
    const budget = dependencyBudget(timeoutMs);
    try {
      const [warnings] = await Promise.all([registryWarnings(admission, budget), needsReconcile(request) ? enqueue(admission, budget) : undefined]);
      return { response: allowed(request.uid, warnings), result: 'allowed' };
    } finally {
      budget.end();
    }
  }

  /** One admission's metrics and log line; `labels` are filled in as the request is understood. */
  function answering(webhook: Webhook) {
    const started = now();
    const labels = { kind: 'invalid', operation: 'invalid' };
    const finish = (result: string, response: Response, extra?: Record<string, unknown>) => {
      metrics.countRequest({ kind: labels.kind, operation: labels.operation, result });
      metrics.observeDuration(webhook, Math.max(0, now() - started) / 1000);
      log(result === 'invalid' || result === 'error' ? 'warn' : 'info', 'admission', { webhook, kind: labels.kind, operation: labels.operation, result, ...extra });
      return response;
    };
    return { labels, finish };
  }

  /** The request of the body, or the 400 answer to a body that is none. */
  async function readRequest(c: Context, finish: ReturnType<typeof answering>['finish']): Promise<AdmissionRequest | Response> {
    try {
      return parseAdmissionReview(await c.req.text());
    } catch (error) {
      const message = error instanceof InvalidAdmissionReviewError ? error.message : 'unreadable body';
      return finish('invalid', c.json({ error: `invalid AdmissionReview: ${message}` }, 400));
    }
  }

  async function review(webhook: 'mutate' | 'validate', c: Context) {
    const { labels, finish } = answering(webhook);
    const request = await readRequest(c, finish);
    if (request instanceof Response) return request;
    labels.operation = request.operation;
    const ours = admissionKind(request);
    if (ours === undefined) {
      labels.kind = 'other';
      return finish('ignored', c.json(admissionReview(allowed(request.uid))), { uid: request.uid });
    }
    labels.kind = ours.kind;
    let namespace: string;
    try {
      namespace = checkObjects(request);
    } catch (error) {
      return finish('invalid', c.json({ error: `invalid AdmissionReview: ${errorMessage(error)}` }, 400), { uid: request.uid });
    }
    const context: KindContext = { config: deps.config, namespace, old: request.operation === 'UPDATE' ? request.oldObject : undefined };
    const admission: Admission = { ...ours, request, context };
    const { response, result } = webhook === 'mutate' ? mutate(admission) : await validate(admission);
    const logged: Record<string, unknown> = { uid: request.uid, namespace, name: request.name, dryRun: request.dryRun === true };
    if (response.status) logged['message'] = response.status.message;
    return finish(result, c.json(admissionReview(response)), logged);
  }

  const serviceAccountTimeoutMs = deps.serviceAccountTimeoutMs ?? DEFAULT_SERVICE_ACCOUNT_DEPENDENCY_TIMEOUT_MS;

  /**
   * A ServiceAccount being created: the JSON Patch that adds the entries of the ImagePullSecrets of
   * its namespace that list it (functions/service-accounts.ts). Nothing here may refuse or delay a
   * ServiceAccount: whatever fails is logged and answered "allowed, unchanged".
   */
  async function serviceAccountReview(c: Context) {
    const { labels, finish } = answering('serviceaccount');
    const request = await readRequest(c, finish);
    if (request instanceof Response) return request;
    labels.operation = request.operation;
    const { group, version, kind } = request.kind;
    if (group !== '' || version !== 'v1' || kind !== 'ServiceAccount' || request.operation !== 'CREATE') {
      labels.kind = 'other';
      return finish('ignored', c.json(admissionReview(allowed(request.uid))), { uid: request.uid });
    }
    labels.kind = 'ServiceAccount';
    const namespace = request.namespace || field(request.object, 'metadata', 'namespace');
    const name = field(request.object, 'metadata', 'name') || request.name || '';
    const about = { uid: request.uid, namespace, name, dryRun: request.dryRun === true };
    const budget = dependencyBudget(serviceAccountTimeoutMs);
    try {
      if (!isPlainObject(request.object)) throw new Error('request.object is not an object');
      if (typeof namespace !== 'string' || namespace === '' || typeof name !== 'string') throw new Error('the ServiceAccount has no namespace');
      const crs = await budget.within(deps.listImagePullSecrets(namespace));
      if (crs === TIMED_OUT) throw new Error(`listing the ImagePullSecrets of namespace ${namespace}: no answer within ${serviceAccountTimeoutMs} ms`);
      const change = pullSecretChange(request.object, desiredPullSecrets({ namespace, name }, crs));
      const result = change.ops.length > 0 ? 'patched' : 'unchanged';
      metrics.countServiceAccount(result);
      return finish(result, c.json(admissionReview(patched(request.uid, change.ops))), { ...about, added: change.added, removed: change.removed });
    } catch (error) {
      metrics.countServiceAccount('error');
      log('error', 'ServiceAccount admitted without imagePullSecrets entries; the next reconcile Job adds them', { ...about, error: errorMessage(error) });
      return finish('error', c.json(admissionReview(allowed(request.uid))), about);
    } finally {
      budget.end();
    }
  }

  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/readyz', (c) => ((deps.ready?.() ?? true) ? c.text('ok') : c.text('not ready', 503)));
  app.get('/metrics', (c) => c.text(metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));
  const limit = (webhook: Webhook) => admissionBodyLimit(maxSize, () => {
    metrics.countRequest({ kind: 'invalid', operation: 'invalid', result: 'too_large' });
    log('warn', 'admission body too large', { webhook, maxBytes: maxSize });
  });
  for (const webhook of ['mutate', 'validate'] as const) app.post(`/${webhook}`, limit(webhook), (c) => review(webhook, c));
  app.post('/mutate-serviceaccount', limit('serviceaccount'), (c) => serviceAccountReview(c));
  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((error, c) => {
    metrics.countRequest({ kind: 'invalid', operation: 'invalid', result: 'error' });
    log('error', 'unhandled error', { path: c.req.path, error: errorMessage(error) });
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}
