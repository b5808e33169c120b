// The console's time reading: the API has written times as unix seconds and as
// RFC 3339 strings; both must show the same instant.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toDate, secondsBetween, formatBytes, formatDuration, doneOf } from '../../host/console/dom.js';

test('times: unix seconds and RFC 3339 strings are the same instant', () => {
  const secs = Date.UTC(2026, 11, 4, 18, 51, 30) / 1000;
  assert.equal(toDate(secs).toISOString(), '2026-12-04T18:51:30.000Z');
  assert.equal(toDate('2026-12-04T18:51:30Z').toISOString(), '2026-12-04T18:51:30.000Z');
  assert.equal(toDate('2026-12-04T19:51:30+01:00').getTime(), secs * 1000);
  assert.equal(secondsBetween(secs, '2026-12-04T18:52:00Z'), 30);
  assert.equal(toDate('not a time'), null);
});

test('sizes, durations, done counts', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
  assert.equal(formatDuration(75), '1 min 15 s');
  assert.equal(doneOf({ succeeded: 2, failed: 1, skipped: 3, pending: 9 }), 6);
});
