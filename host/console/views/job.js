// A job's details: spec, counters, timings, tags, webhooks, reports, actions,
// live progress over the SSE stream, and its tasks.

import { get, post, del, follow, download } from '../api.js';
import { h, fill, formatTime, formatBytes, formatDuration, secondsBetween, progress, updateProgress, stateBadge, TERMINAL } from '../dom.js';
import { go, current, remember } from '../router.js';
import { tasksPanel } from './tasks.js';

export async function renderJob(main, params, { signal, status }) {
  const id = String(params.id || '').trim();
  if (!/^\d+$/.test(id)) throw new Error('A job ID is a number.');
  let job = await get(`/v1/jobs/${id}`, null, { signal });

  const title = h('h1', {});
  const badge = h('span', { class: 'state-slot' });
  const live = h('span', { class: 'live muted', 'aria-live': 'polite' });
  const prog = progress(job.counters, `Progress of job ${id}`);
  const alert = h('p', { class: 'error', role: 'alert' });
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  const counters = h('dl', { class: 'facts counters' });
  const timings = h('dl', { class: 'facts' });
  const jobError = h('div');
  const spec = h('div');
  const tags = h('div');
  const hooks = h('div');
  const failedOnly = h('input', { type: 'checkbox', id: 'report-failed' });

  const buttons = {
    suspend: h('button', { type: 'button' }, 'Suspend'),
    resume: h('button', { type: 'button' }, 'Resume'),
    cancel: h('button', { type: 'button' }, 'Cancel'),
    retry: h('button', { type: 'button' }, 'Retry failed'),
    del: h('button', { type: 'button', class: 'danger' }, 'Delete'),
    clone: h('button', { type: 'button' }, 'Clone'),
  };
  const confirmBox = h('div', { class: 'confirm', hidden: true });
  actions.append(...Object.values(buttons));

  const act = (path, done) => async () => {
    alert.textContent = '';
    try {
      const j = await post(`/v1/jobs/${id}/${path}`);
      update(j);
      status(done);
      startFollow();
      if (path === 'retry-failed') tasks.reload();
    } catch (e) {
      alert.textContent = e.message;
    }
  };
  buttons.suspend.addEventListener('click', act('suspend', `Job ${id} suspended.`));
  buttons.resume.addEventListener('click', act('resume', `Job ${id} resumed.`));
  buttons.cancel.addEventListener('click', act('cancel', `Job ${id} cancelled.`));
  buttons.retry.addEventListener('click', act('retry-failed', `Retrying the failed tasks of job ${id}.`));
  buttons.clone.addEventListener('click', () => go({ view: 'create', clone: id }));
  buttons.del.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: 'danger' }, 'Delete for good');
    const no = h('button', { type: 'button' }, 'Keep it');
    fill(confirmBox, h('p', {}, `Delete job ${id} and all its tasks? This cannot be undone.`), yes, ' ', no);
    confirmBox.hidden = false;
    no.addEventListener('click', () => {
      confirmBox.hidden = true;
      buttons.del.focus();
    });
    yes.addEventListener('click', async () => {
      try {
        await del(`/v1/jobs/${id}`);
        status(`Job ${id} deleted.`);
        go({ view: 'jobs' });
      } catch (e) {
        alert.textContent = e.message;
        confirmBox.hidden = true;
      }
    });
    no.focus();
  });

  const reportButton = (format) =>
    h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          try {
            const got = await download(`/v1/jobs/${id}/report`, { format, scope: failedOnly.checked ? 'failed' : 'all' }, `job-${id}.${format}`);
            status(`Downloaded ${got.name} (${formatBytes(got.size)}).`);
          } catch (e) {
            alert.textContent = e.message;
          }
        },
      },
      `Download report (${format.toUpperCase()})`,
    );

  const tasks = tasksPanel(id, {
    initial: params,
    signal,
    status,
    persist: (t) => remember({ ...current(), ...t }),
  });

  fill(
    main,
    h('p', { class: 'crumbs' }, h('a', { href: '/?view=jobs', 'data-route': true }, '← Jobs')),
    h('div', { class: 'title-row' }, title, badge, live),
    h('div', { class: 'big-progress' }, prog),
    actions,
    confirmBox,
    alert,
    jobError,
    h('div', { class: 'grid2' }, h('section', { class: 'card' }, h('h2', {}, 'Counters'), counters), h('section', { class: 'card' }, h('h2', {}, 'Timings'), timings)),
    h('section', { class: 'card' }, h('h2', {}, 'Spec'), spec),
    h('section', { class: 'card' }, h('h2', {}, 'Tags'), tags),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Report'),
      h('p', {}, 'One row per task: source, outputs, state, error, attempts, bytes, duration.'),
      h('div', { class: 'actions' }, reportButton('csv'), reportButton('jsonl'), h('span', { class: 'check' }, failedOnly, h('label', { for: 'report-failed' }, 'Failed tasks only'))),
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Webhook deliveries'), hooks),
    tasks,
  );

  let first = true;
  function update(j) {
    const stateChanged = j.state !== job.state;
    job = j;
    fill(title, `Job ${j.id}`, j.spec.name ? h('span', { class: 'subtitle' }, ` ${j.spec.name}`) : null);
    fill(badge, stateBadge(j.state));
    updateProgress(prog, j.counters);
    const s = j.state;
    buttons.suspend.disabled = !(s === 'running' || s === 'ready');
    buttons.resume.disabled = !(s === 'suspended' || s === 'ready');
    buttons.cancel.disabled = TERMINAL.includes(s);
    buttons.retry.disabled = !(['failed', 'succeeded', 'running'].includes(s) && j.counters.failed > 0);
    buttons.del.disabled = !TERMINAL.includes(s);
    const c = j.counters;
    fill(
      counters,
      ...[['Total', c.total], ['Pending', c.pending], ['Running', c.running], ['Succeeded', c.succeeded], ['Failed', c.failed], ['Skipped', c.skipped]].flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-counter': k.toLowerCase() }, String(v))]),
      h('dt', {}, 'Bytes in'),
      h('dd', {}, formatBytes(c.bytes_in)),
      h('dt', {}, 'Bytes out'),
      h('dd', {}, formatBytes(c.bytes_out)),
    );
    const elapsed = secondsBetween(j.created_at, j.finished_at || j.updated_at);
    fill(
      timings,
      h('dt', {}, 'Created'),
      h('dd', {}, formatTime(j.created_at)),
      h('dt', {}, 'Updated'),
      h('dd', {}, formatTime(j.updated_at)),
      h('dt', {}, 'Finished'),
      h('dd', {}, formatTime(j.finished_at)),
      h('dt', {}, j.finished_at ? 'Took' : 'Running for'),
      h('dd', {}, formatDuration(elapsed)),
      h('dt', {}, 'Planning'),
      h('dd', {}, j.planning && j.planning.done ? 'done' : 'listing…'),
    );
    fill(jobError, j.error ? h('p', { class: 'error' }, `Job error: ${j.error}`) : null);
    if (stateChanged && !first) tasks.reload();
    if (stateChanged) {
      loadHooks();
    }
  }

  function renderSpec(sp) {
    const dl = h('dl', { class: 'facts' });
    const fact = (k, v) => v != null && v !== '' && dl.append(h('dt', {}, k), h('dd', {}, v));
    const i = sp.input;
    fact('Input bucket', i.bucket);
    if (i.keys && i.keys.length) fact('Input path', h('ul', { class: 'keys' }, i.keys.map((k) => h('li', { class: 'key' }, k))));
    else if (i.manifest) fact('Manifest', `${i.manifest.bucket || i.bucket}/${i.manifest.key}`);
    else fact('Path prefix', i.prefix || '(whole bucket)');
    if (i.file_prefixes && i.file_prefixes.length) fact('File prefix', i.file_prefixes.join(', '));
    if (i.suffixes && i.suffixes.length) fact('File suffix', i.suffixes.join(', '));
    fact('Glob', i.glob);
    fact('Style', h('code', {}, sp.style));
    fact('Output bucket', sp.output.bucket);
    fact('Output path', h('code', {}, sp.output.template));
    fact('Role', sp.role);
    fact('Concurrency', String(sp.concurrency));
    fact('Priority', String(sp.priority));
    fact('Fast fail', sp.fast_fail ? 'yes' : 'no');
    if (sp.max_tasks_per_second) fact('Max tasks per second', String(sp.max_tasks_per_second));
    if (sp.limits) {
      const l = sp.limits;
      const parts = [l.deadline && `deadline ${l.deadline}`, l.max_output && `output ≤ ${formatBytes(l.max_output)}`, l.max_memory && `memory ≤ ${formatBytes(l.max_memory)}`];
      fact('Task limits', parts.filter(Boolean).join(', '));
    }
    if (sp.notify) fact('Notification URL', sp.notify.url);
    if (sp.report) fact('Report to', `${sp.report.bucket}/${sp.report.key}`);
    if (sp.follow) fact('Follow', `every ${sp.follow_interval}`);
    fill(spec, dl, h('details', {}, h('summary', {}, 'Spec as JSON'), h('pre', { class: 'json' }, JSON.stringify(sp, null, 2))));
    const t = Object.entries(sp.tags || {});
    fill(tags, t.length ? h('ul', { class: 'tags' }, t.map(([k, v]) => h('li', {}, h('span', { class: 'tag-k' }, k), '=', h('span', { class: 'tag-v' }, v)))) : h('p', { class: 'muted' }, 'No tags.'));
  }

  // Delivered events leave the outbox: the API counts them (older daemons do not).
  function deliveredText(d) {
    if (!d) return 'not counted by this daemon';
    const last = d.last_delivered_at ? `, the last ${formatTime(d.last_delivered_at)} (${d.last_type || 'event'})` : '';
    return `${d.delivered}${last}`;
  }

  async function loadHooks() {
    if (!job.spec.notify) {
      fill(hooks, h('p', { class: 'muted' }, 'No notification URL: no webhooks.'));
      return;
    }
    try {
      const w = await get(`/v1/jobs/${id}/webhooks`, null, { signal });
      const table = (list, caption) =>
        h(
          'table',
          { class: 'data' },
          h('caption', {}, caption),
          h('thead', {}, h('tr', {}, ['#', 'Event', 'Attempts', 'Next attempt', 'Last error'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, list.map((e) => h('tr', {}, h('td', { class: 'num' }, String(e.seq)), h('td', {}, String((e.event && e.event.type) || '')), h('td', { class: 'num' }, String(e.attempts)), h('td', {}, formatTime(typeof e.next_attempt_at === 'number' ? Math.floor(e.next_attempt_at / 1000) : e.next_attempt_at)), h('td', {}, e.last_error || '—')))),
        );
      fill(
        hooks,
        h('p', {}, `Sent to ${job.spec.notify.url}. Delivered: ${deliveredText(w.delivered)}; pending: ${w.pending.length}, given up: ${w.given_up.length}.`),
        w.pending.length ? table(w.pending, 'Pending') : null,
        w.given_up.length ? table(w.given_up, 'Given up') : null,
      );
    } catch (e) {
      fill(hooks, h('p', { class: 'error' }, e.message));
    }
  }

  const loaded = job;
  job = { ...job, state: null };
  renderSpec(loaded.spec);
  update(loaded);
  first = false;

  // Live progress: the job's event stream.
  const isFinal = (ev) => {
    if (ev.event === 'deleted') return true;
    try {
      return TERMINAL.includes(JSON.parse(ev.data).state);
    } catch {
      return false;
    }
  };
  const liveText = { live: 'Live', reconnecting: 'Reconnecting…', stopped: '' };
  let following = false;
  function startFollow() {
    if (following || TERMINAL.includes(job.state) || signal.aborted) return;
    following = true;
    follow(`/v1/jobs/${id}/events`, {
      signal,
      isFinal,
      onStatus: (s) => (live.textContent = liveText[s] ?? ''),
      onEvent: (ev) => {
        if (ev.event === 'deleted') {
          live.textContent = '';
          alert.textContent = `Job ${id} was deleted.`;
          return true;
        }
        if (ev.event === 'shutdown') return false;
        try {
          const j = JSON.parse(ev.data);
          if (j && j.id === job.id) update(j);
          if (TERMINAL.includes(j.state)) {
            live.textContent = '';
            status(`Job ${id} ${j.state}.`);
            return true;
          }
        } catch {
          /* not a job */
        }
        return false;
      },
    }).finally(() => {
      following = false;
      live.textContent = '';
    });
  }
  startFollow();
}
