// Browser end-to-end tests of ui/ against the real agent (target/debug/amove-agent), in
// Debian's headless chromium driven by playwright-core, with the real OpenID Provider of
// tests/idp/oidc for SSO. Prints "N passed, N failed"; exits non-zero on any failure.
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  test, runAll, assert, eq, tempDir, provision, startAgent, startOidc, passwordToken, agentBin, oidcLogin,
  ADMIN, ADMIN_PASSWORD, USER, USER_PASSWORD, ALICE, ALICE_PASSWORD,
} from './harness.mjs';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

const dataDir = provision();
const agent = await startAgent(dataDir);
const BASE = agent.url.replace('localhost', '127.0.0.1');
const UI = `${BASE}/ui/`;
const op = await startOidc([UI]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS,
});
const context = await browser.newContext();
const page = await context.newPage();
const problems = [];
// Console errors and uncaught exceptions of a page end up in the last test.
function watch(p) {
  p.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  p.on('pageerror', (e) => problems.push(String(e)));
  p.setDefaultTimeout(15000);
  return p;
}
watch(page);

const text = (sel) => page.locator(sel).innerText();

// Polls from the test side: the page's CSP forbids eval, so no waitForFunction.
async function until(fn, ms = 15000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting (${fn}); last: ${last}`);
}
const waitText = (p, sel, ok) => until(async () => ok((await p.textContent(sel)) ?? ''));
const waitValue = (p, sel, ok) => until(async () => ok(await p.inputValue(sel)));
// Opens a tab and waits until its panel has loaded (the UI marks it aria-busy meanwhile),
// so what the test types next is not overwritten by the load.
async function openTab(name, p = page) {
  await p.click(`#tab-${name}`);
  await p.waitForSelector(`#panel-${name}[aria-busy=false]`);
}

