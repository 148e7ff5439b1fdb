//! `ferry sync`: run a pipeline's sync with progress, then print a summary.
//!
//! `mode = "full"` copies every selected table from one consistent snapshot and builds the
//! target's indexes. `mode = "timestamp"` does the same copy, then polls each table by its
//! last-updated column until SIGINT or SIGTERM, which finish the batch in flight and exit 0.
//! `full+incremental` and `incremental` copy (or not), then stream (any plugin) until SIGINT
//! or SIGTERM, retrying transient failures.

use std::process::ExitCode;

use anyhow::{bail, Context};
use ferry_postgres::schema::create::OnExisting as SchemaOnExisting;
use ferry_runtime::{
    run_full_sync, run_stream_sync, run_timestamp_sync, FullSyncOptions, Progress, SnapshotSource,
    StreamSyncOptions, TimestampSyncOptions,
};

use crate::config::{Config, OnExisting, PipelineConfig, SyncMode};

pub(crate) mod guard;

/// Tables above this size are split among workers.
const SPLIT_BYTES: i64 = ferry_postgres::source::snapshot::DEFAULT_SPLIT_BYTES;

/// Prints what the sync of one pipeline would do at its start, changing nothing: the plan
/// of a streaming pipeline (exit 0) or the refusal it would stop with (exit 1); for the
/// copy-only modes, the tables the patterns select and the patterns that match nothing.
pub async fn dry_run(config: &Config, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let pipeline = select(config, only)?;
    if pipeline.sync.uses_slot() && pipeline.sync.mode != SyncMode::Full {
        return match ferry_runtime::plan_stream_sync(&stream_options(pipeline)).await {
            Ok(plan) => {
                print!("{plan}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!(
                    "pipeline {:?} would not start: {}",
                    pipeline.name,
                    chain(&e)
                );
                Ok(ExitCode::from(1))
            }
        };
    }
    let client = ferry_pgwire::connect_sql(&pipeline.source.conn)
        .await
        .context("connecting to the source")?;
    let info = ferry_postgres::catalog::server_info(&client).await?;
    let selection =
        ferry_postgres::read_selection(&client, info.version_num, &pipeline.source.tables).await?;
    println!(
        "plan of pipeline {:?} (mode {}):",
        pipeline.name, pipeline.sync.mode
    );
    println!(
        "  copy {} tables from one snapshot{}",
        selection.tables.len(),
        if pipeline.sync.mode == SyncMode::Timestamp {
            ", then poll them by timestamp"
        } else {
            ""
        }
    );
    for table in &selection.tables {
        println!("    {}", table.info.name);
    }
    for warning in selection.unmatched_warnings() {
        println!("  warning: {warning}");
    }
    Ok(if selection.tables.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the sync of one pipeline (the only one, or `--pipeline NAME`).
pub async fn run(config: &Config, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let pipeline = select(config, only)?;
    match pipeline.sync.mode {
        SyncMode::Full => {}
        SyncMode::Timestamp => return run_timestamp(pipeline).await,
        SyncMode::Incremental | SyncMode::FullAndIncremental => return run_stream(pipeline).await,
    }
    let options = full_sync_options(pipeline);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let display = tokio::spawn(crate::progress::display(receiver));
    let result = run_full_sync(&options, &Progress::to(sender)).await;
    // The sender is gone with the sync; the display drains and exits.
    let _ = display.await;
    let summary =
        result.with_context(|| format!("full sync of pipeline {:?} failed", pipeline.name))?;
    println!("{summary}");
    if let (Some(lsn), true) = (summary.consistent_point, pipeline.sync.keep_slot) {
        println!(
            "slot {:?} kept at {lsn}: incremental sync continues from there",
            pipeline.source.slot
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_timestamp(pipeline: &PipelineConfig) -> anyhow::Result<ExitCode> {
    let settings = &pipeline.sync.timestamp;
    let options = TimestampSyncOptions {
        full: full_sync_options(pipeline),
        pipeline: pipeline.name.clone(),
        progress_schema: pipeline.target.progress_schema.clone(),
        default_column: pipeline.source.timestamp_column.clone(),
        columns: pipeline.source.timestamp_columns.clone(),
        poll_interval: settings.poll_interval,
        batch_rows: settings.batch_rows,
        max_transaction_age: settings.max_transaction_age,
        reconcile_every: settings
            .reconcile_deletes
            .then_some(settings.reconcile_interval),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping after the batch in flight");
        let _ = stop_tx.send(true);
    });
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let display = tokio::spawn(crate::progress::display(receiver));
    let result = run_timestamp_sync(&options, &Progress::to(sender), stop_rx).await;
    let _ = display.await;
    result.with_context(|| format!("timestamp sync of pipeline {:?} failed", pipeline.name))?;
    Ok(ExitCode::SUCCESS)
}

/// Longest wait between two attempts after a transient failure.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// Copies (unless `incremental`), then streams until SIGINT or SIGTERM. A transient failure
/// (a server restarting, a dropped connection) is retried forever with exponential backoff
/// and jitter, each retry logged; the stored position makes every retry exact.
/// The runtime options of a streaming pipeline.
pub(crate) fn stream_options(pipeline: &PipelineConfig) -> StreamSyncOptions {
    StreamSyncOptions {
        full: full_sync_options(pipeline),
        copy_first: pipeline.sync.mode == SyncMode::FullAndIncremental,
        slot: pipeline.source.slot.clone(),
        plugin: pipeline.source.plugin,
        publication: pipeline.source.publication.clone(),
        pipeline: pipeline.name.clone(),
        progress_schema: pipeline.target.progress_schema.clone(),
        streaming: pipeline.sync.streaming,
        coalesce: true,
        heartbeat: pipeline.sync.heartbeat_interval,
        watch_tables: pipeline.sync.table_check_interval,
        batch: ferry_runtime::BatchLimits::default(),
    }
}

async fn run_stream(pipeline: &PipelineConfig) -> anyhow::Result<ExitCode> {
    let mut options = stream_options(pipeline);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            "stopping: complete transactions are committed, a partial one is sent again next time"
        );
        let _ = on_signal.send(true);
    });
    let verdict = guard::Verdict::default();
    let guard = tokio::spawn(guard::run(
        pipeline.clone(),
        stop_tx.clone(),
        verdict.clone(),
    ));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let display = tokio::spawn(crate::progress::display(receiver));
    let progress = Progress::to(sender);
    let result = run_with_retries(&mut options, &progress, stop_rx, |_| {}).await;
    guard.abort();
    drop(progress);
    let _ = display.await;
    // The guard's reason comes first: the errors its slot drop caused are only its echo.
    let verdict = verdict
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(reason) = verdict {
        ferry_runtime::record_last_error(&options, &reason).await;
        bail!("sync of pipeline {:?} stopped: {reason}", pipeline.name);
    }
    result.with_context(|| format!("sync of pipeline {:?} stopped", pipeline.name))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a streaming pipeline until `stop`, retrying transient failures forever with
/// exponential backoff and jitter (each logged, stored as the last error, and passed to
/// `on_retry`), and switching to safe mode when a failure asks for it.
pub(crate) async fn run_with_retries(
    options: &mut StreamSyncOptions,
    progress: &Progress,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    mut on_retry: impl FnMut(&ferry_runtime::SyncError),
) -> Result<(), ferry_runtime::SyncError> {
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        let outcome = run_stream_sync(options, progress, stop_rx.clone()).await;
        if started.elapsed() > MAX_BACKOFF {
            // It ran a good while: this failure is a new one, not the last one recurring.
            backoff = std::time::Duration::from_secs(1);
        }
        match outcome {
            Ok(()) => break Ok(()),
            Err(e) if e.is_transient() && !*stop_rx.borrow() => {
                ferry_runtime::record_last_error(options, &chain(&e)).await;
                on_retry(&e);
                if e.needs_safe_mode() {
                    tracing::warn!("continuing in safe mode: no streaming of large transactions, one statement per change");
                    options.streaming = false;
                    options.coalesce = false;
                }
                let wait = backoff + jitter(backoff);
                tracing::warn!(error = %chain(&e), retry_in_ms = wait.as_millis() as u64, "transient failure; retrying");
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                ferry_runtime::record_last_error(options, &chain(&e)).await;
                break Err(e);
            }
        }
    }
}

/// An error with its causes: `applying a transaction failed: ERROR: ... (SQLSTATE ...)`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    ferry_pgwire::error_chain(e)
}

