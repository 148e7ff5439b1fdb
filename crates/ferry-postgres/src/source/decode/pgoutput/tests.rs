//! Unit tests of the pgoutput decoder: hand-written bytes pin the format, malformed input
//! errors (never panics), the stream state is tracked, and `decode(encode(c)) == c` for
//! arbitrary changes.

mod encode;
mod strategy;

use bytes::Bytes;
use ferry_core::{Change, Datum, Lsn, PgTimestamp, Relation, RelationColumn, RelationId, Row};
use proptest::prelude::*;

use super::{decode_message, DecodeError, MessageKind, PgoutputDecoder};
use encode::encode;

fn text(value: &'static str) -> Datum {
    Datum::Text(Bytes::from_static(value.as_bytes()))
}

/// One message of every kind, with every tuple column kind and both stream forms.
fn samples() -> Vec<Change> {
    let row = Row(vec![
        text("42"),
        Datum::Null,
        Datum::UnchangedToast,
        Datum::Binary(Bytes::from_static(&[0, 0, 0, 7])),
    ]);
    let relation = Relation {
        id: RelationId(16384),
        schema: "public".into(),
        name: "orders".into(),
        replica_identity: 'd',
        columns: vec![
            RelationColumn {
                name: "id".into(),
                type_oid: 23,
                type_modifier: -1,
                is_key: true,
            },
            RelationColumn {
                name: "note".into(),
                type_oid: 1043,
                type_modifier: 36,
                is_key: false,
            },
        ],
    };
    let (lsn, time) = (Lsn::from_u64(0x16_B374_D848), PgTimestamp(785_000_000_123));
    vec![
        Change::Begin {
            final_lsn: lsn,
            commit_time: time,
            xid: 740,
        },
        Change::Commit {
            commit_lsn: lsn,
            end_lsn: Lsn::from_u64(0x16_B374_D900),
            commit_time: time,
        },
        Change::Origin {
            lsn,
            name: "node_a".into(),
        },
        Change::Relation {
            stream_xid: Some(741),
            relation,
        },
        Change::Type {
            stream_xid: None,
            id: 16390,
            schema: "public".into(),
            name: "mood".into(),
        },
        Change::Insert {
            stream_xid: None,
            relation: RelationId(16384),
            new: row.clone(),
        },
        Change::Update {
            stream_xid: Some(741),
            relation: RelationId(16384),
            key: Some(Row(vec![text("41"), Datum::Null])),
            old: None,
            new: row.clone(),
        },
        Change::Update {
            stream_xid: None,
            relation: RelationId(16384),
            key: None,
            old: Some(row.clone()),
            new: row.clone(),
        },
        Change::Delete {
            stream_xid: None,
            relation: RelationId(16384),
            key: None,
            old: Some(row),
        },
        Change::Truncate {
            stream_xid: Some(741),
            relations: vec![RelationId(16384), RelationId(16400)],
            cascade: true,
            restart_identity: true,
        },
        Change::Message {
            stream_xid: None,
            transactional: true,
            lsn,
            prefix: "ferry".into(),
            content: Bytes::from_static(b"hello"),
        },
        Change::StreamStart {
            xid: 741,
            first_segment: true,
        },
        Change::StreamCommit {
            xid: 741,
            commit_lsn: lsn,
            end_lsn: lsn,
            commit_time: time,
        },
        Change::StreamAbort {
            xid: 741,
            subxid: 742,
            abort_lsn: Some(lsn),
            abort_time: Some(time),
        },
        Change::RollbackPrepared {
            prepare_end_lsn: lsn,
            rollback_end_lsn: lsn,
            prepare_time: time,
            rollback_time: time,
            xid: 743,
            gid: "tx1".into(),
        },
        Change::StreamPrepare {
            prepare_lsn: lsn,
            end_lsn: lsn,
            prepare_time: time,
            xid: 741,
            gid: "tx2".into(),
        },
    ]
}

fn decode_as_sent(change: &Change, bytes: Bytes) -> Result<Change, DecodeError> {
    decode_message(bytes, change.stream_xid().is_some())
}

