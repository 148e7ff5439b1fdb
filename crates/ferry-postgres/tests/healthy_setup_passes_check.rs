//! A correctly prepared source and target pass `check` with every plugin, including the
//! live test that the plugin loads.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::{Auth, RoleSpec, TempCluster};
use support::*;

async fn healthy_setup_passes(plugin: Plugin) {
    let source = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(RoleSpec::new("ferry").password("pw").replication())
        .start()
        .unwrap();
    source
        .psql(
            "CREATE TABLE public.orders (id int PRIMARY KEY, note text);
             CREATE TABLE public.log (line text);
             ALTER TABLE public.log REPLICA IDENTITY FULL;
             ALTER TABLE public.orders OWNER TO ferry;
             ALTER TABLE public.log OWNER TO ferry;
             GRANT CREATE ON DATABASE postgres TO ferry;",
        )
        .unwrap();
    let target = TempCluster::new().unwrap();
    let report = Source::new(conn(&source, "ferry", Some("pw"), "postgres"), plugin)
        .run_with_target(&conn(&target, "postgres", None, "postgres"))
        .await;
    assert_no_failures(&report.items);
    let loaded = one(&report.items, "plugin", Status::Pass);
    assert!(loaded.message.contains(plugin.name()), "{}", loaded.message);
    // The test slot is gone afterwards.
    let slots = source
        .psql("SELECT count(*) FROM pg_replication_slots")
        .unwrap();
    assert_eq!(slots.trim(), "0");
    assert!(!report.has_failures());
}

#[tokio::test]
async fn healthy_setup_passes_with_pgoutput() {
    healthy_setup_passes(Plugin::Pgoutput).await;
}

#[tokio::test]
async fn healthy_setup_passes_with_wal2json() {
    healthy_setup_passes(Plugin::Wal2json).await;
}

#[tokio::test]
async fn healthy_setup_passes_with_decoderbufs() {
    healthy_setup_passes(Plugin::Decoderbufs).await;
}
