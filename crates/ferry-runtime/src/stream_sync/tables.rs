//! The pipeline's record of its tables on the target, and the copy of tables added to it.
//!
//! The target records which tables the pipeline carries, and from which source position
//! (`<progress_schema>.tables`); the reconcile step (`plan.rs`) compares it with the
//! selection at each start:
//!
//! - **A table newly selected** (added to the patterns, or created since and matching them)
//!   is copied alone from a temporary slot's exported snapshot (after the reconcile step
//!   added it to the publication), whose consistent point X is recorded as the table's
//!   start. Its changes in the stream are applied only from transactions committing at or
//!   after X: earlier ones are in the copy. decoderbufs gives no commit position at Begin,
//!   so for it a transaction that may have committed before X is decided by the copy
//!   snapshot's transaction ids, recorded with X (`snapshot.rs`). While any table's start is ahead of the stream,
//!   large transactions are not streamed before commit (their commit position decides).
//! - **A table dropped and created again** under the same name (its source OID differs
//!   from the recorded one) has its target table dropped, then is copied like a new one.
//! - **A table no longer selected** leaves the record; its target table is left as it is.
//!
//! A table whose copy was interrupted is recorded without a start and copied again (its
//! target table emptied first). A pipeline from before this record existed gets every
//! selected table recorded as carried from the beginning.

use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, TableName};
use ferry_pgwire::ReplicationClient;
use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::TableSelection;

use super::plan::{TableStart, XidSnapshot};
use super::StreamSyncOptions;
use crate::error::SyncError;
use crate::full_sync::{run_full_sync, SnapshotSource};
use crate::progress::Progress;

/// Tables whose changes apply only from a source position on.
pub(super) type Starts = HashMap<TableName, TableStart>;

fn table_sql(options: &StreamSyncOptions) -> String {
    format!("{}.tables", quote_ident(&options.progress_schema))
}

/// Creates the record if it does not exist yet.
pub(super) async fn create(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
) -> Result<(), SyncError> {
    target
        .simple_query(&format!(
            "CREATE TABLE IF NOT EXISTS {0} (
                 pipeline text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,
                 start_lsn pg_lsn, PRIMARY KEY (pipeline, schema_name, table_name));
             ALTER TABLE {0} ADD COLUMN IF NOT EXISTS snapshot text;
             ALTER TABLE {0} ADD COLUMN IF NOT EXISTS source_oid oid",
            table_sql(options)
        ))
        .await
        .map_err(|e| SyncError::session("creating the pipeline's table record", e))?;
    Ok(())
}

/// Records `tables` as carried from `start` (`None`: being copied).
pub(super) async fn record(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    tables: &[TableName],
    start: Option<&TableStart>,
) -> Result<(), SyncError> {
    if tables.is_empty() {
        return Ok(());
    }
    let lsn = start.map_or("NULL".to_owned(), |s| {
        format!("{}::pg_lsn", quote_literal(&s.lsn.to_string()))
    });
    let snapshot = start
        .and_then(|s| s.snapshot.as_ref())
        .map_or("NULL".to_owned(), |s| quote_literal(&s.to_string()));
    let values: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "({}, {}, {}, {lsn}, {snapshot})",
                quote_literal(&options.pipeline),
                quote_literal(&t.schema),
                quote_literal(&t.name)
            )
        })
        .collect();
    target
        .simple_query(&format!(
            "SET synchronous_commit = on;
             INSERT INTO {} (pipeline, schema_name, table_name, start_lsn, snapshot) VALUES {} ON CONFLICT (pipeline, schema_name, table_name)
             DO UPDATE SET start_lsn = EXCLUDED.start_lsn, snapshot = EXCLUDED.snapshot;
             SET synchronous_commit = off",
            table_sql(options),
            values.join(", ")
        ))
        .await
        .map_err(|e| SyncError::session("recording the pipeline's tables", e))?;
    Ok(())
}

