// Signing in and out: the admin password and SSO sign-in (browser), the desktop sign-in
// window, and the desktop app's first-run screen.
import {
  SSO_KEY, TAURI, answers, api, leaveForIdp, ownCallback, pendingTrip, setToken, token,
} from './api.js';
import { enterAdmin } from './admin.js';
import { $, formError, setBusy, setWho, show } from './dom.js';

export function wireSignIn() {
  $('#signout').addEventListener('click', signOut);
  $('#login-form').addEventListener('submit', passwordLogin);
  $('#login-sso').addEventListener('click', ssoLogin);
  $('#signin-form').addEventListener('submit', desktopSignIn);
  $('#setup-form').addEventListener('submit', firstRun);
}

// A session JWT for a local password (POST /sso/session), never a long-lived access token:
// it ends with its lifetime or at sign-out.
async function passwordSession(username, password) {
  const jwt = await api('POST', '/sso/session',
    { json: { Username: username, Password: password }, auth: false });
  setToken(jwt);
}

async function passwordLogin(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  formError(form, '');
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) return formError(form, 'Type your username and password.');
  setBusy(form, true);
  try {
    await passwordSession(username, password);
    form.password.value = '';
    await enterAdmin();
  } catch (e) {
    const throttled = e.status === 401 && /too many/.test(e.message);
    formError(form, e.status === 401 && !throttled ? 'Wrong username or password.' : e.message);
  } finally { setBusy(form, false); }
}

async function ssoLogin() {
  const form = $('#login-form');
  formError(form, '');
  const username = form.username.value.trim();
  if (!username) { form.username.focus(); return formError(form, 'Type your email to sign in with SSO.'); }
  setBusy(form, true);
  try {
    const r = await api('POST', '/sso/sso_url', { json: { Username: username, CallbackUrl: ownCallback() }, auth: false });
    leaveForIdp(SSO_KEY, r, { hash: location.hash });
  } catch (e) {
    formError(form, e.message);
    setBusy(form, false);
  }
}

/** Back from the IdP with ?code&state (or ?error): redeem the code for a session. */
export async function finishSso(q) {
  const pending = pendingTrip(SSO_KEY);
  sessionStorage.removeItem(SSO_KEY);
  // The code must not stay in the URL; the tab the sign-in started from comes back.
  history.replaceState(null, '', location.pathname + ((pending && pending.hash) || ''));
  show('login');
  const form = $('#login-form');
  if (q.has('error')) {
    return formError(form, `The identity provider refused the sign-in: ${q.get('error_description') || q.get('error')}`);
  }
  if (!pending) return formError(form, 'This sign-in was not started here; start again.');
  if (!answers(pending, q)) {
    return formError(form, 'This answer from the identity provider does not belong to the sign-in started here. Sign in again.');
  }
  try {
    const jwt = await api('POST', '/sso/authenticate', {
      json: { Identifier: pending.identifier, AuthorizationCode: q.get('code'), CallbackUrl: pending.callback }, auth: false });
    setToken(jwt);
    await enterAdmin();
  } catch (e) { formError(form, e.message); }
}

async function signOut() {
  try {
    if (token()) await api('POST', '/sso/logout');
    else if (TAURI) await TAURI.core.invoke('sign_out');
  } catch { /* revoked or expired already */ }
  setToken(null);
  setWho('');
  show('login');
}

async function desktopSignIn(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const status = $('#signin-status');
  status.className = 'status';
  const username = form.username.value.trim();
  if (!username) { status.textContent = 'Type your work email address.'; status.classList.add('err'); return; }
  setBusy(form, true);
  status.textContent = 'Opening your browser…';
  try {
    await TAURI.core.invoke('start_sign_in', { username, forceAuthn: form.dataset.force === '1' });
    status.textContent = 'Continue in your browser. This window updates when you are signed in.';
  } catch (e) {
    status.textContent = String(e);
    status.classList.add('err');
    setBusy(form, false);
  }
}

/** The shell's `signin-finished` event: the desktop sign-in's outcome. */
export function signinFinished(p) {
  const status = $('#signin-status');
  status.textContent = p.message;
  status.className = p.ok ? 'status ok' : 'status err';
  setBusy($('#signin-form'), false);
  $('#signin-close').hidden = p.ok;
}

async function firstRun(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  formError(form, '');
  const v = (n) => form[n].value.trim();
  if (!v('account') || !v('email') || !form.password.value) return formError(form, 'Account identifier, admin email and password are required.');
  if (form.password.value !== form.password2.value) return formError(form, 'The passwords do not match.');
  setBusy(form, true);
  try {
    await TAURI.core.invoke('first_run_setup', {
      account: v('account'), accountName: v('accountName') || null, email: v('email'),
      name: v('name') || null, password: form.password.value });
    await passwordSession(v('email'), form.password.value);
    form.reset();
    await enterAdmin();
  } catch (e) {
    formError(form, e.message || String(e));
  } finally { setBusy(form, false); }
}