/// Up to a quarter of `base`, so that many pipelines do not retry in lockstep.
fn jitter(base: std::time::Duration) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base / 4 * (nanos % 1000) / 1000
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (systemd, kill).
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn select<'a>(config: &'a Config, only: Option<&str>) -> anyhow::Result<&'a PipelineConfig> {
    match only {
        Some(name) => config
            .pipelines
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no pipeline named {name:?} in the config")),
        None if config.pipelines.len() == 1 => Ok(&config.pipelines[0]),
        None => bail!(
            "the config has {} pipelines: choose one with --pipeline NAME",
            config.pipelines.len()
        ),
    }
}

fn full_sync_options(pipeline: &PipelineConfig) -> FullSyncOptions {
    FullSyncOptions {
        source: pipeline.source.conn.clone(),
        target: pipeline.target.conn.clone(),
        tables: pipeline.source.tables.clone(),
        workers: pipeline.sync.snapshot_workers as usize,
        snapshot: if pipeline.sync.uses_slot() {
            SnapshotSource::Slot {
                name: pipeline.source.slot.clone(),
                plugin: pipeline.source.plugin,
                keep: pipeline.sync.keep_slot,
            }
        } else {
            SnapshotSource::Export
        },
        on_existing: match pipeline.sync.on_existing {
            OnExisting::Error => SchemaOnExisting::Error,
            OnExisting::Truncate => SchemaOnExisting::Truncate,
            OnExisting::Append => SchemaOnExisting::Append,
        },
        split_bytes: SPLIT_BYTES,
        beside: Vec::new(),
    }
}
