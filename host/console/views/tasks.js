// The tasks of a job: a paginated table with a source-path search, a state
// filter, and each task's details (outputs with downloads, attempts, error).

import { get, download } from '../api.js';
import { h, fill, field, select, formatTime, formatBytes, stateBadge, uid } from '../dom.js';

const STATES = [['', 'All'], ['pending', 'Pending'], ['running', 'Running'], ['succeeded', 'Succeeded'], ['failed', 'Failed'], ['skipped', 'Skipped']];

/**
 * A tasks panel for job `jobId`. `initial`: {tstate, q, qmode, tcursor, ttrail}.
 * `persist(state)` is told each change (the details page keeps it in the URL).
 */
export function tasksPanel(jobId, { initial = {}, persist = () => {}, signal, status = () => {} } = {}) {
  const st = {
    tstate: initial.tstate || '',
    q: initial.q || '',
    qmode: initial.qmode === 'prefix' ? 'prefix' : 'search',
    tcursor: initial.tcursor || '',
    ttrail: initial.ttrail ? initial.ttrail.split('|').map((c) => (c === '_' ? '' : decodeURIComponent(c))) : [],
  };
  const headingId = uid('tasks');
  const q = h('input', { type: 'search', name: 'q', value: st.q, placeholder: 'e.g. trip-1/ or .jpg' });
  const mode = select([['search', 'Contains'], ['prefix', 'Starts with']], st.qmode, { name: 'qmode' });
  const state = select(STATES, st.tstate, { name: 'tstate' });
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': `Search tasks of job ${jobId}` },
    field('Source path', q),
    field('Match', mode),
    field('Task state', state),
    h('div', { class: 'field actions-inline' }, h('button', { type: 'submit' }, 'Search')),
  );
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data tasks' },
    h('caption', { class: 'visually-hidden' }, `Tasks of job ${jobId}`),
    h('thead', {}, h('tr', {}, ['#', 'Source path', 'State', 'Attempts', 'Duration', 'Error', ''].map((t) => h('th', { scope: 'col' }, t)))),
    tbody,
  );
  const prev = h('button', { type: 'button' }, 'Previous page');
  const next = h('button', { type: 'button' }, 'Next page');
  const error = h('p', { class: 'error', role: 'alert' });
  const refresh = h('button', { type: 'button', class: 'link' }, 'Refresh');
  const panel = h(
    'section',
    { class: 'tasks-panel', 'aria-labelledby': headingId },
    h('div', { class: 'row-between' }, h('h2', { id: headingId }, `Tasks of job ${jobId}`), refresh),
    form,
    error,
    h('div', { class: 'table-wrap' }, table),
    summary,
    h('nav', { class: 'pager', 'aria-label': `Pages of tasks of job ${jobId}` }, prev, next),
  );

  let nextCursor = null;
  const save = () =>
    persist({
      tstate: st.tstate,
      q: st.q,
      qmode: st.q ? st.qmode : '',
      tcursor: st.tcursor,
      ttrail: st.ttrail.map((c) => (c === '' ? '_' : encodeURIComponent(c))).join('|'),
    });

  async function load() {
    error.textContent = '';
    const query = { state: st.tstate, cursor: st.tcursor, limit: 50 };
    if (st.q) query[st.qmode === 'prefix' ? 'prefix' : 'search'] = st.q;
    try {
      // A search page examines a bounded number of tasks and may come back
      // short with a `next`: go on until the page is full (or 20 requests).
      let items = [];
      let page = null;
      for (let round = 0; round < 20; round++) {
        page = await get(`/v1/jobs/${jobId}/tasks`, { ...query, limit: 50 - items.length }, { signal });
        items = items.concat(page.items);
        if (!page.next || items.length >= 50) break;
        query.cursor = page.next;
      }
      nextCursor = page.next || null;
      const none = nextCursor ? 'No match among the tasks searched so far: Next page searches further.' : 'No tasks match.';
      fill(tbody, items.length ? items.map(row) : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, none)));
      const first = st.ttrail.length * 50 + 1;
      summary.textContent = items.length ? `Tasks ${first}–${first + items.length - 1}${nextCursor ? ', more on the next page' : ''}.` : '';
      prev.disabled = st.ttrail.length === 0;
      next.disabled = !nextCursor;
    } catch (e) {
      if (!signal || !signal.aborted) error.textContent = e.message;
    }
  }

  function row(t) {
    const detailsId = uid('task');
    const toggle = h('button', { type: 'button', class: 'small', 'aria-expanded': 'false', 'aria-controls': detailsId, 'aria-label': `View details of task ${t.seq}` }, 'View details');
    const tr = h(
      'tr',
      { 'data-seq': t.seq },
      h('td', { class: 'num' }, String(t.seq)),
      h('td', { class: 'key' }, t.source_key),
      h('td', {}, stateBadge(t.state)),
      h('td', { class: 'num' }, String(t.attempts)),
      h('td', { class: 'num' }, t.duration_ms == null ? '—' : `${t.duration_ms} ms`),
      h('td', { class: 'error-kind' }, t.error ? t.error.kind : ''),
      h('td', {}, toggle),
    );
    let open = null;
    toggle.addEventListener('click', async () => {
      if (open) {
        open.remove();
        open = null;
        toggle.setAttribute('aria-expanded', 'false');
        return;
      }
      const cell = h('td', { colspan: 7 }, h('p', { class: 'muted' }, 'Loading…'));
      open = h('tr', { class: 'detail-row', id: detailsId }, cell);
      tr.after(open);
      toggle.setAttribute('aria-expanded', 'true');
      try {
        fill(cell, taskDetails(jobId, await get(`/v1/jobs/${jobId}/tasks/${t.seq}`), status));
      } catch (e) {
        fill(cell, h('p', { class: 'error', role: 'alert' }, e.message));
      }
    });
    return [tr];
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    st.q = q.value;
    st.qmode = mode.value;
    st.tstate = state.value;
    st.tcursor = '';
    st.ttrail = [];
    save();
    load();
  });
  state.addEventListener('change', () => form.requestSubmit());
  next.addEventListener('click', () => {
    if (!nextCursor) return;
    st.ttrail.push(st.tcursor);
    st.tcursor = nextCursor;
    save();
    load();
  });
  prev.addEventListener('click', () => {
    if (!st.ttrail.length) return;
    st.tcursor = st.ttrail.pop();
    save();
    load();
  });
  refresh.addEventListener('click', () => load());
  panel.reload = load;
  load();
  return panel;
}

