//! The same changes give the same target with pgoutput, wal2json and decoderbufs: unchanged
//! TOAST values, REPLICA IDENTITY FULL without a key, key changes, TRUNCATE, every built-in
//! type. Where a plugin cannot carry something (decoderbufs sends no TRUNCATE and loses the
//! zone of `timetz`), the test pins the documented behaviour instead.

#[path = "support/sync_support.rs"]
mod support;

use std::time::Duration;

use ferry_postgres::Plugin;
use ferry_runtime::{run_stream_sync, Progress, StreamSyncOptions, SyncError};
use ferry_testkit::TempCluster;
use support::*;
use tokio::sync::watch;

/// A running pipeline; `stop` ends it and returns its result.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), SyncError>>,
}

impl Running {
    fn start(options: StreamSyncOptions) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let task =
            tokio::spawn(
                async move { run_stream_sync(&options, &Progress::none(), stop_rx).await },
            );
        Running { stop, task }
    }

    /// Waits until `table` is equal on both sides, failing at once if the pipeline ends.
    async fn wait_equal(&mut self, source: &TempCluster, target: &TempCluster, table: &str) {
        tokio::select! {
            () = wait_equal(source, target, table) => {}
            result = &mut self.task => panic!("the pipeline ended: {result:?}"),
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Creates `schema` on the source, copies it, runs `changes` there one statement (or
/// transaction) at a time while streaming, and checks `tables` end equal.
async fn replicate(plugin: Plugin, schema: &str, changes: &[&str], tables: &[&str]) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(schema).unwrap();
    let mut sync = Running::start(stream_options_with(&source, &target, plugin));
    for table in tables {
        sync.wait_equal(&source, &target, table).await;
    }
    for change in changes {
        source.psql(change).unwrap();
    }
    for table in tables {
        sync.wait_equal(&source, &target, table).await;
    }
    sync.stop().await;
    assert_verified(&source, &target, &["public.*"]).await;
}

per_plugin!(unchanged_toast_is_kept);

async fn unchanged_toast_is_kept(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.docs (id int PRIMARY KEY, n int, body text);
         INSERT INTO public.docs SELECT g, 0, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 500) i)
         FROM generate_series(1, 20) g;",
        &[
            // The body is stored out of line and not sent with these updates.
            "UPDATE public.docs SET n = n + 1 WHERE id <= 10",
            "UPDATE public.docs SET n = 5 WHERE id = 3",
            "INSERT INTO public.docs SELECT 100, 1, string_agg(md5(i::text), '') FROM generate_series(1, 600) i",
            "UPDATE public.docs SET n = 2 WHERE id = 100",
        ],
        &["public.docs"],
    )
    .await;
}

per_plugin!(replica_identity_full_without_key);

async fn replica_identity_full_without_key(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.log (a int, b text, c numeric);
         ALTER TABLE public.log REPLICA IDENTITY FULL;
         INSERT INTO public.log VALUES (1, 'x', 1.5), (1, 'x', 1.5), (1, 'x', 1.5), (2, NULL, NULL), (NULL, NULL, NULL);",
        &[
            // One of three identical rows changes, one goes; NULLs match NULLs.
            "UPDATE public.log SET b = 'y' WHERE ctid = (SELECT ctid FROM public.log WHERE a = 1 LIMIT 1)",
            "DELETE FROM public.log WHERE ctid = (SELECT ctid FROM public.log WHERE a = 1 AND b = 'x' LIMIT 1)",
            "UPDATE public.log SET c = 3 WHERE a = 2",
            "DELETE FROM public.log WHERE a IS NULL",
            "INSERT INTO public.log VALUES (1, 'x', 1.5)",
        ],
        &["public.log"],
    )
    .await;
}

per_plugin!(key_change_is_applied);

async fn key_change_is_applied(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.k (id int, region text, v text, PRIMARY KEY (id, region));
         INSERT INTO public.k SELECT g, 'eu', 'v' || g FROM generate_series(1, 50) g;",
        &[
            "UPDATE public.k SET id = id + 1000 WHERE id <= 5",
            "UPDATE public.k SET region = 'us', v = 'moved' WHERE id = 7",
            "BEGIN; UPDATE public.k SET id = 1 WHERE id = 1001; UPDATE public.k SET v = 'back' WHERE id = 1; COMMIT",
            "DELETE FROM public.k WHERE id = 1002",
        ],
        &["public.k"],
    )
    .await;
}

