//! Replication capacity and an existing slot's state: full slots, no WAL senders, a slot of
//! another plugin, a slot in use, a lost slot; and the retained WAL of a healthy slot.

#[path = "support/check_support.rs"]
mod support;

use ferry_pgwire::{ReplicationClient, SlotOptions, SnapshotAction};
use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

#[tokio::test]
async fn all_slots_in_use_fails_with_the_setting_to_raise() {
    let source = TempCluster::builder()
        .setting("max_replication_slots", "1")
        .start()
        .unwrap();
    source
        .psql("SELECT pg_create_logical_replication_slot('other', 'pgoutput')")
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let slots = one(&findings.items, "replication_slots", Status::Fail);
    assert!(
        slots.message.contains("all 1 replication slots are in use"),
        "{}",
        slots.message
    );
    assert!(slots
        .fix
        .as_deref()
        .unwrap()
        .contains("max_replication_slots"));
}

#[tokio::test]
async fn no_wal_sender_available_fails() {
    let source = TempCluster::builder()
        .setting("max_wal_senders", "0")
        .start()
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let senders = one(&findings.items, "wal_senders", Status::Fail);
    assert!(senders.fix.as_deref().unwrap().contains("max_wal_senders"));
    // And the real replication connection is refused for the same reason.
    let repl = one(&findings.items, "replication_connection", Status::Fail);
    assert!(
        repl.fix.as_deref().unwrap().contains("max_wal_senders"),
        "{:?}",
        repl.fix
    );
}

#[tokio::test]
async fn existing_slot_with_another_plugin_fails() {
    let source = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "SELECT pg_create_logical_replication_slot('{SLOT}', 'test_decoding')"
        ))
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let slot = one(&findings.items, "slot", Status::Fail);
    assert!(slot.message.contains("test_decoding"), "{}", slot.message);
    assert!(slot
        .fix
        .as_deref()
        .unwrap()
        .contains("pg_drop_replication_slot('ferry_test')"));
}

#[tokio::test]
async fn healthy_existing_slot_reports_retained_wal_in_bytes() {
    let source = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput');
             CREATE TABLE public.t (id int PRIMARY KEY);
             INSERT INTO public.t SELECT generate_series(1, 1000);"
        ))
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let slot = one(&findings.items, "slot", Status::Pass);
    let bytes: u64 = slot
        .message
        .split(" bytes of WAL retained")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {:?}", slot.message));
    assert!(bytes > 0, "{}", slot.message);
}

#[tokio::test]
async fn slot_active_in_another_process_fails_with_its_pid() {
    let source = TempCluster::new().unwrap();
    let params = conn(&source, "postgres", None, "postgres");
    let mut holder = ReplicationClient::connect(&params).await.unwrap();
    holder
        .create_slot(
            SLOT,
            "pgoutput",
            SlotOptions {
                temporary: false,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .await
        .unwrap();
    source
        .psql(&format!("CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES"))
        .unwrap();
    let stream = holder
        .start_logical_replication(
            SLOT,
            ferry_core::Lsn::ZERO,
            &[("proto_version", "1"), ("publication_names", PUBLICATION)],
        )
        .await
        .unwrap();
    let pid = stream.process_id();
    let findings = Source::new(params, Plugin::Pgoutput).run().await;
    let slot = one(&findings.items, "slot", Status::Fail);
    assert!(
        slot.message.contains(&format!("used by process {pid}")),
        "{}",
        slot.message
    );
    assert!(slot
        .fix
        .as_deref()
        .unwrap()
        .contains(&format!("pg_terminate_backend({pid})")));
    drop(stream);
}

#[tokio::test]
async fn lost_slot_fails_with_the_resync_command() {
    let source = TempCluster::builder()
        .setting("max_slot_wal_keep_size", "1MB")
        .setting("max_wal_size", "32MB")
        .setting("min_wal_size", "32MB")
        .start()
        .unwrap();
    source
        .psql(&format!(
            "SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput');
             CREATE TABLE public.filler (id int PRIMARY KEY, pad text);"
        ))
        .unwrap();
    // Write and switch past several segments, then checkpoint: the slot's WAL is removed.
    for round in 0..4 {
        source
            .psql(&format!(
                "INSERT INTO public.filler SELECT g, repeat('x', 200) FROM generate_series({}, {}) g;
                 SELECT pg_switch_wal();",
                round * 20_000 + 1,
                (round + 1) * 20_000
            ))
            .unwrap();
        source.psql("CHECKPOINT").unwrap();
    }
    let status = source
        .psql(&format!(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ))
        .unwrap();
    assert_eq!(
        status.trim(),
        "lost",
        "the test did not manage to lose the slot"
    );
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let slot = one(&findings.items, "slot", Status::Fail);
    assert!(
        slot.message.contains("invalidated (wal_removed"),
        "{}",
        slot.message
    );
    let fix = slot.fix.as_deref().unwrap();
    assert!(
        fix.contains("pg_drop_replication_slot") && fix.contains("ferry sync"),
        "{fix}"
    );
}
