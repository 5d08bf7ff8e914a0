//! Benchmark helper: mints a session JWT for a user with the agent's own signing key from its
//! data directory, as a sign-in would. Used only by `scripts/bench.sh` to measure the
//! session-token grant without driving a browser login.
//!
//! Usage: `mint_session DATA_DIR EMAIL`

use amove_agent::auth::session::{SessionKeys, claims_for};
use amove_agent::clock::{Clock, SystemClock};
use amove_agent::store::{Db, accounts, users};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (dir, email) = match (args.next(), args.next()) {
        (Some(d), Some(e)) => (std::path::PathBuf::from(d), e),
        _ => return Err("usage: mint_session DATA_DIR EMAIL".into()),
    };
    let db = Db::open(&dir.join("agent.db")).map_err(|e| e.to_string())?;
    let (user, ident) = db
        .read_blocking(|c| {
            let u = users::by_email(c, &email)?
                .ok_or_else(|| amove_agent::Error::invalid("no such user"))?;
            let a = accounts::by_id(c, u.account_id)?
                .ok_or_else(|| amove_agent::Error::invalid("no account"))?;
            Ok((u, a.identifier))
        })
        .map_err(|e| e.to_string())?;
    let keys = SessionKeys::load_or_create(&dir).map_err(|e| e.to_string())?;
    let now = SystemClock.now();
    let claims = claims_for(
        user.id,
        &user.email,
        &ident,
        user.account_id,
        user.role.as_str(),
        "password",
    );
    let (token, _) = keys.mint(claims, now, 3600).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}
