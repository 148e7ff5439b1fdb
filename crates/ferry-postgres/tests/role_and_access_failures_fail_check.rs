//! Roles that lack what sync needs fail `check` with the GRANT or ALTER ROLE that fixes it:
//! no REPLICATION, no SELECT on a table, and pg_hba.conf rejecting the connection.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::{Auth, RoleSpec, TempCluster};
use support::*;

#[tokio::test]
async fn role_without_replication_is_told_to_alter_role() {
    let source = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(RoleSpec::new("reader").password("pw"))
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); GRANT SELECT ON public.t TO reader;")
        .unwrap();
    let findings = Source::new(
        conn(&source, "reader", Some("pw"), "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let role = one(&findings.items, "role", Status::Fail);
    assert!(
        role.message.contains("\"reader\" may not replicate"),
        "{}",
        role.message
    );
    assert!(role
        .fix
        .as_deref()
        .unwrap()
        .contains("ALTER ROLE \"reader\" REPLICATION;"));
    // The real replication connection is refused too, and says why.
    let repl = one(&findings.items, "replication_connection", Status::Fail);
    assert!(
        repl.fix.as_deref().unwrap().contains("REPLICATION"),
        "{:?}",
        repl.fix
    );
}

#[tokio::test]
async fn replication_role_passes_role_and_connection_checks() {
    let source = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(RoleSpec::new("ferry").password("pw").replication())
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); GRANT SELECT ON public.t TO ferry;")
        .unwrap();
    let findings = Source::new(
        conn(&source, "ferry", Some("pw"), "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    one(&findings.items, "role", Status::Pass);
    one(&findings.items, "replication_connection", Status::Pass);
    one(&findings.items, "plugin", Status::Pass);
    one(&findings.items, "select", Status::Pass);
}

#[tokio::test]
async fn missing_select_grant_is_named_with_the_grant() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("ferry").replication())
        .start()
        .unwrap();
    source
        .psql(
            "CREATE TABLE public.open (id int PRIMARY KEY);
             CREATE TABLE public.secret (id int PRIMARY KEY);
             GRANT SELECT ON public.open TO ferry;",
        )
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let select = one(&findings.items, "select", Status::Fail);
    assert!(
        select.message.contains("\"public\".\"secret\""),
        "{}",
        select.message
    );
    assert!(!select.message.contains("\"open\""), "{}", select.message);
    assert_eq!(
        select.fix.as_deref(),
        Some("GRANT SELECT ON TABLE \"public\".\"secret\" TO \"ferry\";")
    );
}

#[tokio::test]
async fn pg_hba_rejection_names_pg_hba_conf() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("ferry").replication())
        .hba_lines(vec![
            "host all ferry 127.0.0.1/32 reject".to_owned(),
            "host all all 127.0.0.1/32 trust".to_owned(),
        ])
        .start()
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let connect = one(&findings.items, "connect", Status::Fail);
    assert!(
        connect.message.contains("pg_hba.conf"),
        "{}",
        connect.message
    );
    let fix = connect.fix.as_deref().unwrap();
    assert!(
        fix.contains("pg_hba.conf") && fix.contains("pg_reload_conf()"),
        "{fix}"
    );
}

#[tokio::test]
async fn wrong_password_is_reported_without_the_password() {
    let source = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(RoleSpec::new("ferry").password("right-one").replication())
        .start()
        .unwrap();
    let findings = Source::new(
        conn(&source, "ferry", Some("wrong-one"), "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let connect = one(&findings.items, "connect", Status::Fail);
    let text = render(&findings.items);
    assert!(
        !text.contains("wrong-one") && !text.contains("right-one"),
        "{text}"
    );
    assert!(
        connect.why.as_deref().unwrap().contains("password"),
        "{text}"
    );
}
