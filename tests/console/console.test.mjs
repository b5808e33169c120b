// The web console end to end: a real daemon, driven in Chromium as a person would.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN, ROOT, startDaemon, launch, newPage, signIn, png, screenshot, waitFor } from './helpers.mjs';

let daemon, browser, page, url;
const IMAGE = 'image/resize,w_4/format,png';

before(async () => {
  // Uploads not compiled yet answer at once (202, `compiling`): the Plugins page shows it.
  daemon = await startDaemon({ config: 'plugin_upload_wait = "0s"\n' });
  url = daemon.url;
  for (const b of ['photos', 'thumbs', 'broken', 'broken2', 'slow', 'empty']) daemon.bucket(b);
  daemon.put('photos', 'trip-1/a.png', png(8, 8, [200, 40, 40]));
  daemon.put('photos', 'trip-1/b.png', png(8, 8, [40, 200, 40]));
  daemon.put('photos', 'trip-2/c.png', png(8, 8, [40, 40, 200]));
  daemon.put('photos', 'trip-2/notes.txt', 'not selected: the filter keeps .png');
  daemon.put('broken', 'good.png', png());
  daemon.put('broken', 'bad.png', 'this is not an image');
  daemon.put('broken2', 'bad.png', 'this is not an image either');
  for (let i = 0; i < 12; i++) daemon.put('slow', `s/${String(i).padStart(2, '0')}.png`, png());
  browser = await launch();
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
  await daemon?.stop();
});

/** Nothing that must never happen did: no dialog (an XSS alert), no page error, no CSP violation. */
function clean(p = page) {
  assert.deepEqual(p.dialogs, [], 'no dialog may open');
  assert.deepEqual(p.problems, [], 'no page error or CSP violation');
}

const field = (p, label) => p.locator('.field', { has: p.getByLabel(label, { exact: true }) });
const badge = (p = page) => p.locator('.state-slot .badge');
const tasksRegion = (p, id) => p.getByRole('region', { name: `Tasks of job ${id}` });

