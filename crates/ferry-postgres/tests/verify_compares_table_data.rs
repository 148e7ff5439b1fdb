//! `ferry verify` on real source and target clusters: equal data is reported equal whatever
//! the types and the target's session defaults, and every kind of difference is named with
//! the right key (or row image) and side.

use ferry_core::TableName;
use ferry_pgwire::ConnParams;
use ferry_postgres::verify::{
    verify, Difference, TableResult, TableStatus, VerifyError, VerifyOptions, VerifyReport,
};
use ferry_postgres::TableSelection;
use ferry_testkit::TempCluster;

fn conn(cluster: &TempCluster) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    ))
    .unwrap()
}

/// A source and a target cluster, both with `schema` applied.
fn clusters(schema: &str) -> (TempCluster, TempCluster) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(schema).unwrap();
    target.psql(schema).unwrap();
    (source, target)
}

async fn run(
    source: &TempCluster,
    target: &TempCluster,
    options: VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let selection = TableSelection::parse(&["public.*".to_owned()], &[]).unwrap();
    verify(&conn(source), &conn(target), &selection, &options).await
}

async fn compare(source: &TempCluster, target: &TempCluster) -> VerifyReport {
    run(source, target, VerifyOptions::default()).await.unwrap()
}

fn table<'a>(report: &'a VerifyReport, name: &str) -> &'a TableResult {
    report
        .table(&TableName::new("public", name))
        .unwrap_or_else(|| panic!("no table {name} in\n{report}"))
}

/// Differences of a keyed table as (kind, key text).
fn keyed(result: &TableResult) -> Vec<(&'static str, String)> {
    let mut found: Vec<(&'static str, String)> = result
        .differences
        .iter()
        .map(|d| match d {
            Difference::OnlyInSource { key } => ("only in source", key.to_string()),
            Difference::OnlyInTarget { key } => ("only in target", key.to_string()),
            Difference::DifferentValues { key } => ("different values", key.to_string()),
            other => panic!("unexpected difference {other}"),
        })
        .collect();
    found.sort();
    found
}

const ZOO: &str = r#"
    CREATE TABLE public.zoo (
        id int PRIMARY KEY,
        n numeric(20,5), t text, b bytea, j jsonb, ts timestamptz, tsl timestamp, d date,
        iv interval, arr int[], tarr text[], f float8, r real, m money, u uuid, ok bool,
        twice int GENERATED ALWAYS AS (id * 2) STORED
    );
    CREATE TABLE public.log (at timestamptz, level text, msg text);
    CREATE TABLE public.measure (id int, region text, v float8, PRIMARY KEY (id, region))
        PARTITION BY LIST (region);
    CREATE TABLE public.measure_eu PARTITION OF public.measure FOR VALUES IN ('eu');
    CREATE TABLE public.measure_us PARTITION OF public.measure FOR VALUES IN ('us');
"#;

const ZOO_DATA: &str = r#"
    INSERT INTO public.zoo (id, n, t, b, j, ts, tsl, d, iv, arr, tarr, f, r, m, u, ok) VALUES
      (1, 12345.67891, E'h\u00e9llo \u4e16\u754c \U0001F680\nsecond line\ttab', '\x00ff10',
       '{"a": [1, 2, {"b": null}], "z": "\u00fc"}', '2024-02-29 12:34:56.789+05:30',
       '1999-12-31 23:59:59.999999', '0044-03-15 BC', '1 year 2 mons -3 days 04:05:06.7',
       '{1,2,NULL}', '{"a b","c,d",NULL,""}', 'NaN', 1.5, 12.34,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true),
      (2, -0.00001, '', '', 'null', 'infinity', '-infinity', 'infinity', '0', '{}', '{}',
       'Infinity', '-Infinity', -0.01, NULL, false),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', NULL,
       NULL, NULL, NULL),
      (4, 0.1, 'quote '' and "double" and \ backslash', '\x', '[]',
       '1970-01-01 00:00:00+00', '2000-01-01', '2000-01-01', '-1 day', '{{1,2},{3,4}}',
       '{"\\"}', 0.1, 0.1, 0, NULL, NULL);
    INSERT INTO public.zoo (id, n, t, f)
        SELECT g, g / 7.0, md5(g::text), g / 3.0 FROM generate_series(5, 1000) g;
    INSERT INTO public.log VALUES
      ('2024-01-01 00:00:00+00', 'info', 'started'),
      ('2024-01-01 00:00:00+00', 'info', 'started'),
      ('2024-01-01 00:00:01+00', 'warn', NULL),
      (NULL, NULL, NULL),
      (NULL, NULL, NULL),
      (NULL, NULL, NULL);
    INSERT INTO public.measure SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g * 1.1
        FROM generate_series(1, 50) g;
