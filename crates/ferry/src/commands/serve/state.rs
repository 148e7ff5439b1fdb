//! The state `ferry serve` keeps per pipeline: fed by the pipeline's progress events and
//! retries, read by the HTTP API and rendered as Prometheus metrics; and the task that runs
//! a pipeline, pausing and resuming it on request.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_runtime::{Progress, SyncEvent};
use serde::Serialize;
use tokio::sync::watch;

use crate::commands::sync::{guard, run_with_retries, stream_options};
use crate::config::PipelineConfig;

/// Upper bounds of the batch-size histogram (changes per target commit).
const BUCKETS: [u64; 5] = [1, 10, 100, 1_000, 10_000];

/// How often the lag is read from the source and the target.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// One pipeline as the API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineState {
    pub name: String,
    pub mode: String,
    pub plugin: String,
    /// `starting`, `streaming`, `paused`, `failed` or `stopped`.
    pub phase: String,
    pub paused: bool,
    pub transactions_applied: u64,
    pub changes_applied: u64,
    pub bytes_applied: u64,
    pub last_applied_lsn: Option<String>,
    pub snapshot_rows: u64,
    pub lag_bytes: Option<i64>,
    /// WAL the slot keeps on the source.
    pub retained_wal_bytes: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub retries: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Commits per batch-size bucket ([`BUCKETS`], then the rest), their sum and count.
    #[serde(skip)]
    batch_buckets: [u64; 6],
    #[serde(skip)]
    batch_sum: u64,
}

/// A pipeline's state, shared between its task and the API.
pub type Handle = Arc<Mutex<PipelineState>>;

fn lock(handle: &Handle) -> std::sync::MutexGuard<'_, PipelineState> {
    handle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every pipeline's state and pause switch.
pub struct Shared {
    token: Option<String>,
    pipelines: Mutex<Vec<(Handle, watch::Sender<bool>)>>,
}

