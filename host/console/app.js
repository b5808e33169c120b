// The Kiln console: sign-in, the navigation, and one view at a time.

import { api, token, onUnauthorized } from './api.js';
import { h, fill } from './dom.js';
import { start, go, current } from './router.js';
import { renderSignIn } from './views/signin.js';
import { renderJobs } from './views/jobs.js';

// The job list is what most visits open first: it loads with the app; the other
// views load when first shown (fewer requests before the list is painted).
const lazy = (path, name) => async (...args) => (await import(path))[name](...args);
const views = {
  jobs: renderJobs,
  job: lazy('./views/job.js', 'renderJob'),
  create: lazy('./views/create.js', 'renderCreate'),
  plugins: lazy('./views/plugins.js', 'renderPlugins'),
  styles: lazy('./views/styles.js', 'renderStyles'),
  tenants: lazy('./views/admin.js', 'renderTenants'),
  roles: lazy('./views/admin.js', 'renderRoles'),
};
const titles = { jobs: 'Jobs', job: 'Job', create: 'Create batch job', plugins: 'Plugins', styles: 'Styles', tenants: 'Tenants', roles: 'Roles' };

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const statusEl = document.getElementById('status');

let me = null; // whoami, once signed in
let viewAbort = null; // ends the current view's streams and timers

/** A message in the polite live region (errors are role=alert inside views). */
export function status(message) {
  statusEl.textContent = message || '';
}

function signOut(message) {
  token.clear();
  me = null;
  if (viewAbort) viewAbort.abort();
  nav.hidden = true;
  who.replaceChildren();
  renderSignIn(main, { message, onSignedIn });
}

function onSignedIn(whoami) {
  me = whoami;
  renderChrome();
  route(current());
}

function renderChrome() {
  const link = (view, text) => h('a', { href: `/?view=${view}`, 'data-route': true, 'data-view': view }, text);
  const links = [link('jobs', 'Jobs'), link('styles', 'Styles'), link('plugins', 'Plugins')];
  if (me.admin) links.push(link('tenants', 'Tenants'), link('roles', 'Roles'));
  fill(nav, links);
  nav.hidden = false;
  fill(
    who,
    h('span', {}, me.admin ? 'Admin' : `Tenant ${me.tenant ? me.tenant.name : ''}`),
    h('button', { type: 'button', class: 'link', onclick: () => signOut('Signed out.') }, 'Sign out'),
  );
}

async function route(params) {
  if (viewAbort) viewAbort.abort();
  if (!token.get() || !me) return;
  viewAbort = new AbortController();
  const name = views[params.view] ? params.view : 'jobs';
  const adminOnly = name === 'tenants' || name === 'roles';
  for (const a of nav.querySelectorAll('a')) {
    const active = a.dataset.view === name || (a.dataset.view === 'jobs' && (name === 'job' || name === 'create'));
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${titles[name]} · Kiln console`;
  status('');
  const ctx = { signal: viewAbort.signal, me, status };
  try {
    if (adminOnly && !me.admin) throw new Error('Only the admin sees this page.');
    await views[name](main, params, ctx);
    // Keyboard and screen-reader users land on the new page, not on a removed control.
    if (!ctx.signal.aborted && (document.activeElement === document.body || !document.activeElement || !document.activeElement.isConnected)) main.focus({ preventScroll: true });
  } catch (e) {
    if (ctx.signal.aborted || (e && e.status === 401)) return;
    fill(main, h('h1', {}, titles[name]), h('p', { class: 'error', role: 'alert' }, e.message || String(e)));
  }
}

onUnauthorized((err) => {
  if (token.get()) signOut(err.message);
});

async function boot() {
  if (!token.get()) {
    signOut(null);
  } else {
    try {
      me = await api('GET', '/v1/whoami');
      renderChrome();
    } catch (e) {
      if (e.status !== 401) fill(main, h('p', { class: 'error', role: 'alert' }, e.message));
      return;
    }
  }
  start(route);
}

addEventListener('kiln:go', (e) => go(e.detail));
boot();
