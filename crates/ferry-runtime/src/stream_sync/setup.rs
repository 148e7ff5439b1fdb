//! The target sessions of a run (settings, the pipeline lock), the progress row, and the
//! first run's slot and copy (or its restart after an interruption).

use ferry_core::{quote_ident, quote_literal, Lsn};
use ferry_pgwire::{ConnParams, ReplicationClient, SlotOptions, SnapshotAction};
use ferry_postgres::schema::create::OnExisting;

use super::StreamSyncOptions;
use crate::error::SyncError;
use crate::full_sync::{run_full_sync, SnapshotSource, SESSION_SETTINGS};
use crate::progress::Progress;

/// Bounds every lock wait of an apply session, so that a wait cycle through Ferry (a streamed
/// transaction and the main connection) ends in an error instead of a hang.
const APPLY_LOCK_TIMEOUT: &str = "60s";

/// A target session for applying changes.
pub(super) async fn session(params: &ConnParams) -> Result<ReplicationClient, SyncError> {
    let mut client = ReplicationClient::connect_sql(params)
        .await
        .map_err(|source| SyncError::Session {
            what: "connecting to the target",
            source,
        })?;
    client
        .simple_query(&format!(
            "{SESSION_SETTINGS}; SET lock_timeout = '{APPLY_LOCK_TIMEOUT}'; \
             SET synchronous_commit = off; SET client_min_messages = warning"
        ))
        .await
        .map_err(|e| SyncError::session("configuring a session", e))?;
    Ok(client)
}

/// The advisory lock class of Ferry's pipeline locks on the target (`'Fe'`).
const LOCK_CLASS: i32 = 0x4665;

/// Makes this run the only one applying `pipeline` on the target, and waits until sessions
/// of an earlier run of it have ended.
///
/// A killed Ferry process leaves its target sessions behind for a moment: one may still be
/// executing its last group and commit it after a new run has read the stored position,
/// which would then apply that group a second time. The main session holds an exclusive
/// advisory lock for the run's life; each streamed-transaction session holds a shared one
/// on a second key, which a new run takes exclusively once to wait them out. Another Ferry
/// process running the same pipeline waits too, instead of applying alongside.
pub(super) async fn lock_pipeline(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
) -> Result<(), SyncError> {
    let key = quote_literal(&options.pipeline);
    let free = target
        .simple_query(&format!(
            "SELECT pg_try_advisory_lock({LOCK_CLASS}, hashtext({key}))"
        ))
        .await
        .map_err(|e| SyncError::session("locking the pipeline on the target", e))?;
    let got = free
        .last()
        .and_then(|r| r.rows.first())
        .and_then(|row| row.first().cloned().flatten());
    if got.as_deref() != Some("t") {
        tracing::info!(pipeline = %options.pipeline, "waiting for an earlier session of this pipeline on the target to end");
        target
            .simple_query(&format!(
                "SELECT pg_advisory_lock({LOCK_CLASS}, hashtext({key}))"
            ))
            .await
            .map_err(|e| SyncError::session("waiting for an earlier run of the pipeline", e))?;
    }
    target
        .simple_query(&format!(
            "SELECT pg_advisory_lock({LOCK_CLASS}, hashtext({key}) + 1);
             SELECT pg_advisory_unlock({LOCK_CLASS}, hashtext({key}) + 1)"
        ))
        .await
        .map_err(|e| SyncError::session("waiting for an earlier run of the pipeline", e))?;
    Ok(())
}

/// The statement a streamed-transaction session runs first (see [`lock_pipeline`]).
pub(super) fn streamed_session_lock_sql(pipeline: &str) -> String {
    format!(
        "SELECT pg_advisory_lock_shared({LOCK_CLASS}, hashtext({}) + 1)",
        quote_literal(pipeline)
    )
}

