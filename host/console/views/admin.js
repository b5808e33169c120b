// The admin's pages: tenants (with roles and quotas) and roles (with grants).

import { get } from '../api.js';
import { h, fill, formatTime, formatBytes } from '../dom.js';

function table(caption, heads, rows) {
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'data' }, h('caption', { class: 'visually-hidden' }, caption), h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)),
  );
}

export async function renderTenants(main, params, { signal }) {
  const list = await get('/v1/tenants', null, { signal });
  const q = (t) => t.quotas || {};
  fill(
    main,
    h('h1', {}, 'Tenants'),
    list.length
      ? table(
          'Tenants',
          ['Name', 'Roles', 'Running jobs', 'Tasks in flight', 'Plugins', 'Task memory', 'Task deadline', 'Task output', 'Created'],
          list.map((t) =>
            h('tr', {}, h('td', {}, h('strong', {}, t.name)), h('td', {}, t.roles.join(', ') || '—'), h('td', { class: 'num' }, String(q(t).running_jobs)), h('td', { class: 'num' }, String(q(t).tasks_in_flight)), h('td', { class: 'num' }, `${q(t).plugins} (≤ ${formatBytes(q(t).plugin_size)})`), h('td', {}, formatBytes(q(t).task_memory)), h('td', {}, String(q(t).task_deadline ?? '—')), h('td', {}, q(t).task_output ? formatBytes(q(t).task_output) : '—'), h('td', {}, formatTime(t.created_at))),
          ),
        )
      : h('p', { class: 'muted' }, 'No tenants. Create them with `kiln tenant create` or POST /v1/tenants.'),
  );
}

export async function renderRoles(main, params, { signal }) {
  const list = await get('/v1/roles', null, { signal });
  fill(
    main,
    h('h1', {}, 'Roles'),
    list.length
      ? table(
          'Roles',
          ['Name', 'Grants', 'Created'],
          list.map((r) => h('tr', {}, h('td', {}, h('strong', {}, r.name)), h('td', {}, h('ul', { class: 'plain' }, r.grants.map((g) => h('li', {}, `${g.access} `, h('code', {}, `${g.bucket}/${g.prefix}*`))))), h('td', {}, formatTime(r.created_at)))),
        )
      : h('p', { class: 'muted' }, 'No roles. Create them with `kiln role create` or POST /v1/roles.'),
  );
}
