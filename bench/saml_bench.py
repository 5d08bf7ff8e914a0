"""The SAML half of the benchmark: the agent's ACS and SAML `sso_url` next to BoxyHQ Jackson's
(`bench/jackson/server.js`, its library controllers behind its own routes), in one run.

Both sides do the same work: sign-ins opened through the SP (the agent's `POST /sso/sso_url`,
Jackson's `GET /api/oauth/authorize`), one response per sign-in pre-signed by a test IdP
(`saml_bodies`: signed assertion, RSA-2048, answering the request's ID and RelayState), each
POSTed once to the ACS by `wrk -t2 -c64` through `bench/acs.lua`. Only 303 answers count as
validated; anything else is a failure, and there must be none.

Every measure also reports the server's CPU time per request (user + system, /proc/PID/stat
before and after the load run; the agent's and Jackson's node process), and each ACS run the
CPU of wrk itself: on a shared machine the rates move with everything else running, the CPU a
request costs much less. Environment: BENCH_SECONDS (default 5), BENCH_SAML_JACKSON=0 (the
agent alone), BENCH_SAML_PERF=PREFIX (a perf profile of the agent per load run, PREFIX.*.data),
BENCH_SAML_RATE / BENCH_JACKSON_RATE (sign-ins prepared per second of load).
"""
import concurrent.futures, http.client, json, os, re, resource, subprocess, sys, tempfile, urllib.parse, urllib.request

from bench import PASSWORD, cpu_ticks, http_post, start, stop, wrk

HERE = os.path.dirname(os.path.abspath(__file__))
CALLBACK = "http://127.0.0.1:9/cb"
USER = "admin@bench.test"
IDP_ENTITY = "https://idp.bench.test"
IDP_SSO = "http://localhost:9/sso"
SP_ENTITY = "https://amove.bench.test/sp"
JACKSON_AUDIENCE = "https://saml.boxyhq.com"  # Jackson's default samlAudience
JACKSON_AUTHORIZE = ("/api/oauth/authorize?tenant=bench.test&product=amove-bench&response_type=code"
                     f"&state=bench&redirect_uri={urllib.parse.quote(CALLBACK, safe='')}")
# Sign-ins prepared per second of load (doubled and measured again if wrk runs out of them).
AGENT_RATE = int(os.environ.get("BENCH_SAML_RATE", "4000"))
JACKSON_RATE = int(os.environ.get("BENCH_JACKSON_RATE", "300"))
# BENCH_SAML_JACKSON=0 measures the agent alone (for quick iterations; no ratios then).
WITH_JACKSON = os.environ.get("BENCH_SAML_JACKSON", "1") != "0"
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
# BENCH_SAML_PERF=PREFIX records a `perf` profile of the agent during each of its load runs
# (PREFIX.acs-signed.data, …; `perf report -i FILE`). perf slows the agent down: the rates of
# such a run are not figures to report.
PERF = os.environ.get("BENCH_SAML_PERF")


