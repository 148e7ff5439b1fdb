//! A table without primary key or REPLICA IDENTITY FULL fails `check`, named, with the
//! ALTER TABLE that fixes it; the reason given depends on the plugin.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

const SCHEMA: &str = "
    CREATE TABLE public.keyed (id int PRIMARY KEY, v text);
    CREATE TABLE public.events (at timestamptz, payload text);
    CREATE TABLE public.\"Audit Log\" (line text);
    ALTER TABLE public.\"Audit Log\" REPLICA IDENTITY FULL;
    CREATE TABLE public.silent (x int);
    ALTER TABLE public.silent REPLICA IDENTITY NOTHING;
";

#[tokio::test]
async fn keyless_table_is_named_with_alter_table_for_pgoutput() {
    let source = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let failures = items(&findings.items, "replica_identity");
    let names: Vec<&str> = failures.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(failures.len(), 2, "{names:?}");
    let events = failures
        .iter()
        .find(|i| i.message.contains("\"public\".\"events\""))
        .unwrap_or_else(|| panic!("events not named: {names:?}"));
    assert_eq!(events.status, Status::Fail);
    assert!(events
        .message
        .contains("no primary key and REPLICA IDENTITY DEFAULT"));
    assert!(events
        .why
        .as_deref()
        .unwrap()
        .contains("UPDATE and DELETE on it fails on the source"));
    assert!(events
        .fix
        .as_deref()
        .unwrap()
        .starts_with("ALTER TABLE \"public\".\"events\" REPLICA IDENTITY FULL;"));
    assert!(failures.iter().any(|i| i
        .message
        .contains("\"public\".\"silent\" has REPLICA IDENTITY NOTHING")));
    // FULL and a primary key are both fine.
    assert!(!names
        .iter()
        .any(|n| n.contains("Audit Log") || n.contains("keyed")));
}

#[tokio::test]
async fn keyless_table_cannot_carry_deletes_with_wal2json() {
    let source = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Wal2json,
    )
    .run()
    .await;
    let events = items(&findings.items, "replica_identity")
        .into_iter()
        .find(|i| i.message.contains("events"))
        .unwrap();
    assert_eq!(events.status, Status::Fail);
    assert!(
        events
            .why
            .as_deref()
            .unwrap()
            .contains("deletes cannot be carried"),
        "{:?}",
        events.why
    );
}
