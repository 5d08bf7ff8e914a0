//! Identity provider configurations: one per kind per account, at most one active.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::store::constraint_message;

/// Kept here too, so that callers naming it through the store still compile.
pub use crate::domain::Kind;

/// A stored configuration. OIDC kinds use the `client_*`, `openid_url` and `graph_url`
/// fields; SAML the certificate and URL fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    /// Row id (the API's `Id`).
    pub id: i64,
    /// Owning account.
    pub account_id: i64,
    /// Kind.
    pub kind: Kind,
    /// Whether sign-in uses it.
    pub active: bool,
    /// OIDC client id.
    pub client_id: Option<String>,
    /// OIDC client secret, sealed (see `crypto::seal`).
    pub client_secret_enc: Option<String>,
    /// OIDC discovery URL (or issuer).
    pub openid_url: Option<String>,
    /// Microsoft Graph base URL (Entra ID).
    pub graph_url: Option<String>,
    /// The IdP's signing certificate (PEM).
    pub certificate: Option<String>,
    /// The IdP's next signing certificate during a rollover (PEM).
    pub next_certificate: Option<String>,
    /// The agent's SAML entity id at the IdP.
    pub sp_entity_id: Option<String>,
    /// The IdP's SSO URL (HTTP-Redirect binding).
    pub idp_sso_url: Option<String>,
    /// The IdP's entity id; when set, responses must name it as Issuer.
    pub idp_entity_id: Option<String>,
    /// The SAML attribute carrying the user's groups (`None`: the defaults).
    pub groups_attribute: Option<String>,
    /// Entra ID: the tenant ids (`tid`) allowed to sign in (required when multi-tenant).
    pub allowed_tenants: Vec<String>,
    /// SAML: whether an expired IdP certificate still verifies (an admin's explicit choice).
    pub allow_expired_certificate: bool,
    /// SAML: whether the agent signs its AuthnRequests (HTTP-Redirect binding signature).
    pub sign_authn_requests: bool,
    /// SAML: whether a plain (unencrypted) assertion is refused.
    pub require_encrypted_assertions: bool,
    /// SAML: the IdP's metadata URL, read again for certificate rollover.
    pub idp_metadata_url: Option<String>,
    /// SAML: the IdP's SingleLogoutService (HTTP-Redirect binding).
    pub idp_slo_url: Option<String>,
    /// Raised by every update: what a pending login is bound to.
    pub version: i64,
    /// Last change.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, kind, active, client_id, client_secret_enc, openid_url, \
     graph_url, certificate, next_certificate, sp_entity_id, idp_sso_url, idp_entity_id, updated_at, groups_attribute, allowed_tenants, allow_expired_certificate, version, sign_authn_requests, require_encrypted_assertions, idp_metadata_url, idp_slo_url";

fn from_row(r: &Row<'_>) -> rusqlite::Result<IdpConfig> {
    let kind: String = r.get(2)?;
    Ok(IdpConfig {
        id: r.get(0)?,
        account_id: r.get(1)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Saml),
        active: r.get(3)?,
        client_id: r.get(4)?,
        client_secret_enc: r.get(5)?,
        openid_url: r.get(6)?,
        graph_url: r.get(7)?,
        certificate: r.get(8)?,
        next_certificate: r.get(9)?,
        sp_entity_id: r.get(10)?,
        idp_sso_url: r.get(11)?,
        idp_entity_id: r.get(12)?,
        updated_at: r.get(13)?,
        groups_attribute: r.get(14)?,
        allowed_tenants: r
            .get::<_, Option<String>>(15)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        allow_expired_certificate: r.get(16)?,
        version: r.get(17)?,
        sign_authn_requests: r.get(18)?,
        require_encrypted_assertions: r.get(19)?,
        idp_metadata_url: r.get(20)?,
        idp_slo_url: r.get(21)?,
    })
}

