// The admin pages: who is signed in, and the tabs (ARIA tab pattern). Each tab's module
// registers the function that loads its panel with `tabLoader`.
import { api } from './api.js';
import { $, $$, el, setBusy, setWho, show } from './dom.js';

const TABS = ['okta', 'entraId', 'saml', 'import', 'callbacks', 'access', 'tokens', 'audit', 'network'];
const loaders = {};

/** Sets what opening tab `name` loads into its panel. */
export function tabLoader(name, load) { loaders[name] = load; }

/** The signed-in user (GET /sso/whoami), once the admin pages were entered. */
export let me = null;

// Opens the admin pages on `tab`, else on the tab the URL's fragment names (#import), else Okta.
export async function enterAdmin(tab) {
  me = await api('GET', '/sso/whoami');
  setWho(`${me.DisplayName} — ${me.Account}`);
  if (!me.IsAdmin) return show('notadmin');
  const fromUrl = location.hash.slice(1);
  const name = TABS.includes(tab) ? tab : (TABS.includes(fromUrl) ? fromUrl : 'okta');
  const loading = selectTab(name); // marks the tab selected at once, so show() focuses it
  show('admin');
  await loading;
}

export function wireTabs() {
  for (const name of TABS) {
    const tab = $(`#tab-${name}`);
    tab.addEventListener('click', () => selectTab(name));
    tab.addEventListener('keydown', (ev) => {
      const i = TABS.indexOf(name);
      let j = null;
      if (ev.key === 'ArrowRight') j = (i + 1) % TABS.length;
      if (ev.key === 'ArrowLeft') j = (i - 1 + TABS.length) % TABS.length;
      if (ev.key === 'Home') j = 0;
      if (ev.key === 'End') j = TABS.length - 1;
      if (j !== null) { ev.preventDefault(); $(`#tab-${TABS[j]}`).focus(); selectTab(TABS[j]); }
    });
  }
}

async function selectTab(name) {
  for (const n of TABS) {
    const sel = n === name;
    const tab = $(`#tab-${n}`);
    tab.setAttribute('aria-selected', String(sel));
    tab.tabIndex = sel ? 0 : -1;
    $(`#panel-${n}`).hidden = !sel;
  }
  // The URL names the tab, so a reload or a link (…/ui/#import) comes back to it.
  if (location.hash !== `#${name}`) history.replaceState(null, '', `${location.pathname}${location.search}#${name}`);
  // While a tab loads, its panel is busy and its buttons are off: nothing the user
  // submits can race the load that is about to fill the form.
  const panel = $(`#panel-${name}`);
  panel.setAttribute('aria-busy', 'true');
  const forms = $$('form', panel);
  for (const f of forms) setBusy(f, true);
  try {
    if (loaders[name]) await loaders[name](name);
  } catch (e) {
    let p = $('.load-error', panel);
    if (!p) { p = el('p', { class: 'form-error load-error', role: 'alert' }); panel.prepend(p); }
    p.textContent = e.message;
  } finally {
    for (const f of forms) setBusy(f, false);
    panel.setAttribute('aria-busy', 'false');
  }
}
