// Amove agent web UI: the desktop app's windows (sign-in, first run, admin) and the same
// admin pages in a browser at http://localhost:29123/ui/. No framework, no external resources.
'use strict';

const TAURI = window.__TAURI__ && window.__TAURI__.core ? window.__TAURI__ : null;
const TOKEN_KEY = 'amove.token';
const SSO_KEY = 'amove.sso';
const IMPORT_KEY = 'amove.import';
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

// `full`: answer `{data, header(name)}` instead of the data alone (the import reads a header).
async function api(method, path, { json, form, auth = true, full = false } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (form) { headers['Content-Type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(form).toString(); }
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  let status, text, code, header;
  if (TAURI) {
    const r = await TAURI.core.invoke('api', { request: { method, path, headers, body: body ?? null } });
    ({ status, body: text } = r);
    code = r.errorCode;
    header = (n) => (n.toLowerCase() === 'content-type' ? r.contentType : null);
  } else {
    const r = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
    status = r.status; text = await r.text(); code = r.headers.get('error-code');
    header = (n) => r.headers.get(n);
  }
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (status >= 200 && status < 300) return full ? { data, header } : data;
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
  // Also at start (a stored token that has expired, e.g. back from the IdP after a long while).
  if (current === null || current === 'admin' || current === 'notadmin') {
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
  start().catch((e) => {
    if (e instanceof ApiError && e.status === 401) return; // onUnauthorized showed the sign-in
    show('error'); $('#error-message').textContent = e.message || String(e);
  });
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
  wireImport();
  wireTabs();
}

function closeWindow() {
  if (TAURI) TAURI.core.invoke('close_window'); else window.close();
}

let following = false;
let agentUrl = null;
async function start() {
  if (!TAURI) return startBrowser();
  const st = await TAURI.core.invoke('app_state');
  agentUrl = st.agentUrl || null;
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

const readJson = (key) => { try { return JSON.parse(sessionStorage.getItem(key) || 'null'); } catch { return null; } };

// The IdP hands `state` (OIDC) or `RelayState` (SAML, which the agent returns as `state`)
// back: the answer must carry the one of the sign-in or import started here.
function stateOf(url) {
  const u = new URL(url);
  return u.searchParams.get('state') || u.searchParams.get('RelayState');
}
const answers = (pending, q) => !!pending && q.get('state') === pending.state;

async function startBrowser() {
  const q = new URLSearchParams(location.search);
  if (q.has('code') || q.has('error')) {
    // Sign-in and import both come back to this page: the pending one whose `state` matches
    // is the one answered.
    const imp = readJson(IMPORT_KEY);
    if (imp && (!readJson(SSO_KEY) || q.get('state') === imp.state)) return finishImportSignIn(q, imp);
    return finishSso(q);
  }
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
    sessionStorage.setItem(SSO_KEY, JSON.stringify({ identifier: r.Identifier, callback: ownCallback(), state: stateOf(r.Url), hash: location.hash }));
    location.assign(r.Url);
  } catch (e) {
    formError(form, e.message);
    setBusy(form, false);
  }
}

async function finishSso(q) {
  const pending = readJson(SSO_KEY);
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
// Opens the admin pages on `tab`, else on the tab the URL's fragment names (#import), else Okta.
async function enterAdmin(tab) {
  me = await api('GET', '/sso/whoami');
  setWho(`${me.DisplayName} — ${me.Account}`);
  if (!me.IsAdmin) return show('notadmin');
  const fromUrl = location.hash.slice(1);
  const name = TABS.includes(tab) ? tab : (TABS.includes(fromUrl) ? fromUrl : 'okta');
  const loading = selectTab(name); // marks the tab selected at once, so show() focuses it
  show('admin');
  await loading;
}

const TABS = ['okta', 'entraId', 'saml', 'import', 'callbacks', 'tokens', 'audit'];
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
  // The URL names the tab, so a reload or a link (…/ui/#import) comes back to it.
  if (location.hash !== `#${name}`) history.replaceState(null, '', `${location.pathname}${location.search}#${name}`);
  // While a tab loads, its panel is busy and its buttons are off: nothing the user
  // submits can race the load that is about to fill the form.
  const panel = $(`#panel-${name}`);
  panel.setAttribute('aria-busy', 'true');
  const forms = $$('form', panel);
  for (const f of forms) setBusy(f, true);
  try {
    if (PROVIDERS[name]) await loadProvider(name);
    if (name === 'import') await loadImport();
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
      { name: 'AllowedTenants', label: 'Allowed tenant IDs (required for a common/organizations URL)', list: true,
        hint: 'Directory (tenant) IDs whose users may sign in, separated by commas or spaces' },
    ],
  },
  saml: {
    title: 'SAML 2.0', path: 'saml',
    fields: [
      { name: 'IdPSSOURL', label: 'IdP single sign-on URL', required: true, type: 'url' },
      { name: 'SPEntityId', label: 'SP entity ID (this agent, as registered at the IdP)', required: true },
      { name: 'IdPEntityId', label: 'IdP entity ID (optional; checked against the response Issuer)' },
      { name: 'GroupsAttribute', label: 'Groups attribute (optional)',
        hint: 'Default: the first of groups, memberOf, the Microsoft groups claim, isMemberOf' },
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
  for (const f of PROVIDERS[name].fields) {
    const v = cfg ? (cfg[f.name] ?? '') : '';
    form[f.name].value = Array.isArray(v) ? v.join(', ') : v;
  }
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
    if (f.list) body[f.name] = v.split(/[\s,]+/).filter(Boolean);
    else if (v || !f.secret) body[f.name] = v === '' && !f.required ? null : v;
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

// ---------------------------------------------------------------------------------------
// Import users and groups from the identity provider
//
// In a browser: POST /sso/sso_url_import_user with this page as the CallbackUrl, sign in at
// the IdP, come back here with ?code&state, GET /sso/get_user_usergroups (its Import-Id
// header names the read), choose users, POST /usergroup/import_users. The desktop window
// cannot be redirected to the IdP and back (its origin is tauri://localhost), so there the
// tab opens this page in the system browser instead (docs/desktop.md).

// Rows rendered at a time: a 10,000-user directory stays responsive; "Show more" and the
// search reach the rest.
const IMPORT_PAGE_ROWS = 200;
// The agent's JSON bodies are limited (64 KiB by default): a large selection is sent in
// batches of at most this many bytes of ids.
const IMPORT_BATCH_BYTES = 32 * 1024;
// Created/updated users listed in the result (the counts are always complete).
const IMPORT_LIST_CAP = 500;

const imp = {
  provider: null, // label of the active provider
  importId: null, // the Import-Id of the current directory read
  rows: [], // {id, name, email, username, groups, hay}
  byId: new Map(),
  byEmail: new Map(),
  matching: [],
  limit: IMPORT_PAGE_ROWS,
  selected: new Set(),
  busy: false,
};

function wireImport() {
  $('#import-begin').addEventListener('click', beginImport);
  $('#import-open-browser').addEventListener('click', openImportInBrowser);
  let t = null;
  $('#import-search').addEventListener('input', () => { clearTimeout(t); t = setTimeout(filterImport, 150); });
  $('#import-search').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); clearTimeout(t); filterImport(); }
  });
  $('#import-table tbody').addEventListener('change', (ev) => {
    const cb = ev.target.closest('input[type=checkbox][data-id]');
    if (!cb) return;
    if (cb.checked) imp.selected.add(cb.dataset.id); else imp.selected.delete(cb.dataset.id);
    updateImportSelection();
  });
  $('#import-all').addEventListener('change', (ev) => {
    const on = ev.currentTarget.checked;
    for (const cb of $$('#import-table tbody input[data-id]')) {
      cb.checked = on;
      if (on) imp.selected.add(cb.dataset.id); else imp.selected.delete(cb.dataset.id);
    }
    updateImportSelection();
  });
  $('#import-select-matching').addEventListener('click', () => {
    for (const r of imp.matching) imp.selected.add(r.id);
    for (const cb of $$('#import-table tbody input[data-id]')) cb.checked = true;
    updateImportSelection();
    $('#import-status').textContent = `${imp.matching.length.toLocaleString()} users selected.`;
  });
  $('#import-clear').addEventListener('click', () => {
    imp.selected.clear();
    for (const cb of $$('#import-table tbody input[data-id]')) cb.checked = false;
    updateImportSelection();
    $('#import-status').textContent = 'Selection cleared.';
  });
  $('#import-more').addEventListener('click', showMoreImportRows);
  $('#import-run').addEventListener('click', runImport);
}

const PROVIDER_LABELS = { okta: 'Okta', entraId: 'Entra ID', saml: 'SAML' };

async function loadImport() {
  $('#import-start').hidden = !!TAURI;
  $('#import-desktop').hidden = !TAURI;
  if (TAURI) {
    $('#import-browser-url').textContent = `${agentUrl || 'http://localhost:29123'}/ui/#import`;
    return;
  }
  const found = await Promise.all(Object.keys(PROVIDER_LABELS).map(async (name) => {
    const cfg = await api('GET', `/sso/get_${PROVIDERS[name].path}`);
    return cfg && cfg.Active ? name : null;
  }));
  const active = found.find(Boolean);
  imp.provider = active ? PROVIDER_LABELS[active] : null;
  const p = $('#import-provider');
  if (!active) {
    p.textContent = 'No identity provider is active. Set one up and mark it Active (Okta, Entra ID or SAML tab) to import from it.';
  } else if (active === 'saml') {
    p.textContent = 'Imports from SAML (the active provider). SAML has no directory to read: the import brings in the one user who signs in, with the groups their assertion names.';
  } else {
    p.textContent = `Imports from ${imp.provider}, the active provider: every user of its directory, with their groups.`;
  }
  $('#import-begin').disabled = !active || imp.busy;
  $('#import-begin').textContent = imp.rows.length ? 'Read the directory again' : 'Read the directory';
}

// The agent's messages start in lower case ("the IdP refused …"): shown as sentences.
function importMessage(msg, { status = '' } = {}) {
  $('#import-error').textContent = msg ? msg[0].toUpperCase() + msg.slice(1) : '';
  $('#import-status').textContent = status;
}

async function beginImport() {
  importMessage('');
  const b = $('#import-begin');
  b.disabled = true;
  $('#import-status').textContent = 'Going to your identity provider…';
  try {
    const callback = ownCallback();
    const r = await api('POST', '/sso/sso_url_import_user', { json: { CallbackUrl: callback } });
    sessionStorage.setItem(IMPORT_KEY, JSON.stringify({ identifier: r.Identifier, callback, state: stateOf(r.Url) }));
    location.assign(r.Url);
  } catch (e) {
    importMessage(e.message);
    b.disabled = false;
    b.focus();
  }
}

// Back from the IdP with ?code&state (or ?error): redeem the code, read the directory.
async function finishImportSignIn(q, pending) {
  sessionStorage.removeItem(IMPORT_KEY);
  history.replaceState(null, '', `${location.pathname}#import`); // the code must not stay in the URL
  if (!token()) {
    show('login');
    return formError($('#login-form'), 'Your session ended while you were at the identity provider. Sign in, then start the import again.');
  }
  await enterAdmin('import');
  if (!me || !me.IsAdmin) return;
  if (q.has('error')) {
    importMessage(`The identity provider did not let the import read the directory: ${q.get('error_description') || q.get('error')}`);
  } else if (!answers(pending, q)) {
    importMessage('This answer from the identity provider does not belong to the import started here. Start the import again.');
  } else {
    return readDirectory(pending, q.get('code'));
  }
  $('#import-begin').focus(); // the alert is read; the way to start again is at hand
}

async function readDirectory(pending, code) {
  const panel = $('#panel-import');
  imp.busy = true;
  panel.setAttribute('aria-busy', 'true');
  $('#import-begin').disabled = true;
  importMessage('', { status: 'Reading the directory… a large one takes a while.' });
  try {
    const qs = new URLSearchParams({ authorizationCode: code || '', callbackUrl: pending.callback, identifier: pending.identifier });
    const r = await api('GET', `/sso/get_user_usergroups?${qs}`, { full: true });
    imp.importId = Number(r.header('Import-Id')) || null;
    if (!imp.importId) throw new Error('The agent did not name this directory read (no Import-Id); read the directory again.');
    setDirectory(Array.isArray(r.data) ? r.data : []);
  } catch (e) {
    importMessage(e.message);
  } finally {
    imp.busy = false;
    $('#import-begin').disabled = !imp.provider;
    $('#import-begin').textContent = imp.rows.length ? 'Read the directory again' : 'Read the directory';
    panel.setAttribute('aria-busy', 'false');
  }
  if ($('#import-error').textContent) $('#import-begin').focus();
}

function setDirectory(list) {
  const groups = new Set();
  imp.rows = list.map((entry) => {
    const u = entry.User || {};
    const gs = (entry.UserGroups || []).map((g) => { groups.add(g.ExternalId || g.Name); return g.Name || g.ExternalId || ''; });
    const name = [u.Firstname, u.Lastname].filter(Boolean).join(' ') || u.Username || u.Email || '';
    const email = u.Email || u.Username || '';
    const row = { id: String(u.ExternalId), name, email, username: u.Username || '', groups: gs };
    // One lower-case string per user, built once: the search is a substring test on it.
    row.hay = [name, email, row.username, ...gs].join('\n').toLowerCase();
    return row;
  });
  imp.byId = new Map(imp.rows.map((r) => [r.id, r]));
  imp.byEmail = new Map(imp.rows.map((r) => [r.email.toLowerCase(), r]));
  imp.selected.clear();
  $('#import-result').hidden = true;
  $('#import-summary').textContent = `${imp.rows.length.toLocaleString()} users in ${groups.size.toLocaleString()} groups, read from ${imp.provider || 'the identity provider'} at ${new Date().toLocaleTimeString()}. This read can be imported for an hour; after that, read the directory again.`;
  $('#import-search').value = '';
  $('#import-directory').hidden = false;
  filterImport();
  importMessage('', { status: `Directory read: ${imp.rows.length.toLocaleString()} users.` });
  $('#import-search').focus();
}

function filterImport() {
  const terms = $('#import-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  imp.matching = terms.length ? imp.rows.filter((r) => terms.every((t) => r.hay.includes(t))) : imp.rows;
  imp.limit = IMPORT_PAGE_ROWS;
  const frag = document.createDocumentFragment();
  for (const r of imp.matching.slice(0, imp.limit)) frag.append(importRow(r));
  $('#import-table tbody').replaceChildren(frag);
  updateImportCounts(terms.length > 0);
  updateImportSelection();
}

function showMoreImportRows() {
  const from = imp.limit;
  imp.limit += IMPORT_PAGE_ROWS;
  const frag = document.createDocumentFragment();
  for (const r of imp.matching.slice(from, imp.limit)) frag.append(importRow(r));
  const first = frag.firstElementChild;
  $('#import-table tbody').append(frag);
  updateImportCounts($('#import-search').value.trim() !== '');
  updateImportSelection();
  // Keyboard users carry on from the first row that appeared.
  if (first) $('input', first).focus();
}

function importRow(r) {
  return el('tr', {},
    el('td', { class: 'pick' }, el('input', { type: 'checkbox', 'data-id': r.id, checked: imp.selected.has(r.id),
      'aria-label': `Select ${r.name} (${r.email})` })),
    el('td', { text: r.name }), el('td', { text: r.email }),
    el('td', { text: r.groups.length ? r.groups.join(', ') : '—' }));
}

function updateImportCounts(searching) {
  const total = imp.rows.length, n = imp.matching.length, shown = Math.min(imp.limit, n);
  let text = searching ? `${n.toLocaleString()} of ${total.toLocaleString()} users match.` : `${total.toLocaleString()} users.`;
  if (n === 0 && searching) text = `No user matches; ${total.toLocaleString()} users in all.`;
  if (shown < n) text += ` Showing the first ${shown.toLocaleString()}: refine the search, or show more.`;
  $('#import-count').textContent = text;
  const more = $('#import-more');
  more.hidden = shown >= n;
  more.textContent = `Show ${Math.min(IMPORT_PAGE_ROWS, n - shown).toLocaleString()} more`;
  const all = $('#import-select-matching');
  all.hidden = n <= shown;
  all.textContent = `Select all ${n.toLocaleString()} matching`;
}

function updateImportSelection() {
  const boxes = $$('#import-table tbody input[data-id]');
  const on = boxes.filter((b) => b.checked).length;
  const head = $('#import-all');
  head.disabled = boxes.length === 0;
  head.checked = boxes.length > 0 && on === boxes.length;
  head.indeterminate = on > 0 && on < boxes.length;
  head.setAttribute('aria-label', `Select all ${boxes.length.toLocaleString()} shown users`);
  const k = imp.selected.size;
  $('#import-clear').disabled = k === 0;
  const run = $('#import-run');
  run.disabled = k === 0 || imp.busy;
  run.textContent = k === 0 ? 'Import selected users' : `Import ${k.toLocaleString()} selected ${k === 1 ? 'user' : 'users'}`;
}

// The selected ids in batches that fit the agent's body limit; everyone: no list at all.
function importBatches() {
  if (imp.selected.size === imp.rows.length) return [null];
  const batches = [];
  let cur = [], bytes = 0;
  for (const id of imp.selected) {
    const size = JSON.stringify(id).length + 1;
    if (cur.length && bytes + size > IMPORT_BATCH_BYTES) { batches.push(cur); cur = []; bytes = 0; }
    cur.push(id); bytes += size;
  }
  if (cur.length) batches.push(cur);
  return batches;
}

async function runImport() {
  if (!imp.importId || imp.selected.size === 0) return;
  const panel = $('#panel-import');
  const batches = importBatches();
  const total = { Created: [], Updated: [], Skipped: [], Groups: 0, RemovedAtIdP: [] };
  imp.busy = true;
  panel.setAttribute('aria-busy', 'true');
  for (const b of $$('button', panel)) b.disabled = true;
  importMessage('', { status: `Importing ${imp.selected.size.toLocaleString()} users…` });
  let failed = null, done = 0;
  try {
    for (const ids of batches) {
      if (batches.length > 1) $('#import-status').textContent = `Importing… batch ${done + 1} of ${batches.length}`;
      const body = { ImportId: imp.importId };
      if (ids) body.ExternalIds = ids;
      const r = await api('POST', '/usergroup/import_users', { json: body });
      total.Created.push(...(r.Created || []));
      total.Updated.push(...(r.Updated || []));
      total.Skipped.push(...(r.Skipped || []));
      total.Groups = r.Groups || 0;
      total.RemovedAtIdP = r.RemovedAtIdP || [];
      done++;
    }
  } catch (e) { failed = e; }
  if (batches.length > 1) total.Groups = groupsOf([...total.Created, ...total.Updated]);
  imp.busy = false;
  for (const b of $$('button', panel)) b.disabled = false;
  $('#import-begin').disabled = !imp.provider;
  updateImportCounts($('#import-search').value.trim() !== '');
  updateImportSelection();
  panel.setAttribute('aria-busy', 'false');
  if (failed && done === 0) {
    importMessage(failed.message);
    $('#import-run').focus();
    return;
  }
  showImportResult(total);
  if (failed) {
    importMessage(`The import stopped after ${done} of ${batches.length} batches: ${failed.message} The users counted below were imported.`);
  } else {
    $('#import-status').textContent = `Import finished: ${total.Created.length} created, ${total.Updated.length} updated, ${total.Skipped.length} skipped.`;
  }
  $('#import-result-title').focus();
}

// Distinct groups of the imported users (what the agent counts), for a batched import.
function groupsOf(emails) {
  const seen = new Set();
  for (const e of emails) for (const g of (imp.byEmail.get(String(e).toLowerCase()) || { groups: [] }).groups) seen.add(g);
  return seen.size;
}

// A user as the result names it (email, or the IdP's id when its email was unusable).
function describeUser(u) {
  const r = imp.byEmail.get(String(u).toLowerCase()) || imp.byId.get(String(u));
  return r && r.name && r.name !== r.email ? `${r.name} (${r.email || u})` : String(u);
}

function listOf(items) {
  const ul = el('ul', { class: 'plain-list' });
  for (const u of items.slice(0, IMPORT_LIST_CAP)) ul.append(el('li', { text: describeUser(u) }));
  if (items.length > IMPORT_LIST_CAP) ul.append(el('li', { text: `…and ${(items.length - IMPORT_LIST_CAP).toLocaleString()} more` }));
  return ul;
}

function listDetails(title, items, id) {
  return el('details', { id }, el('summary', { text: `${title} (${items.length.toLocaleString()})` }), listOf(items));
}

function showImportResult(r) {
  $('#import-created').textContent = r.Created.length.toLocaleString();
  $('#import-updated').textContent = r.Updated.length.toLocaleString();
  $('#import-skipped').textContent = r.Skipped.length.toLocaleString();
  $('#import-groups').textContent = r.Groups.toLocaleString();
  const box = $('#import-result-lists');
  box.replaceChildren();
  if (r.Skipped.length) {
    const tbody = el('tbody');
    for (const s of r.Skipped.slice(0, IMPORT_LIST_CAP)) tbody.append(el('tr', {}, el('td', { text: describeUser(s.User) }), el('td', { text: s.Reason })));
    if (r.Skipped.length > IMPORT_LIST_CAP) tbody.append(el('tr', {}, el('td', { colspan: '2', text: `…and ${(r.Skipped.length - IMPORT_LIST_CAP).toLocaleString()} more` })));
    box.append(el('h4', { id: 'import-skipped-title', text: 'Skipped, and why' }),
      el('div', { class: 'table-wrap' }, el('table', { id: 'import-skipped-table', 'aria-labelledby': 'import-skipped-title' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'User' }), el('th', { scope: 'col', text: 'Reason' }))), tbody)));
  }
  if (r.RemovedAtIdP.length) {
    box.append(el('section', { id: 'import-removed', 'aria-labelledby': 'import-removed-title' },
      el('h4', { id: 'import-removed-title', text: `No longer at the identity provider (${r.RemovedAtIdP.length.toLocaleString()})` }),
      el('p', { text: 'These users of the account are linked to this identity provider, but its directory no longer lists them. They were not deleted: an import never deletes anyone. If they have left, deactivate them (amove-agent user disable).' }),
      listOf(r.RemovedAtIdP)));
  }
  if (r.Created.length) box.append(listDetails('Created users', r.Created, 'import-created-list'));
  if (r.Updated.length) box.append(listDetails('Updated users', r.Updated, 'import-updated-list'));
  $('#import-result').hidden = false;
}

async function openImportInBrowser() {
  const status = $('#import-status');
  importMessage('');
  try {
    await TAURI.core.invoke('open_import_in_browser');
    status.textContent = 'Opened in your browser: sign in there as an admin to continue.';
  } catch (e) {
    importMessage(`The browser could not be opened (${e}). Open the address above yourself.`);
  }
}
