//! Running the workload: each session on its own connection to the source, sending its
//! [`SessionPlan`]'s transactions one statement at a time until the deadline, and the SQL
//! log every statement goes to, with its session, transaction, time and outcome, so that a
//! failing case can be read and replayed.
//!
//! A failed statement rolls its transaction back (the log says why); a lost connection (the
//! source restarting) is reconnected. Neither is a test failure: the source's end state is
//! whatever committed, and that is what the target must equal.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::workload::SessionPlan;

/// The SQL log of a case: setup, then every workload statement in the order it finished.
pub struct SqlLog {
    out: Mutex<BufWriter<File>>,
    start: Instant,
}

impl SqlLog {
    /// A new log at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(SqlLog {
            out: Mutex::new(BufWriter::new(File::create(path)?)),
            start: Instant::now(),
        })
    }

    /// A comment line.
    pub fn note(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines() {
            let _ = writeln!(out, "-- {line}");
        }
    }

    /// A statement that ran (or failed) on `who`.
    pub fn statement(&self, who: &str, sql: &str, outcome: Result<(), &str>) {
        let at = self.start.elapsed().as_secs_f64();
        let sql = sql.trim_end().trim_end_matches(';');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = match outcome {
            Ok(()) => writeln!(out, "-- {who} +{at:.3}s\n{sql};"),
            Err(e) => writeln!(
                out,
                "-- {who} +{at:.3}s FAILED: {}\n-- {};",
                e.replace('\n', " "),
                sql.replace('\n', "\n-- ")
            ),
        };
    }

    pub fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// What a session did.
#[derive(Clone, Debug, Default)]
pub struct SessionStats {
    pub committed: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub reconnects: u64,
}

/// Runs `plan` against `url` until `deadline` (or `stop`), logging to `log` as `s<index>`.
pub async fn run_session(
    index: usize,
    url: String,
    mut plan: SessionPlan,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<SqlLog>,
) -> SessionStats {
    let mut stats = SessionStats::default();
    let mut txn_no = 0u64;
    'connect: while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let client = match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // A wait longer than this is a lock queue behind a large transaction, not progress.
        if client
            .batch_execute("SET lock_timeout = '10s'; SET statement_timeout = '30s'")
            .await
            .is_err()
        {
            continue;
        }
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            txn_no += 1;
            let txn = plan.next_transaction();
            let who = format!("s{index} t{txn_no} {}", txn.label);
            let in_block = txn.statements.first().is_some_and(|s| s == "BEGIN");
            let mut failed = false;
            for sql in &txn.statements {
                match client.batch_execute(sql).await {
                    Ok(()) => log.statement(&who, sql, Ok(())),
                    Err(e) => {
                        let text = e
                            .as_db_error()
                            .map(|d| format!("{}: {}", d.code().code(), d.message()))
                            .unwrap_or_else(|| e.to_string());
                        log.statement(&who, sql, Err(&text));
                        stats.failed += 1;
                        failed = true;
                        if client.is_closed() {
                            stats.reconnects += 1;
                            continue 'connect;
                        }
                        if in_block {
                            let rollback = client.batch_execute("ROLLBACK").await;
                            log.statement(
                                &who,
                                "ROLLBACK",
                                rollback.as_ref().map(drop).map_err(|_| "rollback failed"),
                            );
                        }
                        break;
                    }
                }
            }
            if !failed {
                match txn.statements.last().map(String::as_str) {
                    Some("ROLLBACK") => stats.rolled_back += 1,
                    _ => stats.committed += 1,
                }
            }
            tokio::time::sleep(Duration::from_millis(plan.think_ms())).await;
        }
    }
    stats
}
