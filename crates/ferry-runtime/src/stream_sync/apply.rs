//! The apply loop's state: decoded changes in, SQL on the target out, positions confirmed.
//!
//! Plain transactions (Begin ... Commit) gather into a *group*: one target transaction that
//! commits, with the progress row set to the last one's end LSN, when the stream has nothing
//! more waiting or a bound of [`BatchLimits`] is reached. SQL goes to the target in pieces of
//! about 1 MB while it gathers, so memory stays bounded however large a transaction is.
//! Stopping keeps every complete transaction of the group: a partial one is cut off if none
//! of it was sent yet, otherwise the whole group rolls back (the server sends it again).
//!
//! Changes inside stream blocks go to [`Streams`]. Every Stream Start and Stream Commit
//! first commits the group: its transactions committed earlier on the source, a block may
//! change rows they wrote, and the group holds the progress row.

use std::time::Instant;

use super::decoder::StreamDecoder;
use super::durable::{self, Durability};
use ferry_core::{Change, Lsn, RelationId};
use ferry_pgwire::{ReplicationClient, ReplicationMessage};

use super::feed::Feedback;
use ferry_postgres::sink::apply::{delete_sql, insert_sql, truncate_sql, update_sql, ApplyError};

use super::relations::{follow, RelationCache, SourceLookup};
use super::setup::save_position_sql;
use super::streamed::Streams;
use super::{BatchLimits, StreamSyncOptions, HEARTBEAT_PREFIX};
use crate::error::SyncError;
use ferry_postgres::sink::batch::{Partitioned, TargetRelation};

/// Gathered SQL is sent to the target once it is this large, even mid-transaction.
const FLUSH_BYTES: usize = 1 << 20;

/// How often the running totals are logged.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Source transactions gathered into one target transaction.
#[derive(Default)]
struct Group {
    /// Not yet sent.
    sql: String,
    /// BEGIN was sent (some of the group's SQL is on the target).
    begun: bool,
    rows: u64,
    bytes: usize,
    txns: u64,
    since: Option<Instant>,
    /// End LSN of the last complete transaction in the group.
    end: Option<Lsn>,
    /// Source commit time of that transaction.
    commit_time: Option<ferry_core::PgTimestamp>,
    /// Runs of row changes being coalesced, per table (not yet in `sql`).
    batcher: Partitioned,
}

/// The plain transaction being read.
struct OpenTxn {
    /// Already applied (it commits before the stored position): its changes are dropped.
    skip: bool,
    /// Statements it added to the group; with none, stopping can commit the group without it.
    statements: u64,
    /// Its commit LSN, or with decoderbufs a lower bound of it.
    commit: Lsn,
    xid: u32,
}

/// Running totals, logged every [`REPORT_EVERY`].
#[derive(Default)]
struct Totals {
    txns: u64,
    rows: u64,
    reported: Option<Instant>,
}

/// Whose relation a pgoutput Relation message describes (see [`Applier::other_incarnation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incarnation {
    /// The carried table's.
    Carried,
    /// A table of the same name created after the plan.
    Newer,
    /// A table of the same name dropped before the carried one was copied.
    Older,
}

pub(super) struct Applier<'a> {
    options: &'a StreamSyncOptions,
    limits: BatchLimits,
    target: ReplicationClient,
    decoder: StreamDecoder,
    /// Tables added to the pipeline after its copy, and where their changes start.
    starts: super::tables::Starts,
    progress: crate::progress::Progress,
    /// The carried tables: changes of others are dropped.
    accepted: std::collections::HashSet<ferry_core::TableName>,
    /// Relations of tables outside the selection (sent by plugins that cannot filter).
    ignored: std::collections::HashSet<RelationId>,
    relations: RelationCache,
    lookup: SourceLookup,
    streams: Streams,
    applied: Lsn,
    group: Group,
    open: Option<OpenTxn>,
    durability: Durability,
    totals: Totals,
    /// The carried tables' source OIDs as the plan observed them (pgoutput's relation ids).
    oids: std::collections::HashMap<ferry_core::TableName, u32>,
    /// Set when a Relation message shows a carried table created again, or one to copy
    /// anew: the run ends.
    tables_changed: Option<String>,
    /// Tables whose next start must copy them anew.
    copy_anew: Vec<ferry_core::TableName>,
}

