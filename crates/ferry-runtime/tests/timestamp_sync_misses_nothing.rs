//! Timestamp-column sync: inserts and updates arrive; a transaction held open across polls
//! and committed later is not missed; thousands of rows with one timestamp all arrive;
//! restart resumes from the watermark without a second copy; reconciliation removes deleted
//! keys; a role with SELECT only suffices.

#[path = "support/sync_support.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferry_runtime::{run_timestamp_sync, Progress, TimestampSyncOptions};
use ferry_testkit::{RoleSpec, TempCluster};
use support::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SCHEMA: &str = "
    CREATE TABLE public.items (id int PRIMARY KEY, note text,
                               last_update timestamptz NOT NULL DEFAULT now());
    CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN NEW.last_update := now(); RETURN NEW; END $$;
    CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON public.items
      FOR EACH ROW EXECUTE FUNCTION public.stamp();
    INSERT INTO public.items SELECT g, 'initial' FROM generate_series(1, 100) g;";

fn options(source: &TempCluster, target: &TempCluster) -> TimestampSyncOptions {
    TimestampSyncOptions {
        full: support::options(source, target, &["public.items"]),
        pipeline: "test".into(),
        progress_schema: "ferry".into(),
        default_column: "last_update".into(),
        columns: HashMap::new(),
        poll_interval: Duration::from_millis(100),
        batch_rows: 1000,
        max_transaction_age: Duration::from_secs(600),
        reconcile_every: None,
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ferry_runtime::SyncError>>,
}

fn start(options: TimestampSyncOptions) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let task =
        tokio::spawn(async move { run_timestamp_sync(&options, &Progress::none(), stop_rx).await });
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Waits until `sql` on `cluster` prints `expected`, failing after 30 s.
async fn eventually(cluster: &TempCluster, sql: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = cluster.psql(sql).unwrap_or_default();
        if got.trim() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} gave {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_and_updates_arrive() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let running = start(options(&source, &target));
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    source
        .psql("INSERT INTO public.items VALUES (101, 'new'); UPDATE public.items SET note = 'changed' WHERE id = 7;")
        .unwrap();
    eventually(&target, "SELECT count(*) FROM public.items", "101").await;
    eventually(
        &target,
        "SELECT note FROM public.items WHERE id = 7",
        "changed",
    )
    .await;
    running.stop().await;
    assert_same(&source, &target, "public.items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_held_open_across_polls_is_not_missed() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let running = start(options(&source, &target));
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    // A long transaction stamps its row early and commits late.
    let late = source.admin_client().await;
    late.batch_execute("BEGIN; INSERT INTO public.items VALUES (500, 'late')")
        .await
        .unwrap();
    // Meanwhile later transactions commit, and several polls run.
    for id in 501..511 {
        source
            .psql(&format!("INSERT INTO public.items VALUES ({id}, 'quick')"))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The open transaction holds the horizon back: later rows wait rather than let the
    // watermark pass the late row's timestamp.
    assert_eq!(
        target
            .psql("SELECT count(*) FROM public.items WHERE id >= 500")
            .unwrap()
            .trim(),
        "0"
    );
    late.batch_execute("COMMIT").await.unwrap();
    eventually(
        &target,
        "SELECT note FROM public.items WHERE id = 500",
        "late",
    )
    .await;
    eventually(
        &target,
        "SELECT count(*) FROM public.items WHERE id > 500",
        "10",
    )
    .await;
    running.stop().await;
    assert_same(&source, &target, "public.items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_rows_with_one_timestamp_all_arrive() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let mut opts = options(&source, &target);
    opts.batch_rows = 700;
    let running = start(opts);
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    source
        .psql("INSERT INTO public.items SELECT g, 'bulk' FROM generate_series(1000, 5999) g")
        .unwrap();
    eventually(&target, "SELECT count(*) FROM public.items", "5100").await;
    running.stop().await;
    assert_same(&source, &target, "public.items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_watermark_without_copying_again() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let running = start(options(&source, &target));
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    running.stop().await;
    source
        .psql("INSERT INTO public.items VALUES (200, 'while stopped'); UPDATE public.items SET note = 'x' WHERE id = 1;")
        .unwrap();
    // A second full copy would fail on the non-empty target; resuming must not need one.
    let running = start(options(&source, &target));
    eventually(&target, "SELECT count(*) FROM public.items", "101").await;
    eventually(&target, "SELECT note FROM public.items WHERE id = 1", "x").await;
    running.stop().await;
    assert_same(&source, &target, "public.items").await;
    assert_verified(&source, &target, &["public.items"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_deleted_keys() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let mut opts = options(&source, &target);
    opts.reconcile_every = Some(Duration::from_millis(300));
    let running = start(opts);
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    source
        .psql("DELETE FROM public.items WHERE id % 10 = 0")
        .unwrap();
    eventually(&target, "SELECT count(*) FROM public.items", "90").await;
    running.stop().await;
    assert_same(&source, &target, "public.items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_role_suffices() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("reader"))
        .setting("wal_level", "replica")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "{SCHEMA}; GRANT SELECT ON public.items TO reader;"
        ))
        .unwrap();
    let mut opts = options(&source, &target);
    // Without pg_read_all_stats the role cannot see other sessions' transactions: rows are
    // read once they are max_transaction_age old.
    opts.max_transaction_age = Duration::from_millis(500);
    opts.full.source = ferry_pgwire::ConnParams::parse(&format!(
        "{}?sslmode=disable",
        source.url("reader", None, "postgres")
    ))
    .unwrap();
    let running = start(opts);
    eventually(&target, "SELECT count(*) FROM public.items", "100").await;
    source
        .psql("INSERT INTO public.items VALUES (101, 'more')")
        .unwrap();
    eventually(&target, "SELECT count(*) FROM public.items", "101").await;
    running.stop().await;
}
