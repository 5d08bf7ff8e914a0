// Amove agent web UI: the desktop app's windows (sign-in, first run, admin) and the same
// admin pages in a browser at http://localhost:29123/ui/. No framework, no external resources.
'use strict';

const TAURI = window.__TAURI__ && window.__TAURI__.core ? window.__TAURI__ : null;
const TOKEN_KEY = 'amove.token';
const SSO_KEY = 'amove.sso';
const MASK = '********';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------------------
// The API: fetch in a browser, the shell's `api` command in the desktop app.

class ApiError extends Error {
  constructor(status, data, code) {
    super(messagesOf(status, data).join(' '));
    this.status = status;
    this.data = data;
    this.code = code || (data && data.type) || null;
    this.messages = messagesOf(status, data);
  }
}

function messagesOf(status, data) {
  if (data && typeof data === 'object') {
    if (data.errors) return Object.values(data.errors).flat().map(String);
    if (data.error_description) return [String(data.error_description)];
    if (data.error) return [String(data.error)];
  }
  if (status === 500) return ['The agent had an internal error; its log has the details.'];
  if (typeof data === 'string' && data) return [data];
  return [`The agent answered ${status}.`];
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(method, path, { json, form, auth = true } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (form) { headers['Content-Type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(form).toString(); }
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  let status, text, code;
  if (TAURI) {
    const r = await TAURI.core.invoke('api', { request: { method, path, headers, body: body ?? null } });
    ({ status, body: text } = r);
    code = r.errorCode;
  } else {
    const r = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
    status = r.status; text = await r.text(); code = r.headers.get('error-code');
  }
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (status >= 200 && status < 300) return data;
  if (status === 401 && auth) onUnauthorized();
  throw new ApiError(status, data, code);
}

// ---------------------------------------------------------------------------------------
// Views

let current = null;
function show(view) {
  for (const s of $$('main > section')) s.hidden = s.id !== `view-${view}`;
  current = view;
  const h = $(`#view-${view} h1`);
  const first = $(`#view-${view} input, #view-${view} [role=tab][aria-selected=true]`);
  (first || h || $('#main')).focus();
}

function setWho(text) {
  $('#who').textContent = text || '';
  $('#signout').hidden = !text;
}

function onUnauthorized() {
  if (TAURI && !token()) return;
  sessionStorage.removeItem(TOKEN_KEY);
  setWho('');
  if (current === 'admin' || current === 'notadmin') {
    show('login');
    formError($('#login-form'), 'Your session has ended. Sign in again.');
  }
}

function formError(form, msg) {
  const p = $('.form-error', form);
  if (p) p.textContent = msg || '';
}

function setBusy(form, busy) {
  for (const b of $$('button', form)) b.disabled = busy;
  form.setAttribute('aria-busy', busy ? 'true' : 'false');
}

// ---------------------------------------------------------------------------------------
// Start

document.addEventListener('DOMContentLoaded', () => {
  wireCommon();
  start().catch((e) => { show('error'); $('#error-message').textContent = e.message || String(e); });
});

function wireCommon() {
  for (const b of $$('.close-window')) b.addEventListener('click', closeWindow);
  $('#signout').addEventListener('click', signOut);
  $('#login-form').addEventListener('submit', passwordLogin);
  $('#login-sso').addEventListener('click', ssoLogin);
  $('#signin-form').addEventListener('submit', desktopSignIn);
  $('#setup-form').addEventListener('submit', firstRun);
  $('#callbacks-form').addEventListener('submit', saveCallbacks);
  $('#audit-prev').addEventListener('click', () => loadAudit(auditPage - 1));
  $('#audit-next').addEventListener('click', () => loadAudit(auditPage + 1));
  wireTabs();
}

function closeWindow() {
  if (TAURI) TAURI.core.invoke('close_window'); else window.close();
}

let following = false;
async function start() {
  if (!TAURI) return startBrowser();
  const st = await TAURI.core.invoke('app_state');
  if (st.view === 'error') {
    $('#error-message').textContent = st.error || 'The agent could not start.';
    return show('error');
  }
  if (st.view === 'signin') {
    if (st.session) $('#signin-status').textContent = `Signed in as ${st.session.name} — ${st.session.account}. Sign in again to switch user.`;
    TAURI.event.listen('signin-finished', (ev) => signinFinished(ev.payload));
    return show('signin');
  }
  // The tray's sign-in state changed (signed in or out elsewhere): redraw unless this window
  // has its own password sign-in.
  if (!following) {
    following = true;
    TAURI.event.listen('session-changed', () => { if (!token() && current !== 'setup') start(); });
  }
  if (st.needsSetup) return show('setup');
  if (st.session) return enterAdmin();
  show('login');
  $('#login-sso').hidden = true; // in the app, SSO sign-in is the tray's "Sign in…"
}

async function startBrowser() {
  const q = new URLSearchParams(location.search);
  if (q.has('code') || q.has('error')) return finishSso(q);
  if (token()) return enterAdmin();
  show('login');
}

// ---------------------------------------------------------------------------------------
// Signing in and out

async function passwordLogin(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  formError(form, '');
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) return formError(form, 'Type your username and password.');
  setBusy(form, true);
  try {
    const r = await api('POST', '/sso/ttapi/2.0/authz/0/authn',
      { form: { grant_type: 'password', username, password }, auth: false });
    sessionStorage.setItem(TOKEN_KEY, r.access_token);
    form.password.value = '';
    await enterAdmin();
  } catch (e) {
    formError(form, e.status === 400 ? 'Wrong username or password (or too many attempts: wait a moment).' : e.message);
  } finally { setBusy(form, false); }
}

function ownCallback() { return `${location.origin}${location.pathname}`; }

async function ssoLogin() {
  const form = $('#login-form');
  formError(form, '');
  const username = form.username.value.trim();
  if (!username) { form.username.focus(); return formError(form, 'Type your email to sign in with SSO.'); }
  setBusy(form, true);
  try {
    const r = await api('POST', '/sso/sso_url', { json: { Username: username, CallbackUrl: ownCallback() }, auth: false });
    sessionStorage.setItem(SSO_KEY, JSON.stringify({ identifier: r.Identifier, callback: ownCallback() }));
    location.assign(r.Url);
  } catch (e) {
    formError(form, e.message);
    setBusy(form, false);
  }
}

async function finishSso(q) {
  history.replaceState(null, '', location.pathname); // the code must not stay in the URL
  const pending = JSON.parse(sessionStorage.getItem(SSO_KEY) || 'null');
  sessionStorage.removeItem(SSO_KEY);
  show('login');
  const form = $('#login-form');
  if (q.has('error')) {
    return formError(form, `The identity provider refused the sign-in: ${q.get('error_description') || q.get('error')}`);
  }
  if (!pending) return formError(form, 'This sign-in was not started here; start again.');
  try {
    const jwt = await api('POST', '/sso/authenticate', {
      json: { Identifier: pending.identifier, AuthorizationCode: q.get('code'), CallbackUrl: pending.callback }, auth: false });
    sessionStorage.setItem(TOKEN_KEY, jwt);
    await enterAdmin();
  } catch (e) { formError(form, e.message); }
}

async function signOut() {
  try {
    if (token()) await api('POST', '/sso/logout');
    else if (TAURI) await TAURI.core.invoke('sign_out');
  } catch { /* revoked or expired already */ }
  sessionStorage.removeItem(TOKEN_KEY);
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
    await TAURI.core.invoke('start_sign_in', { username });
    status.textContent = 'Continue in your browser. This window updates when you are signed in.';
  } catch (e) {
    status.textContent = String(e);
    status.classList.add('err');
    setBusy(form, false);
  }
}

function signinFinished(p) {
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
    const r = await api('POST', '/sso/ttapi/2.0/authz/0/authn',
      { form: { grant_type: 'password', username: v('email'), password: form.password.value }, auth: false });
    sessionStorage.setItem(TOKEN_KEY, r.access_token);
    form.reset();
    await enterAdmin();
  } catch (e) {
    formError(form, e.message || String(e));
  } finally { setBusy(form, false); }
}

