// The job list: newest first, paginated, with a state filter and a search by ID.
// Filters and the page cursor live in the URL.

import { get, ApiError } from '../api.js';
import { h, fill, field, select, formatTime, progress, updateProgress, stateBadge, TERMINAL, uid } from '../dom.js';
import { go, href, readTrail, writeTrail } from '../router.js';
import { tasksPanel } from './tasks.js';

export const JOB_STATES = [['', 'All'], ['ready', 'Ready'], ['running', 'Running'], ['suspended', 'Suspended'], ['succeeded', 'Succeeded'], ['failed', 'Failed'], ['cancelled', 'Cancelled']];
const PAGE = 25;

export async function renderJobs(main, params, { signal, status }) {
  const trail = readTrail(params.trail);
  const stateSel = select(JOB_STATES, params.state || '', { name: 'state' });
  const idInput = h('input', { type: 'search', name: 'id', inputmode: 'numeric', value: params.id || '', autocomplete: 'off' });
  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('State', stateSel),
    field('Batch processing ID', idInput),
    h('div', { class: 'field actions-inline' }, h('button', { type: 'submit' }, 'Find'), params.id || params.state ? h('a', { href: '/?view=jobs', 'data-route': true }, 'Show all') : null),
  );
  stateSel.addEventListener('change', () => go({ view: 'jobs', state: stateSel.value }));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = idInput.value.trim();
    go(id ? { view: 'jobs', id } : { view: 'jobs', state: stateSel.value });
  });

  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data jobs' },
    h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
    h('thead', {}, h('tr', {}, ['ID', 'Name', 'State', 'Progress', 'Failed', 'Created', 'Tasks'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody,
  );
  const prev = h('button', { type: 'button', disabled: trail.length === 0 }, 'Previous page');
  const next = h('button', { type: 'button', disabled: true }, 'Next page');
  const info = h('p', { class: 'muted' });
  fill(
    main,
    h('div', { class: 'row-between' }, h('h1', {}, 'Jobs'), h('button', { type: 'button', class: 'primary', onclick: () => go({ view: 'create' }) }, 'Create batch job')),
    filters,
    h('div', { class: 'table-wrap' }, table),
    info,
    params.id ? null : h('nav', { class: 'pager', 'aria-label': 'Pages of jobs' }, prev, next),
  );

  let jobs;
  let nextCursor = null;
  if (params.id) {
    if (!/^\d+$/.test(params.id.trim())) {
      info.textContent = 'A batch processing ID is a number.';
      jobs = [];
    } else {
      try {
        jobs = [await get(`/v1/jobs/${params.id.trim()}`, null, { signal })];
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) throw e;
        jobs = [];
        info.textContent = `No job with ID ${params.id.trim()}.`;
      }
    }
  } else {
    const page = await get('/v1/jobs', { state: params.state, cursor: params.cursor, limit: PAGE }, { signal });
    jobs = page.items;
    nextCursor = page.next || null;
    next.disabled = !nextCursor;
    info.textContent = jobs.length ? `Jobs ${trail.length * PAGE + 1}–${trail.length * PAGE + jobs.length}${nextCursor ? '' : ' (last page)'}.` : '';
  }
  const rows = new Map();
  fill(tbody, jobs.length ? jobs.map((j) => jobRow(j, rows, signal, status)) : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, params.id ? 'No job found.' : 'No jobs yet.')));
  next.addEventListener('click', () => go({ view: 'jobs', state: params.state, cursor: nextCursor, trail: writeTrail([...trail, params.cursor || '']) }));
  prev.addEventListener('click', () => {
    const t = trail.slice();
    const cursor = t.pop();
    go({ view: 'jobs', state: params.state, cursor, trail: writeTrail(t) });
  });

  // Live: while jobs on this page run, refresh their rows in place.
  const poll = async () => {
    if (signal.aborted) return;
    const live = [...rows.values()].filter((r) => !TERMINAL.includes(r.job.state) && r.job.state !== 'suspended');
    if (live.length) {
      try {
        if (params.id) {
          const j = await get(`/v1/jobs/${params.id.trim()}`, null, { signal });
          rows.get(j.id)?.update(j);
        } else {
          const page = await get('/v1/jobs', { state: params.state, cursor: params.cursor, limit: PAGE }, { signal });
          for (const j of page.items) rows.get(j.id)?.update(j);
        }
      } catch {
        /* the next round tries again */
      }
    }
    if (!signal.aborted) setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}

function jobRow(job, rows, signal, status) {
  const stateCell = h('td', {}, stateBadge(job.state));
  const prog = progress(job.counters, `Progress of job ${job.id}`);
  const failedCell = h('td', { class: 'num' }, String(job.counters.failed));
  const panelId = uid('jobtasks');
  const toggle = h('button', { type: 'button', class: 'small', 'aria-expanded': 'false', 'aria-controls': panelId, 'aria-label': `Tasks of job ${job.id}` }, 'Tasks');
  const tr = h(
    'tr',
    { 'data-job': job.id },
    h('td', { class: 'num' }, h('a', { href: href({ view: 'job', id: job.id }), 'data-route': true }, String(job.id))),
    h('td', {}, job.spec.name || h('span', { class: 'muted' }, '—')),
    stateCell,
    h('td', {}, prog),
    failedCell,
    h('td', {}, formatTime(job.created_at)),
    h('td', {}, toggle),
  );
  let open = null;
  toggle.addEventListener('click', () => {
    if (open) {
      open.remove();
      open = null;
      toggle.setAttribute('aria-expanded', 'false');
      return;
    }
    open = h('tr', { class: 'detail-row', id: panelId }, h('td', { colspan: 7 }, tasksPanel(job.id, { signal, status })));
    tr.after(open);
    toggle.setAttribute('aria-expanded', 'true');
  });
  const entry = {
    job,
    update(j) {
      entry.job = j;
      fill(stateCell, stateBadge(j.state));
      updateProgress(prog, j.counters);
      failedCell.textContent = String(j.counters.failed);
    },
  };
  rows.set(job.id, entry);
  return tr;
}
