//! Keeping a pipeline's tables in step with `[source] tables` between runs.
//!
//! The target records which tables the pipeline carries, and from which source position
//! (`<progress_schema>.tables`). At each start the selection is compared with it:
//!
//! - **A table newly selected** (added to the patterns, or created since and matching them)
//!   is added to the publication (pgoutput), then copied alone from a temporary slot's
//!   exported snapshot, whose consistent point X is recorded as the table's start. Its
//!   changes in the stream are applied only from transactions committing at or after X:
//!   earlier ones are in the copy. While any table's start is ahead of the stream, large
//!   transactions are not streamed before commit (their commit position decides).
//! - **A table no longer selected** is dropped from the publication and the record; its
//!   target table is left as it is.
//!
//! A table whose copy was interrupted is recorded without a start and copied again (its
//! target table emptied first). A pipeline from before this record existed gets every
//! selected table recorded as carried from the beginning.

use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, Lsn, TableName};
use ferry_pgwire::ReplicationClient;
use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::{Plugin, TableSelection};

use super::setup::source_catalog;
use super::StreamSyncOptions;
use crate::error::SyncError;
use crate::full_sync::{run_full_sync, SnapshotSource};
use crate::progress::Progress;

/// Tables whose changes apply only from a source position on.
pub(super) type Starts = HashMap<TableName, Lsn>;

fn table_sql(options: &StreamSyncOptions) -> String {
    format!("{}.tables", quote_ident(&options.progress_schema))
}

/// Creates the record if needed and returns it: each table and its start (None: its copy
/// did not finish).
async fn read(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
) -> Result<Vec<(TableName, Option<Lsn>)>, SyncError> {
    let table = table_sql(options);
    let results = target
        .simple_query(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 pipeline text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,
                 start_lsn pg_lsn, PRIMARY KEY (pipeline, schema_name, table_name));
             SELECT schema_name, table_name, start_lsn::text FROM {table} WHERE pipeline = {}",
            quote_literal(&options.pipeline)
        ))
        .await
        .map_err(|e| SyncError::session("reading the pipeline's tables", e))?;
    let rows = results
        .last()
        .map(|r| r.rows.as_slice())
        .unwrap_or_default();
    rows.iter()
        .map(|row| {
            let cell = |i: usize| row.get(i).cloned().flatten();
            let start = cell(2)
                .map(|t| t.parse::<Lsn>())
                .transpose()
                .map_err(|e| SyncError::Internal(format!("stored table start: {e}")))?;
            Ok((
                TableName::new(cell(0).unwrap_or_default(), cell(1).unwrap_or_default()),
                start,
            ))
        })
        .collect()
}

/// Records `tables` as carried from `start` (`None`: being copied).
pub(super) async fn record(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    tables: &[TableName],
    start: Option<Lsn>,
) -> Result<(), SyncError> {
    if tables.is_empty() {
        return Ok(());
    }
    read(options, target).await?;
    let start = start.map_or("NULL".to_owned(), |l| {
        format!("{}::pg_lsn", quote_literal(&l.to_string()))
    });
    let values: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "({}, {}, {}, {start})",
                quote_literal(&options.pipeline),
                quote_literal(&t.schema),
                quote_literal(&t.name)
            )
        })
        .collect();
    target
        .simple_query(&format!(
            "SET synchronous_commit = on;
             INSERT INTO {} VALUES {} ON CONFLICT (pipeline, schema_name, table_name)
             DO UPDATE SET start_lsn = EXCLUDED.start_lsn;
             SET synchronous_commit = off",
            table_sql(options),
            values.join(", ")
        ))
        .await
        .map_err(|e| SyncError::session("recording the pipeline's tables", e))?;
    Ok(())
}

/// The selected tables of the source (partitions included).
pub(super) async fn selected(options: &StreamSyncOptions) -> Result<Vec<TableName>, SyncError> {
    crate::stream_sync::decoder::selected_tables(&options.full.source, &options.full.tables).await
}

