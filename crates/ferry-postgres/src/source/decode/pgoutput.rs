//! The pgoutput decoder: one XLogData payload in, one [`Change`] out, sans-IO.
//!
//! Follows "Logical Replication Message Formats" of the PostgreSQL documentation for
//! protocol versions 1 to 4 (PostgreSQL 10 to 16+):
//!
//! ```text
//!  v1  Begin Commit Origin Relation Type Insert Update Delete Truncate Message
//!  v2  + Stream Start/Stop/Commit/Abort; inside a stream block, Relation, Type, Insert,
//!        Update, Delete, Truncate and Message start with the (sub)transaction's xid
//!  v3  + Begin Prepare, Prepare, Commit Prepared, Rollback Prepared, Stream Prepare
//!  v4  + Stream Abort carries the abort LSN and time (streaming 'parallel')
//! ```
//!
//! The one piece of state the format needs is whether a stream block is open, because that
//! decides whether the xid prefix is there: [`PgoutputDecoder`] tracks it, and
//! [`decode_message`] takes it as an argument (for the fuzz target and for callers that
//! track it themselves). Everything else (the relation cache, transaction boundaries) is the
//! apply's business; the decoder only parses.
//!
//! Every count and length is checked against the bytes left before anything is allocated,
//! nothing is indexed or cast unchecked, and bytes PostgreSQL never sends (reserved flags,
//! unknown tuple kinds, trailing bytes) are errors rather than guesses: a misread message
//! would corrupt the target silently. Values are zero-copy slices of the payload.

mod kind;
mod reader;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use ferry_core::{Change, Datum, Relation, RelationColumn, RelationId, Row};

pub use kind::MessageKind;
use reader::Reader;

/// A payload that is not a pgoutput message this decoder understands. Never transient: the
/// same bytes decode the same way on every retry, so the pipeline must stop and say so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty pgoutput message")]
    Empty,
    #[error("unknown pgoutput message kind {tag:#04x} ({})", printable(.tag))]
    UnknownKind { tag: u8 },
    #[error("pgoutput {kind} message ends in {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        kind: MessageKind,
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("pgoutput {kind} message: {field} {problem}")]
    Invalid {
        kind: MessageKind,
        field: &'static str,
        problem: String,
    },
    #[error("pgoutput {kind} message has {count} bytes after its last field")]
    TrailingBytes { kind: MessageKind, count: usize },
    #[error("pgoutput {kind} message {}", place(.in_stream))]
    OutOfPlace { kind: MessageKind, in_stream: bool },
}

fn printable(tag: &u8) -> String {
    char::from(*tag).escape_default().to_string()
}

fn place(in_stream: &bool) -> &'static str {
    if *in_stream {
        "inside a stream block"
    } else {
        "outside a stream block"
    }
}

impl DecodeError {
    /// Always false: a malformed message is malformed on every retry.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// Decodes a session's pgoutput messages in order, tracking the open stream block.
///
/// One decoder per replication connection: a new connection starts outside any block. A
/// message that fails to decode leaves the state as it was.
#[derive(Debug, Clone, Default)]
pub struct PgoutputDecoder {
    /// The xid of the open stream block.
    stream: Option<u32>,
}

impl PgoutputDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The xid of the stream block that is open, if one is.
    pub fn open_stream(&self) -> Option<u32> {
        self.stream
    }

    /// Decodes the next message of the session.
    ///
    /// Besides parsing, rejects Stream Start inside a block, Stream Stop outside one, and
    /// transaction-level messages (Begin, Commit, Stream Commit, ...) inside one: each would
    /// mean the xid prefixes are being misread.
    pub fn decode(&mut self, data: Bytes) -> Result<Change, DecodeError> {
        let &tag = data.first().ok_or(DecodeError::Empty)?;
        let kind = MessageKind::from_tag(tag).ok_or(DecodeError::UnknownKind { tag })?;
        let in_stream = self.stream.is_some();
        let allowed = if in_stream {
            kind.may_be_in_stream()
        } else {
            kind != MessageKind::StreamStop
        };
        if !allowed {
            return Err(DecodeError::OutOfPlace { kind, in_stream });
        }
        let change = decode_message(data, in_stream)?;
        match change {
            Change::StreamStart { xid, .. } => self.stream = Some(xid),
            Change::StreamStop => self.stream = None,
            _ => {}
        }
        Ok(change)
    }
}

