//! `ferry status` reads where a pipeline stands from the target and the source: streaming
//! while a sync runs, stopped after it, and a missing slot (exit 1, with the resync fix and
//! the error the last run stored), and a data error stored without the row value it quotes.

#[path = "support/cli.rs"]
mod cli;

use std::time::Duration;

use cli::*;

fn status(cfg: &str) -> (Option<i32>, serde_json::Value) {
    let out = ferry(&["status", "-c", cfg, "--json"]);
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), json)
}

#[test]
fn status_follows_a_pipeline_from_streaming_to_a_missing_slot() {
    let run = Pipeline::new("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t SELECT generate_series(1, 100);", "mode = \"full+incremental\"");
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());

    let (code, before) = status(cfg);
    assert_eq!(code, Some(0));
    assert_eq!(before[0]["phase"], "not started", "{before}");

    let sync = spawn(&["sync", "-c", cfg]);
    wait_equal(source, target, "public.t", Duration::from_secs(60));
    source.psql("INSERT INTO public.t VALUES (1000)").unwrap();
    wait_equal(source, target, "public.t", Duration::from_secs(60));
    let (code, running) = status(cfg);
    assert_eq!(code, Some(0));
    let s = &running[0];
    assert_eq!(s["phase"], "streaming", "{s}");
    assert_eq!(s["slot"]["active"], true, "{s}");
    assert_eq!(s["tables"], 1, "{s}");
    assert!(s["applied_lsn"].as_str().is_some_and(|l| l != "0/0"), "{s}");
    assert!(s["lag_bytes"].as_i64().is_some(), "{s}");
    assert!(s["source_commit_time"].as_str().is_some(), "{s}");
    assert!(s["changes_applied"].as_i64().is_some_and(|c| c >= 1), "{s}");
    assert!(s["changes_per_second"].as_f64().is_some(), "{s}");

    signal(sync.id(), "TERM");
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    wait_for(
        source,
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'ferry'",
        "f",
        Duration::from_secs(30),
    );
    assert_eq!(status(cfg).1[0]["phase"], "stopped");

    // The slot goes: the next run stops with the resync fix, stored as the last error.
    source
        .psql("SELECT pg_drop_replication_slot('ferry')")
        .unwrap();
    let out = ferry(&["sync", "-c", cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let (code, gone) = status(cfg);
    assert_eq!(code, Some(1));
    let s = &gone[0];
    assert_eq!(s["phase"], "slot missing", "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist")),
        "{s}"
    );
    let out = ferry(&["status", "-c", cfg]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resync"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_shows_the_copy_of_each_table_while_copying() {
    let run = Pipeline::new("CREATE TABLE public.big (id int PRIMARY KEY, pad text); INSERT INTO public.big SELECT g, repeat('x', 200) FROM generate_series(1, 1500000) g;", "mode = \"full+incremental\"");
    let (target, cfg) = (&run.target, run.cfg.as_str());
    let sync = spawn(&["sync", "-c", cfg]);
    // Stopped for good in the middle of its copy: the 0/0 marker stays.
    wait_for(
        target,
        "SELECT pg_table_size(to_regclass('public.big')) > 8192",
        "t",
        Duration::from_secs(60),
    );
    signal(sync.id(), "KILL");
    let _ = sync.wait_with_output();
    let (_, copying) = status(cfg);
    let s = &copying[0];
    assert_eq!(s["phase"], "copying", "{s}");
    let table = &s["copy_progress"][0];
    assert_eq!(table["table"], "\"public\".\"big\"", "{s}");
    assert!(table["target_bytes"].as_i64().unwrap() > 0, "{s}");
    assert!(table["source_bytes"].as_i64().unwrap() > 0, "{s}");
    let out = ferry(&["status", "-c", cfg]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("copy:       \"public\".\"big\""),
        "{}",
        text(&out)
    );
}

/// A change the target refuses as bad data (22P02) stops the run; the error stored for
/// `ferry status` and printed on stderr names the SQLSTATE but never the row's value.
#[test]
fn a_data_error_is_stored_and_shown_without_the_row_value() {
    let run = Pipeline::new(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, '1');",
        "mode = \"full+incremental\"",
    );
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());
    let sync = spawn(&["sync", "-c", cfg]);
    wait_equal(source, target, "public.t", Duration::from_secs(60));
    target
        .psql("ALTER TABLE public.t ALTER COLUMN v TYPE int USING v::int")
        .unwrap();
    source
        .psql("INSERT INTO public.t VALUES (2, 'secret-42')")
        .unwrap();
    let out = sync.wait_with_output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("22P02"), "{shown}");
    assert!(!shown.contains("secret-42"), "{shown}");
    let (_, stopped) = status(cfg);
    let last_error = stopped[0]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("22P02"), "{stopped}");
    assert!(!last_error.contains("secret-42"), "{stopped}");
}
