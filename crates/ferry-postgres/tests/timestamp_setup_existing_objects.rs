//! The timestamp set-up meets what a table already has: it refuses a column it cannot use
//! before changing anything, accepts a `timestamp without time zone` one with a warning,
//! reuses an existing index, and `inspect` (what `ferry check` reads) reports missing
//! triggers, disabled triggers, missing indexes and missing keys.

use ferry_core::TableName;
use ferry_postgres::check::Status;
use ferry_postgres::source::timestamps::{
    apply_setup, check_items, inspect, TimestampSetupError, TimestampTable, TriggerMode,
    TriggerState,
};
use ferry_testkit::TempCluster;

fn table(name: &str) -> TimestampTable {
    TimestampTable::new(TableName::new("public", name), "last_update")
}

#[tokio::test]
async fn wrong_column_type_is_refused_naming_table_and_column() {
    let pg = TempCluster::new().unwrap();
    pg.psql(
        "CREATE TABLE public.fine (id int PRIMARY KEY);
         CREATE TABLE public.notes (id int PRIMARY KEY, last_update text);",
    )
    .unwrap();
    let client = pg.admin_client().await;
    let tables = [table("fine"), table("notes")];
    let err = apply_setup(&client, "public", &tables).await.unwrap_err();
    match &err {
        TimestampSetupError::WrongColumnType {
            table,
            column,
            found,
        } => {
            assert_eq!(table, &TableName::new("public", "notes"));
            assert_eq!(column, "\"last_update\"");
            assert_eq!(found, "text");
        }
        other => panic!("expected WrongColumnType, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("\"public\".\"notes\""), "{text}");
    assert!(text.contains("timestamp_column"), "{text}");
    assert!(!err.is_transient());

    // Refused before anything changed: the good table got nothing either.
    let states = inspect(&client, &tables).await.unwrap();
    assert!(states[0].column.is_none(), "{states:?}");
    assert_eq!(states[0].trigger, TriggerState::Missing);
    let functions = pg
        .psql("SELECT count(*) FROM pg_proc WHERE proname LIKE 'ferry%'")
        .unwrap();
    assert_eq!(functions.trim(), "0");

    // A missing table is refused the same way.
    let err = apply_setup(&client, "public", &[table("fine"), table("gone")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TimestampSetupError::TableMissing { table } if table.name == "gone"),
        "{err:?}"
    );
}

#[tokio::test]
async fn timestamp_without_time_zone_is_accepted_with_a_warning() {
    let pg = TempCluster::new().unwrap();
    pg.psql("CREATE TABLE public.legacy (id int PRIMARY KEY, last_update timestamp);")
        .unwrap();
    let client = pg.admin_client().await;
    let report = apply_setup(&client, "public", &[table("legacy")])
        .await
        .unwrap();
    assert!(report.added_columns.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    assert!(warning.contains("\"public\".\"legacy\""), "{warning}");
    assert!(warning.contains("timestamp without time zone"), "{warning}");
    assert!(
        warning.contains("ALTER COLUMN \"last_update\" TYPE timestamp with time zone"),
        "{warning}"
    );
    assert!(report.tables[0].is_ready(), "{:?}", report.tables);
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO public.legacy (id) VALUES (1);
             CREATE TEMP TABLE seen AS
               SELECT last_update = now()::timestamp AS ok FROM public.legacy;
             COMMIT;",
        )
        .await
        .unwrap();
    let ok = client.query_one("SELECT ok FROM seen", &[]).await.unwrap();
    assert!(ok.get::<_, bool>(0));
}

