//! A full sync that cannot finish says which table failed and what to do, and cleans up the
//! slot it created: a table dropped on the source mid-copy, rows the target's existing
//! constraints reject, a table the role may not read.

#[path = "support/sync_support.rs"]
mod support;

use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::Plugin;
use ferry_runtime::{run_full_sync, Progress, SnapshotSource, SyncEvent};
use ferry_testkit::{RoleSpec, TempCluster};
use support::*;

fn slot_count(cluster: &TempCluster) -> String {
    cluster
        .psql("SELECT count(*) FROM pg_replication_slots")
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_dropped_during_the_copy_is_named_and_the_slot_dropped() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.big (id int PRIMARY KEY, pad text);
             INSERT INTO public.big SELECT g, repeat('x', 300) FROM generate_series(1, 300000) g;
             CREATE TABLE public.doomed (id int PRIMARY KEY);
             INSERT INTO public.doomed VALUES (1);",
        )
        .unwrap();
    let mut opts = options(&source, &target, &["public.*"]);
    opts.workers = 1;
    opts.snapshot = SnapshotSource::Slot {
        name: "ferry_doomed".into(),
        plugin: Plugin::Pgoutput,
        keep: true,
    };
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let sync = tokio::spawn(async move { run_full_sync(&opts, &Progress::to(sender)).await });
    while let Some(event) = events.recv().await {
        if matches!(&event, SyncEvent::TableStarted { table, .. } if table.name == "big") {
            source.psql("DROP TABLE public.doomed").unwrap();
            break;
        }
    }
    let err = sync.await.unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("\"public\".\"doomed\""), "{text}");
    assert!(text.contains("dropped"), "{text}");
    assert!(!err.is_transient());
    assert_eq!(
        slot_count(&source),
        "0",
        "the failed run left its slot behind"
    );
    // The tables it created are gone too, so a second run starts clean.
    let left = target
        .psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .unwrap();
    assert_eq!(left.trim(), "0");
}

#[tokio::test]
async fn rows_rejected_by_an_existing_target_key_name_the_table_and_the_fix() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1), (2);")
        .unwrap();
    target
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (2);")
        .unwrap();
    let mut opts = options(&source, &target, &["public.t"]);
    opts.on_existing = OnExisting::Append;
    let err = run_full_sync(&opts, &Progress::none()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"public\".\"t\""), "{text}");
    assert!(text.contains("on_existing = \"truncate\""), "{text}");
}

#[tokio::test]
async fn unreadable_table_is_named() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("reader"))
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.open (id int PRIMARY KEY);
             CREATE TABLE public.secret (id int PRIMARY KEY);
             GRANT SELECT ON public.open TO reader;",
        )
        .unwrap();
    let mut opts = options(&source, &target, &["public.*"]);
    opts.source = ferry_pgwire::ConnParams::parse(&format!(
        "{}?sslmode=disable",
        source.url("reader", None, "postgres")
    ))
    .unwrap();
    let err = run_full_sync(&opts, &Progress::none()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"public\".\"secret\""), "{text}");
    assert!(!text.contains("\"open\""), "{text}");
    assert!(
        text.contains("GRANT SELECT ON TABLE \"public\".\"secret\" TO \"reader\";"),
        "{text}"
    );
    // Refused before anything was written to the target.
    let created = target
        .psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .unwrap();
    assert_eq!(created.trim(), "0");
}

#[tokio::test]
async fn kept_slot_survives_with_the_consistent_point_and_an_unkept_one_is_dropped() {
    let source = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);")
        .unwrap();
    for keep in [false, true] {
        let target = TempCluster::new().unwrap();
        let mut opts = options(&source, &target, &["public.t"]);
        opts.snapshot = SnapshotSource::Slot {
            name: "ferry_keep".into(),
            plugin: Plugin::Pgoutput,
            keep,
        };
        let summary = run_full_sync(&opts, &Progress::none()).await.unwrap();
        assert_same(&source, &target, "public.t").await;
        if keep {
            let lsn = summary
                .consistent_point
                .expect("kept slot has a consistent point");
            let confirmed = source
                .psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_keep'")
                .unwrap();
            assert_eq!(confirmed.trim(), lsn.to_string());
        } else {
            // The copy's position is reported; the slot itself is gone.
            assert!(summary.consistent_point.is_some());
            assert_eq!(slot_count(&source), "0");
        }
    }
}
