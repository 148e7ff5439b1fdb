//! Helpers for full-sync tests: options for two clusters, and an independent SQL digest of a
//! table's contents to compare source and target without trusting `ferry verify`.

#![allow(dead_code)]

use ferry_pgwire::ConnParams;
use ferry_postgres::schema::create::OnExisting;
use ferry_postgres::TableSelection;
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
