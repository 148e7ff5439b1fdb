//! Full sync copies exactly the snapshot: writes that commit during the copy are absent,
//! across tables copied by different workers, and large tables split into block ranges lose
//! and duplicate nothing.

#[path = "support/sync_support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferry_runtime::{run_full_sync, Progress};
use ferry_testkit::TempCluster;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_the_copy_are_absent_from_it() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.a (id bigint PRIMARY KEY, pad text);
             CREATE TABLE public.b (id bigint PRIMARY KEY, pad text);
             INSERT INTO public.a SELECT g, repeat('a', 500) FROM generate_series(1, 60000) g;
             INSERT INTO public.b SELECT g, repeat('b', 500) FROM generate_series(1, 60000) g;",
        )
        .unwrap();
    // Each writer transaction inserts the same id into both tables: any consistent snapshot
    // holds the same ids in a and b.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let client = source.admin_client().await;
        tokio::spawn(async move {
            let mut id = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                client
                    .batch_execute(&format!(
                        "BEGIN; INSERT INTO public.a VALUES ({id}, 'w');
                         INSERT INTO public.b VALUES ({id}, 'w'); COMMIT"
                    ))
                    .await
                    .unwrap();
            }
            id - 1_000_000
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut opts = options(&source, &target, &["public.*"]);
    opts.split_bytes = 1 << 20;
    let summary = run_full_sync(&opts, &Progress::none()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();

    let target_client = target.admin_client().await;
    let only_in_one: i64 = target_client
        .query_one(
            "SELECT count(*) FROM public.a FULL JOIN public.b USING (id)
             WHERE a.id IS NULL OR b.id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(only_in_one, 0, "a and b were copied from different moments");
    let copied: i64 = target_client
        .query_one("SELECT count(*) FROM public.a", &[])
        .await
        .unwrap()
        .get(0);
    let source_now: i64 = source
        .admin_client()
        .await
        .query_one("SELECT count(*) FROM public.a", &[])
        .await
        .unwrap()
        .get(0);
    assert!(written > 0, "the writer wrote nothing during the copy");
    assert!(
        copied >= 60_000 && copied < source_now,
        "copied {copied}, source has {source_now}"
    );
    assert_eq!(summary.rows, 2 * copied as u64);
}

#[tokio::test]
async fn table_split_into_ctid_ranges_is_copied_exactly() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.big (id int PRIMARY KEY, pad text);
             INSERT INTO public.big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 50000) g;
             DELETE FROM public.big WHERE id % 7 = 0;",
        )
        .unwrap();
    let mut opts = options(&source, &target, &["public.big"]);
    opts.split_bytes = 512 * 1024;
    let summary = run_full_sync(&opts, &Progress::none()).await.unwrap();
    assert_eq!(summary.rows, 50_000 - 50_000 / 7);
    assert_same(&source, &target, "public.big").await;
    assert_verified(&source, &target, &["public.big"]).await;
}

/// A run killed while the server made its temporary slot leaves that slot behind until the
/// server notices the session is gone; the next run waits for it instead of stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_slot_of_an_ending_session_is_waited_for() {
    use ferry_pgwire::{ReplicationClient, SlotOptions, SnapshotAction};
    use ferry_postgres::Plugin;
    use ferry_runtime::SnapshotSource;

    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1), (2);")
        .unwrap();
    let mut earlier = ReplicationClient::connect(&conn(&source, "postgres"))
        .await
        .unwrap();
    let held = SlotOptions {
        temporary: true,
        snapshot: SnapshotAction::Nothing,
    };
    earlier
        .create_slot("ferry_add", Plugin::Pgoutput.name(), held)
        .await
        .unwrap();
    let ends = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        drop(earlier);
    });
    let mut opts = options(&source, &target, &["public.t"]);
    opts.snapshot = SnapshotSource::Slot {
        name: "ferry_add".into(),
        plugin: Plugin::Pgoutput,
        keep: false,
    };
    let summary = run_full_sync(&opts, &Progress::none()).await.unwrap();
    ends.await.unwrap();
    assert!(summary.consistent_point.is_some());
    assert_eq!(
        target.psql("SELECT count(*) FROM public.t").unwrap().trim(),
        "2"
    );
}
