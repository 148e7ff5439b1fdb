//! One wal2json format-version 2 payload as serde reads it, and a column's JSON value turned
//! back into the text PostgreSQL printed.
//!
//! Values are read as [`RawValue`]s, never as `f64` or `serde_json::Value`: a number's
//! literal text is the type's output (`12345678901234567890.123456789012`, `1e+20`), and
//! any float conversion would change it. Fields the decoder does not use (`type`, `origin`,
//! `optional`, `position`, `default`, added by other options) are ignored, so enabling
//! them does no harm.

use std::collections::HashSet;

use bytes::Bytes;
use ferry_core::Datum;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// `pg_type` oid of `bytea`, the one type whose text wal2json alters (it drops the `\x`).
const BYTEA_OID: u32 = 17;

/// The top-level object of a payload; which fields are there depends on the action and on
/// the plugin options.
#[derive(Debug, Deserialize)]
pub(super) struct Payload<'a> {
    pub action: String,
    /// `null` in a non-transactional message.
    #[serde(default)]
    pub xid: Option<u32>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub lsn: Option<String>,
    #[serde(default)]
    pub nextlsn: Option<String>,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(borrow, default)]
    pub columns: Option<Vec<Column<'a>>>,
    #[serde(borrow, default)]
    pub identity: Option<Vec<Column<'a>>>,
    #[serde(borrow, default)]
    pub pk: Option<Vec<Column<'a>>>,
    #[serde(default)]
    pub transactional: Option<bool>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// One element of `columns`, `identity` or `pk` (which has no `value`).
#[derive(Debug, Deserialize)]
pub(super) struct Column<'a> {
    pub name: String,
    /// Printed with `%d`, so an oid above 2^31 arrives negative.
    #[serde(default)]
    pub typeoid: Option<i64>,
    /// `None` when absent; a JSON `null` is `Some("null")` (SQL NULL), which plain
    /// `Option` deserialization would conflate with absence.
    #[serde(borrow, default, deserialize_with = "present")]
    pub value: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// A column of a row, its value already converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Value {
    pub name: String,
    pub type_oid: u32,
    pub datum: Datum,
}

/// Why a column could not be read: the caller adds the action and table.
#[derive(Debug)]
pub(super) struct ColumnProblem {
    pub column: String,
    pub problem: String,
}

/// The columns of a row (`columns` or `identity`), each with a type oid and a value.
pub(super) fn row(columns: &[Column<'_>]) -> Result<Vec<Value>, ColumnProblem> {
    unique(columns)?;
    columns
        .iter()
        .map(|column| {
            let problem = |problem: &str| ColumnProblem {
                column: column.name.clone(),
                problem: problem.to_owned(),
            };
            let type_oid = type_oid(column)?;
            let raw = column.value.ok_or_else(|| problem("has no \"value\""))?;
            let datum = datum(raw, type_oid).map_err(|p| problem(&p))?;
            Ok(Value {
                name: column.name.clone(),
                type_oid,
                datum,
            })
        })
        .collect()
}

/// The names of the `pk` columns.
pub(super) fn names(columns: &[Column<'_>]) -> Result<Vec<String>, ColumnProblem> {
    unique(columns)?;
    Ok(columns.iter().map(|c| c.name.clone()).collect())
}

/// Two columns of one name would make the row ambiguous: never sent, so an error.
fn unique(columns: &[Column<'_>]) -> Result<(), ColumnProblem> {
    let mut seen = HashSet::with_capacity(columns.len());
    for column in columns {
        if !seen.insert(column.name.as_str()) {
            return Err(ColumnProblem {
                column: column.name.clone(),
                problem: "appears twice".to_owned(),
            });
        }
    }
    Ok(())
}

fn type_oid(column: &Column<'_>) -> Result<u32, ColumnProblem> {
    let problem = |problem: String| ColumnProblem {
        column: column.name.clone(),
        problem,
    };
    let Some(oid) = column.typeoid else {
        return Err(problem(
            "has no \"typeoid\": stream with include-type-oids".to_owned(),
        ));
    };
    // wal2json prints the unsigned oid with %d: undo the sign.
    if let Ok(oid) = u32::try_from(oid) {
        return Ok(oid);
    }
    match i32::try_from(oid) {
        Ok(negative) => Ok(u32::from_ne_bytes(negative.to_ne_bytes())),
        Err(_) => Err(problem(format!("has typeoid {oid}, not an oid"))),
    }
}

/// The text PostgreSQL printed for a value, from its JSON form:
/// - a string is the output text itself (for `bytea`, the hex digits without `\x`);
/// - a number is the output text of a numeric type, kept literally;
/// - `true` / `false` are a boolean's output (`t` / `f`), spelled out;
/// - `null` is SQL NULL (and also NaN and ±Infinity of numeric and float types, which
///   wal2json cannot print as JSON numbers: see the module documentation).
pub(super) fn datum(raw: &RawValue, type_oid: u32) -> Result<Datum, String> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') if text == "null" => Ok(Datum::Null),
        Some(b't') if text == "true" => Ok(Datum::Text(Bytes::from_static(b"true"))),
        Some(b'f') if text == "false" => Ok(Datum::Text(Bytes::from_static(b"false"))),
        Some(b'-' | b'0'..=b'9') => Ok(Datum::Text(Bytes::copy_from_slice(text.as_bytes()))),
        Some(b'"') => {
            let value = string(text)?;
            if type_oid == BYTEA_OID {
                bytea(&value)
            } else {
                Ok(Datum::Text(Bytes::from(value.into_bytes())))
            }
        }
        _ => Err("is a JSON array or object, which wal2json never sends".to_owned()),
    }
}

/// The content of a JSON string literal.
fn string(literal: &str) -> Result<String, String> {
    // Most values have no escapes: take the text between the quotes as it is.
    if let Some(inner) = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        if !inner.contains('\\') {
            return Ok(inner.to_owned());
        }
    }
    serde_json::from_str::<String>(literal).map_err(|e| format!("is not a JSON string ({e})"))
}

/// wal2json strips the `\x` of bytea's hex output; put it back, after checking that it is
/// hex (with `bytea_output = escape` on the server it would not be, and the text would be
/// read back as different bytes).
fn bytea(hex: &str) -> Result<Datum, String> {
    if hex.len() % 2 == 1 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "is not hex digits (wal2json needs bytea_output = 'hex' on the server)".to_owned(),
        );
    }
    let mut text = Vec::with_capacity(hex.len() + 2);
    text.extend_from_slice(b"\\x");
    text.extend_from_slice(hex.as_bytes());
    Ok(Datum::Text(Bytes::from(text)))
}
