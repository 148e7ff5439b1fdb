//! Unit tests of the decoderbufs decoder: hand-built RowMessages (encoded with the same
//! prost structs) pin the LSN bounds, the value texts and the identity mapping; malformed,
//! truncated and garbled payloads are errors (never panics) that leave the state as it was;
//! `fixtures.rs` decodes what a real server sent.

mod fixtures;

use ferry_core::{Change, Lsn, PgTimestamp, RelationId, TableName};
use proptest::prelude::*;
use prost::Message as _;

use super::proto::{self, op, DatumMessage, RowMessage};
use super::{DecodeError, DecoderbufsDecoder, Op, TableIdentity};
pub(super) use crate::source::decode::test_render::render;

fn lsn(text: &str) -> Lsn {
    text.parse().unwrap()
}

/// 2000-01-01 00:00:01 UTC in µs since 1970.
const ONE_SECOND_PAST_PG_EPOCH: u64 = 946_684_801_000_000;

fn transaction(op: i32, xid: u32) -> Vec<u8> {
    RowMessage {
        transaction_id: Some(xid),
        commit_time: Some(ONE_SECOND_PAST_PG_EPOCH),
        op: Some(op),
        ..Default::default()
    }
    .encode_to_vec()
}

fn column(name: &str, type_oid: i64, datum: Option<proto::Datum>) -> DatumMessage {
    DatumMessage {
        column_name: Some(name.to_owned()),
        column_type: Some(type_oid),
        datum,
    }
}

fn type_info() -> proto::TypeInfo {
    proto::TypeInfo {
        modifier: "integer".to_owned(),
        value_optional: true,
    }
}

fn row_message(op: i32, new: Vec<DatumMessage>, old: Vec<DatumMessage>) -> Vec<u8> {
    RowMessage {
        transaction_id: Some(7),
        commit_time: Some(ONE_SECOND_PAST_PG_EPOCH),
        table: Some("public.t".to_owned()),
        op: Some(op),
        new_typeinfo: new.iter().map(|_| type_info()).collect(),
        new_tuple: new,
        old_tuple: old,
    }
    .encode_to_vec()
}

/// A decoder started at 0/100, inside transaction 7.
fn open() -> DecoderbufsDecoder {
    let mut decoder = DecoderbufsDecoder::new(lsn("0/100"));
    decoder
        .decode(lsn("0/80"), &transaction(op::BEGIN, 7))
        .unwrap();
    decoder
}

#[test]
fn begin_gets_a_lower_bound_of_the_commit_lsn_and_commit_the_exact_end() {
    let mut decoder = DecoderbufsDecoder::new(lsn("0/100"));
    // This transaction began (0/80) before the start position: its commit is after it.
    let begin = decoder
        .decode(lsn("0/80"), &transaction(op::BEGIN, 7))
        .unwrap();
    assert_eq!(
        begin,
        [Change::Begin {
            final_lsn: lsn("0/100"),
            commit_time: PgTimestamp(1_000_000),
            xid: 7,
        }]
    );
    let commit = decoder
        .decode(lsn("0/200"), &transaction(op::COMMIT, 7))
        .unwrap();
    assert_eq!(
        commit,
        [Change::Commit {
            commit_lsn: lsn("0/100"),
            end_lsn: lsn("0/200"),
            commit_time: PgTimestamp(1_000_000),
        }]
    );
    // Began before the previous commit: bounded by that commit's end.
    let begin = decoder
        .decode(lsn("0/150"), &transaction(op::BEGIN, 8))
        .unwrap();
    assert!(matches!(begin[..], [Change::Begin { final_lsn, .. }] if final_lsn == lsn("0/200")));
    // Began after it: its own position.
    decoder
        .decode(lsn("0/300"), &transaction(op::COMMIT, 8))
        .unwrap();
    let begin = decoder
        .decode(lsn("0/380"), &transaction(op::BEGIN, 9))
        .unwrap();
    assert!(matches!(begin[..], [Change::Begin { final_lsn, .. }] if final_lsn == lsn("0/380")));
    // A commit that does not end after the bound is not a commit this session can send.
    let err = decoder
        .decode(lsn("0/380"), &transaction(op::COMMIT, 9))
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::Invalid { op: Op::Commit, .. }),
        "{err}"
    );
}

