//! Applying a batch of polled rows to the target: upsert by key, watermark in the same
//! transaction.
//!
//! A batch arrives by COPY into a temporary table (so it passes through like the full copy),
//! is merged into the target table with `INSERT … ON CONFLICT (key) DO UPDATE`, and the
//! table's new watermark is written in the same transaction: after a crash the target holds
//! exactly the rows its stored watermark says, and re-reading rows already applied is a
//! harmless no-op (an upsert of the same values).

use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, TableName};
use tokio_postgres::Client;

use crate::source::poll::{PolledTable, Watermark};

/// The temporary table a batch is loaded into.
const BATCH: &str = "ferry_batch";

/// Starts the batch transaction and creates the empty temporary table.
pub fn begin_batch_sql(t: &PolledTable) -> String {
    format!(
        "BEGIN; CREATE TEMP TABLE {BATCH} ON COMMIT DROP AS SELECT {cols} FROM ONLY {table} WITH NO DATA",
        cols = crate::source::snapshot::column_list(&t.table),
        table = t.table.name.quoted()
    )
}

/// The COPY that loads the batch.
pub fn copy_batch_sql(t: &PolledTable, binary: bool) -> String {
    format!(
        "COPY {BATCH} ({}) FROM STDIN (FORMAT {})",
        crate::source::snapshot::column_list(&t.table),
        if binary { "binary" } else { "text" }
    )
}

/// Merges the batch into the table: new keys inserted, existing keys updated.
pub fn merge_sql(t: &PolledTable) -> String {
    let cols = crate::source::snapshot::column_list(&t.table);
    let keys: Vec<String> = t.key.iter().map(|(n, _)| quote_ident(n)).collect();
    let updates: Vec<String> = t
        .table
        .copy_columns()
        .filter(|c| !t.key.iter().any(|(k, _)| k == &c.name))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
        .collect();
    let action = if updates.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!("UPDATE SET {}", updates.join(", "))
    };
    format!(
        "INSERT INTO {table} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {BATCH} \
         ON CONFLICT ({keys}) DO {action}",
        table = t.table.name.quoted(),
        keys = keys.join(", ")
    )
}

/// The `(timestamp, key…)` of the batch's last row, as text.
pub fn last_row_sql(t: &PolledTable) -> String {
    let ts = quote_ident(&t.column);
    let keys: Vec<String> = t.key.iter().map(|(n, _)| quote_ident(n)).collect();
    let text_keys: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
    let desc: Vec<String> = std::iter::once(format!("{ts} DESC"))
        .chain(keys.iter().map(|k| format!("{k} DESC")))
        .collect();
    format!(
        "SELECT {ts}::text, {} FROM {BATCH} ORDER BY {} LIMIT 1",
        text_keys.join(", "),
        desc.join(", ")
    )
}

/// The watermark table, created on first use in the progress schema.
pub fn watermark_ddl(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.timestamp_watermarks (
             pipeline text NOT NULL,
             table_schema text NOT NULL,
             table_name text NOT NULL,
             ts text NOT NULL,
             key text[],
             updated_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (pipeline, table_schema, table_name))"
    )
}

/// Stores `watermark` for `table` (inside the batch transaction).
pub fn save_watermark_sql(
    schema: &str,
    pipeline: &str,
    table: &TableName,
    w: &Watermark,
) -> String {
    let key = match &w.key {
        None => "NULL".to_owned(),
        Some(values) => format!(
            "ARRAY[{}]::text[]",
            values
                .iter()
                .map(|v| quote_literal(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "INSERT INTO {}.timestamp_watermarks (pipeline, table_schema, table_name, ts, key)
         VALUES ({}, {}, {}, {}, {key})
         ON CONFLICT (pipeline, table_schema, table_name)
         DO UPDATE SET ts = EXCLUDED.ts, key = EXCLUDED.key, updated_at = now()",
        quote_ident(schema),
        quote_literal(pipeline),
        quote_literal(&table.schema),
        quote_literal(&table.name),
        quote_literal(&w.ts)
    )
}

/// The stored watermarks of `pipeline`, if its table exists.
pub async fn load_watermarks(
    client: &Client,
    schema: &str,
    pipeline: &str,
) -> Result<HashMap<TableName, Watermark>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.timestamp_watermarks', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT table_schema, table_name, ts, key FROM {}.timestamp_watermarks WHERE pipeline = $1",
                quote_ident(schema)
            ),
            &[&pipeline],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                Watermark {
                    ts: r.get(2),
                    key: r.get(3),
                },
            )
        })
        .collect())
}
