// Confirms a write freeze (functions/maintenance.ts) on every registry pod the way a client sees
// it: a write to FREEZE_PROBE_PATH through the pod's nginx, by the pod's IP, TLS verified for the
// registry's hostname. Frozen: nginx answers 503 with this freeze's id. Lifted: the write reaches
// the registry, which refuses it (no token; and no repository can have the probe's name).
import { DRAIN_SETTLE_MS, FREEZE_DRAIN_MS, FREEZE_PROBE_PATH, probeVerdict, WRITE_DRAIN_TIMEOUT_MS, WRITE_ROUTES, writesInFlight } from '../functions/maintenance.ts';
import { METRICS_PORT } from '../functions/nginx-config.ts';
import { REGISTRY_METRICS_PATH } from '../functions/registry-config.ts';
import { podFrontRequest, podHttpGet, type FrontAnswer, type PodFront } from './pod-front.ts';

/** a registry pod's front, and its metrics port (default METRICS_PORT) for the drain */
export type FreezeTarget = PodFront & { metricsPort?: number };

export type FreezeState = 'frozen' | 'open';

/**
 * Polls every target until each answers as `want` (for the freeze `freezeId`), or the timeout
 * passes; returns the targets that did not, with their last answer.
 */
export async function awaitFreezeState(targets: readonly FreezeTarget[], want: FreezeState, freezeId: string, options: { timeoutMs: number; pollMs?: number }): Promise<{ target: FreezeTarget; last: string }[]> {
  const deadline = Date.now() + options.timeoutMs;
  let pending = targets.map((target) => ({ target, last: 'not asked yet' }));
  for (;;) {
    const answers = await Promise.all(pending.map(async ({ target }) => ({ target, answer: await probe(target) })));
    pending = answers
      .filter(({ answer }) => probeVerdict(answer, freezeId) !== want)
      .map(({ target, answer }) => ({ target, last: answer.status ? `HTTP ${answer.status} ${answer.body.slice(0, 200)}` : `no answer (${answer.body})` }));
    if (pending.length === 0 || Date.now() > deadline) return pending;
    await delay(options.pollMs ?? 250);
  }
}

function probe(target: FreezeTarget): Promise<FrontAnswer> {
  return podFrontRequest(target, { method: 'POST', path: FREEZE_PROBE_PATH, headers: { 'content-length': 0 } });
}

/** How the writes in flight at one pod ended (maintenance.ts, the drain). */
export interface PodDrain {
  target: FreezeTarget;
  /** drained: a sample read 0; unknown: its metrics could not be read; timeout: still writing at the end */
  outcome: 'drained' | 'unknown' | 'timeout';
  /** writes in flight at the last sample */
  inFlight?: number;
  /** why unknown */
  problem?: string;
}

export interface Drain {
  /** from the confirmed freeze to the end of the drain */
  ms: number;
  pods: PodDrain[];
}

/**
 * The drain after a confirmed freeze: every pod's metrics port sampled (DRAIN_SETTLE_MS after the
 * confirmation, then every `pollMs`) until its registry has no write in flight, at most
 * WRITE_DRAIN_TIMEOUT_MS. When a pod's metrics cannot be read, the drain lasts at least the fixed
 * FREEZE_DRAIN_MS from the confirmation, as it did before the metrics port existed.
 */
export async function drainWrites(targets: readonly FreezeTarget[], options: { routes?: readonly string[]; timeoutMs?: number; pollMs?: number } = {}): Promise<Drain> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? WRITE_DRAIN_TIMEOUT_MS);
  await delay(DRAIN_SETTLE_MS);
  const pods = await Promise.all(targets.map((target) => drainPod(target, options.routes ?? WRITE_ROUTES, deadline, options.pollMs ?? 100)));
  if (pods.some((pod) => pod.outcome === 'unknown')) await delay(started + FREEZE_DRAIN_MS - Date.now());
  return { ms: Date.now() - started, pods };
}

async function drainPod(target: FreezeTarget, routes: readonly string[], deadline: number, pollMs: number): Promise<PodDrain> {
  for (;;) {
    const answer = await podHttpGet(target.host, target.metricsPort ?? METRICS_PORT, REGISTRY_METRICS_PATH);
    const inFlight = answer.status === 200 ? writesInFlight(answer.body, routes) : undefined;
    if (inFlight === undefined) return { target, outcome: 'unknown', problem: answer.status ? `HTTP ${answer.status} without the registry's in-flight gauges` : answer.body };
    if (inFlight === 0) return { target, outcome: 'drained', inFlight };
    if (Date.now() + pollMs > deadline) return { target, outcome: 'timeout', inFlight };
    await delay(pollMs);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
