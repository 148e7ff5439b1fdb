//! Unit tests of the wal2json decoder: hand-written payloads pin each mapping decision,
//! malformed and truncated payloads are errors (never panics) that leave the state as it
//! was, and `fixtures.rs` decodes what a real server sent.

mod fixtures;

use bytes::Bytes;
use ferry_core::{Change, Datum, Lsn, PgTimestamp, RelationId};
use proptest::prelude::*;

use super::{Action, DecodeError, Wal2JsonDecoder};
pub(super) use crate::source::decode::test_render::render;

fn text(value: &str) -> Datum {
    Datum::Text(Bytes::copy_from_slice(value.as_bytes()))
}

const BEGIN: &str = r#"{"action":"B","xid":744,"timestamp":"2000-01-01 00:00:01+00","lsn":"0/1564330","nextlsn":"0/1564360"}"#;
const COMMIT: &str = r#"{"action":"C","xid":744,"timestamp":"2000-01-01 00:00:01+00","lsn":"0/1564330","nextlsn":"0/1564360"}"#;

/// A decoder inside transaction 744.
fn open() -> Wal2JsonDecoder {
    let mut decoder = Wal2JsonDecoder::new();
    decoder.decode(BEGIN.as_bytes()).unwrap();
    decoder
}

fn decode(decoder: &mut Wal2JsonDecoder, payload: &str) -> Result<String, DecodeError> {
    decoder.decode(payload.as_bytes()).map(|c| render(&c))
}

#[test]
fn begin_and_commit_carry_the_commit_and_end_lsns() {
    let mut decoder = Wal2JsonDecoder::new();
    let begin = decoder.decode(BEGIN.as_bytes()).unwrap();
    assert_eq!(
        begin,
        [Change::Begin {
            final_lsn: "0/1564330".parse().unwrap(),
            commit_time: PgTimestamp(1_000_000),
            xid: 744,
        }]
    );
    let commit = decoder.decode(COMMIT.as_bytes()).unwrap();
    assert_eq!(
        commit,
        [Change::Commit {
            commit_lsn: "0/1564330".parse().unwrap(),
            end_lsn: Lsn::from_u64(0x0156_4360),
            commit_time: PgTimestamp(1_000_000),
        }]
    );
}

#[test]
fn numbers_keep_their_literal_text_and_strings_are_unescaped() {
    let mut decoder = open();
    let insert = r#"{"action":"I","xid":744,"schema":"public","table":"t","columns":[
        {"name":"n","typeoid":1700,"value":123456789012345678901234567890.000000000000000000001},
        {"name":"f","typeoid":701,"value":1e+20},
        {"name":"z","typeoid":701,"value":-0},
        {"name":"b","typeoid":16,"value":false},
        {"name":"s","typeoid":25,"value":"a\"b\\c\n\u00e9\ud83d\ude80"},
        {"name":"x","typeoid":17,"value":"00ff"},
        {"name":"o","typeoid":-10,"value":null}],"pk":[]}"#;
    let changes = decoder.decode(insert.as_bytes()).unwrap();
    let Some(Change::Insert { new, .. }) = changes.get(1) else {
        panic!("{changes:?}");
    };
    assert_eq!(
        new.0,
        [
            text("123456789012345678901234567890.000000000000000000001"),
            text("1e+20"),
            text("-0"),
            text("false"),
            text("a\"b\\c\né🚀"),
            text("\\x00ff"),
            Datum::Null,
        ]
    );
    // An oid printed with %d above 2^31 is negative: the sign is undone.
    let Some(Change::Relation { relation, .. }) = changes.first() else {
        panic!("{changes:?}");
    };
    assert_eq!(relation.columns.last().unwrap().type_oid, 4_294_967_286);
}

#[test]
fn unchanged_toast_columns_are_filled_in_from_the_last_relation() {
    let mut decoder = open();
    let insert = r#"{"action":"I","xid":744,"schema":"public","table":"docs","columns":[{"name":"id","typeoid":23,"value":1},{"name":"v","typeoid":23,"value":1},{"name":"body","typeoid":25,"value":"long"}],"pk":[{"name":"id","typeoid":23}]}"#;
    let update = r#"{"action":"U","xid":744,"schema":"public","table":"docs","columns":[{"name":"id","typeoid":23,"value":1},{"name":"v","typeoid":23,"value":2}],"identity":[{"name":"id","typeoid":23,"value":1}],"pk":[{"name":"id","typeoid":23}]}"#;
    assert_eq!(
        decode(&mut decoder, insert).unwrap(),
        "R 1 \"public\".\"docs\" d [id*:23 v:23 body:25]\nI 1 new=(\"1\", \"1\", \"long\")\n"
    );
    // The key did not change: no key tuple, as pgoutput; the body was not sent.
    assert_eq!(
        decode(&mut decoder, update).unwrap(),
        "U 1 new=(\"1\", \"2\", toast)\n"
    );
    // Seen first in an UPDATE, the table is described by the columns it names.
    let mut fresh = open();
    assert_eq!(
        decode(&mut fresh, update).unwrap(),
        "R 1 \"public\".\"docs\" d [id*:23 v:23]\nU 1 new=(\"1\", \"2\")\n"
    );
}