test('a wrong token stays on the sign-in form with the server message', async () => {
  await page.goto(url + '/');
  await page.getByLabel('Token').fill('kiln_not-a-real-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'unknown or revoked token' }).waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
  assert.ok(!page.url().includes('kiln_'), 'no token in the URL');
  clean();
});

test('sign in with the keyboard; the token lives in sessionStorage only', async () => {
  await page.goto(url + '/');
  // The Token field has the focus: type and press Enter.
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Enter');
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await page.getByRole('heading', { name: 'Jobs' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kiln.token')), ADMIN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.url().includes(ADMIN));
  await page.getByText('No jobs yet.').waitFor();
  // The admin also sees tenants and roles.
  for (const name of ['Jobs', 'Styles', 'Plugins', 'Tenants', 'Roles']) await page.getByRole('link', { name, exact: true }).waitFor();
  clean();
});

let firstJob;

test('create a job through the form: live style check, field errors, preview, then Succeeded live', async () => {
  await page.getByRole('button', { name: 'Create batch job' }).click();
  await page.getByRole('heading', { name: 'Create batch job' }).waitFor();
  await page.getByLabel('Input bucket').fill('photos');
  await page.getByLabel('Select prefix').check();
  await page.getByLabel('Path prefix').fill('trip-');
  await page.getByLabel('Filter rule').selectOption({ label: 'File suffix' });
  await page.getByLabel('Filter values').fill('.png');
  // A style the plugin refuses: the API's message appears next to Style, live.
  await page.getByLabel('Style', { exact: true }).fill('image/resize,m_stretch');
  await field(page, 'Style').locator('.field-error').filter({ hasText: 'stretch' }).waitFor();
  assert.equal(await page.getByLabel('Style', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Style', { exact: true }).fill(IMAGE);
  await page.getByText('Style is valid.').waitFor();
  assert.equal(await field(page, 'Style').locator('.field-error').isVisible(), false);
  await page.getByLabel('Output bucket').fill('thumbs');
  // An output template the API refuses: its problem's `field` puts the error by Output path.
  await page.getByLabel('Output path').fill('{nope}/x');
  await page.getByRole('button', { name: 'Preview' }).click();
  const outErr = field(page, 'Output path').locator('.field-error');
  await outErr.waitFor();
  assert.match(await outErr.textContent(), /nope/);
  await page.getByLabel('Output path').fill('{dirname}/{barename}.{autoext}');
  // A webhook to a loopback address is refused (by default): shown by Notification URL.
  await page.getByLabel('Notification URL').fill('http://127.0.0.1:9/hook');
  await page.getByLabel('Notification secret').fill('a-secret-of-enough-length');
  await page.getByRole('button', { name: 'Preview' }).click();
  await field(page, 'Notification URL').locator('.field-error').waitFor();
  await page.getByLabel('Notification URL').fill('');
  await page.getByLabel('Notification secret').fill('');
  await page.getByLabel('Name', { exact: true }).fill('Holiday thumbs');
  await page.getByLabel('Tags').fill('batch=2024, owner=ops');
  // Preview: a dry run, before anything is created.
  await page.getByRole('button', { name: 'Preview' }).click();
  const preview = page.getByRole('region', { name: 'Preview' });
  await preview.getByText('3 objects').waitFor();
  await preview.getByRole('cell', { name: 'trip-1/a.png' }).first().waitFor();
  await preview.getByText('No collisions, grant or path problems.').waitFor();
  assert.equal(await outErr.isVisible(), false, 'the fixed field has no error left');
  assert.equal((await daemon.api('GET', '/v1/jobs')).items.length, 0, 'a preview creates nothing');
  await screenshot(page, 'create-preview');

  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: /^Job \d+/ }).waitFor();
  firstJob = Number(new URL(page.url()).searchParams.get('id'));
  await page.evaluate(() => (window.__sameDocument = true));
  await badge().filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'progress came live, without reloading');
  await page.locator('.big-progress .progress-text').filter({ hasText: '3/3' }).waitFor();
  assert.equal(await page.locator('dd[data-counter="succeeded"]').textContent(), '3');
  assert.equal(await page.locator('dd[data-counter="failed"]').textContent(), '0');
  await page.locator('.tag-k', { hasText: 'batch' }).waitFor();
  const job = await daemon.api('GET', `/v1/jobs/${firstJob}`);
  assert.equal(job.state, 'succeeded');
  assert.equal(job.spec.name, 'Holiday thumbs');
  assert.deepEqual(job.spec.tags, { batch: '2024', owner: 'ops' });
  assert.deepEqual(job.spec.input.suffixes, ['.png']);
  const out = daemon.read('thumbs', 'trip-1/a.png');
  assert.ok(out && out.subarray(1, 4).toString() === 'PNG', 'the output is a PNG in the output bucket');
  clean();
});

test("tasks on the details page: search by source path, a task's details, downloads", async () => {
  const tasks = tasksRegion(page, firstJob);
  await tasks.getByLabel('Source path').fill('trip-2');
  await tasks.getByRole('button', { name: 'Search' }).click();
  await waitFor(async () => (await tasks.locator('tbody tr').count()) === 1, 10_000, 'one task containing trip-2');
  await tasks.getByRole('cell', { name: 'trip-2/c.png' }).waitFor();
  await tasks.getByLabel('Match').selectOption({ label: 'Starts with' });
  await tasks.getByLabel('Source path').fill('trip-1/');
  await tasks.getByRole('button', { name: 'Search' }).click();
  await tasks.getByRole('cell', { name: 'trip-1/b.png' }).waitFor();
  await waitFor(async () => (await tasks.locator('tbody tr').count()) === 2, 10_000, 'two tasks under trip-1/');
  const u = new URL(page.url());
  assert.equal(u.searchParams.get('q'), 'trip-1/');
  assert.equal(u.searchParams.get('qmode'), 'prefix');

  await tasks.getByRole('button', { name: 'View details of task 1' }).click();
  const details = tasks.locator('.task-details');
  await details.getByText('Outputs').waitFor();
  await details.getByText('Attempts').waitFor();
  const [dl] = await Promise.all([page.waitForEvent('download'), details.getByRole('button', { name: 'Download trip-1/a.png' }).click()]);
  assert.equal(dl.suggestedFilename(), 'a.png');
  const bytes = fs.readFileSync(await dl.path());
  assert.equal(bytes.subarray(1, 4).toString(), 'PNG');

  const [report] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download report (CSV)' }).click()]);
  const csv = fs.readFileSync(await report.path(), 'utf8').trim().split('\n');
  assert.equal(csv.length, 4, 'a header and one row per task');
  assert.ok(csv.slice(1).every((l) => l.includes('succeeded')));
  const [jsonl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download report (JSONL)' }).click()]);
  assert.equal(fs.readFileSync(await jsonl.path(), 'utf8').trim().split('\n').length, 3);
  await screenshot(page, 'job-details');
  clean();
});

test("a failed task's error, then Retry failed reaches Succeeded live", async () => {
  const { id } = await daemon.api('POST', '/v1/jobs', { input: { bucket: 'broken' }, style: IMAGE, output: { bucket: 'thumbs', template: 'broken/{barename}.{autoext}' } });
  await daemon.waitJob(id, ['failed']);
  // A bookmarked URL: the job's failed tasks.
  await page.goto(`${url}/?view=job&id=${id}&tstate=failed`);
  const tasks = tasksRegion(page, id);
  await tasks.getByRole('cell', { name: 'bad.png' }).waitFor();
  assert.equal(await tasks.getByLabel('Task state').inputValue(), 'failed');
  assert.equal(await tasks.getByRole('cell', { name: 'good.png' }).count(), 0);
  await tasks.getByRole('button', { name: /View details of task/ }).click();
  const details = tasks.locator('.task-details');
  await details.getByText('unsupported-input').waitFor();
  const message = await details.locator('pre.message').textContent();
  assert.ok(message.length > 5, `an error message: ${message}`);
  await screenshot(page, 'failed-task');
  assert.equal(await page.locator('dd[data-counter="failed"]').textContent(), '1');

  daemon.put('broken', 'bad.png', png(6, 6)); // fixed at the source
  await page.evaluate(() => (window.__sameDocument = true));
  await page.getByRole('button', { name: 'Retry failed' }).click();
  await badge().filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  await page.locator('dd[data-counter="failed"]').filter({ hasText: /^0$/ }).waitFor();
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
  const job = await daemon.api('GET', `/v1/jobs/${id}`);
  assert.equal(job.state, 'succeeded');
  assert.equal(job.counters.succeeded, 2);
  clean();
});

test('the job list: state filter and ID search in the URL, pages, tasks expanded in place', async () => {
  const { id: failedId } = await daemon.api('POST', '/v1/jobs', { input: { bucket: 'broken2' }, style: IMAGE, output: { bucket: 'thumbs', template: 'b2/{barename}.{autoext}' } });
  await daemon.waitJob(failedId, ['failed']);
  // 30 small jobs, so that the list has more than one page (25 a page).
  for (let i = 0; i < 30; i++) await daemon.api('POST', '/v1/jobs', { name: `empty ${i}`, input: { bucket: 'empty' }, style: 'checksum', output: { bucket: 'thumbs', template: 'sums/{key}.{autoext}' } });

  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  await page.getByLabel('State', { exact: true }).selectOption({ label: 'Failed' });
  await page.locator(`tr[data-job="${failedId}"]`).waitFor();
  assert.equal(new URL(page.url()).searchParams.get('state'), 'failed');
  const states = await page.locator('tbody tr .badge').allTextContents();
  assert.ok(states.length >= 1 && states.every((s) => s === 'failed'), `only failed jobs: ${states}`);
  await page.reload(); // bookmarkable: the filter survives a reload
  await page.locator(`tr[data-job="${failedId}"]`).waitFor();
  assert.equal(await page.getByLabel('State', { exact: true }).inputValue(), 'failed');

  await page.getByLabel('Batch processing ID').fill(String(firstJob));
  await page.getByRole('button', { name: 'Find' }).click();
  await page.locator(`tr[data-job="${firstJob}"]`).waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1);
  assert.equal(new URL(page.url()).searchParams.get('id'), String(firstJob));
  await page.getByRole('cell', { name: 'Holiday thumbs' }).waitFor();

  // Expand its tasks from the list, search by source path there.
  await page.getByRole('button', { name: `Tasks of job ${firstJob}` }).click();
  const tasks = tasksRegion(page, firstJob);
  await tasks.getByRole('cell', { name: 'trip-2/c.png' }).waitFor();
  await tasks.getByLabel('Source path').fill('b.png');
  await tasks.getByRole('button', { name: 'Search' }).click();
  await waitFor(async () => (await tasks.locator('tbody tr').count()) === 1, 10_000, 'one task containing b.png');
  await tasks.getByRole('cell', { name: 'trip-1/b.png' }).waitFor();
  await page.getByLabel('Batch processing ID').fill('999999');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByText('No job with ID 999999.').waitFor();

  // Pages: newest first, 25 a page; Next and Previous keep the URL.
  await page.getByRole('link', { name: 'Show all' }).click();
  await page.locator('tbody tr').nth(24).waitFor();
  const first = await page.locator('tbody tr td:first-child').allTextContents();
  assert.equal(first.length, 25);
  const ids = first.map(Number);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
  await page.getByRole('button', { name: 'Next page' }).click();
  await waitFor(async () => new URL(page.url()).searchParams.get('cursor'), 10_000, 'a cursor in the URL');
  await page.locator(`tr[data-job="${firstJob}"]`).waitFor();
  const second = (await page.locator('tbody tr td:first-child').allTextContents()).map(Number);
  assert.ok(Math.max(...second) < Math.min(...ids), 'the next page is older');
  const total = (await daemon.api('GET', '/v1/jobs?limit=1000')).items.length;
  assert.equal(ids.length + second.length, total, 'two pages hold every job');
  assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
  await page.getByRole('button', { name: 'Previous page' }).click();
  await page.locator(`tr[data-job="${ids[0]}"]`).waitFor();
  assert.deepEqual((await page.locator('tbody tr td:first-child').allTextContents()).map(Number), ids);
  await page.goBack(); // browser history follows the pages too
  await page.locator(`tr[data-job="${firstJob}"]`).waitFor();
  clean();
});

test('suspend and resume a running job', async () => {
  const { id } = await daemon.api('POST', '/v1/jobs', {
    name: 'paced',
    input: { bucket: 'slow', prefix: 's/' },
    style: IMAGE,
    output: { bucket: 'thumbs', template: 'slow/{barename}.{autoext}' },
    concurrency: 1,
    max_tasks_per_second: 2,
  });
  await page.goto(`${url}/?view=job&id=${id}`);
  await badge().filter({ hasText: 'running' }).waitFor();
  await page.getByText('Live', { exact: true }).waitFor();
  await page.evaluate(() => (window.__sameDocument = true));
  await page.getByRole('button', { name: 'Suspend' }).click();
  await badge().filter({ hasText: 'suspended' }).waitFor();
  assert.equal((await daemon.api('GET', `/v1/jobs/${id}`)).state, 'suspended');
  await page.waitForTimeout(300); // a task in flight may finish
  const held = (await daemon.api('GET', `/v1/jobs/${id}`)).counters.succeeded;
  await page.waitForTimeout(2000);
  assert.equal((await daemon.api('GET', `/v1/jobs/${id}`)).counters.succeeded, held, 'nothing runs while suspended');
  assert.ok(held < 12, 'suspended before the end');
  assert.equal(await page.getByRole('button', { name: 'Suspend' }).isDisabled(), true);
  await page.getByRole('button', { name: 'Resume' }).click();
  await badge().filter({ hasText: /running|succeeded/ }).waitFor();
  await badge().filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  await page.locator('.big-progress .progress-text').filter({ hasText: '12/12' }).waitFor();
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
  assert.equal((await daemon.api('GET', `/v1/jobs/${id}`)).counters.succeeded, 12);
  clean();
});

test('cancel a running job, then delete it', async () => {
  const { id } = await daemon.api('POST', '/v1/jobs', {
    name: 'to cancel',
    input: { bucket: 'slow', prefix: 's/' },
    style: IMAGE,
    output: { bucket: 'thumbs', template: 'cancelled/{barename}.{autoext}' },
    concurrency: 1,
    max_tasks_per_second: 1,
  });
  await page.goto(`${url}/?view=job&id=${id}`);
  await badge().filter({ hasText: 'running' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Delete' }).isDisabled(), true, 'a running job cannot be deleted');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await badge().filter({ hasText: 'cancelled' }).waitFor();
  const job = await daemon.api('GET', `/v1/jobs/${id}`);
  assert.equal(job.state, 'cancelled');
  assert.ok(job.counters.succeeded < 12, 'cancelled before the end');
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Keep it' }).click(); // asks first
  assert.equal((await daemon.api('GET', `/v1/jobs/${id}`)).state, 'cancelled');
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Delete for good' }).click();
  await page.getByRole('heading', { name: 'Jobs' }).waitFor();
  await assert.rejects(daemon.api('GET', `/v1/jobs/${id}`), /404/);
  assert.equal(await page.locator(`tr[data-job="${id}"]`).count(), 0);
  clean();
});

test('clone a job: the create form comes filled in', async () => {
  await page.goto(`${url}/?view=job&id=${firstJob}`);
  await page.getByRole('button', { name: 'Clone' }).click();
  await page.getByRole('heading', { name: `Create batch job (clone of job ${firstJob})` }).waitFor();
  assert.equal(await page.getByLabel('Input bucket').inputValue(), 'photos');
  assert.equal(await page.getByLabel('Path prefix').inputValue(), 'trip-');
  assert.equal(await page.getByLabel('Filter rule').inputValue(), 'suffixes');
  assert.equal(await page.getByLabel('Filter values').inputValue(), '.png');
  assert.equal(await page.getByLabel('Style', { exact: true }).inputValue(), IMAGE);
  assert.equal(await page.getByLabel('Output bucket').inputValue(), 'thumbs');
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Holiday thumbs (copy)');
  assert.equal(await page.getByLabel('Tags').inputValue(), 'batch=2024, owner=ops');
  await page.getByLabel('Output path').fill('copy/{dirname}/{barename}.{autoext}');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: /^Job \d+/ }).waitFor();
  const id = Number(new URL(page.url()).searchParams.get('id'));
  assert.notEqual(id, firstJob);
  await badge().filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  const [a, b] = [await daemon.api('GET', `/v1/jobs/${firstJob}`), await daemon.api('GET', `/v1/jobs/${id}`)];
  assert.deepEqual(b.spec.input, a.spec.input);
  assert.equal(b.spec.style, a.spec.style);
  assert.ok(daemon.read('thumbs', 'copy/trip-2/c.png'));
  clean();
});

test("a job's own task limits are shown, and a clone keeps them", async () => {
  const limits = { deadline: '10m', max_output: 8 * 1024 ** 3 };
  const { id } = await daemon.api('POST', '/v1/jobs', {
    input: { bucket: 'photos', prefix: 'trip-', suffixes: ['.png'] },
    style: IMAGE,
    output: { bucket: 'thumbs', template: 'limits/{dirname}/{barename}.{autoext}' },
    limits,
  });
  await page.goto(`${url}/?view=job&id=${id}`);
  await page.getByText('deadline 10m, output ≤ 8.0 GiB').waitFor();
  await page.getByRole('button', { name: 'Clone' }).click();
  await page.getByRole('heading', { name: `Create batch job (clone of job ${id})` }).waitFor();
  await page.getByLabel('Output path').fill('limits2/{dirname}/{barename}.{autoext}');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: /^Job \d+/ }).waitFor();
  const copy = Number(new URL(page.url()).searchParams.get('id'));
  assert.notEqual(copy, id);
  assert.deepEqual((await daemon.api('GET', `/v1/jobs/${copy}`)).spec.limits, limits);
  await badge().filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  clean();
});

