//! Timestamp mode as users run it: `ferry setup timestamps` prints and applies the trigger
//! set-up, `ferry check` reports the timestamp items, and `ferry sync` copies, polls, and
//! stops cleanly on SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TempCluster;

fn config(dir: &Path, source: &TempCluster, target: &TempCluster) -> String {
    let path = dir.join("ferry.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nurl = \"{}\"\ntables = [\"public.orders\"]\n\n[target]\nurl = \"{}\"\n\n\
             [sync]\nmode = \"timestamp\"\npoll_interval = \"200ms\"\n",
            source.admin_url(),
            target.admin_url()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

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

#[test]
fn setup_check_sync_and_sigterm() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.orders (id int PRIMARY KEY, note text); INSERT INTO public.orders VALUES (1, 'a');")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &source, &target);

    // Before the set-up, check names the missing column.
    let out = ferry(&["check", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("last_update"),
        "{}",
        text(&out)
    );

    let out = ferry(&["setup", "timestamps", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("CREATE TRIGGER"), "{script}");
    // Printing changed nothing.
    assert!(source
        .psql("SELECT last_update FROM public.orders")
        .is_err());

    let out = ferry(&["setup", "timestamps", "-c", &cfg, "--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = ferry(&["setup", "timestamps", "-c", &cfg, "--apply"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let out = ferry(&["check", "-c", &cfg, "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |check: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["check"] == check)
            .unwrap_or_else(|| panic!("no {check} item: {}", text(&out)))
            .clone()
    };
    assert_eq!(find("timestamp_deletes")["status"], "WARN");
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] != "FAIL"),
        "{}",
        text(&out)
    );
    assert!(items
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["check"] != "wal_level"));

    let sync = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sync", "-c", &cfg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    source.psql("INSERT INTO public.orders VALUES (2, 'b'); UPDATE public.orders SET note = 'a2' WHERE id = 1;").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = target
            .psql("SELECT string_agg(id || note, ',' ORDER BY id) FROM public.orders")
            .unwrap_or_default();
        if rows.trim() == "1a2,2b" {
            break;
        }
        assert!(Instant::now() < deadline, "target has {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    nix_kill(sync.id());
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// SIGTERM, as systemd sends it.
fn nix_kill(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}