/// The progress row's upsert: `lsn`, and the source commit time of the transaction that
/// ends there when known (for `ferry status`'s lag in seconds).
pub(super) fn save_position_sql(
    options: &StreamSyncOptions,
    lsn: Lsn,
    commit_time: Option<ferry_core::PgTimestamp>,
    applied: (u64, u64),
) -> String {
    // Microseconds since 2000-01-01 UTC, as the protocol sends them.
    let commit_time = commit_time.map_or("NULL".to_owned(), |t| {
        format!(
            "timestamptz '2000-01-01 00:00:00+00' + {} * interval '1 microsecond'",
            t.0
        )
    });
    format!(
        "INSERT INTO {}.progress (pipeline, lsn, source_commit_time, transactions_applied, changes_applied)
         VALUES ({}, {}::pg_lsn, {commit_time}, {txns}, {changes})
         ON CONFLICT (pipeline) DO UPDATE SET lsn = EXCLUDED.lsn, updated_at = now(),
             source_commit_time = coalesce(EXCLUDED.source_commit_time, {0}.progress.source_commit_time),
             transactions_applied = {0}.progress.transactions_applied + EXCLUDED.transactions_applied,
             changes_applied = {0}.progress.changes_applied + EXCLUDED.changes_applied",
        quote_ident(&options.progress_schema),
        quote_literal(&options.pipeline),
        quote_literal(&lsn.to_string()),
        txns = applied.0,
        changes = applied.1,
    )
}

/// Stores `lsn` as the pipeline's position, durably (0/0 marks a copy in progress).
pub(super) async fn save_position(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    lsn: Lsn,
) -> Result<(), SyncError> {
    target
        .simple_query(&format!(
            "BEGIN; SET LOCAL synchronous_commit = on; {}; COMMIT",
            save_position_sql(options, lsn, None, (0, 0))
        ))
        .await
        .map_err(|e| SyncError::session("storing the position", e))?;
    Ok(())
}

/// Creates the progress table (and brings an older one up to date) if needed.
pub(super) async fn create_progress(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
) -> Result<(), SyncError> {
    let schema = quote_ident(&options.progress_schema);
    target
        .simple_query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.progress (
                 pipeline text PRIMARY KEY, lsn pg_lsn NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             ALTER TABLE {schema}.progress ADD COLUMN IF NOT EXISTS last_error text,
                 ADD COLUMN IF NOT EXISTS last_error_at timestamptz,
                 ADD COLUMN IF NOT EXISTS source_commit_time timestamptz,
                 ADD COLUMN IF NOT EXISTS transactions_applied bigint NOT NULL DEFAULT 0,
                 ADD COLUMN IF NOT EXISTS changes_applied bigint NOT NULL DEFAULT 0"
        ))
        .await
        .map_err(|e| SyncError::session("creating the progress table", e))?;
    Ok(())
}

/// A SQL connection to the source and its `server_version_num`.
pub(super) async fn source_catalog(
    options: &StreamSyncOptions,
) -> Result<(tokio_postgres::Client, u32), SyncError> {
    connect_source(&options.full.source).await
}

/// A SQL connection to `source` and its `server_version_num`.
pub(super) async fn connect_source(
    source: &ConnParams,
) -> Result<(tokio_postgres::Client, u32), SyncError> {
    let client = ferry_pgwire::connect_sql(source)
        .await
        .map_err(|source| SyncError::Connect {
            side: "source",
            source,
        })?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| SyncError::sql("reading the server version", e))?
        .get(0);
    Ok((client, u32::try_from(version).unwrap_or(0)))
}

