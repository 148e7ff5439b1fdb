//! The one place SQL text is built from names and values: identifier and literal quoting.
//!
//! Every table, schema, slot and publication name that reaches a SQL or replication command
//! goes through [`quote_ident`]; every string value through [`quote_literal`]. Quoting always
//! (never "only when needed") keeps mixed-case names and reserved words working and makes
//! injection impossible by construction. It lives in `ferry-core`, below both the replication
//! client and the SQL code, so that both use the same helper.

use std::fmt;

/// `name` as a double-quoted SQL identifier: `my "table"` becomes `"my ""table"""`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// `value` as a standard-conforming SQL string literal: `it's` becomes `'it''s'`.
///
/// Backslashes are kept as they are, which is right with `standard_conforming_strings = on`
/// (the default since PostgreSQL 9.1, and what Ferry's connections use). A literal containing
/// a backslash is written in the escape-string form `E'…'` so it is also right when that
/// setting is off.
pub fn quote_literal(value: &str) -> String {
    let has_backslash = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if has_backslash {
        out.push('E');
    }
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// A schema-qualified table name, displayed quoted: `"public"."Orders"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    /// A table `name` in `schema`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The name as SQL text, both parts quoted.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for TableName {
    /// Quoted, as the user would paste it into SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_escaped() {
        assert_eq!(quote_ident("orders"), r#""orders""#);
        assert_eq!(quote_ident("Order Items"), r#""Order Items""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident("select"), r#""select""#);
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
        assert_eq!(quote_literal(""), "''");
    }

    #[test]
    fn table_names_display_quoted() {
        let t = TableName::new("Sales", "order");
        assert_eq!(t.to_string(), r#""Sales"."order""#);
    }
}
