//! The change model: what every decoder produces and the apply consumes.
//!
//! A logical decoding plugin (pgoutput now; wal2json and decoderbufs later) turns each
//! XLogData payload into one [`Change`]. The model is pgoutput's, because pgoutput is the
//! richest of the three (streamed transactions, two-phase commit, origins, unchanged TOAST);
//! the others produce a subset of it.
//!
//! Values keep their wire representation (DESIGN.md invariant 6): a [`Datum`] is the text or
//! binary bytes the server sent, never parsed into a Rust type, so it reaches the target
//! exactly as the source printed it. The bytes are shared slices of the receive buffer
//! ([`Bytes`]), so a row costs one small `Vec` and no copies of its values.
//!
//! # The stream a decoder produces
//!
//! ```text
//!  plain:     Begin (Origin) (Relation | Type)* change* Commit
//!  streamed:  StreamStart [change with stream_xid]* StreamStop    (repeated, interleaved
//!             ...                                                  with other transactions)
//!             StreamCommit | StreamAbort(xid, subxid)              (outside any block)
//!  two-phase: BeginPrepare change* Prepare ... CommitPrepared | RollbackPrepared
//!  anywhere:  Message { transactional: false }
//! ```
//!
//! Inside a stream block (protocol 2+) pgoutput prefixes Relation, Type, Insert, Update,
//! Delete, Truncate and Message with the xid of the (sub)transaction that made the change;
//! the variants carry it as `stream_xid: Option<u32>`, `None` outside a block. It is the
//! *subtransaction's* xid when the change was made in one (`SAVEPOINT`), which is what
//! [`Change::StreamAbort`] with `subxid != xid` refers to.

use std::fmt;

use bytes::Bytes;

use crate::{Lsn, PgTimestamp};

/// A relation's identity in the change stream: its oid on the source.
///
/// Stable for the relation's life, but not across a drop and re-create, and meaningless on
/// another cluster: map it through the latest [`Relation`] message, never store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationId(pub u32);

impl fmt::Display for RelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "relation {}", self.0)
    }
}

/// The shape of a published relation, as a Relation message describes it.
///
/// Sent before the first change to the relation in a session and again after any change to
/// its schema (or its cache entry on the server): the latest one for an id replaces every
/// earlier one, and the rows that follow have exactly `columns.len()` datums, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: RelationId,
    /// The namespace (`pg_catalog` spelled out, although pgoutput sends it as "").
    pub schema: String,
    pub name: String,
    /// `relreplident`: `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: char,
    /// The published columns: dropped and generated columns are never sent, and a
    /// publication column list (PostgreSQL 15+) leaves out the others.
    pub columns: Vec<RelationColumn>,
}

impl Relation {
    /// Whether updates and deletes carry the whole old row (`REPLICA IDENTITY FULL`).
    pub fn is_replica_identity_full(&self) -> bool {
        self.replica_identity == 'f'
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    pub name: String,
    /// `pg_type` oid on the source; oids of user types (enums, domains...) differ between
    /// clusters, and a [`Change::Type`] names them.
    pub type_oid: u32,
    /// `atttypmod`, -1 when the type has none.
    pub type_modifier: i32,
    /// Part of the replica identity: the key for `d` and `i`, every column for `f`.
    pub is_key: bool,
}

/// One column value as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// A TOASTed value that the change did not touch, so the server did not send it: the
    /// target must keep its current value (DESIGN.md invariant 6: never write it as NULL).
    UnchangedToast,
    /// The type's text output, in the connection's `client_encoding` (UTF-8 for Ferry).
    Text(Bytes),
    /// The type's binary send format (pgoutput `binary 'true'`, for types with a send
    /// function; others still arrive as text).
    Binary(Bytes),
}

/// A tuple: one [`Datum`] per column of the relation, in the Relation message's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row(pub Vec<Datum>);

