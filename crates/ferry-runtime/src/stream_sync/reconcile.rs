//! Acting on a [`Plan`]: the one place that creates, alters or drops the publication and
//! the slots of a pipeline (DESIGN.md "Setup as one reconcile step"), in the plan's order.
//! The publication changes come first, before any slot is created: a slot's stream carries
//! a table only from the catalog state it decodes with, so a table added to the publication
//! after the slot's consistent point would lose its changes in between.

use ferry_core::{Lsn, TableName};
use ferry_pgwire::ReplicationClient;

use super::plan::{AddReason, Plan, Start, TableStart};
use super::setup::{self, source_catalog};
use super::tables::{self, Starts};
use super::StreamSyncOptions;
use crate::error::SyncError;
use crate::progress::Progress;

/// Carries out `plan`: returns the position streaming starts from and the starts of tables
/// added after the pipeline's copy.
pub(super) async fn act(
    options: &StreamSyncOptions,
    plan: &Plan,
    target: &mut ReplicationClient,
    progress: &Progress,
) -> Result<(Lsn, Starts), SyncError> {
    change_source(options, plan).await?;
    match plan.start {
        Start::First { again } => {
            setup::save_position(options, target, Lsn::ZERO).await?;
            let position = setup::initial_position(options, progress, again).await?;
            tables::record(
                options,
                target,
                &plan.carried,
                Some(&TableStart::at(Lsn::ZERO)),
            )
            .await?;
            tables::record_oids(options, target, &plan.oids).await?;
            setup::save_position(options, target, position).await?;
            Ok((position, Starts::new()))
        }
        Start::Resume(lsn) => {
            if plan.record_all {
                tables::record(
                    options,
                    target,
                    &plan.carried,
                    Some(&TableStart::at(Lsn::ZERO)),
                )
                .await?;
            }
            tables::forget(options, target, &plan.forget).await?;
            let mut starts: Starts = plan.starts.iter().cloned().collect();
            if !plan.add.is_empty() {
                let mut recreated: Vec<TableName> = plan
                    .add
                    .iter()
                    .filter(|(_, reason)| *reason == AddReason::Recreated)
                    .map(|(t, _)| t.clone())
                    .collect();
                let mut added: Vec<TableName> = plan.add.iter().map(|(t, _)| t.clone()).collect();
                let trees =
                    tables::trees_out_of_step(options, target, &added, &plan.carried).await?;
                for table in trees {
                    starts.remove(&table);
                    if !added.contains(&table) {
                        added.push(table.clone());
                    }
                    recreated.push(table);
                }
                tables::drop_recreated(target, &recreated).await?;
                let start =
                    tables::copy_added(options, target, progress, &added, &plan.oids).await?;
                starts.extend(added.into_iter().map(|t| (t, start.clone())));
            }
            tables::record_oids(options, target, &plan.oids).await?;
            Ok((lsn, starts))
        }
    }
}

/// The publication's statements, then the leftover slots dropped.
async fn change_source(options: &StreamSyncOptions, plan: &Plan) -> Result<(), SyncError> {
    let statements = plan
        .publication
        .as_ref()
        .map(|p| p.statements())
        .unwrap_or_default();
    if statements.is_empty() && plan.drop_slots.is_empty() {
        return Ok(());
    }
    let (client, version) = source_catalog(options).await?;
    for statement in statements {
        client.batch_execute(&statement).await.map_err(|e| {
            SyncError::sql("changing the publication (run ferry check for the fix)", e)
        })?;
        tracing::info!(publication = %options.publication, %statement, "publication changed");
    }
    for slot in &plan.drop_slots {
        match ferry_postgres::slots::drop_slot(&client, version, slot, true).await {
            Ok(_) => tracing::warn!(%slot, "dropped a slot an unfinished run left behind"),
            Err(ferry_postgres::slots::SlotError::NotFound(_)) => {}
            Err(e) => return Err(SyncError::Internal(format!("dropping slot {slot:?}: {e}"))),
        }
    }
    Ok(())
}
