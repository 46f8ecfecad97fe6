// The ImageRegistry's status: hostname, TLS Secret and a Ready condition that says why not.
import { notReady, ready, setCondition, READY, getCondition, type ConditionInput } from './conditions.ts';
import type { Condition, ImageRegistry, ImageRegistryStatus } from './types.ts';

export interface RegistryProblem {
  reason: string;
  message: string;
}

export interface StatefulSetState {
  metadata?: { generation?: number };
  spec?: { replicas?: number; template?: { metadata?: { annotations?: Record<string, string> } } };
  status?: {
    observedGeneration?: number;
    readyReplicas?: number;
    replicas?: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
  };
}

/**
 * True when every pod runs, ready, from the current template, and that template carries the given
 * annotations: the StatefulSet controller has seen the latest spec (observedGeneration), has no pod
 * left of an older revision, and every replica is ready. Counts the controller leaves out are 0.
 */
export function statefulSetRolledOut(statefulSet: StatefulSetState | undefined, templateAnnotations: Record<string, string>): boolean {
  if (!statefulSet) return false;
  const annotations = statefulSet.spec?.template?.metadata?.annotations ?? {};
  if (!Object.entries(templateAnnotations).every(([key, value]) => annotations[key] === value)) return false;
  const { metadata = {}, status = {} } = statefulSet;
  const replicas = statefulSet.spec?.replicas ?? 1;
  return (
    (status.observedGeneration ?? 0) >= (metadata.generation ?? 1) &&
    (status.replicas ?? 0) === replicas &&
    (status.updatedReplicas ?? 0) === replicas &&
    (status.readyReplicas ?? 0) === replicas &&
    status.currentRevision !== undefined &&
    status.currentRevision === status.updateRevision
  );
}

/** Ready when the certificates are usable and the StatefulSet has a ready replica. */
export function registryReadiness(registry: ImageRegistry, problem: RegistryProblem | undefined, statefulSet: StatefulSetState | undefined): ConditionInput {
  if (problem) return notReady(problem.reason, problem.message);
  const wanted = registry.spec?.replicas ?? 1;
  if (wanted === 0) return notReady('ScaledToZero', 'spec.replicas is 0: the registry is stopped, its volume is kept');
  const readyReplicas = statefulSet?.status?.readyReplicas ?? 0;
  if (readyReplicas < 1) return notReady('RolloutPending', `waiting for a ready replica of StatefulSet ${registry.metadata.name} (0/${wanted} ready)`);
  return ready(`${readyReplicas}/${wanted} replicas ready`);
}

export function registryStatus(
  registry: ImageRegistry,
  fields: { hostname: string; tlsSecretName: string; readiness: ConditionInput; gcCronJob?: string; upstream?: ConditionInput },
  now: Date,
): ImageRegistryStatus {
  const generation = registry.metadata.generation;
  let conditions: Condition[] = setCondition(registry.status?.conditions, fields.readiness, now, generation);
  // a pull-through cache's: kept from the last run that could ask (a run without pods asks nothing)
  if (fields.upstream) conditions = setCondition(conditions, fields.upstream, now, generation);
  return {
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions,
    hostname: fields.hostname,
    tlsSecretName: fields.tlsSecretName,
    // lastRun is the garbage collection Job's (a field manager of its own)
    ...(fields.gcCronJob ? { garbageCollection: { cronJob: fields.gcCronJob } } : {}),
  };
}

/** True when the Ready condition changes (status or reason), i.e. worth an Event. */
export function readinessChanged(registry: ImageRegistry, readiness: ConditionInput): boolean {
  const previous = getCondition(registry.status?.conditions, READY);
  return previous?.status !== readiness.status || previous?.reason !== readiness.reason;
}

/** What Ready needs: a ready replica, or none wanted. */
export function hasReadyReplica(registry: ImageRegistry, statefulSet: StatefulSetState | undefined): boolean {
  return (registry.spec?.replicas ?? 1) === 0 || (statefulSet?.status?.readyReplicas ?? 0) >= 1;
}
