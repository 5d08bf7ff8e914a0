//! Who is calling: session JWTs, long-lived access tokens, passwords, throttling.
//!
//! [`AuthService::authenticate`] turns a bearer token into a [`Principal`] checked against
//! the database (user active, token not revoked); the API's extractors call it.

pub mod password;
pub mod session;
pub mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::clock::Clock;
use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, Result};
use crate::store::cache::GenCache;
use crate::store::users::{Role, Status, User};
use crate::store::{Db, sessions, tokens, users};
use session::{SessionClaims, SessionKeys};

/// Prefix of the agent's long-lived access tokens (helps secret scanners spot leaks).
pub const ACCESS_TOKEN_PREFIX: &str = "amv_";
const CACHE_MAX: usize = 4096;

/// The credential a request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session JWT.
    Session {
        /// Its id.
        jti: String,
        /// Its expiry.
        exp: i64,
    },
    /// A long-lived access token.
    AccessToken {
        /// Its row id.
        id: i64,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// The account identifier.
    pub account_identifier: String,
    /// What it authenticated with.
    pub credential: Credential,
    /// The database generation the credential was checked at: the request's snapshot, so
    /// its other cached reads need not ask SQLite again.
    pub generation: i64,
}

impl Principal {
    /// The user's account id.
    pub fn account_id(&self) -> i64 {
        self.user.account_id
    }
    /// The user's role (as stored now, not as at sign-in).
    pub fn role(&self) -> Role {
        self.user.role
    }
}

/// Verifies and issues credentials.
pub struct AuthService {
    db: Db,
    keys: SessionKeys,
    clock: Arc<dyn Clock>,
    session_ttl_secs: i64,
    revoked: RwLock<HashMap<String, i64>>,
    /// Verified session claims by token hash: a signature check costs more than the lookup.
    verified: Mutex<HashMap<String, SessionClaims>>,
    /// Users (with their account identifier) by id, exact for the database generation.
    users: GenCache<i64, Option<(User, String)>>,
    /// Access tokens (with user and account identifier) by hash, likewise.
    access_tokens: GenCache<String, Option<(tokens::AccessToken, User, String)>>,
    /// Admits at most two password hashes at once: each takes ~19 MiB and a core for tens
    /// of milliseconds, and more in parallel would only queue on two cores while holding memory.
    pub hash_gate: Arc<tokio::sync::Semaphore>,
    /// Working memory of those hashes, reused.
    pub hash_memory: Arc<password::HashMemory>,
    /// Failed password attempts per account user.
    pub throttle: throttle::Throttle,
}

impl AuthService {
    /// A service over `db` whose session revocations are loaded from the database.
    pub fn new(
        db: Db,
        keys: SessionKeys,
        clock: Arc<dyn Clock>,
        session_ttl_secs: i64,
    ) -> Result<Self> {
        let now = clock.now();
        let revoked = db.write_blocking(|tx| {
            sessions::purge(tx, now)?;
            sessions::live(tx, now)
        })?;
        Ok(Self {
            db,
            keys,
            clock,
            session_ttl_secs,
            revoked: RwLock::new(revoked.into_iter().collect()),
            verified: Mutex::new(HashMap::new()),
            users: GenCache::new(),
            access_tokens: GenCache::new(),
            hash_gate: Arc::new(tokio::sync::Semaphore::new(2)),
            hash_memory: Arc::new(password::HashMemory::new()),
            throttle: throttle::Throttle::new(),
        })
    }