// ---------------------------------------------------------------------------------------
// Admin

let me = null;
async function enterAdmin() {
  me = await api('GET', '/sso/whoami');
  setWho(`${me.DisplayName} — ${me.Account}`);
  if (!me.IsAdmin) return show('notadmin');
  show('admin');
  await selectTab('okta');
}

const TABS = ['okta', 'entraId', 'saml', 'callbacks', 'tokens', 'audit'];
function wireTabs() {
  for (const name of TABS) {
    const tab = $(`#tab-${name}`);
    tab.addEventListener('click', () => selectTab(name));
    tab.addEventListener('keydown', (ev) => {
      const i = TABS.indexOf(name);
      let j = null;
      if (ev.key === 'ArrowRight') j = (i + 1) % TABS.length;
      if (ev.key === 'ArrowLeft') j = (i - 1 + TABS.length) % TABS.length;
      if (ev.key === 'Home') j = 0;
      if (ev.key === 'End') j = TABS.length - 1;
      if (j !== null) { ev.preventDefault(); $(`#tab-${TABS[j]}`).focus(); selectTab(TABS[j]); }
    });
  }
}

async function selectTab(name) {
  for (const n of TABS) {
    const sel = n === name;
    const tab = $(`#tab-${n}`);
    tab.setAttribute('aria-selected', String(sel));
    tab.tabIndex = sel ? 0 : -1;
    $(`#panel-${n}`).hidden = !sel;
  }
  // While a tab loads, its panel is busy and its buttons are off: nothing the user
  // submits can race the load that is about to fill the form.
  const panel = $(`#panel-${name}`);
  panel.setAttribute('aria-busy', 'true');
  const forms = $$('form', panel);
  for (const f of forms) setBusy(f, true);
  try {
    if (PROVIDERS[name]) await loadProvider(name);
    if (name === 'callbacks') await loadCallbacks();
    if (name === 'tokens') await loadTokens();
    if (name === 'audit') await loadAudit(1);
  } catch (e) {
    let p = $('.load-error', panel);
    if (!p) { p = el('p', { class: 'form-error load-error', role: 'alert' }); panel.prepend(p); }
    p.textContent = e.message;
  } finally {
    for (const f of forms) setBusy(f, false);
    panel.setAttribute('aria-busy', 'false');
  }
}

