//! `ferry status`: where each pipeline stands, from what the target and the source record,
//! so it works whether or not a `ferry sync` is running (and from another machine).
//!
//! - **Target**: the progress row (last applied position and when, the last error a run
//!   stored) and the table record (tables being copied).
//! - **Source**: the slot (active and by whom, `wal_status`, WAL it retains) and how far
//!   its confirmed position is behind the source's current WAL position.
//!
//! While streaming, the rate is sampled over one second from the progress row's running
//! total; while copying, each selected table's size on the target is shown against the
//! source's.
//!
//! The phase follows from those: `not started` (no progress row), `copying` (the initial
//! copy's 0/0 marker, or tables being added), `streaming` (slot active), `stopped`, or
//! `slot missing` / `slot lost`, which need a resync (exit status 1).

use std::process::ExitCode;

use ferry_core::quote_ident;
use ferry_postgres::catalog::{self, SlotInfo};
use serde::Serialize;

use crate::config::{Config, PipelineConfig, SyncMode};

#[derive(Debug, Default, Serialize)]
pub(crate) struct Status {
    pipeline: String,
    mode: String,
    plugin: String,
    phase: String,
    applied_lsn: Option<String>,
    applied_at: Option<String>,
    /// When the last applied transaction committed on the source.
    source_commit_time: Option<String>,
    /// Seconds since that source commit (since the apply, before it was recorded).
    pub(crate) seconds_since_applied: Option<f64>,
    pub(crate) slot: Option<SlotStatus>,
    pub(crate) lag_bytes: Option<i64>,
    tables: Option<i64>,
    tables_copying: Option<i64>,
    /// Totals since the pipeline began, and the rate over a one-second sample.
    transactions_applied: Option<i64>,
    changes_applied: Option<i64>,
    changes_per_second: Option<f64>,
    /// While copying: each table's bytes on the target against the source.
    copy_progress: Vec<TableCopy>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    /// What could not be read, if anything.
    problems: Vec<String>,
    /// The SQL that starts a resync, when one is needed.
    fix: Option<String>,
    /// What the next start of a streaming pipeline would do (`ferry sync --dry-run`), or
    /// why it would refuse to start.
    next_start: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TableCopy {
    table: String,
    target_bytes: i64,
    source_bytes: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct SlotStatus {
    name: String,
    active: bool,
    active_pid: Option<i32>,
    confirmed_flush_lsn: Option<String>,
    wal_status: Option<String>,
    /// Why the server invalidated the slot (`wal_removed`, `rows_removed`, ...), if it did.
    invalidated: Option<String>,
    pub(crate) retained_bytes: Option<i64>,
}

/// Prints the status of each pipeline (or `--pipeline NAME`).
pub async fn run(config: &Config, json: bool, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut healthy = true;
    let mut all = Vec::new();
    for pipeline in config.select(only)? {
        let status = status(pipeline).await;
        healthy &= !matches!(status.phase.as_str(), "slot missing" | "slot lost");
        all.push(status);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for status in &all {
            print(status);
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) async fn status(pipeline: &PipelineConfig) -> Status {
    let mut s = Status {
        pipeline: pipeline.name.clone(),
        mode: pipeline.sync.mode.to_string(),
        plugin: pipeline.source.plugin.name().to_owned(),
        ..Status::default()
    };
    let progress = read_target(pipeline, &mut s).await;
    if pipeline.sync.uses_slot() {
        read_source(pipeline, &mut s).await;
    }
    s.phase = phase(pipeline, &s, progress).to_owned();
    match s.phase.as_str() {
        "streaming" => sample_rate(pipeline, &mut s).await,
        "copying" | "copying added tables" => copy_progress(pipeline, &mut s).await,
        _ => {}
    }
    if pipeline.sync.uses_slot() && pipeline.sync.mode != SyncMode::Full {
        let options = super::sync::stream_options(pipeline);
        s.next_start = match ferry_runtime::plan_stream_sync(&options).await {
            Ok(plan) => plan
                .to_string()
                .lines()
                .skip(1)
                .map(|l| l.trim().to_owned())
                .collect(),
            Err(e) => vec![format!("refused: {}", ferry_pgwire::error_chain(&e))],
        };
    }
    if matches!(s.phase.as_str(), "slot missing" | "slot lost") {
        s.fix = Some(format!(
            "the changes since the last applied position are gone: resync with \
             DELETE FROM {}.progress WHERE pipeline = '{}'; on the target, then ferry sync \
             with on_existing = \"truncate\"",
            quote_ident(&pipeline.target.progress_schema),
            pipeline.name
        ));
    }
    s
}

/// Reads the progress row and table record; returns whether a progress row exists.
async fn read_target(pipeline: &PipelineConfig, s: &mut Status) -> bool {
    let client = match ferry_pgwire::connect_sql(&pipeline.target.conn).await {
        Ok(client) => client,
        Err(e) => {
            s.problems.push(format!("target: {e}"));
            return false;
        }
    };
    let schema = quote_ident(&pipeline.target.progress_schema);
    // row_to_json reads the columns a progress table of any version has.
    let row = client
        .query_opt(
            &format!(
                "SELECT row_to_json(p)::text,
                        extract(epoch FROM now() - coalesce(
                            (row_to_json(p)->>'source_commit_time')::timestamptz, p.updated_at))::float8
                 FROM {schema}.progress p WHERE pipeline = $1"
            ),
            &[&pipeline.name],
        )
        .await;
    let Ok(Some(row)) = row else {
        return false;
    };
    let fields: serde_json::Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap_or_default();
    let text = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    s.applied_lsn = text("lsn");
    s.applied_at = text("updated_at");
    s.source_commit_time = text("source_commit_time");
    s.seconds_since_applied = row.get(1);
    s.last_error = text("last_error");
    s.last_error_at = text("last_error_at");
    let number = |k: &str| fields.get(k).and_then(serde_json::Value::as_i64);
    s.transactions_applied = number("transactions_applied");
    s.changes_applied = number("changes_applied");
    if let Ok(row) = client
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE start_lsn IS NULL)
                 FROM {schema}.tables WHERE pipeline = $1"
            ),
            &[&pipeline.name],
        )
        .await
    {
        s.tables = Some(row.get(0));
        s.tables_copying = Some(row.get(1));
    }
    true
}

async fn read_source(pipeline: &PipelineConfig, s: &mut Status) {
    let client = match ferry_pgwire::connect_sql(&pipeline.source.conn).await {
        Ok(client) => client,
        Err(e) => {
            s.problems.push(format!("source: {e}"));
            return;
        }
    };
    let version = match catalog::server_info(&client).await {
        Ok(info) => info.version_num,
        Err(e) => {
            s.problems.push(format!("source: {e}"));
            return;
        }
    };
    match catalog::slot(&client, version, &pipeline.source.slot).await {
        Ok(Some(slot)) => {
            if let Some(confirmed) = &slot.confirmed_flush_lsn {
                let current = if version >= 100_000 {
                    "pg_current_wal_lsn()"
                } else {
                    "pg_current_xlog_location()"
                };
                if let Ok(row) = client
                    .query_one(
                        &format!("SELECT ({current} - $1::text::pg_lsn)::int8"),
                        &[confirmed],
                    )
                    .await
                {
                    s.lag_bytes = Some(row.get(0));
                }
            }
            s.slot = Some(slot_status(slot));
        }
        Ok(None) => {}
        Err(e) => s.problems.push(format!("source: {e}")),
    }
}

/// Changes per second over one second, from the progress row's running total.
async fn sample_rate(pipeline: &PipelineConfig, s: &mut Status) {
    let Some(before) = s.changes_applied else {
        return;
    };
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let Ok(client) = ferry_pgwire::connect_sql(&pipeline.target.conn).await else {
        return;
    };
    let schema = quote_ident(&pipeline.target.progress_schema);
    if let Ok(row) = client
        .query_one(
            &format!("SELECT changes_applied FROM {schema}.progress WHERE pipeline = $1"),
            &[&pipeline.name],
        )
        .await
    {
        let after: i64 = row.get(0);
        s.changes_per_second = Some((after - before) as f64 / started.elapsed().as_secs_f64());
    }
}

/// Each selected table's size on the target against the source, while a copy runs.
async fn copy_progress(pipeline: &PipelineConfig, s: &mut Status) {
    let (Ok(source), Ok(target)) = (
        ferry_pgwire::connect_sql(&pipeline.source.conn).await,
        ferry_pgwire::connect_sql(&pipeline.target.conn).await,
    ) else {
        return;
    };
    let Ok(rows) = source
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             ORDER BY pg_table_size(c.oid) DESC",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let table = ferry_core::TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !pipeline.source.tables.matches(&table) {
            continue;
        }
        let target_bytes = target
            .query_one(
                "SELECT coalesce(pg_table_size(to_regclass($1)), 0)",
                &[&table.quoted()],
            )
            .await
            .map_or(0, |r| r.get(0));
        s.copy_progress.push(TableCopy {
            table: table.to_string(),
            target_bytes,
            source_bytes: row.get(2),
        });
    }
}

