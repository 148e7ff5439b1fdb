//! What `prepare_target` does with a target that is not empty: existing tables with rows
//! are refused, truncated or appended to as configured, existing tables are never given
//! indexes, and a failure leaves nothing half-created.

use ferry_core::TableName;
use ferry_pgwire::ConnParams;
use ferry_postgres::schema::create::{finish_target, prepare_target, OnExisting, SchemaError};
use ferry_postgres::schema::ddl::post_load;
use ferry_postgres::schema::read::read_schema;
use ferry_postgres::schema::SourceSchema;
use ferry_postgres::TableSelection;
use ferry_testkit::TempCluster;

const SOURCE: &str = r#"
    CREATE SCHEMA "Sales";
    CREATE TYPE public.mood AS ENUM ('sad', 'ok');
    CREATE TABLE public.a (id int PRIMARY KEY, label text);
    CREATE TABLE public.b (id bigserial PRIMARY KEY, mood public.mood);
    CREATE TABLE "Sales"."Order" (id int PRIMARY KEY);
    CREATE TABLE public.zz (id int PRIMARY KEY);
"#;

/// The source schema of `SOURCE` (all of `public` and `"Sales"`).
async fn source_schema() -> (TempCluster, SourceSchema) {
    let source = TempCluster::new().unwrap();
    source.psql(SOURCE).unwrap();
    let selection =
        TableSelection::parse(&["public.*".to_owned(), "\"Sales\".*".to_owned()], &[]).unwrap();
    let schema = read_schema(&source.admin_client().await, &selection)
        .await
        .unwrap();
    assert_eq!(schema.tables.len(), 4);
    (source, schema)
}

fn conn(cluster: &TempCluster) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    ))
    .unwrap()
}

fn t(schema: &str, name: &str) -> TableName {
    TableName::new(schema, name)
}

/// One value from `sql` on `cluster`.
fn scalar(cluster: &TempCluster, sql: &str) -> String {
    cluster.psql(sql).unwrap().trim().to_owned()
}

/// Which of the source's objects exist on `target`: tables a, b, "Sales"."Order", zz,
/// type mood, sequence b_id_seq, schema Sales.
fn created_objects(target: &TempCluster) -> String {
    scalar(
        target,
        "SELECT concat_ws(',',
            to_regclass('public.a'), to_regclass('public.b'), to_regclass('\"Sales\".\"Order\"'),
            to_regclass('public.zz'),
            to_regtype('public.mood'), to_regclass('public.b_id_seq'),
            (SELECT nspname FROM pg_namespace WHERE nspname = 'Sales'))",
    )
}

