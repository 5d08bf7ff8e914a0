// The API client of the UI's modules: fetch in a browser, the shell's `api` command in the
// desktop app; the session token; the round trips to the identity provider.
import { $, current, formError, setWho, show } from './dom.js';

/** The desktop shell (Tauri's global API), or null in a browser. */
export const TAURI = window.__TAURI__ && window.__TAURI__.core ? window.__TAURI__ : null;
export const MASK = '********';
const TOKEN_KEY = 'amove.token';

/** The agent's address as the shell names it (desktop app only). */
export let agentUrl = null;
export function setAgentUrl(url) { agentUrl = url || null; }

export class ApiError extends Error {
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

/** This page's own session token (password or SSO sign-in in this tab), if any. */
export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

// `full`: answer `{data, header(name)}` instead of the data alone (the import reads a header).
export async function api(method, path, { json, form, auth = true, full = false } = {}) {
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

function onUnauthorized() {
  if (TAURI && !token()) return;
  setToken(null);
  setWho('');
  // Also at start (a stored token that has expired, e.g. back from the IdP after a long while).
  if (current === null || current === 'admin' || current === 'notadmin') {
    show('login');
    formError($('#login-form'), 'Your session has ended. Sign in again.');
  }
}

// ---------------------------------------------------------------------------------------
// Round trips to the identity provider (browser only). SSO sign-in and import both leave
// for the agent's `Url` and come back to this page with ?code&state (or ?error); what each
// started is kept in sessionStorage under its key until the answer arrives.

export const SSO_KEY = 'amove.sso';
export const IMPORT_KEY = 'amove.import';

/** This page without query or fragment: the CallbackUrl of both round trips. */
export function ownCallback() { return `${location.origin}${location.pathname}`; }

/** Remembers the round trip the agent's answer `r` ({Url, Identifier}) starts, and goes. */
export function leaveForIdp(key, r, extra = {}) {
  // The IdP hands `state` (OIDC) or `RelayState` (SAML, which the agent returns as
  // `state`) back: the answer must carry the one of this round trip.
  const u = new URL(r.Url);
  const state = u.searchParams.get('state') || u.searchParams.get('RelayState');
  sessionStorage.setItem(key, JSON.stringify({ identifier: r.Identifier, callback: ownCallback(), state, ...extra }));
  location.assign(r.Url);
}

/** The round trip pending under `key`, or null. */
export function pendingTrip(key) {
  try { return JSON.parse(sessionStorage.getItem(key) || 'null'); } catch { return null; }
}

/** Whether the answer's query `q` is the one to `pending`: the state the agent put in the URL
 *  came back. Anything else (a link forged from another sign-in) must not be redeemed. */
export function answers(pending, q) {
  return !!pending && q.get('state') === pending.state;
}
