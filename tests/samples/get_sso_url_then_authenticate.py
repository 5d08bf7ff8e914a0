import requests
base = "http://localhost:29123"
# 1. Resolve the user's identity provider and get the authorization URL.
resp = requests.post(
f"{base}/sso/sso_url",
json={
"CallbackUrl": "http://localhost:29123/sso/callback",
"Username": "user@example.com",
},
)
sso = resp.json()
print("Open in a browser:", sso["Url"])
# 2. After the IdP redirects back with an authorization code, exchange it for a JWT.
resp = requests.post(
f"{base}/sso/authenticate",
json={
"Identifier": sso["Identifier"],
"AuthorizationCode": "CODE_FROM_IDP_REDIRECT",
"CallbackUrl": "http://localhost:29123/sso/callback",
},
)
jwt = resp.json()
print("Token:", jwt)