"#;

#[tokio::test]
async fn verify_equal_tables_report_equal() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(ZOO).unwrap();
    // The target partitions differently (not at all) and renders everything differently by
    // default: verify's own session settings must make the text identical.
    target
        .psql(
            &ZOO.replace("PARTITION BY LIST (region);", ";")
                .lines()
                .filter(|l| !l.contains("PARTITION OF"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
    target
        .psql(
            "ALTER DATABASE postgres SET TimeZone = 'Asia/Kathmandu';
             ALTER DATABASE postgres SET DateStyle = 'SQL, DMY';
             ALTER DATABASE postgres SET IntervalStyle = 'iso_8601';
             ALTER DATABASE postgres SET extra_float_digits = 0;
             ALTER DATABASE postgres SET bytea_output = 'escape';",
        )
        .unwrap();
    source.psql(ZOO_DATA).unwrap();
    target.psql(ZOO_DATA).unwrap();

    let report = compare(&source, &target).await;
    assert!(report.is_equal(), "{report}");
    let names: Vec<String> = report.tables.iter().map(|t| t.table.name.clone()).collect();
    assert_eq!(
        names,
        ["log", "measure", "zoo"],
        "partitions are compared through the parent"
    );
    assert_eq!(table(&report, "zoo").source_rows, 1000);
    assert_eq!(table(&report, "zoo").target_rows, Some(1000));
    assert_eq!(table(&report, "log").source_rows, 6);
    assert_eq!(table(&report, "measure").target_rows, Some(50));
    let text = report.to_string();
    assert!(
        text.contains("OK   \"public\".\"zoo\"  1000 rows"),
        "{text}"
    );
    assert!(text.ends_with("3 tables equal, 0 different"), "{text}");
}

#[tokio::test]
async fn verify_names_differing_keys() {
    let (source, target) = clusters(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text, w float8);
         INSERT INTO public.t SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 2000) g;
         CREATE TABLE public.same (id int PRIMARY KEY);
         INSERT INTO public.same SELECT generate_series(1, 10);",
    );
    target
        .psql(
            "UPDATE public.t SET w = w + 1e-12 WHERE id = 42;
             DELETE FROM public.t WHERE id = 777;
             INSERT INTO public.t VALUES (5000, 'extra', 0);",
        )
        .unwrap();
    let report = compare(&source, &target).await;
    assert!(!report.is_equal());
    let t = table(&report, "t");
    assert_eq!(t.status, TableStatus::Different);
    assert_eq!((t.source_rows, t.target_rows), (2000, Some(2000)));
    assert_eq!(
        keyed(t),
        [
            ("different values", "id=42".to_owned()),
            ("only in source", "id=777".to_owned()),
            ("only in target", "id=5000".to_owned()),
        ]
    );
    assert!(!t.more_differences);
    assert_eq!(table(&report, "same").status, TableStatus::Equal);

    let text = report.to_string();
    assert!(
        text.contains("DIFF \"public\".\"t\"  source 2000 rows, target 2000 rows"),
        "{text}"
    );
    assert!(text.contains("       only in source:   id=777"), "{text}");
    assert!(text.ends_with("1 table equal, 1 different"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    let t = &json["tables"][1];
    assert_eq!(t["status"], "different");
    assert!(t["differences"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["kind"] == "only_in_target" && d["key"]["id"] == "5000"));
}

#[tokio::test]
async fn verify_keyless_tables_compare_as_multisets() {
    let schema = "CREATE TABLE public.events (kind text, n int);
                  CREATE TABLE public.same (kind text);
                  INSERT INTO public.same VALUES ('a'), ('a'), (NULL);";
    let (source, target) = clusters(schema);
    // The same distinct rows, different multiplicities (and equal total counts).
    source
        .psql("INSERT INTO public.events VALUES ('a', 1), ('a', 1), ('a', 1), ('b', 2)")
        .unwrap();
    target
        .psql("INSERT INTO public.events VALUES ('a', 1), ('b', 2), ('b', 2), ('b', 2)")
        .unwrap();
    let report = compare(&source, &target).await;
    let events = table(&report, "events");
    assert_eq!(events.status, TableStatus::Different, "{report}");
    assert_eq!((events.source_rows, events.target_rows), (4, Some(4)));
    let mut counts: Vec<(i64, i64)> = events
        .differences
        .iter()
        .map(|d| match d {
            Difference::RowImage {
                id,
                source_count,
                target_count,
            } => {
                assert_eq!(id.len(), 16, "{id}");
                (*source_count, *target_count)
            }
            other => panic!("unexpected difference {other}"),
        })
        .collect();
    counts.sort();
    assert_eq!(counts, [(1, 3), (3, 1)]);
    let text = report.to_string();
    assert!(
        text.contains("3 times in source, 1 time in target"),
        "{text}"
    );
    assert_eq!(table(&report, "same").status, TableStatus::Equal);
}

#[tokio::test]
async fn verify_limits_listed_differences() {
    let (source, target) = clusters(
        "CREATE TABLE public.t (id int PRIMARY KEY, v int);
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 1000) g;",
    );
    target
        .psql("UPDATE public.t SET v = -v WHERE id % 10 = 0")
        .unwrap();
    let options = VerifyOptions {
        max_differences_per_table: 7,
        ..VerifyOptions::default()
    };
    let report = run(&source, &target, options).await.unwrap();
    let t = table(&report, "t");
    assert_eq!(t.differences.len(), 7, "{report}");
    assert!(t.more_differences);
    assert!(keyed(t).iter().all(|(kind, _)| *kind == "different values"));
    assert!(report.to_string().contains("more differences not listed"));

    // Exactly as many differences as the limit: all listed, nothing more.
    target
        .psql("UPDATE public.t SET v = -v WHERE id % 10 = 0 AND id > 70")
        .unwrap();
    let report = run(&source, &target, options).await.unwrap();
    let t = table(&report, "t");
    assert_eq!(t.differences.len(), 7, "{report}");
    assert!(!t.more_differences, "{report}");
}

#[tokio::test]
async fn verify_narrows_large_buckets_into_sub_buckets() {
    let (source, target) = clusters(
        "CREATE TABLE public.big (id bigint PRIMARY KEY, v text);
         INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 120000) g;",
    );
    target
        .psql(
            "DELETE FROM public.big WHERE id IN (3, 60001);
             UPDATE public.big SET v = 'changed' WHERE id = 119999;",
        )
        .unwrap();
    // Two buckets of ~60,000 rows are above the fetch limit and must be split again.
    let options = VerifyOptions {
        buckets: 2,
        ..VerifyOptions::default()
    };
    let report = run(&source, &target, options).await.unwrap();
    let big = table(&report, "big");
    assert_eq!(
        keyed(big),
        [
            ("different values", "id=119999".to_owned()),
            ("only in source", "id=3".to_owned()),
            ("only in source", "id=60001".to_owned()),
        ]
    );
    assert_eq!((big.source_rows, big.target_rows), (120_000, Some(119_998)));
}

