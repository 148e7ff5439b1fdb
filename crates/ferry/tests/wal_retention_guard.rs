//! The WAL retention guard: past `warn_retained_wal` a warning; past `max_retained_wal` the
//! configured action: keep the slot (an error each check) or drop it, mark the pipeline to
//! copy again, and stop; the next run then copies again and ends equal.

#[path = "support/cli.rs"]
mod cli;

use std::time::Duration;

use cli::*;

const MINUTE: Duration = Duration::from_secs(60);

fn setup(sync: &str) -> Pipeline {
    Pipeline::new(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t SELECT g, 'v' FROM generate_series(1, 1000) g;",
        sync,
    )
}

#[test]
fn retention_over_the_maximum_is_kept_and_reported_by_default() {
    let run = setup("mode = \"full+incremental\"\nwarn_retained_wal = \"1B\"\nmax_retained_wal = \"2B\"\nretention_check_interval = \"200ms\"");
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());
    let sync = spawn(&["sync", "-c", cfg]);
    wait_equal(source, target, "public.t", MINUTE);
    source.psql("UPDATE public.t SET v = 'w'").unwrap();
    wait_equal(source, target, "public.t", MINUTE);
    std::thread::sleep(Duration::from_secs(1));
    signal(sync.id(), "TERM");
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("more WAL than max_retained_wal; kept"),
        "{}",
        text(&out)
    );
    assert_eq!(
        source
            .psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry'")
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
fn retention_over_the_maximum_drops_the_slot_when_configured_and_the_next_run_copies_again() {
    let run = setup("mode = \"full+incremental\"\nmax_retained_wal = \"2B\"\non_max_retained_wal = \"drop\"\nretention_check_interval = \"500ms\"");
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sync", "-c", cfg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dropped it"), "{stderr}");
    assert!(stderr.contains("copies the tables again"), "{stderr}");
    // The walsender of the ended run may hold a moment longer than the process lives.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let slots = loop {
        let slots = source
            .psql("SELECT string_agg(slot_name, ',') FROM pg_replication_slots")
            .unwrap();
        if slots.trim().is_empty() || std::time::Instant::now() > deadline {
            break slots;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(slots.trim(), "", "slots left");
    assert_eq!(
        target
            .psql("SELECT lsn FROM ferry.progress")
            .unwrap()
            .trim(),
        "0/0"
    );
    // Without the guard's maximum, the next run copies again and streams.
    let cfg = config(
        run.dir.path(),
        source,
        target,
        "mode = \"full+incremental\"",
    );
    let cfg = cfg.to_str().unwrap();
    source
        .psql("UPDATE public.t SET v = 'between' WHERE id <= 10")
        .unwrap();
    let sync = spawn(&["sync", "-c", cfg]);
    wait_equal(source, target, "public.t", MINUTE);
    signal(sync.id(), "TERM");
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn retention_over_the_warning_is_logged_once_and_nothing_else_happens() {
    let run = setup("mode = \"full+incremental\"\nwarn_retained_wal = \"1B\"\nretention_check_interval = \"200ms\"");
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());
    let sync = spawn(&["sync", "-c", cfg]);
    wait_equal(source, target, "public.t", MINUTE);
    std::thread::sleep(Duration::from_secs(1));
    signal(sync.id(), "TERM");
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("more WAL than warn_retained_wal").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("max_retained_wal"), "{stderr}");
}
