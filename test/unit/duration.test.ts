import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration, formatTimestamp, isDuration, parseDuration } from '../../functions/duration.ts';

test('parseDuration reads Go durations into milliseconds', () => {
  assert.is(parseDuration('48h'), 48 * 3_600_000);
  assert.is(parseDuration('1h30m'), 5_400_000);
  assert.is(parseDuration('90s'), 90_000);
  assert.is(parseDuration('1.5h'), 5_400_000);
  assert.is(parseDuration('300ms'), 300);
  assert.is(parseDuration('1m0.5s'), 60_500);
  assert.is(parseDuration('.5s'), 500);
  assert.is(parseDuration('1500us'), 1.5);
  assert.is(parseDuration('2000000ns'), 2);
  assert.is(parseDuration('0'), 0);
  assert.is(parseDuration('-1m'), -60_000);
  assert.is(parseDuration('+2h'), 7_200_000);
});

test('parseDuration rejects garbage with a message naming the input', () => {
  for (const bad of ['', '48', 'h', '1d', '1h 30m', '1.5.2h', 'abc', '-', '1H', '10s5', ' 1h']) {
    assert.throws(() => parseDuration(bad), (e: Error) => e.message.includes(JSON.stringify(bad)), bad);
    assert.is(isDuration(bad), false, bad);
  }
  assert.ok(isDuration('24h'));
});

test('formatDuration writes compact Go units that parse back to the same value', () => {
  assert.is(formatDuration(48 * 3_600_000), '48h');
  assert.is(formatDuration(5_400_000), '1h30m');
  assert.is(formatDuration(90_000), '1m30s');
  assert.is(formatDuration(1500), '1.5s');
  assert.is(formatDuration(250), '250ms');
  assert.is(formatDuration(0), '0s');
  assert.is(formatDuration(-60_000), '-1m');
  for (const text of ['24h', '1h0m1s', '36h15m', '0.1s', '2h0.5s']) {
    assert.is(parseDuration(formatDuration(parseDuration(text))), parseDuration(text), text);
  }
  assert.throws(() => formatDuration(Number.NaN));
});

test('formatTimestamp gives RFC 3339 with whole seconds', () => {
  assert.is(formatTimestamp(new Date('2025-03-04T05:06:07.890Z')), '2025-03-04T05:06:07Z');
});

test.run();
