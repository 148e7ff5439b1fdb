//! The pgoutput decoder against what a real PostgreSQL 15 sent: every record of the fixtures
//! in `tests/fixtures/pgoutput/` (captured by `examples/capture_pgoutput.rs`, protocol 2,
//! streaming on, messages on; once as text and once with binary on) decodes, in the order and
//! with the contents the capture's workload implies.

#[path = "pgoutput_golden_fixtures/fixture.rs"]
mod fixture;

use bytes::Bytes;
use ferry_core::{Change, Datum, Row};
use fixture::{
    by_xid, changes, kinds, plain_changes, streamed, text, text_datum, texts, Relations, BINARY,
    TEXT,
};

/// The exact sequence of the capture. Stream block sizes follow from
/// `logical_decoding_work_mem = 64kB`: a recapture on another server version may cut the
/// blocks elsewhere and must update this.
const SEQUENCE: &str = "\
    B R I×3 C B U C B U C B D C \
    B R I×3 U D C \
    B R I C B U C \
    B R I R I C B D I C \
    B Y R I C \
    B R I R I C B R×2 T C \
    B M C M \
    S R I×449 E S I×449 E S I×449 E S I×443 E S I×440 E A S R I×412 E S R I×88 E c \
    S R I×432 E S I×432 E A \
    M";

#[test]
fn every_record_decodes_in_the_order_of_the_workload() {
    for name in [TEXT, BINARY] {
        assert_eq!(kinds(&changes(name)), SEQUENCE, "{name}");
    }
}