fn slot_status(slot: SlotInfo) -> SlotStatus {
    SlotStatus {
        name: slot.name,
        active: slot.active,
        active_pid: slot.active_pid,
        confirmed_flush_lsn: slot.confirmed_flush_lsn,
        wal_status: slot.wal_status,
        invalidated: slot.invalidated,
        retained_bytes: slot.retained_bytes,
    }
}

fn phase(pipeline: &PipelineConfig, s: &Status, progress: bool) -> &'static str {
    if !progress {
        return "not started";
    }
    if pipeline.sync.mode == SyncMode::Timestamp {
        return "polling (timestamp mode)";
    }
    if s.applied_lsn.as_deref() == Some("0/0") {
        return "copying";
    }
    match &s.slot {
        None if pipeline.sync.uses_slot() && s.problems.is_empty() => "slot missing",
        Some(slot) if slot.invalidated.is_some() => "slot lost",
        _ if s.tables_copying.unwrap_or(0) > 0 => "copying added tables",
        Some(slot) if slot.active => "streaming",
        _ => "stopped",
    }
}

fn print(s: &Status) {
    println!("pipeline {} ({}, {})", s.pipeline, s.mode, s.plugin);
    println!("  phase:      {}", s.phase);
    if let Some(lsn) = &s.applied_lsn {
        let ago = s
            .seconds_since_applied
            .map(|x| format!(" ({x:.0} s ago)"))
            .unwrap_or_default();
        match &s.source_commit_time {
            Some(commit) => {
                println!("  applied:    {lsn}, committed on the source at {commit}{ago}")
            }
            None => println!(
                "  applied:    {lsn} at {}{ago}",
                s.applied_at.as_deref().unwrap_or("?")
            ),
        }
    }
    if let Some(slot) = &s.slot {
        let activity = match (slot.active, slot.active_pid) {
            (true, Some(pid)) => format!("active (pid {pid})"),
            (true, None) => "active".to_owned(),
            _ => "inactive".to_owned(),
        };
        println!(
            "  slot:       {} {activity}, wal_status {}, retains {}",
            slot.name,
            slot.wal_status.as_deref().unwrap_or("-"),
            slot.retained_bytes.map_or("?".to_owned(), bytes)
        );
    }
    if let Some(lag) = s.lag_bytes {
        println!("  lag:        {} of WAL behind the source", bytes(lag));
    }
    if let (Some(txns), Some(changes)) = (s.transactions_applied, s.changes_applied) {
        let rate = s
            .changes_per_second
            .map(|r| format!("; {r:.0} changes/s now"))
            .unwrap_or_default();
        println!("  applied:    {txns} transactions, {changes} changes so far{rate}");
    }
    for copy in &s.copy_progress {
        let percent = if copy.source_bytes > 0 {
            (copy.target_bytes as f64 / copy.source_bytes as f64 * 100.0).min(100.0)
        } else {
            100.0
        };
        println!(
            "  copy:       {} {percent:.0}% ({} of {})",
            copy.table,
            bytes(copy.target_bytes),
            bytes(copy.source_bytes)
        );
    }
    if let (Some(tables), Some(copying)) = (s.tables, s.tables_copying) {
        println!("  tables:     {tables} ({copying} being copied)");
    }
    if let Some(error) = &s.last_error {
        println!(
            "  last error: {error} (at {})",
            s.last_error_at.as_deref().unwrap_or("?")
        );
    }
    if let Some(fix) = &s.fix {
        println!("  fix:        {fix}");
    }
    for (i, step) in s.next_start.iter().enumerate() {
        let label = if i == 0 { "next start:" } else { "" };
        println!("  {label:<11} {step}");
    }
    for problem in &s.problems {
        println!("  could not read: {problem}");
    }
}

fn bytes(n: i64) -> String {
    match n {
        n if n < 10 << 10 => format!("{n} B"),
        n if n < 10 << 20 => format!("{} kB", n >> 10),
        n if n < 10 << 30 => format!("{} MB", n >> 20),
        n => format!("{} GB", n >> 30),
    }
}
