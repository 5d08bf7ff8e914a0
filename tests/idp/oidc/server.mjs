#!/usr/bin/env node
// Local OpenID Provider for integration tests, built on `oidc-provider`.
//
//   node server.mjs [--port N] [--config FILE] [--exit-with-stdin]
//
// Binds 127.0.0.1 only. When it accepts connections it prints exactly one line
//   listening on http://127.0.0.1:PORT
// (with `tls` and `host` in the config: listening on https://HOST:PORT)
// to stdout and never writes to stdout again (diagnostics go to stderr).
// See README.md for the config format and the HTTP steps of a login.

// Keep stdout for the single "listening" line: oidc-provider prints its
// notices with console.info, so route console.log/info to stderr.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { ConfigError, DIRECTORY_SCOPES, createDirectory } from './directory.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const MAX_BODY = 64 * 1024;

// Keys of a user entry that are not claims (or that are handled explicitly).
const NON_CLAIM_USER_KEYS = new Set(['accountId', 'password']);
const STANDARD_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username'],
};
const STANDARD_CLAIM_NAMES = new Set(Object.values(STANDARD_CLAIMS).flat());

function log(...args) {
  console.error('[oidc-idp]', ...args);
}

function fail(message) {
  process.stderr.write(`oidc-idp: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- arguments
let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      config: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (err) {
  fail(err.message);
}
if (args.help) {
  process.stderr.write('usage: node server.mjs [--port N] [--config FILE] [--exit-with-stdin]\n');
  process.exit(0);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`invalid --port ${args.port}`);

const configFile = path.resolve(args.config ?? path.join(HERE, 'sample-config.json'));
let config;
try {
  config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
} catch (err) {
  fail(`cannot read config ${configFile}: ${err.message}`);
}

// ---------------------------------------------------------------- config
// Optional TLS (`tls: {cert, key}`, PEM) and the host name the issuer names (`host`, default
// 127.0.0.1): a test can serve the OP as https://idp.corp.test:PORT, a name only its proxy
// resolves, while the server still listens on 127.0.0.1.
const tls = config.tls ?? null;
if (tls !== null && (typeof tls.cert !== 'string' || typeof tls.key !== 'string')) {
  fail('config.tls must be {"cert": PEM, "key": PEM}');
}
const publicHost = config.host ?? HOST;
if (typeof publicHost !== 'string' || !/^[A-Za-z0-9.-]+$/.test(publicHost)) {
  fail(`config.host must be a host name: ${JSON.stringify(publicHost)}`);
}
const scheme = tls ? 'https' : 'http';

function normalizeIssuerPath(p) {
  if (p === undefined || p === null || p === '') return '';
  if (typeof p !== 'string' || !p.startsWith('/') || /[?#]/.test(p)) {
    fail(`issuerPath must be "" or start with "/" and have no query/fragment: ${JSON.stringify(p)}`);
  }
  if (p === '/') return '/';
  return p.replace(/\/+$/, '');
}
const issuerPath = normalizeIssuerPath(config.issuerPath);
// Path prefix under which every provider route lives ("" for the root).
const mountPath = issuerPath === '/' ? '' : issuerPath;

const users = Array.isArray(config.users) ? config.users : [];
const clients = Array.isArray(config.clients) ? config.clients : [];
if (!clients.length) fail('config.clients must be a non-empty array');
for (const u of users) {
  if (!u || typeof u.accountId !== 'string' || !u.accountId) fail('every user needs a string accountId');
  if (typeof u.password !== 'string') fail(`user ${u.accountId} needs a string password`);
}
const usersById = new Map(users.map((u) => [u.accountId, u]));

function findUserByLogin(login) {
  const wanted = String(login ?? '').trim().toLowerCase();
  if (!wanted) return undefined;
  return users.find((u) => (typeof u.email === 'string' && u.email.toLowerCase() === wanted)
    || u.accountId.toLowerCase() === wanted
    || (typeof u.preferred_username === 'string' && u.preferred_username.toLowerCase() === wanted));
}

function userClaims(user) {
  const claims = {};
  for (const [k, v] of Object.entries(user)) {
    if (!NON_CLAIM_USER_KEYS.has(k)) claims[k] = v;
  }
  claims.sub = user.accountId;
  if (claims.preferred_username === undefined && typeof user.email === 'string') {
    claims.preferred_username = user.email;
  }
  return claims;
}

// Extra (non-standard) user claims such as oid, tid, groups are released with
// the `openid` scope, so they are in every ID token.
const extraClaimNames = [...new Set(users.flatMap((u) => Object.keys(u)))]
  .filter((k) => !NON_CLAIM_USER_KEYS.has(k) && !STANDARD_CLAIM_NAMES.has(k));
const claimsConfig = {
  openid: [...STANDARD_CLAIMS.openid, ...extraClaimNames],
  email: STANDARD_CLAIMS.email,
  profile: STANDARD_CLAIMS.profile,
  ...(config.claims ?? {}),
};
// With a `directory` section and no explicit `extraScopes`, the directory APIs' scopes are
// offered (and so granted); an explicit list wins, so a config can withhold them.
const extraScopes = Array.isArray(config.extraScopes)
  ? config.extraScopes
  : (config.directory ? DIRECTORY_SCOPES : []);

function signingJwk() {
  if (config.signingKey) {
    const jwk = { ...config.signingKey };
    if (jwk.kty !== 'RSA' || !jwk.d) fail('config.signingKey must be a private RSA JWK');
    jwk.alg ??= 'RS256';
    jwk.use ??= 'sig';
    jwk.kid ??= jwkThumbprint(jwk);
    return jwk;
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: jwkThumbprint(jwk), alg: 'RS256', use: 'sig' };
}

function jwkThumbprint(jwk) {
  const canonical = JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n });
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

// ---------------------------------------------------------------- HTML
function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>
${body}
</body></html>
`;
}

function loginPage({ action, login, error, clientId }) {
  return page('Sign in', `<h1>Sign in</h1>
<p>Application: <code id="client_id">${esc(clientId)}</code></p>
${error ? `<p class="error" id="error">${esc(error)}</p>\n` : ''}<form method="post" action="${esc(action)}" id="login-form">
  <label>Email <input type="text" name="login" value="${esc(login)}" autocomplete="username" autofocus></label>
  <label>Password <input type="password" name="password" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>
<p><a href="${esc(action)}/abort" id="abort">Cancel</a></p>`);
}

function send(res, status, html, headers = {}) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(html),
    ...headers,
  });
  res.end(html);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const raw = Buffer.concat(chunks).toString('utf8');
      if (raw && type && type !== 'application/x-www-form-urlencoded') {
        reject(new Error(`unsupported content-type ${type}`));
        return;
      }
      resolve(new URLSearchParams(raw));
    });
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- provider
function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingJwk()] },
    cookies: {
      // oidc-provider 8.x defaults the session cookie to SameSite=None, which
      // strict cookie jars drop on plain http; Lax works for top-level GETs.
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
      keys: Array.isArray(config.cookieKeys) && config.cookieKeys.length
        ? config.cookieKeys
        : ['amove-test-idp-cookie-key-1', 'amove-test-idp-cookie-key-0'],
    },
    claims: claimsConfig,
    scopes: ['openid', 'offline_access', 'email', 'profile', ...extraScopes],
    // Put every claim of the granted scopes into the ID token itself.
    conformIdTokenClaims: false,
    findAccount(ctx, sub) {
      const user = usersById.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return userClaims(user);
        },
      };
    },
    pkce: {
      methods: ['S256'],
      // Public clients (token_endpoint_auth_method "none") always need PKCE.
      required: (ctx, client) => config.pkceRequired === true || client.clientAuthMethod === 'none',
    },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    // Refresh tokens: any client whose grant_types include refresh_token gets
    // one, with or without offline_access (see README).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every refresh rotates the refresh token (as Okta and Entra ID do); a rotated-out token
    // presented again is refused and revokes its whole grant. `"rotateRefreshToken": false` in
    // the config keeps oidc-provider's default (rotate public clients' tokens only).
    ...(config.rotateRefreshToken === false ? {} : { rotateRefreshToken: true }),
    expiresWithSession: async () => false,
    interactions: {
      url: (ctx, interaction) => `${mountPath}/interaction/${interaction.uid}`,
    },
    ...(config.ttl ? { ttl: config.ttl } : {}),
  });

  // oidc-provider 8.x rejects private-use URI schemes without a dot (such as
  // amove://sso/callback) for native clients; desktop apps use them, so allow.
  const { invalidate } = provider.Client.Schema.prototype;
  provider.Client.Schema.prototype.invalidate = function relaxedInvalidate(message, code) {
    if (typeof message === 'string' && message.includes('should use reverse domain name based scheme')) return;
    invalidate.call(this, message, code);
  };

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
    'introspection.error', 'revocation.error', 'end_session.error']) {
    provider.on(event, (ctx, err) => log(event, err?.name, err?.message ?? '', err?.error_description ?? '',
      err?.error_detail ? `(${err.error_detail})` : ''));
  }
  return provider;
}