#[test]
fn typed_datums_become_text_and_missing_ones_unchanged_toast() {
    use proto::Datum as D;
    let mut decoder = open();
    let new = vec![
        column("\"Id\"", 23, Some(D::Int32(-5))),
        column("b", 16, Some(D::Bool(false))),
        column("f", 701, Some(D::Double(1e-5))),
        column("r", 700, Some(D::Float(f32::NEG_INFINITY))),
        column("x", 17, Some(D::Bytes(vec![0, 0xAB]))),
        column("p", 600, Some(D::Point(proto::Point { x: 1.0, y: -0.5 }))),
        column("e", 16_385, Some(D::Bytes(b"happy".to_vec()))),
        column("body", 25, Some(D::Missing(true))),
        column("n", 1700, None),
    ];
    let changes = decoder
        .decode(lsn("0/90"), &row_message(op::UPDATE, new, vec![]))
        .unwrap();
    assert_eq!(
        render(&changes),
        "R 1 \"public\".\"t\" d [Id:23 b:16 f:701 r:700 x:17 p:600 e:16385 body:25 n:1700]\n\
         U 1 new=(\"-5\", \"f\", \"1e-05\", \"-Infinity\", \"\\\\x00ab\", \"(1,-0.5)\", \
         \"happy\", toast, null)\n"
    );
}

#[test]
fn registered_identities_decide_keys_and_old_rows() {
    use proto::Datum as D;
    let mut decoder = open();
    let cols = |id: i32, v: &str| {
        vec![
            column("id", 23, Some(D::Int32(id))),
            column("v", 25, Some(D::String(v.to_owned()))),
        ]
    };
    // Unregistered: no key columns (the apply then refuses UPDATE and DELETE).
    let delete = row_message(op::DELETE, vec![], cols(1, "a"));
    assert_eq!(
        render(&decoder.decode(lsn("0/90"), &delete).unwrap()),
        "R 1 \"public\".\"t\" d [id:23 v:25]\nD 1 key=(null, null)\n"
    );
    let table = TableName::new("public", "t");
    decoder.set_identity(table.clone(), TableIdentity::Key(vec!["id".into()]));
    assert_eq!(
        render(&decoder.decode(lsn("0/90"), &delete).unwrap()),
        "R 1 \"public\".\"t\" d [id*:23 v:25]\nD 1 key=(\"1\", null)\n"
    );
    decoder.set_identity(table, TableIdentity::Full);
    let update = row_message(op::UPDATE, cols(2, "b"), cols(1, "a"));
    assert_eq!(
        render(&decoder.decode(lsn("0/90"), &update).unwrap()),
        "R 1 \"public\".\"t\" f [id*:23 v*:25]\nU 1 old=(\"1\", \"a\") new=(\"2\", \"b\")\n"
    );
    // The same shape again: no new Relation.
    let again = decoder.decode(lsn("0/90"), &update).unwrap();
    assert!(matches!(
        again[..],
        [Change::Update {
            relation: RelationId(1),
            ..
        }]
    ));
}

#[test]
fn payloads_decoderbufs_never_sends_are_errors() {
    use proto::Datum as D;
    let mut decoder = open();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "no op"),
        (
            RowMessage {
                op: Some(9),
                ..Default::default()
            }
            .encode_to_vec(),
            "unknown decoderbufs op 9",
        ),
        (vec![0xff, 0xff], "not a RowMessage"),
        (
            row_message(
                op::INSERT,
                vec![column("a", 23, Some(D::String("1".into())))],
                vec![],
            ),
            "is a datum_string for type oid 23",
        ),
        (
            row_message(op::INSERT, vec![column("A", 23, None)], vec![]),
            "not a quoted identifier",
        ),
        (
            row_message(op::INSERT, vec![column("a", -1, None)], vec![]),
            "has no type oid",
        ),
        (
            row_message(
                op::INSERT,
                vec![column("a", 23, None), column("a", 23, None)],
                vec![],
            ),
            "appears twice",
        ),
        (
            row_message(
                op::INSERT,
                vec![column("t", 1083, Some(D::Int64(-1)))],
                vec![],
            ),
            "outside 00:00:00 to 24:00:00",
        ),
        (
            row_message(
                op::INSERT,
                vec![column("t", 1266, Some(D::Double(0.0)))],
                vec![],
            ),
            "cannot be replicated exactly",
        ),
        (
            row_message(
                op::INSERT,
                vec![column("t", 16385, Some(D::Bytes(vec![0xff])))],
                vec![],
            ),
            "is not UTF-8",
        ),
        (row_message(op::UPDATE, vec![], vec![]), "carries no row"),
        (row_message(op::DELETE, vec![], vec![]), "carries no row"),
        (transaction(op::BEGIN, 8), "while xid 7 is open"),
        (transaction(op::COMMIT, 8), "of xid 8 inside transaction 7"),
    ];
    for (payload, message) in cases {
        let err = decoder.decode(lsn("0/90"), &payload).unwrap_err();
        assert!(err.to_string().contains(message), "{message}: {err}");
        assert!(!err.is_transient());
    }
    let mut table = RowMessage::decode(&row_message(op::INSERT, vec![], vec![])[..]).unwrap();
    table.table = Some("t".into());
    let err = decoder
        .decode(lsn("0/90"), &table.encode_to_vec())
        .unwrap_err();
    assert!(err.to_string().contains("is not a qualified name"), "{err}");
    let outside = row_message(op::INSERT, vec![], vec![]);
    let err = DecoderbufsDecoder::new(Lsn::ZERO)
        .decode(lsn("0/90"), &outside)
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::OutOfPlace { op: Op::Insert, .. }),
        "{err}"
    );
}

