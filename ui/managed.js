// Settings the policy file manages (docs/policy.md): the forms show them read-only, with the
// reason. The API refuses their changes anyway (499 ACCESS); this only says so up front.
import { api } from './api.js';
import { $$, el } from './dom.js';

/** GET /sso/policy: the file, and the keys of this account it manages (null if unreadable). */
export async function policyStatus() {
  try { return await api('GET', '/sso/policy'); } catch { return null; }
}

/** The policy file managing `key` (the file's key: Okta, EntraId, Saml, CallbackUrls), or
 * null. A view says it itself (`Managed`, `ManagedBy`); a setting the policy allows none of
 * has no view, so the policy's status says it. */
export function managedBy(key, view, status) {
  if (view && view.Managed) return view.ManagedBy || 'the policy file';
  return status && (status.Managed || []).includes(key) ? status.Path : null;
}

/** Makes `form` read-only when `path` is set (controls whose id is in `keep` stay usable), with
 * a note saying why; undoes it when `path` is null. */
export function lockForm(form, path, { none = false, keep = [] } = {}) {
  let note = form.querySelector('.managed-note');
  if (!note) { note = el('p', { class: 'managed-note', role: 'note' }); form.prepend(note); }
  note.hidden = !path;
  note.textContent = !path ? ''
    : `Managed by your organization's policy file ${path}${none ? ', which allows none' : ''}: `
      + 'read-only here. Change it in the policy your MDM or GPO pushes.';
  form.dataset.managed = path ? 'true' : 'false';
  for (const c of $$('input, textarea, select, button', form)) {
    if (keep.includes(c.id)) continue;
    const locked = !!path;
    c.dataset.locked = String(locked);
    if (c.tagName === 'BUTTON' || c.type === 'checkbox') c.disabled = locked;
    else c.readOnly = locked;
  }
}
