// Validation of ImageRegistry spec.garbageCollection; see formats.ts for the conventions.
import { isDuration, parseDuration } from '../duration.ts';
import { GC_TIMEOUT_RANGE_MS } from '../gc-defaults.ts';
import { isPlainObject } from '../json-patch.ts';
import { type Problems } from './formats.ts';

const CRON_MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const CRON_FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** Why a CronJob schedule (the five fields or a macro, as Kubernetes parses it) is invalid, or undefined. */
export function cronProblem(schedule: unknown): string | undefined {
  if (typeof schedule !== 'string' || schedule.trim() === '') return 'must be a cron schedule, e.g. "30 2 * * *" (02:30 UTC daily)';
  if (/^\s*(CRON_)?TZ=/.test(schedule)) return 'must not set a time zone: schedules are UTC';
  if (CRON_MACROS.has(schedule.trim())) return undefined;
  const parts = schedule.trim().split(/\s+/);
  if (parts.length !== 5) return `must have 5 fields (minute hour day-of-month month day-of-week), has ${parts.length}`;
  for (const [i, part] of parts.entries()) {
    const spec = CRON_FIELDS[i] as (typeof CRON_FIELDS)[number];
    const value = (text: string) => {
      const index = spec.names?.indexOf(text.toLowerCase()) ?? -1;
      return index >= 0 ? index + (spec.name === 'month' ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : Number.NaN;
    };
    for (const item of part.split(',')) {
      const match = /^(\*|\?|([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?)(?:\/(\d+))?$/.exec(item);
      const numbers = match ? [match[2], match[3]].filter((n): n is string => n !== undefined).map(value) : [];
      const inRange = numbers.every((n) => n >= spec.min && n <= spec.max) && (numbers.length < 2 || (numbers[0] as number) <= (numbers[1] as number));
      if (!match || !inRange || (match[4] !== undefined && Number(match[4]) === 0)) return `field ${i + 1} (${spec.name}) ${JSON.stringify(item)}: must be *, a value ${spec.min}-${spec.max}${spec.names ? ' or a name' : ''}, a range a-b, a list or a step /n`;
    }
  }
  return undefined;
}

function validateKeepTags(keep: unknown, path: string): Problems {
  if (!isPlainObject(keep)) return [`${path}: required; an object with patterns, mostRecentlyPushedCount and/or pushedWithin (the tags kept; every other tag is deleted)`];
  const { patterns, mostRecentlyPushedCount, pushedWithin } = keep;
  const problems: Problems = [];
  if (patterns === undefined && mostRecentlyPushedCount === undefined && pushedWithin === undefined) problems.push(`${path}: set at least one of patterns, mostRecentlyPushedCount and pushedWithin (an empty rule would delete every tag)`);
  problems.push(...validateGlobs(patterns, `${path}.patterns`, false));
  if (mostRecentlyPushedCount !== undefined && !(Number.isInteger(mostRecentlyPushedCount) && (mostRecentlyPushedCount as number) >= 0)) problems.push(`${path}.mostRecentlyPushedCount: must be an integer >= 0`);
  if (pushedWithin !== undefined && !(typeof pushedWithin === 'string' && isDuration(pushedWithin) && parseDuration(pushedWithin) > 0)) problems.push(`${path}.pushedWithin: must be a positive duration, e.g. 720h`);
  return problems;
}

function validateGlobs(globs: unknown, path: string, required: boolean): Problems {
  if (globs === undefined && !required) return [];
  if (!Array.isArray(globs) || globs.length === 0) return [`${path}: must be a non-empty list of glob patterns, e.g. ["release-*"]`];
  return globs.flatMap((glob, i) => (typeof glob === 'string' && glob !== '' && glob.length <= 256 ? [] : [`${path}[${i}]: must be a glob pattern of 1-256 characters (* any characters but /, ** also /, ? one character)`]));
}

export function validateGarbageCollection(gc: unknown, path = 'spec.garbageCollection'): Problems {
  if (gc === undefined || gc === null) return [];
  if (!isPlainObject(gc)) return [`${path}: must be an object with enabled, schedule, deleteUntagged, dryRun, timeout and retention`];
  const { enabled, schedule, deleteUntagged, dryRun, timeout, retention } = gc;
  const problems: Problems = [];
  for (const [key, value] of Object.entries({ enabled, deleteUntagged, dryRun })) {
    if (value !== undefined && typeof value !== 'boolean') problems.push(`${path}.${key}: must be true or false`);
  }
  if (schedule !== undefined) {
    const problem = cronProblem(schedule);
    if (problem) problems.push(`${path}.schedule: ${problem}`);
  }
  if (timeout !== undefined && !(typeof timeout === 'string' && isDuration(timeout) && parseDuration(timeout) >= GC_TIMEOUT_RANGE_MS.min && parseDuration(timeout) <= GC_TIMEOUT_RANGE_MS.max)) {
    problems.push(`${path}.timeout: must be a duration from 30s to 24h, e.g. 15m (pushes are refused for at most this long if a run fails)`);
  }
  if (retention !== undefined) {
    if (!Array.isArray(retention)) return [...problems, `${path}.retention: must be a list of policies {repositories, keepTags}`];
    retention.forEach((policy, i) => {
      const at = `${path}.retention[${i}]`;
      if (!isPlainObject(policy)) return problems.push(`${at}: must be an object with repositories and keepTags`);
      problems.push(...validateGlobs(policy['repositories'], `${at}.repositories`, true), ...validateKeepTags(policy['keepTags'], `${at}.keepTags`));
    });
  }
  return problems;
}
