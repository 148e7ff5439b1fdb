//! `ferry check` as users run it: the binary, a config file, real clusters; text and JSON
//! output and the exit status.

use std::path::Path;
use std::process::Output;

use ferry_testkit::{RoleSpec, TempCluster};

fn write_config(
    dir: &Path,
    source: &TempCluster,
    source_user: &str,
    target: &TempCluster,
) -> std::path::PathBuf {
    let path = dir.join("ferry.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nurl = \"{}?sslmode=disable\"\nslot = \"ferry_cli\"\n\n[target]\nurl = \"{}\"\n",
            source.url(source_user, None, "postgres"),
            target.admin_url()
        ),
    )
    .unwrap();
    path
}

fn ferry(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap()
}

#[test]
fn check_fails_with_exit_status_1_naming_wal_level_and_its_fix() {
    let source = TempCluster::builder()
        .setting("wal_level", "replica")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &source, "postgres", &target);
    let out = ferry(&["check", "-c", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  wal_level is replica, not logical"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: ALTER SYSTEM SET wal_level = logical;"),
        "{stdout}"
    );
    assert!(
        stdout.lines().last().unwrap().contains("failed"),
        "{stdout}"
    );
}

#[test]
fn check_passes_with_exit_status_0_and_prints_json() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("ferry").replication().superuser())
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY)")
        .unwrap();
    let target = TempCluster::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &source, "ferry", &target);
    let out = ferry(&["check", "-c", config.to_str().unwrap(), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let items: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let items = items.as_array().unwrap();
    assert!(items.len() > 10, "{stdout}");
    assert!(items.iter().all(|i| i["status"] != "FAIL"), "{stdout}");
    assert!(items.iter().all(|i| i["pipeline"] == "default"));
    assert!(items.iter().any(|i| i["side"] == "target"));
    assert!(items
        .iter()
        .any(|i| i["check"] == "plugin" && i["status"] == "PASS"));
}

#[test]
fn check_against_a_role_without_replication_says_so() {
    let source = TempCluster::builder()
        .role(RoleSpec::new("reader"))
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &source, "reader", &target);
    let out = ferry(&["check", "-c", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  role \"reader\" may not replicate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ALTER ROLE \"reader\" REPLICATION;"),
        "{stdout}"
    );
}

#[test]
fn bad_config_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(
        &path,
        "[source]\nurl = \"postgres://u:hunter2@h/d\"\nplugin = \"wal2jsn\"\n[target]\nurl = \"postgres://t/d\"\n",
    )
    .unwrap();
    let out = ferry(&["check", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source.plugin: unknown plugin \"wal2jsn\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let missing = ferry(&[
        "check",
        "-c",
        dir.path().join("nope.toml").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config file"));
}
