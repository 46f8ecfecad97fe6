// spec.garbageCollection's defaults, apart from garbage-collection.ts so that the webhook's
// defaulting does not bundle the Job objects.
import { shortHash } from './reconcile-job.ts';

/** the longest a run may take; the write freeze ends by then at the latest */
export const DEFAULT_GC_TIMEOUT = '15m';
/** what spec.garbageCollection.timeout may be */
export const GC_TIMEOUT_RANGE_MS = { min: 30_000, max: 24 * 3_600_000 } as const;

/**
 * Once a day at a time of its own (from a hash of namespace/name: the registries of a cluster do not
 * all freeze in the same minute), in the small hours UTC, when pushes are fewest.
 */
export function defaultGcSchedule(namespace: string, name: string): string {
  const hash = Buffer.from(shortHash(`gc:${namespace}/${name}`, 4), 'hex');
  return `${(hash[0] as number) % 60} ${(hash[1] as number) % 6} * * *`;
}
