//! Incremental sync follows what happens on the source beyond row changes: columns added,
//! dropped, renamed and retyped mid-stream; large transactions streamed before they commit
//! (and aborted, whole or in part); an idle database on a busy cluster.

#[path = "support/sync_support.rs"]
mod support;

use std::time::{Duration, Instant};

use ferry_runtime::{run_stream_sync, Progress, StreamSyncOptions};
use ferry_testkit::TempCluster;
use support::*;
use tokio::sync::watch;

/// Runs the pipeline in the background until the returned sender says stop.
fn start(
    options: StreamSyncOptions,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), ferry_runtime::SyncError>>,
) {
    let (stop, stop_rx) = watch::channel(false);
    let sync =
        tokio::spawn(async move { run_stream_sync(&options, &Progress::none(), stop_rx).await });
    (stop, sync)
}

/// Column names and types of `table`, in order.
fn columns(cluster: &TempCluster, table: &str) -> String {
    cluster
        .psql(&format!(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
             FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped"
        ))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_drop_rename_column_mid_stream() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.items (id int PRIMARY KEY, name text, price numeric(10,2));
             INSERT INTO public.items SELECT g, 'item ' || g, g / 4.0 FROM generate_series(1, 100) g;",
        )
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.items").await;
    for step in [
        // A rewrite (before the column added with a default below: see the README).
        "ALTER TABLE public.items ALTER COLUMN price TYPE numeric(12,3)",
        "UPDATE public.items SET price = 1.125 WHERE id = 9",
        // Added with a default: the existing rows read 7 on the source without a change.
        "ALTER TABLE public.items ADD COLUMN qty int DEFAULT 7",
        "INSERT INTO public.items VALUES (101, 'new', 1.50, 3)",
        "UPDATE public.items SET qty = 9 WHERE id = 5",
        "ALTER TABLE public.items RENAME COLUMN name TO title",
        "UPDATE public.items SET title = 'renamed' WHERE id = 6",
        "ALTER TABLE public.items DROP COLUMN price",
        "INSERT INTO public.items VALUES (102, 'after drop', 4)",
        // Schema change and the rows that need it in one transaction.
        "BEGIN; ALTER TABLE public.items ADD COLUMN note text;
         INSERT INTO public.items VALUES (103, 'with note', 1, 'n'); COMMIT",
        "DELETE FROM public.items WHERE id = 8",
    ] {
        source.psql(step).unwrap();
    }
    wait_equal(&source, &target, "public.items").await;
    assert_eq!(
        columns(&source, "public.items"),
        columns(&target, "public.items")
    );
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    assert_verified(&source, &target, &["public.*"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_transaction_abort_leaves_nothing() {
    // Any transaction over 64 kB of changes is streamed before it commits.
    let source = TempCluster::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.big (id int PRIMARY KEY, v text);
             CREATE TABLE public.small (id serial PRIMARY KEY, note text);",
        )
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.big").await;
    let large = source.admin_client().await;
    let other = source.admin_client().await;
    let rows = |from: i32, to: i32| {
        format!("INSERT INTO public.big SELECT g, repeat('x', 100) || g FROM generate_series({from}, {to}) g")
    };
    // Committed, with a subtransaction rolled back and one released, while other
    // transactions commit in between.
    large.batch_execute("BEGIN").await.unwrap();
    large.batch_execute(&rows(1, 5000)).await.unwrap();
    other
        .batch_execute("INSERT INTO public.small (note) VALUES ('during 1')")
        .await
        .unwrap();
    large
        .batch_execute(&format!(
            "SAVEPOINT a; {}; ROLLBACK TO SAVEPOINT a;
             SAVEPOINT b; UPDATE public.big SET v = 'updated' WHERE id <= 1000; RELEASE SAVEPOINT b;
             {}",
            rows(5001, 10000),
            rows(10001, 12000)
        ))
        .await
        .unwrap();
    other
        .batch_execute("INSERT INTO public.small (note) VALUES ('during 2')")
        .await
        .unwrap();
    large.batch_execute("COMMIT").await.unwrap();
    // Aborted whole, after it was streamed.
    large.batch_execute("BEGIN").await.unwrap();
    large.batch_execute(&rows(20001, 30000)).await.unwrap();
    other
        .batch_execute("INSERT INTO public.small (note) VALUES ('during 3')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    large.batch_execute("ROLLBACK").await.unwrap();
    other
        .batch_execute("INSERT INTO public.small (note) VALUES ('after')")
        .await
        .unwrap();

    wait_equal(&source, &target, "public.small").await;
    wait_equal(&source, &target, "public.big").await;
    assert_eq!(
        target
            .psql("SELECT count(*), count(*) FILTER (WHERE v = 'updated') FROM public.big")
            .unwrap()
            .trim(),
        "7000|1000"
    );
    // The server did stream them (the statistics arrive a moment later).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let streamed: i64 = source
            .psql("SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if streamed >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {streamed} transactions were streamed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing is left open on the target.
    assert_eq!(
        target
            .psql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .unwrap()
            .trim(),
        "0"
    );
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    assert_verified(&source, &target, &["public.*"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slot_advances_with_heartbeat() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.quiet (id int PRIMARY KEY); CREATE DATABASE busy;")
        .unwrap();
    let mut options = stream_options(&source, &target);
    options.heartbeat = Some(Duration::from_millis(300));
    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.quiet").await;
    // Another database writes WAL; the pipeline's own tables stay idle.
    source
        .psql_db(
            "busy",
            "CREATE TABLE noise AS SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
        )
        .unwrap();
    let written = source.psql("SELECT pg_current_wal_lsn()").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let advanced = source
            .psql(&format!(
                "SELECT confirmed_flush_lsn >= '{}'::pg_lsn FROM pg_replication_slots
                 WHERE slot_name = 'ferry_stream'",
                written.trim()
            ))
            .unwrap();
        if advanced.trim() == "t" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot stayed behind {written}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
}

/// A slot dropped behind the pipeline's back is fatal: the message names the slot and says
/// how to resync, and the run ends instead of retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_slot_is_fatal_with_the_resync_command() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY)")
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.t").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    source
        .psql("SELECT pg_drop_replication_slot('ferry_stream')")
        .unwrap();
    let (_stop, sync) = start(stream_options(&source, &target));
    let error = sync.await.unwrap().unwrap_err();
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(
        message.contains("\"ferry_stream\" does not exist"),
        "{message}"
    );
    assert!(
        message.contains("DELETE FROM \"ferry\".progress WHERE pipeline = 'test'"),
        "{message}"
    );
}

/// A table added to `[source] tables` between runs is copied alone and then streamed, with
/// its writes never stopping: none lost, none doubled (it has no key, so a double would
/// show). Removed again, it leaves the publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_added_to_the_selection_is_copied_then_streamed() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.a (id int PRIMARY KEY, v text);
             INSERT INTO public.a SELECT g, 'a' FROM generate_series(1, 100) g;
             CREATE TABLE public.b (n bigint, at timestamptz DEFAULT now());
             ALTER TABLE public.b REPLICA IDENTITY FULL;
             INSERT INTO public.b SELECT g FROM generate_series(1, 20000) g;",
        )
        .unwrap();
    let only = |tables: &[&str]| {
        let mut options = stream_options(&source, &target);
        options.full.tables = ferry_postgres::TableSelection::parse(
            &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            &[],
        )
        .unwrap();
        options
    };
    let (stop, sync) = start(only(&["public.a"]));
    wait_equal(&source, &target, "public.a").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();

    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let url = source.admin_url();
        let writing = writing.clone();
        tokio::spawn(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let mut n = 100_000u64;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                client
                    .batch_execute(&format!(
                        "INSERT INTO public.b (n) VALUES ({n}); UPDATE public.a SET v = 'w{n}' WHERE id = {}",
                        n % 100 + 1
                    ))
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop, sync) = start(only(&["public.a", "public.b"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    wait_equal(&source, &target, "public.b").await;
    wait_equal(&source, &target, "public.a").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    let published = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'ferry_stream'";
    assert_eq!(source.psql(published).unwrap().trim(), "a,b");

    let (stop, sync) = start(only(&["public.a"]));
    source
        .psql("UPDATE public.a SET v = 'after' WHERE id = 1")
        .unwrap();
    wait_equal(&source, &target, "public.a").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    assert_eq!(source.psql(published).unwrap().trim(), "a");
}
