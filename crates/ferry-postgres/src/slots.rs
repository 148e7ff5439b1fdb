//! Replication slots as an operator sees them: listing with the WAL each one holds, and
//! dropping, so that a crashed consumer never leaves a slot pinning WAL until the disk fills.
//!
//! A slot is *Ferry's* when a pipeline of the configuration names it, or when its name starts
//! with `ferry` (the prefix of every slot Ferry creates by default). Cleanup only ever drops
//! inactive slots that are Ferry's and that no configured pipeline uses.

use std::time::{Duration, Instant};

use ferry_core::quote_literal;
use tokio_postgres::Client;

use crate::catalog::{self, SlotInfo};

/// Who a slot belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "pipeline", rename_all = "snake_case")]
pub enum Owner {
    /// A configured pipeline uses it.
    Pipeline(String),
    /// Ferry created it (by its name), but no configured pipeline uses it: a leftover.
    Orphaned,
    /// Not Ferry's.
    Other,
}

/// Classifies `slot` against the slot names the configured pipelines use.
pub fn owner(slot: &SlotInfo, pipelines: &[(String, String)]) -> Owner {
    if let Some((pipeline, _)) = pipelines.iter().find(|(_, name)| name == &slot.name) {
        return Owner::Pipeline(pipeline.clone());
    }
    if slot.name.starts_with("ferry") {
        Owner::Orphaned
    } else {
        Owner::Other
    }
}

/// Why a slot could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("there is no replication slot named {0:?}: list them with ferry slots list")]
    NotFound(String),
    #[error(
        "slot {slot:?} is active, used by process {pid}: stop its consumer first, or pass \
         --force to end that process (SELECT pg_terminate_backend({pid}))"
    )]
    Active { slot: String, pid: i32 },
    #[error("process {pid} still holds slot {slot:?} after being asked to end")]
    StillActive { slot: String, pid: i32 },
    #[error("{what} failed")]
    Sql {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl SlotError {
    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SlotError::Sql { source, .. } => ferry_pgwire::is_transient_pg_error(source),
            SlotError::StillActive { .. } => true,
            SlotError::NotFound(_) | SlotError::Active { .. } => false,
        }
    }
}

fn sql(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> SlotError {
    move |source| SlotError::Sql { what, source }
}

/// Drops the slot `name` and returns it as it was; an active slot only with `force`, which
/// first ends the process holding it.
pub async fn drop_slot(
    client: &Client,
    version_num: u32,
    name: &str,
    force: bool,
) -> Result<SlotInfo, SlotError> {
    let slot = catalog::slot(client, version_num, name)
        .await
        .map_err(sql("reading the slot"))?
        .ok_or_else(|| SlotError::NotFound(name.to_owned()))?;
    if let (true, Some(pid)) = (slot.active, slot.active_pid) {
        if !force {
            return Err(SlotError::Active {
                slot: name.to_owned(),
                pid,
            });
        }
        client
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(sql("ending the process holding the slot"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = catalog::slot(client, version_num, name)
                .await
                .map_err(sql("reading the slot"))?;
            if now.as_ref().is_none_or(|s| !s.active) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(SlotError::StillActive {
                    slot: name.to_owned(),
                    pid,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    client
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot({})",
            quote_literal(name)
        ))
        .await
        .map_err(sql("dropping the slot"))?;
    tracing::info!(slot = %name, retained_bytes = slot.retained_bytes, "slot dropped");
    Ok(slot)
}