async function signInAsAdmin() {
  await page.goto(UI);
  await page.fill('#login-username', ADMIN);
  await page.fill('#login-password', ADMIN_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#view-admin:not([hidden])');
}

test('ui is served with a strict CSP, nosniff and no external resources', async () => {
  const r = await fetch(UI);
  eq(r.status, 200, 'status');
  const csp = r.headers.get('content-security-policy');
  assert(csp.includes("default-src 'self'") && csp.includes("script-src 'self'") && !csp.includes('unsafe'), `CSP ${csp}`);
  eq(r.headers.get('x-content-type-options'), 'nosniff', 'nosniff');
  const html = await r.text();
  assert(!/<script>/.test(html) && !/(src|href)="https?:/.test(html), 'no inline script, no external resource');
  eq((await fetch(`${BASE}/ui/../Cargo.toml`)).status, 404, 'outside ui/');
});

test('wrong password is refused in plain words; right one shows the admin pages', async () => {
  await page.goto(UI);
  await page.fill('#login-username', ADMIN);
  await page.fill('#login-password', 'not the password');
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#login-form .form-error', (t) => t.length > 0);
  assert((await text('#login-form .form-error')).includes('Wrong username or password'), 'error shown');
  await page.fill('#login-password', ADMIN_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#view-admin:not([hidden])');
  assert((await text('#who')).includes('acme'), 'who shows the account');
  const stored = await page.evaluate(() => sessionStorage.getItem('amove.token'));
  // A session JWT (POST /sso/session), never a long-lived access token.
  assert(stored && stored.split('.').length === 3 && !stored.startsWith('amv_'), 'a session kept in sessionStorage');
});

test('okta: field errors next to their fields, then create, masked secret, test connection', async () => {
  await openTab('okta');
  await page.fill('#okta-ClientId', '');
  await page.fill('#okta-OpenIdURL', 'ftp://op.example/x');
  await page.click('#okta-save');
  await waitText(page, '#okta-OpenIdURL-error', (t) => t.length > 0);
  assert((await text('#okta-OpenIdURL-error')).startsWith('OpenIdURL'), 'OpenIdURL error next to OpenIdURL');
  assert((await text('#okta-ClientId-error')).startsWith('ClientId'), 'ClientId error next to ClientId');
  eq(await page.getAttribute('#okta-OpenIdURL', 'aria-invalid'), 'true', 'aria-invalid');
  await page.fill('#okta-ClientId', op.clientId);
  await page.fill('#okta-ClientSecret', op.clientSecret);
  await page.fill('#okta-OpenIdURL', op.discovery);
  await page.check('#okta-Active');
  await page.click('#okta-save');
  await waitText(page, '#form-okta .status', (t) => t === 'Created.');
  await page.reload();
  await page.waitForSelector('#view-admin:not([hidden])');
  await waitValue(page, '#okta-ClientId', (v) => v.length > 0);
  eq(await page.inputValue('#okta-ClientSecret'), '********', 'secret masked');
  assert(await page.isChecked('#okta-Active'), 'active');
  await page.click('#okta-test');
  await page.waitForSelector('#okta-checks li');
  assert((await text('#okta-checks h3')).includes('Connection works'), `checks: ${await text('#okta-checks')}`);
  assert((await page.locator('#okta-checks li').count()) >= 2, 'checks listed');
  // An update with the mask keeps the stored secret.
  await page.click('#okta-save');
  await waitText(page, '#form-okta .status', (t) => t === 'Saved.');
});

test('entra id: create inactive with a Graph URL, second active refused next to Active, delete after confirmation', async () => {
  await openTab('entraId');
  await page.waitForSelector('#form-entraId');
  await page.fill('#entraId-ClientId', '11111111-2222-3333-4444-555555555555');
  await page.fill('#entraId-ClientSecret', 'entra-secret');
  await page.fill('#entraId-OpenIdURL', 'https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0/.well-known/openid-configuration');
  await page.fill('#entraId-GraphURL', 'https://graph.microsoft.com');
  await page.check('#entraId-Active');
  await page.click('#entraId-save');
  await until(async () => (await page.textContent('#entraId-Active-error')) || (await page.textContent('#form-entraId .form-error')));
  const refusal = (await text('#entraId-Active-error')) || (await text('#form-entraId .form-error'));
  assert(/okta/i.test(refusal), `names the active one: ${refusal}`);
  await page.uncheck('#entraId-Active');
  await page.click('#entraId-save');
  await waitText(page, '#form-entraId .status', (t) => t === 'Created.');
  await page.click('#entraId-delete');
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-cancel');
  eq(await page.isVisible('#entraId-delete'), true, 'cancel keeps it');
  await page.click('#entraId-delete');
  await page.click('#confirm-ok');
  await waitText(page, '#form-entraId .status', (t) => t === 'Deleted.');
  const r = await fetch(`${BASE}/sso/get_entraId?token=${await page.evaluate(() => sessionStorage.getItem('amove.token'))}`);
  eq(await r.text(), 'null', 'deleted at the agent');
});

test('saml: bad certificate shown next to Certificate, then create; ACS URL and metadata block shown', async () => {
  const dir = tempDir('amove-cert-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=idp.test', '-days', '30',
    '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'pipe' });
  const pem = readFileSync(join(dir, 'c.pem'), 'utf8');
  await openTab('saml');
  await page.waitForSelector('#form-saml');
  await page.fill('#saml-IdPSSOURL', 'https://idp.example.com/sso');
  await page.fill('#saml-SPEntityId', 'urn:amove:acme');
  await page.fill('#saml-Certificate', 'not a certificate');
  await page.click('#saml-save');
  await waitText(page, '#saml-Certificate-error', (t) => t.length > 0);
  assert((await text('#saml-Certificate-error')).startsWith('Certificate'), 'Certificate error');
  await page.fill('#saml-Certificate', pem);
  await page.fill('#saml-GroupsAttribute', 'Department Groups');
  await page.check('#saml-SignAuthnRequests');
  await page.click('#saml-save');
  await waitText(page, '#form-saml .status', (t) => t === 'Created.');
  assert((await text('#saml-acs')).endsWith('/sso/saml/acs'), 'ACS URL shown');
  assert((await page.inputValue('#saml-Certificate')).includes('BEGIN CERTIFICATE'), 'certificate viewable');
  await waitText(page, '#saml-metadata', (t) => t.length > 0);
  // Signing on: the metadata shown publishes the agent's signing certificate.
  await waitText(page, '#saml-metadata', (t) => t.includes('AuthnRequestsSigned="true"') && t.includes('KeyDescriptor use="signing"'));
  await page.reload();
  await page.waitForSelector('#view-admin:not([hidden])');
  await openTab('saml');
  await waitValue(page, '#saml-GroupsAttribute', (v) => v === 'Department Groups');
  assert(await page.isChecked('#saml-SignAuthnRequests'), 'SignAuthnRequests kept');
  // The IdP certificate in use with its expiry; the agent's own two, then a rotation.
  await waitText(page, '#saml-idp-certs', (t) => /days left/.test(t));
  await waitText(page, '#saml-sp-keys', (t) => /signing/.test(t) && /encryption/.test(t) && /Amove agent SP/.test(t));
  await page.click('#saml-sp-rotate');
  await page.click('#confirm-ok');
  await waitText(page, '#saml-sp-status', (t) => t === 'New keys published.');
  eq(await page.locator('#saml-sp-keys li').count(), 4, 'old and new keys listed');
  assert(await page.isVisible('#saml-sp-finish'), 'finish offered during the rotation');
  await page.click('#saml-sp-finish');
  await page.click('#confirm-ok');
  await waitText(page, '#saml-sp-status', (t) => t === 'Previous keys retired.');
  eq(await page.locator('#saml-sp-keys li').count(), 2, 'old keys retired');
});

test('saml: pasted IdP metadata fills the SSO URL, the entity ID and the certificate', async () => {
  const dir = tempDir('amove-cert-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=idp.pasted', '-days', '90',
    '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'pipe' });
  const pem = readFileSync(join(dir, 'c.pem'), 'utf8');
  await openTab('saml');
  const b64 = pem.replace(/-----[^-]+-----|\s/g, '');
  const xml = `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.pasted.example/metadata"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.pasted.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>`;
  await page.fill('#saml-IdPSSOURL', '');
  await page.fill('#saml-IdPEntityId', '');
  await page.fill('#saml-Certificate', '');
  await page.fill('#saml-IdPMetadataXML', xml);
  await page.click('#saml-save');
  await waitText(page, '#form-saml .status', (t) => t === 'Saved.');
  await waitValue(page, '#saml-IdPSSOURL', (v) => v === 'https://idp.pasted.example/sso');
  await waitValue(page, '#saml-IdPEntityId', (v) => v === 'https://idp.pasted.example/metadata');
  assert((await page.inputValue('#saml-Certificate')).includes('BEGIN CERTIFICATE'), 'certificate from the metadata');
  eq(await page.inputValue('#saml-IdPMetadataXML'), '', 'pasted XML not kept');
});

test('callback allow-list: a non-https URL is refused next to the field, an https one saved', async () => {
  await openTab('callbacks');
  await page.fill('#callbacks-urls', 'http://evil.example/cb');
  await page.click('#callbacks-form button[type=submit]');
  await waitText(page, '#callbacks-urls-error', (t) => t.length > 0);
  await page.fill('#callbacks-urls', 'https://app.example.com/cb');
  await page.click('#callbacks-form button[type=submit]');
  await waitText(page, '#callbacks-form .status', (t) => t === 'Saved.');
  await page.reload();
  await page.waitForSelector('#view-admin:not([hidden])');
  await openTab('callbacks');
  await waitValue(page, '#callbacks-urls', (v) => v.includes('https://app.example.com/cb'));
});

test('sign-in settings: bad values are refused next to their fields; the four settings saved through the form', async () => {
  await openTab('access');
  eq(await page.inputValue('#access-lifetime'), '30', 'the default lifetime');
  assert(!(await page.isChecked('#access-autoprovision')), 'AutoProvision off by default');
  await page.check('#access-autoprovision');
  await page.fill('#access-domains', '*.example.com');
  await page.click('#access-form button[type=submit]');
  await waitText(page, '#access-AutoProvisionDomains-error', (t) => t.includes('wildcard'));
  eq(await page.getAttribute('#access-domains', 'aria-invalid'), 'true', 'the field is marked');
  await page.fill('#access-domains', 'Example.com\nbücher.example');
  await page.fill('#access-groups', 'Amove Admins\n00000000-0000-0000-0000-0000000000a1');
  await page.fill('#access-lifetime', '400');
  await page.click('#access-form button[type=submit]');
  await waitText(page, '#access-SessionLifetimeDays-error', (t) => t.includes('from 1 to 365'));
  await page.fill('#access-lifetime', '14');
  await page.click('#access-form button[type=submit]');
  await waitText(page, '#access-form .status', (t) => t === 'Saved.');
  await page.reload();
  await page.waitForSelector('#view-admin:not([hidden])');
  await openTab('access');
  assert(await page.isChecked('#access-autoprovision'), 'AutoProvision kept');
  eq(await page.inputValue('#access-domains'), 'example.com\nxn--bcher-kva.example', 'lower-cased, IDNA');
  eq(await page.inputValue('#access-groups'), '00000000-0000-0000-0000-0000000000a1\nAmove Admins', 'groups kept');
  eq(await page.inputValue('#access-lifetime'), '14', 'lifetime kept');
  const admin = await passwordToken(BASE, ADMIN, ADMIN_PASSWORD);
  const api = await (await fetch(`${BASE}/sso/signin_settings`, { headers: { Authorization: `Bearer ${admin}` } })).json();
  eq(JSON.stringify([api.AutoProvision, api.SessionLifetimeDays, api.Managed]), '[true,14,false]', 'as the API says');
  // Back to the defaults, so the sign-ins of the later tests meet the account as it was.
  const reset = await fetch(`${BASE}/sso/signin_settings`, {
    method: 'PUT', headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ AutoProvision: false, AutoProvisionDomains: [], AdminGroups: [], SessionLifetimeDays: 30 }),
  });
  eq(reset.status, 200, 'reset');
});

test('access tokens: a user token is listed and revoked after confirmation; it stops working', async () => {
  const userToken = await passwordToken(BASE, USER, USER_PASSWORD);
  eq((await fetch(`${BASE}/sso/whoami`, { headers: { Authorization: `Bearer ${userToken}` } })).status, 200, 'works before');
  await openTab('tokens');
  const row = page.locator('#tokens-table tbody tr', { hasText: USER });
  await row.waitFor();
  await row.locator('button', { hasText: 'Revoke' }).click();
  await page.click('#confirm-ok');
  await waitText(page, '#panel-tokens .status', (t) => /revoked/.test(t));
  eq((await fetch(`${BASE}/sso/whoami`, { headers: { Authorization: `Bearer ${userToken}` } })).status, 401, 'refused after');
});

test('audit trail lists configuration changes and the revoke, newest first, paged', async () => {
  await openTab('audit');
  await page.waitForSelector('#audit-table tbody tr');
  const all = await text('#audit-table tbody');
  assert(/okta/i.test(all) && /token/i.test(all), `audit rows: ${all.slice(0, 300)}`);
  assert((await text('#audit-page')).startsWith('Page 1 of'), 'pager');
});

test('tabs work from the keyboard', async () => {
  await page.focus('#tab-okta');
  await openTab('okta');
  await page.keyboard.press('ArrowRight');
  await until(async () => (await page.evaluate(() => document.activeElement.id)) === 'tab-entraId');
  eq(await page.getAttribute('#tab-entraId', 'aria-selected'), 'true', 'selected');
});

test('network: a bad proxy URL is refused next to the field; a saved one shows its password masked', async () => {
  await openTab('network');
  await page.fill('#network-proxy', 'socks5://p:1080');
  await page.click('#network-form button[type=submit]');
  await waitText(page, '#network-proxy-error', (t) => t.startsWith('ProxyURL must be http://'));
  await page.fill('#network-proxy', 'http://corp:ui-proxy-pw@proxy.corp.example:3128');
  await page.click('#network-form button[type=submit]');
  await waitText(page, '#network-form .status', (t) => t === 'Saved.');
  await waitValue(page, '#network-proxy', (v) => v === 'http://corp:********@proxy.corp.example:3128/');
  await waitText(page, '#network-effective', (t) => t.includes('setting'));
  assert(!(await page.content()).includes('ui-proxy-pw'), 'the password is not in the page');
  // Cleared again: the environment's proxy (none here) applies.
  await page.fill('#network-proxy', '');
  await page.click('#network-form button[type=submit]');
  await waitText(page, '#network-form .status', (t) => t === 'Saved.');
  await waitText(page, '#network-effective', (t) => t.includes('none'));
});

test('a standard user is told they are not an admin', async () => {
  const p = await context.newPage();
  await p.goto(UI);
  await p.evaluate(() => sessionStorage.clear());
  await p.fill('#login-username', USER);
  await p.fill('#login-password', USER_PASSWORD);
  await p.click('#login-form button[type=submit]');
  await p.waitForSelector('#view-notadmin:not([hidden])');
  await p.close();
});

test('SSO sign-in in the browser through the real OpenID Provider', async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.setDefaultTimeout(20000);
  await p.goto(UI);
  await p.fill('#login-username', ALICE);
  await p.click('#login-sso');
  await p.waitForURL((u) => u.origin === new URL(op.url).origin);
  await p.waitForSelector('input[name=password]');
  await p.fill('input[name=password]', ALICE_PASSWORD);
  await p.locator('input[name=password]').press('Enter');
  await p.waitForSelector('#view-admin:not([hidden])');
  assert((await p.locator('#who').innerText()).includes('Alice'), 'signed in as Alice');
  eq(new URL(p.url()).search, '', 'code removed from the URL');
  const jwt = await p.evaluate(() => sessionStorage.getItem('amove.token'));
  assert(jwt && jwt.split('.').length === 3, 'session JWT kept');
  await p.click('#signout');
  await p.waitForSelector('#view-login:not([hidden])');
  eq((await fetch(`${BASE}/sso/whoami`, { headers: { Authorization: `Bearer ${jwt}` } })).status, 401, 'sign-out revoked the session');
  await ctx.close();
});

test('SSO sign-in error from the provider is shown in plain words', async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(`${UI}?error=access_denied&error_description=User%20cancelled&state=x`);
  await waitText(p, '#login-form .form-error', (t) => t.length > 0);
  assert((await p.locator('#login-form .form-error').innerText()).includes('User cancelled'), 'shown');
  await ctx.close();
});

test('SSO sign-in: an answer whose state is not this sign-in\'s is refused and its code not redeemed', async () => {
  const ctx = await browser.newContext();
  const p = watch(await ctx.newPage());
  p.setDefaultTimeout(20000);
  const redeemed = [];
  p.on('request', (r) => { if (r.url().includes('/sso/authenticate')) redeemed.push(r.url()); });
  await p.goto(UI);
  await p.fill('#login-username', ALICE);
  const auth = p.waitForRequest((r) => r.url().startsWith(`${op.url}/auth`));
  await p.click('#login-sso');
  const authUrl = (await auth).url();
  // Let the page arrive at the OP's login page first: a goto while its own navigation through
  // the OP is still under way would be interrupted by it.
  await p.waitForURL((u) => u.origin === new URL(op.url).origin && u.pathname.startsWith('/interaction/'));
  // The OP's real answer to this very sign-in (a valid code), carrying another state: what a
  // link forged from someone else's sign-in looks like.
  const back = new URL(await oidcLogin(authUrl, ALICE, ALICE_PASSWORD));
  assert(back.href.startsWith(UI) && back.searchParams.has('code'), `the OP answered with a code: ${back}`);
  assert(back.searchParams.get('state') === new URL(authUrl).searchParams.get('state'), 'the OP returned the state it was given');
  back.searchParams.set('state', 'forged');
  await p.goto(back.href);
  // Settled: refused on the sign-in page, or (without the check) signed in.
  await until(async () => (await p.textContent('#login-form .form-error')) || p.isVisible('#view-admin'));
  eq(redeemed.length, 0, 'no /sso/authenticate call');
  eq(await p.evaluate(() => sessionStorage.getItem('amove.token')), null, 'no session');
  assert(await p.isVisible('#view-login'), 'still on the sign-in page');
  const refusal = await p.innerText('#login-form .form-error');
  assert(/does not belong to the sign-in started here/.test(refusal), `refusal shown: ${refusal}`);
  eq(new URL(p.url()).search, '', 'code removed from the URL');
  await ctx.close();
});

// ---- Import: the real OpenID Provider with its directory APIs (tests/idp/oidc, "Directory APIs")

// Users of the directory besides Alice (who signs in at the OP to read it). Dave's email
// belongs to another account (skipped); Leo leaves the IdP later (reported, not deleted).
const DIR_USERS = [
  { accountId: '00ubob', email: 'bob@example.com', given_name: 'Bob', family_name: 'Builder', groups: ['engineering', 'ops'] },
  { accountId: '00ucarol', email: 'carol@example.com', given_name: 'Carol', family_name: 'Cooper', groups: ['ops'] },
  { accountId: '00udave', email: 'dave@globex.test', given_name: 'Dave', family_name: 'Other', groups: ['sales'] },
  { accountId: '00uleo', email: 'leo@example.com', given_name: 'Leo', family_name: 'Leaver', groups: ['engineering'] },
  { accountId: '00uerin', email: 'erin@example.com', given_name: 'Erin', family_name: 'Early' },
].map((u) => ({ ...u, password: `${u.accountId}-password` }));
// The directory OP restarts on its port with the same key: the same issuer, fewer users.
const DIR_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
let opDir = null;
async function startDirectoryOp(users, directory, port = 0) {
  if (opDir) { opDir.child.stdin.end(); await new Promise((r) => opDir.child.once('exit', r)); }
  opDir = await startOidc([UI], { users, directory, port, signingKey: DIR_KEY });
  return opDir;
}

async function signIn(p, username, password) {
  await p.goto(UI);
  await p.fill('#login-username', username);
  await p.fill('#login-password', password);
  await p.click('#login-form button[type=submit]');
}

async function newAdminPage() {
  const ctx = await browser.newContext({ locale: 'en-US' });
  const p = watch(await ctx.newPage());
  await signIn(p, ADMIN, ADMIN_PASSWORD);
  await p.waitForSelector('#view-admin:not([hidden])');
  return { ctx, p };
}

// At the OP's own login form in the browser (it always shows it: a new context has no OP session).
async function atOp(p, o) {
  await p.waitForURL((u) => u.origin === new URL(o.url).origin);
  await p.waitForSelector('input[name=password]');
}
async function loginAtOp(p, o, login, password) {
  await atOp(p, o);
  await p.fill('input[name=login]', login);
  await p.fill('input[name=password]', password);
  await p.locator('input[name=password]').press('Enter');
}

const rowNames = (p) => p.locator('#import-table tbody tr td:nth-child(2)').allInnerTexts();
const usersOf = (account) => JSON.parse(execFileSync(agentBin(), ['user', 'list', '--account', account, '--json', '--data-dir', dataDir], { maxBuffer: 64 << 20 }));

test('import: reads the directory through the real OP (several pages), searches, selects, imports; again: Updated', async () => {
  // Another account owns Dave's email: the import must skip him, saying why.
  execFileSync(agentBin(), ['init', '--account', 'globex', '--admin', 'dave@globex.test', '--data-dir', dataDir],
    { env: { ...process.env, AMOVE_ADMIN_PASSWORD: 'another long admin password' }, stdio: 'pipe' });
  const o = await startDirectoryOp(DIR_USERS, { pageSize: 2 });
  const { ctx, p } = await newAdminPage();
  // Okta, configured in the UI, pointing at the OP (its directory is at the OP's origin).
  await openTab('okta', p);
  await p.fill('#okta-ClientId', o.clientId);
  await p.fill('#okta-ClientSecret', o.clientSecret);
  await p.fill('#okta-OpenIdURL', o.discovery);
  await p.check('#okta-Active');
  await p.click('#okta-save');
  await waitText(p, '#form-okta .status', (t) => t === 'Saved.' || t === 'Created.');

  await openTab('import', p);
  assert((await p.innerText('#import-provider')).includes('Okta'), 'names the active provider');
  await p.click('#import-begin');
  await loginAtOp(p, o, ALICE, ALICE_PASSWORD);
  await p.waitForSelector('#import-directory:not([hidden])');
  await p.waitForSelector('#panel-import[aria-busy=false]');
  const back = new URL(p.url());
  eq(back.search, '', 'code and state removed from the URL');
  eq(back.hash, '#import', 'on the Import tab');
  eq(await p.evaluate(() => sessionStorage.getItem('amove.import')), null, 'pending import forgotten');
  eq(await p.evaluate(() => document.activeElement.id), 'import-search', 'focus on the search box');
  const all = DIR_USERS.length + 1;
  eq(await p.locator('#import-table tbody tr').count(), all, 'every user listed');
  assert((await p.innerText('#import-summary')).startsWith(`${all} users in 3 groups`), await p.innerText('#import-summary'));
  const bob = p.locator('#import-table tbody tr', { hasText: 'bob@example.com' });
  eq(await bob.locator('td:nth-child(4)').innerText(), 'engineering, ops', 'groups shown');
  // Read page by page (pageSize 2): the OP saw `after=` requests.
  const log = await (await fetch(`${o.url}/_idp/directory-log`)).json();
  assert(log.filter((l) => l.url.includes('/api/v1/users') && l.url.includes('after=')).length >= 2, `paged: ${JSON.stringify(log.map((l) => l.url))}`);

  // Search by group, select what is shown; then by email and by name; the selection stays.
  await p.fill('#import-search', 'ops');
  await waitText(p, '#import-count', (t) => t.startsWith(`2 of ${all} users match`));
  eq((await rowNames(p)).sort().join('|'), 'Bob Builder|Carol Cooper', 'matched by group');
  await p.check('#import-all');
  eq(await p.innerText('#import-run'), 'Import 2 selected users', 'selection on the button');
  await p.fill('#import-search', 'GLOBEX');
  await until(async () => (await rowNames(p)).join() === 'Dave Other');
  await p.check('#import-table tbody input[type=checkbox]');
  await p.fill('#import-search', 'leo leaver');
  await until(async () => (await rowNames(p)).join() === 'Leo Leaver');
  await p.locator('#import-table tbody input[type=checkbox]').press('Space'); // the keyboard works too
  await p.fill('#import-search', '');
  await waitText(p, '#import-count', (t) => t.startsWith(`${all} users`));
  eq(await p.innerText('#import-run'), 'Import 4 selected users', 'selection kept across searches');
  eq(await p.locator('#import-table tbody input:checked').count(), 4, 'checked rows');

  await p.click('#import-run');
  await p.waitForSelector('#import-result:not([hidden])');
  await waitText(p, '#import-status', (t) => t.startsWith('Import finished'));
  eq(await p.innerText('#import-created'), '3', 'created');
  eq(await p.innerText('#import-updated'), '0', 'updated');
  eq(await p.innerText('#import-skipped'), '1', 'skipped');
  eq(await p.innerText('#import-groups'), '2', 'groups (engineering, ops)');
  const skipped = await p.innerText('#import-skipped-table tbody');
  assert(skipped.includes('dave@globex.test') && /another account/.test(skipped), `reason shown: ${skipped}`);
  eq(await p.evaluate(() => document.activeElement.id), 'import-result-title', 'focus on the result');
  // Persisted: the account has them (and not Dave, who is another account's).
  const acme = usersOf('acme').map((u) => u.Username);
  for (const e of ['bob@example.com', 'carol@example.com', 'leo@example.com']) assert(acme.includes(e), `${e} imported`);
  assert(!acme.includes('dave@globex.test') && !acme.includes('erin@example.com'), 'only the selection');
  const admin = await passwordToken(BASE, ADMIN, ADMIN_PASSWORD);
  const audit = await (await fetch(`${BASE}/sso/audit?pageSize=5`, { headers: { Authorization: `Bearer ${admin}` } })).json();
  assert(audit.Items.some((e) => e.Action === 'import.persist' && e.Detail.includes('3 created')), 'audited');

  // The same read again: nobody is created twice.
  await p.click('#import-run');
  await waitText(p, '#import-status', (t) => t.startsWith('Import finished: 0 created, 3 updated'));
  eq(await p.innerText('#import-created'), '0', 'created again');
  eq(await p.innerText('#import-updated'), '3', 'updated');
  await ctx.close();
});

test('import: the IdP refusing, a foreign answer and a bad code are told in plain words', async () => {
  const { ctx, p } = await newAdminPage();
  await openTab('import', p);
  // The user cancels at the OP: it answers error=access_denied.
  await p.click('#import-begin');
  await atOp(p, opDir);
  await p.click('#abort');
  await waitText(p, '#import-error', (t) => t.length > 0);
  assert((await p.innerText('#import-error')).includes('End-User aborted interaction'), await p.innerText('#import-error'));
  eq(new URL(p.url()).search, '', 'error removed from the URL');
  // An answer whose state is not this import's is refused before the agent sees the code.
  await p.click('#import-begin');
  await atOp(p, opDir);
  await p.goto(`${UI}?code=forged&state=forged`);
  await waitText(p, '#import-error', (t) => /does not belong/.test(t));
  // A code the OP never issued, with the right state: the agent's 499 message.
  const auth = p.waitForRequest((r) => r.url().startsWith(`${opDir.url}/auth`));
  await p.click('#import-begin');
  const state = new URL((await auth).url()).searchParams.get('state');
  await atOp(p, opDir);
  await p.goto(`${UI}?code=forged&state=${encodeURIComponent(state)}`);
  await waitText(p, '#import-error', (t) => t.length > 0 && !/does not belong/.test(t));
  const msg = await p.innerText('#import-error');
  assert(!/^The agent answered/.test(msg) && msg.length > 10, `plain words: ${msg}`);
  assert(await p.isHidden('#import-directory'), 'no table');
  // The admin's session ended while they were at the IdP: sign in again (not "agent not running").
  await p.evaluate((cb) => {
    sessionStorage.setItem('amove.token', 'amv_revoked');
    sessionStorage.setItem('amove.import', JSON.stringify({ identifier: 'x', callback: cb, state: 's' }));
  }, UI);
  await p.goto(`${UI}?code=c&state=s`);
  await p.waitForSelector('#view-login:not([hidden])');
  await waitText(p, '#login-form .form-error', (t) => /session has ended/.test(t));
  eq(new URL(p.url()).search, '', 'code removed');
  await ctx.close();
});

test('import: a standard user has no Import tab, and the API refuses them', async () => {
  const ctx = await browser.newContext();
  const p = watch(await ctx.newPage());
  await p.goto(`${UI}#import`);
  await signIn(p, USER, USER_PASSWORD);
  await p.waitForSelector('#view-notadmin:not([hidden])');
  assert(!(await p.isVisible('#tab-import')), 'no Import tab');
  const t = await passwordToken(BASE, USER, USER_PASSWORD);
  const h = { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' };
  const start = await fetch(`${BASE}/sso/sso_url_import_user`, { method: 'POST', headers: h, body: JSON.stringify({ CallbackUrl: UI }) });
  eq(start.status, 499, 'start refused');
  const imp = await fetch(`${BASE}/usergroup/import_users`, { method: 'POST', headers: h, body: JSON.stringify({ ImportId: 1 }) });
  eq(imp.status, 499, 'import refused');
  await ctx.close();
});

test('import: 10,000 users stay usable; batches; a user the IdP no longer lists is reported, not deleted', async () => {
  // The same issuer (port and key) without Leo, with 10,000 more users: Okta's default pages.
  const port = Number(new URL(opDir.url).port);
  const o = await startDirectoryOp(DIR_USERS.filter((u) => u.accountId !== '00uleo'), { extraUsers: 10000 }, port);
  const all = DIR_USERS.length + 10000;
  const { ctx, p } = await newAdminPage();
  await openTab('import', p);
  await p.click('#import-begin');
  await loginAtOp(p, o, ALICE, ALICE_PASSWORD);
  await p.waitForSelector('#import-directory:not([hidden])', { timeout: 60000 });
  await waitText(p, '#import-count', (t) => t.startsWith(`${all.toLocaleString('en-US')} users. Showing the first 200`));
  eq(await p.locator('#import-table tbody tr').count(), 200, 'rows rendered at most');
  await p.click('#import-more');
  eq(await p.locator('#import-table tbody tr').count(), 400, 'show more');
  eq(await p.evaluate(() => document.activeElement.closest('tr').rowIndex), 201, 'focus on the first new row');
  const t0 = Date.now();
  await p.fill('#import-search', 'user09999@');
  await waitText(p, '#import-count', (t) => t.startsWith(`1 of ${all.toLocaleString('en-US')}`));
  const searchMs = Date.now() - t0;
  assert(searchMs < 2000, `search took ${searchMs} ms`);
  // Every generated user: more ids than one body holds, so the UI sends batches.
  await p.fill('#import-search', 'directory.example.com');
  await waitText(p, '#import-count', (t) => t.startsWith('10,000 of'));
  await p.click('#import-select-matching');
  eq(await p.innerText('#import-run'), 'Import 10,000 selected users', 'all matching selected');
  const bodies = [];
  p.on('request', (r) => { if (r.url().endsWith('/usergroup/import_users')) bodies.push(r.postData().length); });
  await p.click('#import-run');
  await p.waitForSelector('#import-result:not([hidden])', { timeout: 120000 });
  await waitText(p, '#import-status', (t) => t.startsWith('Import finished'), 120000);
  eq(await p.innerText('#import-created'), '10,000', 'created');
  assert(bodies.length > 1 && bodies.every((n) => n < 64 * 1024), `batches: ${bodies}`);
  const removed = await p.innerText('#import-removed');
  assert(removed.includes('leo@example.com') && removed.includes('not deleted'), removed);
  const leo = usersOf('acme').find((u) => u.Username === 'leo@example.com');
  eq(leo && leo.Status, 'active', 'Leo is still there');
  console.log(`  (10,005-user directory: search ${searchMs} ms)`);
  await ctx.close();
});

// WebKitGTK (the engine of the desktop app's windows) runs the browser import too: Debian's
// MiniBrowser under Xvfb, driven by WebKitWebDriver (plain W3C WebDriver over HTTP).
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const haveWebKit = existsSync(MINIBROWSER) && existsSync('/usr/bin/WebKitWebDriver') && existsSync('/usr/bin/Xvfb');
// Numbers as the page's locale writes them (MiniBrowser under LANG=C: no grouping), ungrouped.
const ungroup = (t) => t.replace(/(\d)[,.\u00a0\u202f ](?=\d{3}\b)/g, '$1');
const freePort = () => new Promise((res) => { const srv = createServer().listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => res(port)); }); });