/// The stored form of `allowed_tenants`: a JSON array, NULL when empty.
fn tenants_column(tenants: &[String]) -> Option<String> {
    (!tenants.is_empty()).then(|| serde_json::Value::from(tenants.to_vec()).to_string())
}

/// Every account's configuration of this kind (a SAML IdP's LogoutRequest is matched to the
/// configuration whose certificate verifies it).
pub fn all_of_kind(conn: &Connection, kind: Kind) -> Result<Vec<IdpConfig>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM idp_configs WHERE kind = ?1"
    ))?;
    let rows = stmt.query_map([kind.as_str()], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The account's configuration of this kind.
pub fn get(conn: &Connection, account_id: i64, kind: Kind) -> Result<Option<IdpConfig>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM idp_configs WHERE account_id = ?1 AND kind = ?2"
    ))?;
    Ok(stmt
        .query_row(params![account_id, kind.as_str()], from_row)
        .optional()?)
}

/// [`get`] through `cache` at database `generation` (see
/// [`Db::generation`](crate::store::Db::generation)): exact for that snapshot, whoever wrote
/// since.
pub async fn get_cached(
    db: &crate::store::Db,
    cache: &crate::store::cache::GenCache<(i64, Kind), Option<IdpConfig>>,
    account_id: i64,
    kind: Kind,
    generation: i64,
) -> Result<Option<IdpConfig>> {
    if let Some(c) = cache.get(&(account_id, kind), generation) {
        return Ok(c);
    }
    let c = db.read(move |c| get(c, account_id, kind)).await?;
    cache.put((account_id, kind), generation, c.clone());
    Ok(c)
}

/// The account's active configuration, if any.
pub fn active(conn: &Connection, account_id: i64) -> Result<Option<IdpConfig>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM idp_configs WHERE account_id = ?1 AND active = 1"
    ))?;
    Ok(stmt.query_row([account_id], from_row).optional()?)
}

/// Fails with `DEFAULT` naming the active configuration when `c` would be a second active one.
pub fn check_one_active(conn: &Connection, c: &IdpConfig) -> Result<()> {
    if !c.active {
        return Ok(());
    }
    match active(conn, c.account_id)? {
        Some(other) if other.kind != c.kind => Err(second_active(other.kind)),
        _ => Ok(()),
    }
}

fn second_active(active: Kind) -> Error {
    Error::invalid(format!(
        "Active: the {} configuration is already active; deactivate it before activating another",
        active.label()
    ))
}

fn map_write_error(e: rusqlite::Error, c: &IdpConfig) -> Error {
    match constraint_message(&e) {
        // A concurrent request activated another kind between our check and our write.
        Some(m) if m.contains("idp_configs.account_id") && c.active => Error::invalid(
            "Active: another configuration is already active; deactivate it before activating this one",
        ),
        Some(m) if m.contains("idp_configs.account_id, idp_configs.kind") => {
            Error::Duplicate(format!(
                "a {} configuration already exists for this account",
                c.kind.label()
            ))
        }
        _ => e.into(),
    }
}

/// Inserts a new configuration and returns its id.
pub fn insert(conn: &Connection, c: &IdpConfig, now: i64) -> Result<i64> {
    check_one_active(conn, c)?;
    conn.execute(
        "INSERT INTO idp_configs (account_id, kind, active, client_id, client_secret_enc, \
         openid_url, graph_url, certificate, next_certificate, sp_entity_id, idp_sso_url, \
         idp_entity_id, created_at, updated_at, groups_attribute, allowed_tenants, \
         allow_expired_certificate, sign_authn_requests, require_encrypted_assertions, \
         idp_metadata_url, idp_slo_url) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20)",
        params![
            c.account_id,
            c.kind.as_str(),
            c.active,
            c.client_id,
            c.client_secret_enc,
            c.openid_url,
            c.graph_url,
            c.certificate,
            c.next_certificate,
            c.sp_entity_id,
            c.idp_sso_url,
            c.idp_entity_id,
            now,
            c.groups_attribute,
            tenants_column(&c.allowed_tenants),
            c.allow_expired_certificate,
            c.sign_authn_requests,
            c.require_encrypted_assertions,
            c.idp_metadata_url,
            c.idp_slo_url
        ],
    )
    .map_err(|e| map_write_error(e, c))?;
    Ok(conn.last_insert_rowid())
}

