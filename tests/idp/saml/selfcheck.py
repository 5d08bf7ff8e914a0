#!/usr/bin/env python3
"""End-to-end self-check of the test SAML IdP (python3 standard library only).

Starts start.sh in a temporary directory, sends an unsigned AuthnRequest with
the HTTP-Redirect binding, logs in as alice@corp.test through the login form
with a cookie jar, extracts the SAMLResponse from the auto-submitting HTML
form and checks it. Prints PASS or FAIL (exit code 0 / 1).

usage: selfcheck.py [--keep] [--verbose] [--dump]
  --keep     keep the temporary work dir (path is printed)
  --dump     save the final HTML page and the decoded Response XML in the
             work dir (response.html, response.xml); use with --keep
  --verbose  print every HTTP step
"""

import base64
import datetime
import html.parser
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SP_ENTITY_ID = "https://sp.selfcheck.test/saml/metadata"
USER, PASSWORD = "alice@corp.test", "alice-pw"
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
VERBOSE = "--verbose" in sys.argv


def log(msg):
    if VERBOSE:
        print("  " + msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_authn_request(request_id, destination, acs_url):
    issue_instant = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{request_id}" Version="2.0" IssueInstant="{issue_instant}" '
        f'Destination="{destination}" AssertionConsumerServiceURL="{acs_url}" '
        'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
        f"<saml:Issuer>{SP_ENTITY_ID}</saml:Issuer>"
        "</samlp:AuthnRequest>"
    )


