// Enqueueing a reconcile: create the coalescing window's Job; if it exists, the registry is
// already queued for a Job that has not read yet, which is just as good. The Kubernetes call is
// injected (`createJob`), so this runs in unit tests and the server wires the real client in.
import {
  desiredReconcileJob,
  reconcileJobName,
  reconcileWindow,
  type ReconcileJob,
  type RegistryKey,
} from '../functions/reconcile-job.ts';
import type { OperatorConfig } from '../functions/types.ts';

export type EnqueueResult = 'created' | 'coalesced';

export interface EnqueuerOptions {
  config: OperatorConfig;
  /** creates the Job in its namespace; rejects with `{code: 409}` (client-node ApiException) if it exists */
  createJob: (job: ReconcileJob) => Promise<unknown>;
  /** epoch milliseconds */
  now?: () => number;
  /** the operator image the Job runs; defaults to config.images.operator */
  image?: string;
  lengthSeconds?: number;
  graceSeconds?: number;
}

/** client-node 2.x ApiException{code}, or a Status body with reason AlreadyExists. */
export function isAlreadyExists(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, statusCode, body } = error as { code?: unknown; statusCode?: unknown; body?: unknown };
  if (code === 409 || statusCode === 409) return true;
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? null);
  return text.includes('"reason":"AlreadyExists"');
}

/**
 * A function that enqueues a reconcile of one registry. Within one window it asks the API server
 * once per registry: later calls for a Job this process already created (or found) are answered
 * `coalesced` from memory, which keeps a burst of admissions to O(1) API calls per replica.
 */
export function reconcileEnqueuer(options: EnqueuerOptions): (registry: RegistryKey) => Promise<EnqueueResult> {
  const now = options.now ?? Date.now;
  const windowOptions = {
    ...(options.lengthSeconds !== undefined ? { lengthSeconds: options.lengthSeconds } : {}),
    ...(options.graceSeconds !== undefined ? { graceSeconds: options.graceSeconds } : {}),
  };
  let knownWindow = -1;
  let known = new Set<string>();
  return async (registry) => {
    const window = reconcileWindow(new Date(now()), windowOptions);
    if (window.start.getTime() !== knownWindow) {
      knownWindow = window.start.getTime();
      known = new Set();
    }
    const name = reconcileJobName(registry, window.start);
    if (known.has(name)) return 'coalesced';
    const job = desiredReconcileJob({
      registry,
      config: options.config,
      windowStart: window.start,
      windowEnd: window.end,
      ...(options.image !== undefined ? { image: options.image } : {}),
    });
    try {
      await options.createJob(job);
      known.add(name);
      return 'created';
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      known.add(name);
      return 'coalesced';
    }
  };
}