/// One decoded message of the change stream. See the module documentation for the order
/// in which they arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Opens a committed transaction; its changes follow, then [`Change::Commit`]. No other
    /// transaction's changes interleave with it.
    Begin {
        /// The LSN of the commit record (equals the Commit's `commit_lsn`).
        final_lsn: Lsn,
        commit_time: PgTimestamp,
        xid: u32,
    },
    /// Closes the transaction opened by the last Begin. `end_lsn` is where the next
    /// transaction's WAL starts: the position to store as applied and to confirm as flushed.
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: PgTimestamp,
    },
    /// The transaction came from another node through replication origin `name` (sent
    /// after Begin when the change was replayed there).
    Origin {
        /// The commit LSN on the origin node.
        lsn: Lsn,
        name: String,
    },
    /// A relation's current shape: replaces any earlier Relation with the same id. Precedes
    /// the first change that needs it.
    Relation {
        stream_xid: Option<u32>,
        relation: Relation,
    },
    /// Names a user type (enum, domain, ...) that a following Relation uses: its oid here
    /// is the source's, not the target's.
    Type {
        stream_xid: Option<u32>,
        id: u32,
        /// The namespace (`pg_catalog` spelled out).
        schema: String,
        name: String,
    },
    /// A new row.
    Insert {
        stream_xid: Option<u32>,
        relation: RelationId,
        new: Row,
    },
    /// A changed row. At most one of `key` and `old` is present:
    /// - `key` (pgoutput `K`): the old replica identity, sent only when the key changed (or
    ///   a key value is stored out of line); it has every column, the non-key ones `Null`.
    /// - `old` (pgoutput `O`): the whole old row, with `REPLICA IDENTITY FULL`.
    /// - neither: the key did not change; find the row by the key columns of `new`.
    ///
    /// `new` may hold [`Datum::UnchangedToast`] for columns the update did not touch.
    Update {
        stream_xid: Option<u32>,
        relation: RelationId,
        key: Option<Row>,
        old: Option<Row>,
        new: Row,
    },
    /// A removed row, identified by exactly one of `key` (`K`, non-key columns `Null`) and
    /// `old` (`O`, the whole row, `REPLICA IDENTITY FULL`).
    Delete {
        stream_xid: Option<u32>,
        relation: RelationId,
        key: Option<Row>,
        old: Option<Row>,
    },
    /// `TRUNCATE` of several relations at once (including those reached by CASCADE on the
    /// source). Apply as one statement, with the same options.
    Truncate {
        stream_xid: Option<u32>,
        relations: Vec<RelationId>,
        cascade: bool,
        restart_identity: bool,
    },
    /// `pg_logical_emit_message`. A transactional one belongs to the enclosing transaction
    /// (and is only sent if it commits); a non-transactional one arrives at once, outside
    /// any Begin/Commit, even if its transaction later aborts.
    Message {
        stream_xid: Option<u32>,
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
    /// Opens a block of changes of in-progress transaction `xid` (protocol 2+, `streaming`).
    /// `first_segment` is true for the first block of that transaction. Blocks of different
    /// transactions interleave with each other and with plain transactions.
    StreamStart { xid: u32, first_segment: bool },
    /// Closes the current stream block.
    StreamStop,
    /// Streamed transaction `xid` committed: apply what its blocks carried. Arrives outside
    /// any block.
    StreamCommit {
        xid: u32,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: PgTimestamp,
    },
    /// Streamed transaction `xid` aborted (`subxid == xid`), or only its subtransaction
    /// `subxid` did: discard the changes whose `stream_xid` is `subxid` (and, for the whole
    /// transaction, all of them). `abort_lsn` and `abort_time` are sent with protocol 4 and
    /// `streaming 'parallel'` (PostgreSQL 16+).
    StreamAbort {
        xid: u32,
        subxid: u32,
        abort_lsn: Option<Lsn>,
        abort_time: Option<PgTimestamp>,
    },
    /// Opens a transaction prepared for two-phase commit (protocol 3, `two_phase`).
    BeginPrepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        prepare_time: PgTimestamp,
        xid: u32,
        gid: String,
    },
    /// `PREPARE TRANSACTION gid` closed the transaction opened by BeginPrepare.
    Prepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        prepare_time: PgTimestamp,
        xid: u32,
        gid: String,
    },
    /// `COMMIT PREPARED gid`.
    CommitPrepared {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: PgTimestamp,
        xid: u32,
        gid: String,
    },
    /// `ROLLBACK PREPARED gid`.
    RollbackPrepared {
        prepare_end_lsn: Lsn,
        rollback_end_lsn: Lsn,
        prepare_time: PgTimestamp,
        rollback_time: PgTimestamp,
        xid: u32,
        gid: String,
    },
    /// A streamed transaction was prepared (protocol 3, `two_phase` with `streaming`).
    StreamPrepare {
        prepare_lsn: Lsn,
        end_lsn: Lsn,
        prepare_time: PgTimestamp,
        xid: u32,
        gid: String,
    },
}

impl Change {
    /// The variant's name, for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Begin { .. } => "Begin",
            Change::Commit { .. } => "Commit",
            Change::Origin { .. } => "Origin",
            Change::Relation { .. } => "Relation",
            Change::Type { .. } => "Type",
            Change::Insert { .. } => "Insert",
            Change::Update { .. } => "Update",
            Change::Delete { .. } => "Delete",
            Change::Truncate { .. } => "Truncate",
            Change::Message { .. } => "Message",
            Change::StreamStart { .. } => "StreamStart",
            Change::StreamStop => "StreamStop",
            Change::StreamCommit { .. } => "StreamCommit",
            Change::StreamAbort { .. } => "StreamAbort",
            Change::BeginPrepare { .. } => "BeginPrepare",
            Change::Prepare { .. } => "Prepare",
            Change::CommitPrepared { .. } => "CommitPrepared",
            Change::RollbackPrepared { .. } => "RollbackPrepared",
            Change::StreamPrepare { .. } => "StreamPrepare",
        }
    }

    /// The (sub)transaction a change inside a stream block belongs to; `None` for changes
    /// outside one and for the variants that never carry it.
    pub fn stream_xid(&self) -> Option<u32> {
        match self {
            Change::Relation { stream_xid, .. }
            | Change::Type { stream_xid, .. }
            | Change::Insert { stream_xid, .. }
            | Change::Update { stream_xid, .. }
            | Change::Delete { stream_xid, .. }
            | Change::Truncate { stream_xid, .. }
            | Change::Message { stream_xid, .. } => *stream_xid,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_xid_is_read_from_the_streamable_variants_only() {
        let insert = Change::Insert {
            stream_xid: Some(7),
            relation: RelationId(16384),
            new: Row(vec![Datum::Null]),
        };
        assert_eq!(insert.stream_xid(), Some(7));
        assert_eq!(insert.name(), "Insert");
        let start = Change::StreamStart {
            xid: 7,
            first_segment: true,
        };
        assert_eq!(start.stream_xid(), None);
    }

    #[test]
    fn relation_id_displays_its_oid() {
        assert_eq!(RelationId(16384).to_string(), "relation 16384");
    }
}
