//! The independent end-state check: per table, computed by SQL on each side, the row count
//! and an order-independent digest of every row's text form (each column cast through
//! `::text`, in a `ROW(...)`, so NULL and the empty string differ), sorted before it is
//! hashed so duplicates count: equal digests mean equal multisets of rows. Nothing of
//! Ferry's own comparison (`ferry verify`) is used.
//!
//! Which tables and columns are compared comes from the source's catalog at check time, so
//! the check also covers columns and tables that schema changes added while the case ran.
//!
//! On a difference, [`differing_rows`] fetches the source's rows through its own connection
//! and lets the target run `EXCEPT ALL` both ways against them, by text form.

use ferry_core::{quote_ident, TableName};
use tokio_postgres::Client;

/// Session settings that make every text form the same on both servers.
pub const TEXT_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET xmloption = content; SET lc_monetary = 'C'";

/// A table to compare and the columns of its row text.
#[derive(Clone, Debug)]
pub struct CheckedTable {
    pub name: TableName,
    pub columns: Vec<String>,
}

impl CheckedTable {
    /// `ROW(c1::text, ...)::text`, the row's text form.
    fn row_text(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}::text", quote_ident(c)))
            .collect();
        format!("ROW({})::text", cols.join(", "))
    }
}

/// Every ordinary and partitioned table of `schemas` on the source, with its columns.
pub async fn source_tables(
    source: &Client,
    schemas: &[String],
) -> Result<Vec<CheckedTable>, tokio_postgres::Error> {
    // One row per table: schema, name, non-dropped user columns in order.
    let rows = source
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    array_agg(a.attname::text ORDER BY a.attnum)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[&schemas],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| CheckedTable {
            name: TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            columns: r.get(2),
        })
        .collect())
}

/// `(row count, digest)` of `table` on one side, or the error that stopped it (a table or
/// column missing on the target).
pub async fn digest(client: &Client, table: &CheckedTable) -> Result<(i64, String), String> {
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '')
         FROM (SELECT md5({}) AS h FROM {}) d",
        table.row_text(),
        table.name.quoted()
    );
    client
        .query_one(&sql, &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .map_err(|e| {
            e.as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string())
        })
}

/// A table whose digests differ.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub table: CheckedTable,
    pub source: Result<(i64, String), String>,
    pub target: Result<(i64, String), String>,
}

/// The tables that differ between `source` and `target`.
pub async fn compare(source: &Client, target: &Client, tables: &[CheckedTable]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for table in tables {
        let s = digest(source, table).await;
        let t = digest(target, table).await;
        if s != t || s.is_err() {
            out.push(Mismatch {
                table: table.clone(),
                source: s,
                target: t,
            });
        }
    }
    out
}

/// Rows only in the source and rows only in the target (`EXCEPT ALL` by text form, run on
/// the target against the source's rows), up to `limit` of each, with the full counts.
pub async fn differing_rows(
    source: &Client,
    target: &Client,
    table: &CheckedTable,
    limit: usize,
) -> Result<(u64, Vec<String>, u64, Vec<String>), String> {
    let err = |e: tokio_postgres::Error| {
        e.as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string())
    };
    let rows: Vec<String> = source
        .query(
            &format!("SELECT {} FROM {}", table.row_text(), table.name.quoted()),
            &[],
        )
        .await
        .map_err(err)?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let q = table.name.quoted();
    let row = table.row_text();
    let only_source = target
        .query(
            &format!(
                "SELECT r FROM (SELECT unnest($1::text[]) AS r EXCEPT ALL SELECT {row} FROM {q}) d ORDER BY r"
            ),
            &[&rows],
        )
        .await
        .map_err(err)?;
    let only_target = target
        .query(
            &format!(
                "SELECT r FROM (SELECT {row} AS r FROM {q} EXCEPT ALL SELECT unnest($1::text[])) d ORDER BY r"
            ),
            &[&rows],
        )
        .await
        .map_err(err)?;
    let take = |v: Vec<tokio_postgres::Row>| -> Vec<String> {
        v.into_iter()
            .take(limit)
            .map(|r| shorten(r.get::<_, Option<String>>(0).unwrap_or_default()))
            .collect()
    };
    let (ns, nt) = (only_source.len() as u64, only_target.len() as u64);
    Ok((ns, take(only_source), nt, take(only_target)))
}

/// Long values (TOAST columns) cut to something readable.
fn shorten(text: String) -> String {
    const MAX: usize = 400;
    if text.chars().count() <= MAX {
        return text;
    }
    let head: String = text.chars().take(MAX).collect();
    format!("{head}… ({} chars)", text.chars().count())
}
