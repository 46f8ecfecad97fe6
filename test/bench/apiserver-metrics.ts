// Counting Kubernetes API requests: the API server's own counter apiserver_request_total, read from
// /metrics before and after a run and subtracted, grouped by verb and resource.
import type { TestCluster } from '../support/cluster.ts';

export type RequestCounts = Map<string, number>;

/** `<VERB> <resource>[/<subresource>]` → count, for resource requests (discovery and /metrics are non-resource). */
export function parseRequestTotals(text: string): RequestCounts {
  const totals: RequestCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const resource = labels.resource ? `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}` : '(non-resource)';
    const key = `${labels.verb} ${resource}`;
    totals.set(key, (totals.get(key) ?? 0) + value);
  }
  return totals;
}

export async function requestTotals(cluster: TestCluster): Promise<RequestCounts> {
  const result = await cluster.kubectl(['get', '--raw', '/metrics']);
  if (result.code !== 0) throw new Error(`reading the API server's /metrics: ${result.stderr}`);
  return parseRequestTotals(result.stdout);
}

/**
 * after − before, without what the API server does on its own meanwhile (leases, its endpoints) and
 * without non-resource requests (discovery, /metrics itself).
 */
export function requestDelta(before: RequestCounts, after: RequestCounts): RequestCounts {
  const delta: RequestCounts = new Map();
  for (const [key, value] of after) {
    const diff = value - (before.get(key) ?? 0);
    if (diff <= 0 || key.endsWith('(non-resource)') || /\b(leases|endpoints|endpointslices|services\/status)\b/.test(key)) continue;
    delta.set(key, diff);
  }
  return new Map([...delta].sort((a, b) => b[1] - a[1]));
}

export function totalOf(counts: RequestCounts, verbs?: string[]): number {
  let total = 0;
  for (const [key, value] of counts) if (!verbs || verbs.includes(key.split(' ')[0] as string)) total += value;
  return total;
}
