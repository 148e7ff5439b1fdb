//! The decoderbufs decoder: one XLogData payload (one protobuf `RowMessage` of
//! debezium/postgres-decoderbufs) and the XLogData's WAL position in, the [`Change`]s it
//! means out, sans-IO.
//!
//! Written against decoderbufs 2.1.2 (Debian's `postgresql-15-decoderbufs`), started
//! without options (`debug-mode` would make the output text). The plugin needs no
//! `shared_preload_libraries` entry: it is loaded like any output plugin when the slot is
//! created or read (its README asks for one, but its `_PG_init` is empty).
//!
//! ```text
//!  op BEGIN   transaction_id, commit_time                          → Begin
//!  op INSERT  table, new_tuple (every column)                      → (Relation) Insert
//!  op UPDATE  table, new_tuple, old_tuple (key changed, or FULL)   → (Relation) Update
//!  op DELETE  table, old_tuple                                     → (Relation) Delete
//!  op COMMIT  transaction_id, commit_time                          → Commit
//! ```
//!
//! # What is mapped how
//!
//! - **LSNs.** decoderbufs sends none. The XLogData header's position is the plugin's
//!   write location: the transaction's first LSN for BEGIN, the change's for a row, and
//!   the end of the commit record (pgoutput's `end_lsn`) for COMMIT. So Commit's `end_lsn`
//!   is exact, and is what to confirm. The commit record's own LSN is never known, and
//!   Begin's `final_lsn` (and Commit's `commit_lsn`, equal to it) is a **lower bound** of
//!   it: the greatest of the start position given to [`DecoderbufsDecoder::new`], the
//!   previous Commit's `end_lsn` and the BEGIN's header position. That is what the apply
//!   needs: it skips a transaction whose `final_lsn` is below the stored position, which
//!   the bound is exactly when the real commit LSN is (transactions arrive in commit order,
//!   each commit record after the previous one's end, and the server itself skips those
//!   whose commit record starts before the start position). The transaction's first LSN
//!   alone would not do: a transaction that began before an already applied one committed
//!   would be skipped.
//! - **Relations.** Synthetic, as for wal2json (see `relations.rs`); every row lists every
//!   column, so the column set is always whole. decoderbufs names no key: the caller
//!   registers each replicated table's [`TableIdentity`] from the source catalog, and the
//!   Relation's key columns and `replica_identity` come from it (a table never registered
//!   has no key columns, so the apply refuses its UPDATE and DELETE).
//! - **Identity.** `old_tuple` is the whole old row with REPLICA IDENTITY FULL (`old`),
//!   else the old key with every other column null (`key`). An UPDATE or DELETE of a table
//!   without replica identity carries no tuple at all: [`DecodeError::NoIdentity`] naming
//!   the table (its [`DecodeError::table`] lets a caller skip tables it does not replicate,
//!   as decoderbufs cannot filter tables).
//! - **Unchanged TOAST.** `datum_missing` is [`Datum::UnchangedToast`].
//! - **Values.** See `text.rs`: every type's exact text input, except `timetz` and
//!   `money`, which are [`DecodeError::Lossy`]. The database must be UTF8 (decoderbufs
//!   sends text in the server encoding).
//! - **Generated columns.** decoderbufs sends stored generated columns (pgoutput leaves
//!   them out), so they are in the Relation and the rows: the apply must not write them.
//! - **Not sent at all by decoderbufs 2.1:** TRUNCATE (no truncate callback: a TRUNCATE on
//!   the source is invisible, and `ferry check` must warn) and `pg_logical_emit_message`
//!   messages (no message callback). Hence no Truncate or Message changes.
//!
//! A payload that fails to decode leaves the decoder's state as it was; the decoder never
//! panics, and prost never allocates more than the payload's length implies.

mod names;
mod proto;
mod relations;
#[cfg(test)]
mod tests;
mod text;

use std::collections::HashSet;
use std::fmt;

use ferry_core::{Change, Datum, Lsn, PgTimestamp, Relation, Row, TableName};
use prost::Message as _;

use relations::Registry;
pub use relations::TableIdentity;

