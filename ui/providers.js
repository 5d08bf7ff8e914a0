// The identity provider tabs: the Okta, Entra ID and SAML forms (create, view with the
// secret masked, update, delete, test connection) and the SAML SP metadata.
import { MASK, api } from './api.js';
import { me, tabLoader } from './admin.js';
import { $, clearErrors, confirmDialog, el, formError, setBusy, showFieldErrors } from './dom.js';
import { lockForm, managedBy, policyStatus } from './managed.js';

// Every seed field of each provider. `secret`: write-only; `cert`: PEM textarea.
export const PROVIDERS = {
  okta: {
    title: 'Okta (OpenID Connect)', label: 'Okta', path: 'okta', policyKey: 'Okta',
    fields: [
      { name: 'ClientId', label: 'Client ID', required: true },
      { name: 'ClientSecret', label: 'Client secret (empty for a native app: recommended)', secret: true,
        hint: 'A native/public app needs no secret (PKCE); clear the field to remove a stored one' },
      { name: 'OpenIdURL', label: 'OpenID configuration URL', required: true, type: 'url',
        hint: 'https://YOUR-TENANT.okta.com/.well-known/openid-configuration' },
    ],
  },
  entraId: {
    title: 'Microsoft Entra ID (OpenID Connect)', label: 'Entra ID', path: 'entraId', policyKey: 'EntraId',
    fields: [
      { name: 'ClientId', label: 'Application (client) ID', required: true },
      { name: 'ClientSecret', label: 'Client secret (empty for a "Mobile and desktop" app: recommended)', secret: true,
        hint: 'A public client needs no secret (PKCE); clear the field to remove a stored one' },
      { name: 'OpenIdURL', label: 'OpenID configuration URL', required: true, type: 'url',
        hint: 'https://login.microsoftonline.com/TENANT-ID/v2.0/.well-known/openid-configuration' },
      { name: 'GraphURL', label: 'Microsoft Graph URL (optional)', type: 'url', hint: 'Default: https://graph.microsoft.com' },
      { name: 'AllowedTenants', label: 'Allowed tenant IDs (required for a common/organizations URL)', list: true,
        hint: 'Directory (tenant) IDs whose users may sign in, separated by commas or spaces' },
    ],
  },
  saml: {
    title: 'SAML 2.0', label: 'SAML', path: 'saml', policyKey: 'Saml',
    fields: [
      { name: 'IdPMetadataURL', label: 'IdP metadata URL (optional; fills the fields below)', type: 'url',
        hint: 'The IdP\'s SAML metadata (https). Read again every 12 hours: a new signing certificate becomes the next certificate' },
      { name: 'IdPMetadataXML', label: 'Or paste the IdP metadata XML (optional; not stored)', cert: true, transient: true },
      { name: 'IdPSSOURL', label: 'IdP single sign-on URL (HTTP-Redirect; from the metadata when given)', type: 'url' },
      { name: 'SPEntityId', label: 'SP entity ID (this agent, as registered at the IdP)', required: true },
      { name: 'IdPEntityId', label: 'IdP entity ID (optional; checked against the response Issuer)' },
      { name: 'GroupsAttribute', label: 'Groups attribute (optional)',
        hint: 'Default: the first of groups, memberOf, the Microsoft groups claim, isMemberOf' },
      { name: 'Certificate', label: 'IdP signing certificate (PEM or base64; from the metadata when given)', cert: true },
      { name: 'NextCertificate', label: 'Next signing certificate (optional, for a rollover)', cert: true },
      { name: 'AllowExpiredCertificate', label: 'Accept an expired IdP certificate (only for an IdP that never rotates)', check: true },
      { name: 'RequireEncryptedAssertions', label: 'Require encrypted assertions (give the IdP the encryption certificate from the SP metadata)', check: true },
      { name: 'SignAuthnRequests', label: 'Sign AuthnRequests (give the IdP the signing certificate from the SP metadata)', check: true },
    ],
  },
};
const loaded = {};

for (const name of Object.keys(PROVIDERS)) tabLoader(name, loadProvider);

/** The stored configuration of provider `name` (null when there is none). */
export function getProvider(name) { return api('GET', `/sso/get_${PROVIDERS[name].path}`); }

