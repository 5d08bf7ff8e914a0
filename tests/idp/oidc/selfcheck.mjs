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

// ------------------------------------------------------------ directory APIs
const GRAPH_SCOPES = 'https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/GroupMember.Read.All';
const DIRECTORY_SCOPE = `openid email profile okta.users.read okta.groups.read ${GRAPH_SCOPES}`;

function directoryConfig(extra = {}) {
  const config = structuredClone(SAMPLE);
  delete config.extraScopes; // with `directory`, its scopes are offered by default
  config.users.push({
    accountId: '00ucarol', email: 'carol@example.com', email_verified: true, given_name: 'Carol', family_name: 'Many',
    password: 'carol-password', oid: 'c0000000-0000-0000-0000-0000000000c3', groups: ['engineering', 'sales', 'ops', 'admins'],
  });
  config.directory = {
    pageSize: 2,
    groups: [{ id: '00gempty', name: 'empty-group', description: 'nobody' }, { name: 'engineering', description: 'Engineers' }],
    extraUsers: { count: 3, groups: ['sso-users'] },
    ...extra,
  };
  return config;
}

async function api(url, token, headers = {}) {
  const res = await request(null, url, { headers: token ? { authorization: `Bearer ${token}`, ...headers } : headers });
  let json = null;
  try { json = JSON.parse(res.text); } catch { /* keep null */ }
  return { ...res, json };
}

function linkRel(headers, rel) {
  const all = headers.get('link') ?? '';
  const m = all.split(/,(?=\s*<)/).map((p) => /<([^>]+)>\s*;\s*rel="([^"]+)"/.exec(p)).find((x) => x && x[2] === rel);
  return m ? m[1] : null;
}

// Every page of an Okta list (Link rel="next") or a Graph list (@odata.nextLink).
async function allPages(url, token, okta) {
  const items = [];
  const pages = [];
  let next = url;
  while (next && pages.length < 50) {
    const r = await api(next, token);
    pages.push(r);
    if (r.status !== 200) break;
    items.push(...(okta ? r.json : r.json.value));
    next = okta ? linkRel(r.headers, 'next') : r.json['@odata.nextLink'];
  }
  return { items, pages };
}

async function directoryToken(srv, discovery, config, user, scope) {
  const client = config.clients[0];
  const redirectUri = 'http://127.0.0.1:54321/sso/callback';
  const f = await loginFlow({ label: `directory login (${scope.split(' ').length} scopes)`, discovery, client, redirectUri, user, scope });
  if (!f) return null;
  const tr = await tokenRequest(discovery, client, {
    grant_type: 'authorization_code', code: f.code, redirect_uri: redirectUri, code_verifier: f.verifier,
  }, 'client_secret_basic');
  return tr.json;
}

