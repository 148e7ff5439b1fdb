//! Full sync: one consistent copy of the selected tables, as fast as the servers allow.
//!
//! ```text
//!  snapshot holder ── slot creation with an exported snapshot (or pg_export_snapshot)
//!        │ snapshot name, held open until every worker has imported it
//!        ▼
//!  control conn: import, read schema ──► target: create missing schema objects (no indexes)
//!  N workers:    import, then take chunks largest first:  COPY TO ──bytes──► COPY FROM
//!  target:       indexes in parallel, then constraints USING INDEX, then sequence values
//!  one synchronous commit, so the asynchronously committed loads are durable
//! ```
//!
//! The loads commit with `synchronous_commit = off` (a commit does not wait for its WAL
//! flush) and the run ends with one synchronous commit, which flushes all WAL before it: the
//! data is durable when the run reports success, at a fraction of the flush cost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_core::Lsn;
use ferry_core::TableName;
use ferry_pgwire::{ConnParams, ReplicationClient, SlotOptions, SnapshotAction};
use ferry_postgres::schema::create::{prepare_target, OnExisting};
use ferry_postgres::schema::read::read_schema_beside;
use ferry_postgres::schema::SourceSchema;
use ferry_postgres::sink::copy::copy_chunk;
use ferry_postgres::source::snapshot::{
    import_snapshot, import_snapshot_sql, plan_chunks, CopyChunk,
};
use ferry_postgres::{Plugin, TableSelection};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::error::SyncError;
use crate::indexes::build_indexes;
use crate::progress::{FullSyncSummary, Progress, SyncEvent};

/// Where the consistent snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Create the logical slot `name` with an exported snapshot, so streaming can continue
    /// exactly where the copy ends. Unless `keep`, the slot is temporary (gone when the
    /// copy's snapshot connection closes, whatever ends the run): only its consistent point
    /// and snapshot are wanted.
    Slot {
        name: String,
        plugin: Plugin,
        keep: bool,
    },
    /// `pg_export_snapshot()` in a plain transaction: no slot, no REPLICATION privilege, no
    /// `wal_level = logical` needed. For a one-off copy.
    Export,
}

/// What to copy, from where to where, and how.
#[derive(Debug, Clone)]
pub struct FullSyncOptions {
    pub source: ConnParams,
    pub target: ConnParams,
    pub tables: TableSelection,
    /// Parallel copy workers (each with a source and a target connection).
    pub workers: usize,
    pub snapshot: SnapshotSource,
    pub on_existing: OnExisting,
    /// Tables above this many bytes are split into block ranges.
    pub split_bytes: i64,
    /// Tables the target already has from the same pipeline (when tables are added to it):
    /// a copied partition of one is created as its partition.
    pub beside: Vec<TableName>,
}

/// Session settings that make text COPY output parse back to the same values anywhere.
pub(crate) const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET TimeZone = 'UTC'";

/// Runs a full sync and reports through `progress`.
pub async fn run_full_sync(
    options: &FullSyncOptions,
    progress: &Progress,
) -> Result<FullSyncSummary, SyncError> {
    let started = Instant::now();
    let holder = SnapshotHolder::open(options).await?;
    let result = copy_and_build(options, progress, holder.snapshot_name(), started).await;
    let consistent_point = holder.consistent_point();
    match (&result, &options.snapshot) {
        // A failed copy leaves the slot's position meaningless: drop it, and the next run
        // creates a fresh one.
        (Err(_), SnapshotSource::Slot { name, .. })
        | (
            Ok(_),
            SnapshotSource::Slot {
                name, keep: false, ..
            },
        ) => {
            holder.drop_slot(name).await;
        }
        _ => holder.release().await,
    }
    let mut summary = result?;
    if matches!(options.snapshot, SnapshotSource::Slot { .. }) {
        summary.consistent_point = consistent_point;
    }
    progress.send(SyncEvent::Finished(summary.clone()));
    Ok(summary)
}

