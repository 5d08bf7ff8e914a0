#!/usr/bin/env node
// Self-check for server.mjs: starts the provider (several configs), drives the
// authorization-code + PKCE flow as a plain HTTP client (manual redirects,
// cookie jar, HTML form POST, no JavaScript) and checks the tokens.
// Prints one line per check, then PASS or FAIL and "N passed, N failed".
// Exit code 0 on PASS, 1 on FAIL. Only talks to 127.0.0.1.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SAMPLE = JSON.parse(fs.readFileSync(path.join(HERE, 'sample-config.json'), 'utf8'));
const STEP_TIMEOUT_MS = 10_000;

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed += 1; else failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? ` -- ${detail}` : ''}`);
  return ok;
}

// ------------------------------------------------------------ server process
async function startServer(config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-idp-selfcheck-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  let stdout = '';
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start; stderr:\n${stderr}`)), STEP_TIMEOUT_MS);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stdout);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}); stderr:\n${stderr}`)); });
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    origin,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const r = await exited;
      clearTimeout(t);
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

// ------------------------------------------------------------ cookie jar
class CookieJar {
  #cookies = new Map(); // key name|path -> { name, value, path, expires }

  store(url, response) {
    const u = new URL(url);
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let cpath = u.pathname.replace(/\/[^/]*$/, '') || '/';
      let expires = Infinity;
      for (const a of attrs) {
        const [k, ...v] = a.trim().split('=');
        const val = v.join('=');
        if (k.toLowerCase() === 'path') cpath = val || '/';
        if (k.toLowerCase() === 'expires') expires = Date.parse(val);
        if (k.toLowerCase() === 'max-age') expires = Date.now() + Number(val) * 1000;
      }
      const key = `${name}|${cpath}`;
      if (expires <= Date.now()) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path: cpath, expires });
    }
  }

  header(url) {
    const p = new URL(url).pathname;
    const now = Date.now();
    const match = [...this.#cookies.values()]
      .filter((c) => c.expires > now)
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .sort((a, b) => b.path.length - a.path.length);
    return match.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

async function request(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, {
    method, headers: h, body, redirect: 'manual', signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  jar?.store(url, res);
  const text = await res.text();
  const location = res.headers.get('location');
  return {
    status: res.status,
    text,
    headers: res.headers,
    location: location ? new URL(location, url).href : null,
    rawLocation: location,
  };
}

// ------------------------------------------------------------ helpers
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const pkcePair = () => {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
};

function decodeJwt(jwt) {
  const [h, p, s] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

function verifyRs256(jwt, jwks) {
  const { header, signingInput, signature } = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return false;
  if (jwk.d) return false; // private parts must never be published
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  return crypto.verify('sha256', Buffer.from(signingInput), key, signature);
}

function formAction(html, pageUrl) {
  const m = /<form[^>]*\baction="([^"]+)"/i.exec(html);
  return m ? new URL(m[1].replace(/&amp;/g, '&'), pageUrl).href : null;
}

function inputValue(html, name) {
  const m = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`, 'i').exec(html);
  return m ? m[1] : null;
}

// Follow 3xx hops (cookie jar kept) until the Location targets redirectUri.
async function followToRedirectUri(jar, start, redirectUri, maxHops = 10) {
  let res = start;
  const hops = [];
  for (let i = 0; i < maxHops; i += 1) {
    if (res.status < 300 || res.status >= 400 || !res.rawLocation) return { res, hops, final: null };
    if (res.rawLocation.startsWith(redirectUri)) return { res, hops, final: res.rawLocation };
    hops.push(`${res.status} ${res.location}`);
    res = await request(jar, res.location);
  }
  return { res, hops, final: null };
}

