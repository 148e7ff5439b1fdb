//! `ferry demo`, the README's first command: it must run on nothing but the installed
//! PostgreSQL, replicate a live workload, find the target equal, and leave nothing behind.

#[path = "support/cli.rs"]
mod cli;

use cli::*;

#[test]
fn demo_replicates_a_live_workload_and_verifies_equal() {
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--duration", "4s", "--orders", "5000"])
        .env("FERRY_TESTKIT_DIR", scratch.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 tables equal, 0 different"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("the target equals the source"),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("live:"), "{}", text(&out));
    // Both clusters are gone: no data directory is left in the scratch space.
    let left: Vec<_> = walk(scratch.path())
        .into_iter()
        .filter(|p| p.ends_with("PG_VERSION") && !p.to_string_lossy().contains("template"))
        .collect();
    assert!(left.is_empty(), "cluster directories left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
