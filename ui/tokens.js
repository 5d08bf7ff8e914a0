// The Access tokens tab (list, revoke after confirmation) and the Audit trail tab (paged,
// newest first).
import { api } from './api.js';
import { tabLoader } from './admin.js';
import { $, confirmDialog, el } from './dom.js';

tabLoader('tokens', loadTokens);
tabLoader('audit', () => loadAudit(1));

export function wireAudit() {
  $('#audit-prev').addEventListener('click', () => loadAudit(auditPage - 1));
  $('#audit-next').addEventListener('click', () => loadAudit(auditPage + 1));
}

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