test('hostile names, tags, keys and errors are shown as text and never run', async () => {
  const evil = '<img src=x onerror=alert(1)>.png';
  daemon.put('photos', `xss/${evil}`, 'not an image: <script>alert(5)</script>');
  const { id } = await daemon.api('POST', '/v1/jobs', {
    name: '<img src=x onerror=alert(2)>',
    input: { bucket: 'photos', keys: [`xss/${evil}`, 'xss/<img src=y onerror=alert(4)>-missing.png'] },
    style: IMAGE,
    output: { bucket: 'thumbs', template: 'xss/{barename}.{autoext}' },
    tags: { '<b>k</b>': '<script>alert(3)</script>' },
  });
  await daemon.waitJob(id, ['failed']);
  await page.goto(`${url}/?view=jobs`);
  await page.getByRole('cell', { name: '<img src=x onerror=alert(2)>' }).waitFor();
  await page.getByRole('button', { name: `Tasks of job ${id}` }).click();
  const tasks = tasksRegion(page, id);
  await tasks.getByRole('cell', { name: `xss/${evil}` }).waitFor();
  await page.goto(`${url}/?view=job&id=${id}`);
  await page.getByText('<script>alert(3)</script>', { exact: true }).waitFor();
  await page.getByText('<b>k</b>', { exact: true }).waitFor();
  await page.getByText('<img src=x onerror=alert(2)>', { exact: true }).first().waitFor();
  const region = tasksRegion(page, id);
  for (const seq of [1, 2]) await region.getByRole('button', { name: `View details of task ${seq}` }).click();
  await region.locator('pre.message').nth(1).waitFor();
  const messages = await region.locator('pre.message').allTextContents();
  assert.ok(messages.some((m) => m.includes('<img src=y onerror=alert(4)>')), `the not-found error names the key, as text: ${messages}`);
  // The dry run shows the same keys as text too.
  await page.getByRole('button', { name: 'Clone' }).click();
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.getByRole('region', { name: 'Preview' }).getByText(/^1 object,/).waitFor();
  await page.getByRole('region', { name: 'Preview' }).getByText('Missing: 1').waitFor();
  await page.getByRole('region', { name: 'Preview' }).getByText(/onerror=alert\(4\)/).first().waitFor();
  await page.waitForTimeout(500);
  assert.equal(await page.locator('img').count(), 0, 'no <img> element made from data');
  assert.equal(await page.locator('[onerror]').count(), 0);
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('script')].filter((s) => !s.src).length), 0);
  clean(); // no alert dialog
});