/// Decodes one message; `in_stream` says whether it arrived between Stream Start and
/// Stream Stop, where some kinds start with an xid. Does not check that the kind may appear
/// there ([`PgoutputDecoder::decode`] does).
pub fn decode_message(data: Bytes, in_stream: bool) -> Result<Change, DecodeError> {
    let &tag = data.first().ok_or(DecodeError::Empty)?;
    let kind = MessageKind::from_tag(tag).ok_or(DecodeError::UnknownKind { tag })?;
    let mut r = Reader::new(kind, data.slice(1..));
    let stream_xid = if in_stream && kind.has_stream_xid() {
        Some(r.u32("xid")?)
    } else {
        None
    };
    let change = match kind {
        MessageKind::Begin => Change::Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_time: r.timestamp("commit timestamp")?,
            xid: r.u32("xid")?,
        },
        MessageKind::Commit => {
            r.zero_flags("flags")?;
            Change::Commit {
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.timestamp("commit timestamp")?,
            }
        }
        MessageKind::Origin => Change::Origin {
            lsn: r.lsn("origin commit LSN")?,
            name: r.string("origin name")?,
        },
        MessageKind::Relation => Change::Relation {
            stream_xid,
            relation: relation(&mut r)?,
        },
        MessageKind::Type => Change::Type {
            stream_xid,
            id: r.u32("type oid")?,
            schema: namespace(&mut r)?,
            name: r.string("type name")?,
        },
        MessageKind::Insert => {
            let relation = RelationId(r.u32("relation oid")?);
            match r.u8("tuple marker")? {
                b'N' => {}
                other => return Err(bad_marker(&r, other, "N")),
            }
            Change::Insert {
                stream_xid,
                relation,
                new: tuple(&mut r)?,
            }
        }
        MessageKind::Update => {
            let relation = RelationId(r.u32("relation oid")?);
            let (mut key, mut old) = (None, None);
            let mut marker = r.u8("tuple marker")?;
            if marker == b'K' || marker == b'O' {
                let row = tuple(&mut r)?;
                if marker == b'K' {
                    key = Some(row);
                } else {
                    old = Some(row);
                }
                marker = r.u8("new tuple marker")?;
            }
            if marker != b'N' {
                return Err(bad_marker(&r, marker, "K, O or N"));
            }
            Change::Update {
                stream_xid,
                relation,
                key,
                old,
                new: tuple(&mut r)?,
            }
        }
        MessageKind::Delete => {
            let relation = RelationId(r.u32("relation oid")?);
            let (key, old) = match r.u8("tuple marker")? {
                b'K' => (Some(tuple(&mut r)?), None),
                b'O' => (None, Some(tuple(&mut r)?)),
                other => return Err(bad_marker(&r, other, "K or O")),
            };
            Change::Delete {
                stream_xid,
                relation,
                key,
                old,
            }
        }
        MessageKind::Truncate => truncate(&mut r, stream_xid)?,
        MessageKind::Message => {
            let transactional = r.bool("flags")?;
            Change::Message {
                stream_xid,
                transactional,
                lsn: r.lsn("message LSN")?,
                prefix: r.string("prefix")?,
                content: r.counted_bytes("content")?,
            }
        }
        MessageKind::StreamStart => Change::StreamStart {
            xid: r.u32("xid")?,
            first_segment: r.bool("first segment flag")?,
        },
        MessageKind::StreamStop => Change::StreamStop,
        MessageKind::StreamCommit => {
            let xid = r.u32("xid")?;
            r.zero_flags("flags")?;
            Change::StreamCommit {
                xid,
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.timestamp("commit timestamp")?,
            }
        }
        MessageKind::StreamAbort => {
            let xid = r.u32("xid")?;
            let subxid = r.u32("subtransaction xid")?;
            // Protocol 4 with streaming 'parallel' appends the abort LSN and time; the
            // message's length is the only sign of it.
            let (abort_lsn, abort_time) = if r.remaining() == 0 {
                (None, None)
            } else {
                (
                    Some(r.lsn("abort LSN")?),
                    Some(r.timestamp("abort timestamp")?),
                )
            };
            Change::StreamAbort {
                xid,
                subxid,
                abort_lsn,
                abort_time,
            }
        }
        MessageKind::BeginPrepare => Change::BeginPrepare {
            prepare_lsn: r.lsn("prepare LSN")?,
            end_lsn: r.lsn("end LSN")?,
            prepare_time: r.timestamp("prepare timestamp")?,
            xid: r.u32("xid")?,
            gid: r.string("gid")?,
        },
        MessageKind::Prepare | MessageKind::StreamPrepare => {
            r.zero_flags("flags")?;
            let (prepare_lsn, end_lsn) = (r.lsn("prepare LSN")?, r.lsn("end LSN")?);
            let prepare_time = r.timestamp("prepare timestamp")?;
            let (xid, gid) = (r.u32("xid")?, r.string("gid")?);
            if kind == MessageKind::Prepare {
                Change::Prepare {
                    prepare_lsn,
                    end_lsn,
                    prepare_time,
                    xid,
                    gid,
                }
            } else {
                Change::StreamPrepare {
                    prepare_lsn,
                    end_lsn,
                    prepare_time,
                    xid,
                    gid,
                }
            }
        }
        MessageKind::CommitPrepared => {
            r.zero_flags("flags")?;
            Change::CommitPrepared {
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.timestamp("commit timestamp")?,
                xid: r.u32("xid")?,
                gid: r.string("gid")?,
            }
        }
        MessageKind::RollbackPrepared => {
            r.zero_flags("flags")?;
            Change::RollbackPrepared {
                prepare_end_lsn: r.lsn("prepare end LSN")?,
                rollback_end_lsn: r.lsn("rollback end LSN")?,
                prepare_time: r.timestamp("prepare timestamp")?,
                rollback_time: r.timestamp("rollback timestamp")?,
                xid: r.u32("xid")?,
                gid: r.string("gid")?,
            }
        }
    };
    r.finish()?;
    Ok(change)
}

