//! The WAL retention guard: while a streaming pipeline runs (and while it retries a target
//! that is down, which is when its slot grows), check how much WAL its slot keeps on the
//! source every `retention_check_interval`.
//!
//! - Past `warn_retained_wal`: a warning, once per crossing.
//! - Past `max_retained_wal` with `on_max_retained_wal = "keep"` (the default): an error at
//!   every check, slot kept: no change is lost, the source's disk keeps filling.
//! - With `"drop"`: the slot is dropped (ending our own walsender if needed), the pipeline's
//!   position is set to 0/0 so that the next run copies again, and the run stops with the
//!   reason. The source's disk is saved; the target needs that fresh copy.
//! - A slot whose `wal_status` is `lost` is reported; the run itself stops on it with the
//!   resync command (`SyncError::SlotGone`).

use std::sync::{Arc, Mutex, PoisonError};

use ferry_core::{quote_ident, quote_literal};
use ferry_postgres::catalog;
use tokio::sync::watch;

use crate::config::{PipelineConfig, RetentionAction};

/// Why the guard stopped the pipeline, once it did.
pub type Verdict = Arc<Mutex<Option<String>>>;

/// Runs the guard until the task is aborted; on a drop, sets `verdict` and `stop`.
pub async fn run(pipeline: PipelineConfig, stop: Arc<watch::Sender<bool>>, verdict: Verdict) {
    let settings = pipeline.sync.retention.clone();
    if settings.warn_bytes.is_none() && settings.max_bytes.is_none() {
        return;
    }
    let slot_name = pipeline.source.slot.clone();
    let mut warned = false;
    let mut ticks = tokio::time::interval(settings.check_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(client) = ferry_pgwire::connect_sql(&pipeline.source.conn).await else {
            continue;
        };
        let Ok(info) = catalog::server_info(&client).await else {
            continue;
        };
        let Ok(Some(slot)) = catalog::slot(&client, info.version_num, &slot_name).await else {
            continue;
        };
        if let Some(invalidation) = slot.invalidation() {
            tracing::error!(slot = %slot_name, "the slot {invalidation}; the pipeline must copy again (ferry status shows how)");
            continue;
        }
        let retained = u64::try_from(slot.retained_bytes.unwrap_or(0)).unwrap_or(0);
        let over_max = settings.max_bytes.is_some_and(|max| retained > max);
        let over_warn = settings.warn_bytes.is_some_and(|warn| retained > warn);
        match (over_max, settings.action) {
            (true, RetentionAction::Keep) => {
                tracing::error!(
                    slot = %slot_name,
                    retained_bytes = retained,
                    max_retained_wal = settings.max_bytes.unwrap_or(0),
                    "the slot retains more WAL than max_retained_wal; kept (on_max_retained_wal = \"keep\"): fix what holds the pipeline back, or drop the slot and copy again"
                );
            }
            (true, RetentionAction::Drop) => {
                let message = drop_and_mark(&pipeline, &client, info.version_num, retained).await;
                tracing::error!(slot = %slot_name, "{message}");
                *verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
                let _ = stop.send(true);
                return;
            }
            (false, _) if over_warn && !warned => {
                warned = true;
                tracing::warn!(
                    slot = %slot_name,
                    retained_bytes = retained,
                    warn_retained_wal = settings.warn_bytes.unwrap_or(0),
                    "the slot retains more WAL than warn_retained_wal"
                );
            }
            (false, _) if !over_warn => warned = false,
            _ => {}
        }
    }
}

/// Drops the slot and sets the pipeline's position to 0/0 (copy again); says what it did.
async fn drop_and_mark(
    pipeline: &PipelineConfig,
    source: &tokio_postgres::Client,
    version: u32,
    retained: u64,
) -> String {
    let slot = &pipeline.source.slot;
    let dropped = ferry_postgres::slots::drop_slot(source, version, slot, true).await;
    let marked = match ferry_pgwire::connect_sql(&pipeline.target.conn).await {
        Ok(target) => target
            .batch_execute(&format!(
                "UPDATE {}.progress SET lsn = '0/0' WHERE pipeline = {}",
                quote_ident(&pipeline.target.progress_schema),
                quote_literal(&pipeline.name)
            ))
            .await
            .is_ok(),
        Err(_) => false,
    };
    let next = if marked {
        "the next ferry sync copies the tables again"
    } else {
        "the target could not be marked: before the next run, DELETE the pipeline's row from the progress table"
    };
    match dropped {
        Ok(_) => format!(
            "slot {slot:?} retained {retained} bytes of WAL, over max_retained_wal: dropped it \
             (on_max_retained_wal = \"drop\"); {next}"
        ),
        Err(e) => format!(
            "slot {slot:?} retained {retained} bytes of WAL, over max_retained_wal, but could not \
             be dropped: {e}"
        ),
    }
}