#[test]
fn relations_name_their_columns_types_and_keys() {
    let changes = changes(TEXT);
    // The enum's oid is the cluster's own; the Type message before its Relation names it.
    let (mood_oid, mood) = changes
        .iter()
        .find_map(|c| match c {
            Change::Type {
                id, schema, name, ..
            } => Some((*id, format!("{schema}.{name}"))),
            _ => None,
        })
        .unwrap();
    assert_eq!(mood, "public.mood");
    let described: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Relation {
                stream_xid: None,
                relation: r,
            } => {
                let columns: Vec<String> = r
                    .columns
                    .iter()
                    .map(|c| {
                        let key = if c.is_key { "*" } else { "" };
                        let oid = if c.type_oid == mood_oid {
                            "mood".to_owned()
                        } else {
                            c.type_oid.to_string()
                        };
                        format!("{}{key}:{oid}", c.name)
                    })
                    .collect();
                Some(format!(
                    "{}.{} {} {}",
                    r.schema,
                    r.name,
                    r.replica_identity,
                    columns.join(",")
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        described,
        [
            "public.items d id*:23,label:25",
            "public.events_log f kind*:25,payload*:25",
            "public.docs d id*:23,version:23,body:25",
            "public.measurements_eu d id*:23,region*:25,reading:1700",
            "public.measurements_us d id*:23,region*:25,reading:1700",
            "public.people d id*:23,name:25,feeling:mood",
            "public.parents d id*:23,name:25",
            "public.children d id*:23,parent_id:23",
            // TRUNCATE invalidates the relation cache entries: both are sent again.
            "public.parents d id*:23,name:25",
            "public.children d id*:23,parent_id:23",
        ]
    );
}

#[test]
fn updates_and_deletes_carry_key_old_and_new_tuples() {
    let changes = changes(TEXT);
    let plain = plain_changes(&changes);
    let mut updates = plain
        .iter()
        .filter(|(_, c)| !matches!(c, Change::Insert { .. }));
    let mut next = || updates.next().unwrap();

    // UPDATE items SET label: no old tuple, the key is in the new one.
    let (
        rel,
        Change::Update {
            key: None,
            old: None,
            new,
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(
        (rel.as_str(), texts(new)),
        ("items", vec![Some("2"), Some("two, updated")])
    );
    // UPDATE items SET id = 30: the old key (K), non-key columns null.
    let (
        _,
        Change::Update {
            key: Some(key),
            old: None,
            new,
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(texts(key), [Some("3"), None]);
    assert_eq!(texts(new), [Some("30"), Some("three")]);
    // DELETE FROM items: the key only.
    let (
        _,
        Change::Delete {
            key: Some(key),
            old: None,
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(texts(key), [Some("1"), None]);
    // REPLICA IDENTITY FULL: whole old rows (O).
    let (
        rel,
        Change::Update {
            key: None,
            old: Some(old),
            new,
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(rel, "events_log");
    assert_eq!(
        (texts(old), texts(new)),
        (vec![Some("b"), None], vec![Some("b"), Some("y")])
    );
    let (
        _,
        Change::Delete {
            key: None,
            old: Some(old),
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(texts(old), [Some("b"), Some("y")]);
    // An update that leaves the TOASTed body alone: 'u', not NULL and not the value.
    let (
        rel,
        Change::Update {
            key: None,
            old: None,
            new,
            ..
        },
    ) = next()
    else {
        panic!()
    };
    assert_eq!(rel, "docs");
    assert_eq!(new.0[..2], [text_datum("1"), text_datum("2")]);
    assert_eq!(new.0[2], Datum::UnchangedToast);
    // A row moving between partitions: a delete from one leaf, an insert into the other.
    let (rel, Change::Delete { key: Some(key), .. }) = next() else {
        panic!()
    };
    assert_eq!(
        (rel.as_str(), texts(key)),
        ("measurements_eu", vec![Some("1"), Some("eu"), None])
    );
    assert!(updates.next().is_none());
    let moved = plain
        .iter()
        .rev()
        .find(|(rel, _)| rel == "measurements_us")
        .unwrap();
    let Change::Insert { new, .. } = &moved.1 else {
        panic!()
    };
    assert_eq!(texts(new), [Some("1"), Some("us"), Some("1.5")]);
}

#[test]
fn the_toasted_value_arrives_whole_on_insert() {
    let changes = changes(TEXT);
    let (_, Change::Insert { new, .. }) = plain_changes(&changes)
        .into_iter()
        .find(|(rel, _)| rel == "docs")
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(text(&new.0[2]), "toast-".repeat(2000));
}

#[test]
fn truncate_names_both_tables_with_its_options() {
    let changes = changes(TEXT);
    let mut relations = Relations::default();
    let mut truncates = Vec::new();
    for change in &changes {
        relations.see(change);
        if let Change::Truncate {
            relations: ids,
            cascade,
            restart_identity,
            stream_xid: None,
        } = change
        {
            let names: Vec<&str> = ids.iter().map(|id| relations.name(*id)).collect();
            truncates.push((names.join(","), *cascade, *restart_identity));
        }
    }
    assert_eq!(truncates, [("parents,children".to_owned(), true, true)]);
}

#[test]
fn logical_messages_carry_prefix_content_and_transactionality() {
    let messages: Vec<(bool, String, Bytes)> = changes(TEXT)
        .into_iter()
        .filter_map(|c| match c {
            Change::Message {
                transactional,
                prefix,
                content,
                stream_xid: None,
                ..
            } => Some((transactional, prefix, content)),
            _ => None,
        })
        .collect();
    let expected = [
        (true, "ferry", "hello"),
        (false, "ferry", "heartbeat"),
        (false, "ferry", "capture done"),
    ];
    assert_eq!(messages.len(), expected.len(), "{messages:?}");
    for ((transactional, prefix, content), expected) in messages.iter().zip(expected) {
        assert_eq!(
            (*transactional, prefix.as_str(), &content[..]),
            (expected.0, expected.1, expected.2.as_bytes())
        );
    }
}

#[test]
fn a_streamed_transaction_commits_after_its_blocks_with_subtransaction_xids() {
    let streams = streamed(&changes(TEXT));
    assert_eq!(
        streams.len(),
        2,
        "one committed and one aborted streamed transaction"
    );
    let committed = &streams[0];
    assert_eq!(committed.blocks, 7);
    let [Change::StreamAbort {
        xid,
        subxid,
        abort_lsn: None,
        abort_time: None,
    }, Change::StreamCommit {
        xid: commit_xid,
        commit_lsn,
        end_lsn,
        ..
    }] = &committed.ends[..]
    else {
        panic!("ends: {:?}", committed.ends);
    };
    assert_eq!((*xid, *commit_xid), (committed.xid, committed.xid));
    assert!(end_lsn > commit_lsn);
    // Changes carry the xid of the subtransaction that made them: the top level's 1,500
    // rows, the rolled-back savepoint's rows streamed before ROLLBACK TO (the rest were never
    // sent), and the rows after it, in the savepoint's new subtransaction (ROLLBACK TO keeps
    // the savepoint), which commit with the rest. Only the first subtransaction is aborted.
    let parts = by_xid(committed);
    let kinds: Vec<&str> = parts.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["R I×1500", "I×730", "R I×412 R I×88"]);
    assert_eq!(parts[0].0, committed.xid);
    assert_eq!(parts[1].0, *subxid);
    assert!(parts[2].0 != committed.xid && parts[2].0 != *subxid);
}

#[test]
fn a_column_added_mid_stream_resends_the_relation_inside_the_stream() {
    let streams = streamed(&changes(TEXT));
    let items: Vec<Vec<&str>> = streams[0]
        .changes
        .iter()
        .filter_map(|(_, c)| match c {
            Change::Relation { relation, .. } => {
                Some(relation.columns.iter().map(|c| c.name.as_str()).collect())
            }
            _ => None,
        })
        .collect();
    // Sent again in the next block too: the server resends after any invalidation.
    assert_eq!(
        items,
        [
            vec!["id", "label"],
            vec!["id", "label", "extra"],
            vec!["id", "label", "extra"]
        ]
    );
    let last = streams[0].changes.last().unwrap();
    let (_, Change::Insert { new, .. }) = last else {
        panic!("{last:?}")
    };
    assert_eq!(
        texts(new),
        [Some("2999"), Some("after alter 2999"), Some("2999")]
    );
}

#[test]
fn an_aborted_streamed_transaction_ends_with_a_whole_abort() {
    let streams = streamed(&changes(TEXT));
    let aborted = &streams[1];
    let [Change::StreamAbort { xid, subxid, .. }] = &aborted.ends[..] else {
        panic!("ends: {:?}", aborted.ends);
    };
    assert_eq!((*xid, *subxid), (aborted.xid, aborted.xid));
    // Rows streamed while it was open; the rest of its 1,000 were never sent.
    assert_eq!(by_xid(aborted), [(aborted.xid, "R I×864".to_owned())]);
}

#[test]
fn the_binary_capture_sends_values_in_binary() {
    let changes = changes(BINARY);
    let plain = plain_changes(&changes);
    let (rel, Change::Insert { new, .. }) = &plain[0] else {
        panic!()
    };
    assert_eq!(rel, "items");
    assert_eq!(
        new.0,
        [
            Datum::Binary(Bytes::from_static(&[0, 0, 0, 1])),
            Datum::Binary(Bytes::from_static(b"one")),
        ]
    );
    let people = plain.iter().find(|(rel, _)| rel == "people").unwrap();
    let Change::Insert { new, .. } = &people.1 else {
        panic!()
    };
    assert_eq!(new.0[2], Datum::Binary(Bytes::from_static(b"happy")));
    let toast = plain.iter().find(
        |(_, c)| matches!(c, Change::Update { new, .. } if new.0.contains(&Datum::UnchangedToast)),
    );
    assert!(toast.is_some(), "unchanged TOAST is 'u' in binary mode too");
    for change in &changes {
        let rows: Vec<&Row> = match change {
            Change::Insert { new, .. } => vec![new],
            Change::Update { key, old, new, .. } => key.iter().chain(old).chain([new]).collect(),
            Change::Delete { key, old, .. } => key.iter().chain(old).collect(),
            _ => continue,
        };
        for datum in rows.iter().flat_map(|r| &r.0) {
            assert!(!matches!(datum, Datum::Text(_)), "text datum in {change:?}");
        }
    }
}
