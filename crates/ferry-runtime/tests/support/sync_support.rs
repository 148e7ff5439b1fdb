//! Helpers for full-sync tests: options for two clusters, and an independent SQL digest of a
//! table's contents to compare source and target without trusting `ferry verify`.

#![allow(dead_code)]

use ferry_pgwire::ConnParams;
use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::TableSelection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_runtime::{FullSyncOptions, SnapshotSource, StreamSyncOptions};
use ferry_testkit::TempCluster;

pub fn conn(cluster: &TempCluster, db: &str) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, db)
    ))
    .unwrap()
}

pub fn options(source: &TempCluster, target: &TempCluster, tables: &[&str]) -> FullSyncOptions {
    FullSyncOptions {
        source: conn(source, "postgres"),
        target: conn(target, "postgres"),
        tables: TableSelection::parse(
            &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            &[],
        )
        .unwrap(),
        workers: 3,
        snapshot: SnapshotSource::Export,
        on_existing: OnExisting::Error,
        split_bytes: ferry_postgres::source::snapshot::DEFAULT_SPLIT_BYTES,
        beside: Vec::new(),
    }
}

/// Row count and an order-independent digest of every row's text form, computed by the
/// server with settings that make the text form the same everywhere.
pub async fn digest(cluster: &TempCluster, table: &str) -> (i64, String) {
    let client = cluster.admin_client().await;
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';
             SET extra_float_digits = 3; SET bytea_output = 'hex'",
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), ''))
                 FROM (SELECT md5(t::text) AS h FROM {table} t) d"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Asserts that `table` has the same rows on both clusters.
pub async fn assert_same(source: &TempCluster, target: &TempCluster, table: &str) {
    let s = digest(source, table).await;
    let t = digest(target, table).await;
    assert_eq!(
        s, t,
        "table {table} differs (count, digest): source {s:?}, target {t:?}"
    );
}

/// Asserts that `ferry verify` finds the selected tables equal on both clusters.
pub async fn assert_verified(source: &TempCluster, target: &TempCluster, tables: &[&str]) {
    let selection = TableSelection::parse(
        &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        &[],
    )
    .unwrap();
    let report = ferry_postgres::verify::verify(
        &conn(source, "postgres"),
        &conn(target, "postgres"),
        &selection,
        &ferry_postgres::verify::VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        report.is_equal(),
        "ferry verify found differences:\n{report}"
    );
    assert!(!report.tables.is_empty());
}

