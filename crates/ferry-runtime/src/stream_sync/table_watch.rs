//! Watching the source's tables while streaming: a table created that matches the patterns,
//! or a carried table dropped and created again under its name, ends the streaming run so
//! that the next start's plan takes it in.
//!
//! The logical stream says nothing of DDL: pgoutput publishes a new table only once it is in
//! the publication, wal2json and decoderbufs name tables only by name, so a table dropped and
//! created again looks like the old one. What tells is the catalog: a task reads the
//! selection on a source SQL connection every `every` and compares each table's OID with
//! the one the run's plan observed. On a difference the apply loop commits what it holds and
//! the run starts over through observe → plan → act: the new table is copied alone from a
//! snapshot and streamed from its consistent point, a re-created one has its target table
//! dropped and copied anew (`tables.rs`). pgoutput tells sooner: a Relation message under
//! another OID than the plan's for a carried name, confirmed by the catalog, ends the run
//! at once (`apply.rs`). Changes of the new table decoded before that point
//! are in its copy, and the old table's are replaced by it, so nothing in between is lost or
//! doubled.

use std::collections::HashMap;
use std::time::Duration;

use ferry_core::TableName;
use ferry_pgwire::ConnParams;
use ferry_postgres::{ResolvedSelection, TableSelection};
use tokio::sync::watch;

use super::setup::connect_source;
use super::AbortOnDrop;

/// Why the run should start over; `None` while nothing changed.
pub(super) struct TableWatch {
    changed: watch::Receiver<Option<String>>,
    _task: Option<AbortOnDrop>,
}

impl TableWatch {
    /// Watches `tables` every `every` (`None`: never) against `known`, the OIDs the plan
    /// observed.
    pub(super) fn start(
        source: &ConnParams,
        tables: &TableSelection,
        known: &[(TableName, u32)],
        every: Option<Duration>,
        publishes: bool,
    ) -> Self {
        let (tx, changed) = watch::channel(None);
        let task = every.map(|every| {
            let known: HashMap<TableName, u32> = known.iter().cloned().collect();
            AbortOnDrop(tokio::spawn(poll(
                source.clone(),
                tables.clone(),
                known,
                every,
                publishes,
                tx,
            )))
        });
        TableWatch {
            changed,
            _task: task,
        }
    }

    /// What changed, once something has.
    pub(super) fn reason(&self) -> Option<String> {
        self.changed.borrow().clone()
    }

    /// Waits until something changes (forever when nothing is watched).
    pub(super) async fn changed(&mut self) {
        let seen = self.changed.wait_for(Option::is_some).await.is_ok();
        if !seen {
            std::future::pending::<()>().await;
        }
    }
}

/// Lists the source's tables once and says what changed against `known` (nothing when the
/// listing fails: the caller keeps its own error). A run that fails while applying asks
/// this before giving up: wal2json and decoderbufs send a re-created table's rows under the
/// old name, and they may fail against the old table before the next poll.
pub(super) async fn check_now(
    source: &ConnParams,
    tables: &TableSelection,
    known: &[(TableName, u32)],
    publishes: bool,
) -> Option<String> {
    let (client, version) = connect_source(source).await.ok()?;
    let selection = ferry_postgres::read_selection(&client, version, tables)
        .await
        .ok()?;
    let known: HashMap<TableName, u32> = known.iter().cloned().collect();
    let reasons = changes(&selection, &known, &mut Vec::new(), publishes);
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// What differs between `selection` and `known`. A new table the run must not take in while
/// running is warned about once (`warned` keeps the names) and not counted: an UNLOGGED one
/// (its changes never reach the WAL) and one with no row identity (in a publication, the
/// source would refuse its UPDATEs and DELETEs; no plugin can carry them). A carried table
/// created again counts even so, unless `publishes` (pgoutput) and it has no row identity:
/// wal2json and decoderbufs would mix its rows into the old table's.
fn changes(
    selection: &ResolvedSelection,
    known: &HashMap<TableName, u32>,
    warned: &mut Vec<TableName>,
    publishes: bool,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for table in &selection.tables {
        let info = &table.info;
        let name = &info.name;
        if known.get(name) == Some(&info.oid) {
            continue;
        }
        let refused = if info.unlogged {
            Some("it is UNLOGGED, so its changes never reach the WAL: ALTER TABLE … SET LOGGED to carry it, or exclude it")
        } else if info.relkind == 'r' && !info.has_row_identity() {
            Some("it has no primary key or replica identity, so its UPDATEs and DELETEs cannot be carried (and a publication would make the source refuse them): give it a primary key or ALTER TABLE … REPLICA IDENTITY FULL, and it is taken in")
        } else {
            None
        };
        match refused {
            // A carried table created again: its target table holds the old table's rows,
            // which must go whatever the new one is (the plan then copies it, or refuses
            // it with the reason).
            // With a publication, the next start would add a keyless one to it, and the
            // source would then refuse its UPDATEs: it is only warned about, and its
            // changes do not arrive (a dropped table leaves the publication).
            Some(why) if known.contains_key(name) && (!publishes || info.unlogged) => {
                reasons.push(format!(
                    "table {name} was dropped and created again (note: {})",
                    why.split(':').next().unwrap_or(why)
                ))
            }
            Some(why) => {
                if !warned.contains(name) {
                    tracing::warn!(table = %name, "a table matching the selection appeared on the source but is not taken in: {why}");
                    warned.push(name.clone());
                }
            }
            None if known.contains_key(name) => {
                reasons.push(format!("table {name} was dropped and created again"))
            }
            None => reasons.push(format!("table {name} was created")),
        }
    }
    reasons
}

async fn poll(
    source: ConnParams,
    tables: TableSelection,
    known: HashMap<TableName, u32>,
    every: Duration,
    publishes: bool,
    tx: watch::Sender<Option<String>>,
) {
    let mut client = None;
    let mut warned = Vec::new();
    loop {
        tokio::time::sleep(every).await;
        if client.is_none() {
            match connect_source(&source).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "watching the source's tables: cannot connect");
                    continue;
                }
            }
        }
        let Some((c, version)) = client.as_ref() else {
            continue;
        };
        let selection = match ferry_postgres::read_selection(c, *version, &tables).await {
            Ok(selection) => selection,
            Err(e) => {
                tracing::warn!(error = %e, "watching the source's tables: listing them failed");
                client = None;
                continue;
            }
        };
        let reasons = changes(&selection, &known, &mut warned, publishes);
        if !reasons.is_empty() {
            let _ = tx.send(Some(reasons.join("; ")));
            return;
        }
    }
}
