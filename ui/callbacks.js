// The Callback URLs tab: the account's allow-list of https callback URLs.
import { api } from './api.js';
import { tabLoader } from './admin.js';
import { $, clearErrors, formError, setBusy } from './dom.js';
import { lockForm, managedBy } from './managed.js';

tabLoader('callbacks', loadCallbacks);

export function wireCallbacks() {
  $('#callbacks-form').addEventListener('submit', saveCallbacks);
}

async function loadCallbacks() {
  const form = $('#callbacks-form');
  clearErrors(form);
  const r = await api('GET', '/sso/callback_urls');
  form.CallbackUrls.value = (r.CallbackUrls || []).join('\n');
  lockForm(form, managedBy('CallbackUrls', r));
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