impl Shared {
    pub fn new(token: Option<String>) -> Self {
        Shared {
            token,
            pipelines: Mutex::new(Vec::new()),
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Registers `pipeline`; returns its state and its pause switch.
    pub fn add(&self, pipeline: &PipelineConfig) -> (Handle, watch::Receiver<bool>) {
        let handle = Arc::new(Mutex::new(PipelineState {
            name: pipeline.name.clone(),
            mode: pipeline.sync.mode.to_string(),
            plugin: pipeline.source.plugin.name().to_owned(),
            phase: "starting".into(),
            ..PipelineState::default()
        }));
        let (pause_tx, pause_rx) = watch::channel(false);
        self.list().push((handle.clone(), pause_tx));
        (handle, pause_rx)
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(Handle, watch::Sender<bool>)>> {
        self.pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> Vec<PipelineState> {
        self.list().iter().map(|(h, _)| lock(h).clone()).collect()
    }

    pub fn any_failed(&self) -> bool {
        self.snapshot().iter().any(|p| p.phase == "failed")
    }

    /// Pauses or resumes `name`; false if there is no such pipeline.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let list = self.list();
        let Some((_, switch)) = list.iter().find(|(h, _)| lock(h).name == name) else {
            return false;
        };
        let _ = switch.send(paused);
        true
    }

    /// The Prometheus text format of every pipeline's counters and gauges.
    pub fn metrics(&self) -> String {
        let all = self.snapshot();
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, value: &dyn Fn(&PipelineState) -> Option<f64>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for p in &all {
                    if let Some(v) = value(p) {
                        let _ = writeln!(out, "{name}{{pipeline=\"{}\"}} {v}", p.name);
                    }
                }
            };
        family(
            "ferry_transactions_applied_total",
            "counter",
            "Source transactions applied to the target.",
            &|p| Some(p.transactions_applied as f64),
        );
        family(
            "ferry_changes_applied_total",
            "counter",
            "Row changes applied to the target.",
            &|p| Some(p.changes_applied as f64),
        );
        family(
            "ferry_snapshot_rows_total",
            "counter",
            "Rows copied by initial or added-table copies.",
            &|p| Some(p.snapshot_rows as f64),
        );
        family(
            "ferry_retries_total",
            "counter",
            "Transient failures retried.",
            &|p| Some(p.retries as f64),
        );
        family(
            "ferry_errors_total",
            "counter",
            "Failures that stopped the pipeline.",
            &|p| Some(p.errors as f64),
        );
        family(
            "ferry_lag_bytes",
            "gauge",
            "WAL between the source's position and the slot's confirmed position.",
            &|p| p.lag_bytes.map(|v| v as f64),
        );
        family(
            "ferry_lag_seconds",
            "gauge",
            "Seconds since the last applied commit, while behind.",
            &|p| p.lag_seconds,
        );
        family(
            "ferry_paused",
            "gauge",
            "1 while the pipeline is paused.",
            &|p| Some(f64::from(u8::from(p.paused))),
        );
        let name = "ferry_batch_changes";
        let _ = writeln!(
            out,
            "# HELP {name} Changes per target commit.\n# TYPE {name} histogram"
        );
        for p in &all {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += p.batch_buckets[i];
                let _ = writeln!(
                    out,
                    "{name}_bucket{{pipeline=\"{}\",le=\"{bound}\"}} {cumulative}",
                    p.name
                );
            }
            cumulative += p.batch_buckets[BUCKETS.len()];
            let _ = writeln!(
                out,
                "{name}_bucket{{pipeline=\"{}\",le=\"+Inf\"}} {cumulative}",
                p.name
            );
            let _ = writeln!(out, "{name}_sum{{pipeline=\"{}\"}} {}", p.name, p.batch_sum);
            let _ = writeln!(out, "{name}_count{{pipeline=\"{}\"}} {cumulative}", p.name);
        }
        out
    }
}

fn record(handle: &Handle, event: SyncEvent) {
    let mut s = lock(handle);
    match event {
        SyncEvent::Applied {
            transactions,
            changes,
            bytes,
            lsn,
        } => {
            s.bytes_applied += bytes;
            s.phase = "streaming".into();
            s.transactions_applied += transactions;
            s.changes_applied += changes;
            s.last_applied_lsn = Some(lsn.to_string());
            let bucket = BUCKETS
                .iter()
                .position(|b| changes <= *b)
                .unwrap_or(BUCKETS.len());
            s.batch_buckets[bucket] += 1;
            s.batch_sum += changes;
        }
        SyncEvent::TableFinished { rows, .. } => s.snapshot_rows += rows,
        _ => {}
    }
}

/// Runs `pipeline` until `shutdown`, stopping while `pause` is set.
pub async fn run_pipeline(
    pipeline: PipelineConfig,
    handle: Handle,
    mut pause: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut options = stream_options(&pipeline);
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let recorder = {
        let handle = handle.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                record(&handle, event);
            }
        })
    };
    let lag = tokio::spawn(watch_lag(pipeline.clone(), handle.clone()));
    // The WAL retention guard, as with ferry sync: a drop stops the pipeline as failed.
    let (guard_tx, guard_rx) = watch::channel(false);
    let verdict = guard::Verdict::default();
    let guard = tokio::spawn(guard::run(
        pipeline.clone(),
        Arc::new(guard_tx),
        verdict.clone(),
    ));
    let progress = Progress::to(events_tx);
    loop {
        if *shutdown.borrow() {
            break;
        }
        if *pause.borrow() {
            {
                let mut s = lock(&handle);
                s.paused = true;
                s.phase = "paused".into();
            }
            tokio::select! {
                _ = pause.wait_for(|p| !*p) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            let mut s = lock(&handle);
            s.paused = false;
            s.phase = "starting".into();
        }
        // This run stops on a pause or on shutdown.
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut pause_watch = pause.clone();
        let mut shutdown_watch = shutdown.clone();
        let mut guard_watch = guard_rx.clone();
        let stopper = tokio::spawn(async move {
            tokio::select! {
                _ = pause_watch.wait_for(|p| *p) => {}
                _ = shutdown_watch.wait_for(|s| *s) => {}
                _ = guard_watch.wait_for(|s| *s) => {}
            }
            let _ = stop_tx.send(true);
        });
        let retry_handle = handle.clone();
        let result = run_with_retries(&mut options, &progress, stop_rx, |e| {
            let mut s = lock(&retry_handle);
            s.retries += 1;
            s.last_error = Some(ferry_pgwire::error_chain(e));
        })
        .await;
        stopper.abort();
        let dropped = verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(reason) = dropped {
            tracing::error!(pipeline = %pipeline.name, "{reason}");
            let mut s = lock(&handle);
            s.errors += 1;
            s.phase = "failed".into();
            s.last_error = Some(reason);
            break;
        }
        if let Err(e) = result {
            tracing::error!(pipeline = %pipeline.name, error = %ferry_pgwire::error_chain(&e), "pipeline stopped");
            let mut s = lock(&handle);
            s.errors += 1;
            s.phase = "failed".into();
            s.last_error = Some(ferry_pgwire::error_chain(&e));
            break;
        }
    }
    if lock(&handle).phase != "failed" {
        lock(&handle).phase = "stopped".into();
    }
    lag.abort();
    guard.abort();
    drop(progress);
    let _ = recorder.await;
}

/// Reads the pipeline's lag every [`LAG_EVERY`] (as `ferry status` does).
async fn watch_lag(pipeline: PipelineConfig, handle: Handle) {
    loop {
        let status = crate::commands::status::status(&pipeline).await;
        {
            let mut s = lock(&handle);
            s.lag_bytes = status.lag_bytes;
            s.retained_wal_bytes = status.slot.as_ref().and_then(|slot| slot.retained_bytes);
            s.lag_seconds = status
                .seconds_since_applied
                .filter(|_| status.lag_bytes.is_some_and(|b| b > 0));
        }
        tokio::time::sleep(LAG_EVERY).await;
    }
}