#[test]
fn hand_written_begin_and_insert_decode() {
    let begin = Bytes::from_static(&[
        b'B', 0, 0, 0, 0x16, 0xB3, 0x74, 0xD8, 0x48, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 2, 0xE4,
    ]);
    assert_eq!(
        decode_message(begin, false),
        Ok(Change::Begin {
            final_lsn: "16/B374D848".parse().unwrap(),
            commit_time: PgTimestamp(9),
            xid: 740,
        })
    );
    let insert = Bytes::from_static(b"I\0\0\x40\0N\0\x03t\0\0\0\x0242nb\0\0\0\x01\xff");
    assert_eq!(
        decode_message(insert, false),
        Ok(Change::Insert {
            stream_xid: None,
            relation: RelationId(16384),
            new: Row(vec![
                text("42"),
                Datum::Null,
                Datum::Binary(Bytes::from_static(&[0xff]))
            ]),
        })
    );
}

#[test]
fn samples_round_trip() {
    for change in samples() {
        assert_eq!(decode_as_sent(&change, encode(&change)), Ok(change));
    }
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    for change in samples() {
        let bytes = encode(&change);
        for len in 0..bytes.len() {
            // A Stream Abort cut just before the protocol 4 fields is the protocol 2 form.
            if matches!(change, Change::StreamAbort { .. }) && len == 9 {
                continue;
            }
            let result = decode_as_sent(&change, bytes.slice(..len));
            assert!(
                result.is_err(),
                "{} cut to {len} bytes decoded: {result:?}",
                change.name()
            );
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for change in samples() {
        let mut bytes = encode(&change).to_vec();
        bytes.push(0);
        let result = decode_as_sent(&change, bytes.into());
        assert!(
            matches!(result, Err(DecodeError::TrailingBytes { count: 1, .. })),
            "{}: {result:?}",
            change.name()
        );
    }
}

#[test]
fn empty_and_unknown_kinds_are_errors() {
    assert_eq!(decode_message(Bytes::new(), false), Err(DecodeError::Empty));
    let err = decode_message(Bytes::from_static(b"Zabc"), false).unwrap_err();
    assert_eq!(err, DecodeError::UnknownKind { tag: b'Z' });
    assert_eq!(err.to_string(), "unknown pgoutput message kind 0x5a (Z)");
    assert!(!err.is_transient());
}

#[test]
fn negative_lengths_are_errors() {
    // A text value of length -1.
    let insert = Bytes::from_static(b"I\0\0\x40\0N\0\x01t\xff\xff\xff\xff");
    let err = decode_message(insert, false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Invalid {
                kind: MessageKind::Insert,
                field: "text value",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "pgoutput Insert message: text value has negative length -1"
    );
    // A truncate of -2 relations.
    let truncate = Bytes::from_static(b"T\xff\xff\xff\xfe\0");
    assert!(matches!(
        decode_message(truncate, false),
        Err(DecodeError::Invalid {
            field: "relation count",
            ..
        })
    ));
    // A message whose content has length -5.
    let message = Bytes::from_static(b"M\x01\0\0\0\0\0\0\0\x01ferry\0\xff\xff\xff\xfb");
    assert!(matches!(
        decode_message(message, false),
        Err(DecodeError::Invalid {
            field: "content",
            ..
        })
    ));
}

#[test]
fn huge_declared_sizes_are_errors_not_allocations() {
    let value = Bytes::from_static(b"I\0\0\x40\0N\0\x01t\x7f\xff\xff\xff");
    let err = decode_message(value, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Insert message ends in text value: 2147483647 bytes needed, 0 left"
    );
    let columns = Bytes::from_static(b"U\0\0\x40\0N\xff\xff");
    assert!(matches!(
        decode_message(columns, false),
        Err(DecodeError::Truncated {
            field: "tuple columns",
            needed: 65535,
            ..
        })
    ));
    let relations = Bytes::from_static(b"T\x7f\xff\xff\xff\x01\0\0\0\x01");
    assert!(matches!(
        decode_message(relations, false),
        Err(DecodeError::Truncated {
            field: "relation oids",
            ..
        })
    ));
    let relation = Bytes::from_static(b"R\0\0\x40\0public\0t\0d\xff\xff");
    assert!(matches!(
        decode_message(relation, false),
        Err(DecodeError::Truncated {
            field: "columns",
            ..
        })
    ));
}

#[test]
fn bytes_the_server_never_sends_are_errors() {
    let cases: [(&'static [u8], &str); 7] = [
        (b"I\0\0\x40\0N\0\x01x", "column kind"),
        (b"I\0\0\x40\0K\0\0", "tuple marker"),
        (b"D\0\0\x40\0N\0\0", "tuple marker"),
        (b"U\0\0\x40\0K\0\0K\0\0", "tuple marker"),
        (
            b"C\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            "flags",
        ),
        (b"S\0\0\0\x07\x02", "first segment flag"),
        (b"T\0\0\0\0\x04", "options"),
    ];
    for (bytes, field) in cases {
        let result = decode_message(Bytes::from_static(bytes), false);
        assert!(
            matches!(&result, Err(DecodeError::Invalid { field: f, .. }) if *f == field),
            "{bytes:?}: {result:?}"
        );
    }
    let not_utf8 = Bytes::from_static(b"O\0\0\0\0\0\0\0\x01\xff\xfe\0");
    assert!(matches!(
        decode_message(not_utf8, false),
        Err(DecodeError::Invalid {
            field: "origin name",
            ..
        })
    ));
    let no_nul = Bytes::from_static(b"O\0\0\0\0\0\0\0\x01abc");
    assert!(matches!(
        decode_message(no_nul, false),
        Err(DecodeError::Invalid {
            field: "origin name",
            ..
        })
    ));
}

#[test]
fn empty_namespace_means_pg_catalog() {
    let typ = Bytes::from_static(b"Y\0\0\0\x17\0int4\0");
    let Ok(Change::Type { schema, name, .. }) = decode_message(typ, false) else {
        panic!("not a Type");
    };
    assert_eq!((schema.as_str(), name.as_str()), ("pg_catalog", "int4"));
}

#[test]
fn values_are_slices_of_the_payload() {
    let payload = encode(&samples()[5]);
    let range = payload.as_ptr_range();
    let Ok(Change::Insert { new, .. }) = decode_message(payload.clone(), false) else {
        panic!("not an Insert");
    };
    let Some(Datum::Text(value)) = new.0.first() else {
        panic!("first column is not text");
    };
    assert!(range.contains(&value.as_ptr()), "the value was copied");
}

#[test]
fn the_decoder_reads_xids_only_inside_stream_blocks() {
    let mut decoder = PgoutputDecoder::new();
    let insert = |xid| Change::Insert {
        stream_xid: xid,
        relation: RelationId(16384),
        new: Row(vec![text("1")]),
    };
    let start = Change::StreamStart {
        xid: 900,
        first_segment: false,
    };
    assert_eq!(decoder.decode(encode(&insert(None))), Ok(insert(None)));
    assert_eq!(decoder.decode(encode(&start)), Ok(start.clone()));
    assert_eq!(decoder.open_stream(), Some(900));
    // A subtransaction's change carries the subtransaction's xid.
    assert_eq!(
        decoder.decode(encode(&insert(Some(901)))),
        Ok(insert(Some(901)))
    );
    // A malformed message leaves the block open.
    assert!(decoder.decode(Bytes::from_static(b"I\0")).is_err());
    assert_eq!(decoder.open_stream(), Some(900));
    assert_eq!(
        decoder.decode(encode(&Change::StreamStop)),
        Ok(Change::StreamStop)
    );
    assert_eq!(decoder.open_stream(), None);
}

#[test]
fn the_decoder_rejects_messages_out_of_place() {
    let mut decoder = PgoutputDecoder::new();
    let err = decoder.decode(encode(&Change::StreamStop)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Stream Stop message outside a stream block"
    );
    let start = Change::StreamStart {
        xid: 900,
        first_segment: true,
    };
    decoder.decode(encode(&start)).unwrap();
    for change in [start, samples()[0].clone(), samples()[12].clone()] {
        assert!(
            matches!(
                decoder.decode(encode(&change)),
                Err(DecodeError::OutOfPlace {
                    in_stream: true,
                    ..
                })
            ),
            "{} accepted inside a block",
            change.name()
        );
    }
    // An Origin may follow Stream Start (a replicated transaction).
    let origin = samples()[2].clone();
    assert_eq!(decoder.decode(encode(&origin)), Ok(origin));
}

#[test]
fn message_kinds_map_to_their_tags_and_back() {
    for kind in MessageKind::ALL {
        assert_eq!(MessageKind::from_tag(kind.tag()), Some(kind));
    }
    assert_eq!(MessageKind::from_tag(b'Z'), None);
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(change in strategy::change()) {
        let bytes = encode(&change);
        prop_assert_eq!(decode_as_sent(&change, bytes), Ok(change));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        in_stream: bool,
    ) {
        let _ = decode_message(bytes.into(), in_stream);
    }

    #[test]
    fn every_prefix_of_an_arbitrary_change_errors_or_decodes(change in strategy::change()) {
        let bytes = encode(&change);
        for len in 0..bytes.len() {
            let _ = decode_as_sent(&change, bytes.slice(..len));
        }
    }
}
