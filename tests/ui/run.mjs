// Browser end-to-end tests of ui/ against the real agent (target/debug/amove-agent), in
// Debian's headless chromium driven by playwright-core, with the real OpenID Provider of
// tests/idp/oidc for SSO. Prints "N passed, N failed"; exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  test, runAll, assert, eq, tempDir, provision, startAgent, startOidc, passwordToken,
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
page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
page.on('pageerror', (e) => problems.push(String(e)));
page.setDefaultTimeout(15000);

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
  assert(stored && stored.startsWith('amv_'), 'token kept in sessionStorage');
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
  await page.click('#saml-save');
  await waitText(page, '#form-saml .status', (t) => t === 'Created.');
  assert((await text('#saml-acs')).endsWith('/sso/saml/acs'), 'ACS URL shown');
  assert((await page.inputValue('#saml-Certificate')).includes('BEGIN CERTIFICATE'), 'certificate viewable');
  await waitText(page, '#saml-metadata', (t) => t.length > 0);
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

test('no console errors or CSP violations', async () => {
  const bad = problems.filter((m) => !/status of 4\d\d/.test(m));
  eq(bad.length, 0, `console errors: ${bad.join(' | ')}`);
});

await runAll(async () => {
  await browser.close();
  agent.child.kill('SIGTERM');
  op.child.stdin.end();
});
