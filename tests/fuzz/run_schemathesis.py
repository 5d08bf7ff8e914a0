"""Points schemathesis at a live agent, with an admin token and a seeded account.

    python3 tests/fuzz/run_schemathesis.py [AGENT_BINARY]      (default target/debug/amove-agent)

1. a fresh data directory: `amove-agent init` (account `fuzzco`, admin `admin@fuzz.example`),
   one standard user;
2. `amove-agent serve --addr 127.0.0.1:0`;
3. an access token for the admin (the token exchange's password grant) and the three
   providers configured: Okta (active), Entra ID and SAML, so operations reach past
   "not found" (the OIDC discovery URLs point at a closed loopback port: a sign-in gets
   499 `SSO`, quickly, instead of waiting for the network);
4. schemathesis (pinned in scripts/setup-debian.sh) runs against /openapi.json with the checks
   not_a_server_error, status_code_conformance, content_type_conformance and
   response_schema_conformance, a bounded number of examples per operation
   (SCHEMATHESIS_MAX_EXAMPLES, default 25) and a fixed seed. The operations that revoke the
   credential the fuzzer itself uses (sign-out, token revocation) run last, in a second pass.

Exits non-zero on any finding. The agent's log is printed when something fails.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ADMIN = "admin@fuzz.example"
PASSWORD = "fuzz-password-long-enough-1"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# The operations that revoke the fuzzer's own credential: fuzzed last.
LAST = ["/sso/ttapi/tokens/{id}", "/sso/logout"]


def call(base, method, path, token=None, body=None, form=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def certificate(tmp):
    key, crt = os.path.join(tmp, "idp.key"), os.path.join(tmp, "idp.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
         "-subj", "/CN=fuzz-idp", "-keyout", key, "-out", crt],
        check=True, capture_output=True,
    )
    with open(crt, encoding="ascii") as f:
        return f.read()


def seed(base, token, cert):
    closed = "http://127.0.0.1:9"
    call(base, "POST", "/sso/setup_okta", token, {
        "ClientId": "fuzz-okta", "ClientSecret": "fuzz-okta-secret",
        "OpenIdURL": f"{closed}/.well-known/openid-configuration", "Active": True})
    call(base, "POST", "/sso/setup_entraId", token, {
        "ClientId": "fuzz-entra", "ClientSecret": "fuzz-entra-secret",
        "OpenIdURL": f"{closed}/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/.well-known/openid-configuration",
        "Active": False})
    call(base, "POST", "/sso/setup_saml", token, {
        "Certificate": cert, "SPEntityId": "urn:fuzz:sp",
        "IdPSSOURL": f"{closed}/saml/sso", "Active": False})
    call(base, "PUT", "/sso/callback_urls", token, {"CallbackUrls": ["https://app.fuzz.example/cb"]})


def schemathesis(base, token, extra):
    exe = shutil.which("schemathesis") or shutil.which("st")
    if not exe:
        sys.exit("schemathesis is not installed (scripts/setup-debian.sh --test installs it)")
    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [
        exe, "--config-file", os.path.join(here, "schemathesis.toml"), "run", f"{base}/openapi.json", "--url", base,
        "--checks", CHECKS,
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"),
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261203"),
        "--phases", "examples,coverage,fuzzing",
        "--workers", "2",
        "--request-timeout", "40",
        "--max-redirects", "0",
        "--suppress-health-check", "all",
        "--no-color",
    ] + extra
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=dict(os.environ, AMOVE_FUZZ_TOKEN=token)).returncode


def main():
    agent = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/amove-agent")
    tmp = tempfile.mkdtemp(prefix="amove-fuzz-")
    data = os.path.join(tmp, "data")
    env = dict(os.environ, AMOVE_ADMIN_PASSWORD=PASSWORD, AMOVE_LOG="warn,amove_agent=info")
    subprocess.run([agent, "init", "--account", "fuzzco", "--admin", ADMIN, "--data-dir", data],
                   check=True, env=env, capture_output=True)
    subprocess.run([agent, "user", "add", "--account", "fuzzco", "--email", "ann@fuzz.example",
                    "--data-dir", data], check=True, env=env, capture_output=True)
    # The agent's log, kept for a look after the run (target/ is ignored by git).
    os.makedirs("target", exist_ok=True)
    log = open(os.path.join("target", "schemathesis-agent.log"), "w+", encoding="utf-8")
    proc = subprocess.Popen([agent, "serve", "--addr", "127.0.0.1:0", "--data-dir", data],
                            stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    rc = 1
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            sys.exit(f"the agent did not start: {line!r}")
        base = m.group(1)
        token = call(base, "POST", "/sso/ttapi/2.0/authz/0/authn",
                     form={"grant_type": "password", "username": ADMIN, "password": PASSWORD})["access_token"]
        seed(base, token, certificate(tmp))
        started = time.monotonic()
        rc = schemathesis(base, token, [a for p in LAST for a in ("--exclude-path", p)])
        for path in LAST:
            rc = rc or schemathesis(base, token, ["--include-path", path])
        print(f"schemathesis: {time.monotonic() - started:.0f} s", flush=True)
        if proc.poll() is not None:
            print("the agent exited during the run", flush=True)
            rc = rc or 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if rc:
            log.seek(0)
            print("--- agent log (last 80 lines)")
            print("".join(log.readlines()[-80:]))
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