impl<'a> Applier<'a> {
    pub(super) fn new(
        options: &'a StreamSyncOptions,
        target: ReplicationClient,
        decoder: StreamDecoder,
        start: Lsn,
        starts: super::tables::Starts,
        accepted: std::collections::HashSet<ferry_core::TableName>,
        progress: crate::progress::Progress,
    ) -> Self {
        Applier {
            options,
            limits: options.batch,
            target,
            decoder,
            starts,
            accepted,
            progress,
            ignored: Default::default(),
            relations: RelationCache::default(),
            lookup: SourceLookup::new(options.full.source.clone()),
            streams: Streams::new(options.full.target.clone(), options.pipeline.clone()),
            applied: start,
            group: Group::default(),
            open: None,
            durability: Durability::default(),
            totals: Totals::default(),
            oids: Default::default(),
            tables_changed: None,
            copy_anew: Vec::new(),
        }
    }

    /// The plan's source OIDs, against which pgoutput's relation ids are checked.
    pub(super) fn expect_oids(&mut self, oids: &[(ferry_core::TableName, u32)]) {
        if self.options.plugin == ferry_postgres::Plugin::Pgoutput {
            self.oids = oids.iter().cloned().collect();
        }
    }

    /// Why the run must start over, once a Relation message showed it.
    pub(super) fn tables_changed(&self) -> Option<String> {
        self.tables_changed.clone()
    }

    /// What a pgoutput Relation message under another OID than the plan saw for a carried
    /// table stands for. The source's catalog tells: the table was created again since
    /// the plan (the run must start over), or the message describes an older relation of
    /// the same name, decoded from before a drop, whose changes are not the carried
    /// table's (its rows were copied anew): those are ignored, and so is its column list,
    /// which must not be followed on the new copy.
    async fn other_incarnation(
        &mut self,
        relation: &ferry_core::Relation,
    ) -> Result<Incarnation, SyncError> {
        let table = ferry_postgres::sink::apply::target_table(relation);
        let Some(&planned) = self.oids.get(&table) else {
            return Ok(Incarnation::Carried);
        };
        if planned == relation.id.0 {
            return Ok(Incarnation::Carried);
        }
        let now = self.lookup.current_oid(&table).await?;
        if now == Some(relation.id.0) {
            self.tables_changed = Some(format!("table {table} was dropped and created again"));
            return Ok(Incarnation::Newer);
        }
        tracing::info!(%table, relation = relation.id.0, carried = planned, "changes of an older table of the same name are ignored: the carried table was copied after it was dropped");
        self.ignored.insert(relation.id);
        Ok(Incarnation::Older)
    }

    /// Ends the run before the change that needs `table`'s new column: the table is to be
    /// copied anew ([`Applier::mark_copies`] records that once the run has stopped).
    fn copy_anew(&mut self, table: ferry_core::TableName, reason: String) {
        tracing::warn!(%table, "{reason}");
        self.tables_changed = Some(reason);
        self.copy_anew.push(table);
    }

    /// Records the tables [`Applier::copy_anew`] named as to be copied anew: the next start
    /// drops and copies them, and streams each from its copy's position.
    pub(super) async fn mark_copies(&mut self) -> Result<(), SyncError> {
        let tables = std::mem::take(&mut self.copy_anew);
        super::tables::mark_copy_anew(self.options, &mut self.target, &tables).await
    }

    /// Takes over the source lookup (and what it remembers) of the run before.
    pub(super) fn with_lookup(mut self, lookup: Option<SourceLookup>) -> Self {
        if let Some(lookup) = lookup {
            self.lookup = lookup;
        }
        self
    }

    /// Hands the source lookup (and what it remembers) to the next run.
    pub(super) fn into_lookup(self) -> SourceLookup {
        self.lookup
    }

    /// Treats the stored start position as a commit that becomes durable once the target's
    /// flush passes its WAL insert position now.
    pub(super) async fn resume_from_stored(
        &mut self,
        feedback: &Feedback,
    ) -> Result<(), SyncError> {
        let (inserted, flushed) = durable::wal_positions(&mut self.target).await?;
        durable_now(
            self.durability.committed(inserted, self.applied, flushed),
            feedback,
        );
        Ok(())
    }

