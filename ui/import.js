// The Import tab: sign in at the identity provider, read its users and groups, search and
// choose whom to import, import them in batches, show the outcome.
//
// In a browser: POST /sso/sso_url_import_user with this page as the CallbackUrl, sign in at
// the IdP, come back here with ?code&state, GET /sso/get_user_usergroups (its Import-Id
// header names the read), choose users, POST /usergroup/import_users. The desktop window
// cannot be redirected to the IdP and back (its origin is tauri://localhost), so there the
// tab opens this page in the system browser instead (docs/desktop.md).
import {
  IMPORT_KEY, TAURI, agentUrl, answers, api, leaveForIdp, ownCallback, token,
} from './api.js';
import { enterAdmin, me, tabLoader } from './admin.js';
import { $, $$, el, formError, show } from './dom.js';
import { PROVIDERS, getProvider } from './providers.js';

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

tabLoader('import', loadImport);

export function wireImport() {
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

async function loadImport() {
  $('#import-start').hidden = !!TAURI;
  $('#import-desktop').hidden = !TAURI;
  if (TAURI) {
    $('#import-browser-url').textContent = `${agentUrl || 'http://localhost:29123'}/ui/#import`;
    return;
  }
  const found = await Promise.all(Object.keys(PROVIDERS).map(async (name) => {
    const cfg = await getProvider(name);
    return cfg && cfg.Active ? name : null;
  }));
  const active = found.find(Boolean);
  imp.provider = active ? PROVIDERS[active].label : null;
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
    const r = await api('POST', '/sso/sso_url_import_user', { json: { CallbackUrl: ownCallback() } });
    leaveForIdp(IMPORT_KEY, r);
  } catch (e) {
    importMessage(e.message);
    b.disabled = false;
    b.focus();
  }
}

/** Back from the IdP with ?code&state (or ?error): redeem the code, read the directory. */
export async function finishImportSignIn(q, pending) {
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