/** One task's details: source, outputs with downloads, attempts, timing, bytes, error. */
export function taskDetails(jobId, t, status = () => {}) {
  const dl = h('dl', { class: 'facts' });
  const fact = (k, ...v) => dl.append(h('dt', {}, k), h('dd', {}, ...v));
  fact('Source', h('span', { class: 'key' }, t.source_key));
  fact('State', stateBadge(t.state));
  const outputs = t.outputs || [];
  fact(
    'Outputs',
    outputs.length
      ? h(
          'ul',
          { class: 'outputs' },
          outputs.map((key, n) =>
            h(
              'li',
              {},
              h('span', { class: 'key' }, key),
              ' ',
              h(
                'button',
                {
                  type: 'button',
                  class: 'small',
                  'aria-label': `Download ${key}`,
                  onclick: async () => {
                    try {
                      const got = await download(`/v1/jobs/${jobId}/tasks/${t.seq}/outputs/${n}`, {}, key);
                      status(`Downloaded ${got.name} (${formatBytes(got.size)}).`);
                    } catch (e) {
                      status(`Download failed: ${e.message}`);
                    }
                  },
                },
                'Download',
              ),
            ),
          ),
        )
      : h('span', { class: 'muted' }, 'none'),
  );
  fact('Attempts', String(t.attempts));
  fact('Duration', t.duration_ms == null ? '—' : `${t.duration_ms} ms`);
  fact('Bytes', `${formatBytes(t.bytes_in)} in, ${formatBytes(t.bytes_out)} out`);
  fact('Size', formatBytes(t.size));
  fact('Finished', formatTime(t.finished_at));
  if (t.error) {
    fact('Error kind', h('code', {}, t.error.kind));
    fact('Error message', h('pre', { class: 'message' }, t.error.message));
  }
  return h('div', { class: 'task-details' }, h('h3', {}, `Task ${t.seq}`), dl);
}
