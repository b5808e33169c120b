// Page weight and time to first paint of the job list with many jobs (default
// 10,000). Not a test: run by hand (see docs/console.md), figures on stdout.
//
//   node tests/console/bench-first-paint.mjs [JOBS] [RUNS]

import os from 'node:os';
import { execSync } from 'node:child_process';
import { ADMIN, startDaemon, launch } from './helpers.mjs';

const JOBS = Number(process.argv[2] || 10_000);
const RUNS = Number(process.argv[3] || 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const daemon = await startDaemon();
daemon.bucket('empty');
daemon.bucket('out');
const t0 = Date.now();
let made = 0;
const spec = (i) => ({ name: `bench ${i}`, input: { bucket: 'empty' }, style: 'checksum', output: { bucket: 'out', template: '{key}.{autoext}' }, tags: { bench: 'yes' } });
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (made < JOBS) {
      const i = made++;
      await daemon.api('POST', '/v1/jobs', spec(i));
    }
  }),
);
const createSecs = (Date.now() - t0) / 1000;
const listed = await daemon.api('GET', '/v1/jobs?limit=1');
console.error(`created ${JOBS} jobs in ${createSecs.toFixed(1)} s; newest is ${listed.items[0].id}`);

// The API's own time for the page the console asks for.
const apiTimes = [];
for (let i = 0; i < RUNS; i++) {
  const s = performance.now();
  await daemon.api('GET', '/v1/jobs?limit=25');
  apiTimes.push(performance.now() - s);
}

const browser = await launch();
const runs = [];
for (let i = 0; i < RUNS; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Signed in already (the token in sessionStorage), and a marker at the first
  // frame painted after the job rows are in the DOM.
  await context.addInitScript((token) => {
    sessionStorage.setItem('kiln.token', token);
    new MutationObserver((_, obs) => {
      if (document.querySelector('tbody tr[data-job]')) {
        obs.disconnect();
        const inserted = performance.now();
        requestAnimationFrame(() => setTimeout(() => (window.__listPainted = { inserted, painted: performance.now() }), 0));
      }
    }).observe(document, { childList: true, subtree: true });
  }, ADMIN);
  const page = await context.newPage();
  await page.goto(`${daemon.url}/?view=jobs`);
  await page.waitForFunction(() => window.__listPainted);
  const m = await page.evaluate(() => {
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const res = performance.getEntriesByType('resource').filter((r) => r.name.includes('/console/'));
    const nav = performance.getEntriesByType('navigation')[0];
    return {
      fcp: fcp ? fcp.startTime : null,
      list: window.__listPainted.painted,
      rows: document.querySelectorAll('tbody tr[data-job]').length,
      bytes: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0),
      files: res.length + 1,
    };
  });
  runs.push(m);
  await context.close();
}
await browser.close();
await daemon.stop();

const load = execSync('uptime').toString().trim();
const out = {
  jobs: JOBS,
  runs: RUNS,
  create_seconds: createSecs,
  page_bytes: runs[0].bytes,
  page_files: runs[0].files,
  rows: runs[0].rows,
  first_contentful_paint_ms_median: Math.round(median(runs.map((r) => r.fcp))),
  job_list_painted_ms_median: Math.round(median(runs.map((r) => r.list))),
  job_list_painted_ms_all: runs.map((r) => Math.round(r.list)),
  api_jobs_page_ms_median: Math.round(median(apiTimes) * 10) / 10,
  cores: os.cpus().length,
  uptime: load,
};
console.log(JSON.stringify(out, null, 2));