function authorizeUrl(discovery, params) {
  const u = new URL(discovery.authorization_endpoint);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

// Full interactive flow: authorize -> login form -> (auto consent) -> code.
async function loginFlow({
  label, discovery, client, redirectUri, user, scope = 'openid email profile', jar = new CookieJar(),
  expectForm = true, wrongPassword = false, loginHint, extra = {},
}) {
  const { verifier, challenge } = pkcePair();
  const state = b64url(crypto.randomBytes(12));
  const nonce = b64url(crypto.randomBytes(12));
  const url = authorizeUrl(discovery, {
    client_id: client.client_id,
    response_type: 'code',
    scope,
    redirect_uri: redirectUri,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    login_hint: loginHint,
    ...extra,
  });

  let res = await request(jar, url);
  if (expectForm) {
    check(`${label}: authorize redirects (303) to the interaction URL`,
      res.status === 303 && /\/interaction\/[^/]+$/.test(new URL(res.location).pathname),
      `${res.status} ${res.location} ${res.text.slice(0, 200)}`);
    const interactionUrl = res.location;
    res = await request(jar, interactionUrl);
    const action = formAction(res.text, interactionUrl);
    check(`${label}: interaction GET shows the login form`,
      res.status === 200 && action === interactionUrl && /name="login"/.test(res.text) && /name="password"/.test(res.text),
      `${res.status} action=${action}`);
    if (loginHint) {
      check(`${label}: login_hint prefills the login field`, inputValue(res.text, 'login') === loginHint,
        inputValue(res.text, 'login'));
    }
    if (wrongPassword) {
      res = await request(jar, action, { method: 'POST', form: { login: user.email, password: 'wrong-password' } });
      check(`${label}: wrong password shows the form again with an error`,
        res.status === 200 && /id="error"/.test(res.text) && formAction(res.text, action) === interactionUrl,
        `${res.status} ${res.text.slice(0, 200)}`);
    }
    res = await request(jar, action, { method: 'POST', form: { login: user.email, password: user.password } });
    check(`${label}: correct login POST redirects (303)`, res.status === 303 && !!res.location,
      `${res.status} ${res.text.slice(0, 300)}`);
  }
  const { final, hops, res: last } = await followToRedirectUri(jar, res, redirectUri);
  const ok = check(`${label}: redirected to redirect_uri with a code`, !!final,
    `last ${last.status} ${last.location ?? ''} ${last.text.slice(0, 300)} hops=${hops.join(' | ')}`);
  if (!ok) return null;
  const q = new URL(final).searchParams;
  check(`${label}: callback carries state and iss`,
    q.get('state') === state && q.get('iss') === discovery.issuer && !!q.get('code'),
    final);
  return {
    code: q.get('code'), verifier, nonce, state, hops, jar,
  };
}

async function tokenRequest(discovery, client, form, authMethod) {
  const headers = { accept: 'application/json' };
  const body = { ...form };
  if (authMethod === 'client_secret_basic') {
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(client.client_id)}:${enc(client.client_secret)}`).toString('base64')}`;
  } else {
    body.client_id = client.client_id;
    body.client_secret = client.client_secret;
  }
  const res = await request(null, discovery.token_endpoint, { method: 'POST', form: body, headers });
  let json = null;
  try { json = JSON.parse(res.text); } catch { /* keep null */ }
  return { status: res.status, json };
}

function checkIdToken(label, idToken, jwks, { discovery, client, user, nonce }) {
  const sigOk = verifyRs256(idToken, jwks);
  check(`${label}: ID token is RS256 and verifies against jwks_uri`, sigOk);
  const { payload } = decodeJwt(idToken);
  check(`${label}: ID token iss/aud`, payload.iss === discovery.issuer && payload.aud === client.client_id,
    `iss=${payload.iss} aud=${payload.aud}`);
  check(`${label}: ID token sub/email/nonce`,
    payload.sub === user.accountId && payload.email === user.email && payload.nonce === nonce,
    JSON.stringify(payload));
  const expectedProfile = {
    email_verified: user.email_verified,
    name: user.name,
    given_name: user.given_name,
    family_name: user.family_name,
    preferred_username: user.preferred_username ?? user.email,
  };
  for (const k of ['oid', 'tid', 'groups']) if (user[k] !== undefined) expectedProfile[k] = user[k];
  const mismatched = Object.entries(expectedProfile)
    .filter(([k, v]) => JSON.stringify(payload[k]) !== JSON.stringify(v)).map(([k]) => k);
  check(`${label}: ID token carries profile/email/extra claims (${Object.keys(expectedProfile).join(',')})`,
    mismatched.length === 0, `mismatched: ${mismatched.join(',')} in ${JSON.stringify(payload)}`);
  return payload;
}

