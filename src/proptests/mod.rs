//! Property tests (proptest) of every parser of outside input: never a panic, only the
//! documented errors, and never a success on a mutated signed document.
//!
//! Each property runs a bounded number of cases in CI; `AMOVE_PROPTEST_SCALE=N` multiplies
//! every count, `PROPTEST_CASES=N` sets them all (docs/testing.md).

mod inputs;
mod oidc;
mod saml;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `cases` (the CI count) times `AMOVE_PROPTEST_SCALE`, or `PROPTEST_CASES` when set; no
/// regression files are written (a failure prints its minimal case).
pub(crate) fn config(cases: u32) -> Config {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let scale = env("AMOVE_PROPTEST_SCALE").unwrap_or(1).max(1);
    Config {
        cases: env("PROPTEST_CASES").unwrap_or(cases.saturating_mul(scale)),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, a few levels deep.
pub(crate) fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A byte of `text` with one of its low seven bits flipped (ASCII stays ASCII): `(index, bit)`.
pub(crate) fn flip(len: usize) -> impl Strategy<Value = (usize, u8)> {
    (0..len, 0u8..7)
}

/// `text` with the byte at `i` XOR `1 << bit`, if the result is still UTF-8.
pub(crate) fn flipped(text: &str, (i, bit): (usize, u8)) -> Option<String> {
    let mut b = text.as_bytes().to_vec();
    b[i] ^= 1 << bit;
    String::from_utf8(b).ok()
}
