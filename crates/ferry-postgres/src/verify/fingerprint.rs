//! The SQL that hashes a table on its own server: bucket fingerprints, and the keys or row
//! images of chosen buckets.
//!
//! Every row gets two numbers, computed by the server from text so that no row leaves it
//! unless its bucket differs:
//!
//! ```text
//!  rh = first 64 bits of md5(ROW(c1, c2, …)::text)          the row image, signed int8
//!  h  = first 60 bits of md5(key text)   (keyed tables)      which bucket the row is in,
//!       bits 64..123 of the row's md5     (keyless tables)    0 <= h < 2^60
//! ```
//!
//! A [`Range`] is the set of rows with `h % modulus = remainder`. The table is the range
//! `(1, 0)`; splitting `(M, r)` into `fanout` children groups its rows by
//! `(h / M) % fanout = s`, child `(M * fanout, r + M * s)`. A range's fingerprint is
//! `count(*)` and `sum(rh)` (as numeric, so it cannot overflow): equal multisets of rows
//! give equal fingerprints, and a difference shows with probability 1 - 2^-64.
//!
//! The bucket hash is md5-based rather than `hashtext`: `hashtext` differs between
//! big- and little-endian servers, and a row must fall in the same bucket on both sides.
//! The column list is the source's, by name, so column order on the target does not matter.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferry_core::{quote_ident, TableName};

use super::catalog::Column;

/// `h` is below this bound; a range whose modulus reaches it holds one hash value.
const HASH_BOUND: u64 = 1 << 60;

/// The rows of a table with `h % modulus = remainder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Range {
    pub modulus: u64,
    pub remainder: u64,
}

impl Range {
    /// The whole table.
    pub const ALL: Range = Range {
        modulus: 1,
        remainder: 0,
    };

    /// The modulus of this range's children, if it can be split `fanout` ways.
    pub fn child_modulus(self, fanout: u64) -> Option<u64> {
        self.modulus
            .checked_mul(fanout)
            .filter(|&m| m <= HASH_BOUND && fanout > 1)
    }

    /// Child `bucket` of this range split `fanout` ways.
    pub fn child(self, fanout: u64, bucket: u64) -> Range {
        Range {
            modulus: self.modulus.saturating_mul(fanout),
            remainder: self
                .remainder
                .saturating_add(self.modulus.saturating_mul(bucket)),
        }
    }
}

/// The SQL for one table on one side.
#[derive(Debug, Clone)]
pub(super) struct TableHashing {
    /// `ONLY "s"."t"` for a plain table, `"s"."t"` for a partitioned one.
    from: String,
    row_text: String,
    /// `ROW(k1, k2)::text` or `(k)::text`, and `ARRAY[(k1)::text, …]`, for keyed tables.
    key: Option<(String, String)>,
}

impl TableHashing {
    /// Hashing of `table` (partitioned when `partitioned`) over the source's `columns`,
    /// bucketed by `key` when there is one.
    pub fn new(
        table: &TableName,
        partitioned: bool,
        columns: &[Column],
        key: Option<&[Column]>,
    ) -> Self {
        let from = if partitioned {
            table.quoted()
        } else {
            format!("ONLY {}", table.quoted())
        };
        let key = key.filter(|k| !k.is_empty()).map(|key| {
            let text = match key {
                [single] => format!("({})::text", value(single)),
                _ => format!("{}::text", row(key)),
            };
            let array = key
                .iter()
                .map(|c| format!("({})::text", value(c)))
                .collect::<Vec<_>>()
                .join(", ");
            (text, format!("ARRAY[{array}]::text[]"))
        });
        TableHashing {
            from,
            row_text: format!("{}::text", row(columns)),
            key,
        }
    }

    /// Whether rows are bucketed by primary key (otherwise by the row image itself).
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// `count(*)` of the table. Returns one int8.
    pub fn count(&self) -> String {
        format!("SELECT count(*) FROM {}", self.from)
    }

    /// Per child of `parent` split `fanout` ways: `bucket` (int8), `count(*)` (int8) and
    /// `sum(rh)` as text. Buckets without rows are absent.
    pub fn fingerprints(&self, parent: Range, fanout: u64) -> String {
        let mut sql = format!(
            "SELECT (h / {m}) % {fanout} AS bucket, count(*), sum(rh)::text FROM ({rows}) s",
            m = parent.modulus,
            rows = self.rows(false),
        );
        if parent != Range::ALL {
            let _ = write!(sql, " WHERE h % {} = {}", parent.modulus, parent.remainder);
        }
        sql.push_str(" GROUP BY 1");
        sql
    }

    /// Keyed tables: `k` (text[] of the key values) and `rh` (int8) of each row in `ranges`.
    pub fn keyed_rows(&self, ranges: &[Range]) -> String {
        format!(
            "SELECT k, rh FROM ({}) s WHERE {}",
            self.rows(true),
            condition(ranges)
        )
    }

    /// Keyless tables: each distinct `rh` (int8) in `ranges` and how often it occurs (int8).
    pub fn row_images(&self, ranges: &[Range]) -> String {
        format!(
            "SELECT rh, count(*) FROM ({}) s WHERE {} GROUP BY rh",
            self.rows(false),
            condition(ranges)
        )
    }