// Every seed field of each provider. `secret`: write-only; `cert`: PEM textarea.
const PROVIDERS = {
  okta: {
    title: 'Okta (OpenID Connect)', path: 'okta',
    fields: [
      { name: 'ClientId', label: 'Client ID', required: true },
      { name: 'ClientSecret', label: 'Client secret', secret: true, required: true },
      { name: 'OpenIdURL', label: 'OpenID configuration URL', required: true, type: 'url',
        hint: 'https://YOUR-TENANT.okta.com/.well-known/openid-configuration' },
    ],
  },
  entraId: {
    title: 'Microsoft Entra ID (OpenID Connect)', path: 'entraId',
    fields: [
      { name: 'ClientId', label: 'Application (client) ID', required: true },
      { name: 'ClientSecret', label: 'Client secret', secret: true, required: true },
      { name: 'OpenIdURL', label: 'OpenID configuration URL', required: true, type: 'url',
        hint: 'https://login.microsoftonline.com/TENANT-ID/v2.0/.well-known/openid-configuration' },
      { name: 'GraphURL', label: 'Microsoft Graph URL (optional)', type: 'url', hint: 'Default: https://graph.microsoft.com' },
    ],
  },
  saml: {
    title: 'SAML 2.0', path: 'saml',
    fields: [
      { name: 'IdPSSOURL', label: 'IdP single sign-on URL', required: true, type: 'url' },
      { name: 'SPEntityId', label: 'SP entity ID (this agent, as registered at the IdP)', required: true },
      { name: 'IdPEntityId', label: 'IdP entity ID (optional; checked against the response Issuer)' },
      { name: 'Certificate', label: 'IdP signing certificate (PEM or base64)', required: true, cert: true },
      { name: 'NextCertificate', label: 'Next signing certificate (optional, for a rollover)', cert: true },
    ],
  },
};
const loaded = {};

