// DOM helpers of the UI's modules: queries, element building, the views, forms' errors and
// busy state, the confirmation dialog.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function el(tag, attrs = {}, ...children) {
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
// Views: one <section id="view-NAME"> of <main> is shown at a time.

/** The view shown (null until the first one). */
export let current = null;
export function show(view) {
  for (const s of $$('main > section')) s.hidden = s.id !== `view-${view}`;
  current = view;
  const h = $(`#view-${view} h1`);
  const first = $(`#view-${view} input, #view-${view} [role=tab][aria-selected=true]`);
  (first || h || $('#main')).focus();
}

export function setWho(text) {
  $('#who').textContent = text || '';
  $('#signout').hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Forms

export function formError(form, msg) {
  const p = $('.form-error', form);
  if (p) p.textContent = msg || '';
}

export function setBusy(form, busy) {
  // A button a managed setting locked (managed.js) stays off.
  for (const b of $$('button', form)) b.disabled = busy || b.dataset.locked === 'true';
  form.setAttribute('aria-busy', busy ? 'true' : 'false');
}

export function clearErrors(form) {
  for (const p of $$('.field-error', form)) p.textContent = '';
  for (const i of $$('[aria-invalid]', form)) i.removeAttribute('aria-invalid');
  formError(form, '');
  const s = $('.status', form); if (s) s.textContent = '';
}

// Each DEFAULT message starts with the field's name: show it next to that field.
export function showFieldErrors(form, prefix, messages) {
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

// WebKitGTK in Tauri shows no window.confirm: a <dialog> instead.
export function confirmDialog(text) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = 'cancel';
    d.showModal();
    $('#confirm-cancel').focus();
  });
}
