//! What a source has of the timestamp set-up, table by table: the column and its type, the
//! trigger and whether it fires, an index to poll by, the primary key to upsert by, and a
//! row estimate. `ferry check` reads it in timestamp mode; [`super::apply_setup`] reads it
//! before (to refuse wrong types) and after (to report).
//!
//! One catalog query for all tables (their names passed as arrays), so checking a thousand
//! tables is one round trip. It reads only `pg_catalog`, which every role may, so it works
//! for the SELECT-only role timestamp sync is made for.

use ferry_core::{quote_ident, TableName};
use tokio_postgres::Client;

use super::sql::trigger_name;
use super::{TimestampSetupError, TimestampTable};

/// `timestamp with time zone`.
const TIMESTAMPTZ_OID: u32 = 1184;
/// `timestamp without time zone`.
const TIMESTAMP_OID: u32 = 1114;

/// The timestamp set-up of one table as the source has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableTimestampState {
    pub table: TableName,
    /// The configured column name.
    pub column_name: String,
    /// Whether `table` is an ordinary or partitioned table on the source. When false, the
    /// other fields say nothing.
    pub table_exists: bool,
    /// The column, if it exists.
    pub column: Option<ColumnState>,
    /// The trigger [`super::trigger_name`] on the table.
    pub trigger: TriggerState,
    /// Whether a valid, non-partial btree index has the column as its first key column.
    pub indexed: bool,
    /// The primary key's columns in key order; empty without one. The poller upserts by
    /// key, so a table without one cannot be polled.
    pub primary_key: Vec<String>,
    /// `pg_class.reltuples`, when the server has an estimate (never analyzed tables and
    /// partitioned parents have none).
    pub row_estimate: Option<i64>,
}

impl TableTimestampState {
    /// The column is there, of a timestamp type, and stamped on every INSERT and UPDATE.
    pub fn is_ready(&self) -> bool {
        self.table_exists
            && self.column.as_ref().is_some_and(ColumnState::is_timestamp)
            && self.trigger.stamps_every_change()
            && !self.primary_key.is_empty()
    }
}

/// The configured column as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnState {
    /// Its type as PostgreSQL prints it: `timestamp with time zone`.
    pub type_name: String,
    pub type_oid: u32,
    pub not_null: bool,
}

impl ColumnState {
    /// `timestamp with time zone`, the type the set-up creates.
    pub fn is_timestamptz(&self) -> bool {
        self.type_oid == TIMESTAMPTZ_OID
    }

    /// `timestamp without time zone`: usable, with a warning (its values are in each
    /// writer's TimeZone setting, so writers in different zones, or a DST change, can give
    /// a later transaction an earlier time).
    pub fn is_timestamp_without_time_zone(&self) -> bool {
        self.type_oid == TIMESTAMP_OID
    }

    /// Either timestamp type.
    pub fn is_timestamp(&self) -> bool {
        self.is_timestamptz() || self.is_timestamp_without_time_zone()
    }
}

/// The set-up's trigger on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerState {
    /// No trigger of that name.
    Missing,
    Present {
        mode: TriggerMode,
        /// It is a BEFORE … FOR EACH ROW trigger on both INSERT and UPDATE, without a
        /// column list or WHEN condition: it sees every row change.
        stamps_inserts_and_updates: bool,
    },
}

impl TriggerState {
    /// The trigger exists, fires in ordinary sessions, and sees every INSERT and UPDATE.
    pub fn stamps_every_change(&self) -> bool {
        matches!(
            self,
            TriggerState::Present {
                mode: TriggerMode::Origin | TriggerMode::Always,
                stamps_inserts_and_updates: true,
            }
        )
    }
}

/// When a trigger fires (`pg_trigger.tgenabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// `O`: enabled, except in sessions with `session_replication_role = replica`
    /// (logical-replication apply workers).
    Origin,
    /// `A`: `ENABLE ALWAYS`, what the set-up makes.
    Always,
    /// `R`: only in `replica` sessions.
    Replica,
    /// `D`: disabled.
    Disabled,
}

impl TriggerMode {
    /// The mode for a `tgenabled` value; anything unknown counts as not firing.
    fn from_tgenabled(value: &str) -> Self {
        match value {
            "O" => TriggerMode::Origin,
            "A" => TriggerMode::Always,
            "R" => TriggerMode::Replica,
            _ => TriggerMode::Disabled,
        }
    }
}

