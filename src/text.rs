//! Small text helpers for messages that echo what a client or an IdP sent.

/// Cuts `s` to at most `n` characters (for echoing header values in messages).
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}
