//! A pipeline carries its selection and nothing else, whatever else the source's stream
//! holds: changes of tables outside the selection (an excluded inheritance child of a
//! selected parent, a table excluded after a first run, one decoderbufs sends with a type
//! Ferry cannot carry exactly) never stop it. Tables at the edges of what PostgreSQL allows
//! are carried (one whose columns were all dropped), and what a plugin cannot carry stops
//! the run with the cause named (wal2json sends NaN as null).

#[path = "support/sync_support.rs"]
mod support;

use std::time::Duration;

use ferry_postgres::{Plugin, TableSelection};
use ferry_testkit::TempCluster;
use support::*;

fn selecting(
    source: &TempCluster,
    target: &TempCluster,
    plugin: Plugin,
    include: &[&str],
    exclude: &[&str],
) -> ferry_runtime::StreamSyncOptions {
    let mut options = stream_options_with(source, target, plugin);
    let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    options.full.tables = TableSelection::parse(&list(include), &list(exclude)).unwrap();
    options
}

/// `parent` is selected and its inheritance child excluded: a publication of the parent
/// publishes the child too, and decoderbufs sends everything. The child's changes, with a
/// `timetz` column (which decoderbufs cannot carry exactly), are left out.
async fn changes_of_an_excluded_table_never_stop_the_run(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.parent (id int PRIMARY KEY, v text);
             CREATE TABLE public.child (at timetz) INHERITS (public.parent);
             CREATE TABLE public.other (id int PRIMARY KEY, at timetz);
             INSERT INTO public.parent VALUES (1, 'p');
             INSERT INTO public.child VALUES (2, 'c', '10:00+02');",
        )
        .unwrap();
    let options = selecting(
        &source,
        &target,
        plugin,
        &["public.*"],
        &["public.child", "public.other"],
    );
    let (stop, mut sync) = start(options);
    converge(&source, &target, "ONLY public.parent", &mut sync).await;
    source
        .psql(
            "INSERT INTO public.child VALUES (3, 'c', '11:00+02');
             UPDATE public.child SET at = '12:00+01' WHERE id = 2;
             INSERT INTO public.other VALUES (1, '01:00+00');
             INSERT INTO public.parent VALUES (4, 'after');",
        )
        .unwrap();
    converge(&source, &target, "ONLY public.parent", &mut sync).await;
    assert_eq!(
        target
            .psql("SELECT count(*) FROM pg_class WHERE relname IN ('child', 'other')")
            .unwrap()
            .trim(),
        "0"
    );
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_an_excluded_table_never_stop_the_run_pgoutput() {
    changes_of_an_excluded_table_never_stop_the_run(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_an_excluded_table_never_stop_the_run_wal2json() {
    changes_of_an_excluded_table_never_stop_the_run(Plugin::Wal2json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_an_excluded_table_never_stop_the_run_decoderbufs() {
    changes_of_an_excluded_table_never_stop_the_run(Plugin::Decoderbufs).await;
}

/// A table carried by a first run and excluded for the second: the publication is kept
/// to the selection and the table's later changes neither stop the run nor reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_excluded_after_a_first_run_is_left_out_of_the_stream() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.a (id int PRIMARY KEY); CREATE TABLE public.b (id int PRIMARY KEY);
             INSERT INTO public.a VALUES (1); INSERT INTO public.b VALUES (1);",
        )
        .unwrap();
    let (stop, mut sync) = start(selecting(
        &source,
        &target,
        Plugin::Pgoutput,
        &["public.*"],
        &[],
    ));
    converge(&source, &target, "public.b", &mut sync).await;
    stop_run(stop, sync).await;
    let options = selecting(
        &source,
        &target,
        Plugin::Pgoutput,
        &["public.*"],
        &["public.b"],
    );
    let (stop, mut sync) = start(options);
    source
        .psql("INSERT INTO public.b VALUES (2); INSERT INTO public.a VALUES (2)")
        .unwrap();
    converge(&source, &target, "public.a", &mut sync).await;
    assert_eq!(
        target.psql("SELECT count(*) FROM public.b").unwrap().trim(),
        "1"
    );
    let published = "SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'ferry_stream'";
    assert_eq!(source.psql(published).unwrap().trim(), "a");
    stop_run(stop, sync).await;
}

/// decoderbufs sends the changes of a keyless table created while streaming (not taken in
/// until it has an identity): its UPDATEs carry no row, which must not stop the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_created_while_streaming_never_stops_decoderbufs() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1)")
        .unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, Plugin::Decoderbufs));
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql(
            "CREATE TABLE public.logs (n int); INSERT INTO public.logs VALUES (1);
             UPDATE public.logs SET n = 2; DELETE FROM public.logs; INSERT INTO public.t VALUES (2)",
        )
        .unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    source.psql("INSERT INTO public.t VALUES (3)").unwrap();
    converge(&source, &target, "public.t", &mut sync).await;
    stop_run(stop, sync).await;
}

/// Every column dropped is legal: the table is created and copied (its rows count), and
/// streamed once it has columns again.
async fn a_table_without_columns_is_copied_and_streamed(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.z (a int); INSERT INTO public.z VALUES (1), (2);
             ALTER TABLE public.z DROP COLUMN a; ALTER TABLE public.z REPLICA IDENTITY FULL;
             CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);",
        )
        .unwrap();
    let (stop, mut sync) = start(stream_options_with(&source, &target, plugin));
    converge(&source, &target, "public.t", &mut sync).await;
    let count = "SELECT count(*) FROM public.z";
    assert_eq!(target.psql(count).unwrap(), source.psql(count).unwrap());
    source
        .psql("ALTER TABLE public.z ADD COLUMN b int; INSERT INTO public.z VALUES (3); UPDATE public.z SET b = 4 WHERE b = 3")
        .unwrap();
    converge(&source, &target, "public.z", &mut sync).await;
    stop_run(stop, sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_columns_is_copied_and_streamed_pgoutput() {
    a_table_without_columns_is_copied_and_streamed(Plugin::Pgoutput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_columns_is_copied_and_streamed_wal2json() {
    a_table_without_columns_is_copied_and_streamed(Plugin::Wal2json).await;
}

/// wal2json writes NaN and ±Infinity of numeric and floating-point columns as JSON null:
/// in a NOT NULL column the stop names that cause and the plugin that has it, and nothing
/// after it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_that_wal2json_sends_as_null_stops_the_run_naming_the_cause() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, x float8 NOT NULL); INSERT INTO public.t VALUES (1, 1)")
        .unwrap();
    let mut options = stream_options_with(&source, &target, Plugin::Wal2json);
    // As `ferry sync` runs it again after a batch's integrity error: one change at a time.
    options.coalesce = false;
    let (_stop, mut sync) = start(options);
    converge(&source, &target, "public.t", &mut sync).await;
    source
        .psql("INSERT INTO public.t VALUES (2, 'NaN'); INSERT INTO public.t VALUES (3, 3)")
        .unwrap();
    let error = stopped_with(sync).await;
    let message = format!("{error:#}");
    assert!(
        message.contains("wal2json")
            && message.contains("NaN")
            && message.contains(r#""public"."t""#)
            && message.contains("\"x\"")
            && message.contains("pgoutput"),
        "{message}"
    );
    assert_eq!(
        target.psql("SELECT count(*) FROM public.t").unwrap().trim(),
        "1"
    );
}
