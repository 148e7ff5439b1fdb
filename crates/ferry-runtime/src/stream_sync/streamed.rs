//! Streamed transactions (pgoutput protocol 2, `streaming 'on'`): a transaction larger than
//! the source's `logical_decoding_work_mem` arrives in blocks before it commits, interleaved
//! with other transactions. Each one is applied as its blocks arrive, in a target
//! transaction of its own on a connection of its own, so it is never held whole:
//!
//! ```text
//!  Stream Start(xid)      take a connection (an idle one, or a new one), BEGIN lazily
//!  change(subxid)         SAVEPOINT the first time a subtransaction shows up, then the SQL
//!  Stream Stop            send what the block gathered
//!  Stream Abort(xid,sub)  ROLLBACK TO that subtransaction's savepoint, or ROLLBACK it all
//!  Stream Commit(xid)     progress row, COMMIT, the connection goes back to the idle pool
//! ```
//!
//! Why concurrent target transactions are safe: every block starts only after the group of
//! plain transactions before it has committed on the target (apply.rs), so a row that an
//! earlier commit wrote is there when the block changes it. A streamed transaction holds
//! locks on the target only on rows its source transaction changed, and on the source no
//! transaction can touch those rows after it and commit before it (it would wait for its
//! lock); a change that arrives after one of its blocks belongs to a transaction that
//! committed after the block's changes were made, and the next block again waits for it. When
//! the target disagrees anyway (its own triggers, a user's lock), a wait could close a cycle
//! through Ferry that PostgreSQL cannot see; `lock_timeout` breaks it, and the pipeline
//! restarts with streaming off ([`SyncError::StreamingConflict`]).
//!
//! Subtransactions: a savepoint is placed before the first change of each subtransaction;
//! rolling back to it undoes that subtransaction and everything after it, which on the
//! source were its own children (a sibling starts only after it ended, and an ended one is
//! aborted only with its parent). A savepoint that a rollback destroyed is forgotten.

use std::collections::HashMap;

use ferry_core::Change;
use ferry_pgwire::{ConnParams, ReplicationClient};
use ferry_postgres::sink::batch::{Batcher, TargetRelation};

use super::durable;
use super::relations::RelationCache;
use super::setup::{session, streamed_session_lock_sql};
use crate::error::SyncError;

/// More concurrent streamed transactions than this, and the pipeline restarts without
/// streaming instead of opening ever more target connections.
const MAX_OPEN: usize = 8;

/// SQL gathered for a streamed transaction is sent at least this often (and at Stream Stop).
const FLUSH_BYTES: usize = 1 << 20;

/// One open streamed transaction.
pub(super) struct StreamedTxn {
    conn: ReplicationClient,
    pub(super) pending: Pending,
    /// What this transaction's Relation messages described; the pipeline's cache takes it
    /// in when it commits.
    pub(super) relations: RelationCache,
    pub(super) rows: u64,
}

/// What a streamed transaction has gathered and not sent yet.
pub(super) struct Pending {
    sql: String,
    begun: bool,
    xid: u32,
    /// Subtransactions with a savepoint, in the order they were placed.
    savepoints: Vec<u32>,
    batcher: Batcher,
    /// Bytes of SQL sent so far.
    sent: u64,
}

impl Pending {
    /// Places a savepoint before the first change of subtransaction `subxid`.
    fn enter(&mut self, subxid: u32) {
        if subxid != self.xid && !self.savepoints.contains(&subxid) {
            self.batcher.finish(&mut self.sql);
            self.sql.push_str(&format!("SAVEPOINT s{subxid};\n"));
            self.savepoints.push(subxid);
        }
    }

    /// Takes a row change of `subxid` into the open run if it can join one.
    pub(super) fn coalesce(
        &mut self,
        subxid: u32,
        target: &TargetRelation,
        change: &Change,
    ) -> Result<bool, SyncError> {
        self.enter(subxid);
        self.batcher
            .add(target, change, &mut self.sql)
            .map_err(|e| SyncError::Internal(e.to_string()))
    }

    /// Adds the statement of a change made by (sub)transaction `subxid`.
    fn push(&mut self, subxid: u32, sql: &str) {
        self.enter(subxid);
        self.batcher.finish(&mut self.sql);
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
    }
}

impl StreamedTxn {
    /// Adds the statement of a change made by (sub)transaction `subxid`.
    pub(super) async fn push(&mut self, subxid: u32, sql: &str) -> Result<(), SyncError> {
        self.pending.push(subxid, sql);
        self.flush_if_large().await
    }

    /// Sends what is gathered once it is large.
    pub(super) async fn flush_if_large(&mut self) -> Result<(), SyncError> {
        if self.pending.sql.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// The connection, for catalog reads inside this transaction (after what is gathered).
    pub(super) async fn connection(&mut self) -> Result<&mut ReplicationClient, SyncError> {
        self.flush().await?;
        Ok(&mut self.conn)
    }

    async fn flush(&mut self) -> Result<(), SyncError> {
        let pending = &mut self.pending;
        pending.batcher.finish(&mut pending.sql);
        if pending.sql.is_empty() {
            return Ok(());
        }
        if !pending.begun {
            pending.sql.insert_str(0, "BEGIN;\n");
            pending.begun = true;
        }
        let sql = std::mem::take(&mut pending.sql);
        pending.sent += sql.len() as u64;
        self.conn
            .simple_query(&sql)
            .await
            .map_err(|e| SyncError::apply("applying a streamed transaction", e, true, true))?;
        Ok(())
    }
}

/// What a committed streamed transaction leaves behind.
pub(super) struct Committed {
    pub(super) relations: RelationCache,
    pub(super) rows: u64,
    /// Bytes of SQL it sent to the target.
    pub(super) bytes: u64,
    /// The target's WAL insert and flush positions right after its commit.
    pub(super) inserted: ferry_core::Lsn,
    pub(super) flushed: ferry_core::Lsn,
}

/// The streamed transactions in flight and the idle connections for new ones.
pub(super) struct Streams {
    target: ConnParams,
    pipeline: String,
    idle: Vec<ReplicationClient>,
    open: HashMap<u32, StreamedTxn>,
    /// The transaction whose block is open.
    block: Option<u32>,
}

impl Streams {
    pub(super) fn new(target: ConnParams, pipeline: String) -> Self {
        Streams {
            target,
            pipeline,
            idle: Vec::new(),
            open: HashMap::new(),
            block: None,
        }
    }