/// Microseconds from 1970-01-01 to 2000-01-01 (decoderbufs' epoch to PostgreSQL's).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A payload that is not decoderbufs output this decoder can turn into exact changes.
/// Never transient: the same bytes decode the same way on every retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("decoderbufs payload is not a RowMessage: {reason}")]
    NotProtobuf { reason: String },
    #[error("decoderbufs RowMessage has no op")]
    NoOp,
    #[error("unknown decoderbufs op {op}")]
    UnknownOp { op: i32 },
    #[error("decoderbufs {op} has no {field}")]
    Missing { op: Op, field: &'static str },
    #[error("decoderbufs {op}: {field} {problem}")]
    Invalid {
        op: Op,
        field: &'static str,
        problem: String,
    },
    #[error("decoderbufs {op} of table {table}: column {column:?} {problem}")]
    Column {
        op: Op,
        table: TableName,
        column: String,
        problem: String,
    },
    #[error(
        "decoderbufs {op} of table {table}: column {column:?} of type {type_name} cannot be \
         replicated exactly: {reason}"
    )]
    Lossy {
        op: Op,
        table: TableName,
        column: String,
        type_name: &'static str,
        reason: &'static str,
    },
    #[error(
        "decoderbufs {op} of table {table} carries no row: give the table a primary key or \
         REPLICA IDENTITY FULL on the source"
    )]
    NoIdentity { op: Op, table: TableName },
    #[error("decoderbufs {op} {problem}")]
    OutOfPlace { op: Op, problem: String },
}

impl DecodeError {
    /// Always false: a malformed payload is malformed on every retry.
    pub fn is_transient(&self) -> bool {
        false
    }

    /// The table the failing change was about, when it names one: a caller that does not
    /// replicate that table may skip the payload (the decoder's state is unchanged).
    pub fn table(&self) -> Option<&TableName> {
        match self {
            DecodeError::Column { table, .. }
            | DecodeError::Lossy { table, .. }
            | DecodeError::NoIdentity { table, .. } => Some(table),
            _ => None,
        }
    }
}

/// The `op` of a RowMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Begin,
    Commit,
    Insert,
    Update,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Begin => "BEGIN",
            Op::Commit => "COMMIT",
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        })
    }
}

/// Decodes one replication session's decoderbufs payloads in order.
///
/// One decoder per replication connection: it holds the synthetic Relations emitted so far,
/// the registered table identities, the open transaction and the LSN bound for the next.
#[derive(Debug, Clone)]
pub struct DecoderbufsDecoder {
    relations: Registry,
    open: Option<OpenTransaction>,
    /// No commit the session sends can start before this: the start position, then each
    /// Commit's end.
    next_commit_at_least: Lsn,
    /// The tables whose changes are decoded ([`DecoderbufsDecoder::keep_only`]); `None`:
    /// every table's.
    kept: Option<std::collections::HashSet<TableName>>,
}

#[derive(Debug, Clone, Copy)]
struct OpenTransaction {
    xid: u32,
    final_lsn: Lsn,
}

/// A column of a tuple: its name, type oid and value.
struct Column {
    name: String,
    type_oid: u32,
    datum: Datum,
}

impl DecoderbufsDecoder {
    /// A decoder for a session started with `START_REPLICATION … LOGICAL start`, where
    /// `start` is the position already applied (not 0/0: see the module documentation).
    pub fn new(start: Lsn) -> Self {
        DecoderbufsDecoder {
            relations: Registry::default(),
            open: None,
            next_commit_at_least: start,
            kept: None,
        }
    }

    /// Decodes only the changes of `tables`; others yield nothing, before any check of
    /// their values: decoderbufs sends every table's changes, and one Ferry does not carry
    /// (a `timetz` column, no row identity) must not stop the stream.
    pub fn keep_only(&mut self, tables: impl IntoIterator<Item = TableName>) {
        self.kept = Some(tables.into_iter().collect());
    }

    /// Sets how `table`'s rows are identified (its replica identity, from the catalog);
    /// the next change of the table re-describes it if that changes its Relation.
    pub fn set_identity(&mut self, table: TableName, identity: TableIdentity) {
        self.relations.set_identity(table, identity);
    }

    /// Decodes the next payload of the session; `wal_start` is its XLogData header's WAL
    /// position. Returns the change, preceded by a Relation when the table's shape changed.
    pub fn decode(&mut self, wal_start: Lsn, payload: &[u8]) -> Result<Vec<Change>, DecodeError> {
        let message = proto::RowMessage::decode(payload).map_err(|e| DecodeError::NotProtobuf {
            reason: e.to_string(),
        })?;
        let op = match message.op.ok_or(DecodeError::NoOp)? {
            proto::op::BEGIN => Op::Begin,
            proto::op::COMMIT => Op::Commit,
            proto::op::INSERT => Op::Insert,
            proto::op::UPDATE => Op::Update,
            proto::op::DELETE => Op::Delete,
            op => return Err(DecodeError::UnknownOp { op }),
        };
        match op {
            Op::Begin => self.begin(wal_start, &message),
            Op::Commit => self.commit(wal_start, &message),
            Op::Insert | Op::Update | Op::Delete => self.row(op, &message),
        }
    }

