//! The reconcile step at the start of a run: whatever state the publication and the slots
//! are in (made by someone else, left by a crash, wider than the selection), the run makes
//! them carry exactly the selection, and every selected table's changes arrive.

#[path = "support/sync_support.rs"]
mod support;

use ferry_runtime::{run_stream_sync, Progress, StreamSyncOptions, SyncEvent};
use ferry_testkit::TempCluster;
use support::*;
use tokio::sync::watch;

/// Starts a run and kills it as soon as a copy has started loading rows.
async fn kill_during_copy(options: StreamSyncOptions, source: &TempCluster) {
    let (_stop, stop_rx) = watch::channel(false);
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let sync =
        tokio::spawn(
            async move { run_stream_sync(&options, &Progress::to(sender), stop_rx).await },
        );
    while let Some(event) = events.recv().await {
        if matches!(event, SyncEvent::Bytes { .. }) {
            break;
        }
    }
    assert!(!sync.is_finished(), "the run ended before it was killed");
    sync.abort();
    let _ = sync.await;
    wait_slots_released(source).await;
}

fn with_tables(mut options: StreamSyncOptions, tables: &[&str]) -> StreamSyncOptions {
    options.full.tables = ferry_postgres::TableSelection::parse(
        &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        &[],
    )
    .unwrap();
    options
}

const PUBLISHED: &str = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'ferry_stream'";

const TWO_TABLES: &str = "
    CREATE TABLE public.t1 (id int PRIMARY KEY, v text);
    CREATE TABLE public.t2 (id int PRIMARY KEY, v text);
    INSERT INTO public.t1 SELECT g, 'one' FROM generate_series(1, 100) g;
    INSERT INTO public.t2 SELECT g, 'two' FROM generate_series(1, 100) g;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_that_exists_is_extended_to_the_selection() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(TWO_TABLES).unwrap();
    source
        .psql("CREATE PUBLICATION ferry_stream FOR TABLE public.t1")
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.t2").await;
    source
        .psql("UPDATE public.t2 SET v = 'changed' WHERE id <= 10; INSERT INTO public.t2 VALUES (101, 'new')")
        .unwrap();
    wait_equal(&source, &target, "public.t2").await;
    stop_run(stop, sync).await;
    assert_eq!(source.psql(PUBLISHED).unwrap().trim(), "t1,t2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_before_the_retry_of_an_interrupted_copy_is_streamed() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.big (id int PRIMARY KEY, v text);
             INSERT INTO public.big SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g",
        )
        .unwrap();
    let options = stream_options(&source, &target);
    kill_during_copy(options.clone(), &source).await;
    source
        .psql("CREATE TABLE public.late (id int PRIMARY KEY, v text); INSERT INTO public.late VALUES (1, 'before')")
        .unwrap();
    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.late").await;
    source
        .psql("UPDATE public.late SET v = 'after'; INSERT INTO public.late VALUES (2, 'after')")
        .unwrap();
    wait_equal(&source, &target, "public.late").await;
    wait_equal(&source, &target, "public.big").await;
    stop_run(stop, sync).await;
}

/// The slot of an added table's copy is temporary: a crash during that copy leaves nothing
/// that pins WAL, and the next run copies the table again. A permanent one that an older
/// version left behind is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_an_added_tables_copy_leaves_no_slot() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.a (id int PRIMARY KEY);
             CREATE TABLE public.b (id int PRIMARY KEY, v text);
             INSERT INTO public.b SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g",
        )
        .unwrap();
    let options = stream_options(&source, &target);
    let (stop, sync) = start(with_tables(options.clone(), &["public.a"]));
    wait_equal(&source, &target, "public.a").await;
    stop_run(stop, sync).await;

    kill_during_copy(
        with_tables(options.clone(), &["public.a", "public.b"]),
        &source,
    )
    .await;
    let slots = "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots";
    assert_eq!(source.psql(slots).unwrap().trim(), "ferry_stream");

    source
        .psql("SELECT pg_create_logical_replication_slot('ferry_stream_add', 'pgoutput')")
        .unwrap();
    let (stop, sync) = start(with_tables(options, &["public.a", "public.b"]));
    wait_equal(&source, &target, "public.b").await;
    source.psql("DELETE FROM public.b WHERE id <= 100").unwrap();
    wait_equal(&source, &target, "public.b").await;
    stop_run(stop, sync).await;
    assert_eq!(source.psql(slots).unwrap().trim(), "ferry_stream");
}

/// A `FOR ALL TABLES` publication cannot lose tables; the run keeps it and applies only the
/// selected tables' changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_all_tables_publication_carries_only_the_selection() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(TWO_TABLES).unwrap();
    source
        .psql("CREATE PUBLICATION ferry_stream FOR ALL TABLES")
        .unwrap();
    let options = with_tables(stream_options(&source, &target), &["public.t1"]);
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t1").await;
    source
        .psql("UPDATE public.t2 SET v = 'not carried'; UPDATE public.t1 SET v = 'carried' WHERE id = 1")
        .unwrap();
    wait_equal(&source, &target, "public.t1").await;
    stop_run(stop, sync).await;
    // Restarted, with the other table's changes in the stream again.
    source.psql("DELETE FROM public.t2 WHERE id = 5").unwrap();
    let (stop, sync) = start(options);
    source.psql("DELETE FROM public.t1 WHERE id = 5").unwrap();
    wait_equal(&source, &target, "public.t1").await;
    stop_run(stop, sync).await;
    let on_target = target
        .psql("SELECT to_regclass('public.t2') IS NULL")
        .unwrap();
    assert_eq!(on_target.trim(), "t", "the unselected table was created");
}

/// A table that the pipeline carried, but that left the publication behind its back (or
/// was never in it, with an older version), sent no changes: the next run copies it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_table_missing_from_the_publication_is_copied_again() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(TWO_TABLES).unwrap();
    let options = stream_options(&source, &target);
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t2").await;
    stop_run(stop, sync).await;
    source
        .psql("ALTER PUBLICATION ferry_stream DROP TABLE public.t2; UPDATE public.t2 SET v = 'unpublished'")
        .unwrap();
    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.t2").await;
    source
        .psql("UPDATE public.t2 SET v = 'published again' WHERE id = 1")
        .unwrap();
    wait_equal(&source, &target, "public.t2").await;
    stop_run(stop, sync).await;
    assert_eq!(source.psql(PUBLISHED).unwrap().trim(), "t1,t2");
}
