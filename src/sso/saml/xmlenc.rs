//! XML Encryption (1.0 and 1.1) as SAML IdPs use it: an `EncryptedAssertion` or `EncryptedID`
//! holding an `EncryptedData` whose content key travels in an `EncryptedKey` (inside its
//! `KeyInfo`, or beside it), encrypted to the agent's SP encryption key.
//!
//! Accepted: data AES-128/256-GCM and AES-128/192/256-CBC; key transport RSA-OAEP, in both
//! the xmlenc (`rsa-oaep-mgf1p`: MGF1 with SHA-1, digest SHA-1 unless `DigestMethod` says
//! otherwise) and the xmlenc11 (`rsa-oaep`, with `MGF` and `DigestMethod`) forms. RSA PKCS#1
//! v1.5 key transport is refused outright (Bleichenbacher's attack works through any server
//! that decrypts it), and so is anything else. Every failure to decrypt says the same thing,
//! so the ACS is no padding or key oracle; what was decrypted is still subject to the
//! signature checks of the caller.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use zeroize::Zeroizing;

use super::xmltree::Node;

/// Data encryption algorithms, preferred first (the SP metadata's `EncryptionMethod`s).
pub const DATA_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
];
/// Key transport algorithms, preferred first.
pub const KEY_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];
const AES192_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

/// The one message for every failure to decrypt with a key the agent has.
pub const NOT_OURS: &str = "the encrypted assertion cannot be decrypted with this agent's SP \
     encryption key (it was encrypted to another key, or altered); give the IdP the \
     encryption certificate from the agent's SP metadata";

/// Decrypts an `EncryptedAssertion` or `EncryptedID` element (`enc`) with the first of `keys`
/// that opens it; the plaintext is the serialised element it hides.
pub fn decrypt(enc: &Node, keys: &[&PKey<Private>]) -> Result<Zeroizing<Vec<u8>>, String> {
    let what = &enc.name;
    let data = enc
        .child("EncryptedData")
        .ok_or_else(|| format!("the {what} has no EncryptedData"))?;
    let data_alg = data
        .child("EncryptionMethod")
        .and_then(|m| m.attr("Algorithm"))
        .ok_or_else(|| format!("the {what}'s EncryptedData names no EncryptionMethod"))?;
    let cipher = data_cipher(data_alg)?;
    let ciphertext = cipher_value(data, what)?;
    // The content key: in the EncryptedData's KeyInfo, or beside the EncryptedData.
    let mut encrypted_keys: Vec<&Node> = data
        .child("KeyInfo")
        .map(|k| k.children_named("EncryptedKey").collect())
        .unwrap_or_default();
    encrypted_keys.extend(enc.children_named("EncryptedKey"));
    if encrypted_keys.is_empty() {
        return Err(format!(
            "the {what} carries no EncryptedKey (a key agreed out of band is not supported)"
        ));
    }
    let transports = encrypted_keys
        .iter()
        .map(|k| key_transport(k).map(|t| (t, *k)))
        .collect::<Result<Vec<_>, String>>()?;
    if keys.is_empty() {
        return Err("this agent has no SP encryption key".into());
    }
    for (transport, node) in &transports {
        let wrapped = cipher_value(node, "EncryptedKey")?;
        for key in keys {
            let Ok(cek) = unwrap_key(key, transport, &wrapped) else {
                continue;
            };
            if cek.len() != cipher.key_len {
                continue;
            }
            if let Ok(plain) = decrypt_data(&cipher, &cek, &ciphertext) {
                return Ok(plain);
            }
        }
    }
    Err(NOT_OURS.into())
}

/// A data encryption algorithm.
struct DataCipher {
    cipher: Cipher,
    key_len: usize,
    gcm: bool,
}

fn data_cipher(alg: &str) -> Result<DataCipher, String> {
    let (cipher, key_len, gcm) = match alg {
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), 16, true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), 32, true),
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), 16, false),
        AES192_CBC => (Cipher::aes_192_cbc(), 24, false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), 32, false),
        other => {
            return Err(format!(
                "the assertion is encrypted with '{}', which is not accepted (AES-GCM or AES-CBC \
                 are)",
                super::envelope::printable(other, 100)
            ));
        }
    };
    Ok(DataCipher {
        cipher,
        key_len,
        gcm,
    })
}

/// How a content key was encrypted: RSA-OAEP with its digest and mask function.
struct Transport {
    digest: &'static MdRef,
    mgf1: &'static MdRef,
    label: Option<Vec<u8>>,
}

