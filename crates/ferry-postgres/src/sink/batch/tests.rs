//! Unit tests of the statement batcher: the SQL of each kind of run, where runs end, and
//! what is left to the caller.

use bytes::Bytes;
use ferry_core::{RelationColumn, RelationId};

use super::*;

fn target() -> TargetRelation {
    let column = |name: &str, is_key: bool| RelationColumn {
        name: name.into(),
        type_oid: 25,
        type_modifier: -1,
        is_key,
    };
    TargetRelation {
        relation: Relation {
            id: RelationId(7),
            schema: "shop".into(),
            name: "Items".into(),
            replica_identity: 'd',
            columns: vec![
                column("id", true),
                column("qty", false),
                column("bio", false),
            ],
        },
        identity_always: vec![false, false, false],
        generated: vec![false, false, false],
        types: vec!["bigint".into(), "integer".into(), "text".into()],
    }
}

fn text(s: &str) -> Datum {
    Datum::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn insert(id: &str) -> Change {
    Change::Insert {
        stream_xid: None,
        relation: RelationId(7),
        new: Row(vec![text(id), text("1"), Datum::Null]),
    }
}

fn update(id: &str, qty: &str, bio: Datum) -> Change {
    Change::Update {
        stream_xid: None,
        relation: RelationId(7),
        key: None,
        old: None,
        new: Row(vec![text(id), text(qty), bio]),
    }
}

fn delete(id: &str) -> Change {
    Change::Delete {
        stream_xid: None,
        relation: RelationId(7),
        key: Some(Row(vec![text(id), Datum::Null, Datum::Null])),
        old: None,
    }
}

fn run(changes: &[Change]) -> String {
    let mut batcher = Batcher::default();
    let mut out = String::new();
    for change in changes {
        assert!(batcher.add(&target(), change, &mut out).unwrap());
    }
    batcher.finish(&mut out);
    out
}

#[test]
fn consecutive_inserts_become_one_statement() {
    assert_eq!(
        run(&[insert("1"), insert("2")]),
        "INSERT INTO \"shop\".\"Items\" (\"id\", \"qty\", \"bio\") OVERRIDING SYSTEM VALUE VALUES \
         ('1'::bigint, '1'::integer, NULL::text), ('2', '1', NULL);\n"
    );
}

#[test]
fn updates_by_key_join_with_casts_in_the_first_row() {
    assert_eq!(
        run(&[update("1", "5", text("b")), update("2", "6", text("c"))]),
        "UPDATE ONLY \"shop\".\"Items\" AS t SET \"qty\" = v.c1, \"bio\" = v.c2 FROM (VALUES \
         ('1'::bigint, '5'::integer, 'b'::text), ('2', '6', 'c')) AS v(c0, c1, c2) WHERE t.\"id\" = v.c0;\n"
    );
}

#[test]
fn a_repeated_key_takes_the_later_values_and_another_shape_starts_a_new_statement() {
    let sql = run(&[
        update("1", "5", text("b")),
        update("1", "6", text("c")),
        update("2", "7", Datum::UnchangedToast),
        delete("3"),
        delete("4"),
    ]);
    assert_eq!(sql.matches(";\n").count(), 3, "{sql}");
    assert!(
        sql.starts_with(
            "UPDATE ONLY \"shop\".\"Items\" AS t SET \"qty\" = v.c1, \"bio\" = v.c2 FROM (VALUES \
         ('1'::bigint, '6'::integer, 'c'::text)) AS v"
        ),
        "{sql}"
    );
    assert!(sql.ends_with(
        "DELETE FROM ONLY \"shop\".\"Items\" WHERE (\"id\") IN (VALUES ('3'::bigint), ('4'));\n"
    ));
    // The unchanged TOAST value is left out of SET.
    assert!(
        sql.contains("SET \"qty\" = v.c1 FROM (VALUES ('2'::bigint, '7'::integer))"),
        "{sql}"
    );
}

#[test]
fn what_cannot_be_coalesced_is_left_to_the_caller_after_the_open_run() {
    let mut batcher = Batcher::default();
    let mut out = String::new();
    assert!(batcher.add(&target(), &insert("1"), &mut out).unwrap());
    assert!(out.is_empty());
    let key_change = Change::Update {
        stream_xid: None,
        relation: RelationId(7),
        key: Some(Row(vec![text("1"), Datum::Null, Datum::Null])),
        old: None,
        new: Row(vec![text("9"), text("1"), Datum::Null]),
    };
    assert!(!batcher.add(&target(), &key_change, &mut out).unwrap());
    assert!(out.starts_with("INSERT INTO"), "{out}");
    assert!(batcher.is_empty());
    let mut full = target();
    full.relation.replica_identity = 'f';
    let full_delete = Change::Delete {
        stream_xid: None,
        relation: RelationId(7),
        key: None,
        old: Some(Row(vec![text("1"), text("1"), Datum::Null])),
    };
    assert!(!batcher.add(&full, &full_delete, &mut out).unwrap());
    assert!(batcher.add(&full, &insert("2"), &mut out).unwrap());
}

#[test]
fn runs_stop_at_the_row_limit() {
    let changes: Vec<Change> = (0..MAX_RUN_ROWS + 1)
        .map(|i| insert(&i.to_string()))
        .collect();
    assert_eq!(run(&changes).matches(";\n").count(), 2);
}