/// The position streaming starts from on a first run: the consistent point of a slot
/// created with the copy's snapshot, or of a new slot when there is no copy. After an
/// interrupted first run (`again`; the reconcile step dropped its slot), the copy starts
/// over, emptying the tables it had begun to fill.
pub(super) async fn initial_position(
    options: &StreamSyncOptions,
    progress: &Progress,
    again: bool,
) -> Result<Lsn, SyncError> {
    let mut full = options.full.clone();
    if again {
        drop_unfinished_tables(options).await?;
        full.on_existing = match full.on_existing {
            OnExisting::Error | OnExisting::Truncate => OnExisting::Truncate,
            OnExisting::Append => {
                return Err(SyncError::CopyInterrupted {
                    pipeline: options.pipeline.clone(),
                })
            }
        };
        tracing::warn!(pipeline = %options.pipeline, "an earlier run stopped during its copy; copying again");
    }
    if options.copy_first {
        full.snapshot = SnapshotSource::Slot {
            name: options.slot.clone(),
            plugin: options.plugin,
            keep: true,
        };
        let summary = run_full_sync(&full, progress).await?;
        return summary
            .consistent_point
            .ok_or_else(|| SyncError::Internal("the copy kept no slot".into()));
    }
    let mut client = ReplicationClient::connect(&options.full.source)
        .await
        .map_err(|source| SyncError::Slot {
            slot: options.slot.clone(),
            source,
        })?;
    let created = client
        .create_slot(
            &options.slot,
            options.plugin.name(),
            SlotOptions {
                temporary: false,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .await
        .map_err(|source| SyncError::Slot {
            slot: options.slot.clone(),
            source,
        })?;
    client.close().await;
    Ok(created.consistent_point)
}

/// Drops the target tables an interrupted copy created: selected tables that have no index
/// on the target while the source table has a primary key (the copy builds keys last, so a
/// table it did not finish has none). They are created again, with their keys, by the new
/// copy; other existing tables are emptied by it. A finished one is dropped too, without
/// CASCADE (an object of the user's that depends on it stops the run with the error naming
/// it), when the earlier copy made it (`on_existing = "error"`: no table existed before),
/// or when the source changed its columns since: the new copy loads the source's columns
/// of its own snapshot.
async fn drop_unfinished_tables(options: &StreamSyncOptions) -> Result<(), SyncError> {
    let (source, version) = source_catalog(options).await?;
    let selected: Vec<ferry_postgres::catalog::TableInfo> =
        ferry_postgres::catalog::tables(&source, version)
            .await
            .map_err(|e| SyncError::sql("listing tables", e))?
            .into_iter()
            .filter(|t| options.full.tables.matches(&t.name))
            .collect();
    let target = ferry_pgwire::connect_sql(&options.full.target)
        .await
        .map_err(|source| SyncError::Connect {
            side: "target",
            source,
        })?;
    for table in &selected {
        let name = table.name.quoted();
        let on_target: Option<String> = target
            .query_one("SELECT to_regclass($1)::text", &[&name])
            .await
            .map_err(|e| SyncError::sql("inspecting target tables", e))?
            .get(0);
        if on_target.is_none() {
            continue;
        }
        // With on_existing = "error" the earlier copy found none of them: it made them all.
        let ours = options.full.on_existing == OnExisting::Error;
        if ours || column_names(&source, &name).await? != column_names(&target, &name).await? {
            target
                .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                .await
                .map_err(|e| SyncError::sql("dropping a copied table whose columns changed", e))?;
            tracing::warn!(table = %table.name, "dropped a table the interrupted copy had made, to be copied again");
        }
    }
    let keyed: Vec<ferry_core::TableName> = selected
        .into_iter()
        .filter(|t| t.has_primary_key)
        .map(|t| t.name)
        .collect();
    for table in keyed {
        let unfinished: bool = target
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = $1 AND c.relname = $2)
                        AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                                        JOIN pg_namespace n ON n.oid = c.relnamespace
                                        WHERE n.nspname = $1 AND c.relname = $2)",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(|e| SyncError::sql("inspecting target tables", e))?
            .get(0);
        if unfinished {
            target
                .batch_execute(&format!("DROP TABLE {} CASCADE", table.quoted()))
                .await
                .map_err(|e| SyncError::sql("dropping a partly copied table", e))?;
            tracing::warn!(table = %table, "dropped a table the interrupted copy had not finished");
        }
    }
    Ok(())
}

/// The live column names of table `name` (quoted), sorted, comma-separated.
async fn column_names(client: &tokio_postgres::Client, name: &str) -> Result<String, SyncError> {
    client
        .query_one(
            "SELECT coalesce(string_agg(attname::text, ',' ORDER BY attname), '') FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&name],
        )
        .await
        .map(|row| row.get(0))
        .map_err(|e| SyncError::sql("comparing a table's columns", e))
}

/// Stores `message` as the pipeline's last error on the target, for `ferry status`; best
/// effort (the target may be what failed).
pub async fn record_last_error(options: &StreamSyncOptions, message: &str) {
    let sql = format!(
        "UPDATE {}.progress SET last_error = {}, last_error_at = now() WHERE pipeline = {}",
        quote_ident(&options.progress_schema),
        quote_literal(message),
        quote_literal(&options.pipeline)
    );
    if let Ok(client) = ferry_pgwire::connect_sql(&options.full.target).await {
        if let Err(e) = client.batch_execute(&sql).await {
            tracing::debug!(error = %e, "could not record the last error on the target");
        }
    }
}
