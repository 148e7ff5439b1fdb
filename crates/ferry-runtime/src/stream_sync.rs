//! Incremental sync with pgoutput: a full copy from the slot's exported snapshot, then every
//! committed transaction, applied exactly once.
//!
//! ```text
//!  slot created with an exported snapshot ──► full copy ──► progress row = consistent point
//!  START_REPLICATION from the stored position (proto_version 1)
//!    Begin: skip the transaction if it ends before the stored position (already applied)
//!    changes: SQL (sink::apply) sent to the target inside one open transaction per source
//!             transaction, in pieces, so a huge transaction is never held in memory
//!    Commit: progress row := end LSN, COMMIT, then report it as flushed to the server
//! ```
//!
//! The progress row commits in the same target transaction as the rows (DESIGN.md
//! invariant 2), and the slot is confirmed only after that commit (invariant 1): a crash at
//! any instant either re-sends a transaction the target did not commit, or re-sends one it
//! did and the Begin check skips it.

use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, Change, Lsn, Relation, RelationId};
use ferry_pgwire::{
    ConnParams, ReplicationClient, ReplicationMessage, ReplicationStream, SlotOptions,
    SnapshotAction,
};
use ferry_postgres::sink::apply::{delete_sql, insert_sql, truncate_sql, update_sql};
use ferry_postgres::source::decode::pgoutput::PgoutputDecoder;
use ferry_postgres::Plugin;
use tokio::sync::watch;

use crate::error::SyncError;
use crate::full_sync::{run_full_sync, FullSyncOptions, SnapshotSource, SESSION_SETTINGS};
use crate::progress::Progress;
use ferry_postgres::schema::create::OnExisting;

/// Statements are sent to the target once this much SQL has gathered, even mid-transaction.
const FLUSH_BYTES: usize = 1 << 20;

/// How an incremental pipeline runs.
#[derive(Debug, Clone)]
pub struct StreamSyncOptions {
    /// The initial copy; its snapshot source is replaced by the slot.
    pub full: FullSyncOptions,
    /// Copy first (`full+incremental`) or only stream (`incremental`).
    pub copy_first: bool,
    pub slot: String,
    pub publication: String,
    pub pipeline: String,
    pub progress_schema: String,
}

/// Streams until `stop` turns true; then the transaction in flight is rolled back (the
/// server sends it again next time) and the function returns.
pub async fn run_stream_sync(
    options: &StreamSyncOptions,
    progress: &Progress,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SyncError> {
    let mut target = session(&options.full.target).await?;
    let start = match stored_position(options, &mut target).await? {
        Some(lsn) if !lsn.is_zero() => lsn,
        // No position yet, or 0/0: a first run that stopped before its copy finished.
        marker => {
            ensure_publication(options).await?;
            save_position(options, &mut target, Lsn::ZERO).await?;
            let position = initial_position(options, progress, marker.is_some()).await?;
            save_position(options, &mut target, position).await?;
            position
        }
    };
    tracing::info!(slot = %options.slot, lsn = %start, "streaming");
    let client = ReplicationClient::connect(&options.full.source)
        .await
        .map_err(|e| SyncError::session("opening a replication connection", e))?;
    let publication = quote_ident(&options.publication);
    let mut stream = client
        .start_logical_replication(
            &options.slot,
            start,
            &[("proto_version", "1"), ("publication_names", &publication)],
        )
        .await
        .map_err(|e| SyncError::session("starting replication from the slot", e))?;
    stream.confirm_durable(start);
    let mut apply = Applier {
        options,
        target: &mut target,
        decoder: PgoutputDecoder::new(),
        relations: HashMap::new(),
        applied: start,
        open: None,
    };
    loop {
        let message = tokio::select! {
            message = stream.next() => message.map_err(|e| SyncError::session("streaming from the slot", e))?,
            _ = stop.changed() => None,
        };
        let Some(message) = message else {
            apply.abandon().await;
            return Ok(());
        };
        apply.handle(message, &mut stream).await?;
    }
}

/// The open source transaction being applied.
struct OpenTransaction {
    /// Already applied before (the stored position is past it): its changes are dropped.
    skip: bool,
    /// The target transaction has begun (some SQL was already sent).
    begun: bool,
    sql: String,
}

struct Applier<'a> {
    options: &'a StreamSyncOptions,
    target: &'a mut ReplicationClient,
    decoder: PgoutputDecoder,
    relations: HashMap<RelationId, Relation>,
    applied: Lsn,
    open: Option<OpenTransaction>,
}

