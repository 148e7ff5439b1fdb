//! The result of `ferry verify`: per table, the row counts, equal or not, and the differing
//! keys (or, for keyless tables, row images) with which side has what.
//!
//! This is the only place row data (key values) leaves the databases, because the user asked
//! for it: the report prints keys so they can be looked up; logs never carry them. The same
//! report prints as text (one line per table, indented differences, a summary) or serializes
//! as JSON for `--json`.

use std::fmt;

use ferry_core::{quote_ident, TableName};
use serde::ser::SerializeMap;

/// Every compared table, in schema and name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub tables: Vec<TableResult>,
}

impl VerifyReport {
    /// Whether every table is equal on both sides (the command exits 0 only then).
    pub fn is_equal(&self) -> bool {
        self.tables.iter().all(|t| t.status == TableStatus::Equal)
    }

    /// The result of `table`, if it was compared (for tests and scripts).
    pub fn table(&self, table: &TableName) -> Option<&TableResult> {
        self.tables.iter().find(|t| &t.table == table)
    }
}

/// How one table came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Equal,
    Different,
    MissingOnTarget,
}

/// The comparison of one source table with the target table of the same name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableResult {
    pub table: TableName,
    pub source_rows: i64,
    /// `None` when the table is missing on the target.
    pub target_rows: Option<i64>,
    pub status: TableStatus,
    /// Up to `max_differences_per_table` differences, in bucket then key order.
    pub differences: Vec<Difference>,
    /// More differences exist than are listed.
    pub more_differences: bool,
}

/// One way the two sides of a table differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A key whose row exists on the source only.
    OnlyInSource { key: RowKey },
    /// A key whose row exists on the target only.
    OnlyInTarget { key: RowKey },
    /// A key present on both sides with different column values (or, when the target lacks
    /// the primary key, present there a different number of times).
    DifferentValues { key: RowKey },
    /// A keyless table's row image present a different number of times on each side. `id`
    /// is the first 16 hex digits of the md5 of the row's text, standing in for the values,
    /// which are not printed.
    RowImage {
        id: String,
        source_count: i64,
        target_count: i64,
    },
    /// A source column the target table does not have; the rows were then only counted.
    ColumnMissingOnTarget { column: String },
}

/// The primary key values of one row, as text, with their column names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub columns: Vec<(String, Option<String>)>,
}

impl RowKey {
    /// The value of key column `name` (for tests and scripts).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

impl serde::Serialize for RowKey {
    /// A JSON object of column name to text value, in key column order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (name, value) in &self.columns {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl fmt::Display for RowKey {
    /// `id=42`, or `(region=eu, id=7)` for a composite key; odd values single-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|(name, value)| format!("{}={}", display_name(name), display_value(value)))
            .collect();
        match parts.as_slice() {
            [single] => f.write_str(single),
            _ => write!(f, "({})", parts.join(", ")),
        }
    }
}

