//! Incremental sync with pgoutput: a full copy from the slot's exported snapshot, then every
//! committed transaction, applied exactly once.
//!
//! ```text
//!  slot created with an exported snapshot ──► full copy ──► progress row = consistent point
//!  START_REPLICATION from the stored position
//!    (proto_version 1 before PostgreSQL 14; 2 with streaming and messages from 14 on)
//!  plain transactions ──► one target transaction per group of them (apply.rs): the group
//!        commits with the progress row when the input runs dry or a bound is reached
//!  streamed transactions ──► each on its own target connection as its blocks arrive
//!        (streamed.rs), savepoints for subtransactions; committed on Stream Commit, rolled
//!        back on Stream Abort
//!  Relation messages ──► the target table follows added, dropped, renamed columns
//!        (relations.rs) in the same target transaction, before the change that needs them
//!  heartbeat ──► pg_logical_emit_message on the source, so an idle slot still advances
//! ```
//!
//! The progress row commits in the same target transaction as the rows (DESIGN.md
//! invariant 2), and the slot is confirmed only after that commit (invariant 1): a crash at
//! any instant either re-sends a transaction the target did not commit, or re-sends one it
//! did and the commit-LSN check skips it.

mod apply;
pub mod decoder;
mod durable;
mod explain;
mod feed;
mod observe;
pub mod plan;
mod reconcile;
mod relations;
mod setup;
mod snapshot;
pub use setup::record_last_error;
mod streamed;
mod table_watch;
mod tables;

use std::time::Duration;

use ferry_pgwire::{ConnParams, ReplicationClient};
use tokio::sync::watch;

use crate::error::SyncError;
use crate::full_sync::FullSyncOptions;
use crate::progress::Progress;
use apply::Applier;

/// The prefix of Ferry's heartbeat messages in the source's WAL.
pub const HEARTBEAT_PREFIX: &str = "ferry.heartbeat";

/// When a group of source transactions commits on the target, at the latest: whichever
/// bound is reached first (the group also commits whenever no message is waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_rows: u64,
    pub max_bytes: usize,
    pub max_delay: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_rows: 10_000,
            max_bytes: 16 << 20,
            // The oldest transaction of a group waits at most this long for its commit:
            // under a steady load the input is rarely empty, so this bound is the lag.
            max_delay: Duration::from_millis(20),
        }
    }
}

/// How an incremental pipeline runs.
#[derive(Debug, Clone)]
pub struct StreamSyncOptions {
    /// The initial copy; its snapshot source is replaced by the slot.
    pub full: FullSyncOptions,
    /// Copy first (`full+incremental`) or only stream (`incremental`).
    pub copy_first: bool,
    pub slot: String,
    /// The output plugin the slot decodes with.
    pub plugin: ferry_postgres::Plugin,
    /// The publication (pgoutput only).
    pub publication: String,
    pub pipeline: String,
    pub progress_schema: String,
    /// Ask PostgreSQL 14+ to stream large transactions before they commit (protocol 2),
    /// applied as they arrive. Turned off after a lock conflict between a streamed
    /// transaction and the rest ([`SyncError::needs_safe_mode`]).
    pub streaming: bool,
    /// Write consecutive row changes of one kind to one table as one statement
    /// ([`ferry_postgres::sink::batch`]). Turned off after an integrity error in a batch.
    pub coalesce: bool,
    /// How often a heartbeat message is written on the source; `None`: never.
    pub heartbeat: Option<Duration>,
    /// How often the source's tables are listed while streaming, to take in tables created
    /// or created again (`table_watch.rs`); `None`: only at the start.
    pub watch_tables: Option<Duration>,
    pub batch: BatchLimits,
}

/// How a streaming run ended without an error.
enum Ended {
    /// `stop` turned true, or the stream ended.
    Stopped,
    /// The source's tables changed: start over, so the plan takes them in.
    TablesChanged(String),
}

/// What a run with `options` would do at its start, read without changing anything (for
/// `ferry sync --dry-run` and `ferry status`): the plan, or the refusal the run would stop
/// with.
pub async fn plan_stream_sync(options: &StreamSyncOptions) -> Result<plan::Plan, SyncError> {
    let seen = observe::observe(options).await?;
    plan::compute(options, &seen)
}