impl Applier<'_> {
    async fn handle(
        &mut self,
        message: ReplicationMessage,
        stream: &mut ReplicationStream,
    ) -> Result<(), SyncError> {
        let data = match message {
            ReplicationMessage::XLogData(data) => data,
            ReplicationMessage::PrimaryKeepalive(keepalive) => {
                // Between transactions everything up to the server's end of WAL is applied
                // or irrelevant: confirm it, so an idle slot does not hold WAL back.
                if self.open.is_none() && keepalive.wal_end > self.applied {
                    stream.confirm_durable(keepalive.wal_end);
                }
                return Ok(());
            }
        };
        let change = self
            .decoder
            .decode(data.data)
            .map_err(|e| SyncError::Internal(format!("undecodable pgoutput message: {e}")))?;
        match change {
            Change::Relation { relation, .. } => {
                self.relations.insert(relation.id, relation);
            }
            Change::Begin { final_lsn, .. } => {
                self.open = Some(OpenTransaction {
                    skip: final_lsn < self.applied,
                    begun: false,
                    sql: String::new(),
                });
            }
            Change::Commit { end_lsn, .. } => {
                let Some(mut txn) = self.open.take() else {
                    return Err(SyncError::Internal("Commit without Begin".into()));
                };
                if txn.skip {
                    return Ok(());
                }
                if !txn.begun {
                    txn.sql.insert_str(0, "BEGIN;\n");
                }
                txn.sql.push_str(&save_position_sql(self.options, end_lsn));
                txn.sql.push_str(";\nCOMMIT");
                self.target
                    .simple_query(&txn.sql)
                    .await
                    .map_err(|e| SyncError::session("applying a transaction", e))?;
                self.applied = end_lsn;
                stream.confirm_durable(end_lsn);
            }
            Change::Insert { relation, new, .. } => {
                let sql = insert_sql(self.relation(relation)?, &new).map_err(apply_error)?;
                self.push(&sql).await?;
            }
            Change::Update {
                relation,
                key,
                old,
                new,
                ..
            } => {
                if let Some(sql) =
                    update_sql(self.relation(relation)?, key.as_ref(), old.as_ref(), &new)
                        .map_err(apply_error)?
                {
                    self.push(&sql).await?;
                }
            }
            Change::Delete {
                relation, key, old, ..
            } => {
                let sql = delete_sql(self.relation(relation)?, key.as_ref(), old.as_ref())
                    .map_err(apply_error)?;
                self.push(&sql).await?;
            }
            Change::Truncate {
                relations,
                cascade,
                restart_identity,
                ..
            } => {
                let rels = relations
                    .iter()
                    .map(|id| self.relation(*id))
                    .collect::<Result<Vec<_>, _>>()?;
                let sql = truncate_sql(&rels, cascade, restart_identity);
                self.push(&sql).await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn relation(&self, id: RelationId) -> Result<&Relation, SyncError> {
        self.relations
            .get(&id)
            .ok_or_else(|| SyncError::Internal(format!("relation {} was never described", id.0)))
    }

    /// Adds a statement to the open transaction, sending the gathered SQL when it is large.
    async fn push(&mut self, sql: &str) -> Result<(), SyncError> {
        let Some(txn) = self.open.as_mut() else {
            return Err(SyncError::Internal("a change outside a transaction".into()));
        };
        if txn.skip {
            return Ok(());
        }
        txn.sql.push_str(sql);
        txn.sql.push_str(";\n");
        if txn.sql.len() >= FLUSH_BYTES {
            if !txn.begun {
                txn.sql.insert_str(0, "BEGIN;\n");
                txn.begun = true;
            }
            let batch = std::mem::take(&mut txn.sql);
            self.target
                .simple_query(&batch)
                .await
                .map_err(|e| SyncError::session("applying a transaction", e))?;
        }
        Ok(())
    }

    /// Stops mid-transaction: the target rolls back; the server sends it again next time.
    async fn abandon(&mut self) {
        if self.open.take().is_some_and(|t| t.begun) {
            let _ = self.target.simple_query("ROLLBACK").await;
        }
    }
}

fn apply_error(e: ferry_postgres::sink::apply::ApplyError) -> SyncError {
    SyncError::Internal(e.to_string())
}

async fn session(params: &ConnParams) -> Result<ReplicationClient, SyncError> {
    let mut client = ReplicationClient::connect_sql(params)
        .await
        .map_err(|source| SyncError::Session {
            what: "connecting to the target",
            source,
        })?;
    client
        .simple_query(SESSION_SETTINGS)
        .await
        .map_err(|e| SyncError::session("configuring a session", e))?;
    Ok(client)
}

fn save_position_sql(options: &StreamSyncOptions, lsn: Lsn) -> String {
    format!(
        "INSERT INTO {}.progress (pipeline, lsn) VALUES ({}, {}::pg_lsn)
         ON CONFLICT (pipeline) DO UPDATE SET lsn = EXCLUDED.lsn, updated_at = now()",
        quote_ident(&options.progress_schema),
        quote_literal(&options.pipeline),
        quote_literal(&lsn.to_string())
    )
}

/// Stores `lsn` as the pipeline's position, durably (0/0 marks a copy in progress).
async fn save_position(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
    lsn: Lsn,
) -> Result<(), SyncError> {
    target
        .simple_query(&format!(
            "SET synchronous_commit = on; BEGIN; {}; COMMIT",
            save_position_sql(options, lsn)
        ))
        .await
        .map_err(|e| SyncError::session("storing the position", e))?;
    Ok(())
}

/// The stored position of this pipeline, creating the progress table if needed.
async fn stored_position(
    options: &StreamSyncOptions,
    target: &mut ReplicationClient,
) -> Result<Option<Lsn>, SyncError> {
    let schema = quote_ident(&options.progress_schema);
    let result = target
        .simple_query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.progress (
                 pipeline text PRIMARY KEY, lsn pg_lsn NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             SELECT lsn::text FROM {schema}.progress WHERE pipeline = {}",
            quote_literal(&options.pipeline)
        ))
        .await
        .map_err(|e| SyncError::session("reading the stored position", e))?;
    let text = result
        .last()
        .and_then(|r| r.rows.first())
        .and_then(|row| row.first().cloned().flatten());
    text.map(|t| {
        t.parse::<Lsn>()
            .map_err(|e| SyncError::Internal(format!("stored position: {e}")))
    })
    .transpose()
}

/// A SQL connection to the source and its `server_version_num`.
async fn source_catalog(
    options: &StreamSyncOptions,
) -> Result<(tokio_postgres::Client, u32), SyncError> {
    let client = ferry_pgwire::connect_sql(&options.full.source)
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

/// Creates the publication for the selected tables when it does not exist.
async fn ensure_publication(options: &StreamSyncOptions) -> Result<(), SyncError> {
    let (client, version) = source_catalog(options).await?;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&options.publication],
        )
        .await
        .map_err(|e| SyncError::sql("reading publications", e))?
        .get(0);
    if exists {
        return Ok(());
    }
    let tables: Vec<String> = ferry_postgres::catalog::tables(&client, version)
        .await
        .map_err(|e| SyncError::sql("listing tables", e))?
        .into_iter()
        .filter(|t| !t.is_partition && options.full.tables.matches(&t.name))
        .map(|t| t.name.to_string())
        .collect();
    if tables.is_empty() {
        return Err(SyncError::NothingSelected);
    }
    client
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote_ident(&options.publication),
            tables.join(", ")
        ))
        .await
        .map_err(|e| SyncError::sql("creating the publication (run ferry check for the fix)", e))?;
    tracing::info!(publication = %options.publication, tables = tables.len(), "publication created");
    Ok(())
}

