//! `ferry sync` (mode = "full") and `ferry verify` as users run them: the binary, a config
//! file, real clusters, output and exit codes.

#[path = "support/cli.rs"]
mod cli;

use cli::*;
use ferry_testkit::TempCluster;

#[test]
fn sync_copies_then_verify_agrees_and_then_spots_a_change() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.orders (id int PRIMARY KEY, note text);
             INSERT INTO public.orders SELECT g, 'n' || g FROM generate_series(1, 1000) g;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &source,
        &target,
        "mode = \"full\"\nsnapshot_workers = 2",
    );
    let cfg = cfg.to_str().unwrap();

    let out = ferry(&["sync", "-c", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("copied 1 table, 1000 rows"),
        "{}",
        text(&out)
    );
    // Without a terminal, progress goes to the log, never row values.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("table copied"), "{}", text(&out));
    assert!(!stderr.contains("n999"), "{}", text(&out));

    let out = ferry(&["verify", "-c", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 table equal"),
        "{}",
        text(&out)
    );

    target
        .psql("UPDATE public.orders SET note = 'changed' WHERE id = 42")
        .unwrap();
    let out = ferry(&["verify", "-c", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let differences = report["tables"][0]["differences"].to_string();
    assert!(differences.contains("42"), "{differences}");
}

#[test]
fn sync_refuses_a_non_empty_target_table_without_on_existing() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);")
        .unwrap();
    target
        .psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (7);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &source, &target, "mode = \"full\"");
    let out = ferry(&["sync", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"public\".\"t\""), "{stderr}");
    assert!(stderr.contains("on_existing"), "{stderr}");
    // Nothing was copied.
    assert_eq!(target.psql("SELECT id FROM public.t").unwrap().trim(), "7");

    let cfg = config(
        dir.path(),
        &source,
        &target,
        "mode = \"full\"\non_existing = \"truncate\"",
    );
    let out = ferry(&["sync", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(target.psql("SELECT id FROM public.t").unwrap().trim(), "1");
}
