//! `ferry slots`: a killed consumer's slot is listed as orphaned and `cleanup` drops it
//! (and only it); an active slot is not dropped without `--force`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TempCluster;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
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

/// A logical consumer holding `slot` (pg_recvlogical), running until killed.
fn consumer(source: &TempCluster, slot: &str) -> std::process::Child {
    let child = Command::new(ferry_testkit::pg_bin_dir().join("pg_recvlogical"))
        .args([
            "-d",
            &source.admin_url(),
            "--slot",
            slot,
            "--create-slot",
            "--if-not-exists",
            "--start",
            "-P",
            "test_decoding",
            "-f",
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let active = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'");
    while source.psql(&active).unwrap_or_default().trim() != "t" {
        assert!(
            Instant::now() < deadline,
            "consumer of {slot} never became active"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn slots(source: &TempCluster) -> String {
    source
        .psql("SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn killed_consumers_slot_is_orphaned_and_cleaned_up_and_active_slots_need_force() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nurl = \"{}\"\nslot = \"ferry_live\"\n[target]\nurl = \"{}\"\n",
            source.admin_url(),
            target.admin_url()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    let mut live = consumer(&source, "ferry_live");
    let mut crashed = consumer(&source, "ferry_crashed");
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    source
        .psql("SELECT pg_create_logical_replication_slot('other_tool', 'test_decoding')")
        .unwrap();
    // Let the killed consumer's walsender notice and release its slot.
    let deadline = Instant::now() + Duration::from_secs(20);
    while source
        .psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'ferry_crashed'")
        .unwrap()
        .trim()
        != "f"
    {
        assert!(
            Instant::now() < deadline,
            "the killed consumer's slot stayed active"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = ferry(&["slots", "list", "-c", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let owner_of = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["slot"]["name"] == name)
            .map(|r| r["owner"].clone())
            .unwrap_or_else(|| panic!("{name} not listed: {}", text(&out)))
    };
    assert_eq!(owner_of("ferry_crashed")["kind"], "orphaned");
    assert_eq!(owner_of("ferry_live")["kind"], "pipeline");
    assert_eq!(owner_of("ferry_live")["pipeline"], "default");
    assert_eq!(owner_of("other_tool")["kind"], "other");
    let human = ferry(&["slots", "list", "-c", cfg]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("orphaned"),
        "{}",
        text(&human)
    );

    let out = ferry(&["slots", "cleanup", "-c", cfg, "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would drop \"ferry_crashed\""),
        "{}",
        text(&out)
    );
    assert_eq!(slots(&source), "ferry_crashed,ferry_live,other_tool");
    let out = ferry(&["slots", "cleanup", "-c", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 orphaned slots; freed"),
        "{}",
        text(&out)
    );
    assert_eq!(slots(&source), "ferry_live,other_tool");

    let out = ferry(&["slots", "drop", "ferry_live", "-c", cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    assert_eq!(slots(&source), "ferry_live,other_tool");
    let out = ferry(&["slots", "drop", "ferry_live", "--force", "-c", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(slots(&source), "other_tool");
    let _ = live.kill();
    let _ = live.wait();
}