#[tokio::test]
async fn verify_reports_table_missing_on_target() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.present (id int PRIMARY KEY);
             CREATE TABLE public.\"Gone Table\" (id int PRIMARY KEY);
             INSERT INTO public.\"Gone Table\" VALUES (1), (2);
             CREATE TABLE public.narrow (id int PRIMARY KEY, a text, b text);
             INSERT INTO public.narrow VALUES (1, 'x', 'y');",
        )
        .unwrap();
    target
        .psql(
            "CREATE TABLE public.present (id int PRIMARY KEY);
             CREATE TABLE public.narrow (id int PRIMARY KEY, a text);
             INSERT INTO public.narrow VALUES (1, 'x');",
        )
        .unwrap();
    let report = compare(&source, &target).await;
    let gone = table(&report, "Gone Table");
    assert_eq!(gone.status, TableStatus::MissingOnTarget);
    assert_eq!((gone.source_rows, gone.target_rows), (2, None));
    let narrow = table(&report, "narrow");
    assert_eq!(narrow.status, TableStatus::Different);
    assert_eq!(
        narrow.differences,
        [Difference::ColumnMissingOnTarget { column: "b".into() }]
    );
    assert_eq!(table(&report, "present").status, TableStatus::Equal);
    let text = report.to_string();
    assert!(
        text.contains("DIFF \"public\".\"Gone Table\"  source 2 rows, missing on target"),
        "{text}"
    );
    assert!(
        text.ends_with("1 table equal, 2 different (1 missing on target)"),
        "{text}"
    );
}

