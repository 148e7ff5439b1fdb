//! Unit tests of the start plan: what `compute` plans (or refuses) from observed states of
//! the publication, the slots and the table record, without a server.

use super::*;
use ferry_postgres::catalog::{ReplicaIdentity, TableInfo};
use ferry_postgres::{resolve, TableSelection};

fn table(oid: u32, name: &str) -> TableInfo {
    TableInfo {
        name: TableName::new("public", name),
        oid,
        relkind: 'r',
        is_partition: false,
        replica_identity: ReplicaIdentity::Default,
        has_primary_key: true,
        has_identity_index: false,
        can_select: true,
        owned: true,
        unlogged: false,
    }
}

fn t(name: &str) -> TableName {
    TableName::new("public", name)
}

fn options() -> StreamSyncOptions {
    let conn = ferry_pgwire::ConnParams::parse("postgres://localhost/app").unwrap();
    StreamSyncOptions {
        full: crate::FullSyncOptions {
            source: conn.clone(),
            target: conn,
            tables: TableSelection::parse(&["public.*".into()], &[]).unwrap(),
            workers: 1,
            snapshot: crate::SnapshotSource::Export,
            on_existing: ferry_postgres::schema::create::OnExisting::Error,
            split_bytes: 1,
            beside: Vec::new(),
        },
        copy_first: true,
        slot: "s".into(),
        plugin: Plugin::Pgoutput,
        publication: "p".into(),
        pipeline: "test".into(),
        progress_schema: "ferry".into(),
        streaming: true,
        coalesce: true,
        heartbeat: None,
        watch_tables: None,
        batch: Default::default(),
    }
}

fn seen(tables: Vec<TableInfo>) -> Observed {
    let options = options();
    Observed {
        version: 150_000,
        selection: resolve(&options.full.tables, tables, &[]),
        ..Observed::default()
    }
}

fn slot(name: &str) -> SlotInfo {
    SlotInfo {
        name: name.into(),
        plugin: Some("pgoutput".into()),
        slot_type: "logical".into(),
        database: Some("app".into()),
        temporary: false,
        active: false,
        active_pid: None,
        restart_lsn: None,
        confirmed_flush_lsn: None,
        wal_status: Some("reserved".into()),
        retained_bytes: None,
        invalidated: None,
    }
}

fn everything(named: &[&str]) -> PublicationInfo {
    PublicationInfo {
        insert: true,
        update: true,
        delete: true,
        truncate: true,
        owned: true,
        tables: named.iter().map(|n| t(n)).collect(),
        named: named.iter().map(|n| t(n)).collect(),
        ..PublicationInfo::default()
    }
}

#[test]
fn a_first_run_extends_a_publication_that_exists() {
    let mut seen = seen(vec![table(1, "t1"), table(2, "t2")]);
    seen.publication = Some(everything(&["t1"]));
    let plan = compute(&options(), &seen).unwrap();
    assert_eq!(plan.start, Start::First { again: false });
    let publication = plan.publication.as_ref().unwrap();
    assert_eq!(
        publication.statements(),
        vec![r#"ALTER PUBLICATION "p" ADD TABLE ONLY "public"."t2""#]
    );
    assert!(plan
        .to_string()
        .contains("publication \"p\": add ONLY \"public\".\"t2\""));
}

#[test]
fn a_carried_table_the_publication_lacks_is_copied_again() {
    let mut seen = seen(vec![table(1, "t1"), table(2, "t2"), table(3, "t3")]);
    seen.publication = Some(everything(&["t1"]));
    seen.slot = Some(slot("s"));
    seen.position = Some(Lsn::from_u64(100));
    seen.recorded = vec![
        (t("t1"), Some(TableStart::at(Lsn::ZERO))),
        (t("t2"), Some(TableStart::at(Lsn::ZERO))),
        (t("gone"), Some(TableStart::at(Lsn::ZERO))),
    ];
    seen.leftover_slots = vec!["s_add".into()];
    let plan = compute(&options(), &seen).unwrap();
    assert_eq!(
        plan.add,
        vec![
            (t("t2"), AddReason::NotPublished),
            (t("t3"), AddReason::New)
        ]
    );
    assert_eq!(plan.forget, vec![t("gone")]);
    assert_eq!(plan.drop_slots, vec!["s_add".to_owned()]);
}

#[test]
fn a_table_recorded_under_another_oid_is_copied_anew() {
    let mut seen = seen(vec![table(1, "t1"), table(7, "t2")]);
    seen.publication = Some(everything(&["t1", "t2"]));
    seen.slot = Some(slot("s"));
    seen.position = Some(Lsn::from_u64(100));
    seen.recorded = vec![
        (t("t1"), Some(TableStart::at(Lsn::ZERO))),
        (t("t2"), Some(TableStart::at(Lsn::ZERO))),
    ];
    // t1's OID was never recorded (an older Ferry): taken as the same table.
    seen.recorded_oids = [(t("t2"), 2)].into_iter().collect();
    let plan = compute(&options(), &seen).unwrap();
    assert_eq!(plan.add, vec![(t("t2"), AddReason::Recreated)]);
    assert_eq!(plan.oids, vec![(t("t1"), 1), (t("t2"), 7)]);
    assert!(plan.to_string().contains("dropped and created again"));
}

#[test]
fn what_cannot_start_is_refused_with_the_fix() {
    let mut unlogged = table(1, "u");
    unlogged.unlogged = true;
    let error = compute(&options(), &seen(vec![unlogged])).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("ALTER TABLE \"public\".\"u\" SET LOGGED"),
        "{error}"
    );

    let mut resumed = seen(vec![table(1, "t1")]);
    resumed.position = Some(Lsn::from_u64(100));
    let error = compute(&options(), &resumed).unwrap_err();
    assert!(matches!(error, SyncError::SlotGone { .. }), "{error}");
    resumed.slot = Some(SlotInfo {
        wal_status: Some("lost".into()),
        invalidated: Some("wal_removed".into()),
        ..slot("s")
    });
    let error = compute(&options(), &resumed).unwrap_err();
    assert!(error.to_string().contains("invalidated"), "{error}");

    let mut filtered = seen(vec![table(1, "t1")]);
    filtered.publication = Some(PublicationInfo {
        delete: false,
        ..everything(&["t1"])
    });
    let error = compute(&options(), &filtered).unwrap_err();
    assert!(
        error.to_string().contains("does not publish delete"),
        "{error}"
    );
}

#[test]
fn an_interrupted_first_run_drops_its_slot_and_copies_again() {
    let mut seen = seen(vec![table(1, "t1")]);
    seen.position = Some(Lsn::ZERO);
    seen.slot = Some(slot("s"));
    let plan = compute(&options(), &seen).unwrap();
    assert_eq!(plan.start, Start::First { again: true });
    assert_eq!(plan.drop_slots, vec!["s".to_owned()]);
    assert!(plan.publication.unwrap().create);
}