per_plugin!(update_set_default_on_an_identity_always_column_is_applied);

/// `SET id = DEFAULT` gives a GENERATED ALWAYS identity a new value, on the key and off it;
/// the target's column is GENERATED ALWAYS too, which an UPDATE cannot simply set.
async fn update_set_default_on_an_identity_always_column_is_applied(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
         CREATE TABLE public.b (k int PRIMARY KEY, serial bigint GENERATED ALWAYS AS IDENTITY, v text);
         INSERT INTO public.a (v) SELECT 'v' || g FROM generate_series(1, 10) g;
         INSERT INTO public.b (k, v) SELECT g, 'v' || g FROM generate_series(1, 10) g;",
        &[
            "UPDATE public.a SET id = DEFAULT WHERE id <= 3",
            "UPDATE public.b SET serial = DEFAULT WHERE k <= 2",
            "UPDATE public.b SET v = 'changed'",
            "BEGIN; UPDATE public.a SET id = DEFAULT, v = 'again' WHERE id = 5; INSERT INTO public.a (v) VALUES ('new'); COMMIT",
        ],
        &["public.a", "public.b"],
    )
    .await;
}

per_plugin!(
    truncate_is_applied,
    [pgoutput Pgoutput, wal2json Wal2json]
);

async fn truncate_is_applied(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.a (id int PRIMARY KEY); CREATE TABLE public.b (id int PRIMARY KEY);
         INSERT INTO public.a SELECT generate_series(1, 100); INSERT INTO public.b SELECT generate_series(1, 100);",
        &[
            "TRUNCATE public.a, public.b",
            "INSERT INTO public.a VALUES (1), (2)",
            "BEGIN; INSERT INTO public.b VALUES (7); TRUNCATE public.b; INSERT INTO public.b VALUES (8); COMMIT",
        ],
        &["public.a", "public.b"],
    )
    .await;
}

/// decoderbufs sends nothing for TRUNCATE (Debezium's documented limitation): the target
/// keeps the rows, and `ferry check` says so before anyone relies on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_is_not_sent_by_decoderbufs() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.a (id int PRIMARY KEY); INSERT INTO public.a SELECT generate_series(1, 10);")
        .unwrap();
    let sync = Running::start(stream_options_with(&source, &target, Plugin::Decoderbufs));
    wait_equal(&source, &target, "public.a").await;
    source
        .psql("TRUNCATE public.a; INSERT INTO public.a VALUES (42);")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while target
        .psql("SELECT count(*) FROM public.a WHERE id = 42")
        .unwrap()
        .trim()
        != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the insert never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sync.stop().await;
    assert_eq!(
        target.psql("SELECT count(*) FROM public.a").unwrap().trim(),
        "11"
    );
}

per_plugin!(add_drop_rename_column_mid_stream);

async fn add_drop_rename_column_mid_stream(plugin: Plugin) {
    replicate(
        plugin,
        "CREATE TABLE public.items (id int PRIMARY KEY, name varchar(40), price numeric(10,2));
         INSERT INTO public.items SELECT g, 'item ' || g, g / 4.0 FROM generate_series(1, 50) g;",
        &[
            "ALTER TABLE public.items ADD COLUMN qty int DEFAULT 7",
            "INSERT INTO public.items VALUES (101, 'new', 1.50, 3)",
            "ALTER TABLE public.items RENAME COLUMN name TO title",
            "UPDATE public.items SET title = 'renamed' WHERE id = 6",
            "ALTER TABLE public.items DROP COLUMN price",
            "INSERT INTO public.items VALUES (102, 'after drop', 4)",
            "BEGIN; ALTER TABLE public.items ADD COLUMN code char(3);
             INSERT INTO public.items VALUES (103, 'with code', 1, 'ab'); COMMIT",
        ],
        &["public.items"],
    )
    .await;
}

per_plugin!(partitions_of_a_selected_parent_are_streamed);

