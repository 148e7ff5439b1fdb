//! What a plugin cannot carry is a `check` item naming the table and columns, before any
//! change is lost: wal2json's NaN and Infinity as null (WARN), decoderbufs' timetz and money
//! (FAIL) and its missing TRUNCATE (WARN). pgoutput has none.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::TempCluster;
use support::*;

const SCHEMA: &str = "
    CREATE TABLE public.readings (id int PRIMARY KEY, celsius double precision, price numeric(10,2), note text);
    CREATE TABLE public.shifts (id int PRIMARY KEY, starts timetz, wage money);
    CREATE TABLE public.plain (id int PRIMARY KEY, label text);
";

async fn limits(plugin: Plugin) -> Vec<(Status, String)> {
    let source = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let findings = Source::new(conn(&source, "postgres", None, "postgres"), plugin)
        .run()
        .await;
    findings
        .items
        .iter()
        .filter(|i| i.check.starts_with("plugin_"))
        .map(|i| (i.status, i.message.clone()))
        .collect()
}

#[tokio::test]
async fn wal2json_nan_is_null_and_check_warns() {
    let found = limits(Plugin::Wal2json).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let (status, message) = &found[0];
    assert_eq!(*status, Status::Warn);
    assert!(message.contains("\"public\".\"readings\""), "{message}");
    assert!(message.contains("celsius (double precision)"), "{message}");
    assert!(message.contains("price (numeric(10,2))"), "{message}");
    assert!(!message.contains("note"), "{message}");
}

#[tokio::test]
async fn decoderbufs_limits_fail_and_warn() {
    let found = limits(Plugin::Decoderbufs).await;
    let fail: Vec<_> = found.iter().filter(|(s, _)| *s == Status::Fail).collect();
    assert_eq!(fail.len(), 1, "{found:?}");
    assert!(fail[0].1.contains("\"public\".\"shifts\""), "{found:?}");
    assert!(
        fail[0].1.contains("starts (time with time zone)"),
        "{found:?}"
    );
    assert!(fail[0].1.contains("wage (money)"), "{found:?}");
    assert!(found
        .iter()
        .any(|(s, m)| *s == Status::Warn && m.contains("TRUNCATE")));
}

#[tokio::test]
async fn pgoutput_has_no_plugin_limits() {
    assert!(limits(Plugin::Pgoutput).await.is_empty());
}
