// The API client: the bearer token (sessionStorage only), JSON calls, problem+json
// errors, downloads through blob URLs, and the SSE stream read with fetch().

const KEY = 'kiln.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API error: the problem's detail as the message, its `field` if any. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.field = problem.field || null;
  }
}

let unauthorized = () => {};
/** Called with the error when any call answers 401. */
export function onUnauthorized(f) {
  unauthorized = f;
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v != null && v !== '') u.searchParams.set(k, String(v));
  return u;
}

async function problemOf(res) {
  const text = await res.text().catch(() => '');
  try {
    const p = JSON.parse(text);
    if (p && typeof p === 'object') return p;
  } catch {
    /* not JSON */
  }
  return { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 500) || undefined, status: res.status };
}

/** Call the API. `body`: an object (sent as JSON) or a Blob/File (sent as is). */
export async function api(method, path, { query, body, signal, raw = false, headers = {}, quiet401 = false } = {}) {
  const init = { method, signal, cache: 'no-store', headers: { Authorization: `Bearer ${token.get() || ''}`, ...headers } };
  if (body instanceof Blob) {
    init.body = body;
    init.headers['Content-Type'] = 'application/wasm';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url(path, query), init);
  if (!res.ok) {
    const err = new ApiError(res.status, await problemOf(res));
    if (res.status === 401 && !quiet401) unauthorized(err);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query, opts) => api('GET', path, { query, ...opts });
export const post = (path, body, opts) => api('POST', path, { body, ...opts });
export const del = (path, opts) => api('DELETE', path, opts);

/** Download a file the API serves: fetched with the token, saved through a blob URL. */
export async function download(path, query, fallbackName) {
  const res = await api('GET', path, { query, raw: true });
  const blob = await res.blob();
  const disposition = res.headers.get('Content-Disposition') || '';
  const m = /filename\*=UTF-8''([^;]+)|filename="?([^";]+)"?/i.exec(disposition);
  let name = fallbackName;
  if (m) name = m[1] ? decodeURIComponent(m[1]) : m[2];
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name.split('/').pop() || 'download';
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
  return { name: a.download, size: blob.size };
}

/**
 * Follow an SSE stream with fetch() (EventSource cannot send the token).
 * `onEvent({event, data, id})` returns true to stop. Reconnects after a
 * `shutdown` event or a broken stream, with a growing pause, until `signal`
 * aborts, `onEvent` says stop, or the stream ends on its own after a final
 * event (`isFinal(ev)`).
 */
export async function follow(path, { signal, onEvent, isFinal = () => false, onStatus = () => {} }) {
  let pause = 500;
  while (!signal.aborted) {
    let last = null;
    try {
      const res = await api('GET', path, { signal, raw: true, headers: { Accept: 'text/event-stream' } });
      onStatus('live');
      pause = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let ev = { event: 'message', data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
          if (line === '') {
            if (ev.data.length) {
              const out = { event: ev.event, id: ev.id, data: ev.data.join('\n') };
              last = out;
              if (onEvent(out)) {
                reader.cancel().catch(() => {});
                return;
              }
            }
            ev = { event: 'message', data: [], id: null };
          } else if (!line.startsWith(':')) {
            const i = line.indexOf(':');
            const name = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (name === 'event') ev.event = val;
            else if (name === 'data') ev.data.push(val);
            else if (name === 'id') ev.id = val;
          }
        }
      }
      if (last && isFinal(last)) return;
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && (e.status === 401 || e.status === 404 || e.status === 403)) {
        onStatus('stopped');
        return;
      }
    }
    onStatus('reconnecting');
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}