function providerForm(name) {
  const spec = PROVIDERS[name];
  const panel = $(`#panel-${name}`);
  panel.replaceChildren();
  panel.append(el('h2', { text: spec.title }));
  const form = el('form', { novalidate: true, id: `form-${name}` });
  for (const f of spec.fields) {
    const id = `${name}-${f.name}`;
    if (f.check) {
      form.append(el('div', { class: 'field checkbox' },
        el('input', { id, name: f.name, type: 'checkbox', 'aria-describedby': `${id}-error` }),
        el('label', { for: id, text: f.label }),
        el('p', { class: 'field-error', id: `${id}-error` })));
      continue;
    }
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
  if (name === 'saml') {
    form.append(el('div', { class: 'field' }, el('span', { class: 'label', text: 'ACS URL (register at your IdP)' }),
      el('code', { id: 'saml-acs' })));
    form.append(el('div', { class: 'field' }, el('span', { class: 'label', text: 'IdP certificates in use' }),
      el('ul', { id: 'saml-idp-certs', class: 'cert-list' })));
  }
  form.append(el('p', { class: 'form-error', role: 'alert' }));
  form.append(el('p', { class: 'status', role: 'status', 'aria-live': 'polite' }));
  form.append(el('div', { class: 'actions' },
    el('button', { type: 'submit', class: 'primary', id: `${name}-save`, text: 'Save' }),
    el('button', { type: 'button', id: `${name}-test`, text: 'Test connection', onclick: () => testConnection(name) }),
    name === 'saml' ? el('button', { type: 'button', id: 'saml-refresh', text: 'Refresh from metadata', onclick: refreshMetadata }) : null,
    el('button', { type: 'button', id: `${name}-delete`, class: 'danger', text: 'Delete', onclick: () => deleteProvider(name) })));
  form.append(el('div', { class: 'checks', id: `${name}-checks`, 'aria-live': 'polite' }));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); saveProvider(name); });
  panel.append(form);
  if (name === 'saml') panel.append(samlMetadataBlock(), spKeysBlock());
  return form;
}

async function loadProvider(name) {
  const form = $(`#form-${name}`) || providerForm(name);
  clearErrors(form);
  const [cfg, policy] = await Promise.all([getProvider(name), policyStatus()]);
  loaded[name] = cfg;
  fillProvider(name, form, cfg);
  // Test connection changes nothing, so it stays usable on a managed configuration.
  lockForm(form, managedBy(PROVIDERS[name].policyKey, cfg, policy), { none: !cfg, keep: [`${name}-test`] });
  if (name === 'saml') { loadSamlMetadata(); loadSpKeys(); }
}

/** One line per certificate: subject, expiry, and a warning under 30 days. */
function certItem(label, subject, notAfter, daysLeft) {
  const soon = daysLeft < 30;
  return el('li', { class: soon ? 'err' : 'ok' },
    el('strong', { text: `${label}: ` }), `${subject} — until ${notAfter.slice(0, 10)} `,
    el('span', { class: soon ? 'warning' : '', text: daysLeft < 0 ? '(expired)' : `(${daysLeft} days left${soon ? ': plan the rollover' : ''})` }));
}

function showIdpCertificates(cfg) {
  const list = $('#saml-idp-certs');
  if (!list) return;
  const certs = (cfg && cfg.IdPCertificates) || [];
  list.replaceChildren(...(certs.length ? certs.map((c) => certItem(c.Field, c.Subject, c.NotAfter, c.DaysLeft))
    : [el('li', { text: 'None yet.' })]));
  const refresh = $('#saml-refresh');
  if (refresh) refresh.hidden = !(cfg && cfg.IdPMetadataURL);
}

async function refreshMetadata() {
  const form = $('#form-saml');
  clearErrors(form);
  try {
    const r = await api('POST', '/sso/saml/refresh_metadata');
    await loadProvider('saml');
    $('.status', form).textContent = r.Changes && r.Changes.length ? `Updated: ${r.Changes.join('; ')}` : 'Up to date with the IdP metadata.';
  } catch (e) { formError(form, e.message); }
}

// The agent's SP key pairs (GET /sso/saml/sp_keys): certificates with expiry, rotation.
function spKeysBlock() {
  return el('section', { class: 'metadata', 'aria-labelledby': 'saml-sp-keys-title' },
    el('h3', { id: 'saml-sp-keys-title', text: 'Agent (SP) certificates' }),
    el('p', { text: 'Signing: give it to an IdP that requires signed AuthnRequests. Encryption: give it to an IdP that encrypts assertions.' }),
    el('ul', { id: 'saml-sp-keys', class: 'cert-list' }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'saml-sp-rotate', text: 'Roll the SP keys…', onclick: rotateSpKeys }),
      el('button', { type: 'button', id: 'saml-sp-finish', text: 'Finish the rotation', onclick: finishRotation })),
    el('p', { class: 'status', id: 'saml-sp-status', role: 'status' }));
}

