// Sign-in with a bearer token. The token is kept in sessionStorage, never in a URL.

import { api, token, ApiError } from '../api.js';
import { h, fill, field } from '../dom.js';

export function renderSignIn(main, { message, onSignedIn }) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const tokenField = field('Token', input, 'The admin token, or a token the admin issued to your tenant.');
  const alert = h('p', { class: 'error', role: 'alert' });
  if (message) alert.textContent = message;
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin card', novalidate: true }, h('h1', {}, 'Sign in to Kiln'), tokenField, alert, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      alert.textContent = 'Enter a token.';
      input.focus();
      return;
    }
    button.disabled = true;
    token.set(value);
    try {
      const me = await api('GET', '/v1/whoami', { quiet401: true });
      onSignedIn(me);
    } catch (err) {
      token.clear();
      alert.textContent = err instanceof ApiError ? err.message : `Cannot reach the daemon: ${err.message}`;
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  fill(main, form);
  input.focus();
}
