//! Benchmark helper: a test IdP that answers SAML sign-ins in bulk, for `scripts/bench.sh`.
//!
//! `saml_bodies idp DIR` creates an RSA-2048 IdP in DIR (`idp.key.der`, `idp.crt.pem`).
//! `saml_bodies responses DIR ACS AUDIENCE ISSUER NAMEID [ENCRYPT_TO_CERT_PEM]` reads one
//! redirect URL a line on stdin (an SP's `…?SAMLRequest=…&RelayState=…`, as the agent's
//! `sso_url` or Jackson's `/authorize` answer it) and writes one ACS form body a line on stdout:
//! a response with a signed assertion answering that request's ID, with its RelayState; the
//! assertion encrypted (AES-256-GCM, RSA-OAEP) to the given certificate when one is named.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use amove_agent::clock::{Clock, SystemClock};
use amove_agent::sso::saml::testing::{Encryption, ResponseSpec, TestIdp, encode, encrypt_element};
use base64::Engine;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["idp", dir] => create_idp(Path::new(dir)),
        ["responses", dir, acs, audience, issuer, name_id, ref rest @ ..] if rest.len() <= 1 => {
            let encrypt_to = match rest.first() {
                Some(f) => Some(std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?),
                None => None,
            };
            let idp = load_idp(Path::new(dir))?;
            let out = Out {
                acs,
                audience,
                issuer,
                name_id,
                encrypt_to: encrypt_to.as_deref(),
            };
            responses(&idp, &out)
        }
        _ => Err("usage: saml_bodies idp DIR | saml_bodies responses DIR ACS AUDIENCE ISSUER NAMEID [CERT_PEM]".into()),
    }
}

fn create_idp(dir: &Path) -> Result<(), String> {
    let idp = TestIdp::new()?;
    std::fs::write(dir.join("idp.key.der"), idp.key_der()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("idp.crt.pem"), idp.cert_pem()).map_err(|e| e.to_string())
}

fn load_idp(dir: &Path) -> Result<TestIdp, String> {
    let key = std::fs::read(dir.join("idp.key.der")).map_err(|e| e.to_string())?;
    let pem = std::fs::read(dir.join("idp.crt.pem")).map_err(|e| e.to_string())?;
    let cert = openssl::x509::X509::from_pem(&pem)
        .and_then(|c| c.to_der())
        .map_err(|e| e.to_string())?;
    Ok(TestIdp::from_der(key, cert))
}

/// What every response of a run shares.
struct Out<'a> {
    acs: &'a str,
    audience: &'a str,
    issuer: &'a str,
    name_id: &'a str,
    encrypt_to: Option<&'a str>,
}

/// The request ID and RelayState of a redirect-binding sign-in URL.
fn request_of(url: &str) -> Result<(String, String), String> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let (req, relay) = match (q.get("SAMLRequest"), q.get("RelayState")) {
        (Some(r), Some(s)) => (r, s.clone()),
        _ => return Err(format!("no SAMLRequest and RelayState in {url}")),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(req)
        .map_err(|e| e.to_string())?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .map_err(|e| e.to_string())?;
    // The AuthnRequest's own ID is its first ID attribute (a signature's come later).
    let id = xml
        .split(" ID=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("the AuthnRequest has no ID")?;
    Ok((id.to_string(), relay))
}

fn body_for(idp: &TestIdp, out: &Out, url: &str, now: i64) -> Result<String, String> {
    let (id, relay) = request_of(url)?;
    let spec = ResponseSpec::valid(&id, out.acs, out.audience, out.issuer, out.name_id, now);
    let assertion = spec.signed_assertion(idp)?;
    let assertion = match out.encrypt_to {
        Some(cert) => encrypt_element(&assertion, cert, "EncryptedAssertion", &Encryption::gcm())?,
        None => assertion,
    };
    let xml = spec.build_with(idp, None, &[assertion])?;
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &encode(&xml))
        .append_pair("RelayState", &relay)
        .finish())
}

/// Signs the responses on every core, keeping the input's order.
fn responses(idp: &TestIdp, out: &Out) -> Result<(), String> {
    let urls: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let now = SystemClock.now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = urls.len().div_ceil(threads).max(1);
    let bodies: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|u| body_for(idp, out, u, now))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a signer panicked".into())))
            .collect()
    });
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for part in bodies {
        for body in part? {
            writeln!(stdout, "{body}").map_err(|e| e.to_string())?;
        }
    }
    stdout.flush().map_err(|e| e.to_string())
}
