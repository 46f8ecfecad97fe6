// The write freeze of a registry's storage maintenance (garbage collection, retention): while it
// holds, every pod's nginx refuses writes to /v2/ (anything but GET and HEAD) with 503 and a
// message saying until when; reads go on. No pod restarts and no token expiry is waited for.
//
// How nginx knows: the ConfigMap `<r>-maintenance`, mounted as a directory (never a subPath, so
// the kubelet swaps in changes), holds a file `frozen.<t>` for every 10-second slot t
// (⌊epoch seconds / 10⌋) of the freeze. nginx tests `-f …/frozen.<slot of now>` on each write,
// so a freeze ends by itself at its deadline — a Job that dies mid-way never leaves a registry
// frozen — and the refusal's body is the ConfigMap's `maintenance.json`.
import { createHash } from 'node:crypto';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

export const MAINTENANCE_DIR = '/etc/nginx/maintenance';
export const MAINTENANCE_BODY_FILE = 'maintenance.json';
export const FREEZE_SLOT_SECONDS = 10;
const SLOT_FILE_PREFIX = 'frozen.';
/** The path a confirmation writes to: no repository can have this name, so a write never lands. */
export const FREEZE_PROBE_PATH = '/v2/-freeze-probe/blobs/uploads/';

export interface Freeze {
  /** names this freeze in the refusals, so a confirmation knows it sees this one and not an older */
  id: string;
  /** what is done meanwhile, e.g. "garbage collection" */
  reason: string;
  from: Date;
  /** writes are accepted again from the first slot that starts at or after this */
  until: Date;
}

const slotOf = (time: Date) => Math.floor(time.getTime() / 1000 / FREEZE_SLOT_SECONDS);

/**
 * The slots of a freeze: from the one holding `from` to the last one that starts before `until`.
 * The freeze may thus end up to one slot after `until`, never before it.
 */
