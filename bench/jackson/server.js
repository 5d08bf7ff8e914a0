// BoxyHQ Jackson (@boxyhq/saml-jackson, pinned by package-lock.json) as a tiny HTTP server on
// loopback, for scripts/bench.sh: its library controllers behind the same routes its own
// service uses (GET /api/oauth/authorize, POST /api/oauth/saml), a memory database, and one SAML
// connection created from the IdP metadata passed in. Prints `listening on http://IP:PORT`.
//
// Usage: node server.js IDP_METADATA_FILE CALLBACK_URL
'use strict';
const http = require('http');
const fs = require('fs');
const { URL, URLSearchParams } = require('url');
const jackson = require('@boxyhq/saml-jackson');

const [metadataFile, callbackUrl] = process.argv.slice(2);
const TENANT = 'bench.test';
const PRODUCT = 'amove-bench';

async function main() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const externalUrl = `http://127.0.0.1:${server.address().port}`;
  const ctl = await jackson.controllers({
    externalUrl,
    samlPath: '/api/oauth/saml',
    samlAudience: 'https://saml.boxyhq.com',
    // The sessions of a run must outlive the generation of its responses.
    db: { engine: 'mem', ttl: 1800 },
    noAnalytics: true,
    logger: { info() {}, warn() {}, error: process.env.JACKSON_DEBUG ? console.error : () => {} },
  });
  await ctl.connectionAPIController.createSAMLConnection({
    rawMetadata: fs.readFileSync(metadataFile, 'utf8'),
    defaultRedirectUrl: callbackUrl,
    redirectUrl: JSON.stringify([callbackUrl]),
    tenant: TENANT,
    product: PRODUCT,
  });

  server.on('request', (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        const url = new URL(req.url, externalUrl);
        if (req.method === 'GET' && url.pathname === '/api/oauth/authorize') {
          const q = Object.fromEntries(url.searchParams);
          const { redirect_url, error } = await ctl.oauthController.authorize(q);
          return answer(res, error || !redirect_url ? 403 : 302, redirect_url);
        }
        if (req.method === 'POST' && url.pathname === '/api/oauth/saml') {
          const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
          const { redirect_url, error } = await ctl.oauthController.samlResponse(form);
          // Jackson answers an invalid response with a redirect carrying error=…: only a
          // redirect with a code counts as validated, answered 303 like the agent's ACS.
          return answer(res, error || !redirect_url ? 403 : 303, redirect_url);
        }
        answer(res, 404);
      } catch (e) {
        if (process.env.JACKSON_DEBUG) console.error(e);
        answer(res, 403);
      }
    });
  });
  console.log(`listening on ${externalUrl}`);
}

function answer(res, status, location) {
  const headers = { 'Content-Length': '0' };
  if (location && status !== 403) headers.Location = location;
  res.writeHead(status, headers);
  res.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