    /// Complete transactions wait in the group, and none is half read.
    pub(super) fn has_pending_group(&self) -> bool {
        self.open.is_none() && self.group.end.is_some()
    }

    /// The group reached a bound and must commit now.
    pub(super) fn group_is_full(&self) -> bool {
        self.group.rows >= self.limits.max_rows
            || self.group.bytes >= self.limits.max_bytes
            || self
                .group
                .since
                .is_some_and(|t| t.elapsed() >= self.limits.max_delay)
    }

    /// Nothing is gathered or half read on the main connection, and every commit is
    /// durable: the stream's position may be confirmed.
    fn idle(&self) -> bool {
        self.open.is_none()
            && self.group.end.is_none()
            && !self.group.begun
            && self.durability.is_empty()
    }

    pub(super) async fn handle(
        &mut self,
        message: ReplicationMessage,
        feedback: &Feedback,
    ) -> Result<(), SyncError> {
        let data = match message {
            ReplicationMessage::XLogData(data) => data,
            ReplicationMessage::PrimaryKeepalive(keepalive) => {
                // Between transactions everything up to the server's position is applied or
                // irrelevant (a streamed transaction in flight commits later, and is sent
                // again whole after a restart): confirm it, so an idle slot does not hold WAL.
                if self.idle() && keepalive.wal_end > self.applied {
                    feedback.confirm(keepalive.wal_end);
                }
                return Ok(());
            }
        };
        for change in self.decoder.decode(data.wal_start, data.data)? {
            self.handle_change(change, feedback).await?;
        }
        Ok(())
    }

    /// Whether a change to `relation` in the open transaction is older than the table's
    /// start: the table was added to the pipeline later, and its copy already has it.
    /// A commit before the copy slot's consistent point is in the copy; where the Begin
    /// gives only a lower bound of the commit (decoderbufs), one below that point is
    /// decided by the copy snapshot's transaction ids (`snapshot.rs`).
    fn before_start(&self, relation: RelationId) -> bool {
        let Some(txn) = self.open.as_ref() else {
            return false;
        };
        let Some(start) = self
            .relations
            .get(relation)
            .map(|d| ferry_postgres::sink::apply::target_table(&d.relation))
            .and_then(|table| self.starts.get(&table))
        else {
            return false;
        };
        if txn.commit >= start.lsn {
            return false;
        }
        match (&start.snapshot, self.decoder.commit_known_at_begin()) {
            (_, true) | (None, false) => true,
            (Some(snapshot), false) => snapshot.sees(txn.xid),
        }
    }

    /// Whether changes to `relation` are replicated (decoderbufs sends every table's; the
    /// other plugins are told the tables on the server).
    fn selected(&mut self, relation: &ferry_core::Relation) -> bool {
        let table = ferry_postgres::sink::apply::target_table(relation);
        if self.accepted.contains(&table) {
            self.ignored.remove(&relation.id);
            true
        } else {
            self.ignored.insert(relation.id);
            false
        }
    }

