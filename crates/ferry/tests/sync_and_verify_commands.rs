//! `ferry sync` (mode = "full") and `ferry verify` as users run them: the binary, a config
//! file, real clusters, output and exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

use ferry_testkit::TempCluster;

fn config(dir: &Path, source: &TempCluster, target: &TempCluster, sync: &str) -> PathBuf {
    let path = dir.join("ferry.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nurl = \"{}\"\n\n[target]\nurl = \"{}\"\n\n[sync]\n{sync}\n",
            source.admin_url(),
            target.admin_url()
        ),
    )
    .unwrap();
    path
}

fn ferry(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

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

#[test]
fn streaming_survives_a_source_restart_and_stops_cleanly_on_sigterm() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'copied');")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &source, &target, "mode = \"full+incremental\"");
    let sync = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sync", "-c", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = |sql: &str, expected: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if target.psql(sql).unwrap_or_default().trim() == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql} never gave {expected}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    until("SELECT count(*) FROM public.t", "1");
    source
        .psql("INSERT INTO public.t VALUES (2, 'streamed')")
        .unwrap();
    until("SELECT count(*) FROM public.t", "2");
    source.restart().unwrap();
    source
        .psql("INSERT INTO public.t VALUES (3, 'after restart')")
        .unwrap();
    until("SELECT count(*) FROM public.t", "3");
    std::process::Command::new("kill")
        .args(["-TERM", &sync.id().to_string()])
        .status()
        .unwrap();
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retrying"),
        "{}",
        text(&out)
    );
}