    fn begin(&mut self, wal_start: Lsn, m: &proto::RowMessage) -> Result<Vec<Change>, DecodeError> {
        let op = Op::Begin;
        let xid = m.transaction_id.ok_or(DecodeError::Missing {
            op,
            field: "transaction_id",
        })?;
        let commit_time = commit_time(op, m.commit_time)?;
        if let Some(open) = self.open {
            return Err(DecodeError::OutOfPlace {
                op,
                problem: format!("of xid {xid} while xid {} is open", open.xid),
            });
        }
        let final_lsn = self.next_commit_at_least.max(wal_start);
        self.open = Some(OpenTransaction { xid, final_lsn });
        Ok(vec![Change::Begin {
            final_lsn,
            commit_time,
            xid,
        }])
    }

    fn commit(
        &mut self,
        wal_start: Lsn,
        m: &proto::RowMessage,
    ) -> Result<Vec<Change>, DecodeError> {
        let op = Op::Commit;
        let xid = m.transaction_id.ok_or(DecodeError::Missing {
            op,
            field: "transaction_id",
        })?;
        let commit_time = commit_time(op, m.commit_time)?;
        let open = self.check_open(op, Some(xid))?;
        if wal_start <= open.final_lsn {
            return Err(DecodeError::Invalid {
                op,
                field: "WAL position",
                problem: format!(
                    "{wal_start} is not after the transaction's earliest commit LSN {}",
                    open.final_lsn
                ),
            });
        }
        self.open = None;
        self.next_commit_at_least = wal_start;
        Ok(vec![Change::Commit {
            commit_lsn: open.final_lsn,
            end_lsn: wal_start,
            commit_time,
        }])
    }

    fn row(&mut self, op: Op, m: &proto::RowMessage) -> Result<Vec<Change>, DecodeError> {
        let table = m
            .table
            .as_deref()
            .ok_or(DecodeError::Missing { op, field: "table" })?;
        let table = names::qualified(table)
            .map(|(schema, name)| TableName::new(schema, name))
            .ok_or_else(|| DecodeError::Invalid {
                op,
                field: "table",
                problem: format!("{table:?} is not a qualified name"),
            })?;
        if self
            .kept
            .as_ref()
            .is_some_and(|kept| !kept.contains(&table))
        {
            self.check_open(op, m.transaction_id)?;
            return Ok(Vec::new());
        }
        // decoderbufs describes every new column's type; a count that differs means the
        // payload is not whole (protobuf has no end marker).
        if m.new_typeinfo.len() != m.new_tuple.len() {
            return Err(DecodeError::Invalid {
                op,
                field: "new_typeinfo",
                problem: format!(
                    "has {} entries for {} new columns",
                    m.new_typeinfo.len(),
                    m.new_tuple.len()
                ),
            });
        }
        let new = tuple(op, &table, &m.new_tuple)?;
        let old = tuple(op, &table, &m.old_tuple)?;
        self.check_open(op, m.transaction_id)?;
        let no_identity = || DecodeError::NoIdentity {
            op,
            table: table.clone(),
        };
        // The tuple that lists the columns: the new one, or the old one of a DELETE.
        let shape = match op {
            // Not even a table without columns: its INSERT has nothing to apply, and an
            // empty tuple is what a payload cut after its op would look like.
            Op::Insert if new.is_empty() => {
                return Err(DecodeError::Invalid {
                    op,
                    field: "new_tuple",
                    problem: format!("of table {table} is empty"),
                })
            }
            Op::Insert => &new,
            Op::Update if new.is_empty() => return Err(no_identity()),
            Op::Update => &new,
            _ if old.is_empty() => return Err(no_identity()),
            _ => &old,
        };
        let columns: Vec<(String, u32)> =
            shape.iter().map(|c| (c.name.clone(), c.type_oid)).collect();
        if op == Op::Update && !old.is_empty() && !same_columns(&old, &columns) {
            return Err(DecodeError::Invalid {
                op,
                field: "old_tuple",
                problem: format!("of table {table} has other columns than new_tuple"),
            });
        }
        let relation = self.relations.plan(&table, &columns);
        let (key, old) = if old.is_empty() {
            (None, None)
        } else if relation.is_replica_identity_full() {
            (None, Some(row(old)))
        } else {
            (Some(key_row(&relation, old)), None)
        };
        let change = match op {
            Op::Insert => Change::Insert {
                stream_xid: None,
                relation: relation.id,
                new: row(new),
            },
            Op::Update => Change::Update {
                stream_xid: None,
                relation: relation.id,
                key,
                old,
                new: row(new),
            },
            _ => Change::Delete {
                stream_xid: None,
                relation: relation.id,
                key,
                old,
            },
        };
        let mut out = Vec::with_capacity(2);
        if let Some(relation) = self.relations.record(relation) {
            out.push(Change::Relation {
                stream_xid: None,
                relation,
            });
        }
        out.push(change);
        Ok(out)
    }

