//! Property tests (proptest) of every parser of outside input: never a panic, only the
//! documented errors, and never a success on a mutated signed document.
//!
//! Each property runs a bounded number of cases in CI; `AMOVE_PROPTEST_SCALE=N` multiplies
//! every count, `PROPTEST_CASES=N` sets them all (docs/testing.md).

mod inputs;
mod logout;
mod metadata;
mod oidc;
mod policy;
mod saml;
mod xmlenc;

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

/// Byte ranges of the elements named `names` (qualified, as written) in `xml`, each
/// occurrence, for mutations that duplicate or exchange whole elements.
pub(crate) fn spans(xml: &str, names: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for name in names {
        let open = format!("<{name}");
        let close = format!("</{name}>");
        let mut from = 0;
        while let Some(at) = xml[from..].find(&open).map(|i| i + from) {
            let next = xml.as_bytes().get(at + open.len()).copied();
            from = at + open.len();
            if !matches!(next, Some(b' ' | b'>' | b'/')) {
                continue;
            }
            let tag_end = xml[at..].find('>').map(|i| i + at + 1).unwrap_or(xml.len());
            let end = if xml[..tag_end].ends_with("/>") {
                tag_end
            } else {
                xml[at..]
                    .find(&close)
                    .map(|i| i + at + close.len())
                    .unwrap_or(xml.len())
            };
            out.push((at, end));
        }
    }
    out
}

/// `xml` with a copy of the element at `copy` inserted right after the one at `after`.
pub(crate) fn duplicate(xml: &str, copy: (usize, usize), after: (usize, usize)) -> String {
    let mut out = xml.to_string();
    out.insert_str(after.1, &xml[copy.0..copy.1]);
    out
}

/// `xml` with the elements at `a` and `b` exchanged, when they do not overlap.
pub(crate) fn swap(xml: &str, a: (usize, usize), b: (usize, usize)) -> Option<String> {
    let (x, y) = (a.min(b), a.max(b));
    (x.1 <= y.0).then(|| {
        format!(
            "{}{}{}{}{}",
            &xml[..x.0],
            &xml[y.0..y.1],
            &xml[x.1..y.0],
            &xml[x.0..x.1],
            &xml[y.1..]
        )
    })
}

/// A change to a valid document.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Flip bit `.1` of byte `.0`.
    Flip(usize, u8),
    /// Keep the first `.0` bytes.
    Truncate(usize),
    /// Insert a copy of element `.0` right after element `.1`.
    Duplicate(usize, usize),
    /// Exchange two elements that do not overlap.
    Swap(usize, usize),
}

/// Mutations of a document of `len` bytes with `n` elements (see [`spans`]).
pub(crate) fn mutation(len: usize, n: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        flip(len).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (0..len).prop_map(Mutation::Truncate),
        (0..n, 0..n).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (0..n, 0..n).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

impl Mutation {
    /// `xml` (whose elements are at `spans`) so changed; `None` when the change is no
    /// document (not UTF-8, overlapping elements).
    pub(crate) fn apply(&self, xml: &str, spans: &[(usize, usize)]) -> Option<String> {
        match *self {
            Mutation::Flip(i, bit) => flipped(xml, (i, bit)),
            Mutation::Truncate(n) => xml.get(..n).map(str::to_string),
            Mutation::Duplicate(a, b) => Some(duplicate(xml, spans[a], spans[b])),
            Mutation::Swap(a, b) => swap(xml, spans[a], spans[b]),
        }
    }
}