    /// The clock this service uses.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Checks a bearer token (session JWT or access token) and loads its user.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Token("the token is empty".into()));
        }
        if token.len() > 4096 {
            return Err(Error::Token("the token is malformed".into()));
        }
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            self.authenticate_access_token(token).await
        } else if token.split('.').count() == 3 {
            let claims = self.verify_session(token)?;
            self.principal_from_session(claims).await
        } else {
            Err(Error::Token("the token is malformed".into()))
        }
    }

    /// Verifies a session JWT's signature, expiry and revocation (no database access).
    pub fn verify_session(&self, token: &str) -> Result<SessionClaims> {
        let now = self.clock.now();
        let key = sha256_hex(token);
        let cached = self.lock_cache().get(&key).cloned();
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = self.keys.verify(token, now)?;
                let mut cache = self.lock_cache();
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(key, c.clone());
                c
            }
        };
        if claims.exp <= now {
            return Err(Error::Token(
                "the session token has expired; sign in again".into(),
            ));
        }
        if self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&claims.jti)
        {
            return Err(Error::Token("the session token has been revoked".into()));
        }
        Ok(claims)
    }

    /// The claims of a session JWT this agent signed and has not revoked, expired or not
    /// (for a renewal, which its grant bounds); no database access.
    pub fn session_claims_any_age(&self, token: &str) -> Result<SessionClaims> {
        let token = token.trim();
        if token.len() > 4096 || token.split('.').count() != 3 {
            return Err(Error::Token("the session token is malformed".into()));
        }
        let claims = self.keys.verify_any_age(token)?;
        if self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&claims.jti)
        {
            return Err(Error::Token(
                "the session token has been revoked; sign in again".into(),
            ));
        }
        Ok(claims)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionClaims>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn principal_from_session(&self, claims: SessionClaims) -> Result<Principal> {
        let user_id: i64 = claims
            .sub
            .parse()
            .map_err(|_| Error::Token("the session token is invalid".into()))?;
        let aid = claims.aid;
        let generation = self.db.generation()?;
        let found = match self.users.get(&user_id, generation) {
            Some(f) => f,
            None => {
                let f = self
                    .db
                    .read(move |c| users::with_account(c, user_id))
                    .await?;
                self.users.put(user_id, generation, f.clone());
                f
            }
        };
        let Some((user, account_identifier)) = found else {
            return Err(Error::Token(
                "the session token's user no longer exists".into(),
            ));
        };
        if user.account_id != aid {
            return Err(Error::Token("the session token is invalid".into()));
        }
        check_active(&user)?;
        Ok(Principal {
            user,
            account_identifier,
            credential: Credential::Session {
                jti: claims.jti,
                exp: claims.exp,
            },
            generation,
        })
    }

    async fn authenticate_access_token(&self, token: &str) -> Result<Principal> {
        let hash = sha256_hex(token);
        let now = self.clock.now();
        let generation = self.db.generation()?;
        let found = match self.access_tokens.get(&hash, generation) {
            Some(f) => f,
            None => {
                let h = hash.clone();
                let f = self
                    .db
                    .read(move |c| {
                        let Some(t) = tokens::by_hash(c, &h)? else {
                            return Ok(None);
                        };
                        Ok(users::with_account(c, t.user_id)?.map(|(u, ident)| (t, u, ident)))
                    })
                    .await?;
                self.access_tokens.put(hash, generation, f.clone());
                f
            }
        };
        let Some((t, user, account_identifier)) = found else {
            return Err(Error::Token("the access token is invalid".into()));
        };
        if t.revoked_at.is_some() {
            return Err(Error::Token("the access token has been revoked".into()));
        }
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Token("the access token has expired".into()));
        }
        check_active(&user)?;
        if t.last_used_at.is_none_or(|l| now - l >= 60) {
            let id = t.id;
            // Best effort bookkeeping: a failure here must not fail the request.
            if let Err(e) = self.db.write(move |tx| tokens::touch(tx, id, now)).await {
                tracing::warn!(error = %e, "could not record access token use");
            }
        }
        Ok(Principal {
            user,
            account_identifier,
            credential: Credential::AccessToken { id: t.id },
            generation,
        })
    }

    /// Mints a session JWT for `user`, signed in through `amr` (`okta`, `saml`, `password`…).
    pub fn mint_session(
        &self,
        user: &User,
        account_identifier: &str,
        amr: &str,
    ) -> Result<(String, SessionClaims)> {
        self.mint_session_until(user, account_identifier, amr, None)
    }

    /// [`mint_session`](Self::mint_session), ending no later than `cap` (the IdP's
    /// `SessionNotOnOrAfter`) when one is given.
    pub fn mint_session_until(
        &self,
        user: &User,
        account_identifier: &str,
        amr: &str,
        cap: Option<i64>,
    ) -> Result<(String, SessionClaims)> {
        let now = self.clock.now();
        let ttl = match cap {
            Some(c) => self.session_ttl_secs.min(c.saturating_sub(now)).max(1),
            None => self.session_ttl_secs,
        };
        let claims = session::claims_for(
            user.id,
            &user.email,
            account_identifier,
            user.account_id,
            user.role.as_str(),
            amr,
        );
        self.keys.mint(claims, now, ttl)
    }

    /// Revokes a session JWT by id until its expiry.
    pub async fn revoke_session(&self, jti: &str, exp: i64) -> Result<()> {
        let j = jti.to_string();
        self.db
            .write(move |tx| sessions::revoke(tx, &j, exp))
            .await?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(jti.to_string(), exp);
        Ok(())
    }

    /// Forgets revocations of sessions that have expired anyway (an expired session is refused
    /// by its `exp`), in memory and in the database; returns how many went.
    pub async fn prune_revoked(&self, now: i64) -> Result<usize> {
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, exp| *exp > now);
        self.db.write(move |tx| sessions::purge(tx, now)).await
    }
}

