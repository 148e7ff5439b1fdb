//! Running the timestamp set-up on the source: all of [`super::setup_sql`] in one
//! transaction, after refusing columns of the wrong type.
//!
//! ```text
//!  BEGIN; SET LOCAL lock_timeout ─► inspect (tables exist? column types?) ─► refuse or warn
//!    ─► every statement ─► inspect again (the report) ─► COMMIT
//! ```
//!
//! The one difference from the printed SQL: a table whose column already has a valid btree
//! index (under any name) does not get a second one.
//!
//! All or nothing: a failing statement rolls everything back, so a source is never left
//! with a column but no trigger (rows changed then would never be polled). The client is
//! borrowed shared, so the transaction is opened with plain `BEGIN`; every error path sends
//! `ROLLBACK` before returning.

use std::collections::HashSet;

use ferry_core::{quote_ident, TableName};
use tokio_postgres::Client;

use super::inspect::{inspect, TableTimestampState};
use super::sql::{distinct, setup_sql_except_indexes, SetupStatement};
use super::{TimestampSetupError, TimestampTable};

/// How long a set-up statement waits for a table lock before the set-up fails (and may be
/// retried): long enough for ordinary traffic, short enough that sessions queued behind the
/// set-up's lock request are not stalled for long.
pub const LOCK_TIMEOUT: &str = "10s";

/// What [`apply_setup`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupReport {
    /// Every statement run, in order: [`super::setup_sql`], less the index of a table that
    /// already had a usable one on the column.
    pub statements: Vec<SetupStatement>,
    /// Tables that did not have the column before: all their existing rows now carry the
    /// time of the set-up.
    pub added_columns: Vec<TableName>,
    /// Things that work but deserve attention, each naming the table and the fix.
    pub warnings: Vec<String>,
    /// The state after the set-up, per distinct table and column, as [`super::inspect`]
    /// reports it.
    pub tables: Vec<TableTimestampState>,
}

/// Creates the trigger functions in `function_schema` and, for each table, the column, its
/// index and the trigger, in one transaction; running it again changes nothing.
///
/// Refuses, before changing anything, a missing table or an existing column whose type is
/// not a timestamp. The role must own the tables and have CREATE on `function_schema`.
pub async fn apply_setup(
    client: &Client,
    function_schema: &str,
    tables: &[TimestampTable],
) -> Result<SetupReport, TimestampSetupError> {
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            ferry_core::quote_literal(LOCK_TIMEOUT)
        ))
        .await
        .map_err(|source| TimestampSetupError::transaction("BEGIN", source))?;
    match run(client, function_schema, tables).await {
        Ok(report) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|source| TimestampSetupError::transaction("COMMIT", source))?;
            Ok(report)
        }
        Err(err) => {
            if let Err(rollback) = client.batch_execute("ROLLBACK").await {
                // The first error is the one to report; a lost connection rolls back anyway.
                tracing::debug!(error = %rollback, "rollback of the timestamp set-up failed");
            }
            Err(err)
        }
    }
}

/// The body of the set-up transaction.
async fn run(
    client: &Client,
    function_schema: &str,
    tables: &[TimestampTable],
) -> Result<SetupReport, TimestampSetupError> {
    let tables: Vec<TimestampTable> = distinct(tables).into_iter().cloned().collect();
    let before = inspect(client, &tables).await?;
    let version = server_version_num(client).await?;
    let mut warnings = Vec::new();
    let mut added_columns = Vec::new();
    for state in &before {
        let column = quote_ident(&state.column_name);
        if !state.table_exists {
            return Err(TimestampSetupError::TableMissing {
                table: state.table.clone(),
            });
        }
        match &state.column {
            Some(c) if c.is_timestamptz() => {}
            Some(c) if c.is_timestamp_without_time_zone() => warnings.push(format!(
                "column {column} of table {} is timestamp without time zone: its values are in \
                 each writer's TimeZone setting, so writers in other zones or a daylight-saving \
                 change can give a later change an earlier time, and the poller can miss it; \
                 fix: ALTER TABLE {} ALTER COLUMN {column} TYPE timestamp with time zone \
                 (rewrites the table)",
                state.table, state.table
            )),
            Some(c) => {
                return Err(TimestampSetupError::WrongColumnType {
                    table: state.table.clone(),
                    column,
                    found: c.type_name.clone(),
                })
            }
            None => {
                if !added_columns.contains(&state.table) {
                    added_columns.push(state.table.clone());
                }
                if version < 110_000 {
                    warnings.push(format!(
                        "adding column {column} to table {} rewrites the table on PostgreSQL \
                         {}, holding an exclusive lock meanwhile (PostgreSQL 11 and later add \
                         it without a rewrite)",
                        state.table,
                        version / 10_000
                    ));
                }
            }
        }
    }
    let mut keyless = HashSet::new();
    for state in &before {
        if state.primary_key.is_empty() && keyless.insert(&state.table) {
            warnings.push(format!(
                "table {} has no primary key: the poller upserts by key and cannot poll it; \
                 fix: ALTER TABLE {} ADD PRIMARY KEY (<columns>)",
                state.table, state.table
            ));
        }
    }
    // An existing index on the column serves the poller as well; a second one would only
    // cost writes (and, on a big table, a long build under lock).
    let statements = setup_sql_except_indexes(function_schema, &tables, |t| {
        before
            .iter()
            .any(|s| s.indexed && s.table == t.table && s.column_name == t.column)
    });
    for statement in &statements {
        client
            .batch_execute(&statement.sql)
            .await
            .map_err(|source| {
                TimestampSetupError::statement(&statement.object, function_schema, source)
            })?;
    }
    let after = inspect(client, &tables).await?;
    Ok(SetupReport {
        statements,
        added_columns,
        warnings,
        tables: after,
    })
}

/// `server_version_num`, e.g. 150004.
async fn server_version_num(client: &Client) -> Result<i32, TimestampSetupError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|source| TimestampSetupError::Catalog {
            what: "the server version".to_owned(),
            source,
        })?;
    row.try_get(0)
        .map_err(|source| TimestampSetupError::Catalog {
            what: "the server version".to_owned(),
            source,
        })
}
