//! `ferry peek`: decoded changes appear as they happen, the limit ends the run, and no slot
//! or temporary publication is left behind; with each of the three plugins.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TempCluster;

#[test]
fn peek_prints_changes_and_leaves_nothing_behind() {
    peek_with("pgoutput");
}

#[test]
fn peek_with_wal2json() {
    peek_with("wal2json");
}

#[test]
fn peek_with_decoderbufs() {
    peek_with("decoderbufs");
}

fn peek_with(plugin: &str) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.orders (id int PRIMARY KEY, note text);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n",
            source.admin_url(),
            target.admin_url()
        ),
    )
    .unwrap();
    let peek = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "peek",
            "-c",
            cfg.to_str().unwrap(),
            "--limit",
            "3",
            "--format",
            "json",
            "--plugin",
            plugin,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while source
        .psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'ferry_peek_%' AND active")
        .unwrap()
        .trim()
        != "1"
    {
        assert!(Instant::now() < deadline, "peek never started streaming");
        std::thread::sleep(Duration::from_millis(100));
    }
    source
        .psql(
            "INSERT INTO public.orders VALUES (1, 'first');
             UPDATE public.orders SET note = 'second' WHERE id = 1;
             DELETE FROM public.orders WHERE id = 1;",
        )
        .unwrap();
    let out = peek.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changes: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|c: &serde_json::Value| c["op"] != "begin" && c["op"] != "commit")
        .collect();
    assert_eq!(changes.len(), 3, "{stdout}");
    assert_eq!(changes[0]["op"], "insert");
    assert_eq!(changes[0]["table"], "\"public\".\"orders\"");
    assert_eq!(changes[0]["new"]["note"], "first");
    assert_eq!(changes[1]["op"], "update");
    assert_eq!(changes[1]["new"]["note"], "second");
    assert_eq!(changes[2]["op"], "delete");
    assert_eq!(changes[2]["key"]["id"], "1");
    // The server drops the temporary slot once it sees the connection gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = source
            .psql("SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)")
            .unwrap();
        if left.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "peek left a slot or a publication behind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