async fn copy_and_build(
    options: &FullSyncOptions,
    progress: &Progress,
    snapshot: &str,
    started: Instant,
) -> Result<FullSyncSummary, SyncError> {
    let workers = options.workers.max(1);
    let control = connect(&options.source, "source").await?;
    import_snapshot(&control, snapshot)
        .await
        .map_err(|e| SyncError::sql("importing the snapshot", e))?;
    let schema = read_schema_beside(&control, &options.tables, &options.beside).await?;
    if schema.tables.is_empty() {
        return Err(SyncError::NothingSelected);
    }
    refuse_unreadable(&control, &schema).await?;
    let version: i32 = control
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| SyncError::sql("reading the server version", e))?
        .get(0);
    let snapshot_xids: String = control
        .query_one(
            if version >= 130_000 {
                "SELECT pg_current_snapshot()::text"
            } else {
                "SELECT txid_current_snapshot()::text"
            },
            &[],
        )
        .await
        .map_err(|e| SyncError::sql("reading the snapshot's transaction ids", e))?
        .get(0);

    // Every worker imports the snapshot now, while the holder still keeps it alive. The
    // workers use Ferry's own client: it passes COPY data through without re-framing it.
    let mut pairs = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut source = copy_connection(&options.source, "source").await?;
        source
            .simple_query(&format!(
                "{SESSION_SETTINGS}; {}",
                import_snapshot_sql(snapshot)
            ))
            .await
            .map_err(|e| SyncError::session("importing the snapshot", e))?;
        let mut target = copy_connection(&options.target, "target").await?;
        target
            .simple_query(&format!("{SESSION_SETTINGS}; SET synchronous_commit = off"))
            .await
            .map_err(|e| SyncError::session("configuring a target session", e))?;
        pairs.push((source, target));
    }

    let target_control = connect(&options.target, "target").await?;
    let prepared = prepare_target(&target_control, &schema, options.on_existing).await?;
    let loaded = load_and_index(
        options,
        progress,
        &control,
        &target_control,
        schema,
        &prepared,
        pairs,
        version,
        started,
    )
    .await;
    if loaded.is_err() && !prepared.created.is_empty() {
        // Tables this run created hold a partial copy and no indexes: remove them, so the
        // next run creates them afresh instead of finding "existing" tables.
        let names: Vec<String> = prepared.created.iter().map(|t| t.quoted()).collect();
        let drop = format!("DROP TABLE IF EXISTS {}", names.join(", "));
        if let Err(e) = target_control.batch_execute(&drop).await {
            tracing::warn!(error = %e, "could not remove the partly copied tables: {}", drop);
        }
    }
    loaded.map(|summary| FullSyncSummary {
        snapshot_xids,
        ..summary
    })
}

