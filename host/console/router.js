// Routing in the query string of `/`: `/?view=jobs&state=failed`. The server
// serves only `/` for pages, so every view lives here, and back/forward work.

let handler = () => {};

/** The current route's parameters. */
export function current() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/** The URL of a route: empty parameters are left out. */
export function href(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `/?${s}` : '/';
}

/** Go to a route (a new history entry, or replace the current one) and render it. */
export function go(params, { replace = false, render = true } = {}) {
  const url = href(params);
  if (url !== location.pathname + location.search) history[replace ? 'replaceState' : 'pushState'](null, '', url);
  if (render) handler(current());
}

/** Change the URL without rendering (a view that updates itself in place). */
export function remember(params) {
  go(params, { replace: true, render: false });
}

export function start(onRoute) {
  handler = onRoute;
  addEventListener('popstate', () => handler(current()));
  // Links inside the app navigate without reloading; modified clicks open as usual.
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[data-route]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    history.pushState(null, '', a.getAttribute('href'));
    handler(current());
  });
  handler(current());
}

/** A page trail for cursor pagination, kept in the URL: `_` stands for the first page. */
export function readTrail(s) {
  return s ? s.split(',').map((c) => (c === '_' ? '' : decodeURIComponent(c))) : [];
}
export function writeTrail(list) {
  return list.map((c) => (c === '' ? '_' : encodeURIComponent(c))).join(',');
}