test('styles: create, an invalid one refused by the field, delete', async () => {
  await page.getByRole('link', { name: 'Styles', exact: true }).click();
  await page.getByRole('heading', { name: 'Styles' }).waitFor();
  await page.getByLabel('Style name').fill('thumb');
  await page.getByLabel('Style string').fill('image/resize,w_0');
  await page.getByRole('button', { name: 'Create style' }).click();
  const err = field(page, 'Style string').locator('.field-error');
  await err.waitFor();
  assert.ok((await err.textContent()).length > 3);
  await page.getByLabel('Style string').fill('image/resize,w_32/format,webp');
  await page.getByRole('button', { name: 'Create style' }).click();
  await page.getByRole('cell', { name: 'image/resize,w_32/format,webp' }).waitFor();
  assert.equal((await daemon.api('GET', '/v1/styles/thumb')).plugin, 'image');
  await page.getByRole('button', { name: 'Delete style thumb' }).click();
  await page.getByRole('button', { name: 'Delete style thumb' }).waitFor({ state: 'detached' });
  await assert.rejects(daemon.api('GET', '/v1/styles/thumb'), /404/);
  clean();
});

test('plugins: the bundled ones are listed; an invalid upload shows the API validation error', async () => {
  await page.getByRole('link', { name: 'Plugins', exact: true }).click();
  await page.getByRole('heading', { name: 'Plugins' }).waitFor();
  for (const name of ['image', 'checksum', 'compress']) await page.getByRole('cell', { name: new RegExp(`^${name}`) }).first().waitFor();
  await page.getByLabel('Plugin file (.wasm)').setInputFiles({ name: 'junk.wasm', mimeType: 'application/wasm', buffer: Buffer.from('\0asm this is no component <b>x</b>') });
  await page.getByRole('button', { name: 'Upload' }).click();
  const alert = page.locator('form .error[role=alert]');
  await alert.locator('p').waitFor();
  const text = await alert.textContent();
  assert.ok(text.length > 10, `the API's validation error: ${text}`);
  assert.equal((await daemon.api('GET', '/v1/plugins')).filter((p) => !p.bundled).length, 0);

  // A real component, built from source by the Rust tests (contract 0.2.0): uploaded, then its styles described.
  const seek = path.join(ROOT, 'target/wasm-test-plugins/wasm32-wasip2/release/seek.wasm');
  if (fs.existsSync(seek)) {
    await page.getByLabel('Plugin file (.wasm)').setInputFiles(seek);
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByText('Styles of seek (contract 0.2.0)').click();
    await page.getByText('Output variables for templates: {part}').waitFor();
    await page.getByText('How many (int, default 16, 1..=1048576)').waitFor();
    await page.getByRole('button', { name: 'Delete plugin seek' }).click();
    await page.getByRole('button', { name: 'Delete plugin seek' }).waitFor({ state: 'detached' });
  }

  // An upload that names itself answers before its compile ends (here at
  // once: the daemon waits 0 s): the page says so and refreshes until it is ready.
  const legacy = path.join(ROOT, 'target/wasm-test-plugins/wasm32-wasip2/release/legacy.wasm');
  if (fs.existsSync(legacy)) {
    const sha = crypto.createHash('sha256').update(fs.readFileSync(legacy)).digest('hex');
    for (const f of fs.readdirSync(path.join(daemon.dir, 'cache'))) if (f.startsWith(sha)) fs.rmSync(path.join(daemon.dir, 'cache', f));
    await page.getByLabel('Plugin name').fill('old-upper');
    await page.getByLabel('Version').fill('1.0.0');
    await page.getByLabel('Plugin file (.wasm)').setInputFiles(legacy);
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByText('Plugin old-upper 1.0.0 uploaded; it is compiling, and can be used once ready.').waitFor();
    const del = page.getByRole('button', { name: 'Delete plugin old-upper' });
    await del.waitFor();
    await page.getByText('compiling…').waitFor({ state: 'detached' });
    assert.equal((await daemon.api('GET', '/v1/plugins/old-upper')).state, 'ready');
    await del.click();
    await del.waitFor({ state: 'detached' });
  }
  clean();
});