async function withWebKit(fn) {
  const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const display = await new Promise((res, rej) => { xvfb.stdio[3].once('data', (d) => res(`:${String(d).trim()}`)); xvfb.once('exit', rej); });
  const port = await freePort();
  const driver = spawn('/usr/bin/WebKitWebDriver', [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: 'ignore' });
  const W = `http://127.0.0.1:${port}`;
  const wd = async (method, path, body) => {
    const r = await fetch(`${W}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(j.value).slice(0, 300)}`);
    return j.value;
  };
  let sid;
  try {
    await until(() => fetch(`${W}/status`).then((r) => r.ok));
    sid = (await wd('POST', '/session', { capabilities: { alwaysMatch: {
      'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } } } })).sessionId;
    const S = `/session/${sid}`;
    const idOf = (v) => Object.values(v)[0];
    const find = (css) => until(async () => idOf(await wd('POST', `${S}/element`, { using: 'css selector', value: css })));
    const ui = {
      go: (url) => wd('POST', `${S}/url`, { url }),
      url: () => wd('GET', `${S}/url`),
      click: async (css) => wd('POST', `${S}/element/${await find(css)}/click`, {}),
      type: async (css, text) => { const id = await find(css); await wd('POST', `${S}/element/${id}/clear`, {}); if (text) await wd('POST', `${S}/element/${id}/value`, { text }); },
      text: async (css) => wd('GET', `${S}/element/${await find(css)}/text`),
      count: async (css) => (await wd('POST', `${S}/elements`, { using: 'css selector', value: css })).length,
      shown: async (css) => { try { return await wd('GET', `${S}/element/${await find(css)}/displayed`); } catch { return false; } },
      waitText: async (css, ok) => {
        let last;
        try { await until(async () => ok(last = await ui.text(css)), 30000); } catch { throw new Error(`${css}: unexpected text ${JSON.stringify(last)}`); }
      },
    };
    await fn(ui);
  } finally {
    if (sid) await wd('DELETE', `/session/${sid}`).catch(() => {});
    driver.kill('SIGTERM');
    xvfb.kill('SIGTERM');
  }
}

if (haveWebKit) {
  test('import in WebKitGTK (MiniBrowser): sign-in round trip, 10,005-user table, search, import', () => withWebKit(async (ui) => {
    await ui.go(UI);
    await ui.type('#login-username', ADMIN);
    await ui.type('#login-password', ADMIN_PASSWORD);
    await ui.click('#login-form button[type=submit]');
    await until(() => ui.shown('#view-admin'));
    await ui.click('#tab-import');
    await until(() => ui.shown('#import-begin'));
    await ui.click('#import-begin');
    await until(async () => (await ui.url()).startsWith(opDir.url) && ui.shown('input[name=password]'));
    await ui.type('input[name=login]', ALICE);
    await ui.type('input[name=password]', `${ALICE_PASSWORD}\uE007`); // Enter submits
    await until(() => ui.shown('#import-directory'), 60000);
    const back = new URL(await ui.url());
    eq(back.search + back.hash, '#import', 'code and state removed');
    await ui.waitText('#import-count', (t) => /^10005 users\. Showing the first 200/.test(ungroup(t)));
    eq(await ui.count('#import-table tbody tr'), 200, 'rows rendered at most');
    await ui.type('#import-search', 'erin@');
    await ui.waitText('#import-count', (t) => ungroup(t).startsWith('1 of 10005'));
    await ui.click('#import-all');
    eq(await ui.text('#import-run'), 'Import 1 selected user', 'one selected');
    await ui.click('#import-run');
    await ui.waitText('#import-status', (t) => t.startsWith('Import finished'));
    eq(await ui.text('#import-created'), '1', 'Erin created');
    assert((await ui.text('#import-removed')).includes('not deleted'), 'removed users explained');
  }));
} else {
  console.log('SKIP WebKitGTK import test: MiniBrowser, WebKitWebDriver or Xvfb missing (scripts/setup-debian.sh --desktop)');
}

test('import in the desktop window: explains, and opens the browser UI through the shell', async () => {
  // The shell's IPC, doubled: `api` forwards to the agent with the tray's token, as the app does.
  const ctx = await browser.newContext();
  const admin = await passwordToken(BASE, ADMIN, ADMIN_PASSWORD);
  await ctx.addInitScript(({ tok, agentUrl }) => {
    window.__invoked = [];
    const invoke = async (cmd, args) => {
      window.__invoked.push(cmd);
      if (cmd === 'app_state') return { view: 'admin', needsSetup: false, agentUrl, session: { name: 'Ada Admin', account: 'acme', isAdmin: true } };
      if (cmd === 'open_import_in_browser') return null;
      if (cmd !== 'api') throw new Error(`unknown command ${cmd}`);
      const r = args.request;
      const res = await fetch(r.path, { method: r.method, body: r.body ?? undefined,
        headers: { ...r.headers, Authorization: r.headers.Authorization || `Bearer ${tok}` } });
      return { status: res.status, errorCode: res.headers.get('error-code'), contentType: res.headers.get('content-type'), body: await res.text() };
    };
    window.__TAURI__ = { core: { invoke }, event: { listen: async () => () => {} } };
  }, { tok: admin, agentUrl: BASE.replace('127.0.0.1', 'localhost') });
  const p = watch(await ctx.newPage());
  await p.goto(UI);
  await p.waitForSelector('#view-admin:not([hidden])');
  await openTab('import', p);
  assert(await p.isHidden('#import-start'), 'no sign-in from the window');
  eq(await p.innerText('#import-browser-url'), `${BASE.replace('127.0.0.1', 'localhost')}/ui/#import`, 'address shown');
  await p.click('#import-open-browser');
  await waitText(p, '#import-status', (t) => t.startsWith('Opened in your browser'));
  assert((await p.evaluate(() => window.__invoked)).includes('open_import_in_browser'), 'asked the shell');
  await ctx.close();
});

test('settings the policy file manages are read-only, with the reason', async () => {
  const policyFile = join(tempDir('amove-ui-policy-'), 'policy.json');
  writeFileSync(policyFile, JSON.stringify({
    Account: { Identifier: 'acme' }, Saml: null, CallbackUrls: ['https://tools.acme.example/sso'],
    Okta: { ClientId: '0oa-fleet', OpenIdURL: 'https://corp.okta.example/.well-known/openid-configuration', Active: true },
    Network: { ProxyURL: 'http://corp:ui-policy-pw@proxy.acme.example:3128' },
    SessionLifetimeDays: 7,
  }), { mode: 0o644 });
  const managed = await startAgent(provision(), { AMOVE_AGENT_POLICY: policyFile });
  const ctx = await browser.newContext();
  const p = watch(await ctx.newPage());
  try {
    await p.goto(`${managed.url.replace('localhost', '127.0.0.1')}/ui/`);
    await p.fill('#login-username', ADMIN);
    await p.fill('#login-password', ADMIN_PASSWORD);
    await p.click('#login-form button[type=submit]');
    await p.waitForSelector('#view-admin:not([hidden])');
    await openTab('okta', p);
    eq(await p.inputValue('#okta-ClientId'), '0oa-fleet', 'the managed value shown');
    assert(await p.getAttribute('#okta-ClientId', 'readonly') !== null, 'read-only');
    assert(await p.isDisabled('#okta-save') && await p.isDisabled('#okta-delete'), 'no save, no delete');
    assert(await p.isEnabled('#okta-test'), 'test connection changes nothing: still offered');
    assert((await p.innerText('#form-okta .managed-note')).includes(policyFile), 'the reason names the file');
    await openTab('saml', p);
    assert((await p.innerText('#form-saml .managed-note')).includes('which allows none'), 'null: none allowed');
    assert(await p.isDisabled('#saml-save'), 'no SAML can be created');
    await openTab('entraId', p);
    assert(await p.isHidden('#form-entraId .managed-note') && await p.isEnabled('#entraId-save'), 'not managed: the admins\' own');
    await openTab('callbacks', p);
    eq(await p.inputValue('#callbacks-urls'), 'https://tools.acme.example/sso', 'the managed list');
    assert(await p.getAttribute('#callbacks-urls', 'readonly') !== null && await p.isDisabled('#callbacks-form button[type=submit]'), 'read-only');
    await openTab('network', p);
    eq(await p.inputValue('#network-proxy'), '', 'no proxy stored here');
    await waitText(p, '#network-effective', (t) => t.includes('http://corp:********@proxy.acme.example:3128/') && t.includes('policy'));
    assert(!(await p.innerText('#panel-network')).includes('ui-policy-pw'), 'the policy\'s proxy password is not shown');
    assert(await p.getAttribute('#network-proxy', 'readonly') !== null && await p.getAttribute('#network-noproxy', 'readonly') !== null, 'read-only');
    assert(await p.isDisabled('#network-form button[type=submit]'), 'Save stays off after the tab loaded');
    assert((await p.innerText('#network-form .managed-note')).includes(policyFile), 'the reason names the file');
    // Sign-in settings: each key on its own; the one managed is read-only, the others saved.
    await openTab('access', p);
    eq(await p.inputValue('#access-lifetime'), '7', 'the managed lifetime');
    assert(await p.getAttribute('#access-lifetime', 'readonly') !== null, 'lifetime read-only');
    assert((await p.innerText('#access-SessionLifetimeDays-field .managed-note')).includes(policyFile), 'the reason names the file');
    assert(await p.isHidden('#access-AdminGroups-field .managed-note') && await p.getAttribute('#access-groups', 'readonly') === null, 'AdminGroups the admins\' own');
    await p.fill('#access-groups', 'Amove Admins');
    await p.click('#access-form button[type=submit]');
    await waitText(p, '#access-form .status', (t) => t === 'Saved.');
    eq(await p.inputValue('#access-lifetime'), '7', 'still the policy\'s');
  } finally {
    await ctx.close();
    managed.child.kill('SIGTERM');
  }
});

test('no console errors or CSP violations', async () => {
  const bad = problems.filter((m) => !/status of 4\d\d/.test(m));
  eq(bad.length, 0, `console errors: ${bad.join(' | ')}`);
});

await runAll(async () => {
  await browser.close();
  agent.child.kill('SIGTERM');
  op.child.stdin.end();
  opDir?.child.stdin.end();
});
