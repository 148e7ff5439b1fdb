//! A source with `wal_level = replica` fails `check`, naming the setting and the fix.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

#[tokio::test]
async fn wal_level_replica_fails_with_the_alter_system_fix() {
    let source = TempCluster::builder()
        .setting("wal_level", "replica")
        .start()
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let item = one(&findings.items, "wal_level", Status::Fail);
    assert!(
        item.message.contains("wal_level is replica"),
        "{}",
        item.message
    );
    let fix = item.fix.as_deref().unwrap();
    assert!(
        fix.contains("ALTER SYSTEM SET wal_level = logical;"),
        "{fix}"
    );
    assert!(fix.contains("restart"), "{fix}");
    // The plugin cannot be tried without logical decoding: said as a warning, not a pass.
    let plugin = one(&findings.items, "plugin", Status::Warn);
    assert!(plugin.message.contains("not tested"), "{}", plugin.message);
}

#[tokio::test]
async fn timestamp_mode_does_not_need_wal_level_logical() {
    let source = TempCluster::builder()
        .setting("wal_level", "replica")
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY)")
        .unwrap();
    let mut check = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    );
    check.logical_decoding = false;
    let findings = check.run().await;
    assert_no_failures(&findings.items);
    assert!(findings.items.iter().all(|i| i.check != "wal_level"));
    one(&findings.items, "mode", Status::Pass);
}
