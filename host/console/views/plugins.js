// Plugins: list, upload a `.wasm` component, delete.

import { get, api, del } from '../api.js';
import { h, fill, field, formatBytes, formatTime } from '../dom.js';

export async function renderPlugins(main, params, { signal, status, me }) {
  const file = h('input', { type: 'file', name: 'wasm', accept: '.wasm,application/wasm', required: true });
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false' });
  const version = h('input', { type: 'text', name: 'version', autocomplete: 'off' });
  const error = h('div', { class: 'error', role: 'alert' });
  const upload = h('button', { type: 'submit', class: 'primary' }, 'Upload');
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'upload-h' },
    h('h2', { id: 'upload-h' }, 'Upload a plugin'),
    field('Plugin file (.wasm)', file, 'A WebAssembly component built against kiln:plugin.'),
    h('div', { class: 'grid2' }, field('Plugin name', name, 'Optional: default, the name the plugin gives itself.'), field('Version', version, 'Optional.')),
    error,
    upload,
  );
  const tbody = h('tbody');
  fill(
    main,
    h('h1', {}, 'Plugins'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data' },
        h('caption', { class: 'visually-hidden' }, 'Installed plugins'),
        h('thead', {}, h('tr', {}, ['Name', 'Version', 'Owner', 'Reads', 'Writes', 'Size', 'Added', ''].map((t) => h('th', { scope: 'col' }, t)))),
        tbody,
      ),
    ),
    form,
  );

  // An upload compiles in the daemon: the list is polled until none is compiling.
  let polling = null;
  async function load() {
    const list = await get('/v1/plugins', null, { signal });
    clearTimeout(polling);
    if (list.some((p) => p.state === 'compiling') && !signal.aborted) polling = setTimeout(() => load().catch(() => {}), 1000);
    fill(
      tbody,
      list.map((p) =>
        h(
          'tr',
          {},
          h('td', {}, h('strong', {}, p.name), state(p), h('div', { class: 'muted small' }, p.info.description), describe(p.info)),
          h('td', {}, p.version),
          h('td', {}, p.bundled ? 'bundled' : p.owner || 'admin', p.public && !p.bundled ? ' (public)' : ''),
          h('td', {}, p.info.reads.join(', ')),
          h('td', {}, p.info.writes.join(', ')),
          h('td', { class: 'num' }, formatBytes(p.size)),
          h('td', {}, formatTime(p.created_at)),
          h(
            'td',
            {},
            p.bundled || (!me.admin && p.owner !== (me.tenant && me.tenant.name))
              ? null
              : h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete plugin ${p.name}`, onclick: () => remove(p) }, 'Delete'),
          ),
        ),
      ),
    );
  }

  // Jobs cannot use a plugin until it is ready: say so beside its name.
  function state(p) {
    if (p.state === 'compiling') return h('span', { class: 'badge state-running', role: 'status' }, 'compiling…');
    if (p.state === 'failed') return h('div', { class: 'error small' }, `Failed to compile: ${p.error || ''}`);
    return null;
  }

  // Contract 0.2.0 plugins describe their actions and output variables: shown as text, folded.
  function describe(info) {
    const actions = info.actions || [];
    const variables = info.variables || [];
    if (!actions.length && !variables.length) return null;
    const param = (q) => {
      const detail = [q.kind, q.default != null ? `default ${q.default}` : null, q.range, q.choices && q.choices.length ? `one of ${q.choices.join(', ')}` : null].filter(Boolean);
      return h('li', {}, h('code', {}, `${q.name}_`), ` ${q.description || ''} (${detail.join(', ')})`);
    };
    return h(
      'details',
      { class: 'small' },
      h('summary', {}, `Styles of ${info.name} (contract ${info.contract || '0.1.0'})`),
      variables.length ? h('p', {}, 'Output variables for templates: ', variables.map((v) => `{${v}}`).join(', ')) : null,
      h('ul', {}, actions.map((a) => h('li', {}, h('code', {}, a.name), ` ${a.description || ''}`, a.params && a.params.length ? h('ul', {}, a.params.map(param)) : null))),
    );
  }

  async function remove(p) {
    try {
      await del(`/v1/plugins/${encodeURIComponent(p.name)}`, { query: me.admin && p.owner ? { owner: p.owner } : undefined });
      status(`Plugin ${p.name} deleted.`);
      await load();
    } catch (e) {
      error.textContent = e.message;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.replaceChildren();
    if (!file.files.length) {
      error.textContent = 'Choose a .wasm file.';
      file.focus();
      return;
    }
    upload.disabled = true;
    status('Uploading and checking the plugin…');
    try {
      const query = {};
      if (name.value.trim()) query.name = name.value.trim();
      if (version.value.trim()) query.version = version.value.trim();
      const p = await api('POST', '/v1/plugins', { query, body: file.files[0] });
      status(p.state === 'compiling' ? `Plugin ${p.name} ${p.version} uploaded; it is compiling, and can be used once ready.` : `Plugin ${p.name} ${p.version} uploaded.`);
      form.reset();
      await load();
    } catch (err) {
      status('');
      fill(error, h('p', {}, err.message));
    } finally {
      upload.disabled = false;
    }
  });
  await load();
}
