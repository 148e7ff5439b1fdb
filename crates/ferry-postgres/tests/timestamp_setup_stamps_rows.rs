//! The timestamp set-up makes its column hold the start time of the last transaction that
//! inserted or updated each row, is idempotent, quotes every name, and needs only table
//! ownership, not superuser.

use ferry_core::{quote_literal, TableName};
use ferry_pgwire::ConnParams;
use ferry_postgres::source::timestamps::{
    apply_setup, inspect, TimestampSetupError, TimestampTable, TriggerMode, TriggerState,
    DEFAULT_TIMESTAMP_COLUMN,
};
use ferry_testkit::{RoleSpec, TempCluster};
use tokio_postgres::Client;

/// Everything the set-up can change about `table`, one line per object, sorted.
fn catalog_state(cluster: &TempCluster, table: &TableName) -> String {
    let regclass = quote_literal(&table.quoted());
    cluster
        .psql(&format!(
            "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
               SELECT 'column ' || attname::text || ' ' || format_type(atttypid, atttypmod) || ' '
                      || attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
                 FROM pg_attribute a
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE attrelid = {regclass}::regclass AND attnum > 0 AND NOT attisdropped
               UNION ALL
               SELECT 'trigger ' || pg_get_triggerdef(oid) || ' ' || tgenabled::text
                 FROM pg_trigger WHERE tgrelid = {regclass}::regclass
               UNION ALL
               SELECT 'index ' || pg_get_indexdef(indexrelid)
                 FROM pg_index WHERE indrelid = {regclass}::regclass
               UNION ALL
               SELECT 'function ' || oid::regprocedure || ' ' || prosrc
                 FROM pg_proc WHERE proname LIKE 'ferry%'
             ) s(x)"
        ))
        .unwrap()
}

fn orders() -> TableName {
    TableName::new("public", "orders")
}

async fn connect_as(cluster: &TempCluster, user: &str) -> Client {
    let params = ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url(user, None, "postgres")
    ))
    .unwrap();
    ferry_pgwire::connect_sql(&params).await.unwrap()
}

#[tokio::test]
async fn setup_is_idempotent_and_stamps_inserts_and_updates() {
    let pg = TempCluster::new().unwrap();
    pg.psql(
        "CREATE TABLE public.orders (id int PRIMARY KEY, note text);
         INSERT INTO public.orders SELECT g, 'old' FROM generate_series(1, 3) g;",
    )
    .unwrap();
    let mut client = pg.admin_client().await;
    let tables = [TimestampTable::new(orders(), DEFAULT_TIMESTAMP_COLUMN)];

    let first = apply_setup(&client, "public", &tables).await.unwrap();
    assert_eq!(first.added_columns, [orders()]);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let after_first = catalog_state(&pg, &orders());
    let second = apply_setup(&client, "public", &tables).await.unwrap();
    assert!(second.added_columns.is_empty());
    assert_eq!(catalog_state(&pg, &orders()), after_first);
    assert!(
        after_first.contains("function ferry_set_last_update()"),
        "{after_first}"
    );
    assert!(
        after_first.contains("CREATE INDEX orders_last_update_ferry_idx"),
        "{after_first}"
    );

    let state = &second.tables[0];
    assert!(state.is_ready(), "{state:?}");
    assert!(state.indexed);
    assert_eq!(
        state.trigger,
        TriggerState::Present {
            mode: TriggerMode::Always,
            stamps_inserts_and_updates: true
        }
    );
    assert_eq!(
        state.column.as_ref().unwrap().type_name,
        "timestamp with time zone"
    );

    // Existing rows all carry the time of the set-up, which is before anything later.
    let existing = client
        .query_one(
            "SELECT count(DISTINCT last_update), bool_and(last_update < now())
               FROM public.orders",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(existing.get::<_, i64>(0), 1);
    assert!(existing.get::<_, bool>(1));

    // Inserts get the transaction's start time, even when the writer supplies a value, and
    // every row of one transaction shares it.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "INSERT INTO public.orders (id, note) VALUES (10, 'a');
         SELECT pg_sleep(0.05);
         INSERT INTO public.orders (id, note, last_update) VALUES (11, 'b', '2000-01-01');",
    )
    .await
    .unwrap();
    let inserted = tx
        .query_one(
            "SELECT count(DISTINCT last_update), bool_and(last_update = now())
               FROM public.orders WHERE id IN (10, 11)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted.get::<_, i64>(0), 1);
    assert!(inserted.get::<_, bool>(1));
    tx.commit().await.unwrap();

    // An update refreshes it, whatever columns it sets.
    let tx = client.transaction().await.unwrap();
    let updated = tx
        .query_one(
            "UPDATE public.orders SET note = 'changed', last_update = '2000-01-01'
              WHERE id = 10 RETURNING last_update = now()",
            &[],
        )
        .await
        .unwrap();
    assert!(updated.get::<_, bool>(0));
    tx.commit().await.unwrap();
    let newer = client
        .query_one(
            "SELECT (SELECT last_update FROM public.orders WHERE id = 10)
                  > (SELECT last_update FROM public.orders WHERE id = 11)",
            &[],
        )
        .await
        .unwrap();
    assert!(newer.get::<_, bool>(0));

    // Sessions with session_replication_role = replica (logical-replication apply workers)
    // are stamped too: the trigger is ENABLE ALWAYS.
    client
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE public.orders SET note = 'replicated' WHERE id = 1;",
        )
        .await
        .unwrap();
    let stamped = client
        .query_one(
            "SELECT last_update > (SELECT last_update FROM public.orders WHERE id = 2)
               FROM public.orders WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    assert!(stamped.get::<_, bool>(0));
}