test('a tenant sees only its own; a revoked token returns to sign-in with the message', async () => {
  await daemon.api('POST', '/v1/roles', { name: 'thumbnailer', grants: [{ bucket: 'photos', prefix: '', access: 'read' }, { bucket: 'thumbs', prefix: 'acme/', access: 'write' }] });
  await daemon.api('POST', '/v1/tenants', { name: 'acme', roles: ['thumbnailer'] });
  const issued = await daemon.api('POST', '/v1/tenants/acme/tokens', { label: 'console-test' });
  // The admin's pages.
  await page.getByRole('link', { name: 'Tenants', exact: true }).click();
  await page.getByRole('cell', { name: 'acme' }).waitFor();
  await page.getByRole('link', { name: 'Roles', exact: true }).click();
  await page.getByRole('cell', { name: 'thumbnailer' }).waitFor();

  const tp = await newPage(browser);
  await signIn(tp, url, issued.token);
  await tp.getByText('Tenant acme').waitFor();
  await tp.getByText('No jobs yet.').waitFor();
  assert.equal(await tp.getByRole('link', { name: 'Tenants', exact: true }).count(), 0);
  await tp.goto(`${url}/?view=jobs&id=${firstJob}`);
  await tp.getByText(`No job with ID ${firstJob}.`).waitFor();
  await tp.goto(`${url}/?view=tenants`);
  await tp.getByText('Only the admin sees this page.').waitFor();
  // A job of its own, through the form, under its role.
  await tp.goto(`${url}/?view=create`);
  await tp.getByLabel('Input bucket').fill('photos');
  await tp.getByLabel('Path prefix').fill('trip-1/');
  await tp.getByLabel('Style', { exact: true }).fill(IMAGE);
  await tp.getByLabel('Output bucket').fill('thumbs');
  await tp.getByLabel('Output path').fill('elsewhere/{barename}.{autoext}');
  await tp.getByRole('button', { name: 'Preview' }).click();
  await field(tp, 'Output path').locator('.field-error').filter({ hasText: 'thumbnailer' }).waitFor(); // outside its grants
  await tp.getByLabel('Output path').fill('acme/{barename}.{autoext}');
  await tp.getByRole('button', { name: 'Create', exact: true }).click();
  await tp.locator('.state-slot .badge').filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  await tp.getByRole('link', { name: 'Jobs', exact: true }).click();
  await tp.locator('tbody tr[data-job]').first().waitFor();
  assert.equal(await tp.locator('tbody tr[data-job]').count(), 1, 'only its own job');

  await daemon.api('DELETE', `/v1/tenants/acme/tokens/${issued.id}`);
  await tp.getByRole('link', { name: 'Styles', exact: true }).click();
  await tp.getByRole('alert').filter({ hasText: 'unknown or revoked token' }).waitFor();
  await tp.getByLabel('Token').waitFor();
  assert.equal(await tp.evaluate(() => sessionStorage.length), 0);
  clean(tp);
  await tp.context().close();
});

