const base = "http://localhost:29123";
// 1. Resolve the user's identity provider.
const ssoRes = await fetch(`${base}/sso/sso_url`, {
method: "POST",
headers: { "Content-Type": "application/json" },
body: JSON.stringify({
CallbackUrl: "http://localhost:29123/sso/callback",
Username: "user@example.com",
}),
});
const sso = await ssoRes.json();
console.log("Open in a browser:", sso.Url);
// 2. Exchange the authorization code for a JWT.
const authRes = await fetch(`${base}/sso/authenticate`, {
method: "POST",
headers: { "Content-Type": "application/json" },
body: JSON.stringify({
Identifier: sso.Identifier,
AuthorizationCode: "CODE_FROM_IDP_REDIRECT",
CallbackUrl: "http://localhost:29123/sso/callback",
}),
});
const jwt = await authRes.json();
console.log("Token:", jwt);