/// Logs of the runs to the test's output when `FERRY_TEST_LOG` is set (an `EnvFilter`
/// spelling, e.g. `info`), for a failing test's replay.
pub fn log_if_asked() {
    if let Ok(filter) = std::env::var("FERRY_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Options of a `full+incremental` pipeline over every table of `public`, with pgoutput.
pub fn stream_options(source: &TempCluster, target: &TempCluster) -> StreamSyncOptions {
    stream_options_with(source, target, ferry_postgres::Plugin::Pgoutput)
}

/// Options of a `full+incremental` pipeline over every table of `public`, with `plugin`.
pub fn stream_options_with(
    source: &TempCluster,
    target: &TempCluster,
    plugin: ferry_postgres::Plugin,
) -> StreamSyncOptions {
    log_if_asked();
    StreamSyncOptions {
        plugin,
        full: options(source, target, &["public.*"]),
        copy_first: true,
        slot: "ferry_stream".into(),
        publication: "ferry_stream".into(),
        pipeline: "test".into(),
        progress_schema: "ferry".into(),
        streaming: true,
        coalesce: true,
        heartbeat: None,
        watch_tables: Some(Duration::from_millis(500)),
        batch: Default::default(),
    }
}

/// Waits (up to 60 s) until `table` has the same rows on both clusters. The digest is the
/// same as [`digest`]'s, through psql, so that a table a copy is re-creating at this moment
/// reads as "not yet" instead of failing the test.
pub async fn wait_equal(source: &TempCluster, target: &TempCluster, table: &str) {
    let sql = format!(
        "SET extra_float_digits = 3; SELECT count(*) || ' ' || md5(coalesce(string_agg(h, ',' ORDER BY h), '')) \
         FROM (SELECT md5(t::text) AS h FROM {table} t) d"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = source.psql(&sql).unwrap();
        let t = target.psql(&sql).unwrap_or_default();
        if s == t {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} never converged: source {s:?}, target {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`wait_equal`] while `sync` runs: a run that ends meanwhile fails the test with its
/// result at once, instead of the wait's timeout.
pub async fn converge(source: &TempCluster, target: &TempCluster, table: &str, sync: &mut Run) {
    tokio::select! {
        () = wait_equal(source, target, table) => {}
        ended = &mut *sync => panic!("the run ended while {table} converged: {ended:?}"),
    }
}

/// Waits (up to 60 s) for `sync` to stop by itself, and returns the error it stopped with.
pub async fn stopped_with(sync: Run) -> ferry_runtime::SyncError {
    tokio::time::timeout(Duration::from_secs(60), sync)
        .await
        .expect("the run did not stop")
        .unwrap()
        .expect_err("the run went on")
}

/// Every built-in type family with edge values, quoted names, a keyless table with
/// duplicates, a partitioned table, and generated and identity columns.
pub const ZOO: &str = r#"
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.positive AS integer NOT NULL CHECK (VALUE > 0);
CREATE TABLE public.zoo (
  id int PRIMARY KEY,
  b boolean, i2 smallint, i4 integer, i8 bigint,
  n numeric, n2 numeric(10,2), f4 real, f8 double precision, m money,
  t text, vc varchar(20), c char(5), nm name,
  by bytea, j json, jb jsonb, x xml, u uuid,
  d date, tm time, ttz timetz, ts timestamp(3), tstz timestamptz, iv interval,
  ip inet, cid cidr, mac macaddr, mac8 macaddr8,
  bt bit(4), vb varbit, tsv tsvector, tsq tsquery,
  pt point, ln line, ls lseg, bx box, pth path, pg polygon, ci circle,
  r4 int4range, r8 int8range, nr numrange, tr tsrange, tzr tstzrange, dr daterange,
  a1 int[], a2 text[][], ab bool[], an numeric[],
  e public.mood, ea public.mood[], dom public.positive,
  oid_col oid, pl pg_lsn
);
INSERT INTO public.zoo VALUES
 (1, true, -32768, -2147483648, -9223372036854775808,
  'NaN', -99999999.99, 'NaN', 'Infinity', -92233720368547758.08,
  E'tab\there\nnewline \\ backslash "quote" ''single'' ünïcödé 🚀', 'x', 'ab', 'nm',
  '\x00ff10', '{"a": [1, 2.50, null]}', '{"b": {"c": true}}', '<r><a>1</a></r>', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '4713-01-01 BC', '24:00:00', '23:59:59.999999+14', '294276-12-31 23:59:59.999', 'infinity', '-178000000 years',
  '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
  B'1010', B'101010101', 'a fat cat sat', 'fat & (rat | cat)',
  '(1.5,-2)', '{1,2,3}', '[(0,0),(1,1)]', '(2,2),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),5>',
  '[1,10)', '(,5]', 'empty', '[2020-01-01,2021-01-01)', '[2020-01-01 00:00+00,infinity)', '[2020-01-01,2020-02-01)',
  '{1,NULL,3}', '{{"a","b"},{"c",NULL}}', '{t,f}', '{1.5,NaN}',
  'happy', '{sad,ok}', 7, 4294967295, 'FFFFFFFF/FFFFFFFF'),
 (2, NULL, NULL, NULL, NULL, '-Infinity', NULL, '-Infinity', '-0', NULL,
  '', NULL, NULL, NULL, '\x', 'null', '[]', NULL, NULL,
  '5874897-12-31', '00:00', NULL, '-infinity', '-infinity', '0',
  NULL, NULL, NULL, NULL, NULL, B'', '', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL,
  '{}', '{}', NULL, NULL, NULL, NULL, 1, 0, '0/0'),
 (3, false, 1, 1, 1, 0.000000000000000000001, 0.01, 1.17549435e-38, 2.2250738585072014e-308, 0.01,
  repeat('toast me ', 12000), 'vc', 'c', 'n',
  decode(repeat('deadbeef', 25000), 'hex'), '[1,2]', jsonb_build_object('big', repeat('y', 100000)), NULL, gen_random_uuid(),
  '2000-02-29', '12:34:56.789', '00:00+00', '2000-01-01 00:00:00.001', '1999-12-31 23:59:59.999999+00', '1 mon 2 days 03:04:05.678',
  '::1', '::/0', NULL, NULL, B'0000', NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, '[1.5,2.5]', NULL, NULL, NULL,
  '{{1,2},{3,4}}', '{{{"x"}}}', NULL, NULL, 'sad', NULL, 2147483647, NULL, NULL);

CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Order" ("select" int PRIMARY KEY, "From" text, "group" text);
INSERT INTO "Sales Dept"."Order" SELECT g, 'f' || g, NULL FROM generate_series(1, 100) g;

CREATE TABLE public.keyless (a int, b text);
INSERT INTO public.keyless VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, NULL), (NULL, NULL), (NULL, NULL);

CREATE TABLE public.measurements (id bigint, at date NOT NULL, v numeric, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2023 PARTITION OF public.measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.measurements_rest PARTITION OF public.measurements DEFAULT;
INSERT INTO public.measurements SELECT g, date '2023-01-01' + (g % 900), g * 1.5 FROM generate_series(1, 3000) g;

CREATE TABLE public.computed (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  by_default bigint GENERATED BY DEFAULT AS IDENTITY,
  serial_col serial,
  price numeric NOT NULL,
  qty int NOT NULL DEFAULT 1,
  total numeric GENERATED ALWAYS AS (price * qty) STORED
);
INSERT INTO public.computed (price, qty) SELECT g, g % 5 + 1 FROM generate_series(1, 500) g;
"#;

pub const TABLES: [&str; 8] = [
    "public.zoo",
    "\"Sales Dept\".\"Order\"",
    "public.keyless",
    "public.measurements",
    "public.measurements_2023",
    "public.measurements_rest",
    "public.computed",
    "public.measurements_2024",
];

/// Runs `$scenario(plugin)` as one test per output plugin, in a module named after the
/// scenario: `scenario::pgoutput`, `scenario::wal2json`, `scenario::decoderbufs`.
#[macro_export]
macro_rules! per_plugin {
    ($scenario:ident) => {
        per_plugin!($scenario, [pgoutput Pgoutput, wal2json Wal2json, decoderbufs Decoderbufs]);
    };
    ($scenario:ident, [$($name:ident $plugin:ident),+]) => {
        mod $scenario {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$scenario(ferry_postgres::Plugin::$plugin).await;
                }
            )+
        }
    };
}

/// Accounts with balances and a keyless log of moves between them.
pub const SCHEMA: &str = "
    CREATE TABLE public.accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text);
    CREATE TABLE public.events (account bigint, amount bigint);
    INSERT INTO public.accounts SELECT g, 1000, 'initial' FROM generate_series(1, 20000) g;";

/// Moves money between accounts and logs each move in `events` (a keyless table, where a
/// duplicate or lost insert changes the digest), until told to stop.
pub fn start_writer(source: &TempCluster, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let url = source.admin_url();
    tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let (from, to) = (n % 20000 + 1, (n * 7) % 20000 + 1);
            client
                .batch_execute(&format!(
                    "BEGIN;
                     UPDATE public.accounts SET balance = balance - 1 WHERE id = {from};
                     UPDATE public.accounts SET balance = balance + 1, note = 'moved {n}' WHERE id = {to};
                     INSERT INTO public.events VALUES ({from}, -1), ({to}, 1);
                     COMMIT"
                ))
                .await
                .unwrap();
        }
        n
    })
}

/// Waits (up to 20 s) until no slot is active: a killed run's walsender lets go of its slot
/// a moment after the run is gone.
pub async fn wait_slots_released(source: &TempCluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while source
        .psql("SELECT count(*) FROM pg_replication_slots WHERE active")
        .unwrap()
        .trim()
        != "0"
    {
        assert!(Instant::now() < deadline, "the slot stayed active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pipeline running in the background.
pub type Run = tokio::task::JoinHandle<Result<(), ferry_runtime::SyncError>>;

/// Runs the pipeline in the background until the returned sender says stop.
pub fn start(options: StreamSyncOptions) -> (tokio::sync::watch::Sender<bool>, Run) {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let sync = tokio::spawn(async move {
        ferry_runtime::run_stream_sync(&options, &ferry_runtime::Progress::none(), stop_rx).await
    });
    (stop, sync)
}

/// Stops a run started by [`start`] and expects it to end without an error.
pub async fn stop_run(stop: tokio::sync::watch::Sender<bool>, sync: Run) {
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
}