function providerForm(name) {
  const spec = PROVIDERS[name];
  const panel = $(`#panel-${name}`);
  panel.replaceChildren();
  panel.append(el('h2', { text: spec.title }));
  const form = el('form', { novalidate: true, id: `form-${name}` });
  for (const f of spec.fields) {
    const id = `${name}-${f.name}`;
    const described = [f.hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
    const input = f.cert
      ? el('textarea', { id, name: f.name, rows: 6, spellcheck: 'false', 'aria-describedby': described })
      : el('input', { id, name: f.name, type: f.secret ? 'password' : (f.type === 'url' ? 'url' : 'text'),
        autocomplete: 'off', spellcheck: 'false', 'aria-describedby': described, 'aria-required': f.required ? 'true' : null });
    form.append(el('div', { class: 'field' },
      el('label', { for: id, text: f.label }), input,
      f.hint ? el('small', { id: `${id}-hint`, text: f.hint }) : null,
      el('p', { class: 'field-error', id: `${id}-error` })));
  }
  form.append(el('div', { class: 'field checkbox' },
    el('input', { id: `${name}-Active`, name: 'Active', type: 'checkbox', 'aria-describedby': `${name}-Active-error` }),
    el('label', { for: `${name}-Active`, text: 'Active (used for sign-in; only one provider can be active)' }),
    el('p', { class: 'field-error', id: `${name}-Active-error` })));
  if (name === 'saml') form.append(el('div', { class: 'field' }, el('span', { class: 'label', text: 'ACS URL (register at your IdP)' }),
    el('code', { id: 'saml-acs' })));
  form.append(el('p', { class: 'form-error', role: 'alert' }));
  form.append(el('p', { class: 'status', role: 'status', 'aria-live': 'polite' }));
  form.append(el('div', { class: 'actions' },
    el('button', { type: 'submit', class: 'primary', id: `${name}-save`, text: 'Save' }),
    el('button', { type: 'button', id: `${name}-test`, text: 'Test connection', onclick: () => testConnection(name) }),
    el('button', { type: 'button', id: `${name}-delete`, class: 'danger', text: 'Delete', onclick: () => deleteProvider(name) })));
  form.append(el('div', { class: 'checks', id: `${name}-checks`, 'aria-live': 'polite' }));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); saveProvider(name); });
  panel.append(form);
  if (name === 'saml') panel.append(samlMetadataBlock());
  return form;
}

async function loadProvider(name) {
  const form = $(`#form-${name}`) || providerForm(name);
  clearErrors(form);
  const cfg = await api('GET', `/sso/get_${PROVIDERS[name].path}`);
  loaded[name] = cfg;
  fillProvider(name, form, cfg);
  if (name === 'saml') loadSamlMetadata();
}

function fillProvider(name, form, cfg) {
  for (const f of PROVIDERS[name].fields) form[f.name].value = cfg ? (cfg[f.name] ?? '') : '';
  form.Active.checked = !!(cfg && cfg.Active);
  $(`#${name}-delete`).hidden = !cfg;
  $(`#${name}-test`).hidden = !cfg;
  $(`#${name}-save`).textContent = cfg ? 'Save changes' : 'Create';
  const secret = form.ClientSecret;
  if (secret) {
    secret.placeholder = cfg ? 'Stored (write-only); type a new one to replace it' : '';
    if (cfg) secret.value = MASK;
  }
  const acs = $('#saml-acs');
  if (acs) acs.textContent = (cfg && cfg.AcsURL) || `${location.protocol === 'http:' ? location.origin : 'http://localhost:29123'}/sso/saml/acs`;
}

function clearErrors(form) {
  for (const p of $$('.field-error', form)) p.textContent = '';
  for (const i of $$('[aria-invalid]', form)) i.removeAttribute('aria-invalid');
  formError(form, '');
  const s = $('.status', form); if (s) s.textContent = '';
}

// Each DEFAULT message starts with the field's name: show it next to that field.
function showFieldErrors(form, prefix, messages) {
  const names = $$('[name]', form).map((i) => i.name).sort((a, b) => b.length - a.length);
  const rest = [];
  let first = null;
  for (const m of messages) {
    const name = names.find((n) => m.toLowerCase().startsWith(n.toLowerCase()));
    if (!name) { rest.push(m); continue; }
    const input = form[name];
    const p = $(`#${prefix}-${name}-error`);
    if (p) p.textContent = p.textContent ? `${p.textContent} ${m}` : m;
    input.setAttribute('aria-invalid', 'true');
    first = first || input;
  }
  formError(form, rest.join(' '));
  if (first) first.focus();
}

