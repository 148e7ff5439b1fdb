//! A test-only pgoutput encoder: [`Change`] back to the bytes the server would send, written
//! from the documented message formats (and PostgreSQL's `proto.c`) independently of the
//! decoder, so that `decode(encode(c)) == c` checks the decoder against the format.

use bytes::{BufMut, Bytes, BytesMut};
use ferry_core::{Change, Datum, Lsn, PgTimestamp, Relation, Row};

/// The message for `change`; streamable variants with a `stream_xid` get the xid prefix.
pub(super) fn encode(change: &Change) -> Bytes {
    let mut out = BytesMut::new();
    match change {
        Change::Begin {
            final_lsn,
            commit_time,
            xid,
        } => {
            out.put_u8(b'B');
            lsn(&mut out, *final_lsn);
            time(&mut out, *commit_time);
            out.put_u32(*xid);
        }
        Change::Commit {
            commit_lsn,
            end_lsn,
            commit_time,
        } => {
            out.put_u8(b'C');
            out.put_u8(0);
            lsn(&mut out, *commit_lsn);
            lsn(&mut out, *end_lsn);
            time(&mut out, *commit_time);
        }
        Change::Origin { lsn: at, name } => {
            out.put_u8(b'O');
            lsn(&mut out, *at);
            string(&mut out, name);
        }
        Change::Relation {
            stream_xid,
            relation,
        } => {
            out.put_u8(b'R');
            xid_prefix(&mut out, *stream_xid);
            relation_body(&mut out, relation);
        }
        Change::Type {
            stream_xid,
            id,
            schema,
            name,
        } => {
            out.put_u8(b'Y');
            xid_prefix(&mut out, *stream_xid);
            out.put_u32(*id);
            namespace(&mut out, schema);
            string(&mut out, name);
        }
        Change::Insert {
            stream_xid,
            relation,
            new,
        } => {
            out.put_u8(b'I');
            xid_prefix(&mut out, *stream_xid);
            out.put_u32(relation.0);
            out.put_u8(b'N');
            tuple(&mut out, new);
        }
        Change::Update {
            stream_xid,
            relation,
            key,
            old,
            new,
        } => {
            out.put_u8(b'U');
            xid_prefix(&mut out, *stream_xid);
            out.put_u32(relation.0);
            if let Some(key) = key {
                out.put_u8(b'K');
                tuple(&mut out, key);
            }
            if let Some(old) = old {
                out.put_u8(b'O');
                tuple(&mut out, old);
            }
            out.put_u8(b'N');
            tuple(&mut out, new);
        }
        Change::Delete {
            stream_xid,
            relation,
            key,
            old,
        } => {
            out.put_u8(b'D');
            xid_prefix(&mut out, *stream_xid);
            out.put_u32(relation.0);
            if let Some(key) = key {
                out.put_u8(b'K');
                tuple(&mut out, key);
            }
            if let Some(old) = old {
                out.put_u8(b'O');
                tuple(&mut out, old);
            }
        }
        Change::Truncate {
            stream_xid,
            relations,
            cascade,
            restart_identity,
        } => {
            out.put_u8(b'T');
            xid_prefix(&mut out, *stream_xid);
            out.put_i32(i32::try_from(relations.len()).unwrap());
            out.put_u8(u8::from(*cascade) | (u8::from(*restart_identity) << 1));
            for relation in relations {
                out.put_u32(relation.0);
            }
        }
        Change::Message {
            stream_xid,
            transactional,
            lsn: at,
            prefix,
            content,
        } => {
            out.put_u8(b'M');
            xid_prefix(&mut out, *stream_xid);
            out.put_u8(u8::from(*transactional));
            lsn(&mut out, *at);
            string(&mut out, prefix);
            counted(&mut out, content);
        }
        Change::StreamStart { xid, first_segment } => {
            out.put_u8(b'S');
            out.put_u32(*xid);
            out.put_u8(u8::from(*first_segment));
        }
        Change::StreamStop => out.put_u8(b'E'),
        Change::StreamCommit {
            xid,
            commit_lsn,
            end_lsn,
            commit_time,
        } => {
            out.put_u8(b'c');
            out.put_u32(*xid);
            out.put_u8(0);
            lsn(&mut out, *commit_lsn);
            lsn(&mut out, *end_lsn);
            time(&mut out, *commit_time);
        }
        Change::StreamAbort {
            xid,
            subxid,
            abort_lsn,
            abort_time,
        } => {
            out.put_u8(b'A');
            out.put_u32(*xid);
            out.put_u32(*subxid);
            if let (Some(at), Some(when)) = (abort_lsn, abort_time) {
                lsn(&mut out, *at);
                time(&mut out, *when);
            }
        }
        Change::BeginPrepare {
            prepare_lsn,
            end_lsn,
            prepare_time,
            xid,
            gid,
        } => {
            out.put_u8(b'b');
            lsn(&mut out, *prepare_lsn);
            lsn(&mut out, *end_lsn);
            time(&mut out, *prepare_time);
            out.put_u32(*xid);
            string(&mut out, gid);
        }
        Change::Prepare {
            prepare_lsn,
            end_lsn,
            prepare_time,
            xid,
            gid,
        }
        | Change::StreamPrepare {
            prepare_lsn,
            end_lsn,
            prepare_time,
            xid,
            gid,
        } => {
            let tag = if matches!(change, Change::Prepare { .. }) {
                b'P'
            } else {
                b'p'
            };
            out.put_u8(tag);
            out.put_u8(0);
            lsn(&mut out, *prepare_lsn);
            lsn(&mut out, *end_lsn);
            time(&mut out, *prepare_time);
            out.put_u32(*xid);
            string(&mut out, gid);
        }
        Change::CommitPrepared {
            commit_lsn,
            end_lsn,
            commit_time,
            xid,
            gid,
        } => {
            out.put_u8(b'K');
            out.put_u8(0);
            lsn(&mut out, *commit_lsn);
            lsn(&mut out, *end_lsn);
            time(&mut out, *commit_time);
            out.put_u32(*xid);
            string(&mut out, gid);
        }
        Change::RollbackPrepared {
            prepare_end_lsn,
            rollback_end_lsn,
            prepare_time,
            rollback_time,
            xid,
            gid,
        } => {
            out.put_u8(b'r');
            out.put_u8(0);
            lsn(&mut out, *prepare_end_lsn);
            lsn(&mut out, *rollback_end_lsn);
            time(&mut out, *prepare_time);
            time(&mut out, *rollback_time);
            out.put_u32(*xid);
            string(&mut out, gid);
        }
    }
    out.freeze()
}