/// Streams until `stop` turns true; then the group of complete transactions in hand is
/// committed and confirmed, anything incomplete is rolled back (the server sends it again
/// next time), and the function returns.
pub async fn run_stream_sync(
    options: &StreamSyncOptions,
    progress: &Progress,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SyncError> {
    let mut lookup = Some(relations::SourceLookup::new(options.full.source.clone()));
    loop {
        match run_once(options, progress, &mut stop, &mut lookup).await? {
            Ended::Stopped => return Ok(()),
            Ended::TablesChanged(reason) => {
                tracing::info!(pipeline = %options.pipeline, "the source's tables changed ({reason}): starting over to take them in");
                wait_slot_released(options).await;
            }
        }
    }
}

/// One run: observe, plan, act, then stream until stopped or the source's tables change.
async fn run_once(
    options: &StreamSyncOptions,
    progress: &Progress,
    stop: &mut watch::Receiver<bool>,
    lookup: &mut Option<relations::SourceLookup>,
) -> Result<Ended, SyncError> {
    let mut target = setup::session(&options.full.target).await?;
    setup::lock_pipeline(options, &mut target).await?;
    setup::create_progress(options, &mut target).await?;
    tables::create(options, &mut target).await?;
    let seen = observe::observe(options).await?;
    let plan = plan::compute(options, &seen)?;
    for warning in &plan.warnings {
        tracing::warn!(pipeline = %options.pipeline, "{warning}");
    }
    tracing::info!(pipeline = %options.pipeline, "{}", plan.to_string().trim_end());
    let (start, starts) = reconcile::act(options, &plan, &mut target, progress).await?;
    let client = ReplicationClient::connect(&options.full.source)
        .await
        .map_err(|e| SyncError::session("opening a replication connection", e))?;
    let version = client.server_version().0 / 10_000;
    let pgoutput = options.plugin == ferry_postgres::Plugin::Pgoutput;
    // A table added after the copy takes changes from transactions committing after its own
    // copy: that needs each change's commit position, which a streamed transaction lacks.
    let adding = starts.values().any(|s| s.lsn > start);
    let streaming = pgoutput && options.streaming && version >= 14 && !adding;
    let tables = &plan.carried;
    // Only the carried tables are applied: decoderbufs cannot be told which tables, and a
    // publication may publish more than the selection (all tables, whole schemas).
    let accepted = tables.iter().cloned().collect();
    let plugin_options = decoder::plugin_options(
        options.plugin,
        &options.publication,
        version,
        streaming,
        tables,
    );
    let plugin_options: Vec<(&str, &str)> = plugin_options
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    tracing::info!(slot = %options.slot, plugin = options.plugin.name(), lsn = %start, streaming, "streaming");
    let stream = match client
        .start_logical_replication(&options.slot, start, &plugin_options)
        .await
    {
        Ok(stream) => stream,
        Err(e) => return Err(slot_error(options, e).await),
    };
    let _heartbeat = options
        .heartbeat
        .map(|every| AbortOnDrop(tokio::spawn(heartbeat(options.full.source.clone(), every))));
    let decoder =
        decoder::StreamDecoder::new(options.plugin, &options.full.source, tables, start).await?;
    let mut tables_watch = table_watch::TableWatch::start(
        &options.full.source,
        &options.full.tables,
        &plan.oids,
        options.watch_tables,
        pgoutput,
    );
    let mut feed = feed::Feed::start(stream);
    let feedback = feed.feedback();
    let mut apply = Applier::new(
        options,
        target,
        decoder,
        start,
        starts,
        accepted,
        progress.clone(),
    )
    .with_lookup(lookup.take());
    apply.expect_oids(&plan.oids);
    // The stored position may come from an asynchronous commit the target has not flushed:
    // it is confirmed like any other commit, once the target's flush passes it.
    apply.resume_from_stored(&feedback).await?;
    let result = apply_loop(&mut apply, &mut feed, &feedback, stop, &mut tables_watch).await;
    match result {
        Ok(ended) => {
            apply.finish(&feedback).await;
            feed.finish().await;
            apply.mark_copies().await?;
            *lookup = Some(apply.into_lookup());
            Ok(ended)
        }
        Err(e) => {
            *lookup = Some(apply.into_lookup());
            after_failure(options, &plan.oids, pgoutput, e).await
        }
    }
}

/// What a run whose applying failed with `e` does: nothing of the failed group is kept
/// (its target transaction is gone with the error). A label the target's enum lacks is
/// added, and a change of the source's tables taken in, by starting over; any other error
/// stops the run, explained where its cause is known.
async fn after_failure(
    options: &StreamSyncOptions,
    oids: &[(ferry_core::TableName, u32)],
    pgoutput: bool,
    e: SyncError,
) -> Result<Ended, SyncError> {
    if e.is_missing_enum_label() {
        match relations::add_enum_labels(&options.full.source, &options.full.target).await {
            Ok(0) => {}
            Ok(added) => {
                return Ok(Ended::TablesChanged(format!(
                    "{added} enum label(s) added on the source were added on the target"
                )))
            }
            Err(other) => {
                tracing::warn!(error = %format!("{other:#}"), "adding the source's enum labels on the target failed");
            }
        }
    }
    if options.watch_tables.is_some() {
        if let Some(reason) =
            table_watch::check_now(&options.full.source, &options.full.tables, oids, pgoutput).await
        {
            tracing::warn!(error = %format!("{e:#}"), "applying failed after the source's tables changed");
            return Ok(Ended::TablesChanged(reason));
        }
    }
    Err(explain::explain(options, e).await)
}

/// Applies what the feed delivers until the stream ends, `stop`, the source's tables change,
/// or an error.
async fn apply_loop(
    apply: &mut Applier<'_>,
    feed: &mut feed::Feed,
    feedback: &feed::Feedback,
    stop: &mut watch::Receiver<bool>,
    tables_watch: &mut table_watch::TableWatch,
) -> Result<Ended, SyncError> {
    // When the target's flush is next read. A deadline kept across messages, not a sleep
    // made anew for each: messages faster than the poll (a source shutting down asks for a
    // reply to a keepalive after every reply) would otherwise starve it, and the commits
    // waiting for it would never be confirmed.
    let mut flush_due: Option<tokio::time::Instant> = None;
    loop {
        // The run ends where it is: `finish` commits the complete transactions in hand and
        // rolls back a half-read one, which the next run is sent again.
        if let Some(reason) = apply.tables_changed().or_else(|| tables_watch.reason()) {
            return Ok(Ended::TablesChanged(reason));
        }
        let received = if apply.has_pending_group() && !apply.group_is_full() {
            // Take whatever is already waiting into the group; commit it once nothing is.
            match feed.try_recv()? {
                Some(received) => Some(received),
                None => {
                    apply.commit_group(feedback).await?;
                    continue;
                }
            }
        } else if apply.has_pending_group() {
            apply.commit_group(feedback).await?;
            continue;
        } else if apply.awaits_flush() {
            let due = *flush_due.get_or_insert_with(|| tokio::time::Instant::now() + durable::POLL);
            tokio::select! {
                biased;
                _ = stop.changed() => None,
                () = tables_watch.changed() => continue,
                () = tokio::time::sleep_until(due) => {
                    flush_due = None;
                    apply.poll_flush(feedback).await?;
                    continue;
                }
                received = feed.recv() => received?,
            }
        } else {
            tokio::select! {
                biased;
                _ = stop.changed() => None,
                () = tables_watch.changed() => continue,
                received = feed.recv() => received?,
            }
        };
        let Some(received) = received else {
            return Ok(Ended::Stopped);
        };
        apply.handle(received.message, feedback).await?;
        if *stop.borrow() {
            return Ok(Ended::Stopped);
        }
    }
}

/// Writes a non-transactional logical message on the source every `every`, so the slot's
/// stream carries a position to confirm even when the published tables are idle while the
/// cluster writes WAL elsewhere. Failures are logged and retried at the next beat.
async fn heartbeat(source: ConnParams, every: Duration) {
    let mut client = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if client.is_none() {
            match ferry_pgwire::connect_sql(&source).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat: cannot connect to the source");
                    continue;
                }
            }
        }
        let Some(c) = client.as_ref() else { continue };
        if let Err(e) = c
            .execute(
                "SELECT pg_logical_emit_message(false, $1, '')",
                &[&HEARTBEAT_PREFIX],
            )
            .await
        {
            tracing::warn!(error = %e, "heartbeat: pg_logical_emit_message failed");
            client = None;
        }
    }
}