async function saveProvider(name) {
  const form = $(`#form-${name}`);
  clearErrors(form);
  const body = {};
  for (const f of PROVIDERS[name].fields) {
    const v = form[f.name].value.trim();
    if (v || !f.secret) body[f.name] = v === '' && !f.required ? null : v;
  }
  body.Active = form.Active.checked;
  const cfg = loaded[name];
  setBusy(form, true);
  try {
    const saved = cfg
      ? await api('PUT', `/sso/update_${PROVIDERS[name].path}`, { json: { ...body, Id: cfg.Id } })
      : await api('POST', `/sso/setup_${PROVIDERS[name].path}`, { json: body });
    loaded[name] = saved;
    fillProvider(name, form, saved);
    $('.status', form).textContent = cfg ? 'Saved.' : 'Created.';
  } catch (e) {
    if (e.code === 'DEFAULT') showFieldErrors(form, name, e.messages);
    else formError(form, e.message);
  } finally { setBusy(form, false); }
}

async function deleteProvider(name) {
  const form = $(`#form-${name}`);
  clearErrors(form);
  if (!(await confirmDialog(`Delete the ${PROVIDERS[name].title} configuration? Users of this provider can no longer sign in.`))) return;
  try {
    await api('DELETE', `/sso/delete_${PROVIDERS[name].path}`);
    loaded[name] = null;
    fillProvider(name, form, null);
    $('.status', form).textContent = 'Deleted.';
  } catch (e) { formError(form, e.message); }
}

async function testConnection(name) {
  const form = $(`#form-${name}`);
  const box = $(`#${name}-checks`);
  box.replaceChildren(el('p', { text: 'Testing…' }));
  try {
    const r = await api('POST', `/sso/test_connection?provider=${encodeURIComponent(name)}`);
    const list = el('ul', { class: 'check-list' });
    for (const c of r.Checks || []) {
      list.append(el('li', { class: c.Ok ? 'ok' : 'err' },
        el('span', { class: 'mark', 'aria-hidden': 'true', text: c.Ok ? '✓' : '✗' }),
        el('strong', { text: `${c.Name}: ` }), el('span', { class: 'visually-hidden', text: c.Ok ? 'passed. ' : 'failed. ' }),
        c.Detail || ''));
    }
    box.replaceChildren(el('h3', { text: r.Ok ? 'Connection works' : 'Connection has problems', class: r.Ok ? 'ok' : 'err' }), list);
  } catch (e) {
    box.replaceChildren();
    formError(form, e.message);
  }
}

function confirmDialog(text) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = 'cancel';
    d.showModal();
    $('#confirm-cancel').focus();
  });
}

// SAML SP metadata (GET /sso/saml/metadata?account=IDENT)
function samlMetadataBlock() {
  return el('section', { class: 'metadata', 'aria-labelledby': 'saml-md-title' },
    el('h3', { id: 'saml-md-title', text: 'Service provider metadata' }),
    el('p', { text: 'Register this XML at your IdP (entity ID, ACS URL, NameID format).' }),
    el('pre', { id: 'saml-metadata', tabindex: '0' }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'saml-md-copy', text: 'Copy', onclick: copyMetadata }),
      el('button', { type: 'button', id: 'saml-md-download', text: 'Download', onclick: downloadMetadata })),
    el('p', { class: 'status', id: 'saml-md-status', role: 'status' }));
}

async function loadSamlMetadata() {
  const pre = $('#saml-metadata');
  try {
    const xml = await api('GET', `/sso/saml/metadata?account=${encodeURIComponent(me.Account)}`, { auth: false });
    pre.textContent = typeof xml === 'string' ? xml : JSON.stringify(xml, null, 2);
    $('#saml-md-copy').disabled = $('#saml-md-download').disabled = false;
  } catch (e) {
    pre.textContent = e.status === 404 ? 'Not available from this agent yet.' : e.message;
    $('#saml-md-copy').disabled = $('#saml-md-download').disabled = true;
  }
}

async function copyMetadata() {
  const text = $('#saml-metadata').textContent;
  const status = $('#saml-md-status');
  try { await navigator.clipboard.writeText(text); status.textContent = 'Copied.'; } catch {
    const r = document.createRange(); r.selectNodeContents($('#saml-metadata'));
    const s = getSelection(); s.removeAllRanges(); s.addRange(r);
    status.textContent = document.execCommand('copy') ? 'Copied.' : 'Selected: press Ctrl+C to copy.';
  }
}