def redirect_encode(xml):
    """HTTP-Redirect binding: raw DEFLATE (no zlib header), base64 (urlencode later)."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml.encode()) + c.flush()).decode()


class FormParser(html.parser.HTMLParser):
    """Collects every <form action method> with its <input name value> fields."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type", "text").lower() in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def parse_forms(body):
    p = FormParser()
    p.feed(body)
    return p.forms


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main():
    keep = "--keep" in sys.argv
    workdir = tempfile.mkdtemp(prefix="saml-idp-selfcheck-")
    port = free_port()
    acs_url = f"http://127.0.0.1:{free_port()}/saml/acs"
    proc = None
    failures = []

    def check(cond, what):
        print(("  ok    " if cond else "  FAIL  ") + what, flush=True)
        if not cond:
            failures.append(what)

    try:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["bash", os.path.join(HERE, "start.sh"), "--workdir", workdir, "--port", str(port),
             "--sp-entity-id", SP_ENTITY_ID, "--acs-url", acs_url],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline().strip()
        if line != f"listening on http://127.0.0.1:{port}":
            raise RuntimeError(f"start.sh did not come up (first line {line!r}, exit {proc.poll()})")
        print(f"  start.sh answered in {time.monotonic() - t0:.2f}s: {line}")
        with open(os.path.join(workdir, "idp.json")) as f:
            idp = json.load(f)
        with open(os.path.join(workdir, "idp.crt")) as f:
            check("BEGIN CERTIFICATE" in f.read(), "idp.crt is a PEM certificate")
        sso_url = idp["sso_url"]

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())

        def fetch(method, url, data=None):
            """One request, redirects NOT followed; returns (status, headers, body, url)."""
            body = urllib.parse.urlencode(data).encode() if data is not None else None
            req = urllib.request.Request(url, data=body, method=method)
            try:
                with opener.open(req, timeout=20) as r:
                    status, headers, text = r.status, r.headers, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                status, headers, text = e.code, e.headers, e.read().decode("utf-8", "replace")
            log(f"{method} {url[:110]} -> {status}" + (f" Location: {headers['Location'][:110]}" if headers.get("Location") else ""))
            return status, headers, text, url

        def follow(method, url, data=None, limit=10):
            status, headers, text, url = fetch(method, url, data)
            while status in (301, 302, 303, 307) and limit > 0:
                url = urllib.parse.urljoin(url, headers["Location"])
                status, headers, text, url = fetch("GET", url)
                limit -= 1
            return status, text, url

        # 1. AuthnRequest via HTTP-Redirect binding.
        request_id = "_" + uuid.uuid4().hex
        relay_state = "selfcheck-relay-" + uuid.uuid4().hex[:8]
        authn = build_authn_request(request_id, sso_url, acs_url)
        query = urllib.parse.urlencode({"SAMLRequest": redirect_encode(authn), "RelayState": relay_state})
        status, text, login_url = follow("GET", f"{sso_url}?{query}")
        check(status == 200, f"GET SSO URL -> redirects -> login page 200 (got {status})")

        # 2. Login form: username, password, AuthState (hidden).
        forms = [f for f in parse_forms(text) if "password" in f["fields"] or "AuthState" in f["fields"]]
        check(bool(forms), "login page has a form with AuthState")
        if not forms:
            raise RuntimeError("no login form; page was:\n" + text[:2000])
        form = forms[0]
        check("AuthState" in form["fields"], "login form carries hidden AuthState")
        log(f"login page {login_url[:80]}...; form action={form['action']!r} fields={sorted(form['fields'])}")
        fields = dict(form["fields"])
        fields.update({"username": USER, "password": PASSWORD})
        status, text, _ = follow("POST", urllib.parse.urljoin(login_url, form["action"]), fields)
        check(status == 200, f"POST credentials -> 200 (got {status})")

        # 3. Auto-submitting form to the ACS with SAMLResponse + RelayState.
        forms = [f for f in parse_forms(text) if "SAMLResponse" in f["fields"]]
        check(bool(forms), "response page has a form with SAMLResponse")
        if not forms:
            raise RuntimeError("no SAMLResponse form; page was:\n" + text[:3000])
        form = forms[0]
        check(form["action"] == acs_url, f"form action is the ACS URL ({form['action']})")
        check(form["method"] == "post", "form method is POST")
        check(form["fields"].get("RelayState") == relay_state, "RelayState echoed")
        check("document.forms[0].submit" in text or "submit()" in text or "post.js" in text,
              "page auto-submits (script present)")

        xml = base64.b64decode(form["fields"]["SAMLResponse"]).decode()
        if "--dump" in sys.argv:
            for name, content in (("response.html", text), ("response.xml", xml)):
                with open(os.path.join(workdir, name), "w") as f:
                    f.write(content)
            print(f"  wrote {workdir}/response.html and response.xml")
        # Cryptographic check of both signatures against DIR/idp.crt, using the
        # xmlseclibs that the simplesamlphp package ships (verify-signature.php).
        xml_file = os.path.join(workdir, "response.xml")
        with open(xml_file, "w") as f:
            f.write(xml)
        v = subprocess.run(["php", os.path.join(HERE, "verify-signature.php"), xml_file,
                            os.path.join(workdir, "idp.crt")], capture_output=True, text=True)
        log("verify-signature.php: " + " | ".join((v.stdout + v.stderr).split("\n")).strip(" |"))
        check(v.returncode == 0, "Response and Assertion signatures verify with idp.crt (rsa-sha256)")

        root = ET.fromstring(xml)
        check(root.tag == f"{{{NS['samlp']}}}Response", "root element is samlp:Response")
        check(root.get("InResponseTo") == request_id, f"Response InResponseTo = request ID ({root.get('InResponseTo')})")
        check(root.get("Destination") == acs_url, f"Response Destination = ACS URL ({root.get('Destination')})")
        status_code = root.find("samlp:Status/samlp:StatusCode", NS)
        check(status_code is not None and status_code.get("Value", "").endswith(":Success"), "StatusCode Success")
        check(root.find("ds:Signature", NS) is not None, "Response is signed (ds:Signature child)")
        assertion = root.find("saml:Assertion", NS)
        check(assertion is not None, "unencrypted saml:Assertion present")
        if assertion is not None:
            check(assertion.find("ds:Signature", NS) is not None, "Assertion is signed (ds:Signature child)")
            issuer = assertion.find("saml:Issuer", NS)
            check(issuer is not None and issuer.text == idp["entity_id"], "Assertion Issuer = IdP entity id")
            name_id = assertion.find("saml:Subject/saml:NameID", NS)
            check(name_id is not None and name_id.text == USER, f"NameID = {USER} ({None if name_id is None else name_id.text})")
            check(name_id is not None and name_id.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                  "NameID Format = emailAddress")
            scd = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
            check(scd is not None and scd.get("InResponseTo") == request_id and scd.get("Recipient") == acs_url,
                  "SubjectConfirmationData InResponseTo + Recipient")
            aud = assertion.find("saml:Conditions/saml:AudienceRestriction/saml:Audience", NS)
            check(aud is not None and aud.text == SP_ENTITY_ID, "Audience = SP entity id")
            attrs = {a.get("Name"): [v.text for v in a.findall("saml:AttributeValue", NS)]
                     for a in assertion.findall("saml:AttributeStatement/saml:Attribute", NS)}
            log(f"attributes: {attrs}")
            check(attrs.get("email") == [USER], "attribute email")
            check(attrs.get("givenName") == ["Alice"] and attrs.get("sn") == ["Liddell"], "attributes givenName, sn")
            check(attrs.get("groups") == ["engineering", "admins"], "attribute groups multi-valued")

        # 4. Second AuthnRequest with the same cookies: SSO session, no login form.
        request_id2 = "_" + uuid.uuid4().hex
        q2 = urllib.parse.urlencode({"SAMLRequest": redirect_encode(build_authn_request(request_id2, sso_url, acs_url))})
        status, text, _ = follow("GET", f"{sso_url}?{q2}")
        forms = [f for f in parse_forms(text) if "SAMLResponse" in f["fields"]]
        ok = bool(forms) and re.search(r'InResponseTo="%s"' % re.escape(request_id2),
                                       base64.b64decode(forms[0]["fields"]["SAMLResponse"]).decode()) is not None
        check(ok, "second request with the session cookie answers at once (SSO)")
    except Exception as e:  # noqa: BLE001
        failures.append(repr(e))
        print(f"  ERROR {e}", flush=True)
        log_file = os.path.join(workdir, "server.log")
        if os.path.exists(log_file):
            print("  --- server.log (tail) ---")
            with open(log_file) as f:
                print("".join(f.readlines()[-20:]))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if keep:
            print(f"  work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print("FAIL" if failures else "PASS", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