async function scenarioDirectory() {
  const config = directoryConfig();
  const srv = await startServer(config);
  try {
    const o = srv.origin;
    const discovery = JSON.parse((await request(null, `${o}/.well-known/openid-configuration`)).text);
    const [alice, bob] = config.users;
    const full = await directoryToken(srv, discovery, config, alice, DIRECTORY_SCOPE);
    const granted = new Set(full?.scope?.split(' '));
    check('directory: the token grants the Okta and Graph directory scopes (offered by default)',
      DIRECTORY_SCOPE.split(' ').every((s) => granted.has(s)), full?.scope);
    const plain = await directoryToken(srv, discovery, config, bob, 'openid email profile');
    const at = full.access_token;
    const nUsers = config.users.length + 3;

    // ---- Okta
    const users = await allPages(`${o}/api/v1/users?limit=200`, at, true);
    check('okta: /api/v1/users pages (pageSize 2) cover every user once',
      users.items.length === nUsers && new Set(users.items.map((u) => u.id)).size === nUsers
      && users.pages.length === Math.ceil(nUsers / 2), `${users.items.length} items, ${users.pages.length} pages`);
    const p1 = users.pages[0];
    check('okta: Link rel="self" and rel="next" are absolute, next carries after= and limit=',
      linkRel(p1.headers, 'self') === `${o}/api/v1/users?limit=200`
      && /^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/users\?after=[^&]+&limit=200$/.test(linkRel(p1.headers, 'next') ?? ''),
      p1.headers.get('link'));
    check('okta: the last page has no next link', linkRel(users.pages.at(-1).headers, 'next') === null);
    check('okta: X-Rate-Limit-* headers on every answer',
      ['x-rate-limit-limit', 'x-rate-limit-remaining', 'x-rate-limit-reset'].every((h) => /^\d+$/.test(p1.headers.get(h) ?? '')));
    const carol = users.items.find((u) => u.id === '00ucarol');
    check('okta: user objects are {id, status, profile: {login, email, firstName, lastName}}',
      carol?.status === 'ACTIVE' && carol.profile.login === 'carol@example.com' && carol.profile.email === 'carol@example.com'
      && carol.profile.firstName === 'Carol' && carol.profile.lastName === 'Many', JSON.stringify(carol));
    const groups = await allPages(`${o}/api/v1/groups`, at, true);
    const byName = new Map(groups.items.map((g) => [g.profile.name, g]));
    check('okta: /api/v1/groups lists declared groups (ids, descriptions, empty ones) and every named group',
      byName.get('empty-group')?.id === '00gempty' && byName.get('empty-group').type === 'OKTA_GROUP'
      && byName.get('engineering')?.profile.description === 'Engineers'
      && ['sso-users', 'sales', 'ops', 'admins'].every((n) => byName.has(n)) && groups.items.length === 6,
      JSON.stringify(groups.items.map((g) => g.profile.name)));
    const eng = await allPages(`${o}/api/v1/groups/${byName.get('engineering').id}/users`, at, true);
    check('okta: /api/v1/groups/{id}/users lists the members', JSON.stringify(eng.items.map((u) => u.id).sort())
      === JSON.stringify([alice.accountId, '00ucarol'].sort()), JSON.stringify(eng.items.map((u) => u.id)));
    const ug = await api(`${o}/api/v1/users/00ucarol/groups`, at);
    check('okta: /api/v1/users/{id}/groups', ug.status === 200 && ug.json.length === 4, ug.text);
    const badLimit = await api(`${o}/api/v1/users?limit=abc`, at);
    check('okta: a bad limit is 400 E0000001', badLimit.status === 400 && badLimit.json?.errorCode === 'E0000001'
      && Array.isArray(badLimit.json.errorCauses), badLimit.text);
    const none = await api(`${o}/api/v1/users`, null);
    const bogus = await api(`${o}/api/v1/users`, 'not-a-token-of-this-provider');
    check('okta: no or unknown token is 401 E0000011 with WWW-Authenticate error="invalid_token"',
      [none, bogus].every((r) => r.status === 401 && r.json?.errorCode === 'E0000011' && r.json.errorSummary === 'Invalid token provided'
        && /^Bearer .*error="invalid_token"/.test(r.headers.get('www-authenticate') ?? '')), `${none.text} ${bogus.text}`);
    const noScope = await api(`${o}/api/v1/users`, plain.access_token);
    check('okta: a token without okta.users.read is 403 E0000006 with error="insufficient_scope"',
      noScope.status === 403 && noScope.json?.errorCode === 'E0000006'
      && /error="insufficient_scope"/.test(noScope.headers.get('www-authenticate') ?? ''), noScope.text);

    // ---- Graph
    const gUsers = await allPages(`${o}/graph/v1.0/users?$select=id,userPrincipalName,mail,givenName,surname&$top=999`, at, false);
    const gCarol = gUsers.items.find((u) => u.mail === 'carol@example.com');
    check('graph: /users pages via absolute @odata.nextLink with $skiptoken, honouring $select',
      gUsers.items.length === nUsers && gUsers.pages.length === Math.ceil(nUsers / 2)
      && /^http:\/\/127\.0\.0\.1:\d+\/graph\/v1\.0\/users\?.*\$skiptoken=/.test(gUsers.pages[0].json['@odata.nextLink'])
      && gUsers.pages[0].json['@odata.context'] === `${o}/graph/v1.0/$metadata#users(id,userPrincipalName,mail,givenName,surname)`
      && gCarol?.id === 'c0000000-0000-0000-0000-0000000000c3' && gCarol.givenName === 'Carol' && !('displayName' in gCarol),
      JSON.stringify(gUsers.pages[0].json));
    const gGroups = await allPages(`${o}/graph/v1.0/groups?$select=id,displayName,description&$top=999`, at, false);
    check('graph: /groups', gGroups.items.length === 6 && gGroups.items.some((g) => g.id === '00gempty' && g.description === 'nobody'),
      JSON.stringify(gGroups.items));
    const gEng = await allPages(`${o}/graph/v1.0/groups/${byName.get('engineering').id}/transitiveMembers?$select=id&$top=999`, at, false);
    check('graph: /groups/{id}/transitiveMembers lists members by object id with @odata.type',
      gEng.items.length === 2 && gEng.items.every((m) => m['@odata.type'] === '#microsoft.graph.user')
      && gEng.items.some((m) => m.id === 'c0000000-0000-0000-0000-0000000000c3'), JSON.stringify(gEng.items));
    const top = await api(`${o}/graph/v1.0/users?$top=1000`, at);
    const sel = await api(`${o}/graph/v1.0/users?$select=nope`, at);
    check('graph: $top out of range and unknown $select properties are 400s in Graph format',
      top.status === 400 && top.json?.error?.code === 'Request_UnsupportedQuery' && sel.status === 400 && !!sel.json?.error?.innerError,
      `${top.text} ${sel.text}`);
    const g401 = await api(`${o}/graph/v1.0/users`, 'nope');
    check('graph: an unknown token is 401 InvalidAuthenticationToken',
      g401.status === 401 && g401.json?.error?.code === 'InvalidAuthenticationToken' && !!g401.headers.get('www-authenticate'), g401.text);
    const g403 = await api(`${o}/graph/v1.0/groups`, plain.access_token);
    check('graph: a token without GroupMember.Read.All is 403 Authorization_RequestDenied',
      g403.status === 403 && g403.json?.error?.code === 'Authorization_RequestDenied'
      && g403.json.error.message === 'Insufficient privileges to complete the operation.', g403.text);
    const meCarolToken = await directoryToken(srv, discovery, config, config.users[2], 'openid email profile');
    const mine = await allPages(`${o}/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName&$top=1`, meCarolToken.access_token, false);
    check('graph: me/transitiveMemberOf/microsoft.graph.group works with a plain sign-in token, $top/$select honoured',
      mine.pages.length === 4 && mine.items.map((g) => g.displayName).sort().join() === 'admins,engineering,ops,sales'
      && mine.items.every((g) => Object.keys(g).join() === 'id,displayName')
      && mine.pages[0].json['@odata.context'] === `${o}/graph/v1.0/$metadata#groups(id,displayName)`, JSON.stringify(mine.items));
    const mineAll = await api(`${o}/graph/v1.0/me/transitiveMemberOf`, meCarolToken.access_token);
    check('graph: me/transitiveMemberOf lists directoryObjects with @odata.type',
      mineAll.status === 200 && mineAll.json.value.every((g) => g['@odata.type'] === '#microsoft.graph.group'), mineAll.text);

    // ---- revocation: the provider's own revocation endpoint kills the token for the APIs too
    const rv = await request(null, discovery.revocation_endpoint, {
      method: 'POST',
      form: { token: at, client_id: config.clients[0].client_id, client_secret: config.clients[0].client_secret },
    });
    const after = await api(`${o}/api/v1/users`, at);
    check('directory: a revoked access token is refused (401)', rv.status === 200 && after.status === 401, `${rv.status} ${after.status}`);
    await srv.stop();
  } catch (err) {
    check('directory scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }
}

async function scenarioDirectoryThrottle() {
  const config = directoryConfig({ throttleAt: 2, retryAfter: 2 });
  config.issuerPath = '/11111111-1111-1111-1111-111111111111/v2.0';
  config.extraScopes = ['okta.users.read']; // withholds the others
  const srv = await startServer(config);
  try {
    const o = srv.origin;
    const discovery = JSON.parse((await request(null, `${o}${config.issuerPath}/.well-known/openid-configuration`)).text);
    const tok = await directoryToken(srv, discovery, config, config.users[0], DIRECTORY_SCOPE);
    check('throttle: an explicit extraScopes withholds the other directory scopes',
      tok?.scope === 'openid email profile okta.users.read', tok?.scope);
    const first = await api(`${o}/api/v1/users`, tok.access_token);
    const second = await api(`${o}/api/v1/users`, tok.access_token);
    const reset = Number(second.headers.get('x-rate-limit-reset'));
    const now = Math.floor(Date.now() / 1000);
    check('throttle: directory APIs live at the origin under a tenant issuer path', first.status === 200, first.text);
    check('throttle: the 2nd request is 429 E0000047 with X-Rate-Limit-Remaining 0 and a Reset in the future',
      second.status === 429 && second.json?.errorCode === 'E0000047' && second.headers.get('x-rate-limit-remaining') === '0'
      && reset >= now + 1 && reset <= now + 3 && Array.isArray(second.json.errorCauses) && !!second.json.errorId,
      `${second.status} ${second.text} reset=${reset} now=${now}`);
    const third = await api(`${o}/api/v1/users`, tok.access_token);
    check('throttle: only once', third.status === 200, third.text);
    const g = await api(`${o}/graph/v1.0/groups`, tok.access_token);
    check('throttle: Graph refuses a token whose Graph scopes were withheld', g.status === 403, g.text);
    const log = await api(`${o}/_idp/directory-log`);
    check('throttle: /_idp/directory-log records each directory request with its status',
      JSON.stringify(log.json?.map((e) => e.status)) === '[200,429,200,403]', log.text);
    await srv.stop();
  } catch (err) {
    check('throttle scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }

  const graphCfg = directoryConfig({ throttleAt: 1 });
  const srv2 = await startServer(graphCfg);
  try {
    const discovery = JSON.parse((await request(null, `${srv2.origin}/.well-known/openid-configuration`)).text);
    const tok = await directoryToken(srv2, discovery, graphCfg, graphCfg.users[0], DIRECTORY_SCOPE);
    const r = await api(`${srv2.origin}/graph/v1.0/users`, tok.access_token);
    check('throttle: Graph 429 has Retry-After and {error: {code: TooManyRequests, message, innerError: {date, request-id}}}',
      r.status === 429 && r.headers.get('retry-after') === '1' && r.json?.error?.code === 'TooManyRequests'
      && !!r.json.error.innerError?.date && !!r.json.error.innerError['request-id'], r.text);
    await srv2.stop();
  } catch (err) {
    check('graph throttle scenario ran without exceptions', false, `${err.stack}\n${srv2.stderr()}`);
    await srv2.stop();
  }
}

async function scenarioDirectoryWrites() {
  const config = directoryConfig();
  config.extraScopes = ['okta.users.read', 'okta.users.manage', 'https://graph.microsoft.com/User.ReadWrite.All'];
  const srv = await startServer(config);
  try {
    const o = srv.origin;
    const discovery = JSON.parse((await request(null, `${o}/.well-known/openid-configuration`)).text);
    const [alice, bob, carol] = config.users;
    const tok = await directoryToken(srv, discovery, config, alice, `openid email ${config.extraScopes.join(' ')}`);
    const send = (method, url, body, { token = tok.access_token, type = 'application/json' } = {}) => fetch(url, {
      method, headers: { authorization: `Bearer ${token}`, 'content-type': type }, body, signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    }).then(async (r) => ({ status: r.status, text: await r.text() }));

    const up = await send('POST', `${o}/api/v1/users/${alice.accountId}`, JSON.stringify({ profile: { email: 'alice.new@example.com' } }));
    check('writes: Okta POST /api/v1/users/{id} updates the profile', up.status === 200
      && JSON.parse(up.text).profile.email === 'alice.new@example.com', up.text);
    const f = await directoryToken(srv, discovery, config, { ...alice, email: 'alice.new@example.com' }, 'openid email');
    const claims = f?.id_token ? decodeJwt(f.id_token).payload : {};
    check('writes: the changed email is the one the OP signs in with and puts in the ID token', claims.email === 'alice.new@example.com',
      JSON.stringify(claims));
    const bad = await send('POST', `${o}/api/v1/users/${alice.accountId}`, '{"profile": ');
    const unknown = await send('POST', `${o}/api/v1/users/${alice.accountId}`, JSON.stringify({ profile: { shoeSize: '9' } }));
    check('writes: a malformed body is 400 E0000003, an unknown profile property 400 E0000001',
      bad.status === 400 && JSON.parse(bad.text).errorCode === 'E0000003'
      && unknown.status === 400 && JSON.parse(unknown.text).errorCode === 'E0000001', `${bad.text} ${unknown.text}`);
    const big = await send('POST', `${o}/api/v1/users/${alice.accountId}`, JSON.stringify({ profile: { firstName: 'x'.repeat(70000) } }));
    check('writes: bodies are bounded (413)', big.status === 413, big.text);

    const del1 = await send('DELETE', `${o}/api/v1/users/${bob.accountId}`);
    const got = await api(`${o}/api/v1/users/${bob.accountId}`, tok.access_token);
    const list = await allPages(`${o}/api/v1/users`, tok.access_token, true);
    check('writes: the first Okta DELETE deactivates (DEPROVISIONED, no longer listed)',
      del1.status === 204 && got.json?.status === 'DEPROVISIONED' && !list.items.some((u) => u.id === bob.accountId),
      `${del1.status} ${got.text}`);
    const jar = new CookieJar();
    const start = await request(jar, authorizeUrl(discovery, {
      client_id: config.clients[0].client_id, response_type: 'code', scope: 'openid', redirect_uri: 'amove://sso/callback', state: 's',
    }));
    const form = await request(jar, start.location, { method: 'POST', form: { login: bob.email, password: bob.password } });
    check('writes: a deactivated user cannot sign in', form.status === 200 && /id="error"/.test(form.text), `${form.status}`);
    const del2 = await send('DELETE', `${o}/api/v1/users/${bob.accountId}`);
    const gone = await api(`${o}/api/v1/users/${bob.accountId}`, tok.access_token);
    check('writes: the second DELETE deletes (404 E0000007)', del2.status === 204 && gone.status === 404
      && gone.json?.errorCode === 'E0000007', gone.text);

    const patch = await send('PATCH', `${o}/graph/v1.0/users/${carol.oid}`, JSON.stringify({ surname: 'Renamed' }));
    const g = await api(`${o}/graph/v1.0/users/${carol.oid}?$select=id,surname`, tok.access_token);
    check('writes: Graph PATCH /users/{id} (204) changes the user', patch.status === 204 && g.json?.surname === 'Renamed', g.text);
    const gdel = await send('DELETE', `${o}/graph/v1.0/users/${carol.oid}`);
    const g404 = await api(`${o}/graph/v1.0/users/${carol.oid}`, tok.access_token);
    check('writes: Graph DELETE /users/{id} (204), then 404 Request_ResourceNotFound', gdel.status === 204 && g404.status === 404
      && g404.json?.error?.code === 'Request_ResourceNotFound', g404.text);
    const readOnly = await directoryToken(srv, discovery, config, { ...alice, email: 'alice.new@example.com' }, 'openid okta.users.read');
    const ro = await send('DELETE', `${o}/api/v1/users/${alice.accountId}`, undefined, { token: readOnly.access_token });
    check('writes: changes need okta.users.manage (403 E0000006)', ro.status === 403 && JSON.parse(ro.text).errorCode === 'E0000006', ro.text);
    await srv.stop();
  } catch (err) {
    check('writes scenario ran without exceptions', false, `${err.stack}\n${srv.stderr()}`);
    await srv.stop();
  }
}

await scenarioRoot();
await scenarioTenant();
await scenarioSlash();
await scenarioDirectory();
await scenarioDirectoryThrottle();
await scenarioDirectoryWrites();

console.log(failed === 0 ? 'PASS' : 'FAIL');
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