function downloadMetadata() {
  const blob = new Blob([$('#saml-metadata').textContent], { type: 'application/samlmetadata+xml' });
  const a = el('a', { href: URL.createObjectURL(blob), download: `amove-sp-metadata-${me.Account}.xml` });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// Callback URL allow-list
async function loadCallbacks() {
  const form = $('#callbacks-form');
  clearErrors(form);
  const r = await api('GET', '/sso/callback_urls');
  form.CallbackUrls.value = (r.CallbackUrls || []).join('\n');
}

async function saveCallbacks(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearErrors(form);
  const urls = form.CallbackUrls.value.split('\n').map((s) => s.trim()).filter(Boolean);
  setBusy(form, true);
  try {
    const r = await api('PUT', '/sso/callback_urls', { json: { CallbackUrls: urls } });
    form.CallbackUrls.value = (r.CallbackUrls || []).join('\n');
    $('.status', form).textContent = 'Saved.';
  } catch (e) {
    if (e.code === 'DEFAULT' || e.code === 'SECURITY') {
      $('#callbacks-urls-error').textContent = e.messages.join(' ');
      form.CallbackUrls.setAttribute('aria-invalid', 'true');
      form.CallbackUrls.focus();
    } else formError(form, e.message);
  } finally { setBusy(form, false); }
}

// Access tokens
const fmt = (t) => (t ? new Date(t).toLocaleString() : '—');
async function loadTokens() {
  const list = await api('GET', '/sso/ttapi/tokens');
  const items = Array.isArray(list) ? list : (list.Items || list.Tokens || []);
  const tbody = $('#tokens-table tbody');
  tbody.replaceChildren();
  for (const t of items) {
    const active = !t.RevokedAt && t.Status !== 'revoked';
    tbody.append(el('tr', { 'data-id': t.Id },
      el('td', { text: String(t.Id) }), el('td', { text: t.Username || '' }),
      el('td', { text: t.GrantType + (t.Scope ? ` (${t.Scope})` : '') }),
      el('td', { text: fmt(t.CreatedAt) }), el('td', { text: fmt(t.LastUsedAt) }),
      el('td', { text: t.ExpiresAt ? fmt(t.ExpiresAt) : 'never' }), el('td', { text: t.Status || '' }),
      el('td', {}, active ? el('button', { type: 'button', class: 'danger small', text: 'Revoke',
        'aria-label': `Revoke token ${t.Id} of ${t.Username}`, onclick: () => revokeToken(t) }) : null)));
  }
  $('#panel-tokens .status').textContent = items.length ? '' : 'No access tokens.';
}

async function revokeToken(t) {
  if (!(await confirmDialog(`Revoke access token ${t.Id} of ${t.Username}? Scripts using it stop working.`))) return;
  try {
    await api('DELETE', `/sso/ttapi/tokens/${encodeURIComponent(t.Id)}`);
    $('#panel-tokens .status').textContent = `Token ${t.Id} revoked.`;
    await loadTokens().catch(() => {});
    $('#panel-tokens .status').textContent = `Token ${t.Id} revoked.`;
  } catch (e) { $('#panel-tokens .status').textContent = e.message; }
}

// Audit trail
let auditPage = 1;
async function loadAudit(page) {
  if (page < 1) return;
  const r = await api('GET', `/sso/audit?page=${page}&pageSize=25`);
  auditPage = r.Page;
  const pages = Math.max(1, Math.ceil(r.Total / r.PageSize));
  const tbody = $('#audit-table tbody');
  tbody.replaceChildren();
  for (const e of r.Items) {
    tbody.append(el('tr', { class: e.Outcome === 'ok' ? '' : 'refused' },
      el('td', { text: fmt(e.At) }), el('td', { text: e.Actor }), el('td', { text: e.Action }),
      el('td', { text: e.Outcome }), el('td', { text: e.Detail })));
  }
  $('#audit-page').textContent = `Page ${auditPage} of ${pages} (${r.Total} events)`;
  $('#audit-prev').disabled = auditPage <= 1;
  $('#audit-next').disabled = auditPage >= pages;
}