    /// The open transaction, if there is one (and `xid`, when given, is its xid).
    fn check_open(&self, op: Op, xid: Option<u32>) -> Result<OpenTransaction, DecodeError> {
        match (self.open, xid) {
            (None, _) => Err(DecodeError::OutOfPlace {
                op,
                problem: "outside a transaction".to_owned(),
            }),
            (Some(open), Some(xid)) if open.xid != xid => Err(DecodeError::OutOfPlace {
                op,
                problem: format!("of xid {xid} inside transaction {}", open.xid),
            }),
            (Some(open), _) => Ok(open),
        }
    }
}

/// The columns of a tuple, each value turned into its text.
fn tuple(
    op: Op,
    table: &TableName,
    datums: &[proto::DatumMessage],
) -> Result<Vec<Column>, DecodeError> {
    let mut seen = HashSet::with_capacity(datums.len());
    datums
        .iter()
        .enumerate()
        .map(|(position, d)| {
            let column_error = |column: String, problem: String| DecodeError::Column {
                op,
                table: table.clone(),
                column,
                problem,
            };
            let quoted = d
                .column_name
                .as_deref()
                .ok_or_else(|| column_error(format!("#{}", position + 1), "has no name".into()))?;
            let name = names::identifier(quoted).ok_or_else(|| {
                column_error(quoted.to_owned(), "is not a quoted identifier".into())
            })?;
            if !seen.insert(name.clone()) {
                return Err(column_error(name, "appears twice".into()));
            }
            let type_oid = d
                .column_type
                .and_then(|oid| u32::try_from(oid).ok())
                .ok_or_else(|| column_error(name.clone(), "has no type oid".into()))?;
            let datum =
                text::datum(type_oid, d.datum.as_ref()).map_err(|problem| match problem {
                    text::Problem::Lossy(lossy) => DecodeError::Lossy {
                        op,
                        table: table.clone(),
                        column: name.clone(),
                        type_name: lossy.type_name,
                        reason: lossy.reason,
                    },
                    text::Problem::Invalid(problem) => column_error(name.clone(), problem),
                })?;
            Ok(Column {
                name,
                type_oid,
                datum,
            })
        })
        .collect()
}

fn same_columns(tuple: &[Column], columns: &[(String, u32)]) -> bool {
    tuple.len() == columns.len()
        && tuple
            .iter()
            .zip(columns)
            .all(|(c, (name, oid))| c.name == *name && c.type_oid == *oid)
}

fn row(tuple: Vec<Column>) -> Row {
    Row(tuple.into_iter().map(|c| c.datum).collect())
}

/// The key tuple pgoutput would send (`K`): key columns' values, every other column null.
fn key_row(relation: &Relation, tuple: Vec<Column>) -> Row {
    Row(relation
        .columns
        .iter()
        .zip(tuple)
        .map(|(column, c)| if column.is_key { c.datum } else { Datum::Null })
        .collect())
}

/// decoderbufs' commit time (µs since 1970-01-01) as PostgreSQL's.
fn commit_time(op: Op, micros: Option<u64>) -> Result<PgTimestamp, DecodeError> {
    let micros = micros.ok_or(DecodeError::Missing {
        op,
        field: "commit_time",
    })?;
    i64::try_from(micros)
        .ok()
        .and_then(|m| m.checked_sub(PG_EPOCH_MICROS))
        .map(PgTimestamp)
        .ok_or_else(|| DecodeError::Invalid {
            op,
            field: "commit_time",
            problem: format!("{micros} is not a time"),
        })
}
