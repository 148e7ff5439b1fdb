//! Setup as one reconcile step (DESIGN.md): what is, what is wanted, and the plan between.
//!
//! A run reads once what is ([`Observed`], by `observe.rs`: the source's tables, the
//! publication, the slots; the target's stored position and table record), computes a
//! [`Plan`] from it and the config, prints it, and only then acts (`reconcile.rs`). Nothing
//! else creates, alters or drops a publication or a slot, so no state falls between two
//! owners: a publication made by someone else is extended like Ferry's own, a slot an
//! earlier crash left is dropped, a table the publication never carried is copied again.
//! `ferry sync --dry-run` and `ferry status` print the same plan without acting.
//!
//! ```text
//!  observe ──► compute (pure, this module) ──► print ──► act, in this order:
//!    1. publication: create, or add what it lacks / drop what Ferry carried and no longer
//!       selects (before any slot exists, so every slot's stream already carries them)
//!    2. slots: drop the leftovers (a crashed first run's slot, an added-table slot)
//!    3. first run: slot with an exported snapshot and the copy │ resume: copy the tables
//!       added since, each from a temporary slot's snapshot
//!    4. stream, applying only the carried tables
//! ```

use std::collections::HashMap;
use std::fmt;

use ferry_core::{Lsn, TableName};
use ferry_postgres::catalog::{PublicationInfo, SlotInfo};
use ferry_postgres::publication::{self, PublicationPlan};

pub use super::snapshot::XidSnapshot;
use ferry_postgres::{Plugin, ResolvedSelection};

use super::StreamSyncOptions;
use crate::error::SyncError;

/// What a run finds before it acts.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The source's `server_version_num`.
    pub version: u32,
    pub selection: ResolvedSelection,
    /// The publication, if it exists (pgoutput only).
    pub publication: Option<PublicationInfo>,
    /// The pipeline's slot, if it exists.
    pub slot: Option<SlotInfo>,
    /// Slots of this pipeline that no run should have left: `<slot>_add`.
    pub leftover_slots: Vec<String>,
    /// The stored position on the target (0/0: a first run's copy did not finish).
    pub position: Option<Lsn>,
    /// The target's record of carried tables and where each one's changes start (`None`:
    /// its copy did not finish).
    pub recorded: Vec<(TableName, Option<TableStart>)>,
    /// The source OID each recorded table had when it was last planned (absent in records
    /// from before Ferry kept them).
    pub recorded_oids: HashMap<TableName, u32>,
}

/// Where a carried table's changes start: from transactions its copy does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStart {
    /// The copy slot's consistent point (0/0: carried from the pipeline's first copy).
    pub lsn: Lsn,
    /// The copy snapshot's transaction ids, where recorded (decoderbufs decides by them).
    pub snapshot: Option<XidSnapshot>,
}

impl TableStart {
    /// From `lsn`, with no snapshot recorded.
    pub fn at(lsn: Lsn) -> Self {
        TableStart {
            lsn,
            snapshot: None,
        }
    }
}

/// How the run begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No position yet: create the slot (and copy first, unless `incremental`). `again`:
    /// an earlier first run stopped during its copy.
    First { again: bool },
    /// Stream from the stored position.
    Resume(Lsn),
}

/// Why a table is copied alone before streaming resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddReason {
    /// Selected since the last run (added to the patterns, or created since).
    New,
    /// Its copy was interrupted.
    Unfinished,
    /// It was carried, but the publication did not carry it: its changes never came.
    NotPublished,
    /// It was dropped and created again on the source under the same name (another OID):
    /// its target table is dropped, and it is copied anew.
    Recreated,
}

impl AddReason {
    fn describe(self) -> &'static str {
        match self {
            AddReason::New => "newly selected",
            AddReason::Unfinished => "its copy was interrupted",
            AddReason::NotPublished => {
                "the publication did not carry it, so its changes never came: copied again"
            }
            AddReason::Recreated => {
                "dropped and created again on the source: its target table is dropped and copied anew"
            }
        }
    }
}

