//! Reading changed rows by a last-updated column, for sources without logical decoding.
//!
//! Each table's position is a [`Watermark`]: the `(timestamp, key)` of the last row applied,
//! or `(timestamp, none)` meaning "every row stamped before this time is applied". A poll
//! reads rows after the watermark and strictly below a **horizon**, in `(timestamp, key)`
//! order, so rows sharing one timestamp are split between polls by key without loss.
//!
//! The horizon is what makes polling safe against late commits. The trigger stamps a row
//! with its transaction's start time (`now()`), so a transaction that started before a poll
//! but commits after it carries a timestamp below the time of that poll. The horizon is the
//! start time of the oldest transaction still running on the source (or now, if none):
//! every row stamped below it belongs to a transaction that has already ended. It is read
//! *before* the poll's snapshot is taken, so everything committed by then is visible.
//! Reading other sessions' start times needs `pg_read_all_stats` (or superuser); without
//! it, and for a transaction open longer than `max_transaction_age`, the horizon falls back
//! to `now() - max_transaction_age`, and a transaction running longer than that could be
//! missed: `ferry check` warns about both.

use ferry_core::{quote_ident, quote_literal};

use crate::schema::TableDef;

/// A table polled by its timestamp column.
#[derive(Debug, Clone)]
pub struct PolledTable {
    pub table: TableDef,
    /// The last-updated column.
    pub column: String,
    /// Its type as SQL (`timestamp with time zone` or `timestamp without time zone`).
    pub column_type: String,
    /// Primary key columns and their types, in key order.
    pub key: Vec<(String, String)>,
}

/// How far a table has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The timestamp, as the source prints it with `TimeZone = 'UTC'`, `DateStyle = 'ISO'`.
    pub ts: String,
    /// The key of the last row applied at `ts`, as text per key column; `None` when no row
    /// at `ts` has been applied yet (every row before `ts` has).
    pub key: Option<Vec<String>>,
}

/// The horizon query: the start of the oldest running transaction, or now, bounded below by
/// `now() - max_transaction_age`. A prepared (two-phase) transaction has no session, so
/// while one exists the horizon stays `max_transaction_age` behind its preparation.
/// `$1` is the age as an interval text.
pub const HORIZON_SQL: &str = "SELECT greatest(
         CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                   OR pg_has_role('pg_read_all_stats', 'MEMBER')
              THEN least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                                 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()),
                         -- a prepared transaction's rows carry its (unknown) start time
                         (SELECT min(prepared) FROM pg_prepared_xacts) - $1::interval)
              ELSE now() - $1::interval END,
         now() - $1::interval)::text";

/// `COPY (…) TO STDOUT` of the rows after `after`, below `horizon`, in order, at most `limit`.
pub fn poll_statement(
    t: &PolledTable,
    after: &Watermark,
    horizon: &str,
    limit: usize,
    binary: bool,
) -> String {
    let ts = quote_ident(&t.column);
    let ts_lit = |v: &str| format!("{}::{}", quote_literal(v), t.column_type);
    let after_cond = match &after.key {
        None => format!("{ts} >= {}", ts_lit(&after.ts)),
        Some(values) => {
            let names: Vec<String> = t.key.iter().map(|(n, _)| quote_ident(n)).collect();
            let lits: Vec<String> = t
                .key
                .iter()
                .zip(values)
                .map(|((_, ty), v)| format!("{}::{ty}", quote_literal(v)))
                .collect();
            format!(
                "({ts} > {w} OR ({ts} = {w} AND ({}) > ({})))",
                names.join(", "),
                lits.join(", "),
                w = ts_lit(&after.ts)
            )
        }
    };
    let order: Vec<String> = std::iter::once(ts.clone())
        .chain(t.key.iter().map(|(n, _)| quote_ident(n)))
        .collect();
    format!(
        "COPY (SELECT {cols} FROM ONLY {table} WHERE {ts} < {h} AND {after_cond} ORDER BY {order} LIMIT {limit}) TO STDOUT (FORMAT {format})",
        cols = crate::source::snapshot::column_list(&t.table),
        table = t.table.name.quoted(),
        h = ts_lit(horizon),
        order = order.join(", "),
        format = if binary { "binary" } else { "text" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnDef, TableKind};
    use ferry_core::TableName;

    fn polled() -> PolledTable {
        let col = |name: &str, ty: &str| ColumnDef {
            name: name.into(),
            type_sql: ty.into(),
            type_oid: 23,
            not_null: true,
            default: None,
            identity: None,
            generated: None,
            collation: None,
        };
        PolledTable {
            table: TableDef {
                name: TableName::new("public", "Orders"),
                oid: 1,
                kind: TableKind::Table,
                columns: vec![
                    col("id", "integer"),
                    col("last_update", "timestamp with time zone"),
                ],
                primary_key: Some(vec!["id".into()]),
                primary_key_constraint: None,
                constraints: vec![],
                checks: vec![],
                indexes: vec![],
                partition_of: None,
                attach: false,
                partition_key: None,
                replica_identity: 'd',
                size_bytes: 0,
                estimated_rows: 0,
            },
            column: "last_update".into(),
            column_type: "timestamp with time zone".into(),
            key: vec![("id".into(), "integer".into())],
        }
    }

    #[test]
    fn poll_after_a_time_includes_that_time() {
        let w = Watermark {
            ts: "2024-01-01 00:00:00+00".into(),
            key: None,
        };
        let sql = poll_statement(&polled(), &w, "2024-01-02 00:00:00+00", 100, true);
        assert_eq!(
            sql,
            "COPY (SELECT \"id\", \"last_update\" FROM ONLY \"public\".\"Orders\" WHERE \"last_update\" < '2024-01-02 00:00:00+00'::timestamp with time zone AND \"last_update\" >= '2024-01-01 00:00:00+00'::timestamp with time zone ORDER BY \"last_update\", \"id\" LIMIT 100) TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn poll_after_a_row_continues_by_key_within_the_timestamp() {
        let w = Watermark {
            ts: "2024-01-01 00:00:00+00".into(),
            key: Some(vec!["42".into()]),
        };
        let sql = poll_statement(&polled(), &w, "2024-01-02 00:00:00+00", 10, false);
        assert!(sql.contains(
            "(\"last_update\" > '2024-01-01 00:00:00+00'::timestamp with time zone OR (\"last_update\" = '2024-01-01 00:00:00+00'::timestamp with time zone AND (\"id\") > ('42'::integer)))"
        ), "{sql}");
    }
}