class profiled:
    """`perf record` of process `pid` for the duration of the `with` block, when PERF is set."""

    def __init__(self, pid, name):
        self.pid, self.name, self.p = pid, name, None

    def __enter__(self):
        if PERF:
            self.p = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384",
                                       "-o", f"{PERF}.{self.name}.data", "-p", str(self.pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __exit__(self, *exc):
        if self.p:
            self.p.send_signal(2)
            self.p.wait()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def idp_metadata(cert_pem):
    """The test IdP's metadata, as an admin would paste it into Jackson."""
    b64 = "".join(l for l in cert_pem.splitlines() if "CERTIFICATE" not in l)
    return ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'entityID="{IDP_ENTITY}"><md:IDPSSODescriptor '
            'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
            f'<ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>'
            '</md:KeyDescriptor><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'
            '</md:NameIDFormat><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            f'Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>')


def open_sessions(base, n, one):
    """`n` sign-ins, each opened by `one(connection)` -> the IdP redirect URL, on 4 connections."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")

    def worker(count):
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        return [one(c) for _ in range(count)]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        parts = list(ex.map(worker, [n // 4 + (i < n % 4) for i in range(4)]))
    return [u for p in parts for u in p]


def agent_sign_in(c):
    c.request("POST", "/sso/sso_url", json.dumps({"Username": USER, "CallbackUrl": CALLBACK}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body[:200])
    return json.loads(body)["Url"]


def jackson_sign_in(c):
    c.request("GET", JACKSON_AUTHORIZE)
    r = c.getresponse()
    r.read()
    assert r.status == 302, r.status
    return r.getheader("Location")


def bodies(tool, idp_dir, urls, acs, audience, encrypt_to=None):
    out = tempfile.NamedTemporaryFile("w", suffix=".bodies", delete=False)
    out.close()
    cmd = [tool, "responses", idp_dir, acs, audience, IDP_ENTITY, USER] + ([encrypt_to] if encrypt_to else [])
    with open(out.name, "w") as f:
        subprocess.run(cmd, input="\n".join(urls) + "\n", stdout=f, text=True, check=True)
    return out.name


def acs_run(url, bodies_file, duration, pid, name):
    """POSTs each body once; returns (validated/s, p99 ms, failures, ran out of bodies, CPU µs
    of process `pid` per validated response)."""
    cmd = ["wrk", "-t2", "-c64", f"-d{duration}s", "--timeout", "10s", "--latency",
           "-s", os.path.join(HERE, "acs.lua"), url, "--", bodies_file, "2"]
    before, wrk_before = cpu_ticks(pid), children_cpu_us()
    with profiled(pid, name):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu_us, wrk_us = (cpu_ticks(pid) - before) * TICK_US, children_cpu_us() - wrk_before
    m = re.search(r"ACS validated=(\d+) failed=(\d+) exhausted=(\d+) p99_us=([\d.]+) seconds=([\d.]+)", out)
    assert m, out
    ok, bad, exhausted, p99_us, secs = int(m[1]), int(m[2]), int(m[3]), float(m[4]), float(m[5])
    log(f"    (wrk, the load generator on the same cores: {wrk_us / max(ok, 1):,.0f} µs CPU per response)")
    dist = re.search(r"ACS latency_us (.*)", out)
    if dist:
        log("    latency (µs): " + dist[1])
    return ok / secs, p99_us / 1000, bad, exhausted > 0, cpu_us / max(ok, 1)


def children_cpu_us():
    """User + system CPU time of the finished child processes (wrk), µs."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1e6


def measure_acs(name, url, pid, rate, duration, prepare):
    """Prepares `rate * duration` sign-ins with `prepare(n) -> bodies file` and measures them,
    with twice as many if wrk ran out before the end. Returns (validated/s, p99 ms, CPU µs of
    the server process `pid` per validated response: user + system time, from /proc)."""
    n = rate * int(duration)
    while True:
        log(f"  {name}: preparing {n:,} signed responses")
        f = prepare(n)
        try:
            rps, p99, bad, exhausted, cpu = acs_run(url, f, duration, pid, re.sub(r"\W+", "-", name))
        finally:
            os.unlink(f)
        if not exhausted:
            break
        n *= 2
    assert bad == 0, f"{bad} answers other than 303 from {name}"
    log(f"  {name}: {rps:,.0f} validated/s, p99 {p99:.2f} ms, failures {bad}, "
        f"server CPU {cpu:,.0f} µs per validated response")
    return rps, p99, cpu


def wrk_cpu(url, pid, name, script=None, duration="5"):
    """`wrk` at 64 connections: (req/s, p99 ms, non-2xx/3xx answers, CPU µs of `pid` per request)."""
    before = cpu_ticks(pid)
    with profiled(pid, name):
        rps, p99, bad = wrk(url, script=script, duration=duration)
    cpu_us = (cpu_ticks(pid) - before) * TICK_US
    return rps, p99, bad, cpu_us / max(rps * float(duration), 1)


def jackson_server(metadata_file):
    jdir = os.path.join(HERE, "jackson")
    return start(["node", os.path.join(jdir, "server.js"), metadata_file, CALLBACK],
                 env=dict(os.environ, NODE_ENV="production"))


def agent_server(agent, data, env):
    subprocess.run([agent, "init", "--account", "bench", "--admin", USER, "--data-dir", data],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    p, base = start([agent, "serve", "--addr", "127.0.0.1:0", "--data-dir", data], env=env)
    token = http_post(base, "/sso/ttapi/2.0/authz/0/authn",
                      urllib.parse.urlencode({"grant_type": "password", "username": "admin@bench", "password": PASSWORD}),
                      "application/x-www-form-urlencoded")["access_token"]
    return p, base, token


def configure_saml(base, token, cert_pem, config_id=None, **flags):
    body = {"Certificate": cert_pem, "SPEntityId": SP_ENTITY, "IdPSSOURL": IDP_SSO,
            "IdPEntityId": IDP_ENTITY, "Active": True, "SignAuthnRequests": True, **flags}
    if config_id is None:
        return http_post(base, "/sso/setup_saml", json.dumps(body), "application/json", token)
    body["Id"] = config_id
    url = f"{base}/sso/update_saml?token={urllib.parse.quote(token)}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def get_json(base, path, token):
    with urllib.request.urlopen(f"{base}{path}?token={urllib.parse.quote(token)}") as r:
        return json.loads(r.read())


def run(target, duration):
    """Runs the SAML measures; returns the table rows (measure, result, target)."""
    agent_bin = os.path.join(target, "amove-agent")
    tool = os.path.join(target, "examples", "saml_bodies")
    work = tempfile.mkdtemp(prefix="amove-saml-bench-")
    subprocess.run([tool, "idp", work], check=True)
    cert_pem = open(os.path.join(work, "idp.crt.pem")).read()
    md = os.path.join(work, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(idp_metadata(cert_pem))

    env = dict(os.environ, AMOVE_ADMIN_PASSWORD=PASSWORD, AMOVE_LOG="warn")
    data = os.path.join(work, "agent")
    os.mkdir(data)
    agent, base, token = agent_server(agent_bin, data, env)
    cfg = configure_saml(base, token, cert_pem)
    with urllib.request.urlopen(f"{base}/sso/saml/metadata?account=bench") as r:
        acs = re.search(r'Location="([^"]*/sso/saml/acs)"', r.read().decode())[1]
    jackson, jbase = jackson_server(md) if WITH_JACKSON else (None, None)
    jacs = jbase and jbase + "/api/oauth/saml"
    apid = agent.pid
    try:
        log("measuring the SAML ACS: agent, then Jackson")
        a_rps, a_p99, a_cpu = measure_acs(
            "agent ACS, signed assertion", base + "/sso/saml/acs", apid, AGENT_RATE, duration,
            lambda n: bodies(tool, work, open_sessions(base, n, agent_sign_in), acs, SP_ENTITY))
        if jackson:
            j_rps, j_p99, j_cpu = measure_acs(
                "Jackson ACS, signed assertion", jacs, jackson.pid, JACKSON_RATE, duration,
                lambda n: bodies(tool, work, open_sessions(jbase, n, jackson_sign_in), jacs, JACKSON_AUDIENCE))
        keys = get_json(base, "/sso/saml/sp_keys", token)["Keys"]
        enc = next(k["Certificate"] for k in keys if k["Use"] == "encryption" and k["Status"] == "active")
        enc_file = os.path.join(work, "sp-encryption.crt.pem")
        with open(enc_file, "w") as f:
            f.write(enc)
        configure_saml(base, token, cert_pem, cfg["Id"], RequireEncryptedAssertions=True)
        e_rps, e_p99, e_cpu = measure_acs(
            "agent ACS, encrypted assertion", base + "/sso/saml/acs", apid, AGENT_RATE, duration,
            lambda n: bodies(tool, work, open_sessions(base, n, agent_sign_in), acs, SP_ENTITY, enc_file))
        log("measuring SAML sso_url (signed AuthnRequests) and Jackson's /authorize")
        lua = os.path.join(work, "sso_url.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.body = \'{json.dumps({"Username": USER, "CallbackUrl": CALLBACK})}\'\n')
        s_rps, s_p99, bad, s_cpu = wrk_cpu(base + "/sso/sso_url", apid, "agent-sso_url", script=lua, duration=duration)
        assert bad == 0, f"{bad} non-2xx answers from sso_url"
        log(f"  sso_url {s_rps:,.0f} req/s p99 {s_p99:.2f} ms, agent CPU {s_cpu:,.0f} µs per request")
        if jackson:
            ja_rps, ja_p99, bad, ja_cpu = wrk_cpu(jbase + JACKSON_AUTHORIZE, jackson.pid, "jackson-authorize", duration=duration)
            assert bad == 0, f"{bad} non-2xx/3xx answers from Jackson's authorize"
            log(f"  Jackson authorize {ja_rps:,.0f} req/s p99 {ja_p99:.2f} ms, CPU {ja_cpu:,.0f} µs per request")
    finally:
        stop(agent)
        if jackson:
            stop(jackson)
        subprocess.run(["rm", "-rf", work])
    cpu = lambda us: f"{us / 1000:.2f} ms"
    rows = [
        ("SAML ACS, signed assertion (RSA-2048), 64 connections: agent",
         f"{a_rps:,.0f} validated/s, p99 {a_p99:.2f} ms, 0 failures; agent CPU {cpu(a_cpu)} per response",
         "≥ 2,500/s, p99 < 20 ms"),
        ("SAML ACS, encrypted assertion (AES-256-GCM, RSA-OAEP), agent, 64 connections",
         f"{e_rps:,.0f} validated/s, p99 {e_p99:.2f} ms, 0 failures; agent CPU {cpu(e_cpu)} per response",
         "≥ 1,500/s, p99 < 20 ms"),
        ("SAML `sso_url` (signed AuthnRequest), agent, 64 connections",
         f"{s_rps:,.0f} req/s, p99 {s_p99:.2f} ms; agent CPU {cpu(s_cpu)} per request", ""),
    ]
    if jackson:
        rows[0] = ("SAML ACS, signed assertion (RSA-2048), 64 connections: agent / Jackson",
                   f"{a_rps:,.0f} / {j_rps:,.0f} validated/s (**{a_rps / j_rps:.0f}×**), p99 {a_p99:.2f} / "
                   f"{j_p99:.1f} ms, 0 failures; CPU per response {cpu(a_cpu)} / {cpu(j_cpu)} "
                   f"({j_cpu / a_cpu:.0f}×)",
                   "≥ 25× Jackson, ≥ 2,500/s, p99 < 20 ms")
        rows[2] = ("SAML `sso_url` (signed AuthnRequest) / Jackson `/authorize` (signs), 64 connections",
                   f"{s_rps:,.0f} / {ja_rps:,.0f} req/s (**{s_rps / ja_rps:.0f}×**), p99 {s_p99:.2f} / "
                   f"{ja_p99:.1f} ms; CPU per request {cpu(s_cpu)} / {cpu(ja_cpu)} ({ja_cpu / s_cpu:.0f}×)",
                   "≥ 50× Jackson")
    return rows


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "target/release"
    rows = run(target, os.environ.get("BENCH_SECONDS", "5"))
    print("\n| measure | result | target |\n| --- | --- | --- |")
    for what, value, tgt in rows:
        print(f"| {what} | {value} | {tgt} |")
