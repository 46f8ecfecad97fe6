// Confirms a write freeze (functions/maintenance.ts) on every registry pod the way a client sees
// it: a write to FREEZE_PROBE_PATH through the pod's nginx, by the pod's IP, TLS verified for the
// registry's hostname. Frozen: nginx answers 503 with this freeze's id. Lifted: the write reaches
// the registry, which refuses it (no token; and no repository can have the probe's name).
import { FREEZE_PROBE_PATH, probeVerdict } from '../functions/maintenance.ts';
import { podFrontRequest, type FrontAnswer, type PodFront } from './pod-front.ts';

/** a registry pod's front */
export type FreezeTarget = PodFront;

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
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
  }
}

function probe(target: FreezeTarget): Promise<FrontAnswer> {
  return podFrontRequest(target, { method: 'POST', path: FREEZE_PROBE_PATH, headers: { 'content-length': 0 } });
}
