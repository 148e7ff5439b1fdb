//! Fuzz target `wal2json`: arbitrary bytes through the wal2json decoder
//! (`ferry_postgres::source::decode::wal2json`).
//!
//! The input is a session in the golden fixtures' format (`*.jsonl` of
//! `crates/ferry-postgres/tests/fixtures/wal2json/`, which seed it as they are): payloads
//! separated by `\n`, fed in order to one [`Wal2JsonDecoder`]. Decoding continues after an
//! error, as the decoder's state must survive one.
//!
//! Checked: nothing panics, and every row of a decoded change has exactly one datum per
//! column of the Relation the decoder last emitted for its id (the promise the apply relies
//! on), and a Truncate names only described relations.

#![no_main]

use std::collections::HashMap;

use ferry_core::{Change, RelationId, Row};
use ferry_postgres::source::decode::wal2json::Wal2JsonDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut decoder = Wal2JsonDecoder::new();
    let mut widths: HashMap<RelationId, usize> = HashMap::new();
    for payload in input.split(|&b| b == b'\n') {
        let Ok(changes) = decoder.decode(payload) else {
            continue;
        };
        for change in changes {
            check(&change, &mut widths);
        }
    }
});

/// Panics unless `change`'s rows fit the Relations described so far; records Relations.
fn check(change: &Change, widths: &mut HashMap<RelationId, usize>) {
    let fits = |id: &RelationId, row: &Row| {
        let width = widths
            .get(id)
            .expect("a change of a relation never described");
        assert_eq!(row.0.len(), *width, "a row does not fit its relation");
    };
    match change {
        Change::Relation { relation, .. } => {
            widths.insert(relation.id, relation.columns.len());
        }
        Change::Insert { relation, new, .. } => fits(relation, new),
        Change::Update {
            relation,
            key,
            old,
            new,
            ..
        } => {
            assert!(key.is_none() || old.is_none(), "an update with key and old");
            for row in key.iter().chain(old.iter()).chain(std::iter::once(new)) {
                fits(relation, row);
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
                fits(relation, row);
            }
        }
        Change::Truncate { relations, .. } => {
            for id in relations {
                assert!(
                    widths.contains_key(id),
                    "truncate of a relation never described"
                );
            }
        }
        _ => {}
    }
}
