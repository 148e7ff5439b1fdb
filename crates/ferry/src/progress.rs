//! Showing a running sync: progress bars on a terminal, periodic log lines elsewhere.
//!
//! The runtime sends [`SyncEvent`]s; this module turns them into what a person watches. On a
//! terminal: one bar for the whole copy (bytes, rate, ETA, tables done) and one per table
//! being copied. Without a terminal (systemd, CI, a pipe): one `info` line every few
//! seconds with the same numbers, so a log shows progress without a flood.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_core::TableName;
use ferry_runtime::SyncEvent;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

/// How often a log line goes out without a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The bars being drawn, if any: log lines must go around them, not through them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// A `tracing` writer for stderr that hides the progress bars while a line is written, so
/// log lines and bars do not garble each other.
#[derive(Default)]
pub struct LogWriter {
    line: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.line);
        let write = || {
            let _ = std::io::stderr().write_all(&line);
        };
        match BARS.get() {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

/// Consumes events until the sender is dropped.
pub async fn display(mut events: UnboundedReceiver<SyncEvent>) {
    if std::io::stderr().is_terminal() {
        let mut bars = Bars::new();
        let _ = BARS.set(bars.multi.clone());
        while let Some(event) = events.recv().await {
            bars.handle(event);
        }
        bars.clear();
    } else {
        let mut log = LogLines::default();
        while let Some(event) = events.recv().await {
            log.handle(event);
        }
    }
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    tables: HashMap<TableName, ProgressBar>,
    tables_total: usize,
    tables_done: usize,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("copy");
        Bars {
            multi,
            overall,
            tables: HashMap::new(),
            tables_total: 0,
            tables_done: 0,
        }
    }

    fn handle(&mut self, event: SyncEvent) {
        match event {
            SyncEvent::Planned {
                tables,
                estimated_bytes,
                ..
            } => {
                self.tables_total = tables;
                self.overall.set_length(estimated_bytes);
                self.overall.set_message(format!("0/{tables} tables"));
            }
            SyncEvent::TableStarted {
                table,
                estimated_bytes,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new(estimated_bytes));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {msg:40} {bytes:>10} {binary_bytes_per_sec:>12}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(table.to_string());
                self.tables.insert(table, bar);
            }
            SyncEvent::Bytes { table, bytes } => {
                self.overall.inc(bytes);
                if let Some(bar) = self.tables.get(&table) {
                    bar.inc(bytes);
                }
            }
            SyncEvent::TableFinished { table, rows, .. } => {
                self.tables_done += 1;
                if let Some(bar) = self.tables.remove(&table) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let _ = self.multi.println(format!("  done {table}: {rows} rows"));
                self.overall
                    .set_message(format!("{}/{} tables", self.tables_done, self.tables_total));
            }
            SyncEvent::BuildingIndexes => {
                // Estimates are relation sizes, not COPY bytes: the copy is done whatever
                // the count says.
                self.overall
                    .set_position(self.overall.length().unwrap_or_default());
                self.overall.set_message(format!(
                    "{}/{} tables; building the remaining indexes and constraints",
                    self.tables_done, self.tables_total
                ));
            }
            SyncEvent::Finished(_) => self.overall.finish_and_clear(),
            SyncEvent::Applied { .. } => {}
        }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

#[derive(Default)]
struct LogLines {
    tables_total: usize,
    tables_done: usize,
    bytes: u64,
    estimated: u64,
    started: Option<Instant>,
    last: Option<Instant>,
}

impl LogLines {
    fn handle(&mut self, event: SyncEvent) {
        match event {
            SyncEvent::Planned {
                tables,
                estimated_bytes,
                chunks,
            } => {
                self.tables_total = tables;
                self.estimated = estimated_bytes;
                self.started = Some(Instant::now());
                tracing::info!(tables, chunks, estimated_bytes, "copy planned");
            }
            SyncEvent::TableStarted { table, .. } => {
                tracing::info!(table = %table, "table copy started");
            }
            SyncEvent::Bytes { bytes, .. } => {
                self.bytes += bytes;
                let now = Instant::now();
                if self.last.is_none_or(|last| now - last >= LOG_EVERY) {
                    self.last = Some(now);
                    let secs = self.started.map_or(0.0, |s| (now - s).as_secs_f64());
                    let rate = if secs > 0.0 {
                        self.bytes as f64 / 1e6 / secs
                    } else {
                        0.0
                    };
                    tracing::info!(
                        tables_done = self.tables_done,
                        tables = self.tables_total,
                        mb = format!("{:.1}", self.bytes as f64 / 1e6),
                        estimated_mb = format!("{:.1}", self.estimated as f64 / 1e6),
                        mb_per_s = format!("{rate:.1}"),
                        "copying"
                    );
                }
            }
            SyncEvent::TableFinished { table, rows, .. } => {
                self.tables_done += 1;
                tracing::info!(table = %table, rows, "table copied");
            }
            SyncEvent::BuildingIndexes => {
                tracing::info!("copy done; building the remaining indexes and constraints");
            }
            SyncEvent::Finished(_) | SyncEvent::Applied { .. } => {}
        }
    }
}