/// Replaces every field of the configuration with id `c.id`; false when there is none.
pub fn update(conn: &Connection, c: &IdpConfig, now: i64) -> Result<bool> {
    check_one_active(conn, c)?;
    let n = conn
        .execute(
            "UPDATE idp_configs SET active = ?3, client_id = ?4, client_secret_enc = ?5, \
             openid_url = ?6, graph_url = ?7, certificate = ?8, next_certificate = ?9, \
             sp_entity_id = ?10, idp_sso_url = ?11, idp_entity_id = ?12, updated_at = ?13, \
             groups_attribute = ?15, allowed_tenants = ?16, allow_expired_certificate = ?17, \
             sign_authn_requests = ?18, require_encrypted_assertions = ?19, \
             idp_metadata_url = ?20, idp_slo_url = ?21, version = version + 1 WHERE id = ?1 AND account_id = ?2 AND kind = ?14",
            params![
                c.id,
                c.account_id,
                c.active,
                c.client_id,
                c.client_secret_enc,
                c.openid_url,
                c.graph_url,
                c.certificate,
                c.next_certificate,
                c.sp_entity_id,
                c.idp_sso_url,
                c.idp_entity_id,
                now,
                c.kind.as_str(),
                c.groups_attribute,
                tenants_column(&c.allowed_tenants),
                c.allow_expired_certificate,
                c.sign_authn_requests,
                c.require_encrypted_assertions,
                c.idp_metadata_url,
                c.idp_slo_url
            ],
        )
        .map_err(|e| map_write_error(e, c))?;
    Ok(n == 1)
}

/// The values a metadata refresh keeps up to date.
#[derive(Debug, Clone, Copy)]
pub struct FromMetadata<'a> {
    /// `Certificate`.
    pub certificate: Option<&'a str>,
    /// `NextCertificate`.
    pub next_certificate: Option<&'a str>,
    /// `IdPSSOURL`.
    pub idp_sso_url: Option<&'a str>,
    /// `IdPSLOURL`.
    pub idp_slo_url: Option<&'a str>,
}

/// Applies a certificate rollover read from the IdP's metadata to configuration `id`, if it
/// is still at `version`; false when it changed meanwhile. The version is raised only when
/// the SSO URL moves: a new `NextCertificate` from the same IdP (or a new single logout URL)
/// does not void the sign-ins under way.
pub fn apply_rollover(
    conn: &Connection,
    id: i64,
    version: i64,
    r: &FromMetadata<'_>,
    now: i64,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE idp_configs SET certificate = ?3, next_certificate = ?4, \
         version = version + (idp_sso_url IS NOT ?5), idp_sso_url = ?5, idp_slo_url = ?6, \
         updated_at = ?7 WHERE id = ?1 AND version = ?2",
        params![
            id,
            version,
            r.certificate,
            r.next_certificate,
            r.idp_sso_url,
            r.idp_slo_url,
            now
        ],
    )?;
    Ok(n == 1)
}

/// `(id, account_id)` of every SAML configuration with an `IdPMetadataURL`.
pub fn with_metadata_url(conn: &Connection) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, account_id FROM idp_configs WHERE kind = 'saml' AND idp_metadata_url IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes the account's configuration of this kind; returns what was deleted.
pub fn delete(conn: &Connection, account_id: i64, kind: Kind) -> Result<Option<IdpConfig>> {
    let existing = get(conn, account_id, kind)?;
    if let Some(c) = &existing {
        conn.execute("DELETE FROM idp_configs WHERE id = ?1", [c.id])?;
    }
    Ok(existing)
}