#[tokio::test]
async fn custom_column_names_and_quoted_tables_work() {
    let pg = TempCluster::new().unwrap();
    pg.psql(
        r#"CREATE SCHEMA "Sales";
           CREATE SCHEMA "Ferry Fns";
           CREATE TABLE "Sales"."Order Items" ("Id" int PRIMARY KEY, "Qty" int);
           CREATE TABLE "Sales"."select" (id int PRIMARY KEY);
           INSERT INTO "Sales"."Order Items" VALUES (1, 1);"#,
    )
    .unwrap();
    let items = TableName::new("Sales", "Order Items");
    let reserved = TableName::new("Sales", "select");
    let tables = [
        TimestampTable::new(items.clone(), "Changed At"),
        TimestampTable::new(reserved.clone(), "last_update"),
        TimestampTable::new(reserved.clone(), "Changed At"),
    ];
    let client = pg.admin_client().await;
    apply_setup(&client, "Ferry Fns", &tables).await.unwrap();
    let once = catalog_state(&pg, &items);
    let report = apply_setup(&client, "Ferry Fns", &tables).await.unwrap();
    assert_eq!(catalog_state(&pg, &items), once);
    assert_eq!(report.tables.len(), 3);
    assert!(
        report.tables.iter().all(|t| t.is_ready() && t.indexed),
        "{:?}",
        report.tables
    );
    assert!(
        once.contains(r#"function "Ferry Fns"."ferry_set_Changed At"()"#),
        "{once}"
    );
    assert!(
        once.contains(r#"CREATE INDEX "Order Items_Changed At_ferry_idx""#),
        "{once}"
    );
    assert!(
        once.contains(r#"CREATE TRIGGER "ferry_Changed At" BEFORE INSERT OR UPDATE"#),
        "{once}"
    );

    client
        .batch_execute(
            r#"BEGIN;
               UPDATE "Sales"."Order Items" SET "Qty" = 2;
               INSERT INTO "Sales"."select" VALUES (1);
               CREATE TEMP TABLE seen AS
                 SELECT (SELECT "Changed At" = now() FROM "Sales"."Order Items") AS items,
                        (SELECT "Changed At" = now() AND last_update = now()
                           FROM "Sales"."select") AS reserved;
               COMMIT;"#,
        )
        .await
        .unwrap();
    let seen = client
        .query_one("SELECT items, reserved FROM seen", &[])
        .await
        .unwrap();
    assert!(
        seen.get::<_, bool>(0),
        "the mixed-case column was not stamped"
    );
    assert!(
        seen.get::<_, bool>(1),
        "both columns of one table were not stamped"
    );
}

#[tokio::test]
async fn setup_works_for_a_role_owning_the_tables_without_superuser() {
    let pg = TempCluster::builder()
        .role(RoleSpec::new("app"))
        .role(RoleSpec::new("stranger"))
        .start()
        .unwrap();
    pg.psql(
        "CREATE SCHEMA app AUTHORIZATION app;
         CREATE TABLE app.accounts (id int PRIMARY KEY, balance int);
         ALTER TABLE app.accounts OWNER TO app;
         GRANT USAGE ON SCHEMA app TO stranger;
         GRANT SELECT, INSERT, UPDATE ON app.accounts TO stranger;",
    )
    .unwrap();
    let accounts = TableName::new("app", "accounts");
    let tables = [TimestampTable::new(accounts.clone(), "last_update")];

    // A role that may write the table but does not own it is refused, naming what it lacks,
    // and nothing is changed.
    let stranger = connect_as(&pg, "stranger").await;
    let err = apply_setup(&stranger, "app", &tables).await.unwrap_err();
    assert!(
        matches!(err, TimestampSetupError::Statement { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("own each table"), "{text}");
    assert!(text.contains("CREATE on schema \"app\""), "{text}");
    assert!(!err.is_transient());
    let untouched = inspect(&stranger, &tables).await.unwrap();
    assert!(untouched[0].column.is_none(), "{untouched:?}");

    // The owner, without superuser, sets it up.
    let app = connect_as(&pg, "app").await;
    let report = apply_setup(&app, "app", &tables).await.unwrap();
    assert!(report.tables[0].is_ready(), "{:?}", report.tables);

    // And the trigger stamps rows written by other roles.
    stranger
        .batch_execute(
            "BEGIN;
             INSERT INTO app.accounts (id, balance) VALUES (1, 0);
             CREATE TEMP TABLE seen AS SELECT last_update = now() AS ok FROM app.accounts;
             COMMIT;",
        )
        .await
        .unwrap();
    let ok = stranger
        .query_one("SELECT ok FROM seen", &[])
        .await
        .unwrap();
    assert!(ok.get::<_, bool>(0));
}
