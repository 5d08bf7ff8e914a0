// Shared helpers of the UI and desktop tests: a tiny test runner, the real agent binary and
// the real OpenID Provider (tests/idp/oidc), each started on a free port.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ADMIN = 'admin@acme.test';
export const ADMIN_PASSWORD = 'a long admin password';
export const USER = 'user@acme.test';
export const USER_PASSWORD = 'a long user password!';
export const ALICE = 'alice@example.com';
export const ALICE_PASSWORD = 'alice-password';

const tests = [];
export function test(name, fn) { tests.push({ name, fn }); }

export async function runAll(cleanup) {
  let passed = 0, failed = 0;
  // TEST_ONLY=regex runs the tests whose names match (a local shortcut; CI runs all).
  const only = process.env.TEST_ONLY ? new RegExp(process.env.TEST_ONLY) : null;
  for (const t of tests.filter((x) => !only || only.test(x.name))) {
    const t0 = Date.now();
    try {
      await t.fn();
      passed++;
      console.log(`PASS ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${t.name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  try { await cleanup?.(); } catch (e) { console.log(`cleanup: ${e}`); }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

export function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }
export function eq(a, b, msg) { if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`); }

export function tempDir(prefix) { return mkdtempSync(join(tmpdir(), prefix)); }

const children = [];
process.on('exit', () => { for (const c of children) { try { c.kill('SIGTERM'); } catch { /* gone */ } } });

/** Spawns `cmd` and resolves with the child and the `listening on http://…` URL it prints. */
export function spawnListening(cmd, args, opts = {}, what = cmd) {
  return new Promise((resolveP, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    children.push(child);
    const log = [];
    child.stderr.on('data', (d) => { log.push(String(d)); if (process.env.TEST_VERBOSE) process.stderr.write(`[${what}] ${d}`); });
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 60 s:\n${log.join('')}`)), 60000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening on (http:\/\/\S+)/.exec(line);
      if (m) { clearTimeout(timer); resolveP({ child, url: m[1], log }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited with ${code}:\n${log.join('')}`)); });
  });
}

export function agentBin(name = 'amove-agent') {
  const env = process.env[name === 'amove-agent' ? 'AMOVE_AGENT_BIN' : 'AMOVE_DESKTOP_BIN'];
  const p = env || join(ROOT, 'target', 'debug', name);
  if (!existsSync(p)) throw new Error(`${p} is missing: build it first (cargo build${name === 'amove-agent' ? '' : ' -p amove-desktop'})`);
  return p;
}

/** A data directory with account acme: its owner admin, a standard user with a password,
 *  and Alice (an SSO-only admin known to the test OpenID Provider). */
export function provision() {
  const dataDir = tempDir('amove-ui-data-');
  const bin = agentBin();
  const run = (args, env = {}) => execFileSync(bin, [...args, '--data-dir', dataDir], { env: { ...process.env, ...env }, stdio: 'pipe' });
  run(['init', '--account', 'acme', '--admin', ADMIN, '--name', 'Ada Admin'], { AMOVE_ADMIN_PASSWORD: ADMIN_PASSWORD });
  run(['user', 'add', '--account', 'acme', '--email', USER, '--name', 'Sam User'], { AMOVE_USER_PASSWORD: USER_PASSWORD });
  run(['user', 'add', '--account', 'acme', '--email', ALICE, '--admin', '--name', 'Alice Example']);
  return dataDir;
}

export async function startAgent(dataDir, env = {}) {
  return spawnListening(agentBin(), ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir],
    // No policy file unless a test gives one: the machine's must not leak in.
    { env: { ...process.env, AMOVE_AGENT_POLICY: join(dataDir, 'no-policy.json'), ...env } }, 'agent');
}