    async fn handle_change(
        &mut self,
        change: Change,
        feedback: &Feedback,
    ) -> Result<(), SyncError> {
        if self.tables_changed.is_some() {
            // The run ends before anything more of its stream is applied.
            return Ok(());
        }
        let change = match change {
            Change::Relation { relation, .. } if !self.selected(&relation) => return Ok(()),
            Change::Relation { relation, .. }
                if self.other_incarnation(&relation).await? != Incarnation::Carried =>
            {
                return Ok(())
            }
            Change::Truncate {
                stream_xid,
                relations,
                cascade,
                restart_identity,
            } => {
                let relations: Vec<RelationId> = relations
                    .into_iter()
                    .filter(|r| !self.ignored.contains(r) && !self.before_start(*r))
                    .collect();
                if relations.is_empty() {
                    return Ok(());
                }
                Change::Truncate {
                    stream_xid,
                    relations,
                    cascade,
                    restart_identity,
                }
            }
            other => other,
        };
        if relation_of(&change)
            .is_some_and(|id| self.ignored.contains(&id) || self.before_start(id))
        {
            return Ok(());
        }
        if let Some(subxid) = change.stream_xid() {
            return self.handle_streamed(subxid, change).await;
        }
        match change {
            Change::Begin { final_lsn, xid, .. } => {
                let skip = final_lsn < self.applied;
                if !skip && self.group.since.is_none() {
                    self.group.since = Some(Instant::now());
                }
                self.open = Some(OpenTxn {
                    skip,
                    statements: 0,
                    commit: final_lsn,
                    xid,
                });
            }
            Change::Commit {
                end_lsn,
                commit_time,
                ..
            } => {
                let txn = self
                    .open
                    .take()
                    .ok_or_else(|| SyncError::Internal("Commit without Begin".into()))?;
                if !txn.skip {
                    self.group.end = Some(end_lsn);
                    self.group.commit_time = Some(commit_time);
                    self.group.txns += 1;
                }
            }
            Change::Relation { relation, .. } => {
                // Also in a skipped transaction: the target already has its effect, so the
                // comparison finds nothing to do, and the cache is up to date.
                self.flush_group().await?;
                let table = ferry_postgres::sink::apply::target_table(&relation);
                let followed = follow(
                    relation,
                    self.decoder.typmods_known(),
                    &mut self.target,
                    &mut self.lookup,
                )
                .await?;
                if let Some(reason) = followed.copy_anew {
                    self.copy_anew(table, reason);
                    return Ok(());
                }
                for statement in followed.statements {
                    self.push(&statement).await?;
                }
                self.relations.insert(followed.described);
            }
            Change::Message {
                transactional: false,
                lsn,
                prefix,
                ..
            } => {
                if prefix == HEARTBEAT_PREFIX && self.idle() && lsn > self.applied {
                    feedback.confirm(lsn);
                    feedback.status_now();
                }
            }
            Change::StreamStart { xid, .. } => {
                // The group holds transactions that committed on the source before this
                // block was decoded; the block may change their rows (it took their locks
                // after they committed), so they must be visible on the target first.
                self.commit_group(feedback).await?;
                self.streams.start(xid).await?
            }
            Change::StreamStop => self.streams.stop().await?,
            Change::StreamAbort { xid, subxid, .. } => self.streams.abort(xid, subxid).await?,
            Change::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_time,
            } => {
                // Earlier transactions first: they committed before it on the source.
                self.commit_group(feedback).await?;
                let rows = self.streams.rows(xid);
                let tail = save_position_sql(self.options, end_lsn, Some(commit_time), (1, rows));
                let done = self
                    .streams
                    .commit(xid, &tail, commit_lsn < self.applied)
                    .await?;
                if let Some(done) = done {
                    self.relations.merge(done.relations);
                    self.applied = end_lsn;
                    let durable = self
                        .durability
                        .committed(done.inserted, end_lsn, done.flushed);
                    durable_now(durable, feedback);
                    self.count(1, done.rows, done.bytes);
                }
            }
            Change::BeginPrepare { .. }
            | Change::Prepare { .. }
            | Change::CommitPrepared { .. }
            | Change::RollbackPrepared { .. }
            | Change::StreamPrepare { .. } => {
                return Err(SyncError::Internal(format!(
                    "unexpected {} message: Ferry does not ask for two-phase decoding",
                    change.name()
                )));
            }
            row_change => self.push_change(&row_change).await?,
        }
        Ok(())
    }

    async fn handle_streamed(&mut self, subxid: u32, change: Change) -> Result<(), SyncError> {
        let txn = self.streams.current()?;
        if let Change::Relation { relation, .. } = change {
            let conn = txn.connection().await?;
            let typmods = self.decoder.typmods_known();
            let table = ferry_postgres::sink::apply::target_table(&relation);
            let followed = follow(relation, typmods, conn, &mut self.lookup).await?;
            if let Some(reason) = followed.copy_anew {
                self.copy_anew(table, reason);
                return Ok(());
            }
            for statement in followed.statements {
                txn.push(subxid, &statement).await?;
            }
            txn.relations.insert(followed.described);
            return Ok(());
        }
        let Some(id) = relation_of(&change) else {
            return Ok(());
        };
        let main = &self.relations;
        let target = txn
            .relations
            .get(id)
            .or_else(|| main.get(id))
            .ok_or_else(|| unknown_relation(id))?;
        txn.rows += 1;
        if self.options.coalesce && txn.pending.coalesce(subxid, target, &change)? {
            return txn.flush_if_large().await;
        }
        let sql = row_sql(&change, |id| {
            txn.relations
                .get(id)
                .or_else(|| main.get(id))
                .ok_or_else(|| unknown_relation(id))
        })?;
        if let Some(sql) = sql {
            txn.push(subxid, &sql).await?;
        }
        Ok(())
    }

    /// Adds a row change to the group: into the open run when it can join one, else as a
    /// statement of its own.
    async fn push_change(&mut self, change: &Change) -> Result<(), SyncError> {
        let Some(txn) = self.open.as_mut() else {
            return Err(SyncError::Internal("a change outside a transaction".into()));
        };
        if txn.skip {
            return Ok(());
        }
        txn.statements += 1;
        let Some(id) = relation_of(change) else {
            return Ok(());
        };
        self.group.rows += 1;
        let multi_table = matches!(change, Change::Truncate { .. });
        if self.options.coalesce && !multi_table {
            let target = self.relations.get(id).ok_or_else(|| unknown_relation(id))?;
            let held = self.group.batcher.bytes();
            if !self
                .group
                .batcher
                .add(target, change)
                .map_err(apply_error)?
            {
                let relations = &self.relations;
                if let Some(sql) = row_sql(change, |id| {
                    relations.get(id).ok_or_else(|| unknown_relation(id))
                })? {
                    self.group.batcher.push(id, &sql);
                }
            }
            self.group.bytes += self.group.batcher.bytes().saturating_sub(held);
            if self.group.sql.len() + self.group.batcher.bytes() >= FLUSH_BYTES {
                self.flush_group().await?;
            }
            return Ok(());
        }
        let relations = &self.relations;
        if let Some(sql) = row_sql(change, |id| {
            relations.get(id).ok_or_else(|| unknown_relation(id))
        })? {
            self.push(&sql).await?;
        }
        Ok(())
    }

    /// Adds a statement to the group (after the open run), sending the gathered SQL when it
    /// is large.
    async fn push(&mut self, sql: &str) -> Result<(), SyncError> {
        let Some(txn) = self.open.as_mut() else {
            return Err(SyncError::Internal("a change outside a transaction".into()));
        };
        if txn.skip {
            return Ok(());
        }
        txn.statements += 1;
        self.group.batcher.finish(&mut self.group.sql);
        self.group.sql.push_str(sql);
        self.group.sql.push_str(";\n");
        self.group.bytes += sql.len();
        if self.group.sql.len() >= FLUSH_BYTES {
            self.flush_group().await?;
        }
        Ok(())
    }

    /// Sends the group's gathered SQL (inside its open target transaction).
    async fn flush_group(&mut self) -> Result<(), SyncError> {
        self.group.batcher.finish(&mut self.group.sql);
        if self.group.sql.is_empty() {
            return Ok(());
        }
        if !self.group.begun {
            self.group.sql.insert_str(0, "BEGIN;\n");
            self.group.begun = true;
        }
        let sql = std::mem::take(&mut self.group.sql);
        self.send(&sql).await.map(drop)
    }

    /// Sends SQL on the main connection.
    async fn send(&mut self, sql: &str) -> Result<Vec<ferry_pgwire::QueryResult>, SyncError> {
        let streams_open = self.streams.any_open();
        let coalesce = self.options.coalesce;
        self.target
            .simple_query(sql)
            .await
            .map_err(|e| SyncError::apply("applying a transaction", e, streams_open, coalesce))
    }

    /// Commits wait for the target's WAL flush before they are confirmed.
    pub(super) fn awaits_flush(&self) -> bool {
        !self.durability.is_empty()
    }

    /// Reads the target's flush position and confirms what it made durable.
    pub(super) async fn poll_flush(&mut self, feedback: &Feedback) -> Result<(), SyncError> {
        let flushed = durable::flush_position(&mut self.target).await?;
        durable_now(self.durability.flushed(flushed), feedback);
        Ok(())
    }

    /// Commits the group with the progress row and confirms its end to the server.
    pub(super) async fn commit_group(&mut self, feedback: &Feedback) -> Result<(), SyncError> {
        let Some(end) = self.group.end else {
            return Ok(());
        };
        self.group.batcher.finish(&mut self.group.sql);
        let mut sql = std::mem::take(&mut self.group.sql);
        if !self.group.begun {
            sql.insert_str(0, "BEGIN;\n");
        }
        sql.push_str(&save_position_sql(
            self.options,
            end,
            self.group.commit_time,
            (self.group.txns, self.group.rows),
        ));
        sql.push_str(";\n");
        sql.push_str(durable::COMMIT);
        let results = self.send(&sql).await?;
        let (inserted, flushed) = durable::positions(&results)?;
        let group = std::mem::take(&mut self.group);
        self.applied = end;
        durable_now(self.durability.committed(inserted, end, flushed), feedback);
        self.count(group.txns, group.rows, group.bytes as u64);
        Ok(())
    }

    fn count(&mut self, txns: u64, rows: u64, bytes: u64) {
        self.totals.txns += txns;
        self.totals.rows += rows;
        self.progress.send(crate::progress::SyncEvent::Applied {
            transactions: txns,
            changes: rows,
            bytes,
            lsn: self.applied,
        });
        let now = Instant::now();
        if self
            .totals
            .reported
            .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY)
        {
            self.totals.reported = Some(now);
            tracing::info!(
                transactions = self.totals.txns,
                changes = self.totals.rows,
                position = %self.applied,
                "applied"
            );
        }
    }

    /// Stopping: commits the complete transactions in hand, rolls back the rest, and waits
    /// (briefly) for the target to flush them, so that the final status update reports them.
    pub(super) async fn finish(&mut self, feedback: &Feedback) {
        self.streams.rollback_all().await;
        if self.open.take().is_some_and(|txn| txn.statements > 0) {
            // Its statements are mixed into the group's: the group goes, and is sent again.
            if self.group.begun {
                let _ = self.target.simple_query("ROLLBACK").await;
            }
            self.group = Group::default();
        }
        if let Err(e) = self.commit_group(feedback).await {
            tracing::warn!(error = %format!("{e:#}"), "stopping: the last group was not applied; it is sent again next time");
        }
        // Let the target flush the last commits, so that the slot is confirmed up to them.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while self.awaits_flush() && Instant::now() < deadline {
            tokio::time::sleep(durable::POLL).await;
            if self.poll_flush(feedback).await.is_err() {
                break;
            }
        }
        tracing::info!(position = %self.applied, transactions = self.totals.txns, changes = self.totals.rows, "stopped");
    }
}

