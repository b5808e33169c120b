// Building the DOM from data, safely: text goes in as text nodes, never as HTML.

/** `h('a', {href, class, onclick}, 'text', child…)`: an element. Strings become text nodes. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k === 'value' || k === 'checked' || k === 'max' || k === 'disabled') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  add(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as text. */
export function add(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return add(el, ...children);
}

let seq = 0;
/** A fresh id for label/control pairs. */
export const uid = (p = 'f') => `${p}-${++seq}`;

/** A labelled control: `<div class=field><label for>Label</label>control<p class=hint></p><p class=field-error></p></div>`. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const err = h('p', { class: 'field-error', id: `${control.id}-err`, hidden: true });
  const parts = [h('label', { for: control.id }, label), control];
  let describedBy = err.id;
  if (hint) {
    const hintEl = h('p', { class: 'hint', id: `${control.id}-hint` }, hint);
    parts.push(hintEl);
    describedBy = `${hintEl.id} ${err.id}`;
  }
  control.setAttribute('aria-describedby', describedBy);
  parts.push(err);
  const wrap = h('div', { class: 'field' }, parts);
  wrap.control = control;
  wrap.error = err;
  return wrap;
}

/** Show (or clear, with null) a field's error next to it. */
export function setFieldError(wrap, message) {
  wrap.error.hidden = !message;
  wrap.error.textContent = message || '';
  if (message) wrap.control.setAttribute('aria-invalid', 'true');
  else wrap.control.removeAttribute('aria-invalid');
}

/** A `<select>` of `[value, text]` pairs. */
export function select(options, value, props = {}) {
  const s = h('select', props, options.map(([v, t]) => h('option', { value: v }, t)));
  s.value = value ?? options[0]?.[0] ?? '';
  return s;
}

/**
 * A time from the API: unix seconds (a number) or an RFC 3339 string. Returns a
 * `<time>` element showing it in local time, or a dash.
 */
export function formatTime(v) {
  if (v == null || v === '') return h('span', { class: 'muted' }, '—');
  const d = toDate(v);
  if (!d) return h('span', {}, String(v));
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, timeText(d));
}

export function toDate(v) {
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(String(v));
  return Number.isNaN(d.getTime()) ? null : d;
}

function timeText(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Seconds between two API times, or null. */
export function secondsBetween(a, b) {
  const x = toDate(a), y = toDate(b);
  return x && y ? Math.round((y - x) / 1000) : null;
}

export function formatBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(secs) {
  if (secs == null) return '—';
  if (secs < 60) return `${secs} s`;
  const m = Math.floor(secs / 60), s = secs % 60;
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Done tasks of a job's counters: every one that will not run again. */
export const doneOf = (c) => (c.succeeded || 0) + (c.failed || 0) + (c.skipped || 0);

/** A progress bar with its text, e.g. `3/10`. */
export function progress(c, label) {
  const done = doneOf(c);
  const bar = h('progress', { max: Math.max(c.total, 1), value: done, 'aria-label': label });
  const text = h('span', { class: 'progress-text' }, `${done}/${c.total}`);
  return h('span', { class: 'progress' }, bar, text);
}

export function updateProgress(el, c) {
  const done = doneOf(c);
  const bar = el.querySelector('progress');
  bar.max = Math.max(c.total, 1);
  bar.value = done;
  el.querySelector('.progress-text').textContent = `${done}/${c.total}`;
}

export function stateBadge(state) {
  return h('span', { class: `badge state-${String(state).replace(/[^a-z-]/g, '')}` }, state);
}

export const TERMINAL = ['succeeded', 'failed', 'cancelled'];