/// START_REPLICATION failed: a slot that is gone or invalidated is fatal and says how to
/// resync. Decided by SQLSTATE and the slot's catalog row, never by message text (which
/// follows the server's `lc_messages`): 42704 is a missing slot; 55000 (object not in
/// prerequisite state) is also raised for a slot in use, so the catalog says which.
async fn slot_error(options: &StreamSyncOptions, e: ferry_pgwire::Error) -> SyncError {
    let code = e.as_db_error().map(|d| d.code().to_owned());
    let problem = match code.as_deref() {
        Some("42704") => Some("does not exist".to_owned()),
        Some("55000") => slot_invalidation(options).await,
        _ => None,
    };
    match problem {
        Some(problem) => SyncError::SlotGone {
            slot: options.slot.clone(),
            problem,
            pipeline: options.pipeline.clone(),
            progress_schema: ferry_core::quote_ident(&options.progress_schema),
        },
        None => SyncError::session("starting replication from the slot", e),
    }
}

/// Why the server invalidated the run's slot, read from the catalog; `None` when it did not
/// or when the catalog cannot be read (the original error is then reported as it is).
async fn slot_invalidation(options: &StreamSyncOptions) -> Option<String> {
    let client = ferry_pgwire::connect_sql(&options.full.source).await.ok()?;
    let info = ferry_postgres::catalog::server_info(&client).await.ok()?;
    let slot = ferry_postgres::catalog::slot(&client, info.version_num, &options.slot)
        .await
        .ok()??;
    slot.invalidation()
}

/// Waits (up to 30 s) until no walsender holds the run's slot: the connection of the run
/// that just ended lets go of it a moment after it closed.
async fn wait_slot_released(options: &StreamSyncOptions) {
    let Ok((client, _)) = setup::source_catalog(options).await else {
        return;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let active = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&options.slot],
            )
            .await;
        if !matches!(active, Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends a background task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
