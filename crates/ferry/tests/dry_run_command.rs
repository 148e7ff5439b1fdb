//! `ferry sync --dry-run` prints what a run would do at its start, or why it would refuse,
//! and changes nothing; `ferry status` shows the same plan as its next start.

#[path = "support/cli.rs"]
mod cli;

use cli::*;

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let run = Pipeline::new(
        "CREATE TABLE public.t (id int PRIMARY KEY);
         CREATE TABLE public.other (id int PRIMARY KEY);
         CREATE PUBLICATION ferry FOR TABLE public.other;",
        "mode = \"full+incremental\"",
    );
    let (source, cfg) = (&run.source, run.cfg.as_str());
    let out = ferry(&["sync", "-c", cfg, "--dry-run"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("plan of pipeline"), "{shown}");
    assert!(
        shown.contains("publication \"ferry\": add ONLY \"public\".\"t\""),
        "{shown}"
    );
    assert!(shown.contains("slot \"ferry\": create"), "{shown}");
    let slots = source
        .psql("SELECT count(*) FROM pg_replication_slots")
        .unwrap();
    assert_eq!(slots.trim(), "0", "a dry run created a slot");
    let published = source
        .psql(
            "SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'ferry'",
        )
        .unwrap();
    assert_eq!(
        published.trim(),
        "other",
        "a dry run changed the publication"
    );

    let status = ferry(&["status", "-c", cfg, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let next = json[0]["next_start"].to_string();
    assert!(next.contains("add ONLY"), "{json}");
}

#[test]
fn dry_run_names_what_the_run_would_refuse() {
    let run = Pipeline::new(
        "CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY);",
        "mode = \"full+incremental\"",
    );
    let out = ferry(&["sync", "-c", &run.cfg, "--dry-run"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("would not start") && shown.contains("UNLOGGED"),
        "{shown}"
    );
    assert!(shown.contains("SET LOGGED"), "{shown}");
}
