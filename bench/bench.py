#!/usr/bin/env python3
"""Benchmark driver: starts the release agent and the hello-world baseline, measures them in the
same run, then the SAML ACS and sso_url next to BoxyHQ Jackson (saml_bench.py), and prints a
Markdown table. Standard library + wrk (+ node for Jackson) only.

Usage: bench/bench.py TARGET_DIR   (run by scripts/bench.sh after a release build)
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.request, urllib.parse, http.client, http.server

TARGET = sys.argv[1] if len(sys.argv) > 1 else "target/release"
AGENT = os.path.join(TARGET, "amove-agent")
HELLO = os.path.join(TARGET, "examples", "hello_baseline")
MINT = os.path.join(TARGET, "examples", "mint_session")
PASSWORD = "benchmark password 123"
DURATION = os.environ.get("BENCH_SECONDS", "5")
# The throughput measures and the baseline are taken in alternation, ROUNDS times, so that a
# slow or fast stretch of a shared machine falls on both sides of each ratio.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
rows = []


def row(what, value, target=""):
    rows.append((what, value, target))
    print(f"  {what}: {value}", file=sys.stderr, flush=True)


def start(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return p, line[len("listening on "):]


def stop(p):
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) / 1024
    return float("nan")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def wrk(url, conns=64, script=None, duration=DURATION):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0


def http_post(base, path, body, ctype, token=None):
    url = base + path + (("?token=" + urllib.parse.quote(token)) if token else "")
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def discovery_server():
    """A minimal OpenID Provider discovery document on 127.0.0.1 (sso_url needs only that)."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_port}"
            doc = {"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
                   "jwks_uri": base + "/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
                   "id_token_signing_alg_values_supported": ["RS256"], "token_endpoint_auth_methods_supported": ["client_secret_basic"]}
            body = json.dumps(doc if self.path.endswith("openid-configuration") else {"keys": []}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_port}/.well-known/openid-configuration"


