// What of a registry the cluster runs: the image references of its workloads (Pods and the pod
// templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs and
// ReplicationControllers) that name the registry's hostname, by repository: the tags and the
// digests they pin. Retention keeps them whatever its policies say (retentionPlan).
import { namesRegistry, parseImageReference } from './image-reference.ts';

export interface InUse {
  /** repository → tags referenced */
  tags: Record<string, string[]>;
  /** repository → manifest digests referenced (`name@digest`, `name:tag@digest`) */
  digests: Record<string, string[]>;
}

/** A pod spec's images as the workload lists carry them. */
export interface PodSpecImages {
  containers?: { image?: string }[];
  initContainers?: { image?: string }[];
  ephemeralContainers?: { image?: string }[];
}

export function podSpecImages(spec: PodSpecImages | undefined): string[] {
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? []), ...(spec?.ephemeralContainers ?? [])].flatMap((c) => (c.image ? [c.image] : []));
}

/**
 * The references to this registry among `images`: to its hostname, or — a pull-through cache — to
 * an image host it mirrors (`docker.io/library/nginx@sha256:…` runs from the cache's copy). A
 * reference with a digest pins the manifest (the tag beside it is kept too: with deleteUntagged, a
 * manifest without tag would be collected).
 */
export function inUseOf(images: Iterable<string>, hostnames: string | readonly string[]): InUse {
  const hosts = typeof hostnames === 'string' ? [hostnames] : hostnames;
  const tags = new Map<string, Set<string>>();
  const digests = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, repository: string, value: string) => map.set(repository, (map.get(repository) ?? new Set()).add(value));
  for (const image of images) {
    const reference = parseImageReference(image);
    if (!reference || !hosts.some((host) => namesRegistry(reference, host))) continue;
    // no tag and no digest: the runtime pulls :latest
    if (reference.tag !== undefined || reference.digest === undefined) add(tags, reference.repository, reference.tag ?? 'latest');
    if (reference.digest) add(digests, reference.repository, reference.digest);
  }
  const sorted = (map: Map<string, Set<string>>) => Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, [...v].sort()]));
  return { tags: sorted(tags), digests: sorted(digests) };
}

/** How many references, and a few of them (`repository:tag`, `repository@digest`), for an Event. */
export function inUseSummary(inUse: InUse): { count: number; examples: string[] } {
  const all = [
    ...Object.entries(inUse.tags).flatMap(([repository, tags]) => tags.map((tag) => `${repository}:${tag}`)),
    ...Object.entries(inUse.digests).flatMap(([repository, digests]) => digests.map((digest) => `${repository}@${digest.slice(0, 19)}…`)),
  ];
  return { count: all.length, examples: all.slice(0, 3) };
}
