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
  /** creates the Job in its namespace: 'created', or 'exists' when the API server already has it */
  createJob: (job: ReconcileJob) => Promise<'created' | 'exists'>;
  /** epoch milliseconds */
  now?: () => number;
  /** the operator image the Job runs; defaults to config.images.operator */
  image?: string;
  lengthSeconds?: number;
  graceSeconds?: number;
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
    const outcome = await options.createJob(job);
    known.add(name);
    return outcome === 'created' ? 'created' : 'coalesced';
  };
}
