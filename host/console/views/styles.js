// Saved styles: list, create, delete.

import { get, post, del } from '../api.js';
import { h, fill, field, setFieldError, formatTime } from '../dom.js';

export async function renderStyles(main, params, { signal, status, me }) {
  const name = field('Style name', h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false', placeholder: 'thumb' }), 'Lowercase letters, digits, - _ .');
  const style = field('Style string', h('input', { type: 'text', name: 'style', autocomplete: 'off', spellcheck: 'false', placeholder: 'image/resize,w_256/format,webp' }), 'PLUGIN/params.');
  const error = h('div', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-style-h' }, h('h2', { id: 'new-style-h' }, 'New style'), h('div', { class: 'grid2' }, name, style), error, h('button', { type: 'submit', class: 'primary' }, 'Create style'));
  const tbody = h('tbody');
  fill(
    main,
    h('h1', {}, 'Styles'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data' },
        h('caption', { class: 'visually-hidden' }, 'Saved styles'),
        h('thead', {}, h('tr', {}, ['Name', 'Style', 'Owner', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
        tbody,
      ),
    ),
    form,
  );

  async function load() {
    const list = await get('/v1/styles', null, { signal });
    fill(
      tbody,
      list.length
        ? list.map((s) => {
            const mine = me.admin ? !s.owner : s.owner === (me.tenant && me.tenant.name);
            return h(
              'tr',
              {},
              h('td', {}, h('strong', {}, s.name)),
              h('td', {}, h('code', {}, s.params ? `${s.plugin}/${s.params}` : s.plugin)),
              h('td', {}, s.owner || 'admin (shared)'),
              h('td', {}, formatTime(s.created_at)),
              h('td', {}, mine ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete style ${s.name}`, onclick: () => remove(s) }, 'Delete') : null),
            );
          })
        : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No saved styles yet.')),
    );
  }

  async function remove(s) {
    try {
      await del(`/v1/styles/${encodeURIComponent(s.name)}`);
      status(`Style ${s.name} deleted.`);
      await load();
    } catch (e) {
      error.textContent = e.message;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setFieldError(name, null);
    setFieldError(style, null);
    error.replaceChildren();
    try {
      const s = await post('/v1/styles', { name: name.control.value.trim(), style: style.control.value.trim() });
      status(`Style ${s.name} created.`);
      form.reset();
      await load();
    } catch (err) {
      const target = err.field === 'name' ? name : err.field === 'style' ? style : null;
      if (target) {
        setFieldError(target, err.message);
        target.control.focus();
      } else error.textContent = err.message;
    }
  });
  await load();
}