#[test]
fn errors_name_the_table_and_leave_the_state_as_it_was() {
    use proto::Datum as D;
    let mut decoder = open();
    let before = format!("{decoder:?}");
    let lossy = row_message(
        op::INSERT,
        vec![column("m", 790, Some(D::Int64(1234)))],
        vec![],
    );
    let err = decoder.decode(lsn("0/90"), &lossy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "decoderbufs INSERT of table \"public\".\"t\": column \"m\" of type money cannot be \
         replicated exactly: decoderbufs sends an integer count of the smallest currency unit, \
         whose scale depends on lc_monetary"
    );
    assert_eq!(err.table(), Some(&TableName::new("public", "t")));
    assert_eq!(format!("{decoder:?}"), before);
}

#[test]
fn changes_of_tables_not_kept_yield_nothing_before_their_values_are_checked() {
    use proto::Datum as D;
    let mut decoder = open();
    decoder.keep_only([TableName::new("public", "other")]);
    // A money value would be refused (see above), and an UPDATE without a new tuple has
    // no identity: neither matters for a table that is not carried.
    let lossy = row_message(
        op::INSERT,
        vec![column("m", 790, Some(D::Int64(1234)))],
        vec![],
    );
    assert_eq!(decoder.decode(lsn("0/90"), &lossy).unwrap(), vec![]);
    let keyless = row_message(op::UPDATE, vec![], vec![]);
    assert_eq!(decoder.decode(lsn("0/98"), &keyless).unwrap(), vec![]);
    // Still inside transaction 7: its Commit decodes as usual.
    let commit = decoder
        .decode(lsn("0/200"), &transaction(op::COMMIT, 7))
        .unwrap();
    assert!(matches!(commit[..], [Change::Commit { .. }]), "{commit:?}");
    let mut carried = open();
    carried.keep_only([TableName::new("public", "t")]);
    let err = carried.decode(lsn("0/90"), &lossy).unwrap_err();
    assert!(err.to_string().contains("money"), "{err}");
}

#[test]
fn every_truncated_fixture_record_is_an_error_or_a_shorter_delete() {
    for (position, payload) in fixtures::all_records() {
        let whole = RowMessage::decode(payload).unwrap();
        for len in 0..payload.len() {
            let cut = payload.get(..len).unwrap();
            let mut decoder = DecoderbufsDecoder::new(Lsn::ZERO);
            decoder
                .decode(
                    lsn("0/1"),
                    &transaction(op::BEGIN, whole.transaction_id.unwrap()),
                )
                .unwrap();
            let result = decoder.decode(position, cut);
            // Protobuf has no end marker: a DELETE cut between two old columns is a valid
            // DELETE of fewer columns. The XLogData frame carries the payload's length, so
            // the wire never cuts one; every other kind of record notices.
            if whole.op != Some(op::DELETE) {
                assert!(
                    result.is_err(),
                    "{whole:?} cut to {len} bytes decoded: {result:?}"
                );
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = DecoderbufsDecoder::new(Lsn::ZERO).decode(Lsn::ZERO, &bytes);
        let _ = open().decode(lsn("0/90"), &bytes);
    }

    #[test]
    fn garbled_fixture_records_never_panic(
        index in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let records = fixtures::all_records();
        let (position, payload) = index.get(&records);
        let mut payload = payload.to_vec();
        for (at, byte) in flips {
            let at = at.index(payload.len());
            if let Some(b) = payload.get_mut(at) {
                *b = byte;
            }
        }
        let _ = DecoderbufsDecoder::new(Lsn::ZERO).decode(*position, &payload);
        let _ = open().decode(*position, &payload);
    }
}
