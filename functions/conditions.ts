// status.conditions handling with the semantics of metav1.Condition: lastTransitionTime only moves
// when the status flips, so a resync that finds nothing new leaves the status byte-for-byte equal.
import { formatTimestamp } from './duration.ts';
import type { Condition } from './types.ts';

export type ConditionInput = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

export const READY = 'Ready';

// metav1.Condition's reason pattern; the API server rejects other reasons in typed conditions.
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/** Returns a new list with the condition set; input is not mutated, other types keep their order. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date,
  generation?: number,
): Condition[] {
  if (!REASON.test(input.reason)) throw new Error(`condition reason must be PascalCase, got ${JSON.stringify(input.reason)}`);
  const list = conditions ?? [];
  const previous = list.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    lastTransitionTime: previous && previous.status === input.status ? previous.lastTransitionTime : formatTimestamp(now),
    reason: input.reason,
    message: input.message,
  };
  return previous ? list.map((c) => (c === previous ? next : { ...c })) : [...list.map((c) => ({ ...c })), next];
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Ready=True with reason Ready, or Ready=False with the given PascalCase reason. */
export function readyCondition(ready: boolean, reason: string, message: string): ConditionInput {
  return { type: READY, status: ready ? 'True' : 'False', reason, message };
}

export function ready(message: string): ConditionInput {
  return readyCondition(true, READY, message);
}

export function notReady(reason: string, message: string): ConditionInput {
  return readyCondition(false, reason, message);
}

/**
 * True when the object's Ready condition is True and, when both are known, was computed for the
 * current generation (a stale True after a spec change does not count).
 */
export function isReady(obj: { metadata?: { generation?: number }; status?: { conditions?: Condition[] } }): boolean {
  const condition = getCondition(obj.status?.conditions, READY);
  if (condition?.status !== 'True') return false;
  const generation = obj.metadata?.generation;
  return generation === undefined || condition.observedGeneration === undefined || condition.observedGeneration === generation;
}
