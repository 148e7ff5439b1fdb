//! Fuzz target `decoderbufs`: arbitrary bytes through the decoderbufs decoder
//! (`ferry_postgres::source::decode::decoderbufs`).
//!
//! The input is a session in the golden fixtures' format (`*.bin` of
//! `crates/ferry-postgres/tests/fixtures/decoderbufs/`, which seed it as they are): records
//! of a big-endian u64 WAL position (the XLogData header's), a big-endian u32 length and a
//! payload, fed in order to one [`DecoderbufsDecoder`] (which knows one table's identity,
//! so keyed and unkeyed paths both run). Decoding continues after an error, as the
//! decoder's state must survive one.
//!
//! Checked: nothing panics; every row has one datum per column of the Relation last
//! emitted for its id; Begin LSNs never go back, and each Commit ends after its Begin's
//! `final_lsn`, which it repeats as `commit_lsn` (the bounds the apply's skip rule needs).

#![no_main]

use std::collections::HashMap;

use ferry_core::{Change, Lsn, RelationId, Row, TableName};
use ferry_postgres::source::decode::decoderbufs::{DecoderbufsDecoder, TableIdentity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut decoder = DecoderbufsDecoder::new(Lsn::ZERO);
    decoder.set_identity(
        TableName::new("public", "items"),
        TableIdentity::Key(vec!["id".to_owned()]),
    );
    let mut state = State::default();
    let mut rest = input;
    while let Some(header) = rest.get(..12) {
        let (position, len) = header.split_at(8);
        let position = Lsn::from_u64(u64::from_be_bytes(position.try_into().unwrap()));
        let len = u32::from_be_bytes(len.try_into().unwrap());
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let Some(payload) = rest.get(12..).and_then(|r| r.get(..len)) else {
            return;
        };
        if let Ok(changes) = decoder.decode(position, payload) {
            for change in changes {
                state.check(&change);
            }
        }
        rest = rest.get(12 + len..).unwrap_or_default();
    }
});

#[derive(Default)]
struct State {
    widths: HashMap<RelationId, usize>,
    /// The open transaction's final_lsn.
    open: Option<Lsn>,
    last_final: Lsn,
}

impl State {
    /// Panics unless `change` keeps the decoder's promises; records what it describes.
    fn check(&mut self, change: &Change) {
        match change {
            Change::Begin { final_lsn, .. } => {
                assert!(self.open.is_none(), "Begin inside a transaction");
                assert!(*final_lsn >= self.last_final, "final_lsn went back");
                self.open = Some(*final_lsn);
                self.last_final = *final_lsn;
            }
            Change::Commit {
                commit_lsn,
                end_lsn,
                ..
            } => {
                let final_lsn = self.open.take().expect("Commit without Begin");
                assert_eq!(
                    *commit_lsn, final_lsn,
                    "commit_lsn is not the Begin's final_lsn"
                );
                assert!(*end_lsn > final_lsn, "end_lsn not after final_lsn");
            }
            Change::Relation { relation, .. } => {
                self.widths.insert(relation.id, relation.columns.len());
            }
            Change::Insert { relation, new, .. } => self.fits(relation, new),
            Change::Update {
                relation,
                key,
                old,
                new,
                ..
            } => {
                assert!(key.is_none() || old.is_none(), "an update with key and old");
                for row in key.iter().chain(old.iter()).chain(std::iter::once(new)) {
                    self.fits(relation, row);
                }
            }
            Change::Delete {
                relation, key, old, ..
            } => {
                assert!(
                    key.is_some() != old.is_some(),
                    "a delete needs exactly one identity"
                );
                for row in key.iter().chain(old.iter()) {
                    self.fits(relation, row);
                }
            }
            other => panic!("decoderbufs never produces {}", other.name()),
        }
    }

    fn fits(&self, id: &RelationId, row: &Row) {
        let width = self
            .widths
            .get(id)
            .expect("a change of a relation never described");
        assert_eq!(row.0.len(), *width, "a row does not fit its relation");
    }
}