#[tokio::test]
async fn verify_column_order_on_target_does_not_matter() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.t (id int PRIMARY KEY, a text, b numeric, c date);
             INSERT INTO public.t SELECT g, 'a' || g, g * 1.5, date '2024-01-01' + g
                 FROM generate_series(1, 300) g;",
        )
        .unwrap();
    target
        .psql(
            "CREATE TABLE public.t (c date, b numeric, extra int DEFAULT 7, a text,
                                    id int PRIMARY KEY);
             INSERT INTO public.t (id, a, b, c) SELECT g, 'a' || g, g * 1.5,
                 date '2024-01-01' + g FROM generate_series(1, 300) g;",
        )
        .unwrap();
    let report = compare(&source, &target).await;
    assert!(report.is_equal(), "{report}");

    target
        .psql("UPDATE public.t SET a = 'z' WHERE id = 150")
        .unwrap();
    let report = compare(&source, &target).await;
    assert_eq!(
        keyed(table(&report, "t")),
        [("different values", "id=150".to_owned())]
    );
}

#[tokio::test]
async fn verify_composite_text_and_int_key_names_both_columns() {
    let (source, target) = clusters(
        "CREATE TABLE public.stock (region text, item int, qty int, PRIMARY KEY (region, item));
         INSERT INTO public.stock SELECT r, i, i * 10
             FROM unnest(ARRAY['eu', 'us', 'ap south']) r, generate_series(1, 100) i;",
    );
    target
        .psql(
            "UPDATE public.stock SET qty = 0 WHERE region = 'ap south' AND item = 7;
             DELETE FROM public.stock WHERE region = 'eu' AND item = 100;",
        )
        .unwrap();
    let report = compare(&source, &target).await;
    let stock = table(&report, "stock");
    assert_eq!(
        keyed(stock),
        [
            ("different values", "(region='ap south', item=7)".to_owned()),
            ("only in source", "(region=eu, item=100)".to_owned()),
        ]
    );
    let json = serde_json::to_value(stock).unwrap();
    let first = &json["differences"][0]["key"];
    assert_eq!(first["region"], "ap south");
    assert_eq!(first["item"], "7");
}

#[tokio::test]
async fn verify_without_selected_tables_is_an_error() {
    let (source, target) = clusters("CREATE SCHEMA other; CREATE TABLE other.t (id int);");
    let err = run(&source, &target, VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::NoTables), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn verify_unreadable_table_names_the_table_and_the_grant() {
    let (source, target) = clusters(
        "CREATE TABLE public.secret (id int PRIMARY KEY);
         CREATE ROLE reader LOGIN;",
    );
    let reader = ConnParams::parse(&format!(
        "{}?sslmode=disable",
        source.url("reader", None, "postgres")
    ))
    .unwrap();
    let selection = TableSelection::parse(&["public.*".to_owned()], &[]).unwrap();
    let err = verify(
        &reader,
        &conn(&target),
        &selection,
        &VerifyOptions::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, VerifyError::Table { table, .. } if table.name == "secret"),
        "{text}"
    );
    assert!(
        text.contains("run GRANT SELECT ON \"public\".\"secret\" TO \"reader\""),
        "{text}"
    );
    assert!(!err.is_transient());
}