#[tokio::test]
async fn an_existing_index_on_the_column_is_reused() {
    let pg = TempCluster::new().unwrap();
    pg.psql(
        "CREATE TABLE public.events (id int PRIMARY KEY, last_update timestamptz);
         CREATE INDEX events_by_time ON public.events (last_update, id);",
    )
    .unwrap();
    let client = pg.admin_client().await;
    let report = apply_setup(&client, "public", &[table("events")])
        .await
        .unwrap();
    assert!(
        !report
            .statements
            .iter()
            .any(|s| s.sql.contains("CREATE INDEX")),
        "{:#?}",
        report.statements
    );
    assert!(report.tables[0].is_ready() && report.tables[0].indexed);
    let indexes = pg
        .psql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'events'")
        .unwrap();
    assert_eq!(indexes.trim(), "events_by_time,events_pkey");
}

#[tokio::test]
async fn inspect_reports_missing_trigger_and_missing_key() {
    let pg = TempCluster::new().unwrap();
    pg.psql(
        "CREATE TABLE public.ready (id int PRIMARY KEY);
         CREATE TABLE public.keyless (id int);
         CREATE TABLE public.no_trigger (id int PRIMARY KEY);
         CREATE TABLE public.disabled (id int PRIMARY KEY);
         CREATE TABLE public.untouched (id int PRIMARY KEY);
         INSERT INTO public.ready SELECT generate_series(1, 100);",
    )
    .unwrap();
    let client = pg.admin_client().await;
    let set_up = [
        table("ready"),
        table("keyless"),
        table("no_trigger"),
        table("disabled"),
    ];
    let report = apply_setup(&client, "public", &set_up).await.unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("\"public\".\"keyless\" has no primary key")),
        "{:?}",
        report.warnings
    );
    pg.psql(
        "DROP TRIGGER ferry_last_update ON public.no_trigger;
         ALTER TABLE public.disabled DISABLE TRIGGER ferry_last_update;
         ANALYZE public.ready;",
    )
    .unwrap();

    let all = [
        table("ready"),
        table("keyless"),
        table("no_trigger"),
        table("disabled"),
        table("untouched"),
        table("gone"),
    ];
    let states = inspect(&client, &all).await.unwrap();
    let [ready, keyless, no_trigger, disabled, untouched, gone] = states.as_slice() else {
        panic!("{states:?}");
    };

    assert!(ready.is_ready(), "{ready:?}");
    assert_eq!(ready.primary_key, ["id"]);
    assert_eq!(ready.row_estimate, Some(100));

    assert!(keyless.primary_key.is_empty());
    assert!(keyless.trigger.stamps_every_change());
    assert!(
        !keyless.is_ready(),
        "a table without a key cannot be polled"
    );

    assert_eq!(no_trigger.trigger, TriggerState::Missing);
    assert!(no_trigger.indexed && no_trigger.column.is_some());
    assert!(!no_trigger.is_ready());

    assert_eq!(
        disabled.trigger,
        TriggerState::Present {
            mode: TriggerMode::Disabled,
            stamps_inserts_and_updates: true
        }
    );
    assert!(!disabled.is_ready());

    assert!(untouched.table_exists);
    assert!(untouched.column.is_none() && !untouched.indexed);
    assert_eq!(untouched.trigger, TriggerState::Missing);

    assert!(!gone.table_exists);

    // The same findings as `ferry check` items, each naming its table.
    let items = check_items(&states);
    let problem = |check: &str, status: Status, table: &str| {
        assert!(
            items.iter().any(|i| i.check == check
                && i.status == status
                && i.message.contains(&format!("\"public\".\"{table}\""))),
            "no {status} {check} item for {table} in {items:#?}"
        );
    };
    problem("timestamp_primary_key", Status::Fail, "keyless");
    problem("timestamp_trigger", Status::Fail, "no_trigger");
    problem("timestamp_trigger", Status::Fail, "disabled");
    problem("timestamp_column", Status::Fail, "untouched");
    problem("timestamp_column", Status::Fail, "gone");
    assert!(
        !items
            .iter()
            .any(|i| i.status != Status::Pass && i.message.contains("\"public\".\"ready\"")),
        "{items:#?}"
    );
}