#[test]
fn identity_becomes_key_or_old() {
    let mut decoder = open();
    // REPLICA IDENTITY FULL without a primary key: the whole old row, `f`.
    let full = r#"{"action":"D","xid":744,"schema":"public","table":"log","identity":[{"name":"k","typeoid":25,"value":"a"},{"name":"p","typeoid":25,"value":null}],"pk":[]}"#;
    assert_eq!(
        decode(&mut decoder, full).unwrap(),
        "R 1 \"public\".\"log\" f [k*:25 p*:25]\nD 1 old=(\"a\", null)\n"
    );
    // FULL with a primary key: found by the key, non-key values dropped.
    let full_pk = r#"{"action":"U","xid":744,"schema":"public","table":"t","columns":[{"name":"id","typeoid":23,"value":2},{"name":"v","typeoid":25,"value":"n"}],"identity":[{"name":"id","typeoid":23,"value":1},{"name":"v","typeoid":25,"value":"o"}],"pk":[{"name":"id","typeoid":23}]}"#;
    assert_eq!(
        decode(&mut decoder, full_pk).unwrap(),
        "R 2 \"public\".\"t\" d [id*:23 v:25]\nU 2 key=(\"1\", null) new=(\"2\", \"n\")\n"
    );
    // USING INDEX on a column that is not the primary key: the index's columns are the key.
    let by_index = r#"{"action":"D","xid":744,"schema":"public","table":"t","identity":[{"name":"v","typeoid":25,"value":"n"}],"pk":[{"name":"id","typeoid":23}]}"#;
    assert_eq!(
        decode(&mut decoder, by_index).unwrap(),
        "R 2 \"public\".\"t\" d [id:23 v*:25]\nD 2 key=(null, \"n\")\n"
    );
}

#[test]
fn a_delete_without_identity_is_an_error_naming_the_table() {
    let mut decoder = open();
    let delete = r#"{"action":"D","xid":744,"schema":"public","table":"nokey","pk":[]}"#;
    let err = decoder.decode(delete.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "wal2json delete (D) of table \"public\".\"nokey\" carries no row identity: give the \
         table a primary key or REPLICA IDENTITY FULL on the source"
    );
    assert_eq!(err.table().map(|t| t.name.as_str()), Some("nokey"));
    assert!(!err.is_transient());
}

#[test]
fn truncate_objects_of_one_statement_become_one_change() {
    let mut decoder = open();
    let t = |table: &str, lsn: &str| {
        format!(r#"{{"action":"T","xid":744,"lsn":"{lsn}","schema":"public","table":"{table}"}}"#)
    };
    assert_eq!(
        decode(&mut decoder, &t("a", "0/10")).unwrap(),
        "R 1 \"public\".\"a\" d []\n"
    );
    assert_eq!(
        decode(&mut decoder, &t("b", "0/10")).unwrap(),
        "R 2 \"public\".\"b\" d []\n"
    );
    // Another statement: the first is complete.
    assert_eq!(
        decode(&mut decoder, &t("a", "0/20")).unwrap(),
        "T [1,2] cascade=false restart_identity=false\n"
    );
    assert_eq!(
        decode(&mut decoder, COMMIT).unwrap(),
        "T [1] cascade=false restart_identity=false\n\
         C commit=0/1564330 end=0/1564360 time=1000000\n"
    );
}

#[test]
fn missing_options_are_named() {
    let cases = [
        (
            r#"{"action":"B","timestamp":"2000-01-01 00:00:00+00","lsn":"0/1","nextlsn":"0/2"}"#,
            "include-xids",
        ),
        (
            r#"{"action":"B","xid":1,"timestamp":"2000-01-01 00:00:00+00"}"#,
            "include-lsn",
        ),
        (
            r#"{"action":"B","xid":1,"lsn":"0/1","nextlsn":"0/2"}"#,
            "include-timestamp",
        ),
    ];
    for (payload, option) in cases {
        let err = Wal2JsonDecoder::new()
            .decode(payload.as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains(option), "{payload}: {err}");
    }
    let mut decoder = open();
    let no_oids = r#"{"action":"I","xid":744,"schema":"s","table":"t","columns":[{"name":"a","value":1}],"pk":[]}"#;
    let err = decoder.decode(no_oids.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "wal2json insert (I) of table \"s\".\"t\": column \"a\" has no \"typeoid\": stream \
         with include-type-oids"
    );
    let no_pk = r#"{"action":"I","xid":744,"schema":"s","table":"t","columns":[]}"#;
    assert!(decoder
        .decode(no_pk.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("include-pk"));
}

#[test]
fn changes_outside_their_transaction_are_errors() {
    let insert = r#"{"action":"I","xid":744,"schema":"s","table":"t","columns":[],"pk":[]}"#;
    let err = Wal2JsonDecoder::new()
        .decode(insert.as_bytes())
        .unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::OutOfPlace {
                action: Action::Insert,
                ..
            }
        ),
        "{err}"
    );
    let mut decoder = open();
    assert!(matches!(
        decoder.decode(BEGIN.as_bytes()),
        Err(DecodeError::OutOfPlace {
            action: Action::Begin,
            ..
        })
    ));
    let other_xid = insert.replace("744", "745");
    assert!(decoder.decode(other_xid.as_bytes()).is_err());
    // Non-transactional messages may come at any time.
    let message =
        r#"{"action":"M","xid":null,"lsn":"0/5","transactional":false,"prefix":"p","content":"c"}"#;
    assert_eq!(
        decode(&mut Wal2JsonDecoder::new(), message).unwrap(),
        "M transactional=false lsn=0/5 prefix=\"p\" content=\"c\"\n"
    );
}

