// The Sign-in settings tab (GET/PUT /sso/signin_settings): AutoProvision and its domains, the
// IdP groups whose members are admins, the session lifetime. Each may be managed by the
// policy file on its own: that field is read-only with the reason, and is not sent.
import { api } from './api.js';
import { tabLoader } from './admin.js';
import { $, clearErrors, formError, setBusy, showFieldErrors } from './dom.js';
import { lockForm } from './managed.js';

tabLoader('access', loadAccess);

const FIELDS = ['AutoProvision', 'AutoProvisionDomains', 'AdminGroups', 'SessionLifetimeDays'];
let managed = [];

export function wireAccess() {
  $('#access-form').addEventListener('submit', saveAccess);
}

const lines = (text) => text.split('\n').map((s) => s.trim()).filter(Boolean);

function fill(form, r) {
  form.AutoProvision.checked = !!r.AutoProvision;
  form.AutoProvisionDomains.value = (r.AutoProvisionDomains || []).join('\n');
  form.AdminGroups.value = (r.AdminGroups || []).join('\n');
  form.SessionLifetimeDays.value = String(r.SessionLifetimeDays ?? '');
  managed = r.ManagedKeys || [];
  for (const key of FIELDS) {
    lockForm($(`#access-${key}-field`), managed.includes(key) ? (r.ManagedBy || 'the policy file') : null);
  }
  // Nothing left to change: Save is off too.
  const save = $('button[type=submit]', form);
  save.dataset.locked = String(FIELDS.every((k) => managed.includes(k)));
}

async function loadAccess() {
  const form = $('#access-form');
  clearErrors(form);
  fill(form, await api('GET', '/sso/signin_settings'));
}

async function saveAccess(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearErrors(form);
  const days = form.SessionLifetimeDays.value.trim();
  const all = {
    AutoProvision: form.AutoProvision.checked,
    AutoProvisionDomains: lines(form.AutoProvisionDomains.value),
    AdminGroups: lines(form.AdminGroups.value),
    // Digits as a number; anything else as typed, so the agent names what is wrong with it.
    SessionLifetimeDays: /^\d+$/.test(days) ? Number(days) : days,
  };
  const body = Object.fromEntries(Object.entries(all).filter(([k]) => !managed.includes(k)));
  setBusy(form, true);
  try {
    fill(form, await api('PUT', '/sso/signin_settings', { json: body }));
    $('.status', form).textContent = 'Saved.';
  } catch (e) {
    if (e.code === 'DEFAULT') showFieldErrors(form, 'access', e.messages);
    else formError(form, e.message);
  } finally { setBusy(form, false); }
}