/// Fails before anything is written when the role cannot read every selected table.
async fn refuse_unreadable(control: &Client, schema: &SourceSchema) -> Result<(), SyncError> {
    let oids: Vec<u32> = schema.tables.iter().map(|t| t.oid).collect();
    let unreadable = ferry_postgres::catalog::unreadable_tables(control, &oids)
        .await
        .map_err(|e| SyncError::sql("checking SELECT privileges", e))?;
    if unreadable.is_empty() {
        return Ok(());
    }
    let role: String = control
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(|e| SyncError::sql("reading the role name", e))?
        .get(0);
    Err(SyncError::Unreadable {
        role_sql: ferry_core::quote_ident(&role),
        role,
        tables: unreadable
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[allow(clippy::too_many_arguments)]
async fn load_and_index(
    options: &FullSyncOptions,
    progress: &Progress,
    control: &Client,
    target_control: &Client,
    schema: SourceSchema,
    prepared: &ferry_postgres::schema::create::Prepared,
    pairs: Vec<(ReplicationClient, ReplicationClient)>,
    version: i32,
    started: Instant,
) -> Result<FullSyncSummary, SyncError> {
    let workers = pairs.len();
    let chunks = plan_chunks(
        &schema,
        workers,
        options.split_bytes,
        u32::try_from(version).unwrap_or(0),
    );
    let estimated: i64 = chunks.iter().map(|c| c.estimated_bytes).sum();
    progress.send(SyncEvent::Planned {
        tables: schema.tables.iter().filter(|t| t.has_storage()).count(),
        chunks: chunks.len(),
        estimated_bytes: u64::try_from(estimated).unwrap_or(0),
    });

    let schema = Arc::new(schema);
    let (copied_tx, copied_rx) = tokio::sync::mpsc::unbounded_channel();
    let indexes = tokio::spawn(build_indexes(
        options.target.clone(),
        prepared.filter(&schema),
        copied_rx,
        workers,
    ));
    let copied = copy_all(&schema, chunks, pairs, progress, copied_tx).await;
    let (rows, bytes) = match copied {
        Ok(counts) => counts,
        Err(e) => {
            indexes.abort();
            return Err(e);
        }
    };
    let copy_time = started.elapsed();
    progress.send(SyncEvent::BuildingIndexes);
    let index_started = Instant::now();
    indexes
        .await
        .map_err(|e| SyncError::Internal(format!("the index builder failed: {e}")))??;
    // One synchronous commit flushes the WAL of every asynchronous commit before it.
    target_control
        .batch_execute("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
        .await
        .map_err(|e| SyncError::sql("flushing the target's WAL", e))?;
    control
        .batch_execute("COMMIT")
        .await
        .map_err(|e| SyncError::sql("ending the snapshot transaction", e))?;
    Ok(FullSyncSummary {
        tables: schema.tables.iter().filter(|t| t.has_storage()).count(),
        rows,
        bytes,
        copy_time,
        index_time: index_started.elapsed(),
        total_time: started.elapsed(),
        consistent_point: None,
        snapshot_xids: String::new(),
    })
}

/// Per-table bookkeeping while chunks finish in any order.
struct TableProgress {
    chunks_left: usize,
    rows: u64,
    bytes: u64,
    started: bool,
}

async fn copy_all(
    schema: &Arc<SourceSchema>,
    chunks: Vec<CopyChunk>,
    pairs: Vec<(ReplicationClient, ReplicationClient)>,
    progress: &Progress,
    copied: UnboundedSender<TableName>,
) -> Result<(u64, u64), SyncError> {
    let mut tables: Vec<TableProgress> = schema
        .tables
        .iter()
        .map(|_| TableProgress {
            chunks_left: 0,
            rows: 0,
            bytes: 0,
            started: false,
        })
        .collect();
    for chunk in &chunks {
        tables[chunk.table].chunks_left += 1;
    }
    let queue = Arc::new(Mutex::new(VecDeque::from(chunks)));
    let tables = Arc::new(Mutex::new(tables));
    let mut set = JoinSet::new();
    for (mut source, mut target) in pairs {
        let queue = queue.clone();
        let tables = tables.clone();
        let schema = schema.clone();
        let progress = progress.clone();
        let copied = copied.clone();
        set.spawn(async move {
            while let Some(chunk) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) {
                let table = &schema.tables[chunk.table];
                start_table(&tables, &chunk, table, &progress);
                let name = table.name.clone();
                let rows = copy_chunk(&mut source, &mut target, table, &chunk, |bytes| {
                    progress.send(SyncEvent::Bytes {
                        table: name.clone(),
                        bytes,
                    });
                })
                .await
                .map_err(|e| SyncError::copy(&table.name, e))?;
                if finish_chunk(&tables, &chunk, table, rows, &progress) {
                    let _ = copied.send(table.name.clone());
                }
            }
            source
                .simple_query("COMMIT")
                .await
                .map_err(|e| SyncError::session("ending a snapshot transaction", e))?;
            source.close().await;
            target.close().await;
            Ok::<(), SyncError>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        let outcome =
            joined.map_err(|e| SyncError::Internal(format!("a copy worker failed: {e}")))?;
        if let Err(e) = outcome {
            set.abort_all();
            return Err(e);
        }
    }
    let tables = tables
        .lock()
        .map_err(|_| SyncError::Internal("progress lock poisoned".into()))?;
    Ok(tables
        .iter()
        .fold((0, 0), |(r, b), t| (r + t.rows, b + t.bytes)))
}

fn start_table(
    tables: &Mutex<Vec<TableProgress>>,
    chunk: &CopyChunk,
    table: &ferry_postgres::schema::TableDef,
    progress: &Progress,
) {
    let Ok(mut tables) = tables.lock() else {
        return;
    };
    let state = &mut tables[chunk.table];
    if !state.started {
        state.started = true;
        progress.send(SyncEvent::TableStarted {
            table: table.name.clone(),
            estimated_bytes: u64::try_from(table.size_bytes).unwrap_or(0),
            estimated_rows: table.estimated_rows,
        });
    }
}

fn finish_chunk(
    tables: &Mutex<Vec<TableProgress>>,
    chunk: &CopyChunk,
    table: &ferry_postgres::schema::TableDef,
    rows: u64,
    progress: &Progress,
) -> bool {
    let Ok(mut tables) = tables.lock() else {
        return false;
    };
    let state = &mut tables[chunk.table];
    state.rows += rows;
    state.bytes += u64::try_from(chunk.estimated_bytes).unwrap_or(0);
    state.chunks_left -= 1;
    if state.chunks_left == 0 {
        progress.send(SyncEvent::TableFinished {
            table: table.name.clone(),
            rows: state.rows,
            bytes: state.bytes,
        });
    }
    state.chunks_left == 0
}

/// A connection of Ferry's own client, for the COPY data path.
async fn copy_connection(
    params: &ConnParams,
    side: &'static str,
) -> Result<ReplicationClient, SyncError> {
    ReplicationClient::connect_sql(params)
        .await
        .map_err(|source| SyncError::Session {
            what: if side == "source" {
                "connecting a copy worker to the source"
            } else {
                "connecting a copy worker to the target"
            },
            source,
        })
}

async fn connect(params: &ConnParams, side: &'static str) -> Result<Client, SyncError> {
    ferry_pgwire::connect_sql(params)
        .await
        .map_err(|source| SyncError::Connect { side, source })
}

/// Waits, up to half a minute, for the temporary slot `name` to go away; false when it is
/// not temporary or outlives the wait (another run really holds it).
async fn temporary_slot_ends(source: &ConnParams, name: &str) -> Result<bool, SyncError> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
    let client = connect(source, "source").await?;
    let started = Instant::now();
    let mut told = false;
    loop {
        let row = client
            .query_opt(
                "SELECT temporary, active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| SyncError::sql("reading the slots", e))?;
        let Some(row) = row else { return Ok(true) };
        let temporary: bool = row.get(0);
        if !temporary || started.elapsed() > WAIT {
            return Ok(false);
        }
        if !told {
            let pid: Option<i32> = row.get(1);
            tracing::info!(slot = %name, ?pid, "a temporary slot of this name is still held, by an earlier run's session that is ending: waiting for it");
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Keeps the exported snapshot alive: the connection that exported it must stay open and
/// idle until every worker has imported it.
enum SnapshotHolder {
    Slot {
        client: ReplicationClient,
        snapshot: String,
        consistent_point: Lsn,
    },
    Export {
        client: Client,
        snapshot: String,
    },
}

impl SnapshotHolder {
    async fn open(options: &FullSyncOptions) -> Result<Self, SyncError> {
        match &options.snapshot {
            SnapshotSource::Slot { name, plugin, keep } => {
                let mut client =
                    ReplicationClient::connect(&options.source)
                        .await
                        .map_err(|source| SyncError::Slot {
                            slot: name.clone(),
                            source,
                        })?;
                // A slot that is not kept lives only as long as this connection: a crash
                // during the copy leaves nothing behind to pin WAL.
                let slot_options = SlotOptions {
                    temporary: !keep,
                    snapshot: SnapshotAction::Export,
                };
                let mut waited = false;
                let created = loop {
                    match client.create_slot(name, plugin.name(), slot_options).await {
                        Ok(created) => break created,
                        Err(source) if source.as_db_error().map(|d| d.code()) == Some("42710") => {
                            // A temporary slot of the same name belongs to a session that
                            // is ending: an earlier run killed while its slot was being
                            // made (the server finishes waiting for running transactions
                            // before it notices). Wait for it once, then give up.
                            if *keep
                                || waited
                                || !temporary_slot_ends(&options.source, name).await?
                            {
                                return Err(SyncError::SlotExists { slot: name.clone() });
                            }
                            waited = true;
                        }
                        Err(source) => {
                            return Err(SyncError::Slot {
                                slot: name.clone(),
                                source,
                            })
                        }
                    }
                };
                let snapshot = created
                    .snapshot_name
                    .ok_or_else(|| SyncError::Internal("the server exported no snapshot".into()))?;
                tracing::info!(slot = %name, lsn = %created.consistent_point, "slot created");
                Ok(SnapshotHolder::Slot {
                    client,
                    snapshot,
                    consistent_point: created.consistent_point,
                })
            }
            SnapshotSource::Export => {
                let client = connect(&options.source, "source").await?;
                client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await
                    .map_err(|e| SyncError::sql("starting the snapshot transaction", e))?;
                let snapshot: String = client
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .map_err(|e| SyncError::sql("exporting a snapshot", e))?
                    .get(0);
                Ok(SnapshotHolder::Export { client, snapshot })
            }
        }
    }

    fn snapshot_name(&self) -> &str {
        match self {
            SnapshotHolder::Slot { snapshot, .. } | SnapshotHolder::Export { snapshot, .. } => {
                snapshot
            }
        }
    }

    fn consistent_point(&self) -> Option<Lsn> {
        match self {
            SnapshotHolder::Slot {
                consistent_point, ..
            } => Some(*consistent_point),
            SnapshotHolder::Export { .. } => None,
        }
    }

    async fn release(self) {
        match self {
            SnapshotHolder::Slot { client, .. } => client.close().await,
            SnapshotHolder::Export { client, .. } => {
                let _ = client.batch_execute("COMMIT").await;
            }
        }
    }

    /// Drops the slot created for this run (best effort, logged: a slot left behind shows
    /// in `ferry check` with the WAL it retains).
    async fn drop_slot(self, slot: &str) {
        let SnapshotHolder::Slot { mut client, .. } = self else {
            return;
        };
        match client.drop_slot(slot, true).await {
            Ok(()) => tracing::info!(slot = %slot, "slot dropped"),
            Err(e) => tracing::warn!(
                slot = %slot,
                error = %e,
                "could not drop the slot; drop it by hand: SELECT pg_drop_replication_slot({})",
                ferry_core::quote_literal(slot)
            ),
        }
        client.close().await;
    }
}
