//! Every built-in type family, edge values included, arrives in the target exactly; so do
//! quoted mixed-case names and reserved words, keyless tables with duplicate rows,
//! partitioned tables, and generated and identity columns.

#[path = "support/sync_support.rs"]
mod support;

use ferry_runtime::{run_full_sync, Progress};
use ferry_testkit::TempCluster;
use support::*;

#[tokio::test]
async fn type_zoo_and_naming_edge_cases_round_trip_exactly() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(ZOO).unwrap();
    let opts = options(&source, &target, &["public.*", "\"Sales Dept\".*"]);
    let summary = run_full_sync(&opts, &Progress::none()).await.unwrap();
    assert_eq!(summary.rows, 3 + 100 + 6 + 3000 + 500);
    for table in TABLES {
        assert_same(&source, &target, table).await;
    }
    assert_verified(&source, &target, &["public.*", "\"Sales Dept\".*"]).await;
    // Every index and key was built (some while other tables were still copying).
    let indexes = "SELECT string_agg(indexdef, E'\\n' ORDER BY indexdef) FROM pg_indexes \
                   WHERE schemaname IN ('public', 'Sales Dept')";
    let on_source = source.psql(indexes).unwrap();
    assert!(on_source.contains("zoo_pkey"), "{on_source}");
    assert_eq!(on_source, target.psql(indexes).unwrap());
    // Identity and serial sequences continue after the copied values.
    let next: i32 = target
        .admin_client()
        .await
        .query_one(
            "INSERT INTO public.computed (price) VALUES (1) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 501);
    // Generated columns are computed by the target, still as generated columns.
    let generated: String = target
        .psql("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'public.computed'::regclass AND attname = 'total'")
        .unwrap();
    assert_eq!(generated.trim(), "s");
}

#[tokio::test]
async fn keyless_table_with_duplicate_rows_keeps_every_copy() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.dups (v int); INSERT INTO public.dups VALUES (1), (1), (1), (NULL), (NULL);")
        .unwrap();
    run_full_sync(
        &options(&source, &target, &["public.dups"]),
        &Progress::none(),
    )
    .await
    .unwrap();
    assert_verified(&source, &target, &["public.dups"]).await;
    let counts = target
        .psql("SELECT v, count(*) FROM public.dups GROUP BY v ORDER BY v NULLS LAST")
        .unwrap();
    assert_eq!(counts.trim(), "1|3\n|2");
}
