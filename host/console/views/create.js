// The create form: a batch job from a bucket selection, a style and an output
// template. Preview is a dry run; field errors from the API appear next to
// their field; the style is checked live through the API.

import { get, post, ApiError } from '../api.js';
import { h, fill, field, setFieldError, select, formatBytes, uid } from '../dom.js';
import { go } from '../router.js';

const DEFAULT_TEMPLATE = '{dirname}/{barename}.{autoext}';

export async function renderCreate(main, params, { signal, status, me }) {
  const [buckets, styles, plugins, roles, source] = await Promise.all([
    get('/v1/buckets', null, { signal }).catch(() => []),
    get('/v1/styles', null, { signal }).catch(() => []),
    get('/v1/plugins', null, { signal }).catch(() => []),
    me.admin ? get('/v1/roles', null, { signal }).catch(() => []) : Promise.resolve((me.tenant ? me.tenant.roles : []).map((name) => ({ name }))),
    params.clone ? get(`/v1/jobs/${params.clone}`, null, { signal }) : Promise.resolve(null),
  ]);

  const list = (id, values) => h('datalist', { id }, values.map((v) => h('option', { value: v })));
  const bucketsId = uid('buckets'), stylesId = uid('styles'), rolesId = uid('roles');
  const text = (name, props = {}) => h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', ...props });

  // Selection.
  const inBucket = field('Input bucket', text('input.bucket', { list: bucketsId, required: true }));
  const modeFile = h('input', { type: 'radio', name: 'mode', value: 'file', id: uid('mode') });
  const modePrefix = h('input', { type: 'radio', name: 'mode', value: 'prefix', id: uid('mode'), checked: true });
  const modeErr = h('p', { class: 'field-error', hidden: true });
  const mode = h(
    'fieldset',
    { class: 'field radios' },
    h('legend', {}, 'Mode'),
    h('span', { class: 'check' }, modeFile, h('label', { for: modeFile.id }, 'Select file')),
    h('span', { class: 'check' }, modePrefix, h('label', { for: modePrefix.id }, 'Select prefix')),
    modeErr,
  );
  const keys = field('Input path', h('textarea', { name: 'input.keys', rows: 3, spellcheck: 'false' }), 'One object key per line.');
  const prefix = field('Path prefix', text('input.prefix', { placeholder: 'e.g. trips/2024/' }), 'Keys starting with this; empty for the whole bucket.');
  const rule = field('Filter rule', select([['all', 'All'], ['file_prefixes', 'File prefix'], ['suffixes', 'File suffix']], 'all', { name: 'rule' }));
  const values = field('Filter values', text('input.filter', { placeholder: '.jpg,.png' }), 'Comma-separated, e.g. .jpg,.png or IMG_,DSC.');
  const prefixGroup = h('div', { class: 'group' }, prefix, rule, values);

  // Style, output, role, notification.
  const styleNames = [...styles.map((s) => s.name), ...plugins.map((p) => p.name)];
  const style = field('Style', text('style', { list: stylesId, required: true, placeholder: 'image/resize,w_256/format,webp' }), 'A saved style, a plugin, or PLUGIN/params.');
  const styleCheck = h('p', { class: 'hint style-check', 'aria-live': 'polite' });
  style.append(styleCheck);
  const outBucket = field('Output bucket', text('output.bucket', { list: bucketsId, required: true }));
  const outPath = field('Output path', text('output.template', { value: DEFAULT_TEMPLATE }), 'A template: {dirname}, {barename}, {basename}, {ext}, {autoext}, {jobid}, {index}…');
  const role = field('Role', text('role', { list: rolesId }), me.admin ? 'Optional for the admin: the grants that bound the job.' : 'The role the job runs under.');
  const notifyUrl = field('Notification URL', h('input', { type: 'url', name: 'notify.url', autocomplete: 'off' }), 'Webhook for state changes (CloudEvents POSTs).');
  const notifySecret = field('Notification secret', h('input', { type: 'password', name: 'notify.secret', autocomplete: 'new-password' }), 'Signs each request; at least 16 characters. Never shown again.');

  // Options.
  const name = field('Name', text('name'));
  const concurrency = field('Concurrency', h('input', { type: 'number', name: 'concurrency', min: 1, max: 10000, value: '8' }));
  const priority = field('Priority', h('input', { type: 'number', name: 'priority', value: '0' }), 'Higher runs first among your jobs.');
  const rate = field('Max tasks per second', h('input', { type: 'number', name: 'max_tasks_per_second', min: 1 }), 'Optional pacing.');
  const tagsF = field('Tags', text('tags', { placeholder: 'batch=2024, owner=ops' }), 'Comma-separated NAME=VALUE pairs.');
  const fastFail = h('input', { type: 'checkbox', name: 'fast_fail', id: uid('ff') });
  const startNow = h('input', { type: 'checkbox', name: 'start', id: uid('start'), checked: true });

  const fields = {
    'input.bucket': inBucket, 'input.keys': keys, 'input.prefix': prefix, 'input.suffixes': values, 'input.file_prefixes': values,
    style, 'output.bucket': outBucket, 'output.template': outPath, role, 'notify.url': notifyUrl, 'notify.secret': notifySecret,
    name, concurrency, priority, max_tasks_per_second: rate, tags: tagsF,
  };

  const formError = h('div', { class: 'error', role: 'alert' });
  const preview = h('section', { class: 'preview', 'aria-live': 'polite', 'aria-label': 'Preview' });
  const previewBtn = h('button', { type: 'button' }, 'Preview');
  const createBtn = h('button', { type: 'submit', class: 'primary' }, 'Create');
  const form = h(
    'form',
    { class: 'create card', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'Input'), inBucket, mode, keys, prefixGroup),
    h('fieldset', {}, h('legend', {}, 'Processing'), style),
    h('fieldset', {}, h('legend', {}, 'Output'), outBucket, outPath, role, notifyUrl, notifySecret),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Options'),
      name,
      h('div', { class: 'grid3' }, concurrency, priority, rate),
      tagsF,
      h('div', { class: 'field' }, h('span', { class: 'check' }, fastFail, h('label', { for: fastFail.id }, 'Fast fail (stop at the first failed task)'))),
      h('div', { class: 'field' }, h('span', { class: 'check' }, startNow, h('label', { for: startNow.id }, 'Start at once'))),
    ),
    formError,
    h('div', { class: 'actions' }, previewBtn, createBtn, h('a', { href: '/?view=jobs', 'data-route': true }, 'Back to jobs')),
    preview,
  );
  fill(
    main,
    h('p', { class: 'crumbs' }, h('a', { href: '/?view=jobs', 'data-route': true }, '← Jobs')),
    h('h1', {}, source ? `Create batch job (clone of job ${source.id})` : 'Create batch job'),
    list(bucketsId, buckets.map((b) => b.name)),
    list(stylesId, styleNames),
    list(rolesId, roles.map((r) => r.name)),
    form,
  );

  function showMode() {
    const file = modeFile.checked;
    keys.hidden = !file;
    prefixGroup.hidden = file;
    values.control.disabled = rule.control.value === 'all';
  }
  modeFile.addEventListener('change', showMode);
  modePrefix.addEventListener('change', showMode);
  rule.control.addEventListener('change', showMode);

  // What the form does not show is kept from a cloned job: glob, sizes, times, manifest, report, follow.
  let extra = {};
  const extraTop = {};
  if (source) fillFrom(source.spec);
  showMode();

  function fillFrom(sp) {
    const i = sp.input;
    inBucket.control.value = i.bucket;
    if (i.keys && i.keys.length) {
      modeFile.checked = true;
      keys.control.value = i.keys.join('\n');
    } else {
      modePrefix.checked = true;
      prefix.control.value = i.prefix || '';
      if (i.suffixes && i.suffixes.length) {
        rule.control.value = 'suffixes';
        values.control.value = i.suffixes.join(',');
      } else if (i.file_prefixes && i.file_prefixes.length) {
        rule.control.value = 'file_prefixes';
        values.control.value = i.file_prefixes.join(',');
      }
    }
    style.control.value = sp.style;
    outBucket.control.value = sp.output.bucket;
    outPath.control.value = sp.output.template;
    role.control.value = sp.role || '';
    if (sp.notify) notifyUrl.control.value = sp.notify.url;
    name.control.value = sp.name ? `${sp.name} (copy)` : '';
    concurrency.control.value = String(sp.concurrency);
    priority.control.value = String(sp.priority);
    rate.control.value = sp.max_tasks_per_second ? String(sp.max_tasks_per_second) : '';
    tagsF.control.value = Object.entries(sp.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    fastFail.checked = !!sp.fast_fail;
    extra = {};
    for (const k of ['glob', 'min_size', 'max_size', 'modified_after', 'modified_before', 'manifest']) if (i[k] != null) extra[k] = i[k];
    for (const k of ['report', 'skip_unchanged', 'follow', 'follow_interval', 'limits']) if (sp[k] != null) extraTop[k] = sp[k];
  }
  /** The JobSpec the form describes; throws {field, message} for what cannot be sent. */
  function spec() {
    const input = { bucket: inBucket.control.value.trim(), ...extra };
    if (modeFile.checked) {
      input.keys = keys.control.value.split('\n').map((k) => k.trim()).filter(Boolean);
      delete input.glob;
    } else {
      input.prefix = prefix.control.value;
      const r = rule.control.value;
      if (r !== 'all') input[r] = values.control.value;
    }
    const body = { input, style: style.control.value.trim(), output: { bucket: outBucket.control.value.trim(), template: outPath.control.value }, ...extraTop };
    if (role.control.value.trim()) body.role = role.control.value.trim();
    if (name.control.value.trim()) body.name = name.control.value.trim();
    if (notifyUrl.control.value.trim()) body.notify = { url: notifyUrl.control.value.trim(), secret: notifySecret.control.value };
    const num = (f, key) => {
      const v = f.control.value.trim();
      if (v === '') return;
      if (!/^-?\d+$/.test(v)) throw { field: key, message: 'must be a whole number' };
      body[key] = Number(v);
    };
    num(concurrency, 'concurrency');
    num(priority, 'priority');
    num(rate, 'max_tasks_per_second');
    body.fast_fail = fastFail.checked;
    const tags = {};
    for (const pair of tagsF.control.value.split(',').map((p) => p.trim()).filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw { field: 'tags', message: `\`${pair}\` is not NAME=VALUE` };
      tags[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
    body.tags = tags;
    return body;
  }

  function clearErrors() {
    for (const f of new Set(Object.values(fields))) setFieldError(f, null);
    modeErr.hidden = true;
    formError.replaceChildren();
  }

  /** Put an API problem next to its field (the longest field path known), else above the buttons. */
  function showError(e) {
    const path = (e.field || '').replace(/\[\d+\]/g, '');
    let key = path;
    while (key && !fields[key]) key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
    const target = key ? fields[key] : null;
    if (target) {
      setFieldError(target, e.message);
      target.hidden = false;
      target.control.focus();
    } else if (path === 'input') {
      modeErr.textContent = e.message;
      modeErr.hidden = false;
    } else {
      fill(formError, h('p', {}, e.message));
    }
  }

  async function send(dryRun) {
    clearErrors();
    let body;
    try {
      body = spec();
    } catch (e) {
      showError(e);
      return null;
    }
    const start = startNow.checked;
    try {
      return await post('/v1/jobs', dryRun ? { ...body, dry_run: true } : { ...body, start });
    } catch (e) {
      if (e instanceof ApiError) showError(e);
      else fill(formError, h('p', {}, `Cannot reach the daemon: ${e.message}`));
      return null;
    }
  }

  previewBtn.addEventListener('click', async () => {
    previewBtn.disabled = true;
    fill(preview, h('p', { class: 'muted' }, 'Listing the selection…'));
    const r = await send(true);
    previewBtn.disabled = false;
    fill(preview, r ? renderDryRun(r) : null);
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    createBtn.disabled = true;
    const job = await send(false);
    createBtn.disabled = false;
    if (job) {
      status(`Job ${job.id} created.`);
      go({ view: 'job', id: job.id });
    }
  });

  // Live style check: a dry run of one absent key, which runs every check of the
  // style (the plugin's own validate) but lists nothing.
  let timer = null;
  let asked = 0;
  const checkStyle = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const value = style.control.value.trim();
      setFieldError(style, null);
      if (!value) {
        styleCheck.textContent = '';
        return;
      }
      const bucket = inBucket.control.value.trim() || (buckets[0] && buckets[0].name);
      if (!bucket) return;
      const n = ++asked;
      styleCheck.textContent = 'Checking the style…';
      const probe = {
        input: { bucket, keys: ['kiln-console-style-check/probe'] },
        style: value,
        output: { bucket, template: 'kiln-console-style-check/out/{barename}.{autoext}' },
        dry_run: true,
      };
      if (role.control.value.trim()) probe.role = role.control.value.trim();
      try {
        await post('/v1/jobs', probe, { signal });
        if (n === asked) styleCheck.textContent = 'Style is valid.';
      } catch (e) {
        if (n !== asked) return;
        if (e.field === 'style') {
          styleCheck.textContent = '';
          setFieldError(style, e.message);
        } else styleCheck.textContent = e.status ? 'The style could not be checked on its own; Preview checks the whole job.' : '';
      }
    }, 400);
  };
  style.control.addEventListener('input', checkStyle);
  if (style.control.value) checkStyle();
  if (!source) inBucket.control.focus();
}

