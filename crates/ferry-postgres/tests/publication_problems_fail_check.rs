//! The pgoutput publication: missing and not creatable by this role, missing a table, not
//! publishing every operation; and the cases that pass because sync can fix them itself.
//! Also what the patterns select: a pattern matching nothing, an UNLOGGED table.

#[path = "support/check_support.rs"]
mod support;

use ferry_postgres::check::Status;
use ferry_postgres::Plugin;
use ferry_testkit::{RoleSpec, TempCluster};
use support::*;

const TABLES: &str = "CREATE TABLE public.a (id int PRIMARY KEY);
                      CREATE TABLE public.b (id int PRIMARY KEY);
                      GRANT SELECT ON public.a, public.b TO ferry;";

fn cluster() -> TempCluster {
    let source = TempCluster::builder()
        .role(RoleSpec::new("ferry").replication())
        .start()
        .unwrap();
    source.psql(TABLES).unwrap();
    source
}

#[tokio::test]
async fn missing_publication_that_role_cannot_create_gives_create_publication() {
    let source = cluster();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let publication = one(&findings.items, "publication", Status::Fail);
    assert!(
        publication.message.contains("does not exist"),
        "{}",
        publication.message
    );
    assert_eq!(
        publication.fix.as_deref(),
        Some(
            "as the tables' owner or a superuser:\n\
             CREATE PUBLICATION \"ferry_test\" FOR TABLE ONLY \"public\".\"a\", ONLY \"public\".\"b\";"
        )
    );
}

#[tokio::test]
async fn missing_publication_passes_when_the_role_may_create_it() {
    let source = cluster();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let publication = one(&findings.items, "publication", Status::Pass);
    assert!(publication.message.contains("sync creates it"));
}

#[tokio::test]
async fn publication_lacking_a_table_gives_alter_publication() {
    let source = cluster();
    source
        .psql(&format!(
            "CREATE PUBLICATION {PUBLICATION} FOR TABLE public.a"
        ))
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let publication = one(&findings.items, "publication", Status::Fail);
    assert!(
        publication.message.contains("lacks \"public\".\"b\""),
        "{}",
        publication.message
    );
    assert!(publication
        .fix
        .as_deref()
        .unwrap()
        .contains("ALTER PUBLICATION \"ferry_test\" ADD TABLE ONLY \"public\".\"b\";"));
}

#[tokio::test]
async fn publication_without_deletes_fails() {
    let source = cluster();
    source
        .psql(&format!(
            "CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES WITH (publish = 'insert, update')"
        ))
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let publication = one(&findings.items, "publication", Status::Fail);
    assert!(publication
        .fix
        .as_deref()
        .unwrap()
        .contains("publish = 'insert, update, delete, truncate'"));
}

#[tokio::test]
async fn all_tables_publication_covers_everything() {
    let source = cluster();
    source
        .psql(&format!("CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES"))
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    one(&findings.items, "publication", Status::Pass);
}

#[tokio::test]
async fn patterns_matching_nothing_fail() {
    let source = cluster();
    let mut check = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput);
    check.tables = ferry_postgres::TableSelection::parse(&["sales.*".to_owned()], &[]).unwrap();
    let findings = check.run().await;
    let tables = one(&findings.items, "tables", Status::Fail);
    assert!(
        tables.message.contains("matches no table"),
        "{}",
        tables.message
    );
}

/// A publication made beforehand that lacks a selected table: sync extends it (the table's
/// changes would otherwise never arrive), and check says so.
#[tokio::test]
async fn a_publication_made_beforehand_is_extended_by_sync_and_check_says_so() {
    let source = cluster();
    source
        .psql(&format!(
            "CREATE PUBLICATION {PUBLICATION} FOR TABLE public.a"
        ))
        .unwrap();
    let findings = Source::new(
        conn(&source, "postgres", None, "postgres"),
        Plugin::Pgoutput,
    )
    .run()
    .await;
    let publication = one(&findings.items, "publication", Status::Warn);
    assert!(
        publication
            .message
            .contains("lacks \"public\".\"b\"; sync adds them"),
        "{}",
        publication.message
    );
}

/// `"Odd Schema.*"` unquoted folds to `odd schema.*` and matches nothing: a warning names
/// the pattern and the quoted form that would match, while the other patterns still select.
#[tokio::test]
async fn a_pattern_that_matches_nothing_is_named_with_its_quoted_form() {
    let source = cluster();
    source
        .psql(
            "CREATE SCHEMA \"Odd Schema\"; CREATE TABLE \"Odd Schema\".t (id int PRIMARY KEY);
             GRANT USAGE ON SCHEMA \"Odd Schema\" TO ferry; GRANT SELECT ON \"Odd Schema\".t TO ferry;",
        )
        .unwrap();
    let mut check = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput);
    check.tables = ferry_postgres::TableSelection::parse(
        &["public.*".to_owned(), "Odd Schema.*".to_owned()],
        &[],
    )
    .unwrap();
    let findings = check.run().await;
    let warning = one(&findings.items, "tables", Status::Warn);
    assert!(
        warning.message.contains("\"odd schema.*\"") || warning.message.contains("Odd Schema"),
        "{}",
        warning.message
    );
    let fix = warning.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("\"Odd Schema\".*"), "{fix}");
    one(&findings.items, "tables", Status::Pass);
}

#[tokio::test]
async fn an_unlogged_table_fails_with_set_logged() {
    let source = cluster();
    source
        .psql("CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY); GRANT SELECT ON public.scratch TO ferry;")
        .unwrap();
    let findings = Source::new(conn(&source, "ferry", None, "postgres"), Plugin::Pgoutput)
        .run()
        .await;
    let unlogged = one(&findings.items, "unlogged", Status::Fail);
    assert!(
        unlogged.message.contains("\"public\".\"scratch\""),
        "{}",
        unlogged.message
    );
    assert!(unlogged
        .fix
        .as_deref()
        .unwrap()
        .contains("ALTER TABLE \"public\".\"scratch\" SET LOGGED;"));
}