export function freezeSlots(freeze: Pick<Freeze, 'from' | 'until'>): number[] {
  const first = slotOf(freeze.from);
  const last = Math.ceil(freeze.until.getTime() / 1000 / FREEZE_SLOT_SECONDS) - 1;
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

/** The moment the freeze's last slot ends: when nginx accepts writes again even if nobody lifts it. */
export function freezeEnd(freeze: Pick<Freeze, 'from' | 'until'>): Date {
  const slots = freezeSlots(freeze);
  return new Date(((slots.at(-1) ?? slotOf(freeze.from) - 1) + 1) * FREEZE_SLOT_SECONDS * 1000);
}

/** The refusal clients get: distribution's error format, so docker, skopeo and crane print the message. */
export function maintenanceBody(freeze: Freeze): string {
  const until = freezeEnd(freeze).toISOString();
  return `${JSON.stringify({
    errors: [{
      code: 'UNAVAILABLE',
      message: `registry under maintenance (${freeze.reason}): writes are refused until ${until} at the latest; pulls keep working. Retry the push after that.`,
      detail: { freeze: freeze.id, until },
    }],
  })}\n`;
}

/** The ConfigMap data: the body and a file per slot; no freeze, an empty body and no slot. */
export function maintenanceFiles(freeze: Freeze | undefined): Record<string, string> {
  if (!freeze) return { [MAINTENANCE_BODY_FILE]: '' };
  const files: Record<string, string> = { [MAINTENANCE_BODY_FILE]: maintenanceBody(freeze) };
  for (const slot of freezeSlots(freeze)) files[`${SLOT_FILE_PREFIX}${slot}`] = freeze.id;
  return files;
}

/** A freeze id that says which run of what it belongs to. */
export function freezeId(run: string, from: Date): string {
  return createHash('sha256').update(`${run}@${from.toISOString()}`).digest('hex').slice(0, 16);
}

/**
 * What a pod's answer to a write at FREEZE_PROBE_PATH says: `frozen` when nginx refused it for
 * this freeze, `open` when the write reached the registry (which refuses it: 401 or 404) or a
 * cache's refusal of writes (405 UNSUPPORTED),
 * `other` otherwise (an older freeze's body, an unreachable pod, a registry that is down).
 */
export function probeVerdict(answer: { status: number; body: string }, freezeIdWanted: string): 'frozen' | 'open' | 'other' {
  if (answer.status === 503) return answer.body.includes(`"freeze":"${freezeIdWanted}"`) ? 'frozen' : 'other';
  // the registry itself: 401 without a token, or 404 (no route: the probe's name is not a repository name)
  if (answer.status === 401 || answer.status === 404) return 'open';
  // a pull-through cache's nginx, past the freeze: its refusal of every write (pull-through-cache.ts)
  if (answer.status === 405 && answer.body.includes('"code":"UNSUPPORTED"')) return 'open';
  return 'other';
}

/**
 * nginx.conf lines in `location /v2/`: refuse writes in a frozen slot, with the body above. A
 * pull-through cache (`everyRequest`) refuses every request then: its pulls write too (a miss
 * stores what it fetched), and content stored while the collector marks could be swept half-linked.
 * Nodes that pull through the cache as a mirror go to the upstream meanwhile (containerd tries the
 * next host of hosts.toml).
 */
export function nginxFreezeLines(indent: string, maintenanceDir = MAINTENANCE_DIR, options: { everyRequest?: boolean } = {}): string {
  return [
    `# Storage maintenance (functions/maintenance.ts): a ${options.everyRequest ? 'request' : 'write'} in a frozen 10 s slot gets 503 and`,
    `# ${MAINTENANCE_BODY_FILE}; -f is a stat per request, so a changed ConfigMap counts at once.`,
    'set $freeze_write "";',
    `if (-f ${maintenanceDir}/${SLOT_FILE_PREFIX}$freeze_slot) {`,
    '  set $freeze_write "frozen";',
    '}',
    ...(options.everyRequest
      ? ['set $freeze_write "${freeze_write}-write";']
      : ['if ($request_method !~ ^(GET|HEAD)$) {', '  set $freeze_write "${freeze_write}-write";', '}']),
    'if ($freeze_write = "frozen-write") {',
    '  return 503;',
    '}',
    `error_page 503 /${MAINTENANCE_BODY_FILE};`,
  ].map((line) => `${indent}${line}`).join('\n');
}

/** nginx.conf lines in `http`: the slot of the request's time. $msec is "<epoch seconds>.<ms>". */
export function nginxFreezeSlotMap(indent: string): string {
  return [
    `map $msec $freeze_slot {`,
    `  "~^(?<slot>\\d+)\\d\\." $slot;`,
    '}',
  ].map((line) => `${indent}${line}`).join('\n');
}

/** nginx.conf location serving the refusal's body. */
export function nginxMaintenanceLocation(indent: string, maintenanceDir = MAINTENANCE_DIR): string {
  return [
    `location = /${MAINTENANCE_BODY_FILE} {`,
    '  internal;',
    `  root ${maintenanceDir};`,
    '  default_type application/json;',
    '  add_header Docker-Distribution-Api-Version registry/2.0 always;',
    '}',
  ].map((line) => `${indent}${line}`).join('\n');
}

/**
 * The drain: after the freeze is confirmed on every pod, the run waits until no write nginx passed
 * on just before it is still inside the registry — a manifest PUT landing while the collector marks
 * could reference blobs it has already passed over, which the sweep then deletes. Read from each
 * pod's metrics port (registry_http_in_flight_requests of these routes): distribution counts a
 * request there from the moment its handler starts until it has answered. The routes also serve
 * reads (a manifest GET, an upload's status), which take milliseconds, so a sample of 0 comes soon
 * under load too; blob GETs, the long reads, have a route of their own ("blob") and do not count.
 */
export const WRITE_ROUTES: readonly string[] = ['manifest', 'blob_upload', 'blob_upload_chunk'];
/** A pull-through cache's: every request may write (a miss stores what it fetches), blob GETs too. */
export const CACHE_WRITE_ROUTES: readonly string[] = [...WRITE_ROUTES, 'blob'];
const IN_FLIGHT_METRIC = 'registry_http_in_flight_requests';
/** Between the confirmation and the first sample: a write nginx passed on reaches the registry's handler (loopback, a kept-alive connection). */
export const DRAIN_SETTLE_MS = 100;
/**
 * The longest wait for writes in flight (a monolithic upload of a big layer streams for as long as
 * it takes); after it the run goes on and says so. A blob it commits during the sweep may be swept:
 * the client's manifest push then fails with BLOB_UNKNOWN and its retry uploads it again.
 */
export const WRITE_DRAIN_TIMEOUT_MS = 30_000;
/**
 * The fixed drain for a pod whose metrics cannot be read (a NetworkPolicy in the way, a pod from
 * before the metrics port): writes nginx passed on just before the freeze (a manifest PUT takes
 * milliseconds) reach the registry within it.
 */
export const FREEZE_DRAIN_MS = 5_000;

/**
 * The writes in flight in one registry process, from its Prometheus text (the metrics port);
 * undefined when the text does not parse or has none of WRITE_ROUTES' gauges (not a registry's, or
 * its metrics are off) — then nothing is known and the fixed drain applies.
 */
export function writesInFlight(metricsText: string, routes: readonly string[] = WRITE_ROUTES): number | undefined {
  let families: ReturnType<typeof parsePrometheusTextFormat>;
  try {
    families = parsePrometheusTextFormat(metricsText);
  } catch {
    return undefined;
  }
  const gauges = families.find((family) => family.name === IN_FLIGHT_METRIC)?.metrics ?? [];
  const writes = gauges.filter((gauge) => routes.includes(gauge.labels?.handler ?? ''));
  const total = writes.reduce((sum, gauge) => sum + Number(gauge.value ?? Number.NaN), 0);
  return writes.length > 0 && Number.isFinite(total) ? total : undefined;
}

/**
 * The freeze that holds the ConfigMap now (a slot file of the current or a later slot), by id; undefined
 * when writes are open or only expired slots are left. Two runs must never both hold the freeze:
 * the first's lift would open writes under the second's collector.
 */
export function liveFreezeHolder(files: Readonly<Record<string, string>> | undefined, now: Date): string | undefined {
  const current = slotOf(now);
  for (const [name, id] of Object.entries(files ?? {})) {
    if (name.startsWith(SLOT_FILE_PREFIX) && Number(name.slice(SLOT_FILE_PREFIX.length)) >= current) return id;
  }
  return undefined;
}