/// The position streaming starts from on a first run: the consistent point of a slot
/// created with the copy's snapshot, or of a new slot when there is no copy. After an
/// interrupted first run (`again`), its slot is dropped and the copy starts over, emptying
/// the tables it had begun to fill.
async fn initial_position(
    options: &StreamSyncOptions,
    progress: &Progress,
    again: bool,
) -> Result<Lsn, SyncError> {
    let mut full = options.full.clone();
    if again {
        drop_stale_slot(options).await?;
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
            plugin: Plugin::Pgoutput,
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
            Plugin::Pgoutput.name(),
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

/// Drops the slot an interrupted first run left behind (ending a walsender that still
/// holds it), if there is one.
async fn drop_stale_slot(options: &StreamSyncOptions) -> Result<(), SyncError> {
    let (client, version) = source_catalog(options).await?;
    match ferry_postgres::slots::drop_slot(&client, version, &options.slot, true).await {
        Ok(_) | Err(ferry_postgres::slots::SlotError::NotFound(_)) => Ok(()),
        Err(e) => Err(SyncError::Internal(format!("dropping the stale slot: {e}"))),
    }
}

/// Drops the target tables an interrupted copy created: selected tables that have no index
/// on the target while the source table has a primary key (the copy builds keys last, so a
/// table it did not finish has none). They are created again, with their keys, by the new
/// copy; other existing tables are emptied by it.
async fn drop_unfinished_tables(options: &StreamSyncOptions) -> Result<(), SyncError> {
    let (source, version) = source_catalog(options).await?;
    let keyed: Vec<ferry_core::TableName> = ferry_postgres::catalog::tables(&source, version)
        .await
        .map_err(|e| SyncError::sql("listing tables", e))?
        .into_iter()
        .filter(|t| t.has_primary_key && options.full.tables.matches(&t.name))
        .map(|t| t.name)
        .collect();
    let target = ferry_pgwire::connect_sql(&options.full.target)
        .await
        .map_err(|source| SyncError::Connect {
            side: "target",
            source,
        })?;
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
