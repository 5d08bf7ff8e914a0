//! Settings of the agent as a whole (`agent_settings`): named text values.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// The value of setting `name`, if set.
pub fn get(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM agent_settings WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Sets `name` to `value`, or removes it when `None`.
pub fn put(conn: &Connection, name: &str, value: Option<&str>, now: i64) -> Result<()> {
    match value {
        Some(v) => conn.execute(
            "INSERT INTO agent_settings (name, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            params![name, v, now],
        )?,
        None => conn.execute("DELETE FROM agent_settings WHERE name = ?1", [name])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replace_and_remove() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        crate::store::migrations::apply(&mut conn)?;
        assert_eq!(get(&conn, "a")?, None);
        put(&conn, "a", Some("1"), 10)?;
        put(&conn, "a", Some("2"), 11)?;
        assert_eq!(get(&conn, "a")?.as_deref(), Some("2"));
        put(&conn, "a", None, 12)?;
        assert_eq!(get(&conn, "a")?, None);
        Ok(())
    }
}
