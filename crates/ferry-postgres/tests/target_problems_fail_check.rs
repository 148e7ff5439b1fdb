//! Target checks: privileges on existing tables, CREATE for missing ones, column
//! compatibility, the progress schema, and a missing database.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::{Side, Status};
use ferry_postgres::Plugin;
use ferry_testkit::{RoleSpec, TempCluster};
use support::*;

fn source() -> TempCluster {
    let source = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.orders (id int PRIMARY KEY, total numeric(10,2), note text);
             CREATE TABLE public.items (id int PRIMARY KEY, name varchar(20));
             CREATE SCHEMA sales;
             CREATE TABLE sales.leads (id int PRIMARY KEY);",
        )
        .unwrap();
    source
}

fn target_items(
    report: &ferry_postgres::check::CheckReport,
) -> Vec<ferry_postgres::check::CheckItem> {
    report
        .items
        .iter()
        .filter(|i| i.side == Side::Target)
        .cloned()
        .collect()
}

#[tokio::test]
async fn matching_target_with_privileges_passes() {
    let source = source();
    let target = TempCluster::new().unwrap();
    target
        .psql("CREATE TABLE public.orders (id int PRIMARY KEY, total numeric(10,2), note text);")
        .unwrap();
    let mut check = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    );
    check.tables = ferry_postgres::TableSelection::parse(&["*.*".to_owned()], &[]).unwrap();
    let report = check
        .run_with_target(&conn(&target, "postgres", None, "postgres"))
        .await;
    let items = target_items(&report);
    assert_no_failures(&items);
    one(&items, "privileges", Status::Pass);
    one(&items, "columns", Status::Pass);
    let create = one(&items, "create", Status::Pass);
    assert!(
        create.message.starts_with("2 tables are missing"),
        "{}",
        create.message
    );
    one(&items, "progress", Status::Pass);
}

#[tokio::test]
async fn target_role_without_write_privileges_gets_the_grant() {
    let source = source();
    let target = TempCluster::builder()
        .role(RoleSpec::new("writer"))
        .start()
        .unwrap();
    target
        .psql(
            "CREATE TABLE public.orders (id int PRIMARY KEY, total numeric(10,2), note text);
             CREATE TABLE public.items (id int PRIMARY KEY, name varchar(20));
             GRANT INSERT, UPDATE, DELETE, TRUNCATE ON public.items TO writer;
             GRANT SELECT, INSERT ON public.orders TO writer;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        )
        .unwrap();
    let mut check = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    );
    check.tables = ferry_postgres::TableSelection::parse(&["*.*".to_owned()], &[]).unwrap();
    let report = check
        .run_with_target(&conn(&target, "writer", None, "postgres"))
        .await;
    let items = target_items(&report);
    let privileges = one(&items, "privileges", Status::Fail);
    assert!(
        privileges.message.contains("\"public\".\"orders\""),
        "{}",
        privileges.message
    );
    assert!(
        !privileges.message.contains("items"),
        "{}",
        privileges.message
    );
    assert_eq!(
        privileges.fix.as_deref(),
        Some(
            "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON TABLE \"public\".\"orders\" TO \"writer\";"
        )
    );
    // sales.leads is missing and the schema does not exist: CREATE on the database is needed.
    let create = one(&items, "create", Status::Fail);
    assert!(create
        .fix
        .as_deref()
        .unwrap()
        .contains("GRANT CREATE ON DATABASE \"postgres\" TO \"writer\";"));
    let progress = one(&items, "progress", Status::Fail);
    assert!(progress
        .fix
        .as_deref()
        .unwrap()
        .contains("CREATE SCHEMA \"ferry\" AUTHORIZATION \"writer\";"));
}

#[tokio::test]
async fn incompatible_columns_are_named_with_the_alter_table() {
    let source = source();
    let target = TempCluster::new().unwrap();
    target
        .psql("CREATE TABLE public.orders (id int PRIMARY KEY, total text, extra int NOT NULL);")
        .unwrap();
    let report = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run_with_target(&conn(&target, "postgres", None, "postgres"))
    .await;
    let target = target_items(&report);
    let columns = items(&target, "columns");
    let missing = columns
        .iter()
        .find(|i| i.message.contains("no column \"note\""))
        .expect("missing column named");
    assert_eq!(missing.status, Status::Fail);
    assert_eq!(
        missing.fix.as_deref(),
        Some("ALTER TABLE \"public\".\"orders\" ADD COLUMN \"note\" text;")
    );
    let retyped = columns
        .iter()
        .find(|i| i.message.contains("\"total\""))
        .expect("type difference named");
    assert_eq!(retyped.status, Status::Warn);
    assert!(retyped
        .message
        .contains("numeric(10,2) on the source but text on the target"));
    let extra = columns
        .iter()
        .find(|i| i.message.contains("\"extra\""))
        .expect("extra NOT NULL column named");
    assert_eq!(extra.status, Status::Fail);
}

#[tokio::test]
async fn missing_target_database_gets_create_database() {
    let source = source();
    let target = TempCluster::new().unwrap();
    let report = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run_with_target(&conn(&target, "postgres", None, "app"))
    .await;
    let items = target_items(&report);
    let connect = one(&items, "connect", Status::Fail);
    assert_eq!(connect.fix.as_deref(), Some("CREATE DATABASE \"app\";"));
}

#[tokio::test]
async fn unreachable_target_says_where_it_looked() {
    let source = source();
    let target = TempCluster::new().unwrap();
    let params = conn(&target, "postgres", None, "postgres");
    target.stop().unwrap();
    let report = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run_with_target(&params)
    .await;
    let items = target_items(&report);
    let connect = one(&items, "connect", Status::Fail);
    assert!(
        connect
            .message
            .contains(&format!("127.0.0.1:{}", target.port())),
        "{}",
        connect.message
    );
    assert!(connect.fix.as_deref().unwrap().contains("listen_addresses"));
}