// Grant everything the authorization request asked for (auto-consent).
async function grantAll(provider, details, accountId) {
  const { params, prompt } = details;
  let grant;
  if (details.grantId) grant = await provider.Grant.find(details.grantId);
  grant ??= new provider.Grant({ accountId, clientId: params.client_id });

  if (typeof params.scope === 'string' && params.scope) grant.addOIDCScope(params.scope);
  if (typeof params.claims === 'string' && params.claims) {
    try {
      const claims = JSON.parse(params.claims);
      const names = [...Object.keys(claims.id_token ?? {}), ...Object.keys(claims.userinfo ?? {})];
      if (names.length) grant.addOIDCClaims(names);
    } catch { /* validated by oidc-provider already */ }
  }
  const d = prompt?.details ?? {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

function interactionHandler(provider, directory) {
  return async function handleInteraction(req, res, uid, action) {
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      log('interaction lookup failed:', err.message);
      send(res, 400, page('Error', `<h1>Error</h1><p id="error">${esc(err.message)}</p>`));
      return;
    }
    if (details.uid !== uid) {
      send(res, 400, page('Error', '<h1>Error</h1><p id="error">interaction cookie does not match the URL</p>'));
      return;
    }
    const { prompt, params } = details;
    const formAction = `${mountPath}/interaction/${uid}`;

    if (action === 'abort') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
      return;
    }

    if (prompt.name === 'consent') {
      // Consent is automatic: no page, straight back to the authorization endpoint.
      const accountId = details.session?.accountId;
      const grantId = await grantAll(provider, details, accountId);
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }

    if (prompt.name !== 'login') {
      send(res, 400, page('Error', `<h1>Error</h1><p id="error">unsupported prompt ${esc(prompt.name)}</p>`));
      return;
    }

    if (req.method === 'GET') {
      send(res, 200, loginPage({ action: formAction, login: params.login_hint ?? '', clientId: params.client_id }));
      return;
    }

    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    const user = findUserByLogin(login);
    // A user deactivated or deleted through the directory APIs cannot sign in any more.
    if (!user || user.password !== password || directory?.isBlocked(user.accountId)) {
      send(res, 200, loginPage({
        action: formAction, login, error: 'Invalid email or password.', clientId: params.client_id,
      }));
      return;
    }
    // Login and consent in one step: the grant covers everything requested.
    const grantId = await grantAll(provider, details, user.accountId);
    await provider.interactionFinished(req, res, {
      login: { accountId: user.accountId, remember: true },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  };
}

// ---------------------------------------------------------------- server
let dispatch = null;
const handler = (req, res) => {
  if (!dispatch) {
    res.writeHead(503, { 'Content-Type': 'text/plain' });
    res.end('starting\n');
    return;
  }
  dispatch(req, res).catch((err) => {
    log('request failed:', err?.stack ?? err);
    if (!res.headersSent) send(res, 500, page('Error', '<h1>Internal error</h1>'));
    else res.destroy();
  });
};
const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 5000;

function makeDispatch(provider, directory) {
  const providerCallback = provider.callback();
  const interaction = interactionHandler(provider, directory);
  const interactionRe = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?\/?$/;

  return async function dispatchRequest(req, res) {
    // The directory APIs live at the origin, whatever the issuer path.
    if (directory && await directory.handle(req, res)) return;
    const qIdx = req.url.indexOf('?');
    const pathname = qIdx === -1 ? req.url : req.url.slice(0, qIdx);
    const search = qIdx === -1 ? '' : req.url.slice(qIdx);

    let rel = pathname;
    if (mountPath) {
      if (pathname !== mountPath && !pathname.startsWith(`${mountPath}/`)) {
        send(res, 404, page('Not found', '<h1>Not found</h1>'));
        return;
      }
      rel = pathname.slice(mountPath.length) || '/';
    }
    // Tolerate "issuer/" + "/.well-known/..." joins (double slash).
    rel = rel.replace(/^\/{2,}/, '/');

    const m = interactionRe.exec(rel);
    if (m) {
      if (req.method !== 'GET' && req.method !== 'POST') {
        send(res, 405, page('Method not allowed', '<h1>Method not allowed</h1>'), { Allow: 'GET, POST' });
        return;
      }
      await interaction(req, res, m[1], m[2]);
      return;
    }

    if (mountPath) {
      // Like koa-mount: oidc-provider derives its mount path from originalUrl.
      req.originalUrl = `${mountPath}${rel}${search}`;
      req.url = `${rel}${search}`;
    } else if (rel !== pathname) {
      req.url = `${rel}${search}`;
    }
    providerCallback(req, res);
  };
}

let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (args['exit-with-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

server.on('error', (err) => fail(`cannot listen on ${HOST}:${port}: ${err.message}`));
server.listen(port, HOST, async () => {
  const actualPort = server.address().port;
  const origin = `${scheme}://${publicHost}:${actualPort}`;
  const issuer = `${origin}${issuerPath}`;
  let provider;
  let directory;
  try {
    provider = buildProvider(issuer);
    // Static clients are validated lazily; validate now so a bad config fails at start.
    for (const c of clients) {
      if (!await provider.Client.find(c.client_id)) throw new Error(`client ${c.client_id} not found`);
    }
    if (config.directory) {
      directory = createDirectory({
        config, users, provider, origin, log,
      });
    }
  } catch (err) {
    const what = err instanceof ConfigError ? 'invalid directory configuration' : 'invalid configuration';
    fail(`${what}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
  }
  dispatch = makeDispatch(provider, directory);
  log(`issuer ${issuer} (config ${configFile})${directory ? `; directory: ${directory.summary}` : ''}`);
  process.stdout.write(`listening on ${origin}\n`);
});

