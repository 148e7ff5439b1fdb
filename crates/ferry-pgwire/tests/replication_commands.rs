//! The replication commands Ferry relies on, against a real PostgreSQL 15: IDENTIFY_SYSTEM,
//! slot creation with an exported snapshot that other sessions can import (the consistent
//! handoff of DESIGN.md invariant 3), temporary and permanent slots, and the errors for an
//! unknown plugin and an invalid slot name.

use std::time::Duration;

use ferry_core::{quote_literal, Lsn};
use ferry_pgwire::{
    connect_sql, ConnParams, Error, ReplicationClient, SlotOptions, SnapshotAction,
};
use ferry_testkit::TempCluster;

const EXPORT: SlotOptions = SlotOptions {
    temporary: false,
    snapshot: SnapshotAction::Export,
};
const PERMANENT: SlotOptions = SlotOptions {
    temporary: false,
    snapshot: SnapshotAction::Nothing,
};
const TEMPORARY: SlotOptions = SlotOptions {
    temporary: true,
    snapshot: SnapshotAction::Nothing,
};

fn params(cluster: &TempCluster) -> ConnParams {
    let url = format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    );
    let env = |_: &str| None;
    ConnParams::parse_with(&url, &env, "nobody", &|path| path.exists()).unwrap()
}

async fn replication_client(cluster: &TempCluster) -> ReplicationClient {
    ReplicationClient::connect(&params(cluster)).await.unwrap()
}

/// The slot's `temporary` flag, or `None` when no such slot exists.
async fn slot_temporary(admin: &tokio_postgres::Client, slot: &str) -> Option<bool> {
    admin
        .query_opt(
            "SELECT temporary FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

async fn current_wal_lsn(admin: &tokio_postgres::Client) -> Lsn {
    let text: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

#[tokio::test]
async fn identify_system_reports_this_cluster_and_its_wal_position() {
    let cluster = TempCluster::new().unwrap();
    let admin = cluster.admin_client().await;
    let mut client = replication_client(&cluster).await;

    let system = client.identify_system().await.unwrap();

    let system_id: String = admin
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(system.system_id, system_id);
    assert_eq!(system.timeline, 1);
    assert_eq!(system.dbname.as_deref(), Some("postgres"));
    assert!(!system.xlog_pos.is_zero());
    assert!(system.xlog_pos <= current_wal_lsn(&admin).await);
    assert!(client.server_version().0 >= 150_000);
    client.close().await;
}

#[tokio::test]
async fn exported_snapshot_sees_exactly_the_rows_committed_before_slot_creation() {
    let cluster = TempCluster::new().unwrap();
    let admin = cluster.admin_client().await;
    admin
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE t (id int PRIMARY KEY);
             INSERT INTO t VALUES (1), (2);",
        )
        .await
        .unwrap();
    let mut client = replication_client(&cluster).await;

    let slot = client
        .create_slot("handoff", "pgoutput", EXPORT)
        .await
        .unwrap();
    assert_eq!(slot.slot_name, "handoff");
    assert_eq!(slot.output_plugin, "pgoutput");
    assert!(!slot.consistent_point.is_zero());
    let snapshot = slot.snapshot_name.clone().expect("an exported snapshot");
    assert!(!snapshot.is_empty());

    // Committed after the slot: streaming delivers it, so the snapshot must not show it.
    admin
        .batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    assert!(current_wal_lsn(&admin).await > slot.consistent_point);

    // The replication connection stays open and idle while the snapshot is imported.
    let reader = connect_sql(&params(&cluster)).await.unwrap();
    reader
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
            quote_literal(&snapshot)
        ))
        .await
        .unwrap();
    let in_snapshot: Vec<i32> = reader
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(in_snapshot, [1, 2]);

    let now: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(now, 3);
    client.close().await;
}

#[tokio::test]
async fn temporary_slot_disappears_when_its_connection_closes() {
    let cluster = TempCluster::new().unwrap();
    let admin = cluster.admin_client().await;
    let mut client = replication_client(&cluster).await;

    let slot = client
        .create_slot("scratch", "pgoutput", TEMPORARY)
        .await
        .unwrap();
    assert_eq!(slot.snapshot_name, None);
    assert_eq!(slot_temporary(&admin, "scratch").await, Some(true));

    client.close().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slot_temporary(&admin, "scratch").await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "temporary slot still exists 10 s after its connection closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn drop_slot_removes_a_permanent_slot() {
    let cluster = TempCluster::new().unwrap();
    let admin = cluster.admin_client().await;
    let mut client = replication_client(&cluster).await;

    client
        .create_slot("keeper", "pgoutput", PERMANENT)
        .await
        .unwrap();
    assert_eq!(slot_temporary(&admin, "keeper").await, Some(false));

    // A permanent slot outlives the connection that made it.
    client.close().await;
    let mut client = replication_client(&cluster).await;
    assert_eq!(slot_temporary(&admin, "keeper").await, Some(false));

    client.drop_slot("keeper", false).await.unwrap();
    assert_eq!(slot_temporary(&admin, "keeper").await, None);

    let err = client.drop_slot("keeper", false).await.unwrap_err();
    assert_eq!(
        err.as_db_error().map(|db| db.code()),
        Some("42704"),
        "{err:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn unknown_output_plugin_fails_with_58p01_and_keeps_the_connection() {
    let cluster = TempCluster::new().unwrap();
    let admin = cluster.admin_client().await;
    let mut client = replication_client(&cluster).await;

    let err = client
        .create_slot("nowhere", "no_such_plugin", PERMANENT)
        .await
        .unwrap_err();

    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), "58P01", "{db}");
    assert!(!err.is_transient());
    assert_eq!(slot_temporary(&admin, "nowhere").await, None);
    // The error was read up to ReadyForQuery: the connection is still in step.
    assert!(!client.identify_system().await.unwrap().xlog_pos.is_zero());
    client.close().await;
}

#[tokio::test]
async fn invalid_slot_name_is_rejected_before_anything_is_sent() {
    let cluster = TempCluster::builder()
        .setting("log_replication_commands", "on")
        .start()
        .unwrap();
    let mut client = replication_client(&cluster).await;

    for name in ["Bad-Name", "", "x; DROP", &"a".repeat(64)] {
        let err = client
            .create_slot(name, "pgoutput", PERMANENT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{name:?}: expected InvalidArgument, got {err:?}"
        );
        assert!(!err.is_transient());
        let err = client.drop_slot(name, false).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{name:?}: expected InvalidArgument, got {err:?}"
        );
    }
    let err = client
        .create_slot("Bad-Name", "pgoutput", PERMANENT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Bad-Name"), "{err}");

    // The server logs each replication command it receives: IDENTIFY_SYSTEM shows that the
    // log works, and no slot command appears in it.
    client.identify_system().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = cluster.server_log();
        if log.contains("IDENTIFY_SYSTEM") {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "IDENTIFY_SYSTEM never logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!log.contains("CREATE_REPLICATION_SLOT"), "{log}");
    assert!(!log.contains("DROP_REPLICATION_SLOT"), "{log}");
    client.close().await;
}