/// Copies `tables` alone from a temporary slot's snapshot; returns its consistent point
/// and the snapshot's transaction ids. `oids` are the source OIDs the plan observed.
pub(super) async fn copy_added(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    progress: &Progress,
    tables: &[TableName],
    oids: &[(TableName, u32)],
) -> Result<TableStart, SyncError> {
    tracing::info!(
        tables = tables.len(),
        "tables newly selected: adding them to the pipeline"
    );
    // Unfinished, under the OIDs being copied: a run that stops in between copies them
    // again, and one that finds another OID by then drops that copy first.
    record(options, target, tables, None).await?;
    record_oids(options, target, oids).await?;
    let mut full = options.full.clone();
    let patterns: Vec<String> = tables.iter().map(TableName::quoted).collect();
    full.tables = TableSelection::parse(&patterns, &[]).map_err(SyncError::Internal)?;
    full.on_existing = OnExisting::Truncate;
    full.beside = oids
        .iter()
        .map(|(t, _)| t)
        .filter(|t| !tables.contains(t))
        .cloned()
        .collect();
    full.snapshot = SnapshotSource::Slot {
        name: format!("{}_add", options.slot),
        plugin: options.plugin,
        keep: false,
    };
    let summary = run_full_sync(&full, progress).await?;
    let lsn = summary
        .consistent_point
        .ok_or_else(|| SyncError::Internal("the added tables' copy had no slot".into()))?;
    let snapshot = XidSnapshot::parse(&summary.snapshot_xids).ok_or_else(|| {
        SyncError::Internal(format!(
            "the copy snapshot's transaction ids {:?} do not parse",
            summary.snapshot_xids
        ))
    })?;
    let start = TableStart {
        lsn,
        snapshot: Some(snapshot),
    };
    record(options, target, tables, Some(&start)).await?;
    tracing::info!(tables = tables.len(), %lsn, "tables added: their changes apply from here");
    Ok(start)
}

/// Records the source OID each carried table had when the run's plan read it: a later run
/// that finds another OID under the name knows the table was dropped and created again.
pub(super) async fn record_oids(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    oids: &[(TableName, u32)],
) -> Result<(), SyncError> {
    if oids.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = oids
        .iter()
        .map(|(t, oid)| {
            format!(
                "({}, {}, {oid}::oid)",
                quote_literal(&t.schema),
                quote_literal(&t.name)
            )
        })
        .collect();
    target
        .simple_query(&format!(
            "UPDATE {0} r SET source_oid = v.oid FROM (VALUES {1}) v (s, n, oid)
             WHERE r.pipeline = {2} AND r.schema_name = v.s AND r.table_name = v.n
               AND r.source_oid IS DISTINCT FROM v.oid",
            table_sql(options),
            values.join(", "),
            quote_literal(&options.pipeline)
        ))
        .await
        .map_err(|e| SyncError::session("recording the source tables' OIDs", e))?;
    Ok(())
}

