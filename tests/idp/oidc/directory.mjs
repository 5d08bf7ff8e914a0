// Directory APIs served next to the OpenID Provider when the config has a `directory`
// section: a double of Okta's Users/Groups API (`/api/v1/...`) and of Microsoft Graph
// (`/graph/v1.0/...`), both at the server's origin. They follow the cloud APIs' documented
// wire formats (paging, rate limits, error bodies, WWW-Authenticate) and accept only real
// access tokens issued by this oidc-provider instance. See README.md, "Directory APIs".

import * as crypto from 'node:crypto';

const GRAPH_RESOURCE = 'https://graph.microsoft.com/';

/** Scopes granted by default (added to the provider's scopes) when `directory` is set. */
export const DIRECTORY_SCOPES = [
  'okta.users.read',
  'okta.groups.read',
  `${GRAPH_RESOURCE}User.Read.All`,
  `${GRAPH_RESOURCE}GroupMember.Read.All`,
];

// Any one of these scopes opens an endpoint family (the APIs accept the broader ones too).
const NEEDS = {
  oktaUsers: ['okta.users.read', 'okta.users.manage'],
  oktaUsersManage: ['okta.users.manage'],
  oktaGroups: ['okta.groups.read', 'okta.groups.manage'],
  graphUsers: ['User.Read.All', 'User.ReadBasic.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  graphUsersWrite: ['User.ReadWrite.All', 'Directory.ReadWrite.All'],
  graphGroups: ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
};

// Okta: List Users pages hold at most 200, groups and group members more; a larger `limit`
// is capped, as Okta does. Graph directory objects: `$top` 1..999, default 100.
const OKTA_MAX_LIMIT = { users: 200, groups: 10000, members: 1000 };
const GRAPH_MAX_TOP = 999;
const GRAPH_DEFAULT_TOP = 100;
const OKTA_RATE_LIMIT = 600;
const MAX_URL = 8192;
const MAX_BODY = 64 * 1024;
const LOG_MAX = 1000;

const USER_PROPS = ['id', 'businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone',
  'officeLocation', 'preferredLanguage', 'surname', 'userPrincipalName', 'accountEnabled'];
const USER_DEFAULT_PROPS = USER_PROPS.filter((p) => p !== 'accountEnabled');
const GROUP_PROPS = ['id', 'createdDateTime', 'description', 'displayName', 'groupTypes', 'mail',
  'mailEnabled', 'mailNickname', 'securityEnabled', 'visibility'];

class ConfigError extends Error {}

function positiveInt(v, name, { min = 1 } = {}) {
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`directory.${name} must be an integer >= ${min}`);
  return v;
}

function groupId(name) {
  // Okta-shaped (00g + 17 characters), stable for a name.
  return `00g${crypto.createHash('sha256').update(name).digest('hex').slice(0, 17)}`;
}

function readJsonBody(req) {
  return new Promise((resolve) => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const chunks = [];
    let size = 0;
    let done = false;
    const finish = (v) => { if (!done) { done = true; resolve(v); } };
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        finish({ error: 'too-large' });
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (type !== 'application/json') return finish({ error: 'not-json' });
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        return finish(v && typeof v === 'object' && !Array.isArray(v) ? { value: v } : { error: 'not-json' });
      } catch {
        return finish({ error: 'not-json' });
      }
    });
    req.on('error', () => finish({ error: 'not-json' }));
  });
}

const looksLikeEmail = (s) => typeof s === 'string' && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s) && s.length <= 254;

/**
 * Builds the directory (users and groups) from the config and returns
 * `{ handle(req, res) -> Promise<boolean>, isBlocked(accountId) -> boolean, summary }`;
 * `handle` answers the request and returns true when its path belongs to a directory API;
 * `isBlocked` says a user was deactivated or deleted through the APIs (no more sign-ins).
 */
