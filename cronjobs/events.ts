// Kubernetes Events on our objects, so `kubectl describe` tells what a Job did and why.
import { randomBytes } from 'node:crypto';
import { GROUP_VERSION } from '../functions/types.ts';
import type { Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** Records an Event; a failure to record is logged, never fatal (Events are best-effort). */
export async function recordEvent(kube: Kube, object: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string, now: Date): Promise<void> {
  const { name = '', namespace = 'default', uid } = object.metadata;
  const timestamp = now.toISOString();
  try {
    await kube.create({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: { apiVersion: object.apiVersion, kind: object.kind, name, namespace, uid },
      type,
      reason,
      message,
      source: { component: 'image-registry-operator' },
      reportingComponent: 'image-registry-operator',
      reportingInstance: process.env.HOSTNAME ?? 'job',
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      count: 1,
    });
  } catch (error) {
    log('warn', 'cannot record event', { reason, object: `${namespace}/${name}`, error: errorMessage(error) });
  }
}

/** An Event on an ImageRegistry: `kubectl describe imageregistry` shows it. */
export function recordRegistryEvent(kube: Kube, registry: Pick<InvolvedObject, 'metadata'>, type: 'Normal' | 'Warning', reason: string, message: string, now: Date): Promise<void> {
  return recordEvent(kube, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: registry.metadata }, type, reason, message, now);
}