/// `[source] tables` names only the partitioned parent; changes arrive under the leaf
/// partitions' names (one row moves between partitions) and are applied all the same.
async fn partitions_of_a_selected_parent_are_streamed(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.m (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE public.m_2023 PARTITION OF public.m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
             CREATE TABLE public.m_rest PARTITION OF public.m DEFAULT;
             INSERT INTO public.m SELECT g, date '2023-06-01' + g, 'v' FROM generate_series(1, 400) g;
             CREATE TABLE public.other (id int PRIMARY KEY);",
        )
        .unwrap();
    let mut options = stream_options_with(&source, &target, plugin);
    options.full.tables =
        ferry_postgres::TableSelection::parse(&["public.m".to_owned()], &[]).unwrap();
    let mut sync = Running::start(options);
    sync.wait_equal(&source, &target, "public.m").await;
    for change in [
        "INSERT INTO public.m VALUES (1000, '2023-02-01', 'new'), (1001, '2025-02-01', 'new')",
        "UPDATE public.m SET v = 'changed' WHERE id <= 10",
        "UPDATE public.m SET at = '2026-01-01' WHERE id = 20",
        "DELETE FROM public.m WHERE id BETWEEN 30 AND 40",
        "INSERT INTO public.other VALUES (1)",
    ] {
        source.psql(change).unwrap();
    }
    sync.wait_equal(&source, &target, "public.m").await;
    sync.stop().await;
    // The table outside the selection was neither copied nor streamed.
    assert_eq!(
        target
            .psql("SELECT to_regclass('public.other') IS NULL")
            .unwrap()
            .trim(),
        "t"
    );
}

per_plugin!(type_zoo_streams_exactly);

/// Every row of the type zoo streamed as inserts (TOASTed values included), then updated
/// around its TOASTed columns and partly deleted.
async fn type_zoo_streams_exactly(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(ZOO).unwrap();
    match plugin {
        // The two types decoderbufs cannot carry exactly: see decoderbufs_refuses_timetz.
        Plugin::Decoderbufs => source
            .psql("ALTER TABLE public.zoo DROP COLUMN ttz, DROP COLUMN m")
            .unwrap(),
        // wal2json writes NaN and infinities of numeric and float columns as JSON null:
        // `ferry check` warns (wal2json_nan_is_null_and_check_warns).
        Plugin::Wal2json => source
            .psql("UPDATE public.zoo SET n = 0, f4 = 0, f8 = 0 WHERE id IN (1, 2)")
            .unwrap(),
        Plugin::Pgoutput => String::new(),
    };
    let mut options = stream_options_with(&source, &target, plugin);
    options.full.tables = ferry_postgres::TableSelection::parse(
        &["public.*".to_owned(), "\"Sales Dept\".*".to_owned()],
        &[],
    )
    .unwrap();
    let mut sync = Running::start(options);
    sync.wait_equal(&source, &target, "public.zoo").await;
    let columns = source
        .psql(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
             WHERE attrelid = 'public.zoo'::regclass AND attnum > 1 AND NOT attisdropped",
        )
        .unwrap();
    let columns = columns.trim();
    for change in [
        format!("INSERT INTO public.zoo (id, {columns}) SELECT id + 100, {columns} FROM public.zoo"),
        "UPDATE public.zoo SET i4 = 5 WHERE id IN (3, 103)".to_owned(),
        "DELETE FROM public.zoo WHERE id = 2".to_owned(),
        "INSERT INTO public.keyless SELECT * FROM public.keyless".to_owned(),
        "INSERT INTO public.measurements SELECT id + 10000, at, v FROM public.measurements WHERE id <= 100".to_owned(),
        "INSERT INTO public.computed (price, qty) VALUES (9.5, 2)".to_owned(),
        "UPDATE public.computed SET qty = 3 WHERE id <= 3".to_owned(),
        "UPDATE \"Sales Dept\".\"Order\" SET \"group\" = 'g' WHERE \"select\" <= 3".to_owned(),
    ] {
        source.psql(&change).unwrap();
    }
    for table in TABLES {
        sync.wait_equal(&source, &target, table).await;
    }
    sync.stop().await;
}