/// Per entry of `tables` (same order): table, column, trigger, index, key and size.
const STATE_QUERY: &str = "
SELECT c.oid IS NOT NULL AS table_exists,
       a.atttypid AS type_oid,
       format_type(a.atttypid, a.atttypmod) AS type_name,
       a.attnotnull AS not_null,
       tg.tgenabled::text AS trigger_mode,
       (tg.tgtype::int4 & 23) = 23           -- ROW 1 | BEFORE 2 | INSERT 4 | UPDATE 16
         AND tg.tgqual IS NULL
         AND cardinality(tg.tgattr::int2[]) = 0 AS stamps_inserts_and_updates,
       EXISTS (SELECT 1
                 FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_am am ON am.oid = ic.relam
                WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND i.indisvalid
                  AND i.indpred IS NULL AND am.amname = 'btree') AS indexed,
       ARRAY(SELECT pa.attname::text
               FROM pg_constraint con
               CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute pa ON pa.attrelid = con.conrelid AND pa.attnum = k.attnum
              WHERE con.conrelid = c.oid AND con.contype = 'p'
              ORDER BY k.ord) AS primary_key,
       c.reltuples::float8 AS row_estimate
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
       WITH ORDINALITY AS t(schema_name, table_name, column_name, trigger_name, ord)
  LEFT JOIN pg_namespace n ON n.nspname = t.schema_name
  LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
                      AND c.relkind IN ('r', 'p')
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = t.column_name
                          AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_trigger tg ON tg.tgrelid = c.oid AND tg.tgname = t.trigger_name
 ORDER BY t.ord";

/// The timestamp set-up of each of `tables`, in the same order.
pub async fn inspect(
    client: &Client,
    tables: &[TimestampTable],
) -> Result<Vec<TableTimestampState>, TimestampSetupError> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.table.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.table.name.as_str()).collect();
    let columns: Vec<&str> = tables.iter().map(|t| t.column.as_str()).collect();
    let triggers: Vec<String> = tables.iter().map(|t| trigger_name(&t.column)).collect();
    let rows = client
        .query(STATE_QUERY, &[&schemas, &names, &columns, &triggers])
        .await
        .map_err(catalog_error)?;
    if rows.len() != tables.len() {
        // unnest yields one row per element; anything else is not a server we understand.
        return Err(TimestampSetupError::Inconsistent {
            what: format!(
                "the timestamp set-up query returned {} rows for {} tables",
                rows.len(),
                tables.len()
            ),
        });
    }
    tables
        .iter()
        .zip(rows)
        .map(|(t, row)| {
            let type_oid: Option<u32> = row.try_get("type_oid").map_err(catalog_error)?;
            let column = match type_oid {
                Some(type_oid) => Some(ColumnState {
                    type_oid,
                    type_name: row.try_get("type_name").map_err(catalog_error)?,
                    not_null: row.try_get("not_null").map_err(catalog_error)?,
                }),
                None => None,
            };
            let mode: Option<String> = row.try_get("trigger_mode").map_err(catalog_error)?;
            let trigger = match mode {
                Some(mode) => TriggerState::Present {
                    mode: TriggerMode::from_tgenabled(&mode),
                    stamps_inserts_and_updates: row
                        .try_get::<_, Option<bool>>("stamps_inserts_and_updates")
                        .map_err(catalog_error)?
                        .unwrap_or(false),
                },
                None => TriggerState::Missing,
            };
            let row_estimate: Option<f64> = row.try_get("row_estimate").map_err(catalog_error)?;
            Ok(TableTimestampState {
                table: t.table.clone(),
                column_name: t.column.clone(),
                table_exists: row.try_get("table_exists").map_err(catalog_error)?,
                column,
                trigger,
                indexed: row.try_get("indexed").map_err(catalog_error)?,
                primary_key: row.try_get("primary_key").map_err(catalog_error)?,
                // Rounded; the float-to-int cast saturates, and -1 means "no estimate".
                row_estimate: row_estimate.filter(|n| *n >= 0.0).map(|n| n.round() as i64),
            })
        })
        .collect()
}

fn catalog_error(source: tokio_postgres::Error) -> TimestampSetupError {
    TimestampSetupError::Catalog {
        what: "the timestamp columns, triggers, indexes and keys".to_owned(),
        source,
    }
}

/// `column` quoted, for messages.
pub(crate) fn quoted_column(state: &TableTimestampState) -> String {
    quote_ident(&state.column_name)
}