/// A new access token and the hash it is stored under.
pub fn new_access_token() -> Result<(String, String)> {
    let token = format!("{ACCESS_TOKEN_PREFIX}{}", random_token()?);
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

fn check_active(user: &User) -> Result<()> {
    if user.status != Status::Active {
        return Err(Error::Auth(format!(
            "the user {} is inactive; ask an admin",
            user.email
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::accounts;
    use crate::store::users::NewUser;

    fn setup() -> Result<(AuthService, ManualClock, User)> {
        let db = Db::open_in_memory()?;
        let clock = ManualClock::new(1_000_000);
        let user = db.write_blocking(|tx| {
            let aid = accounts::insert(tx, "acme", "Acme", 0)?;
            let id = users::insert(
                tx,
                &NewUser {
                    account_id: aid,
                    email: "ann@acme.test".into(),
                    first_name: "Ann".into(),
                    last_name: "A".into(),
                    role: Role::Admin,
                    password_hash: None,
                },
                0,
            )?;
            users::by_id(tx, id)?.ok_or_else(|| Error::internal("missing"))
        })?;
        let svc = AuthService::new(db, SessionKeys::ephemeral()?, Arc::new(clock.clone()), 3600)?;
        Ok((svc, clock, user))
    }

    #[tokio::test]
    async fn session_token_authenticates_until_expiry() -> Result<()> {
        let (svc, clock, user) = setup()?;
        let (t, _) = svc.mint_session(&user, "acme", "password")?;
        assert_eq!(svc.authenticate(&t).await?.user.id, user.id);
        clock.advance(3600);
        assert!(matches!(svc.authenticate(&t).await, Err(Error::Token(_))));
        Ok(())
    }

    #[tokio::test]
    async fn revoked_session_is_refused_even_when_cached() -> Result<()> {
        let (svc, _clock, user) = setup()?;
        let (t, c) = svc.mint_session(&user, "acme", "password")?;
        svc.authenticate(&t).await?;
        svc.revoke_session(&c.jti, c.exp).await?;
        assert!(
            matches!(svc.authenticate(&t).await, Err(Error::Token(m)) if m.contains("revoked"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn inactive_user_is_refused() -> Result<()> {
        let (svc, _clock, user) = setup()?;
        let (t, _) = svc.mint_session(&user, "acme", "password")?;
        let id = user.id;
        svc.db
            .write(move |tx| users::set_status(tx, id, Status::Inactive, 1))
            .await?;
        assert!(matches!(svc.authenticate(&t).await, Err(Error::Auth(_))));
        Ok(())
    }

    #[tokio::test]
    async fn garbage_tokens_are_token_errors() -> Result<()> {
        let (svc, _, _) = setup()?;
        for t in ["", "x", "a.b.c", "amv_nope", &"a".repeat(5000)] {
            assert!(
                matches!(svc.authenticate(t).await, Err(Error::Token(_))),
                "{t}"
            );
        }
        Ok(())
    }
}