fn relation_body(out: &mut BytesMut, relation: &Relation) {
    out.put_u32(relation.id.0);
    namespace(out, &relation.schema);
    string(out, &relation.name);
    out.put_u8(u8::try_from(relation.replica_identity).unwrap());
    out.put_u16(u16::try_from(relation.columns.len()).unwrap());
    for column in &relation.columns {
        out.put_u8(u8::from(column.is_key));
        string(out, &column.name);
        out.put_u32(column.type_oid);
        out.put_i32(column.type_modifier);
    }
}

fn tuple(out: &mut BytesMut, row: &Row) {
    out.put_u16(u16::try_from(row.0.len()).unwrap());
    for datum in &row.0 {
        match datum {
            Datum::Null => out.put_u8(b'n'),
            Datum::UnchangedToast => out.put_u8(b'u'),
            Datum::Text(value) => {
                out.put_u8(b't');
                counted(out, value);
            }
            Datum::Binary(value) => {
                out.put_u8(b'b');
                counted(out, value);
            }
        }
    }
}

fn xid_prefix(out: &mut BytesMut, stream_xid: Option<u32>) {
    if let Some(xid) = stream_xid {
        out.put_u32(xid);
    }
}

/// As `logicalrep_write_namespace`: `pg_catalog` goes out as "".
fn namespace(out: &mut BytesMut, schema: &str) {
    string(out, if schema == "pg_catalog" { "" } else { schema });
}

fn string(out: &mut BytesMut, text: &str) {
    out.put_slice(text.as_bytes());
    out.put_u8(0);
}

fn counted(out: &mut BytesMut, value: &[u8]) {
    out.put_i32(i32::try_from(value.len()).unwrap());
    out.put_slice(value);
}

fn lsn(out: &mut BytesMut, at: Lsn) {
    out.put_u64(at.as_u64());
}

fn time(out: &mut BytesMut, when: PgTimestamp) {
    out.put_i64(when.0);
}