/// Confirms `source` to the server if a commit just became durable.
fn durable_now(source: Option<Lsn>, feedback: &Feedback) {
    if let Some(source) = source {
        feedback.confirm(source);
    }
}

fn unknown_relation(id: RelationId) -> SyncError {
    SyncError::Internal(format!("relation {} was never described", id.0))
}

fn apply_error(e: ApplyError) -> SyncError {
    SyncError::Internal(e.to_string())
}

/// The statement of a row change (`None` for an update that sets nothing, and for changes
/// that are not row changes).
fn row_sql<'r>(
    change: &Change,
    described: impl Fn(RelationId) -> Result<&'r TargetRelation, SyncError>,
) -> Result<Option<String>, SyncError> {
    let relation = |id: RelationId| described(id).map(|d| &d.relation);
    Ok(match change {
        Change::Insert {
            relation: id, new, ..
        } => {
            let d = described(*id)?;
            Some(insert_sql(&d.relation, new, &d.generated).map_err(apply_error)?)
        }
        Change::Update {
            relation: id,
            key,
            old,
            new,
            ..
        } => {
            let d = described(*id)?;
            update_sql(d, key.as_ref(), old.as_ref(), new).map_err(apply_error)?
        }
        Change::Delete {
            relation: id,
            key,
            old,
            ..
        } => {
            let d = described(*id)?;
            Some(delete_sql(d, key.as_ref(), old.as_ref()).map_err(apply_error)?)
        }
        Change::Truncate {
            relations,
            cascade,
            restart_identity,
            ..
        } => {
            let rels = relations
                .iter()
                .map(|id| relation(*id))
                .collect::<Result<Vec<_>, _>>()?;
            Some(truncate_sql(&rels, *cascade, *restart_identity))
        }
        _ => None,
    })
}

/// The relation a row change is to.
fn relation_of(change: &Change) -> Option<RelationId> {
    match change {
        Change::Insert { relation, .. }
        | Change::Update { relation, .. }
        | Change::Delete { relation, .. } => Some(*relation),
        Change::Truncate { relations, .. } => relations.first().copied(),
        _ => None,
    }
}