#[tokio::test]
async fn non_empty_existing_target_table_is_refused() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    target
        .psql("CREATE TABLE public.a (id int, label text); INSERT INTO public.a VALUES (1, 'kept')")
        .unwrap();
    let err = prepare_target(&target.admin_client().await, &schema, OnExisting::Error)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SchemaError::TargetNotEmpty { table } if *table == t("public", "a")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(r#""public"."a""#), "{text}");
    assert!(text.contains(r#"on_existing = "truncate""#), "{text}");
    assert!(text.contains(r#""append""#), "{text}");
    assert!(!err.is_transient());
    // Nothing else was created, and the table keeps its row.
    assert_eq!(created_objects(&target), "a");
    assert_eq!(scalar(&target, "SELECT label FROM public.a"), "kept");
}

#[tokio::test]
async fn truncate_empties_existing_table_and_keeps_it() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    target
        .psql(
            "CREATE TABLE public.a (id int, label text, extra text);
             INSERT INTO public.a VALUES (1, 'old', 'x'), (2, 'old', 'y')",
        )
        .unwrap();
    let client = target.admin_client().await;
    let prepared = prepare_target(&client, &schema, OnExisting::Truncate)
        .await
        .unwrap();
    assert_eq!(prepared.existing, [t("public", "a")]);
    assert_eq!(prepared.truncated, [t("public", "a")]);
    assert_eq!(
        prepared.created,
        [t("Sales", "Order"), t("public", "b"), t("public", "zz")]
    );
    assert_eq!(scalar(&target, "SELECT count(*) FROM public.a"), "0");
    // The same table, not a re-created one: its extra column is still there.
    assert_eq!(
        scalar(
            &target,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.a'::regclass AND attname = 'extra'"
        ),
        "1"
    );
    assert_eq!(
        created_objects(&target),
        "a,b,\"Sales\".\"Order\",zz,mood,b_id_seq,Sales"
    );

    // Post-load work covers only the created tables: the existing one gets no key.
    let post = post_load(&prepared.filter(&schema));
    assert!(
        post.indexes
            .iter()
            .chain(&post.constraints)
            .all(|s| !s.object.contains(r#""public"."a""#)),
        "{post:?}"
    );
    finish_target(&conn(&target), &post, 2).await.unwrap();
    assert_eq!(
        scalar(
            &target,
            "SELECT string_agg(conrelid::regclass::text, ',' ORDER BY conrelid::regclass::text COLLATE \"C\")
             FROM pg_constraint
             WHERE contype = 'p' AND connamespace <> 'pg_catalog'::regnamespace"
        ),
        "\"Sales\".\"Order\",b,zz"
    );
}

#[tokio::test]
async fn append_keeps_existing_rows() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    target
        .psql(
            "CREATE TABLE public.a (id int, label text);
             INSERT INTO public.a VALUES (1, 'old'), (2, 'old')",
        )
        .unwrap();
    let prepared = prepare_target(&target.admin_client().await, &schema, OnExisting::Append)
        .await
        .unwrap();
    assert_eq!(prepared.existing, [t("public", "a")]);
    assert!(prepared.truncated.is_empty());
    assert_eq!(scalar(&target, "SELECT count(*) FROM public.a"), "2");
    assert_eq!(
        created_objects(&target),
        "a,b,\"Sales\".\"Order\",zz,mood,b_id_seq,Sales"
    );
}

#[tokio::test]
async fn failed_create_leaves_no_half_created_tables() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    // A view where the last table goes: CREATE TABLE fails after the others were created.
    target
        .psql("CREATE VIEW public.zz AS SELECT 1 AS id")
        .unwrap();
    let err = prepare_target(&target.admin_client().await, &schema, OnExisting::Error)
        .await
        .unwrap_err();
    let SchemaError::Create { object, .. } = &err else {
        panic!("expected a create error, got {err:?}");
    };
    assert_eq!(object, r#"table "public"."zz""#);
    let text = err.to_string();
    assert!(
        text.contains("another object of that name exists"),
        "{text}"
    );
    assert!(text.contains("rolled back"), "{text}");
    assert!(!err.is_transient());
    // Only what was there before: the view.
    assert_eq!(created_objects(&target), "zz");
    assert_eq!(
        scalar(&target, "SELECT relkind FROM pg_class WHERE relname = 'zz'"),
        "v"
    );
}

#[tokio::test]
async fn conflicting_type_on_target_is_named_and_nothing_is_created() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    target
        .psql("CREATE TYPE public.mood AS (feeling text)")
        .unwrap();
    let err = prepare_target(&target.admin_client().await, &schema, OnExisting::Error)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            r#"type "public"."mood" exists on the target as a composite type but is an enum on the source"#
        ),
        "{text}"
    );
    assert!(!err.is_transient());
    assert_eq!(created_objects(&target), "mood");
}

#[tokio::test]
async fn enum_on_target_missing_labels_is_refused() {
    let (_source, schema) = source_schema().await;
    let target = TempCluster::new().unwrap();
    target
        .psql("CREATE TYPE public.mood AS ENUM ('sad')")
        .unwrap();
    let err = prepare_target(&target.admin_client().await, &schema, OnExisting::Error)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, SchemaError::EnumLabelsMissing { missing, .. } if missing == "'ok'"),
        "{text}"
    );
    assert!(
        text.contains("ALTER TYPE \"public\".\"mood\" ADD VALUE"),
        "{text}"
    );
    assert_eq!(created_objects(&target), "mood");
}