/// What a run will do, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: String,
    pub slot: String,
    pub plugin: Plugin,
    pub copy_first: bool,
    pub start: Start,
    /// pgoutput only.
    pub publication: Option<PublicationPlan>,
    pub drop_slots: Vec<String>,
    /// A pipeline from before the table record: record every carried table as carried
    /// from the beginning.
    pub record_all: bool,
    pub add: Vec<(TableName, AddReason)>,
    pub forget: Vec<TableName>,
    /// Carried tables added after the pipeline's copy, and the position their changes
    /// apply from (the tables in `add` get theirs from their copy).
    pub starts: Vec<(TableName, TableStart)>,
    /// The tables whose changes are applied (partitions included).
    pub carried: Vec<TableName>,
    /// Their source OIDs as observed: recorded after the start, and watched while streaming.
    pub oids: Vec<(TableName, u32)>,
    pub warnings: Vec<String>,
}

/// The plan for `options` given what was `seen`; an error when the run must not start.
pub fn compute(options: &StreamSyncOptions, seen: &Observed) -> Result<Plan, SyncError> {
    let selection = &seen.selection;
    if selection.tables.is_empty() {
        return Err(SyncError::NothingSelected);
    }
    if let Some(t) = selection.tables.iter().find(|t| t.info.unlogged) {
        return Err(SyncError::Refused {
            problem: format!(
                "table {} is UNLOGGED: its changes are never written to the WAL, so no output plugin can send them",
                t.info.name
            ),
            fix: format!(
                "ALTER TABLE {0} SET LOGGED; (or leave it out of the pipeline: exclude = ['{0}'])",
                t.info.name.quoted()
            ),
        });
    }
    let start = match seen.position {
        None => Start::First { again: false },
        Some(lsn) if lsn.is_zero() => Start::First { again: true },
        Some(lsn) => Start::Resume(lsn),
    };
    let recorded_names: Vec<TableName> = seen.recorded.iter().map(|(t, _)| t.clone()).collect();
    let publication = (options.plugin == Plugin::Pgoutput).then(|| {
        publication::plan(
            &options.publication,
            seen.version,
            seen.publication.as_ref(),
            selection,
            &recorded_names,
        )
    });
    if let Some(refusal) = publication.iter().flat_map(|p| &p.refusals).next() {
        return Err(SyncError::Refused {
            problem: refusal.problem.clone(),
            fix: refusal.fix.clone(),
        });
    }
    let mut drop_slots = seen.leftover_slots.clone();
    match (start, &seen.slot) {
        (Start::Resume(_), None) => return Err(slot_gone(options, "does not exist")),
        (Start::Resume(_), Some(slot)) if slot.invalidated.is_some() => {
            return Err(slot_gone(
                options,
                &slot.invalidation().unwrap_or_default(),
            ))
        }
        (Start::Resume(_), Some(slot))
            if slot.plugin.as_deref().is_some_and(|p| p != options.plugin.name()) =>
        {
            return Err(SyncError::Refused {
                problem: format!(
                    "slot {:?} decodes with {}, but [source] plugin is {}",
                    options.slot,
                    slot.plugin.as_deref().unwrap_or("?"),
                    options.plugin.name()
                ),
                fix: format!(
                    "set [source] plugin = {:?} again, or copy anew with another slot and pipeline name",
                    slot.plugin.as_deref().unwrap_or("?")
                ),
            })
        }
        (Start::First { again: true }, Some(_)) => drop_slots.push(options.slot.clone()),
        (Start::First { again: false }, Some(_)) => {
            return Err(SyncError::SlotExists {
                slot: options.slot.clone(),
            })
        }
        _ => {}
    }
    let carried = selection.names();
    let mut plan = Plan {
        pipeline: options.pipeline.clone(),
        slot: options.slot.clone(),
        plugin: options.plugin,
        copy_first: options.copy_first,
        start,
        publication,
        drop_slots,
        record_all: false,
        add: Vec::new(),
        forget: Vec::new(),
        starts: Vec::new(),
        carried,
        oids: selection
            .tables
            .iter()
            .map(|t| (t.info.name.clone(), t.info.oid))
            .collect(),
        warnings: selection.unmatched_warnings(),
    };
    if let Some(p) = plan.publication.as_ref().filter(|p| p.publishes_others) {
        plan.warnings.push(format!(
            "publication {:?} also publishes tables outside the selection: their changes are ignored",
            p.name
        ));
    }
    if let Start::Resume(_) = start {
        resume_tables(&mut plan, seen);
    }
    Ok(plan)
}

