// Amove agent web UI: the desktop app's windows (sign-in, first run, admin) and the same
// admin pages in a browser at http://localhost:29123/ui/. No framework, no build step, no
// external resources: ES modules, one per screen family, loaded from this entry point.
//
//   api.js        the API client (fetch, or the shell's IPC), session token, IdP round trips
//   dom.js        DOM helpers, views, form errors, the confirmation dialog
//   admin.js      who is signed in, the admin tabs
//   signin.js     password and SSO sign-in, sign-out, the desktop sign-in and first-run screens
//   providers.js  the Okta, Entra ID and SAML forms, SAML SP metadata
//   import.js     the Import tab
//   network.js    the Network tab (the proxy of IdP requests)
//   callbacks.js  the callback URL allow-list
//   access.js     the sign-in settings (AutoProvision, AdminGroups, session lifetime)
//   tokens.js     access tokens and the audit trail
import {
  ApiError, IMPORT_KEY, SSO_KEY, TAURI, answers, pendingTrip, setAgentUrl, token,
} from './api.js';
import { wireAccess } from './access.js';
import { enterAdmin, wireTabs } from './admin.js';
import { wireCallbacks } from './callbacks.js';
import { $, $$, current, show } from './dom.js';
import { finishImportSignIn, wireImport } from './import.js';
import { wireNetwork } from './network.js';
import './providers.js'; // registers the Okta, Entra ID and SAML tabs
import { finishSso, signinFinished, wireSignIn } from './signin.js';
import { wireAudit } from './tokens.js';

// A module script runs once the document is parsed: the elements are there.
for (const b of $$('.close-window')) b.addEventListener('click', closeWindow);
wireSignIn();
wireCallbacks();
wireAccess();
wireNetwork();
wireAudit();
wireImport();
wireTabs();
start().catch((e) => {
  if (e instanceof ApiError && e.status === 401) return; // the API client showed the sign-in
  show('error'); $('#error-message').textContent = e.message || String(e);
});

function closeWindow() {
  if (TAURI) TAURI.core.invoke('close_window'); else window.close();
}

let following = false;
async function start() {
  if (!TAURI) return startBrowser();
  const st = await TAURI.core.invoke('app_state');
  setAgentUrl(st.agentUrl);
  if (st.view === 'error') {
    $('#error-message').textContent = st.error || 'The agent could not start.';
    $('#error-port-hint').hidden = !/already in use/.test(st.error || '');
    return show('error');
  }
  if (st.view === 'signin') {
    if (st.session) $('#signin-status').textContent = `Signed in as ${st.session.name} — ${st.session.account}, until ${st.session.until}. Sign in again to switch user.`;
    else if (st.expired) $('#signin-status').textContent = 'Your session has ended. Sign in again.';
    if (st.forceAuthn) {
      // Sign in as someone else…: the IdP asks for credentials again; no email filled in.
      $('#signin-title').textContent = 'Sign in as someone else';
      $('#signin-form').dataset.force = '1';
    } else if (st.lastUsername) $('#signin-username').value = st.lastUsername;
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
  if (q.has('code') || q.has('error')) {
    // Sign-in and import both come back to this page: the pending one whose `state` matches
    // is the one answered.
    const imp = pendingTrip(IMPORT_KEY);
    if (imp && (!pendingTrip(SSO_KEY) || answers(imp, q))) return finishImportSignIn(q, imp);
    return finishSso(q);
  }
  if (token()) return enterAdmin();
  show('login');
}