/** Starts the real OpenID Provider with one web client whose redirect URIs are given
 *  (`refresh`: it gets refresh tokens; `postLogoutRedirectUris`: where RP-initiated logout may
 *  return).
 *  `users` are added to Alice; `directory` turns on its directory APIs (tests/idp/oidc
 *  README, "Directory APIs"); `port` and `signingKey` let a test restart the same issuer. */
export async function startOidc(redirectUris, { native = false, users = [], directory, port = 0, signingKey, refresh = false, postLogoutRedirectUris } = {}) {
  const dir = join(ROOT, 'tests', 'idp', 'oidc');
  if (!existsSync(join(dir, 'node_modules', 'oidc-provider'))) {
    execFileSync('npm', ['ci', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' });
  }
  const config = {
    issuerPath: '',
    clients: [{
      client_id: 'amove-ui', client_secret: 'amove-ui-secret',
      application_type: native ? 'native' : 'web', redirect_uris: redirectUris,
      token_endpoint_auth_method: 'client_secret_basic',
      // `refresh`: refresh tokens too (rotated on every use; tests/idp/oidc README).
      grant_types: refresh ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
      ...(postLogoutRedirectUris ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
      response_types: ['code'], id_token_signed_response_alg: 'RS256',
    }],
    users: [{
      accountId: '00000000-0000-0000-0000-0000000000a1', email: ALICE, email_verified: true,
      name: 'Alice Example', given_name: 'Alice', family_name: 'Example', password: ALICE_PASSWORD,
    }, ...users],
    ...(directory ? { directory } : {}),
    ...(signingKey ? { signingKey } : {}),
  };
  const file = join(tempDir('amove-oidc-'), 'config.json');
  writeFileSync(file, JSON.stringify(config));
  const r = await spawnListening('node', [join(dir, 'server.mjs'), '--port', String(port), '--config', file, '--exit-with-stdin'], {}, 'oidc');
  return { ...r, clientId: 'amove-ui', clientSecret: 'amove-ui-secret', discovery: `${r.url}/.well-known/openid-configuration` };
}

/** The token exchange's password grant. */
export async function passwordToken(base, username, password) {
  const r = await fetch(`${base}/sso/ttapi/2.0/authz/0/authn`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }),
  });
  const j = await r.json();
  if (!j.access_token) throw new Error(`password grant failed: ${JSON.stringify(j)}`);
  return j.access_token;
}

/** Configures the account's active Okta provider pointing at the test OpenID Provider. */
export async function configureOkta(base, token, op) {
  const r = await fetch(`${base}/sso/setup_okta`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ ClientId: op.clientId, ClientSecret: op.clientSecret, OpenIdURL: op.discovery, Active: true }),
  });
  if (!r.ok) throw new Error(`setup_okta: ${r.status} ${await r.text()}`);
}

/** Logs in at the test OpenID Provider as a plain HTTP client (README "The HTTP steps"),
 *  following redirects until one leaves the provider; returns that redirect URL. */
export async function oidcLogin(authUrl, login, password) {
  const jar = new Map();
  const keep = (r) => {
    for (const c of r.headers.getSetCookie?.() || []) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const origin = new URL(authUrl).origin;
  let url = authUrl;
  let method = 'GET';
  let body;
  for (let i = 0; i < 12; i++) {
    const r = await fetch(url, {
      method, redirect: 'manual', body,
      headers: { cookie: cookie(), ...(body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}) },
    });
    keep(r);
    if (r.status >= 300 && r.status < 400) {
      const next = new URL(r.headers.get('location'), url).toString();
      if (!next.startsWith(origin)) return next;
      url = next; method = 'GET'; body = undefined;
      continue;
    }
    const html = await r.text();
    if (r.status === 200 && html.includes('name="password"')) {
      method = 'POST';
      body = new URLSearchParams({ login, password }).toString();
      continue;
    }
    throw new Error(`unexpected answer ${r.status} from the OpenID Provider at ${url}`);
  }
  throw new Error('too many redirects at the OpenID Provider');
}
