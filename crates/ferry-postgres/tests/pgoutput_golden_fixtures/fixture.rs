//! Reading the pgoutput fixtures for `pgoutput_golden_fixtures.rs`: the records of a file,
//! decoded in order, and views of them (a compact sequence of kinds, the plain changes with
//! their relation names, the streamed transactions).

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use ferry_core::{Change, Datum, Relation, RelationId, Row};
use ferry_postgres::source::decode::pgoutput::PgoutputDecoder;

pub const TEXT: &str = "pg15_proto2_stream_text.bin";
pub const BINARY: &str = "pg15_proto2_stream_binary.bin";

/// Every XLogData payload of a fixture: records of a big-endian u32 length and the bytes.
pub fn records(name: &str) -> Vec<Bytes> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pgoutput")
        .join(name);
    let mut rest = Bytes::from(std::fs::read(&path).unwrap());
    let mut records = Vec::new();
    while !rest.is_empty() {
        let len: [u8; 4] = rest.get(..4).unwrap().try_into().unwrap();
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap();
        let record = rest.slice(4..4 + len);
        rest = rest.slice(4 + len..);
        records.push(record);
    }
    records
}

/// The fixture decoded in order by one decoder, as a session would be.
pub fn changes(name: &str) -> Vec<Change> {
    let mut decoder = PgoutputDecoder::new();
    records(name)
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            decoder
                .decode(record.clone())
                .unwrap_or_else(|e| panic!("{name} record {i} ({record:?}): {e}"))
        })
        .collect()
}

/// One letter per change (the message tags), runs of the same letter as `I×3`.
pub fn kinds(changes: &[Change]) -> String {
    let mut out: Vec<(char, usize)> = Vec::new();
    for change in changes {
        let tag = match change {
            Change::Begin { .. } => 'B',
            Change::Commit { .. } => 'C',
            Change::Origin { .. } => 'O',
            Change::Relation { .. } => 'R',
            Change::Type { .. } => 'Y',
            Change::Insert { .. } => 'I',
            Change::Update { .. } => 'U',
            Change::Delete { .. } => 'D',
            Change::Truncate { .. } => 'T',
            Change::Message { .. } => 'M',
            Change::StreamStart { .. } => 'S',
            Change::StreamStop => 'E',
            Change::StreamCommit { .. } => 'c',
            Change::StreamAbort { .. } => 'A',
            other => panic!("unexpected {}", other.name()),
        };
        match out.last_mut() {
            Some((last, n)) if *last == tag => *n += 1,
            _ => out.push((tag, 1)),
        }
    }
    let parts: Vec<String> = out
        .into_iter()
        .map(|(tag, n)| {
            if n == 1 {
                tag.to_string()
            } else {
                format!("{tag}×{n}")
            }
        })
        .collect();
    parts.join(" ")
}

/// The latest Relation for each id, updated as the changes go by.
#[derive(Default)]
pub struct Relations(HashMap<RelationId, Relation>);

impl Relations {
    pub fn see(&mut self, change: &Change) {
        if let Change::Relation { relation, .. } = change {
            self.0.insert(relation.id, relation.clone());
        }
    }

    pub fn name(&self, id: RelationId) -> &str {
        &self.0[&id].name
    }
}

pub fn text(datum: &Datum) -> &str {
    match datum {
        Datum::Text(bytes) => std::str::from_utf8(bytes).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

pub fn texts(row: &Row) -> Vec<Option<&str>> {
    row.0
        .iter()
        .map(|d| match d {
            Datum::Null => None,
            d => Some(text(d)),
        })
        .collect()
}

/// The plain (non-streamed) changes of the workload, relation by relation, with names.
pub fn plain_changes(changes: &[Change]) -> Vec<(String, Change)> {
    let mut relations = Relations::default();
    let mut out = Vec::new();
    for change in changes {
        relations.see(change);
        let relation = match change {
            Change::Insert { relation, .. }
            | Change::Update { relation, .. }
            | Change::Delete { relation, .. } => relations.name(*relation).to_owned(),
            _ => continue,
        };
        if change.stream_xid().is_none() {
            out.push((relation, change.clone()));
        }
    }
    out
}

pub fn text_datum(value: &'static str) -> Datum {
    Datum::Text(Bytes::from_static(value.as_bytes()))
}

/// What the stream blocks of one top-level transaction carried, and how it ended.
pub struct Streamed {
    pub xid: u32,
    pub blocks: usize,
    /// Changes inside its blocks, with the (sub)transaction xid each carried.
    pub changes: Vec<(u32, Change)>,
    /// Stream Abort (of a subtransaction or the whole) and Stream Commit, in order.
    pub ends: Vec<Change>,
}

pub fn streamed(changes: &[Change]) -> Vec<Streamed> {
    let mut streams: Vec<Streamed> = Vec::new();
    let mut open: Option<usize> = None;
    for change in changes {
        match change {
            Change::StreamStart { xid, first_segment } => {
                let known = streams.iter().position(|s| s.xid == *xid);
                assert_eq!(*first_segment, known.is_none(), "first_segment of {xid}");
                let index = known.unwrap_or_else(|| {
                    streams.push(Streamed {
                        xid: *xid,
                        blocks: 0,
                        changes: Vec::new(),
                        ends: Vec::new(),
                    });
                    streams.len() - 1
                });
                streams[index].blocks += 1;
                open = Some(index);
            }
            Change::StreamStop => open = None,
            Change::StreamCommit { xid, .. } | Change::StreamAbort { xid, .. } => {
                assert_eq!(open, None, "stream end inside a block");
                let stream = streams.iter_mut().find(|s| s.xid == *xid).unwrap();
                stream.ends.push(change.clone());
            }
            other => match (open, other.stream_xid()) {
                (Some(index), Some(xid)) => streams[index].changes.push((xid, other.clone())),
                (None, None) => {}
                (open, xid) => panic!("{} with xid {xid:?} in block {open:?}", other.name()),
            },
        }
    }
    streams
}

/// The (sub)transaction xids of a stream's changes in order of appearance, each with the
/// kinds of its changes.
pub fn by_xid(stream: &Streamed) -> Vec<(u32, String)> {
    let mut xids: Vec<u32> = Vec::new();
    for (xid, _) in &stream.changes {
        if !xids.contains(xid) {
            xids.push(*xid);
        }
    }
    xids.into_iter()
        .map(|xid| {
            let changes: Vec<Change> = stream
                .changes
                .iter()
                .filter(|(x, _)| *x == xid)
                .map(|(_, c)| c.clone())
                .collect();
            (xid, kinds(&changes))
        })
        .collect()
}