// ------------------------------------------------------------ scenarios
async function scenarioRoot() {
  const config = structuredClone(SAMPLE);
  const srv = await startServer(config);
  try {
    const disc = await request(null, `${srv.origin}/.well-known/openid-configuration`);
    const discovery = JSON.parse(disc.text);
    check('root: discovery issuer equals the origin (no trailing slash for issuerPath "")',
      disc.status === 200 && discovery.issuer === srv.origin, discovery.issuer);
    check('root: discovery advertises S256, basic and post auth',
      discovery.code_challenge_methods_supported?.includes('S256')
      && discovery.token_endpoint_auth_methods_supported?.includes('client_secret_basic')
      && discovery.token_endpoint_auth_methods_supported?.includes('client_secret_post'));
    const jwks = JSON.parse((await request(null, discovery.jwks_uri)).text);
    check('root: jwks has one public RSA key', jwks.keys?.length === 1 && jwks.keys[0].kty === 'RSA' && !jwks.keys[0].d);

    const native = config.clients.find((c) => c.client_id === 'amove-desktop');
    const webPost = config.clients.find((c) => c.client_id === 'amove-web-post');
    const [alice, bob] = config.users;

    // 1) Native client, loopback redirect with a port that is not registered
    //    (native loopback redirect URIs match on any port), client_secret_basic.
    const redirect1 = 'http://127.0.0.1:54321/sso/callback';
    const f1 = await loginFlow({
      label: 'basic', discovery, client: native, redirectUri: redirect1, user: alice,
      scope: 'openid email profile offline_access okta.users.read', wrongPassword: true, loginHint: alice.email,
    });
    if (f1) {
      check('basic: after the login POST only the resume hop (/auth/<uid>) precedes the callback (consent automatic)',
        f1.hops.length === 1 && /\/auth\/[^/]+$/.test(new URL(f1.hops[0].split(' ')[1]).pathname), f1.hops.join(' | '));
      const tr = await tokenRequest(discovery, native, {
        grant_type: 'authorization_code', code: f1.code, redirect_uri: redirect1, code_verifier: f1.verifier,
      }, 'client_secret_basic');
      check('basic: token endpoint (client_secret_basic + code_verifier) returns tokens',
        tr.status === 200 && !!tr.json?.id_token && !!tr.json?.access_token && tr.json?.token_type === 'Bearer',
        `${tr.status} ${JSON.stringify(tr.json)}`);
      if (tr.json?.id_token) {
        checkIdToken('basic', tr.json.id_token, jwks, {
          discovery, client: native, user: alice, nonce: f1.nonce,
        });
        check('basic: granted scope includes the extra scope', tr.json.scope?.split(' ').includes('okta.users.read'), tr.json.scope);
        check('basic: refresh_token issued', !!tr.json.refresh_token);
        let refreshToken = tr.json.refresh_token;
        if (refreshToken) {
          const rt = await tokenRequest(discovery, native, { grant_type: 'refresh_token', refresh_token: refreshToken }, 'client_secret_basic');
          check('basic: refresh_token grant returns a new ID token', rt.status === 200 && !!rt.json?.id_token, JSON.stringify(rt.json));
          if (rt.json?.id_token) checkIdToken('basic(refresh)', rt.json.id_token, jwks, { discovery, client: native, user: alice, nonce: f1.nonce });
          refreshToken = rt.json?.refresh_token ?? refreshToken;
        }
        const ui = await request(null, discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tr.json.access_token}` } });
        const uij = JSON.parse(ui.text || '{}');
        check('basic: userinfo returns sub and email', ui.status === 200 && uij.sub === alice.accountId && uij.email === alice.email, ui.text);
        const again = await tokenRequest(discovery, native, {
          grant_type: 'authorization_code', code: f1.code, redirect_uri: redirect1, code_verifier: f1.verifier,
        }, 'client_secret_basic');
        check('basic: code reuse is rejected (invalid_grant)', again.status === 400 && again.json?.error === 'invalid_grant', JSON.stringify(again.json));
        if (refreshToken) {
          const rt = await tokenRequest(discovery, native, { grant_type: 'refresh_token', refresh_token: refreshToken }, 'client_secret_basic');
          check('basic: code reuse revoked the grant (refresh now invalid_grant)', rt.status === 400 && rt.json?.error === 'invalid_grant', JSON.stringify(rt.json));
        }
      }

      // 2) Same browser (cookie jar), other client, client_secret_post: the SSO
      //    session skips the login form; consent is granted automatically.
      const redirect2 = 'http://localhost:29123/sso/callback';
      const f2 = await loginFlow({
        label: 'post+sso', discovery, client: webPost, redirectUri: redirect2, user: alice, jar: f1.jar, expectForm: false,
      });
      if (f2) {
        check('post+sso: existing session skips the form; consent interaction answers 303 by itself',
          f2.hops.length === 2 && /\/interaction\/[^/]+$/.test(f2.hops[0]) && /\/auth\/[^/]+$/.test(f2.hops[1]),
          f2.hops.join(' | '));
        const bad = await tokenRequest(discovery, webPost, {
          grant_type: 'authorization_code', code: f2.code, redirect_uri: redirect2, code_verifier: pkcePair().verifier,
        }, 'client_secret_post');
        check('post+sso: wrong code_verifier is rejected (invalid_grant)', bad.status === 400 && bad.json?.error === 'invalid_grant', JSON.stringify(bad.json));
        const f2b = await loginFlow({
          label: 'post+sso#2', discovery, client: webPost, redirectUri: redirect2, user: alice, jar: f1.jar, expectForm: false,
        });
        if (f2b) {
          check('post+sso#2: client with an existing grant goes straight to the redirect_uri', f2b.hops.length === 0, f2b.hops.join(' | '));
          const tr2 = await tokenRequest(discovery, webPost, {
            grant_type: 'authorization_code', code: f2b.code, redirect_uri: redirect2, code_verifier: f2b.verifier,
          }, 'client_secret_post');
          check('post+sso: token endpoint (client_secret_post) returns an ID token', tr2.status === 200 && !!tr2.json?.id_token, JSON.stringify(tr2.json));
          if (tr2.json?.id_token) checkIdToken('post+sso', tr2.json.id_token, jwks, { discovery, client: webPost, user: alice, nonce: f2b.nonce });
        }
        const basicOnPost = await tokenRequest(discovery, webPost, {
          grant_type: 'authorization_code', code: 'x', redirect_uri: redirect2, code_verifier: pkcePair().verifier,
        }, 'client_secret_basic');
        // oidc-provider treats client_secret_basic and client_secret_post as
        // interchangeable: client auth passes, the bogus code then fails.
        check('post+sso: client_secret_basic is also accepted for a client_secret_post client',
          basicOnPost.status === 400 && basicOnPost.json?.error === 'invalid_grant', JSON.stringify(basicOnPost.json));
        const wrongSecret = await tokenRequest(discovery, { ...webPost, client_secret: 'nope' }, {
          grant_type: 'authorization_code', code: 'x', redirect_uri: redirect2, code_verifier: pkcePair().verifier,
        }, 'client_secret_post');
        check('post+sso: wrong client_secret is refused (401 invalid_client)',
          wrongSecret.status === 401 && wrongSecret.json?.error === 'invalid_client', JSON.stringify(wrongSecret.json));
      }

      // prompt=login shows the form despite the session; unknown scopes are dropped.
      const f4 = await loginFlow({
        label: 'prompt=login', discovery, client: native, redirectUri: 'amove://sso/callback', user: alice, jar: f1.jar,
        scope: 'openid email not.a.configured.scope', extra: { prompt: 'login' },
      });
      if (f4) {
        const tr4 = await tokenRequest(discovery, native, {
          grant_type: 'authorization_code', code: f4.code, redirect_uri: 'amove://sso/callback', code_verifier: f4.verifier,
        }, 'client_secret_basic');
        check('prompt=login: unknown scope silently dropped', tr4.status === 200 && tr4.json?.scope === 'openid email', JSON.stringify(tr4.json));
      }
    }

    // 3) Private-use scheme redirect (amove://) and second user, fresh browser.
    const f3 = await loginFlow({
      label: 'custom-scheme', discovery, client: native, redirectUri: 'amove://sso/callback', user: bob,
    });
    if (f3) {
      const tr3 = await tokenRequest(discovery, native, {
        grant_type: 'authorization_code', code: f3.code, redirect_uri: 'amove://sso/callback', code_verifier: f3.verifier,
      }, 'client_secret_basic');
      check('custom-scheme: token exchange works', tr3.status === 200 && !!tr3.json?.id_token, JSON.stringify(tr3.json));
      if (tr3.json?.id_token) checkIdToken('custom-scheme', tr3.json.id_token, jwks, { discovery, client: native, user: bob, nonce: f3.nonce });
    }

    // 4) Unregistered redirect URI -> error page, no redirect.
    const bad = await request(new CookieJar(), authorizeUrl(discovery, {
      client_id: native.client_id, response_type: 'code', scope: 'openid', redirect_uri: 'http://127.0.0.1:5000/other', state: 's',
    }));
    check('unregistered redirect_uri is refused with a 400 page', bad.status === 400 && !bad.location, `${bad.status} ${bad.location}`);

    const stop = await srv.stop();
    check('root: SIGTERM exits cleanly (code 0)', stop.code === 0, JSON.stringify(stop));
    check('root: stdout is exactly the listening line', srv.stdout() === `listening on ${srv.origin}\n`, JSON.stringify(srv.stdout()));
  } catch (err) {
    check('root scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }
}

async function scenarioTenant() {
  const config = structuredClone(SAMPLE);
  config.issuerPath = '/11111111-1111-1111-1111-111111111111/v2.0';
  config.pkceRequired = true;
  const srv = await startServer(config);
  try {
    const issuer = `${srv.origin}${config.issuerPath}`;
    const disc = await request(null, `${issuer}/.well-known/openid-configuration`);
    const discovery = JSON.parse(disc.text);
    check('tenant: discovery issuer equals the URL prefix', disc.status === 200 && discovery.issuer === issuer, discovery.issuer);
    check('tenant: endpoints live under the issuer path',
      [discovery.authorization_endpoint, discovery.token_endpoint, discovery.jwks_uri, discovery.userinfo_endpoint]
        .every((u) => u?.startsWith(`${issuer}/`)), JSON.stringify(discovery));
    const rootDisc = await request(null, `${srv.origin}/.well-known/openid-configuration`);
    check('tenant: nothing is served outside the issuer path', rootDisc.status === 404, String(rootDisc.status));
    const jwks = JSON.parse((await request(null, discovery.jwks_uri)).text);
    const native = config.clients.find((c) => c.client_id === 'amove-desktop');
    const alice = config.users[0];

    const noPkce = await request(new CookieJar(), authorizeUrl(discovery, {
      client_id: native.client_id, response_type: 'code', scope: 'openid', redirect_uri: 'amove://sso/callback', state: 'st',
    }));
    const errLoc = noPkce.rawLocation ? new URL(noPkce.rawLocation).searchParams : null;
    check('tenant: pkceRequired rejects a request without code_challenge',
      noPkce.status === 303 && errLoc?.get('error') === 'invalid_request' && errLoc?.get('state') === 'st', noPkce.rawLocation);

    const f = await loginFlow({
      label: 'tenant', discovery, client: native, redirectUri: 'http://localhost:29123/sso/callback', user: alice,
    });
    if (f) {
      const tr = await tokenRequest(discovery, native, {
        grant_type: 'authorization_code', code: f.code, redirect_uri: 'http://localhost:29123/sso/callback', code_verifier: f.verifier,
      }, 'client_secret_basic');
      check('tenant: token exchange works', tr.status === 200 && !!tr.json?.id_token, JSON.stringify(tr.json));
      if (tr.json?.id_token) checkIdToken('tenant', tr.json.id_token, jwks, { discovery, client: native, user: alice, nonce: f.nonce });
    }
    const stop = await srv.stop();
    check('tenant: SIGTERM exits cleanly (code 0)', stop.code === 0, JSON.stringify(stop));
  } catch (err) {
    check('tenant scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }
}

async function scenarioSlash() {
  const config = structuredClone(SAMPLE);
  config.issuerPath = '/';
  const srv = await startServer(config);
  try {
    const disc = await request(null, `${srv.origin}/.well-known/openid-configuration`);
    const discovery = JSON.parse(disc.text);
    check('slash: issuerPath "/" gives issuer with a trailing slash', discovery.issuer === `${srv.origin}/`, discovery.issuer);
    const dbl = await request(null, `${srv.origin}//.well-known/openid-configuration`);
    check('slash: issuer + "/.well-known/..." (double slash) also works', dbl.status === 200, String(dbl.status));
    const f = await loginFlow({
      label: 'slash', discovery, client: config.clients[0], redirectUri: 'amove://sso/callback', user: config.users[0],
    });
    if (f) {
      const tr = await tokenRequest(discovery, config.clients[0], {
        grant_type: 'authorization_code', code: f.code, redirect_uri: 'amove://sso/callback', code_verifier: f.verifier,
      }, 'client_secret_basic');
      const jwks = JSON.parse((await request(null, discovery.jwks_uri)).text);
      if (check('slash: token exchange works', tr.status === 200 && !!tr.json?.id_token, JSON.stringify(tr.json))) {
        checkIdToken('slash', tr.json.id_token, jwks, { discovery, client: config.clients[0], user: config.users[0], nonce: f.nonce });
      }
    }
    const stop = await srv.stop();
    check('slash: SIGTERM exits cleanly (code 0)', stop.code === 0, JSON.stringify(stop));
  } catch (err) {
    check('slash scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }
}

await scenarioRoot();
await scenarioTenant();
await scenarioSlash();

console.log(failed === 0 ? 'PASS' : 'FAIL');
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