/// Which tables a resumed run copies alone, and which it stops carrying.
fn resume_tables(plan: &mut Plan, seen: &Observed) {
    if seen.recorded.is_empty() {
        plan.record_all = true;
        return;
    }
    // The publication's missing members, and every carried table they take with them.
    let unpublished: Vec<&TableName> = plan
        .publication
        .iter()
        .flat_map(|p| p.add.iter().map(|m| &m.table))
        .collect();
    for table in &seen.selection.tables {
        let name = table.name();
        let recreated = seen
            .recorded_oids
            .get(name)
            .is_some_and(|&oid| oid != table.info.oid);
        let reason = match seen.recorded.iter().find(|(t, _)| t == name) {
            None => AddReason::New,
            Some(_) if recreated => AddReason::Recreated,
            Some((_, None)) => AddReason::Unfinished,
            Some(_)
                if unpublished.contains(&name)
                    || table
                        .root
                        .as_ref()
                        .is_some_and(|r| unpublished.contains(&r)) =>
            {
                AddReason::NotPublished
            }
            Some(_) => continue,
        };
        plan.add.push((name.clone(), reason));
    }
    plan.starts = seen
        .recorded
        .iter()
        .filter(|(t, _)| !plan.add.iter().any(|(a, _)| a == t) && seen.selection.contains(t))
        .filter_map(|(t, start)| {
            start
                .as_ref()
                .filter(|s| !s.lsn.is_zero())
                .map(|s| (t.clone(), s.clone()))
        })
        .collect();
    plan.forget = seen
        .recorded
        .iter()
        .map(|(t, _)| t)
        .filter(|t| !seen.selection.contains(t))
        .cloned()
        .collect();
}

fn slot_gone(options: &StreamSyncOptions, problem: &str) -> SyncError {
    SyncError::SlotGone {
        slot: options.slot.clone(),
        problem: problem.to_owned(),
        pipeline: options.pipeline.clone(),
        progress_schema: ferry_core::quote_ident(&options.progress_schema),
    }
}

fn list(tables: impl IntoIterator<Item = impl fmt::Display>) -> String {
    tables
        .into_iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan of pipeline {:?}:", self.pipeline)?;
        if let Some(p) = &self.publication {
            let what = if p.create {
                format!("create, naming {}", list(&p.add))
            } else if p.is_noop() {
                "carries every selected table: no change".to_owned()
            } else {
                let mut parts = Vec::new();
                if !p.add.is_empty() {
                    parts.push(format!("add {}", list(&p.add)));
                }
                if !p.drop.is_empty() {
                    parts.push(format!("drop {}", list(p.drop.iter().map(|t| t.quoted()))));
                }
                parts.join("; ")
            };
            writeln!(f, "  publication {:?}: {what}", p.name)?;
        }
        for slot in &self.drop_slots {
            writeln!(
                f,
                "  slot {slot:?}: drop (left by a run that did not finish)"
            )?;
        }
        match self.start {
            Start::First { again } => {
                let again = if again {
                    " (again: the last first run stopped during its copy)"
                } else {
                    ""
                };
                if self.copy_first {
                    writeln!(
                        f,
                        "  slot {:?}: create with an exported snapshot, copy {} tables from it{again}",
                        self.slot,
                        self.carried.len()
                    )?;
                } else {
                    writeln!(f, "  slot {:?}: create, no copy{again}", self.slot)?;
                }
            }
            Start::Resume(lsn) => {
                writeln!(f, "  slot {:?}: resume from {lsn}", self.slot)?;
            }
        }
        if self.record_all {
            writeln!(
                f,
                "  record {} tables as carried from the beginning",
                self.carried.len()
            )?;
        }
        for (table, reason) in &self.add {
            writeln!(
                f,
                "  copy {table} alone from a temporary slot's snapshot, then stream it ({})",
                reason.describe()
            )?;
        }
        for table in &self.forget {
            writeln!(
                f,
                "  stop carrying {table}: no longer selected (its target table stays)"
            )?;
        }
        writeln!(
            f,
            "  stream {} tables with {}",
            self.carried.len(),
            self.plugin.name()
        )?;
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