/// decoderbufs sends a `timetz` without its zone offset: the pipeline stops, naming the
/// column and the type, rather than write a wrong time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoderbufs_refuses_timetz() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, at timetz)")
        .unwrap();
    let options = stream_options_with(&source, &target, Plugin::Decoderbufs);
    let (_stop, stop_rx) = watch::channel(false);
    let task =
        tokio::spawn(async move { run_stream_sync(&options, &Progress::none(), stop_rx).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    source
        .psql("INSERT INTO public.t VALUES (1, '10:00+02')")
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the pipeline kept running")
        .unwrap()
        .unwrap_err();
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(message.contains("decoderbufs"), "{message}");
    assert!(message.contains("\"public\".\"t\""), "{message}");
    assert!(
        message.contains("timetz") || message.contains("time with time zone"),
        "{message}"
    );
    // Nothing wrong was written.
    assert_eq!(
        target.psql("SELECT count(*) FROM public.t").unwrap().trim(),
        "0"
    );
}

per_plugin!(replica_identity_full_matches_the_exact_row_for_every_type);

/// Under REPLICA IDENTITY FULL an UPDATE or DELETE finds its row by every old value. Each
/// pair below holds two rows that differ in one column only, by values a type's `=` calls
/// equal (box and circle by area, numeric scale, interval units, citext case, float `-0`)
/// or of types without `=` (json, xml, point, polygon). The source deletes one row of each
/// pair (a DELETE, unlike an UPDATE, which writes every column, leaves the wrong choice
/// visible); each type has two pairs, the first row deleted in one and the second in the
/// other, so a target that takes the first "equal" row goes wrong whichever it scans first.
/// Then every remaining row is updated, which needs the types without `=` matched too.
async fn replica_identity_full_matches_the_exact_row_for_every_type(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    target.psql("CREATE EXTENSION citext").unwrap();
    source
        .psql(
            "CREATE EXTENSION citext;
             CREATE TABLE public.fuzzy (k int, j json, x xml, p point, b box, c circle,
                 poly polygon, n numeric, iv interval, ci citext, f float8);
             ALTER TABLE public.fuzzy REPLICA IDENTITY FULL;",
        )
        .unwrap();
    let base = [
        ("j", "'{\"a\":1}'", "'{\"a\": 1}'"),
        ("x", "'<a/>'", "'<a></a>'"),
        ("p", "'(1,2)'", "'(2,1)'"),
        ("b", "'(2,2),(0,0)'", "'(1,4),(0,0)'"),
        ("c", "'<(0,0),1>'", "'<(5,5),1>'"),
        ("poly", "'((0,0),(1,1),(1,0))'", "'((0,0),(1,1),(0,1))'"),
        ("n", "1.0", "1.00"),
        ("iv", "'1 day'", "'24 hours'"),
        ("ci", "'A'", "'a'"),
        ("f", "0", "'-0'"),
    ];
    let columns: Vec<&str> = base.iter().map(|(c, _, _)| *c).collect();
    let row = |k: usize, variant: Option<usize>| {
        let values: Vec<&str> = base
            .iter()
            .enumerate()
            .map(|(i, (_, plain, other))| if Some(i) == variant { *other } else { *plain })
            .collect();
        format!("({k}, {})", values.join(", "))
    };
    let pairs = 2 * base.len();
    let mut rows = Vec::new();
    for pair in 0..pairs {
        rows.push(row(pair + 1, None));
        rows.push(row(pair + 1, Some(pair % base.len())));
    }
    source
        .psql(&format!(
            "INSERT INTO public.fuzzy (k, {}) VALUES {}",
            columns.join(", "),
            rows.join(", ")
        ))
        .unwrap();
    let mut sync = Running::start(stream_options_with(&source, &target, plugin));
    sync.wait_equal(&source, &target, "public.fuzzy").await;
    for pair in 0..pairs {
        // The plain row was inserted first (the smaller ctid), the variant second.
        let which = if pair < base.len() { "max" } else { "min" };
        let k = pair + 1;
        source
            .psql(&format!(
                "DELETE FROM public.fuzzy WHERE ctid = (SELECT {which}(ctid) FROM public.fuzzy WHERE k = {k})"
            ))
            .unwrap();
    }
    sync.wait_equal(&source, &target, "public.fuzzy").await;
    source.psql("UPDATE public.fuzzy SET k = k + 1000").unwrap();
    sync.wait_equal(&source, &target, "public.fuzzy").await;
    sync.stop().await;
    let moved = target
        .psql("SELECT count(*) FROM public.fuzzy WHERE k > 1000")
        .unwrap();
    assert_eq!(moved.trim(), pairs.to_string());
}