/// Smallest encoding of one Relation column: flags, an empty name's NUL, type oid, typmod.
const MIN_COLUMN_LEN: usize = 1 + 1 + 4 + 4;

fn relation(r: &mut Reader) -> Result<Relation, DecodeError> {
    let id = RelationId(r.u32("relation oid")?);
    let schema = namespace(r)?;
    let name = r.string("relation name")?;
    let replica_identity = match r.u8("replica identity")? {
        identity @ (b'd' | b'n' | b'f' | b'i') => char::from(identity),
        other => {
            return Err(r.invalid(
                "replica identity",
                format!("is {:?}, expected d, n, f or i", char::from(other)),
            ))
        }
    };
    let count = usize::from(r.u16("column count")?);
    r.need("columns", count.saturating_mul(MIN_COLUMN_LEN))?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let is_key = match r.u8("column flags")? {
            0 => false,
            1 => true,
            other => return Err(r.invalid("column flags", format!("are {other}, expected 0 or 1"))),
        };
        columns.push(RelationColumn {
            is_key,
            name: r.string("column name")?,
            type_oid: r.u32("column type oid")?,
            type_modifier: r.i32("column type modifier")?,
        });
    }
    Ok(Relation {
        id,
        schema,
        name,
        replica_identity,
        columns,
    })
}

/// A namespace name; pgoutput sends `pg_catalog` as "" to save space.
fn namespace(r: &mut Reader) -> Result<String, DecodeError> {
    let name = r.string("namespace")?;
    Ok(if name.is_empty() {
        "pg_catalog".to_owned()
    } else {
        name
    })
}

/// TupleData: an Int16 column count, then per column a kind byte and, for `t` and `b`, an
/// Int32 length and the value.
fn tuple(r: &mut Reader) -> Result<Row, DecodeError> {
    let count = usize::from(r.u16("tuple column count")?);
    // Each column takes at least its kind byte.
    r.need("tuple columns", count)?;
    let mut datums = Vec::with_capacity(count);
    for _ in 0..count {
        let datum = match r.u8("column kind")? {
            b'n' => Datum::Null,
            b'u' => Datum::UnchangedToast,
            b't' => Datum::Text(r.counted_bytes("text value")?),
            b'b' => Datum::Binary(r.counted_bytes("binary value")?),
            other => {
                return Err(r.invalid(
                    "column kind",
                    format!("is {:?}, expected n, u, t or b", char::from(other)),
                ))
            }
        };
        datums.push(datum);
    }
    Ok(Row(datums))
}

fn truncate(r: &mut Reader, stream_xid: Option<u32>) -> Result<Change, DecodeError> {
    const CASCADE: u8 = 1;
    const RESTART_IDENTITY: u8 = 2;
    let count = r.i32("relation count")?;
    let Ok(count) = usize::try_from(count) else {
        return Err(r.invalid("relation count", format!("is negative ({count})")));
    };
    let options = r.u8("options")?;
    if options & !(CASCADE | RESTART_IDENTITY) != 0 {
        return Err(r.invalid(
            "options",
            format!("are {options:#04x}, expected bits 1 and 2"),
        ));
    }
    r.need("relation oids", count.saturating_mul(4))?;
    let mut relations = Vec::with_capacity(count);
    for _ in 0..count {
        relations.push(RelationId(r.u32("relation oid")?));
    }
    Ok(Change::Truncate {
        stream_xid,
        relations,
        cascade: options & CASCADE != 0,
        restart_identity: options & RESTART_IDENTITY != 0,
    })
}

fn bad_marker(r: &Reader, marker: u8, expected: &str) -> DecodeError {
    r.invalid(
        "tuple marker",
        format!("is {:?}, expected {expected}", char::from(marker)),
    )
}