    pub(super) fn any_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Stream Start: a block of `xid` follows.
    pub(super) async fn start(&mut self, xid: u32) -> Result<(), SyncError> {
        if !self.open.contains_key(&xid) {
            if self.open.len() >= MAX_OPEN {
                return Err(SyncError::StreamingConflict(format!(
                    "more than {MAX_OPEN} large transactions are in flight at once"
                )));
            }
            let conn = match self.idle.pop() {
                Some(conn) => conn,
                None => {
                    let mut conn = session(&self.target).await?;
                    conn.simple_query(&streamed_session_lock_sql(&self.pipeline))
                        .await
                        .map_err(|e| {
                            SyncError::session("locking a streamed-transaction session", e)
                        })?;
                    conn
                }
            };
            self.open.insert(
                xid,
                StreamedTxn {
                    conn,
                    pending: Pending {
                        sql: String::new(),
                        begun: false,
                        xid,
                        savepoints: Vec::new(),
                        batcher: Batcher::default(),
                        sent: 0,
                    },
                    relations: RelationCache::default(),
                    rows: 0,
                },
            );
        }
        self.block = Some(xid);
        Ok(())
    }

    /// The transaction of the open block.
    pub(super) fn current(&mut self) -> Result<&mut StreamedTxn, SyncError> {
        self.block
            .and_then(|xid| self.open.get_mut(&xid))
            .ok_or_else(|| SyncError::Internal("a streamed change outside a stream block".into()))
    }

    /// Stream Stop: sends what the block gathered.
    pub(super) async fn stop(&mut self) -> Result<(), SyncError> {
        if let Some(txn) = self.block.take().and_then(|xid| self.open.get_mut(&xid)) {
            txn.flush().await?;
        }
        Ok(())
    }

    /// Row changes of streamed transaction `xid` so far.
    pub(super) fn rows(&self, xid: u32) -> u64 {
        self.open.get(&xid).map_or(0, |t| t.rows)
    }

    /// Stream Abort of `subxid` (the whole transaction when it equals `xid`).
    pub(super) async fn abort(&mut self, xid: u32, subxid: u32) -> Result<(), SyncError> {
        if subxid == xid {
            if let Some(txn) = self.open.remove(&xid) {
                self.release(txn, "ROLLBACK").await?;
            }
            return Ok(());
        }
        let Some(txn) = self.open.get_mut(&xid) else {
            return Ok(());
        };
        // Not there: it made no change, or an earlier rollback already undid it.
        let pending = &mut txn.pending;
        if let Some(at) = pending.savepoints.iter().position(|&s| s == subxid) {
            pending.batcher.finish(&mut pending.sql);
            pending
                .sql
                .push_str(&format!("ROLLBACK TO SAVEPOINT s{subxid};\n"));
            pending.savepoints.truncate(at + 1);
            txn.flush().await?;
        }
        Ok(())
    }

    /// Stream Commit: runs `tail` (the progress row) and commits, or rolls back when
    /// `already_applied`. Returns the transaction's relations and row count.
    pub(super) async fn commit(
        &mut self,
        xid: u32,
        tail: &str,
        already_applied: bool,
    ) -> Result<Option<Committed>, SyncError> {
        let Some(mut txn) = self.open.remove(&xid) else {
            return Ok(None);
        };
        if already_applied {
            self.release(txn, "ROLLBACK").await?;
            return Ok(None);
        }
        txn.pending.batcher.finish(&mut txn.pending.sql);
        txn.pending.sql.push_str(tail);
        txn.pending.sql.push_str(";\n");
        txn.flush().await?;
        let relations = std::mem::take(&mut txn.relations);
        let rows = txn.rows;
        let bytes = txn.pending.sent;
        let results = self.release(txn, durable::COMMIT).await?;
        let (inserted, flushed) = durable::positions(&results)?;
        Ok(Some(Committed {
            relations,
            rows,
            bytes,
            inserted,
            flushed,
        }))
    }

    async fn release(
        &mut self,
        mut txn: StreamedTxn,
        end: &str,
    ) -> Result<Vec<ferry_pgwire::QueryResult>, SyncError> {
        let mut results = Vec::new();
        if txn.pending.begun {
            results =
                txn.conn.simple_query(end).await.map_err(|e| {
                    SyncError::apply("ending a streamed transaction", e, true, true)
                })?;
        }
        self.idle.push(txn.conn);
        Ok(results)
    }

    /// Rolls back every open streamed transaction (stopping, or after an error).
    pub(super) async fn rollback_all(&mut self) {
        for (_, mut txn) in self.open.drain() {
            if txn.pending.begun {
                let _ = txn.conn.simple_query("ROLLBACK").await;
            }
        }
        self.block = None;
    }
}