fn key_transport(k: &Node) -> Result<Transport, String> {
    let method = k
        .child("EncryptionMethod")
        .ok_or("an EncryptedKey names no EncryptionMethod")?;
    let alg = method.attr("Algorithm").unwrap_or("");
    let digest_of = |uri: &str| match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => Ok(Md::sha1()),
        "http://www.w3.org/2001/04/xmlenc#sha256" => Ok(Md::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(Md::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Ok(Md::sha512()),
        other => Err(format!(
            "the EncryptedKey's OAEP digest '{}' is not accepted",
            super::envelope::printable(other, 100)
        )),
    };
    let digest = match method
        .child("DigestMethod")
        .and_then(|d| d.attr("Algorithm"))
    {
        Some(uri) => digest_of(uri)?,
        None => Md::sha1(),
    };
    let label = match method.child("OAEPparams") {
        Some(p) => Some(b64(&p.text).ok_or("the EncryptedKey's OAEPparams are not base64")?),
        None => None,
    };
    let mgf1 = match alg {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => Md::sha1(),
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => {
            match method.child("MGF").and_then(|m| m.attr("Algorithm")) {
                None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => Md::sha1(),
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => Md::sha256(),
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => Md::sha384(),
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => Md::sha512(),
                Some(other) => {
                    return Err(format!(
                        "the EncryptedKey's mask function '{}' is not accepted",
                        super::envelope::printable(other, 100)
                    ));
                }
            }
        }
        RSA_1_5 => {
            return Err(
                "the assertion's key is encrypted with RSA PKCS#1 v1.5 (rsa-1_5), which \
                 is refused (Bleichenbacher's attack); configure the IdP to use RSA-OAEP"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "the EncryptedKey's algorithm '{}' is not accepted (RSA-OAEP is)",
                super::envelope::printable(other, 100)
            ));
        }
    };
    Ok(Transport {
        digest,
        mgf1,
        label,
    })
}

fn cipher_value(n: &Node, what: &str) -> Result<Vec<u8>, String> {
    let v = n
        .child("CipherData")
        .and_then(|d| d.child("CipherValue"))
        .ok_or_else(|| {
            format!("the {what} has no CipherData/CipherValue (CipherReference is not supported)")
        })?;
    b64(&v.text).ok_or_else(|| format!("the {what}'s CipherValue is not base64"))
}

fn b64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

fn unwrap_key(
    key: &PKey<Private>,
    t: &Transport,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.decrypt_init()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
    ctx.set_rsa_oaep_md(t.digest)?;
    ctx.set_rsa_mgf1_md(t.mgf1)?;
    if let Some(label) = &t.label {
        ctx.set_rsa_oaep_label(label)?;
    }
    let mut out = Zeroizing::new(Vec::new());
    ctx.decrypt_to_vec(wrapped, &mut out)?;
    Ok(out)
}

/// Decrypts the CipherValue of an EncryptedData: for GCM, a 12-byte IV, the ciphertext and a
/// 16-byte tag; for CBC, a 16-byte IV and the ciphertext with XML Encryption's padding (the
/// last byte counts the padding bytes, whose values are arbitrary).
fn decrypt_data(
    c: &DataCipher,
    key: &[u8],
    value: &[u8],
) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    const FAIL: &str = "decryption failed";
    let iv_len = if c.gcm { 12 } else { 16 };
    let tag_len = if c.gcm { 16 } else { 0 };
    if value.len() < iv_len + tag_len + 1 {
        return Err(FAIL);
    }
    let (iv, rest) = value.split_at(iv_len);
    let (body, tag) = rest.split_at(rest.len() - tag_len);
    if !c.gcm && body.len() % 16 != 0 {
        return Err(FAIL);
    }
    let mut crypter = Crypter::new(c.cipher, Mode::Decrypt, key, Some(iv)).map_err(|_| FAIL)?;
    crypter.pad(false);
    if c.gcm {
        crypter.set_tag(tag).map_err(|_| FAIL)?;
    }
    let mut out = Zeroizing::new(vec![0u8; body.len() + c.cipher.block_size()]);
    let mut n = crypter.update(body, &mut out).map_err(|_| FAIL)?;
    n += crypter.finalize(&mut out[n..]).map_err(|_| FAIL)?;
    out.truncate(n);
    if !c.gcm {
        let pad = usize::from(*out.last().ok_or(FAIL)?);
        if pad == 0 || pad > 16 || pad > out.len() {
            return Err(FAIL);
        }
        let keep = out.len() - pad;
        out.truncate(keep);
    }
    Ok(out)
}
