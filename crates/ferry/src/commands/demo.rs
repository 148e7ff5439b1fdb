//! `ferry demo`: the whole product in one command, on nothing but the installed PostgreSQL.
//!
//! It starts two throwaway local clusters (source and target, from `ferry-testkit`), creates
//! a small shop schema with the shapes that are hard to replicate (a TOASTed column, a
//! keyless table with REPLICA IDENTITY FULL, an enum, an identity column), runs a live
//! workload on the source, and runs a `full+incremental` pipeline between them with the
//! usual progress. After `--duration` (or on Ctrl-C) the workload stops, the pipeline
//! catches up and stops, `ferry verify`'s comparison runs, and both clusters are deleted.

mod workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_pgwire::ConnParams;
use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::verify::{verify, VerifyOptions};
use ferry_postgres::{Plugin, TableSelection};
use ferry_runtime::{
    run_stream_sync, BatchLimits, FullSyncOptions, Progress, SnapshotSource, StreamSyncOptions,
};
use ferry_testkit::TempCluster;

/// Runs the demo for `duration` (or until Ctrl-C) with `orders` rows to start from,
/// decoding with `plugin`.
pub async fn run(duration: Duration, orders: u32, plugin: Plugin) -> anyhow::Result<ExitCode> {
    eprintln!("starting two throwaway PostgreSQL clusters (source and target)...");
    let (source, target) = tokio::task::spawn_blocking(|| {
        Ok::<_, anyhow::Error>((
            TempCluster::new().context("starting the source cluster")?,
            TempCluster::new().context("starting the target cluster")?,
        ))
    })
    .await??;
    eprintln!("  source: {}", source.admin_url());
    eprintln!("  target: {}", target.admin_url());
    let source_admin = source.admin_client().await;
    eprintln!("creating the sample schema with {orders} orders...");
    workload::create_schema(&source_admin, orders).await?;

    let stop_workload = Arc::new(AtomicBool::new(false));
    let transactions = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(workload::run(
        source.admin_client().await,
        orders,
        stop_workload.clone(),
        transactions.clone(),
    ));

    let options = pipeline(&source, &target, plugin)?;
    let (stop_sync, stop_rx) = tokio::sync::watch::channel(false);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let display = tokio::spawn(crate::progress::display(receiver));
    let sync_options = options.clone();
    let sync = tokio::spawn(async move {
        run_stream_sync(&sync_options, &Progress::to(sender), stop_rx).await
    });

    let interrupted = watch_live(&source_admin, &transactions, duration, &sync).await;
    stop_workload.store(true, Ordering::Relaxed);
    let written = writer.await?.context("the demo workload failed")?;
    if !interrupted && !sync.is_finished() {
        eprintln!(
            "workload stopped after {written} transactions; letting the pipeline catch up..."
        );
        wait_caught_up(&source_admin, &options.slot, &sync).await?;
    }
    let _ = stop_sync.send(true);
    sync.await?.context("the demo pipeline failed")?;
    let _ = display.await;

    if interrupted {
        eprintln!("interrupted: deleting both clusters");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("comparing source and target (ferry verify)...");
    let report = verify(
        &options.full.source,
        &options.full.target,
        &options.full.tables,
        &VerifyOptions::default(),
    )
    .await?;
    println!("{report}");
    let equal = report.is_equal();
    println!(
        "{}",
        if equal {
            "demo done: the target equals the source. Both clusters are deleted now."
        } else {
            "demo done: DIFFERENCES FOUND (a bug: please report it with the output above)."
        }
    );
    Ok(if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo pipeline: every table of schema `shop`, default settings.
fn pipeline(
    source: &TempCluster,
    target: &TempCluster,
    plugin: Plugin,
) -> anyhow::Result<StreamSyncOptions> {
    Ok(StreamSyncOptions {
        full: FullSyncOptions {
            source: ConnParams::parse(&source.admin_url())?,
            target: ConnParams::parse(&target.admin_url())?,
            tables: TableSelection::parse(&["shop.*".to_owned()], &[])
                .map_err(anyhow::Error::msg)?,
            workers: 2,
            snapshot: SnapshotSource::Export,
            on_existing: OnExisting::Error,
            split_bytes: ferry_postgres::source::snapshot::DEFAULT_SPLIT_BYTES,
            beside: Vec::new(),
        },
        copy_first: true,
        slot: "ferry_demo".into(),
        plugin,
        publication: "ferry_demo".into(),
        pipeline: "demo".into(),
        progress_schema: "ferry".into(),
        streaming: true,
        coalesce: true,
        heartbeat: Some(Duration::from_secs(1)),
        watch_tables: Some(Duration::from_secs(5)),
        batch: BatchLimits::default(),
    })
}

/// Prints how far behind the target is every 2 s until `duration` passes, Ctrl-C (returns
/// true) or the pipeline ends on its own.
async fn watch_live(
    source: &tokio_postgres::Client,
    transactions: &AtomicU64,
    duration: Duration,
    sync: &tokio::task::JoinHandle<Result<(), ferry_runtime::SyncError>>,
) -> bool {
    let end = Instant::now() + duration;
    let mut ticks = tokio::time::interval(Duration::from_secs(2));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return true,
            _ = ticks.tick() => {}
        }
        if sync.is_finished() || Instant::now() >= end {
            return false;
        }
        if let Ok(Some(lag)) = slot_lag(source, "ferry_demo").await {
            eprintln!(
                "live: {} source transactions so far; target is {} behind",
                transactions.load(Ordering::Relaxed),
                human_bytes(lag)
            );
        }
    }
}

/// Bytes of WAL between the source's current position and what the slot has confirmed.
async fn slot_lag(client: &tokio_postgres::Client, slot: &str) -> anyhow::Result<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8
             FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Waits until the slot has confirmed everything the source wrote before this call.
async fn wait_caught_up(
    client: &tokio_postgres::Client,
    slot: &str,
    sync: &tokio::task::JoinHandle<Result<(), ferry_runtime::SyncError>>,
) -> anyhow::Result<()> {
    let row = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?;
    let end: String = row.get(0);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !sync.is_finished() && Instant::now() < deadline {
        let done: Option<bool> = client
            .query_opt(
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
                &[&end, &slot],
            )
            .await?
            .and_then(|r| r.get(0));
        if done == Some(true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn human_bytes(bytes: i64) -> String {
    match bytes {
        b if b < 10 << 10 => format!("{b} B"),
        b if b < 10 << 20 => format!("{} kB", b >> 10),
        b => format!("{} MB", b >> 20),
    }
}