export function createDirectory({ config, users, provider, origin, log }) {
  const d = config.directory;
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new ConfigError('directory must be an object');
  const pageSize = positiveInt(d.pageSize, 'pageSize');
  const throttleAt = positiveInt(d.throttleAt, 'throttleAt');
  const retryAfter = positiveInt(d.retryAfter, 'retryAfter') ?? 1;
  const extra = typeof d.extraUsers === 'number' ? { count: d.extraUsers } : (d.extraUsers ?? { count: 0 });
  const extraCount = positiveInt(extra.count, 'extraUsers(.count)', { min: 0 }) ?? 0;
  const extraDomain = extra.domain ?? 'directory.example.com';
  const extraGroups = extra.groups ?? [];
  if (typeof extraDomain !== 'string' || !/^[a-z0-9.-]+$/i.test(extraDomain)) throw new ConfigError('directory.extraUsers.domain must be a domain name');
  if (!Array.isArray(extraGroups) || extraGroups.some((g) => typeof g !== 'string' || !g)) {
    throw new ConfigError('directory.extraUsers.groups must be an array of group names');
  }
  const created = new Date().toISOString().replace(/\.\d{3}Z$/, '.000Z');

  // ---- groups: the declared ones first (ids, descriptions, empty groups), then any other
  // group a user names, in the order first seen.
  const groups = [];
  const groupsByName = new Map();
  const groupsById = new Map();
  function addGroup({ id, name, description }) {
    if (typeof name !== 'string' || !name) throw new ConfigError('every directory group needs a name');
    if (groupsByName.has(name)) throw new ConfigError(`directory group ${JSON.stringify(name)} is declared twice`);
    const g = { id: id ?? groupId(name), name, description: description ?? '' };
    if (typeof g.id !== 'string' || !/^[A-Za-z0-9._~-]+$/.test(g.id)) throw new ConfigError(`directory group id ${JSON.stringify(g.id)} must be URL-safe`);
    if (typeof g.description !== 'string') throw new ConfigError(`directory group ${name}: description must be a string`);
    if (groupsById.has(g.id)) throw new ConfigError(`directory group id ${g.id} is used twice`);
    groups.push(g);
    groupsByName.set(name, g);
    groupsById.set(g.id, g);
    return g;
  }
  if (d.groups !== undefined && !Array.isArray(d.groups)) throw new ConfigError('directory.groups must be an array');
  for (const g of d.groups ?? []) addGroup(g ?? {});

  // ---- users: the config's (they can sign in) and the generated extra ones (directory only).
  const dirUsers = [];
  function addUser(u) {
    if (u.groups !== undefined && (!Array.isArray(u.groups) || u.groups.some((g) => typeof g !== 'string' || !g))) {
      throw new ConfigError(`user ${u.accountId}: groups must be an array of group names`);
    }
    const names = [...new Set(u.groups ?? [])];
    for (const n of names) if (!groupsByName.has(n)) addGroup({ name: n });
    const email = typeof u.email === 'string' ? u.email : '';
    dirUsers.push({
      src: u, // the config's user object: profile changes write through to the OP's claims
      oktaId: u.accountId,
      graphId: typeof u.oid === 'string' && u.oid ? u.oid : u.accountId,
      accountId: u.accountId,
      status: 'ACTIVE',
      email,
      login: u.preferred_username || email || u.accountId,
      firstName: u.given_name ?? '',
      lastName: u.family_name ?? '',
      groups: names.map((n) => groupsByName.get(n)),
    });
  }
  for (const u of users) addUser(u);
  for (let i = 1; i <= extraCount; i += 1) {
    const n = String(i).padStart(5, '0');
    addUser({
      accountId: `00uextra${n}`,
      email: `user${n}@${extraDomain}`,
      given_name: 'User',
      family_name: n,
      groups: extraGroups,
    });
  }
  const byOktaId = new Map(dirUsers.map((u) => [u.oktaId, u]));
  const byGraphId = new Map(dirUsers.map((u) => [u.graphId, u]));
  const byAccount = new Map(dirUsers.map((u) => [u.accountId, u]));
  const removed = new Set();
  const active = () => dirUsers.filter((u) => u.status === 'ACTIVE');
  const membersOf = (g, users = dirUsers) => users.filter((u) => u.groups.includes(g));
  const displayName = (u) => u.src.name ?? ([u.firstName, u.lastName].filter(Boolean).join(' ') || u.login);
  const byLogin = (login) => dirUsers.find((x) => x.login.toLowerCase() === login.toLowerCase());

  // A profile change is the IdP's: later ID tokens and userinfo carry it too.
  function setProfile(u, { email, login, firstName, lastName }) {
    if (email !== undefined) { u.email = email; u.src.email = email; }
    if (login !== undefined) { u.login = login; u.src.preferred_username = login; }
    if (firstName !== undefined) { u.firstName = firstName; u.src.given_name = firstName; }
    if (lastName !== undefined) { u.lastName = lastName; u.src.family_name = lastName; }
  }

  function removeUser(u) {
    dirUsers.splice(dirUsers.indexOf(u), 1);
    byOktaId.delete(u.oktaId);
    byGraphId.delete(u.graphId);
    byAccount.delete(u.accountId);
    removed.add(u.accountId);
  }

  // ---- request bookkeeping
  let requests = 0; // authenticated directory requests, for throttleAt
  let throttled = false;
  const window = { minute: 0, count: 0 };
  const requestLog = [];

  function rateWindow() {
    const minute = Math.floor(Date.now() / 60000);
    if (window.minute !== minute) Object.assign(window, { minute, count: 0 });
    window.count += 1;
    return {
      limit: OKTA_RATE_LIMIT,
      remaining: Math.max(0, OKTA_RATE_LIMIT - window.count),
      reset: (minute + 1) * 60,
    };
  }

  function sendJson(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, no-store',
      'Content-Length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  // ---- access tokens: real ones of this provider, nothing else
  async function bearer(req) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ''));
    if (!m) return { error: 'missing' };
    const token = await provider.AccessToken.find(m[1]); // unknown, expired or revoked: undefined
    if (!token || token.isExpired) return { error: 'invalid' };
    const grant = await provider.Grant.find(token.grantId, { ignoreExpiration: true });
    if (!grant || grant.isExpired || grant.accountId !== token.accountId || grant.clientId !== token.clientId) {
      return { error: 'invalid' };
    }
    if (!await provider.Client.find(token.clientId)) return { error: 'invalid' };
    const user = byAccount.get(token.accountId);
    if (!user) return { error: 'invalid' };
    return { user, scopes: token.scopes };
  }

  function hasScope(scopes, family, graph) {
    return NEEDS[family].some((s) => scopes.has(s) || (graph && scopes.has(`${GRAPH_RESOURCE}${s}`)));
  }

  // ================================================================ Okta
  function oktaError(res, status, code, summary, { causes = [], headers = {} } = {}) {
    sendJson(res, status, {
      errorCode: code,
      errorSummary: summary,
      errorLink: code,
      errorId: `oae${crypto.randomBytes(11).toString('base64url')}`,
      errorCauses: causes.map((c) => ({ errorSummary: c })),
    }, headers);
  }

  function oktaAuthenticate(scope, error, description, resource) {
    return `Bearer authorization_uri="${origin}/oauth2/v1/authorize", realm="IdpRealm", scope="${scope}", `
      + `error="${error}", error_description="${description}", resource="${resource}"`;
  }

  function oktaUser(u) {
    return {
      id: u.oktaId,
      status: u.status,
      created,
      activated: created,
      statusChanged: created,
      lastLogin: null,
      lastUpdated: created,
      passwordChanged: null,
      type: { id: 'oty00000000000000000' },
      profile: { login: u.login, email: u.email, firstName: u.firstName, lastName: u.lastName },
      credentials: { provider: { type: 'OKTA', name: 'OKTA' } },
      _links: { self: { href: `${origin}/api/v1/users/${encodeURIComponent(u.oktaId)}` } },
    };
  }

  function oktaGroup(g) {
    return {
      id: g.id,
      created,
      lastUpdated: created,
      lastMembershipUpdated: created,
      objectClass: ['okta:user_group'],
      type: 'OKTA_GROUP',
      profile: { name: g.name, description: g.description },
      _links: { users: { href: `${origin}/api/v1/groups/${g.id}/users` } },
    };
  }

  // One page of an Okta collection: `limit` + `after` (the id of the previous page's last
  // item, as Okta's cursors are), `Link` headers with absolute URLs.
  function oktaList(res, ctx, items, idOf, maxLimit, rate) {
    const { query, rawPairs, pathname } = ctx;
    let limit = maxLimit;
    if (query.has('limit')) {
      const raw = query.get('limit');
      if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) {
        oktaError(res, 400, 'E0000001', 'Api validation failed: limit', { causes: ['limit: must be a positive integer'] });
        return;
      }
      limit = Math.min(Number(raw), maxLimit);
    }
    for (const p of ['filter', 'search', 'q', 'expand']) {
      if (query.has(p)) {
        oktaError(res, 400, 'E0000001', `Api validation failed: ${p}`, { causes: [`${p}: not supported by this test double`] });
        return;
      }
    }
    let from = 0;
    if (query.has('after')) {
      const idx = items.findIndex((it) => idOf(it) === query.get('after'));
      if (idx === -1) {
        oktaError(res, 400, 'E0000001', 'Api validation failed: after', { causes: ['after: is not a cursor of this list'] });
        return;
      }
      from = idx + 1;
    }
    const size = Math.min(limit, pageSize ?? limit);
    const page = items.slice(from, from + size);
    const self = rawPairs.length ? `${origin}${pathname}?${rawPairs.join('&')}` : `${origin}${pathname}`;
    const links = [`<${self}>; rel="self"`];
    if (from + size < items.length) {
      const keep = rawPairs.filter((p) => !/^(after|limit)=/.test(p));
      const next = [`after=${encodeURIComponent(idOf(page[page.length - 1]))}`, `limit=${limit}`, ...keep].join('&');
      links.push(`<${origin}${pathname}?${next}>; rel="next"`);
    }
    sendJson(res, 200, page, { ...oktaRateHeaders(rate), Link: links });
  }

  function oktaRateHeaders(rate) {
    return {
      'X-Rate-Limit-Limit': String(rate.limit),
      'X-Rate-Limit-Remaining': String(rate.remaining),
      'X-Rate-Limit-Reset': String(rate.reset),
    };
  }

  const userNotFound = (res, id) => oktaError(res, 404, 'E0000007', `Not found: Resource not found: ${id} (User)`);
  const groupNotFound = (res, id) => oktaError(res, 404, 'E0000007', `Not found: Resource not found: ${id} (UserGroup)`);
  const OKTA_PROFILE = { email: 'email', login: 'login', firstName: 'firstName', lastName: 'lastName' };

  // Partial profile update (Okta: POST /api/v1/users/{id} with {profile: {...}}).
  async function oktaUpdateUser(req, res, u, rate) {
    const body = await readJsonBody(req);
    if (body.error === 'too-large') return oktaError(res, 413, 'E0000001', 'Api validation failed: the request body is too large');
    if (body.error) return oktaError(res, 400, 'E0000003', 'The request body was not well-formed.');
    const profile = body.value.profile;
    if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
      return oktaError(res, 400, 'E0000001', 'Api validation failed: profile', { causes: ['profile: is required'] });
    }
    const change = {};
    const causes = [];
    for (const [k, v] of Object.entries(profile)) {
      if (!(k in OKTA_PROFILE)) causes.push(`${k}: Property name '${k}' is not defined in profile`);
      else if (typeof v !== 'string' || (k !== 'firstName' && k !== 'lastName' && !v)) causes.push(`${k}: must be a string`);
      else if ((k === 'email' || k === 'login') && !looksLikeEmail(v)) causes.push(`${k}: Does not match required pattern`);
      else change[k] = v;
    }
    if (change.login && change.login.toLowerCase() !== u.login.toLowerCase() && byLogin(change.login)) {
      causes.push('login: An object with this field already exists in the current organization');
    }
    if (causes.length) return oktaError(res, 400, 'E0000001', 'Api validation failed: profile', { causes });
    setProfile(u, change);
    return sendJson(res, 200, oktaUser(u), oktaRateHeaders(rate));
  }

  const oktaRoutes = [
    // [pattern, { METHOD: [scope family, handler(req, res, ctx, params, rate)] }]
    [/^\/api\/v1\/users$/, {
      GET: ['oktaUsers', (req, res, ctx, _, rate) => oktaList(res, ctx, active().map(oktaUser), (u) => u.id, OKTA_MAX_LIMIT.users, rate)],
    }],
    [/^\/api\/v1\/users\/([^/]+)$/, {
      GET: ['oktaUsers', (req, res, ctx, [id], rate) => {
        const u = byOktaId.get(id) ?? byLogin(id);
        return u ? sendJson(res, 200, oktaUser(u), oktaRateHeaders(rate)) : userNotFound(res, id);
      }],
      POST: ['oktaUsersManage', (req, res, ctx, [id], rate) => {
        const u = byOktaId.get(id) ?? byLogin(id);
        return u ? oktaUpdateUser(req, res, u, rate) : userNotFound(res, id);
      }],
      // Okta: the first DELETE deactivates (DEPROVISIONED), the second deletes for good.
      DELETE: ['oktaUsersManage', (req, res, ctx, [id], rate) => {
        const u = byOktaId.get(id) ?? byLogin(id);
        if (!u) return userNotFound(res, id);
        if (u.status === 'DEPROVISIONED') removeUser(u);
        else u.status = 'DEPROVISIONED';
        res.writeHead(204, oktaRateHeaders(rate));
        return res.end();
      }],
    }],
    [/^\/api\/v1\/users\/([^/]+)\/groups$/, {
      GET: ['oktaUsers', (req, res, ctx, [id], rate) => {
        const u = byOktaId.get(id);
        if (!u) return userNotFound(res, id);
        // Okta does not page a user's groups: one answer holds them all.
        return sendJson(res, 200, u.groups.map(oktaGroup), oktaRateHeaders(rate));
      }],
    }],
    [/^\/api\/v1\/groups$/, {
      GET: ['oktaGroups', (req, res, ctx, _, rate) => oktaList(res, ctx, groups.map(oktaGroup), (g) => g.id, OKTA_MAX_LIMIT.groups, rate)],
    }],
    [/^\/api\/v1\/groups\/([^/]+)$/, {
      GET: ['oktaGroups', (req, res, ctx, [id], rate) => {
        const g = groupsById.get(id);
        return g ? sendJson(res, 200, oktaGroup(g), oktaRateHeaders(rate)) : groupNotFound(res, id);
      }],
    }],
    [/^\/api\/v1\/groups\/([^/]+)\/users$/, {
      GET: ['oktaGroups', (req, res, ctx, [id], rate) => {
        const g = groupsById.get(id);
        if (!g) return groupNotFound(res, id);
        return oktaList(res, ctx, membersOf(g, active()).map(oktaUser), (u) => u.id, OKTA_MAX_LIMIT.members, rate);
      }],
    }],
  ];

  async function handleOkta(req, res, ctx) {
    const route = match(oktaRoutes, ctx.pathname);
    if (!route || route === 'bad-path') return oktaError(res, 404, 'E0000008', 'The requested path was not found');
    const [methods, params] = route;
    if (!methods[req.method]) {
      return oktaError(res, 405, 'E0000022', 'The endpoint does not support the provided HTTP method',
        { headers: { Allow: Object.keys(methods).join(', ') } });
    }
    const [family, handler] = methods[req.method];
    const scope = NEEDS[family][0];
    const who = await bearer(req);
    if (who.error) {
      return oktaError(res, 401, 'E0000011', 'Invalid token provided', {
        headers: { 'WWW-Authenticate': oktaAuthenticate(scope, 'invalid_token', 'The access token is invalid.', ctx.pathname) },
      });
    }
    const rate = rateWindow();
    if (throttle()) {
      const reset = Math.floor(Date.now() / 1000) + retryAfter;
      return oktaError(res, 429, 'E0000047', 'API call exceeded rate limit due to too many requests.', {
        headers: { 'X-Rate-Limit-Limit': String(rate.limit), 'X-Rate-Limit-Remaining': '0', 'X-Rate-Limit-Reset': String(reset) },
      });
    }
    if (!hasScope(who.scopes, family, false)) {
      return oktaError(res, 403, 'E0000006', 'You do not have permission to perform the requested action', {
        headers: {
          'WWW-Authenticate': oktaAuthenticate(scope, 'insufficient_scope',
            'The access token provided does not contain the required scopes.', ctx.pathname),
        },
      });
    }
    return handler(req, res, ctx, params, rate);
  }

  // ================================================================ Microsoft Graph
  function graphError(res, status, code, message, headers = {}) {
    const requestId = crypto.randomUUID();
    sendJson(res, status, {
      error: {
        code,
        message,
        innerError: {
          date: new Date().toISOString().replace(/\.\d{3}Z$/, ''),
          'request-id': requestId,
          'client-request-id': requestId,
        },
      },
    }, { 'request-id': requestId, 'client-request-id': requestId, ...headers });
  }

  function graphUser(u) {
    return {
      '@odata.type': '#microsoft.graph.user',
      id: u.graphId,
      businessPhones: [],
      displayName: displayName(u),
      givenName: u.firstName || null,
      jobTitle: null,
      mail: u.email || null,
      mobilePhone: null,
      officeLocation: null,
      preferredLanguage: null,
      surname: u.lastName || null,
      userPrincipalName: u.login,
      accountEnabled: u.status === 'ACTIVE',
    };
  }

  function graphGroup(g) {
    return {
      '@odata.type': '#microsoft.graph.group',
      id: g.id,
      createdDateTime: created.replace('.000Z', 'Z'),
      description: g.description || null,
      displayName: g.name,
      groupTypes: [],
      mail: null,
      mailEnabled: false,
      mailNickname: g.name.replace(/[^A-Za-z0-9]/g, '') || g.id,
      securityEnabled: true,
      visibility: null,
    };
  }

  // Projects an object on `$select` (or the entity's default properties).
  function project(obj, select, { keepType, defaults }) {
    const out = {};
    if (keepType) out['@odata.type'] = obj['@odata.type'];
    const props = select ?? defaults(obj);
    for (const p of props) if (p in obj) out[p] = obj[p];
    return out;
  }
  const defaultProps = (obj) => (obj['@odata.type'] === '#microsoft.graph.user' ? USER_DEFAULT_PROPS : GROUP_PROPS);

  function parseSelect(query, allowed, typeName) {
    if (!query.has('$select')) return { select: undefined };
    const props = query.get('$select').split(',').map((s) => s.trim()).filter(Boolean);
    for (const p of props) {
      if (!allowed.includes(p)) {
        return { error: `Could not find a property named '${p}' on type '${typeName}'.` };
      }
    }
    return { select: props };
  }

  const skipToken = (offset) => Buffer.from(`RFNwd:${offset}`).toString('base64url');
  function readSkipToken(t) {
    const m = /^RFNwd:(\d{1,9})$/.exec(Buffer.from(t, 'base64url').toString('utf8'));
    return m ? Number(m[1]) : undefined;
  }

  // One page of a Graph collection: `$top`, `$skiptoken`, `@odata.nextLink` (absolute).
  function graphList(res, ctx, items, { contextName, allowed, typeName, keepType }) {
    const { query, rawPairs, pathname } = ctx;
    let top = GRAPH_DEFAULT_TOP;
    if (query.has('$top')) {
      const raw = query.get('$top');
      if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1 || Number(raw) > GRAPH_MAX_TOP) {
        return graphError(res, 400, 'Request_UnsupportedQuery',
          `Invalid page size specified: '${raw}'. Must be between 1 and ${GRAPH_MAX_TOP} inclusive.`);
      }
      top = Number(raw);
    }
    const unsupported = ['$filter', '$search', '$orderby', '$expand', '$count', '$skip'].find((p) => query.has(p));
    if (unsupported) {
      return graphError(res, 400, 'Request_UnsupportedQuery', `The query parameter '${unsupported}' is not supported by this test double.`);
    }
    const sel = parseSelect(query, allowed, typeName);
    if (sel.error) return graphError(res, 400, 'BadRequest', sel.error);
    let from = 0;
    if (query.has('$skiptoken')) {
      from = readSkipToken(query.get('$skiptoken'));
      if (from === undefined || from > items.length) {
        return graphError(res, 400, 'Directory_ExpiredPageToken',
          'The specified page token value has expired and can no longer be included in your request.');
      }
    }
    const size = Math.min(top, pageSize ?? top);
    const page = items.slice(from, from + size);
    const sel_ = sel.select ? `(${sel.select.join(',')})` : '';
    const body = {
      '@odata.context': `${origin}/graph/v1.0/$metadata#${contextName}${sel_}`,
      value: page.map((o) => project(o, sel.select, { keepType, defaults: defaultProps })),
    };
    if (from + size < items.length) {
      const keep = rawPairs.filter((p) => !/^(\$|%24)skiptoken=/i.test(p));
      body['@odata.nextLink'] = `${origin}${pathname}?${[...keep, `$skiptoken=${skipToken(from + size)}`].join('&')}`;
    }
    return sendJson(res, 200, body, graphHeaders());
  }

  function graphEntity(res, ctx, obj, { contextName, allowed, typeName }) {
    const sel = parseSelect(ctx.query, allowed, typeName);
    if (sel.error) return graphError(res, 400, 'BadRequest', sel.error);
    const sel_ = sel.select ? `(${sel.select.join(',')})` : '';
    return sendJson(res, 200, {
      '@odata.context': `${origin}/graph/v1.0/$metadata#${contextName}${sel_}/$entity`,
      ...project(obj, sel.select, { keepType: false, defaults: defaultProps }),
    }, graphHeaders());
  }

  function graphHeaders() {
    const id = crypto.randomUUID();
    return {
      'Content-Type': 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
      'request-id': id,
      'client-request-id': id,
    };
  }

  const USERS = { contextName: 'users', allowed: USER_PROPS, typeName: 'microsoft.graph.user', keepType: false };
  const GROUPS = { contextName: 'groups', allowed: GROUP_PROPS, typeName: 'microsoft.graph.group', keepType: false };
  const OBJECTS = {
    contextName: 'directoryObjects',
    allowed: [...new Set([...USER_PROPS, ...GROUP_PROPS])],
    typeName: 'microsoft.graph.directoryObject',
    keepType: true,
  };
  const notFound = (res, id) => graphError(res, 404, 'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
  const memberOf = (u) => u.groups.map(graphGroup);

  const GRAPH_WRITABLE = { mail: 'email', userPrincipalName: 'login', givenName: 'firstName', surname: 'lastName' };

  // PATCH /users/{id}: mail, userPrincipalName, givenName, surname.
  async function graphUpdateUser(req, res, u) {
    const body = await readJsonBody(req);
    if (body.error === 'too-large') return graphError(res, 413, 'Request_EntityTooLarge', 'The request body is too large.');
    if (body.error) {
      return graphError(res, 400, 'BadRequest',
        'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.');
    }
    const change = {};
    for (const [k, v] of Object.entries(body.value)) {
      if (!(k in GRAPH_WRITABLE)) return graphError(res, 400, 'Request_BadRequest', `Invalid property '${k}'.`);
      if (typeof v !== 'string' || ((k === 'mail' || k === 'userPrincipalName') && !looksLikeEmail(v))) {
        return graphError(res, 400, 'Request_BadRequest', `Invalid value specified for property '${k}' of resource 'User'.`);
      }
      change[GRAPH_WRITABLE[k]] = v;
    }
    if (change.login && change.login.toLowerCase() !== u.login.toLowerCase() && byLogin(change.login)) {
      return graphError(res, 400, 'Request_BadRequest',
        'Another object with the same value for property userPrincipalName already exists.');
    }
    setProfile(u, change);
    res.writeHead(204, graphHeaders());
    return res.end();
  }

  const graphUserById = (id) => byGraphId.get(id) ?? byLogin(id);
  const graphRoutes = [
    // [pattern, { METHOD: [scope family (null: any valid token), handler(req, res, ctx, params, who)] }]
    [/^\/graph\/v1\.0\/users$/, { GET: ['graphUsers', (req, res, ctx) => graphList(res, ctx, dirUsers.map(graphUser), USERS)] }],
    [/^\/graph\/v1\.0\/users\/([^/]+)$/, {
      GET: ['graphUsers', (req, res, ctx, [id]) => {
        const u = graphUserById(id);
        return u ? graphEntity(res, ctx, graphUser(u), USERS) : notFound(res, id);
      }],
      PATCH: ['graphUsersWrite', (req, res, ctx, [id]) => {
        const u = graphUserById(id);
        return u ? graphUpdateUser(req, res, u) : notFound(res, id);
      }],
      DELETE: ['graphUsersWrite', (req, res, ctx, [id]) => {
        const u = graphUserById(id);
        if (!u) return notFound(res, id);
        removeUser(u);
        res.writeHead(204, graphHeaders());
        return res.end();
      }],
    }],
    [/^\/graph\/v1\.0\/users\/([^/]+)\/(?:transitiveMemberOf|memberOf)$/, {
      GET: ['graphGroups', (req, res, ctx, [id]) => {
        const u = graphUserById(id);
        return u ? graphList(res, ctx, memberOf(u), OBJECTS) : notFound(res, id);
      }],
    }],
    [/^\/graph\/v1\.0\/groups$/, { GET: ['graphGroups', (req, res, ctx) => graphList(res, ctx, groups.map(graphGroup), GROUPS)] }],
    [/^\/graph\/v1\.0\/groups\/([^/]+)$/, {
      GET: ['graphGroups', (req, res, ctx, [id]) => {
        const g = groupsById.get(id);
        return g ? graphEntity(res, ctx, graphGroup(g), GROUPS) : notFound(res, id);
      }],
    }],
    [/^\/graph\/v1\.0\/groups\/([^/]+)\/(?:transitiveMembers|members)$/, {
      GET: ['graphGroups', (req, res, ctx, [id]) => {
        const g = groupsById.get(id);
        return g ? graphList(res, ctx, membersOf(g).map(graphUser), OBJECTS) : notFound(res, id);
      }],
    }],
    [/^\/graph\/v1\.0\/me$/, { GET: [null, (req, res, ctx, _, who) => graphEntity(res, ctx, graphUser(who.user), USERS)] }],
    [/^\/graph\/v1\.0\/me\/(?:transitiveMemberOf|memberOf)$/, {
      GET: [null, (req, res, ctx, _, who) => graphList(res, ctx, memberOf(who.user), OBJECTS)],
    }],
    [/^\/graph\/v1\.0\/me\/(?:transitiveMemberOf|memberOf)\/microsoft\.graph\.group$/, {
      GET: [null, (req, res, ctx, _, who) => graphList(res, ctx, memberOf(who.user), GROUPS)],
    }],
  ];

  async function handleGraph(req, res, ctx) {
    const route = match(graphRoutes, ctx.pathname);
    if (!route || route === 'bad-path') {
      const segment = ctx.pathname.split('/').filter(Boolean).slice(2).join('/') || ctx.pathname;
      return graphError(res, 400, 'BadRequest', `Resource not found for the segment '${segment}'.`);
    }
    const [methods, params] = route;
    if (!methods[req.method]) {
      return graphError(res, 405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.',
        { Allow: Object.keys(methods).join(', ') });
    }
    const [family, handler] = methods[req.method];
    const who = await bearer(req);
    if (who.error) {
      return graphError(res, 401, 'InvalidAuthenticationToken',
        who.error === 'missing' ? 'Access token is empty.' : 'Access token validation failure. Invalid or expired token.',
        { 'WWW-Authenticate': 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"' });
    }
    if (throttle()) {
      return graphError(res, 429, 'TooManyRequests', `Too many requests. Retry after ${retryAfter} seconds.`, { 'Retry-After': String(retryAfter) });
    }
    if (family && !hasScope(who.scopes, family, true)) {
      return graphError(res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    }
    return handler(req, res, ctx, params, who);
  }

  // ================================================================ shared
  // The Nth authenticated directory request (1-based) is answered 429, once.
  function throttle() {
    requests += 1;
    if (throttleAt !== undefined && !throttled && requests === throttleAt) {
      throttled = true;
      return true;
    }
    return false;
  }

  function match(routes, pathname) {
    for (const [re, methods] of routes) {
      const m = re.exec(pathname);
      if (m) {
        try {
          return [methods, m.slice(1).map(decodeURIComponent)];
        } catch {
          return 'bad-path';
        }
      }
    }
    return undefined;
  }

  function context(req) {
    const qIdx = req.url.indexOf('?');
    const pathname = (qIdx === -1 ? req.url : req.url.slice(0, qIdx)).replace(/\/+$/, '') || '/';
    const rawQuery = qIdx === -1 ? '' : req.url.slice(qIdx + 1);
    const rawPairs = rawQuery.split('&').filter(Boolean);
    return { pathname, rawPairs, query: new URLSearchParams(rawQuery) };
  }

  async function handle(req, res) {
    const isOkta = req.url === '/api/v1' || req.url.startsWith('/api/v1/') || req.url.startsWith('/api/v1?');
    const isGraph = req.url.startsWith('/graph/');
    if (req.url.split('?')[0] === '/_idp/directory-log') {
      sendJson(res, 200, requestLog);
      return true;
    }
    if (!isOkta && !isGraph) return false;
    res.on('finish', () => {
      requestLog.push({ method: req.method, url: req.url, status: res.statusCode });
      if (requestLog.length > LOG_MAX) requestLog.shift();
      log(`directory ${req.method} ${req.url} -> ${res.statusCode}`);
    });
    if (req.url.length > MAX_URL) {
      if (isOkta) oktaError(res, 414, 'E0000001', 'Api validation failed: the request URL is too long');
      else graphError(res, 414, 'BadRequest', 'The request URL is too long.');
      return true;
    }
    const ctx = context(req);
    if (isOkta) await handleOkta(req, res, ctx);
    else await handleGraph(req, res, ctx);
    return true;
  }

  return {
    handle,
    isBlocked: (accountId) => removed.has(accountId) || byAccount.get(accountId)?.status === 'DEPROVISIONED',
    summary: `${dirUsers.length} users, ${groups.length} groups${pageSize ? `, pages of ${pageSize}` : ''}`
      + `${throttleAt ? `, 429 at request ${throttleAt}` : ''}`,
  };
}

export { ConfigError };
