//! Tables that appear on the source while a pipeline runs: one created that matches the
//! patterns is copied and streamed without a restart, and one dropped and created again
//! under the same name (while streaming or while stopped) is copied anew, never mixed with
//! the old table's rows. Per plugin: pgoutput names relations by OID, wal2json and
//! decoderbufs only by name.

#[path = "support/sync_support.rs"]
mod support;

use std::time::Duration;

use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

const FIRST: &str = "
    CREATE TABLE public.t (id int PRIMARY KEY, v text);
    INSERT INTO public.t SELECT g, 'old' FROM generate_series(1, 50) g;";

/// Writes `public.fresh` (keyless: a row lost or doubled changes its digest) in many small
/// transactions for `for_how_long`, from right after its creation, so that the writes
/// straddle the moment the run takes the table in.
async fn write_fresh(source: &TempCluster, for_how_long: Duration) {
    let (client, connection) = tokio_postgres::connect(&source.admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE public.fresh (n int, v text);
             ALTER TABLE public.fresh REPLICA IDENTITY FULL;
             INSERT INTO public.fresh SELECT g, 'first' FROM generate_series(1, 20) g",
        )
        .await
        .unwrap();
    let until = std::time::Instant::now() + for_how_long;
    let mut n = 20;
    while std::time::Instant::now() < until {
        n += 1;
        client
            .batch_execute(&format!(
                "INSERT INTO public.fresh VALUES ({n}, 'later');
                 UPDATE public.fresh SET v = v || '+' WHERE n = {}",
                n / 2
            ))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_table_created_while_streaming_is_copied_and_streamed(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let (stop, sync) = start(stream_options_with(&source, &target, plugin));
    wait_equal(&source, &target, "public.t").await;
    write_fresh(&source, Duration::from_secs(3)).await;
    source
        .psql("UPDATE public.t SET v = 'changed' WHERE id <= 5")
        .unwrap();
    wait_equal(&source, &target, "public.fresh").await;
    wait_equal(&source, &target, "public.t").await;
    // Still streamed after it was taken in, by the same run.
    source
        .psql("INSERT INTO public.fresh VALUES (-1, 'after'); DELETE FROM public.fresh WHERE n = 3")
        .unwrap();
    wait_equal(&source, &target, "public.fresh").await;
    assert!(!sync.is_finished(), "the run ended");
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_while_streaming_is_copied_and_streamed_pgoutput() {
    a_table_created_while_streaming_is_copied_and_streamed(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_while_streaming_is_copied_and_streamed_wal2json() {
    a_table_created_while_streaming_is_copied_and_streamed(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_while_streaming_is_copied_and_streamed_decoderbufs() {
    a_table_created_while_streaming_is_copied_and_streamed(Plugin::Decoderbufs).await;
}

/// The issue's reproduction, with other columns this time: the old rows must go, and the
/// new table's rows (including one whose key an old row had) must arrive.
const RECREATE: &str = "
    UPDATE public.t SET v = 'last change of the old table' WHERE id = 1;
    DROP TABLE public.t;
    CREATE TABLE public.t (id int PRIMARY KEY, w int, v text);
    INSERT INTO public.t VALUES (2, 20, 'new'), (100, 1, 'new');";

async fn a_table_dropped_and_created_again_while_streaming_is_copied_anew(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let (stop, sync) = start(stream_options_with(&source, &target, plugin));
    wait_equal(&source, &target, "public.t").await;
    source.psql(RECREATE).unwrap();
    wait_equal(&source, &target, "public.t").await;
    source
        .psql(
            "INSERT INTO public.t VALUES (3, 30, 'later'); UPDATE public.t SET w = 21 WHERE id = 2",
        )
        .unwrap();
    wait_equal(&source, &target, "public.t").await;
    assert!(!sync.is_finished(), "the run ended");
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_while_streaming_is_copied_anew_pgoutput() {
    a_table_dropped_and_created_again_while_streaming_is_copied_anew(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_while_streaming_is_copied_anew_wal2json() {
    a_table_dropped_and_created_again_while_streaming_is_copied_anew(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_while_streaming_is_copied_anew_decoderbufs() {
    a_table_dropped_and_created_again_while_streaming_is_copied_anew(Plugin::Decoderbufs).await;
}

async fn a_table_dropped_and_created_again_while_stopped_is_copied_anew(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let mut options = stream_options_with(&source, &target, plugin);
    options.watch_tables = None;
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
    source.psql(RECREATE).unwrap();
    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.t").await;
    source
        .psql("INSERT INTO public.t VALUES (3, 30, 'later')")
        .unwrap();
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_while_stopped_is_copied_anew_pgoutput() {
    a_table_dropped_and_created_again_while_stopped_is_copied_anew(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_while_stopped_is_copied_anew_wal2json() {
    a_table_dropped_and_created_again_while_stopped_is_copied_anew(Plugin::Wal2json).await;
}

/// The stream resumes before the drop: the old table's last change, and its column list,
/// are still in it. Neither may touch the new table's copy (a column list followed there
/// would cast `v` back to the old type: '007' would become '7', and 'abc' would stop the
/// run for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_tables_changes_in_the_backlog_never_touch_its_new_copy() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.t (id int PRIMARY KEY, v int); INSERT INTO public.t VALUES (1, 1)",
        )
        .unwrap();
    let mut options = stream_options(&source, &target);
    options.watch_tables = None;
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
    source
        .psql(
            "UPDATE public.t SET v = 2 WHERE id = 1;
             DROP TABLE public.t;
             CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t VALUES (2, '007'), (3, 'abc');",
        )
        .unwrap();
    let (stop, mut sync) = start(options);
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql("INSERT INTO public.t VALUES (4, '0042'); UPDATE public.t SET v = 'x' || v WHERE id = 2")
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    let types = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'public.t'::regclass AND attname = 'v'";
    assert_eq!(target.psql(types).unwrap().trim(), "text");
    stop_run(stop, sync).await;
}

/// With wal2json and decoderbufs the new table's rows arrive under the old name: one
/// created again without a key must still be copied anew, never mixed into the old rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_again_without_a_key_is_not_mixed_with_the_old_rows_wal2json() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, Plugin::Wal2json));
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql(
            "DROP TABLE public.t; CREATE TABLE public.t (id int, v text);
             INSERT INTO public.t VALUES (1, 'new'), (1, 'new')",
        )
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql("INSERT INTO public.t VALUES (7, 'later')")
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    stop_run(stop, sync).await;
}

/// A user's view on the target depends on the re-created table: the run stops and says
/// what to do, and drops nothing of the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_table_with_a_dependent_view_on_the_target_stops_with_the_fix() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let mut options = stream_options(&source, &target);
    options.watch_tables = None;
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
    target
        .psql("CREATE VIEW public.report AS SELECT id FROM public.t")
        .unwrap();
    source.psql(RECREATE).unwrap();
    let (_stop, sync) = start(options);
    let error = stopped_with(sync).await;
    let message = error.to_string();
    assert!(
        message.contains(r#""public"."t""#)
            && message.contains("created again")
            && message.contains("view report depends on table t")
            && message.contains("CASCADE"),
        "{message}"
    );
    assert_eq!(
        target
            .psql("SELECT count(*) FROM public.report")
            .unwrap()
            .trim(),
        "50"
    );
}

/// A keyless table created while streaming is not put in the publication (the source would
/// refuse its UPDATEs and DELETEs from then on): the application's writes go on; once the
/// table has a replica identity it is taken in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_created_while_streaming_waits_for_an_identity_and_never_blocks_the_source()
{
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(FIRST).unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.t").await;
    source
        .psql("CREATE TABLE public.logs (n int, v text); INSERT INTO public.logs VALUES (1, 'a'), (2, 'b')")
        .unwrap();
    // Several watch periods: the table is seen, and left out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    source
        .psql("UPDATE public.logs SET v = 'still writable' WHERE n = 1; DELETE FROM public.logs WHERE n = 2")
        .expect("the source refused an UPDATE of a table Ferry put in its publication");
    source
        .psql("ALTER TABLE public.logs REPLICA IDENTITY FULL; INSERT INTO public.logs VALUES (3, 'c')")
        .unwrap();
    wait_equal(&source, &target, "public.logs").await;
    source
        .psql("UPDATE public.logs SET v = 'changed' WHERE n = 3")
        .unwrap();
    wait_equal(&source, &target, "public.logs").await;
    stop_run(stop, sync).await;
}
