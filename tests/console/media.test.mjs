// The MP4 that `media/mp4` makes of a QuickTime MOV plays in Chromium: a job
// of a real daemon remuxes a MOV made by Debian's ffmpeg, and a <video>
// element loads the output, reaches readyState >= 2 (HAVE_CURRENT_DATA) and
// reports the source's duration.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, launch, newPage } from './helpers.mjs';

let daemon, browser;
const hasFfmpeg = (() => {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.KILN_MEDIA_REQUIRE_FFMPEG) throw new Error('ffmpeg is not on PATH');
    return false;
  }
})();

before(async () => {
  if (!hasFfmpeg) return;
  daemon = await startDaemon();
  daemon.bucket('videos');
  daemon.bucket('out');
  const mov = path.join(daemon.dir, 'buckets/videos/clip.mov');
  // H.264 (High) + AAC, `moov` last: what a phone or a screen recorder writes.
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=3', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', mov]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await daemon?.stop();
});

test('a MOV remuxed by media/mp4 plays in Chromium with its duration', { skip: !hasFfmpeg && 'ffmpeg is not installed' }, async () => {
  const job = await daemon.api('POST', '/v1/jobs', { input: { bucket: 'videos', suffixes: '.mov' }, style: 'media/mp4', output: { bucket: 'out', template: '{barename}.mp4' } });
  const done = await daemon.waitJob(job.id, ['succeeded', 'failed']);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  const mp4 = fs.readFileSync(path.join(daemon.dir, 'buckets/out/clip.mp4'));

  // The file is served from a made-up origin, so the page has no other content or policy.
  const page = await newPage(browser);
  await page.route('http://media.test/**', (route) =>
    route.request().url().endsWith('.mp4')
      ? route.fulfill({ status: 200, contentType: 'video/mp4', body: mp4 })
      : route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>video</title><video id="v" muted preload="auto" src="/clip.mp4"></video>' }),
  );
  await page.goto('http://media.test/');
  const state = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const v = document.getElementById('v');
        const report = () => resolve({ readyState: v.readyState, duration: v.duration, error: v.error && v.error.message, width: v.videoWidth });
        if (v.readyState >= 2) return report();
        v.addEventListener('loadeddata', report);
        v.addEventListener('error', report);
        setTimeout(report, 20_000);
      }),
  );
  assert.equal(state.error, null, `the video failed to load: ${JSON.stringify(state)}`);
  assert.ok(state.readyState >= 2, `readyState ${state.readyState}`);
  assert.equal(state.width, 320);
  assert.ok(Math.abs(state.duration - 3) < 0.1, `duration ${state.duration}`);
  await page.close();
});