test('the keyboard: links and buttons work with Enter, focus is visible', async () => {
  await page.goto(`${url}/?view=jobs&id=${firstJob}`);
  const link = page.getByRole('link', { name: String(firstJob), exact: true });
  await page.getByLabel('Batch processing ID').focus();
  await page.keyboard.press('Shift+Tab'); // back to the State filter
  assert.equal(await page.evaluate(() => document.activeElement.name), 'state');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Find');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused control shows its focus');
  await link.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: `Job ${firstJob} Holiday thumbs` }).waitFor();
  await page.getByRole('button', { name: 'Clone' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /clone of job/ }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'MAIN', 'focus moves to the new page');
  clean();
});

test('a narrow screen: no sideways scrolling of the page; screenshots', async () => {
  const narrow = await newPage(browser, { viewport: { width: 375, height: 800 } });
  await signIn(narrow, url);
  await narrow.locator('tbody tr').first().waitFor();
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await screenshot(narrow, 'narrow-jobs');
  await narrow.goto(`${url}/?view=job&id=${firstJob}`);
  await narrow.getByRole('heading', { name: /^Job / }).waitFor();
  assert.ok((await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)) <= 0);
  await screenshot(narrow, 'narrow-job');
  clean(narrow);
  await narrow.context().close();

  // The two pictures of docs/: the job list, and a job's tasks with a failed one open.
  const shot = await newPage(browser, { viewport: { width: 1200, height: 760 } });
  await signIn(shot, url);
  await shot.locator('tbody tr').nth(10).waitFor();
  await shot.screenshot({ path: path.join(ROOT, 'target/browser-tests/screenshots/console-jobs.png') });
  daemon.bucket('gallery');
  for (let i = 1; i <= 8; i++) daemon.put('gallery', `2024/rome/IMG_${String(i).padStart(4, '0')}.png`, i === 5 ? 'a truncated upload' : png(16, 12));
  const { id: failed } = await daemon.api('POST', '/v1/jobs', { name: 'Rome thumbnails', input: { bucket: 'gallery', prefix: '2024/', suffixes: '.png' }, style: IMAGE, output: { bucket: 'thumbs', template: 'gallery/{dirname}/{barename}.{autoext}' }, tags: { trip: 'rome' } });
  await daemon.waitJob(failed, ['failed']);
  await shot.goto(`${url}/?view=job&id=${failed}`);
  const region = tasksRegion(shot, failed);
  await region.getByRole('button', { name: 'View details of task 5' }).click();
  await region.locator('pre.message').waitFor();
  await region.screenshot({ path: path.join(ROOT, 'target/browser-tests/screenshots/console-tasks.png') });
  clean(shot);
  await shot.context().close();
});