    /// Every row as `[k,] h, rh`. The md5s are computed in an inner query so each is taken
    /// once per row; the query is flattenable (md5 is immutable), so a filter on a keyed
    /// table's `h` lets the scan compute the row md5 only for rows in the wanted ranges.
    fn rows(&self, with_key: bool) -> String {
        let (outer_key, inner_key, bucket_bits) = match &self.key {
            Some((text, array)) => (
                if with_key { "k, " } else { "" },
                if with_key {
                    format!("{array} AS k, md5({text}) AS km, ")
                } else {
                    format!("md5({text}) AS km, ")
                },
                "substr(km, 1, 15)",
            ),
            None => ("", String::new(), "substr(rm, 17, 15)"),
        };
        format!(
            "SELECT {outer_key}('x' || {bucket_bits})::bit(60)::int8 AS h, \
             ('x' || substr(rm, 1, 16))::bit(64)::int8 AS rh \
             FROM (SELECT {inner_key}md5({row}) AS rm FROM {from}) r",
            row = self.row_text,
            from = self.from,
        )
    }
}

/// A column as rendered for comparison: quoted, cast when its text is server-dependent.
fn value(column: &Column) -> String {
    match column.cast {
        Some(cast) => format!("{}::{cast}", quote_ident(&column.name)),
        None => quote_ident(&column.name),
    }
}

/// `ROW(c1, c2, …)`.
fn row(columns: &[Column]) -> String {
    let values: Vec<String> = columns.iter().map(value).collect();
    format!("ROW({})", values.join(", "))
}

/// `(h % M1 IN (r, …)) OR (h % M2 IN (…))`: membership in any of `ranges`.
fn condition(ranges: &[Range]) -> String {
    let mut by_modulus: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for range in ranges {
        by_modulus
            .entry(range.modulus)
            .or_default()
            .push(range.remainder.to_string());
    }
    if by_modulus.is_empty() {
        return "false".to_owned();
    }
    by_modulus
        .iter()
        .map(|(m, rs)| format!("(h % {m} IN ({}))", rs.join(", ")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, cast: Option<&'static str>) -> Column {
        Column {
            name: name.to_owned(),
            cast,
        }
    }

    #[test]
    fn ranges_split_into_disjoint_children() {
        let b = Range::ALL.child(256, 7);
        assert_eq!(
            b,
            Range {
                modulus: 256,
                remainder: 7
            }
        );
        let c = b.child(256, 3);
        assert_eq!(
            c,
            Range {
                modulus: 65_536,
                remainder: 7 + 256 * 3
            }
        );
        // A row with h = 7 + 256 * 3 + 65536 * k is in b and c for every k.
        let h: u64 = 7 + 256 * 3 + 65_536 * 12;
        assert_eq!(h % b.modulus, b.remainder);
        assert_eq!(h % c.modulus, c.remainder);
        assert_eq!((h / b.modulus) % 256, 3);
        let deepest = Range {
            modulus: 1 << 56,
            remainder: 1,
        };
        assert_eq!(deepest.child_modulus(16), Some(1 << 60));
        assert_eq!(deepest.child_modulus(256), None);
        assert_eq!(Range::ALL.child_modulus(1), None);
    }

    #[test]
    fn keyed_sql_quotes_names_and_casts_money() {
        let t = TableName::new("Sales", "order items");
        let columns = [
            col("Id", None),
            col("select", None),
            col("price", Some("numeric")),
        ];
        let hashing = TableHashing::new(&t, false, &columns, Some(&columns[..1]));
        let sql = hashing.fingerprints(Range::ALL, 256);
        assert!(sql.starts_with("SELECT (h / 1) % 256 AS bucket"), "{sql}");
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(sql.contains(r#"FROM ONLY "Sales"."order items""#), "{sql}");
        assert!(
            sql.contains(r#"md5(ROW("Id", "select", "price"::numeric)::text) AS rm"#),
            "{sql}"
        );
        assert!(sql.contains(r#"md5(("Id")::text) AS km"#), "{sql}");
        let rows = hashing.keyed_rows(&[
            Range {
                modulus: 256,
                remainder: 1,
            },
            Range {
                modulus: 65_536,
                remainder: 2,
            },
            Range {
                modulus: 256,
                remainder: 3,
            },
        ]);
        assert!(
            rows.ends_with("WHERE (h % 256 IN (1, 3)) OR (h % 65536 IN (2))"),
            "{rows}"
        );
        assert!(
            rows.contains(r#"ARRAY[("Id")::text]::text[] AS k"#),
            "{rows}"
        );
    }

    #[test]
    fn keyless_and_partitioned_sql() {
        let t = TableName::new("public", "p");
        let hashing = TableHashing::new(&t, true, &[col("a", None)], None);
        assert!(!hashing.is_keyed());
        let sql = hashing.fingerprints(
            Range {
                modulus: 256,
                remainder: 5,
            },
            256,
        );
        assert!(
            sql.contains(r#"FROM "public"."p""#) && !sql.contains("ONLY"),
            "{sql}"
        );
        assert!(sql.contains("substr(rm, 17, 15)"), "{sql}");
        assert!(sql.contains("WHERE h % 256 = 5 GROUP BY 1"), "{sql}");
        assert!(hashing.row_images(&[]).contains("WHERE false"));
    }

    #[test]
    fn composite_keys_hash_the_row_of_key_columns() {
        let t = TableName::new("public", "c");
        let columns = [col("a", None), col("b", None)];
        let hashing = TableHashing::new(&t, false, &columns, Some(&columns));
        let sql = hashing.keyed_rows(&[Range::ALL]);
        assert!(sql.contains(r#"md5(ROW("a", "b")::text) AS km"#), "{sql}");
        assert!(
            sql.contains(r#"ARRAY[("a")::text, ("b")::text]::text[] AS k"#),
            "{sql}"
        );
    }
}