async function loadSpKeys(view) {
  const list = $('#saml-sp-keys');
  try {
    const r = view || await api('GET', '/sso/saml/sp_keys');
    const keys = r.Keys || [];
    list.replaceChildren(...keys.map((k) => certItem(
      `${k.Use}${k.Status === 'retiring' ? ` (retiring ${k.RetireAt.slice(0, 10)})` : ''}${k.Signs ? ', signs now' : ''}`,
      k.Subject, k.NotAfter, k.DaysLeft)));
    $('#saml-sp-finish').hidden = !keys.some((k) => k.Status === 'retiring');
    $('#saml-sp-rotate').hidden = keys.some((k) => k.Status === 'retiring');
  } catch (e) { list.replaceChildren(el('li', { text: e.status === 404 ? 'Set up SAML first.' : e.message })); }
}

async function rotateSpKeys() {
  if (!(await confirmDialog('Generate new SP keys? The new certificates are published next to the current ones for 30 days; give them to your IdP, then finish the rotation.'))) return;
  try { await loadSpKeys(await api('POST', '/sso/saml/sp_keys/rotate', { json: { GraceDays: 30 } })); $('#saml-sp-status').textContent = 'New keys published.'; loadSamlMetadata(); } catch (e) { $('#saml-sp-status').textContent = e.message; }
}

async function finishRotation() {
  if (!(await confirmDialog('Retire the previous SP keys now? An IdP that still has only the old certificates stops working.'))) return;
  try { await loadSpKeys(await api('POST', '/sso/saml/sp_keys/finish_rotation', { json: {} })); $('#saml-sp-status').textContent = 'Previous keys retired.'; loadSamlMetadata(); } catch (e) { $('#saml-sp-status').textContent = e.message; }
}

function fillProvider(name, form, cfg) {
  for (const f of PROVIDERS[name].fields) {
    const v = cfg && !f.transient ? (cfg[f.name] ?? '') : '';
    if (f.check) form[f.name].checked = v === true;
    else form[f.name].value = Array.isArray(v) ? v.join(', ') : v;
  }
  form.Active.checked = !!(cfg && cfg.Active);
  $(`#${name}-delete`).hidden = !cfg;
  $(`#${name}-test`).hidden = !cfg;
  $(`#${name}-save`).textContent = cfg ? 'Save changes' : 'Create';
  const secret = form.ClientSecret;
  if (secret) {
    const stored = !!(cfg && cfg.ClientSecret);
    secret.placeholder = stored ? 'Stored (write-only); type a new one to replace it'
      : 'None: signs in as a public client';
    secret.value = stored ? MASK : '';
  }
  if (name === 'saml') showIdpCertificates(cfg);
  const acs = $('#saml-acs');
  if (acs) acs.textContent = (cfg && cfg.AcsURL) || `${location.protocol === 'http:' ? location.origin : 'http://localhost:29123'}/sso/saml/acs`;
}

async function saveProvider(name) {
  const form = $(`#form-${name}`);
  clearErrors(form);
  const body = {};
  for (const f of PROVIDERS[name].fields) {
    if (f.check) { body[f.name] = form[f.name].checked; continue; }
    const v = form[f.name].value.trim();
    if (f.list) body[f.name] = v.split(/[\s,]+/).filter(Boolean);
    else if (v || !f.secret) body[f.name] = v === '' && !f.required ? null : v;
  }
  body.Active = form.Active.checked;
  const cfg = loaded[name];
  // A stored secret whose field was cleared is removed ("" is the API's word for none).
  if (form.ClientSecret && cfg && cfg.ClientSecret && !form.ClientSecret.value.trim()) body.ClientSecret = '';
  setBusy(form, true);
  try {
    const saved = cfg
      ? await api('PUT', `/sso/update_${PROVIDERS[name].path}`, { json: { ...body, Id: cfg.Id } })
      : await api('POST', `/sso/setup_${PROVIDERS[name].path}`, { json: body });
    loaded[name] = saved;
    fillProvider(name, form, saved);
    if (name === 'saml') { loadSamlMetadata(); loadSpKeys(); }
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
