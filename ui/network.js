// The Network tab: the agent's proxy for identity provider requests (GET/PUT /sso/network),
// its password shown masked, and what requests use now.
import { api } from './api.js';
import { tabLoader } from './admin.js';
import { $, clearErrors, el, formError, setBusy } from './dom.js';
import { lockForm, managedBy } from './managed.js';

tabLoader('network', loadNetwork);

export function wireNetwork() {
  $('#network-form').addEventListener('submit', saveNetwork);
}

function fill(form, r) {
  form.ProxyURL.value = r.ProxyURL || '';
  form.NoProxy.value = r.NoProxy || '';
  // Locked through managed.js, so the tab loader's setBusy(false) leaves Save off.
  lockForm(form, managedBy('Network.ProxyURL', r.Effective));
  const e = r.Effective || {};
  const dl = $('#network-effective');
  dl.replaceChildren();
  for (const [k, v] of [
    ['Proxy', e.Proxy || 'none'],
    ['From', e.ProxySource || 'none'],
    ['Reached directly', e.NoProxy || 'loopback only'],
    ['Extra CA file', e.CaFile || 'none (the OS trust store only)'],
  ]) dl.append(el('dt', {}, k), el('dd', {}, v));
}

async function loadNetwork() {
  const form = $('#network-form');
  clearErrors(form);
  fill(form, await api('GET', '/sso/network'));
}

async function saveNetwork(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearErrors(form);
  const body = {
    ProxyURL: form.ProxyURL.value.trim() || null,
    NoProxy: form.NoProxy.value.trim() || null,
  };
  setBusy(form, true);
  try {
    fill(form, await api('PUT', '/sso/network', { json: body }));
    $('.status', form).textContent = 'Saved.';
  } catch (e) {
    if (e.code === 'DEFAULT') {
      const noProxy = e.messages.some((m) => m.startsWith('NoProxy'));
      const input = noProxy ? form.NoProxy : form.ProxyURL;
      $(noProxy ? '#network-noproxy-error' : '#network-proxy-error').textContent = e.messages.join(' ');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else formError(form, e.message);
  } finally { setBusy(form, false); }
}