/// The partitioned tables to copy anew whole, with every partition, instead of copying
/// partitions of theirs in `added` alone: a partition copied from a snapshot ahead of the
/// stream gets the source's columns of that moment, and the parent on the target, still
/// at the stream's position, may not have them yet (a column added meanwhile). Returns the
/// roots and their carried partitions.
pub(super) async fn trees_out_of_step(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    added: &[TableName],
    carried: &[TableName],
) -> Result<Vec<TableName>, SyncError> {
    let (source, _) = super::setup::source_catalog(options).await?;
    let mut out: Vec<TableName> = Vec::new();
    for table in added {
        let row = source
            .query_opt(
                "WITH RECURSIVE up (oid, partition) AS (
                     SELECT c.oid, c.relispartition FROM pg_class c WHERE c.oid = to_regclass($1)
                     UNION ALL
                     SELECT p.oid, p.relispartition FROM up
                     JOIN pg_inherits i ON i.inhrelid = up.oid JOIN pg_class p ON p.oid = i.inhparent
                     WHERE up.partition)
                 SELECT n.nspname::text, c.relname::text,
                        (SELECT coalesce(string_agg(attname::text, ',' ORDER BY attname), '') FROM pg_attribute
                         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped)
                 FROM up JOIN pg_class c ON c.oid = up.oid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE NOT up.partition AND up.oid <> to_regclass($1)",
                &[&table.quoted()],
            )
            .await
            .map_err(|e| SyncError::sql("reading a partition's root on the source", e))?;
        let Some(row) = row else { continue };
        let root = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let columns: String = row.get(2);
        if added.contains(&root) || !carried.contains(&root) || out.contains(&root) {
            continue;
        }
        let result = target
            .simple_query(&format!(
                "SELECT coalesce(string_agg(attname::text, ',' ORDER BY attname), '') FROM pg_attribute
                 WHERE attrelid = to_regclass({}) AND attnum > 0 AND NOT attisdropped",
                quote_literal(&root.quoted())
            ))
            .await
            .map_err(|e| SyncError::session("reading a partitioned table's columns", e))?;
        let on_target = result
            .last()
            .and_then(|r| r.rows.first())
            .and_then(|row| row.first().cloned().flatten())
            .unwrap_or_default();
        if on_target == columns {
            continue;
        }
        tracing::warn!(table = %table, %root, "a partition created while the stream is behind its table's column changes: the whole partitioned table is copied anew");
        let below = source
            .query(
                "WITH RECURSIVE down (oid) AS (
                     SELECT to_regclass($1)::oid
                     UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN down ON i.inhparent = down.oid)
                 SELECT n.nspname::text, c.relname::text FROM down
                 JOIN pg_class c ON c.oid = down.oid JOIN pg_namespace n ON n.oid = c.relnamespace",
                &[&root.quoted()],
            )
            .await
            .map_err(|e| SyncError::sql("listing a partitioned table's partitions", e))?;
        for row in below {
            let name = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
            if (carried.contains(&name) || name == root) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// Records `tables` as to be copied anew at the next start (their source OID as none the
/// source can have): the plan then drops their target tables and copies them like tables
/// created again.
pub(super) async fn mark_copy_anew(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    tables: &[TableName],
) -> Result<(), SyncError> {
    let oids: Vec<(TableName, u32)> = tables.iter().map(|t| (t.clone(), 0)).collect();
    record_oids(options, target, &oids).await
}

/// Drops the target tables of `tables`, dropped and created again on the source since they
/// were copied: the copy that follows creates them anew from the source's new definition.
/// Objects the user made on the target that depend on one (a view, a foreign key) stop it
/// with the fix: nothing of the user's is dropped along.
pub(super) async fn drop_recreated(
    target: &mut ReplicationClient,
    tables: &[TableName],
) -> Result<(), SyncError> {
    for table in tables {
        let result = target
            .simple_query(&format!("DROP TABLE IF EXISTS {}", table.quoted()))
            .await;
        match result {
            Ok(_) => {
                tracing::warn!(%table, "dropped and created again on the source: its target table is dropped and copied anew");
            }
            Err(e) if e.as_db_error().is_some_and(|d| d.code() == "2BP01") => {
                return Err(SyncError::Refused {
                    problem: format!(
                        "table {table} was dropped and created again on the source, so its target table must be copied anew, but other objects on the target depend on it ({})",
                        e.as_db_error()
                            .map(|d| d.detail().unwrap_or(d.message()).to_owned())
                            .unwrap_or_default()
                    ),
                    fix: format!(
                        "drop or change the dependent objects on the target (or DROP TABLE {} CASCADE there), then run ferry sync again",
                        table.quoted()
                    ),
                });
            }
            Err(e) => {
                return Err(SyncError::session(
                    "dropping a re-created table's target table",
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// Drops `tables` from the record (the reconcile step takes them out of the publication).
pub(super) async fn forget(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    tables: &[TableName],
) -> Result<(), SyncError> {
    for table in tables {
        target
            .simple_query(&format!(
                "DELETE FROM {} WHERE pipeline = {} AND schema_name = {} AND table_name = {}",
                table_sql(options),
                quote_literal(&options.pipeline),
                quote_literal(&table.schema),
                quote_literal(&table.name)
            ))
            .await
            .map_err(|e| SyncError::session("updating the pipeline's tables", e))?;
        tracing::warn!(%table, "no longer selected: its changes are not carried any more (the target table stays)");
    }
    Ok(())
}