/** A dry run's answer: counts, sample outputs, collisions, grant and path problems. */
export function renderDryRun(r) {
  const out = [h('h2', {}, 'Preview'), h('p', { class: 'summary' }, `${r.objects} ${r.objects === 1 ? 'object' : 'objects'}, ${formatBytes(r.bytes)}.`)];
  if (r.autoext) out.push(h('p', {}, `{autoext} is ${r.autoext}.`));
  if (r.sample && r.sample.length) {
    out.push(
      h(
        'table',
        { class: 'data' },
        h('caption', {}, `Sample output keys (first ${r.sample.length})`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Output'))),
        h('tbody', {}, r.sample.map((s) => h('tr', {}, h('td', { class: 'key' }, s.source), h('td', { class: 'key' }, s.output)))),
      ),
    );
  }
  const problems = (title, count, list, text) => {
    if (!count) return;
    out.push(h('h3', { class: 'problem' }, `${title}: ${count}`), h('ul', { class: 'problems' }, list.map((x) => h('li', { class: 'key' }, text(x)))));
  };
  problems('Collisions', r.collision_count, r.collisions || [], (c) => `${c.output} ← ${c.sources.join(', ')}`);
  problems('Outside the grants', r.outside_grants_count, r.outside_grants || [], (g) => `${g.access} ${g.bucket}/${g.key}: ${g.error}`);
  problems('Path problems', r.path_rule_violation_count, r.path_rule_violations || [], (p) => `${p.source}: ${p.error}`);
  problems('Missing', r.missing_count, r.missing || [], (p) => `${p.source}: ${p.error}`);
  if (!r.collision_count && !r.outside_grants_count && !r.path_rule_violation_count && !r.missing_count) out.push(h('p', { class: 'ok' }, 'No collisions, grant or path problems.'));
  if (r.truncated) out.push(h('p', {}, 'More than 100,000 objects: collisions were looked for among the first 100,000.'));
  return out;
}