#[test]
fn values_wal2json_never_sends_are_errors() {
    let mut decoder = open();
    for (value, problem) in [
        ("[1]", "is a JSON array or object"),
        (r#""g0""#, "is not hex digits"),
        (r#""abc""#, "is not hex digits"),
    ] {
        let payload = format!(
            r#"{{"action":"I","xid":744,"schema":"s","table":"t","columns":[{{"name":"b","typeoid":17,"value":{value}}}],"pk":[]}}"#
        );
        let err = decoder.decode(payload.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(problem), "{value}: {err}");
    }
    let twice = r#"{"action":"I","xid":744,"schema":"s","table":"t","columns":[{"name":"a","typeoid":23,"value":1},{"name":"a","typeoid":23,"value":2}],"pk":[]}"#;
    assert!(decoder
        .decode(twice.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("appears twice"));
    for payload in [
        "",
        "[]",
        "null",
        "{}",
        r#"{"action":"X"}"#,
        r#"{"action":"B","xid":-1}"#,
    ] {
        assert!(decoder.decode(payload.as_bytes()).is_err(), "{payload}");
    }
}

#[test]
fn a_failed_payload_leaves_the_state_as_it_was() {
    let mut decoder = open();
    let t = r#"{"action":"T","xid":744,"lsn":"0/10","schema":"public","table":"a"}"#;
    decoder.decode(t.as_bytes()).unwrap();
    let before = format!("{decoder:?}");
    let bad = r#"{"action":"I","xid":744,"schema":"public","table":"a","columns":[{"name":"x","typeoid":17,"value":"zz"}],"pk":[]}"#;
    assert!(decoder.decode(bad.as_bytes()).is_err());
    assert_eq!(format!("{decoder:?}"), before);
    // The pending TRUNCATE is still emitted, once.
    assert_eq!(
        decode(&mut decoder, COMMIT).unwrap(),
        "T [1] cascade=false restart_identity=false\n\
         C commit=0/1564330 end=0/1564360 time=1000000\n"
    );
}

#[test]
fn relation_ids_stay_with_their_table() {
    let mut decoder = open();
    let insert = |table: &str, columns: &str| {
        format!(
            r#"{{"action":"I","xid":744,"schema":"s","table":"{table}","columns":[{columns}],"pk":[]}}"#
        )
    };
    let a1 = insert("a", r#"{"name":"x","typeoid":23,"value":1}"#);
    let b = insert("b", r#"{"name":"x","typeoid":23,"value":1}"#);
    let a2 = insert("a", r#"{"name":"x","typeoid":20,"value":1}"#);
    let ids: Vec<RelationId> = [a1.as_str(), b.as_str(), a2.as_str(), a1.as_str()]
        .into_iter()
        .flat_map(|p| decoder.decode(p.as_bytes()).unwrap())
        .filter_map(|c| match c {
            Change::Relation { relation, .. } => Some(relation.id),
            _ => None,
        })
        .collect();
    // a, b, a again with another type, a back to int4: always re-described, same ids.
    assert_eq!(
        ids,
        [RelationId(1), RelationId(2), RelationId(1), RelationId(1)]
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Wal2JsonDecoder::new().decode(&bytes);
        let _ = open().decode(&bytes);
    }

    #[test]
    fn garbled_fixture_payloads_never_panic(
        index in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let payloads = fixtures::all_payloads();
        let mut payload = index.get(&payloads).to_vec();
        for (at, byte) in flips {
            let at = at.index(payload.len());
            if let Some(b) = payload.get_mut(at) {
                *b = byte;
            }
        }
        let _ = Wal2JsonDecoder::new().decode(&payload);
        let _ = open().decode(&payload);
    }
}

#[test]
fn every_truncated_fixture_payload_is_an_error() {
    for payload in fixtures::all_payloads() {
        let cuts = (0..payload.len()).step_by(payload.len() / 200 + 1);
        for len in cuts {
            let cut = payload.get(..len).unwrap();
            for mut decoder in [Wal2JsonDecoder::new(), open()] {
                let result = decoder.decode(cut);
                assert!(
                    result.is_err(),
                    "{} cut to {len} bytes decoded: {result:?}",
                    String::from_utf8_lossy(payload)
                );
            }
        }
    }
}