def cold_start(data_dir, runs=15):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([AGENT, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline().strip()
        host, port = line.rsplit("/", 1)[1].split(":")
        while True:
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.0005)
        times.append((time.perf_counter() - t0) * 1000)
        stop(p)
    return statistics.median(times), max(times)


def main():
    data = tempfile.mkdtemp(prefix="amove-bench-")
    env = dict(os.environ, AMOVE_ADMIN_PASSWORD=PASSWORD, AMOVE_LOG="warn")
    subprocess.run([AGENT, "init", "--account", "bench", "--admin", "admin@bench.test", "--data-dir", data],
                   env=env, check=True, stdout=subprocess.DEVNULL)

    print("measuring cold start", file=sys.stderr)
    med, worst = cold_start(data)
    row("cold start to first /health 200 (median of 15 / worst)", f"{med:.1f} ms / {worst:.1f} ms", "< 50 ms")

    hello, hello_url = start([HELLO])
    agent, base = start([AGENT, "serve", "--addr", "127.0.0.1:0", "--data-dir", data], env=env)
    time.sleep(2)
    row("agent idle RSS (after start, no requests)", f"{rss_mb(agent.pid):.1f} MB", "< 20 MB")
    t0 = cpu_ticks(agent.pid); time.sleep(5); t1 = cpu_ticks(agent.pid)
    row("agent idle CPU over 5 s", f"{(t1 - t0) * 10} ms", "")

    token = http_post(base, "/sso/ttapi/2.0/authz/0/authn",
                      urllib.parse.urlencode({"grant_type": "password", "username": "admin@bench", "password": PASSWORD}),
                      "application/x-www-form-urlencoded")["access_token"]
    disco, disco_url = discovery_server()
    http_post(base, "/sso/setup_okta", json.dumps({"ClientId": "bench", "ClientSecret": "bench-secret",
              "OpenIdURL": disco_url, "Active": True}), "application/json", token)

    session = subprocess.run([MINT, data, "admin@bench.test"], capture_output=True, text=True, check=True).stdout.strip()
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
              'wrk.body = \'{"Username": "admin@bench.test", "CallbackUrl": "http://127.0.0.1:9/cb"}\'\n')
    lua.close()
    http_post(base, "/sso/sso_url", json.dumps({"Username": "admin@bench.test", "CallbackUrl": "http://127.0.0.1:9/cb"}), "application/json")
    measures = [
        ("baseline: axum hello world, 64 connections", hello_url + "/", None, ""),
        ("get_okta (access token), 64 connections", f"{base}/sso/get_okta?token={token}", None, ">= 50 % of baseline, p99 < 5 ms"),
        ("get_okta (session JWT), 64 connections", f"{base}/sso/get_okta?token={session}", None, ""),
        ("sso_url (OIDC, discovery cached), 64 connections", f"{base}/sso/sso_url", lua.name, ">= 30 % of baseline, p99 < 5 ms"),
    ]
    runs = [[] for _ in measures]
    for r in range(ROUNDS):
        for i, (what, url, script, _) in enumerate(measures):
            rps, p99, bad = wrk(url, script=script)
            assert bad == 0, f"{bad} non-2xx answers from {what}"
            runs[i].append((rps, p99))
            print(f"  round {r + 1}/{ROUNDS}: {what}: {rps:,.0f} req/s, p99 {p99:.2f} ms", file=sys.stderr, flush=True)
    baseline = [rps for rps, _ in runs[0]]
    for i, (what, _, _, target) in enumerate(measures):
        rps = statistics.median(x for x, _ in runs[i])
        p99s = [p for _, p in runs[i]]
        p99 = f"p99 {statistics.median(p99s):.2f} ms ({min(p99s):.2f}–{max(p99s):.2f})"
        if i == 0:
            row(what, f"{rps:,.0f} req/s ({min(baseline):,.0f}–{max(baseline):,.0f}), {p99}")
            continue
        # Each round's ratio is against the baseline measured in that round.
        pct = [100 * x / b for (x, _), b in zip(runs[i], baseline)]
        row(what, f"{rps:,.0f} req/s ({statistics.median(pct):.0f} % of baseline; rounds {min(pct):.0f}–{max(pct):.0f} %), {p99}",
            target)
    disco.shutdown()
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
              f'wrk.body = "grant_type=urn:ssocircle:api:sessiontoken&password={session}"\n')
    lua.close()
    print("measuring token exchange", file=sys.stderr)
    s_rps, s_p99, bad = wrk(f"{base}/sso/ttapi/2.0/authz/0/authn", conns=64, script=lua.name)
    assert bad == 0, f"{bad} non-2xx answers from the session-token grant"
    row("token exchange, session-token grant, 64 connections", f"{s_rps:,.0f} tokens/s, p99 {s_p99:.2f} ms", "")
    with open(lua.name, "w") as f:
        body = urllib.parse.urlencode({"grant_type": "password", "username": "admin@bench", "password": PASSWORD})
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
                f'wrk.body = "{body}"\n')
    p_rps, p_p99, bad = wrk(f"{base}/sso/ttapi/2.0/authz/0/authn", conns=4, script=lua.name)
    assert bad == 0, f"{bad} non-2xx answers from the password grant"
    row("token exchange, password grant (argon2id), 4 connections", f"{p_rps:,.0f} tokens/s, p99 {p_p99:.1f} ms", "")
    row("agent RSS after the load", f"{rss_mb(agent.pid):.1f} MB", "")

    stop(agent); stop(hello)
    shutil.rmtree(data, ignore_errors=True)
    os.unlink(lua.name)
    print("measuring the SAML ACS and sso_url next to BoxyHQ Jackson", file=sys.stderr)
    import saml_bench  # it imports this file's helpers, so not before they exist
    rows.extend(saml_bench.run(TARGET, DURATION))
    print("measuring SAML validation and OIDC authenticate (cargo bench --bench sso)", file=sys.stderr)
    inproc = "".join(subprocess.run(["cargo", "bench", "--quiet", "--bench", "sso", "--", section],
                                    capture_output=True, text=True, check=True).stdout
                     for section in ("saml", "oidc", "import"))
    print("\n| measure | result | target |\n| --- | --- | --- |")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")
    for line in inproc.splitlines():
        if line.startswith("|"):
            print(line)


if __name__ == "__main__":
    main()
