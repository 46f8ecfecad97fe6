import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  liveFreezeHolder,
  freezeEnd,
  freezeId,
  freezeSlots,
  maintenanceBody,
  maintenanceFiles,
  nginxFreezeLines,
  probeVerdict,
  writesInFlight,
  CACHE_WRITE_ROUTES,
  type Freeze,
} from '../../functions/maintenance.ts';

const at = (iso: string) => new Date(iso);
const freeze: Freeze = { id: 'f1', reason: 'garbage collection', from: at('2026-12-02T10:00:03Z'), until: at('2026-12-02T10:00:41Z') };
const slot = (iso: string) => Math.floor(Date.parse(iso) / 10_000);

test('slots: from the one holding `from` to the last one starting before `until`; the freeze ends at a slot boundary, never before `until`', () => {
  assert.equal(freezeSlots(freeze), [slot('2026-12-02T10:00:00Z'), slot('2026-12-02T10:00:10Z'), slot('2026-12-02T10:00:20Z'), slot('2026-12-02T10:00:30Z'), slot('2026-12-02T10:00:40Z')]);
  assert.equal(freezeEnd(freeze), at('2026-12-02T10:00:50Z'));
  assert.equal(freezeEnd({ from: freeze.from, until: at('2026-12-02T10:00:40Z') }), at('2026-12-02T10:00:40Z'), 'an `until` on a boundary ends there');
  assert.equal(freezeSlots({ from: freeze.until, until: freeze.from }), [], 'nothing for an empty span');
});

test('files: the body and one file per slot naming the freeze; no freeze, an empty body and no slot', () => {
  const files = maintenanceFiles(freeze);
  assert.equal(Object.keys(files).filter((k) => k.startsWith('frozen.')).length, 5);
  assert.is(files[`frozen.${slot('2026-12-02T10:00:20Z')}`], 'f1');
  assert.ok(Object.keys(files).every((key) => /^[-._a-zA-Z0-9]+$/.test(key)), 'ConfigMap keys');
  assert.equal(maintenanceFiles(undefined), { 'maintenance.json': '' });
});

test('the refusal is distribution\'s error format and says until when', () => {
  const body = JSON.parse(maintenanceBody(freeze));
  assert.is(body.errors[0].code, 'UNAVAILABLE');
  assert.match(body.errors[0].message, /under maintenance \(garbage collection\): writes are refused until 2026-12-02T10:00:50\.000Z at the latest; pulls keep working/);
  assert.equal(body.errors[0].detail, { freeze: 'f1', until: '2026-12-02T10:00:50.000Z' });
});

test('probe verdicts: this freeze, another one, the registry reached, anything else', () => {
  const body = maintenanceBody(freeze);
  assert.is(probeVerdict({ status: 503, body }, 'f1'), 'frozen');
  assert.is(probeVerdict({ status: 503, body }, 'f2'), 'other', 'an older freeze still showing');
  assert.is(probeVerdict({ status: 503, body: 'health check failed' }, 'f1'), 'other');
  assert.is(probeVerdict({ status: 401, body: '{"errors":[{"code":"UNAUTHORIZED"}]}' }, 'f1'), 'open');
  // a pull-through cache's refusal of writes, past the freeze
  assert.is(probeVerdict({ status: 405, body: '{"errors":[{"code":"UNSUPPORTED","message":"this registry is a pull-through cache of https://x: it refuses pushes and deletes; push to a registry without spec.proxy","detail":null}]}' }, 'f1'), 'open');
  assert.is(probeVerdict({ status: 405, body: 'Method Not Allowed' }, 'f1'), 'other');
  assert.is(probeVerdict({ status: 404, body: '404 page not found' }, 'f1'), 'open');
  assert.is(probeVerdict({ status: 0, body: 'ECONNREFUSED' }, 'f1'), 'other');
  assert.is(probeVerdict({ status: 502, body: '' }, 'f1'), 'other');
});

test('freeze ids differ per run and start', () => {
  assert.is.not(freezeId('a', freeze.from), freezeId('b', freeze.from));
  assert.is.not(freezeId('a', freeze.from), freezeId('a', freeze.until));
  assert.match(freezeId('a', freeze.from), /^[0-9a-f]{16}$/);
});

test('nginx lines: reads pass, writes in a frozen slot get 503 and the body', () => {
  const lines = nginxFreezeLines('', '/m');
  assert.match(lines, /if \(-f \/m\/frozen\.\$freeze_slot\)/);
  assert.match(lines, /if \(\$request_method !~ \^\(GET\|HEAD\)\$\)/);
  assert.match(lines, /return 503;/);
  assert.match(lines, /error_page 503 \/maintenance\.json;/);
});

test('liveFreezeHolder: the id of a freeze with a current or later slot; expired slots and no freeze hold nothing', () => {
  const from = new Date('2026-12-01T12:00:03Z');
  const files = maintenanceFiles({ id: 'run-a', reason: 'garbage collection', from, until: new Date('2026-12-01T12:01:00Z') });
  assert.is(liveFreezeHolder(files, new Date('2026-12-01T12:00:30Z')), 'run-a');
  assert.is(liveFreezeHolder(files, new Date('2026-12-01T12:00:59Z')), 'run-a');
  assert.is(liveFreezeHolder(files, new Date('2026-12-01T12:01:00Z')), undefined, 'the deadline passed: writes are open');
  assert.is(liveFreezeHolder(maintenanceFiles(undefined), from), undefined);
  assert.is(liveFreezeHolder(undefined, from), undefined);
});

// as distribution v3.1.2 writes them (docker/go-metrics: one gauge per route, the route's name as a const label)
const registryMetrics = (inFlight: Record<string, number>) => [
  '# HELP registry_http_in_flight_requests The in-flight HTTP requests',
  '# TYPE registry_http_in_flight_requests gauge',
  ...Object.entries(inFlight).map(([handler, n]) => `registry_http_in_flight_requests{handler="${handler}"} ${n}`),
  '# HELP registry_http_requests_total Total number of HTTP requests made.',
  '# TYPE registry_http_requests_total counter',
  'registry_http_requests_total{code="200",handler="blob",method="get"} 12',
  '',
].join('\n');

test('writes in flight: the manifest and upload routes count, blob GETs (the long reads) do not, except at a cache', () => {
  const idle = { base: 0, blob: 0, blob_upload: 0, blob_upload_chunk: 0, catalog: 0, manifest: 0, tags: 0 };
  assert.is(writesInFlight(registryMetrics(idle)), 0);
  assert.is(writesInFlight(registryMetrics({ ...idle, blob: 7, tags: 2 })), 0, 'pulls of layers and tag lists are no writes');
  assert.is(writesInFlight(registryMetrics({ ...idle, manifest: 1, blob_upload_chunk: 2, blob_upload: 1 })), 4);
  assert.is(writesInFlight(registryMetrics({ ...idle, blob: 3 }), CACHE_WRITE_ROUTES), 3, "a cache's blob GET may store what it fetches");
});

test('writes in flight: unknown when the text is not a registry\'s (metrics off, another process, garbage)', () => {
  assert.is(writesInFlight(''), undefined);
  assert.is(writesInFlight('# TYPE go_goroutines gauge\ngo_goroutines 12\n'), undefined);
  assert.is(writesInFlight(registryMetrics({ base: 0, blob: 0 })), undefined, 'no write route among the gauges');
  assert.is(writesInFlight('<html>404 Not Found</html>'), undefined);
  assert.is(writesInFlight('registry_http_in_flight_requests{handler="manifest"} NaN\n'), undefined);
});

test.run();
