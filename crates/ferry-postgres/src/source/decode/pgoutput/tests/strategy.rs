//! proptest strategies for every [`Change`] variant, within what pgoutput can express:
//! names without NUL, non-empty namespaces (an empty one means `pg_catalog`), at most one of
//! an update's key and old row, exactly one for a delete, and the v4 abort fields together.

use bytes::Bytes;
use ferry_core::{Change, Datum, Lsn, PgTimestamp, Relation, RelationColumn, RelationId, Row};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

fn lsn() -> impl Strategy<Value = Lsn> {
    any::<u64>().prop_map(Lsn::from_u64)
}

fn time() -> impl Strategy<Value = PgTimestamp> {
    any::<i64>().prop_map(PgTimestamp)
}

fn name() -> impl Strategy<Value = String> {
    "[^\\x00]{0,12}"
}

fn schema() -> impl Strategy<Value = String> {
    "[^\\x00]{1,12}"
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn stream_xid() -> impl Strategy<Value = Option<u32>> {
    proptest::option::of(any::<u32>())
}

fn relation_id() -> impl Strategy<Value = RelationId> {
    any::<u32>().prop_map(RelationId)
}

fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        Just(Datum::Null),
        Just(Datum::UnchangedToast),
        bytes().prop_map(Datum::Text),
        bytes().prop_map(Datum::Binary),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    proptest::collection::vec(datum(), 0..6).prop_map(Row)
}

fn relation() -> impl Strategy<Value = Relation> {
    let column = (name(), any::<u32>(), any::<i32>(), any::<bool>()).prop_map(
        |(name, type_oid, type_modifier, is_key)| RelationColumn {
            name,
            type_oid,
            type_modifier,
            is_key,
        },
    );
    (
        relation_id(),
        schema(),
        name(),
        prop_oneof![Just('d'), Just('n'), Just('f'), Just('i')],
        proptest::collection::vec(column, 0..6),
    )
        .prop_map(|(id, schema, name, replica_identity, columns)| Relation {
            id,
            schema,
            name,
            replica_identity,
            columns,
        })
}

/// Any change pgoutput can send.
pub(super) fn change() -> BoxedStrategy<Change> {
    let old_tuples = prop_oneof![
        Just((None, None)),
        row().prop_map(|r| (Some(r), None)),
        row().prop_map(|r| (None, Some(r))),
    ];
    let delete_tuples = prop_oneof![
        row().prop_map(|r| (Some(r), None)),
        row().prop_map(|r| (None, Some(r))),
    ];
    let abort_info = proptest::option::of((lsn(), time()));
    let variants: Vec<BoxedStrategy<Change>> = vec![
        (lsn(), time(), any::<u32>())
            .prop_map(|(final_lsn, commit_time, xid)| Change::Begin {
                final_lsn,
                commit_time,
                xid,
            })
            .boxed(),
        (lsn(), lsn(), time())
            .prop_map(|(commit_lsn, end_lsn, commit_time)| Change::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            })
            .boxed(),
        (lsn(), name())
            .prop_map(|(lsn, name)| Change::Origin { lsn, name })
            .boxed(),
        (stream_xid(), relation())
            .prop_map(|(stream_xid, relation)| Change::Relation {
                stream_xid,
                relation,
            })
            .boxed(),
        (stream_xid(), any::<u32>(), schema(), name())
            .prop_map(|(stream_xid, id, schema, name)| Change::Type {
                stream_xid,
                id,
                schema,
                name,
            })
            .boxed(),
        (stream_xid(), relation_id(), row())
            .prop_map(|(stream_xid, relation, new)| Change::Insert {
                stream_xid,
                relation,
                new,
            })
            .boxed(),
        (stream_xid(), relation_id(), old_tuples, row())
            .prop_map(|(stream_xid, relation, (key, old), new)| Change::Update {
                stream_xid,
                relation,
                key,
                old,
                new,
            })
            .boxed(),
        (stream_xid(), relation_id(), delete_tuples)
            .prop_map(|(stream_xid, relation, (key, old))| Change::Delete {
                stream_xid,
                relation,
                key,
                old,
            })
            .boxed(),
        (
            stream_xid(),
            proptest::collection::vec(relation_id(), 0..5),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(stream_xid, relations, cascade, restart_identity)| Change::Truncate {
                    stream_xid,
                    relations,
                    cascade,
                    restart_identity,
                },
            )
            .boxed(),
        (stream_xid(), any::<bool>(), lsn(), name(), bytes())
            .prop_map(
                |(stream_xid, transactional, lsn, prefix, content)| Change::Message {
                    stream_xid,
                    transactional,
                    lsn,
                    prefix,
                    content,
                },
            )
            .boxed(),
        (any::<u32>(), any::<bool>())
            .prop_map(|(xid, first_segment)| Change::StreamStart { xid, first_segment })
            .boxed(),
        Just(Change::StreamStop).boxed(),
        (any::<u32>(), lsn(), lsn(), time())
            .prop_map(
                |(xid, commit_lsn, end_lsn, commit_time)| Change::StreamCommit {
                    xid,
                    commit_lsn,
                    end_lsn,
                    commit_time,
                },
            )
            .boxed(),
        (any::<u32>(), any::<u32>(), abort_info)
            .prop_map(|(xid, subxid, info)| Change::StreamAbort {
                xid,
                subxid,
                abort_lsn: info.map(|(lsn, _)| lsn),
                abort_time: info.map(|(_, time)| time),
            })
            .boxed(),
        prepared(
            |prepare_lsn, end_lsn, prepare_time, xid, gid| Change::BeginPrepare {
                prepare_lsn,
                end_lsn,
                prepare_time,
                xid,
                gid,
            },
        ),
        prepared(
            |prepare_lsn, end_lsn, prepare_time, xid, gid| Change::Prepare {
                prepare_lsn,
                end_lsn,
                prepare_time,
                xid,
                gid,
            },
        ),
        prepared(
            |prepare_lsn, end_lsn, prepare_time, xid, gid| Change::StreamPrepare {
                prepare_lsn,
                end_lsn,
                prepare_time,
                xid,
                gid,
            },
        ),
        prepared(
            |commit_lsn, end_lsn, commit_time, xid, gid| Change::CommitPrepared {
                commit_lsn,
                end_lsn,
                commit_time,
                xid,
                gid,
            },
        ),
        (lsn(), lsn(), time(), time(), any::<u32>(), name())
            .prop_map(
                |(prepare_end_lsn, rollback_end_lsn, prepare_time, rollback_time, xid, gid)| {
                    Change::RollbackPrepared {
                        prepare_end_lsn,
                        rollback_end_lsn,
                        prepare_time,
                        rollback_time,
                        xid,
                        gid,
                    }
                },
            )
            .boxed(),
    ];
    Union::new(variants).boxed()
}

/// The two-phase messages that share the (LSN, LSN, time, xid, gid) layout.
fn prepared(make: fn(Lsn, Lsn, PgTimestamp, u32, String) -> Change) -> BoxedStrategy<Change> {
    (lsn(), lsn(), time(), any::<u32>(), name())
        .prop_map(move |(a, b, t, xid, gid)| make(a, b, t, xid, gid))
        .boxed()
}
