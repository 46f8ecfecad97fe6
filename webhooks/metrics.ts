// In-process Prometheus metrics of the webhook, rendered in the text exposition format.
// Label values come from a fixed set (our kinds, "other", "invalid"), never raw input, so a
// client cannot create unbounded series.

export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type Labels = Record<string, string>;

export interface RequestLabels {
  /** our kind, "other" for kinds not ours, "invalid" for a body that is no AdmissionReview */
  kind: string;
  operation: string;
  /** patched | unchanged | allowed | denied | ignored | invalid | too_large | error */
  result: string;
}

export type ServiceAccountResult = 'patched' | 'unchanged' | 'error';

export interface Metrics {
  countRequest(labels: RequestLabels): void;
  observeDuration(webhook: string, seconds: number): void;
  countEnqueued(result: 'created' | 'coalesced'): void;
  countEnqueueFailure(): void;
  /** a ServiceAccount creation: the entries added (patched), none to add (unchanged), or admitted unchanged after an error */
  countServiceAccount(result: ServiceAccountResult): void;
  /** the Prometheus text exposition */
  render(): string;
}

function escapeLabelValue(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function header(name: string, type: string, help: string): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/** Counters keyed by their formatted label set. */
function counter() {
  const values = new Map<string, number>();
  return {
    inc(labels: Labels, by = 1) {
      const key = formatLabels(labels);
      values.set(key, (values.get(key) ?? 0) + by);
    },
    /** the same for an already formatted label set */
    incFormatted(key: string) {
      values.set(key, (values.get(key) ?? 0) + 1);
    },
    lines(name: string): string[] {
      return [...values].map(([labels, value]) => `${name}${labels} ${value}`);
    },
  };
}

interface Series {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

function histogram(buckets: readonly number[]) {
  const series = new Map<string, Series>();
  return {
    /** The series of a label set; callers keep it instead of formatting the labels per observation. */
    series(labels: Labels): Series {
      const key = formatLabels(labels);
      let entry = series.get(key);
      if (entry === undefined) {
        entry = { labels, counts: buckets.map(() => 0), sum: 0, count: 0 };
        series.set(key, entry);
      }
      return entry;
    },
    observe(entry: Series, value: number) {
      const { counts } = entry;
      for (let i = 0; i < buckets.length; i++) if (value <= (buckets[i] as number)) counts[i] = (counts[i] as number) + 1;
      entry.sum += value;
      entry.count += 1;
    },
    lines(name: string): string[] {
      return [...series.values()].flatMap(({ labels, counts, sum, count }) => [
        ...buckets.map((le, i) => `${name}_bucket${formatLabels({ ...labels, le: String(le) })} ${counts[i] ?? 0}`),
        `${name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${count}`,
        `${name}_sum${formatLabels(labels)} ${sum}`,
        `${name}_count${formatLabels(labels)} ${count}`,
      ]);
    },
  };
}

/** get-or-create on a Map */
function cached<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = create();
    map.set(key, value);
  }
  return value;
}

export function createMetrics(): Metrics {
  const requests = counter();
  // Formatting and escaping a label set per admission cost more than counting it: each label set
  // is formatted once and kept (kind → operation → result → formatted labels; duration series by
  // webhook). Label values come from a fixed set, so these stay small.
  const requestKeys = new Map<string, Map<string, Map<string, string>>>();
  const durations = histogram(DURATION_BUCKETS);
  const durationSeries = new Map<string, Series>();
  const enqueued = counter();
  const enqueueFailures = counter();
  // series that exist from the start, so rates and alerts work before the first event
  enqueued.inc({ result: 'created' }, 0);
  enqueued.inc({ result: 'coalesced' }, 0);
  enqueueFailures.inc({}, 0);
  const serviceAccounts = counter();
  for (const result of ['patched', 'unchanged', 'error'] as const) serviceAccounts.inc({ result }, 0);
  return {
    countRequest: ({ kind, operation, result }) => {
      const byResult = cached(cached(requestKeys, kind, () => new Map()), operation, () => new Map<string, string>());
      requests.incFormatted(cached(byResult, result, () => formatLabels({ kind, operation, result })));
    },
    observeDuration: (webhook, seconds) => durations.observe(cached(durationSeries, webhook, () => durations.series({ webhook })), seconds),
    countEnqueued: (result) => enqueued.inc({ result }),
    countEnqueueFailure: () => enqueueFailures.inc({}),
    countServiceAccount: (result) => serviceAccounts.inc({ result }),
    render: () =>
      [
        ...header('webhook_requests_total', 'counter', 'Admission requests by kind, operation and result.'),
        ...requests.lines('webhook_requests_total'),
        ...header('webhook_request_duration_seconds', 'histogram', 'Time to answer an admission request.'),
        ...durations.lines('webhook_request_duration_seconds'),
        ...header('webhook_jobs_enqueued_total', 'counter', 'Reconcile Jobs created, or found already queued for their window (coalesced).'),
        ...enqueued.lines('webhook_jobs_enqueued_total'),
        ...header('webhook_enqueue_failures_total', 'counter', 'Reconcile Jobs that could not be enqueued (the resync CronJob repairs).'),
        ...enqueueFailures.lines('webhook_enqueue_failures_total'),
        ...header('webhook_serviceaccount_admissions_total', 'counter', 'ServiceAccount creations: imagePullSecrets entries added (patched), none to add (unchanged), or admitted unchanged after an error (error; the reconcile Jobs add the entries).'),
        ...serviceAccounts.lines('webhook_serviceaccount_admissions_total'),
      ].join('\n') + '\n',
  };
}