/// A column name as typed in SQL: bare when it is a plain lower-case identifier.
fn display_name(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// A key value on one line: bare when it is plain, otherwise single-quoted with quotes
/// doubled and control characters escaped, so that a report line never breaks.
fn display_value(value: &Option<String>) -> String {
    let Some(value) = value else {
        return "NULL".to_owned();
    };
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.:+@/".contains(c));
    if plain {
        return value.clone();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn rows(n: i64) -> String {
    if n == 1 {
        "1 row".to_owned()
    } else {
        format!("{n} rows")
    }
}

fn times(n: i64) -> String {
    if n == 1 {
        "1 time".to_owned()
    } else {
        format!("{n} times")
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyInSource { key } => write!(f, "only in source:   {key}"),
            Difference::OnlyInTarget { key } => write!(f, "only in target:   {key}"),
            Difference::DifferentValues { key } => write!(f, "different values: {key}"),
            Difference::RowImage {
                id,
                source_count,
                target_count,
            } => write!(
                f,
                "row image #{id}: {} in source, {} in target",
                times(*source_count),
                times(*target_count)
            ),
            Difference::ColumnMissingOnTarget { column } => write!(
                f,
                "column {} missing on target: rows were counted, not compared",
                quote_ident(column)
            ),
        }
    }
}

impl fmt::Display for TableResult {
    /// `OK   "public"."t"  1000 rows`, or `DIFF` with both counts and the differences below.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.target_rows) {
            (TableStatus::Equal, _) => {
                write!(f, "OK   {}  {}", self.table, rows(self.source_rows))?
            }
            (TableStatus::MissingOnTarget, _) | (_, None) => write!(
                f,
                "DIFF {}  source {}, missing on target",
                self.table,
                rows(self.source_rows)
            )?,
            (TableStatus::Different, Some(target)) => write!(
                f,
                "DIFF {}  source {}, target {}",
                self.table,
                rows(self.source_rows),
                rows(target)
            )?,
        }
        for difference in &self.differences {
            write!(f, "\n       {difference}")?;
        }
        if self.more_differences {
            write!(
                f,
                "\n       … more differences not listed (the first {} are shown)",
                self.differences.len()
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for VerifyReport {
    /// One block per table, then `N tables equal, M different`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            writeln!(f, "{table}")?;
        }
        let equal = self
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Equal)
            .count();
        let missing = self
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::MissingOnTarget)
            .count();
        let tables = if equal == 1 { "table" } else { "tables" };
        write!(
            f,
            "{equal} {tables} equal, {} different",
            self.tables.len() - equal
        )?;
        if missing > 0 {
            write!(f, " ({missing} missing on target)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(columns: &[(&str, Option<&str>)]) -> RowKey {
        RowKey {
            columns: columns
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn keys_display_as_typed_in_sql() {
        assert_eq!(key(&[("id", Some("42"))]).to_string(), "id=42");
        assert_eq!(
            key(&[("region", Some("eu west")), ("Id", Some("7"))]).to_string(),
            "(region='eu west', \"Id\"=7)"
        );
        assert_eq!(key(&[("k", Some("it's\nx"))]).to_string(), r"k='it''s\nx'");
        assert_eq!(key(&[("k", Some(""))]).to_string(), "k=''");
        assert_eq!(key(&[("k", None)]).to_string(), "k=NULL");
    }

    #[test]
    fn text_form_lists_differences_and_summary() {
        let report = VerifyReport {
            tables: vec![
                TableResult {
                    table: TableName::new("public", "a"),
                    source_rows: 1000,
                    target_rows: Some(1000),
                    status: TableStatus::Equal,
                    differences: vec![],
                    more_differences: false,
                },
                TableResult {
                    table: TableName::new("public", "b"),
                    source_rows: 3,
                    target_rows: Some(1),
                    status: TableStatus::Different,
                    differences: vec![
                        Difference::OnlyInSource {
                            key: key(&[("id", Some("2"))]),
                        },
                        Difference::RowImage {
                            id: "00ff".into(),
                            source_count: 3,
                            target_count: 1,
                        },
                    ],
                    more_differences: true,
                },
                TableResult {
                    table: TableName::new("public", "c"),
                    source_rows: 1,
                    target_rows: None,
                    status: TableStatus::MissingOnTarget,
                    differences: vec![],
                    more_differences: false,
                },
            ],
        };
        let text = report.to_string();
        assert!(
            text.contains("OK   \"public\".\"a\"  1000 rows\n"),
            "{text}"
        );
        assert!(
            text.contains("DIFF \"public\".\"b\"  source 3 rows, target 1 row\n"),
            "{text}"
        );
        assert!(text.contains("\n       only in source:   id=2\n"), "{text}");
        assert!(
            text.contains("row image #00ff: 3 times in source, 1 time in target"),
            "{text}"
        );
        assert!(text.contains("more differences not listed"), "{text}");
        assert!(
            text.contains("DIFF \"public\".\"c\"  source 1 row, missing on target"),
            "{text}"
        );
        assert!(
            text.ends_with("1 table equal, 2 different (1 missing on target)"),
            "{text}"
        );
        assert!(!report.is_equal());
    }

    #[test]
    fn json_form_names_kinds_and_keys() {
        let result = TableResult {
            table: TableName::new("public", "t"),
            source_rows: 1,
            target_rows: Some(1),
            status: TableStatus::Different,
            differences: vec![Difference::DifferentValues {
                key: key(&[("a", Some("x")), ("b", Some("1"))]),
            }],
            more_differences: false,
        };
        let json = serde_json::to_value(VerifyReport {
            tables: vec![result],
        })
        .unwrap();
        let table = &json["tables"][0];
        assert_eq!(table["status"], "different");
        assert_eq!(table["table"]["name"], "t");
        assert_eq!(table["differences"][0]["kind"], "different_values");
        assert_eq!(table["differences"][0]["key"]["a"], "x");
        assert_eq!(table["differences"][0]["key"]["b"], "1");
    }
}