/// Brings the record in line with the selection at the start of a run that has a position:
/// copies newly selected tables and forgets unselected ones. Returns the starts of tables
/// copied after the pipeline's own copy.
pub(super) async fn sync_tables(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    progress: &Progress,
) -> Result<Starts, SyncError> {
    let recorded = read(options, target).await?;
    let selected = selected(options).await?;
    if recorded.is_empty() {
        // A pipeline from before the record: everything selected was copied with it.
        record(options, target, &selected, Some(Lsn::ZERO)).await?;
        return Ok(Starts::new());
    }
    let known: HashMap<&TableName, Option<Lsn>> = recorded.iter().map(|(t, s)| (t, *s)).collect();
    let new: Vec<TableName> = selected
        .iter()
        .filter(|t| known.get(t).is_none_or(|start| start.is_none()))
        .cloned()
        .collect();
    let gone: Vec<TableName> = recorded
        .iter()
        .map(|(t, _)| t)
        .filter(|t| !selected.contains(t))
        .cloned()
        .collect();
    if !gone.is_empty() {
        forget(options, target, &gone).await?;
    }
    let mut starts: Starts = recorded
        .into_iter()
        .filter_map(|(t, s)| s.filter(|l| !l.is_zero()).map(|l| (t, l)))
        .filter(|(t, _)| selected.contains(t))
        .collect();
    if !new.is_empty() {
        let start = copy_new(options, target, progress, &new).await?;
        starts.extend(new.into_iter().map(|t| (t, start)));
    }
    Ok(starts)
}

/// Copies `tables` alone from a temporary slot's snapshot; returns its consistent point.
async fn copy_new(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    progress: &Progress,
    tables: &[TableName],
) -> Result<Lsn, SyncError> {
    tracing::info!(
        tables = tables.len(),
        "tables newly selected: adding them to the pipeline"
    );
    record(options, target, tables, None).await?;
    if options.plugin == Plugin::Pgoutput {
        alter_publication(options, tables, "ADD").await?;
    }
    let mut full = options.full.clone();
    let patterns: Vec<String> = tables.iter().map(TableName::quoted).collect();
    full.tables = TableSelection::parse(&patterns, &[]).map_err(SyncError::Internal)?;
    full.on_existing = OnExisting::Truncate;
    full.snapshot = SnapshotSource::Slot {
        name: format!("{}_add", options.slot),
        plugin: options.plugin,
        keep: false,
    };
    let summary = run_full_sync(&full, progress).await?;
    let start = summary
        .consistent_point
        .ok_or_else(|| SyncError::Internal("the added tables' copy had no slot".into()))?;
    record(options, target, tables, Some(start)).await?;
    tracing::info!(tables = tables.len(), lsn = %start, "tables added: their changes apply from here");
    Ok(start)
}

/// Drops `tables` from the publication (pgoutput) and from the record.
async fn forget(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    tables: &[TableName],
) -> Result<(), SyncError> {
    if options.plugin == Plugin::Pgoutput {
        alter_publication(options, tables, "DROP").await?;
    }
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

/// `ALTER PUBLICATION … ADD|DROP TABLE` for the tables that are (not) in it, leaving out
/// partitions (a publication carries them through their parent).
async fn alter_publication(
    options: &StreamSyncOptions,
    tables: &[TableName],
    action: &str,
) -> Result<(), SyncError> {
    let (client, _) = source_catalog(options).await?;
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&options.publication],
        )
        .await
        .map_err(|e| SyncError::sql("reading the publication", e))?;
    let published: Vec<TableName> = rows
        .into_iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let partitions: Vec<TableName> = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relispartition",
            &[],
        )
        .await
        .map_err(|e| SyncError::sql("listing partitions", e))?
        .into_iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let change: Vec<String> = tables
        .iter()
        .filter(|t| !partitions.contains(t))
        .filter(|t| published.contains(t) == (action == "DROP"))
        .map(TableName::quoted)
        .collect();
    if change.is_empty() {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "ALTER PUBLICATION {} {action} TABLE {}",
            quote_ident(&options.publication),
            change.join(", ")
        ))
        .await
        .map_err(|e| SyncError::sql("changing the publication's tables (see ferry check)", e))?;
    Ok(())
}
