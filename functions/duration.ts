// Go-style durations ("48h", "1h30m", "90s", "1.5h", "300ms"), the format Kubernetes users know
// from kubectl and that the CRDs accept for ImageRegistryAccount.spec.ttl.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const SEGMENT = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Parses a Go duration string into milliseconds; throws an Error naming the bad input. */
export function parseDuration(text: string): number {
  const problem = (why: string) => new Error(`invalid duration ${JSON.stringify(text)}: ${why}`);
  if (typeof text !== 'string' || text === '') throw problem('empty');
  let rest = text;
  let sign = 1;
  if (rest[0] === '-' || rest[0] === '+') {
    sign = rest[0] === '-' ? -1 : 1;
    rest = rest.slice(1);
  }
  // Go accepts a bare zero without unit, nothing else unitless.
  if (rest === '0') return 0;
  if (rest === '') throw problem('missing number');
  let total = 0;
  SEGMENT.lastIndex = 0;
  while (SEGMENT.lastIndex < rest.length) {
    const start = SEGMENT.lastIndex;
    const match = SEGMENT.exec(rest);
    if (!match) throw problem(`unexpected ${JSON.stringify(rest.slice(start))} (use units h, m, s, ms, us, ns)`);
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  if (!Number.isFinite(total)) throw problem('too large');
  return sign * total;
}

/** True when text parses as a duration; for validation messages that collect all problems. */
export function isDuration(text: string): boolean {
  try {
    parseDuration(text);
    return true;
  } catch {
    return false;
  }
}

/** Formats milliseconds compactly in Go's units, e.g. 5400000 → "1h30m"; parseDuration inverts it. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`cannot format duration ${ms}`);
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return sign + trimNumber(rest) + 'ms';
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = rest / 1000;
  return sign + (hours ? `${hours}h` : '') + (minutes ? `${minutes}m` : '') + (seconds ? `${trimNumber(seconds)}s` : '');
}

// Rounds away float noise (0.1 + 0.2) so the text stays short and parses back to the same value.
function trimNumber(n: number): string {
  return String(Number(n.toFixed(6)));
}

/** RFC 3339 timestamp with second precision, the form Kubernetes stores for metav1.Time. */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
