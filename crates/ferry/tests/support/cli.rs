//! Helpers for tests that run the `ferry` binary: config files, runs, signals, waiting for
//! the target, and reading a process's memory from /proc.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TempCluster;

/// Writes `ferry.toml` in `dir` for one pipeline from `source` to `target` with the given
/// `[sync]` lines.
pub fn config(dir: &Path, source: &TempCluster, target: &TempCluster, sync: &str) -> PathBuf {
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

/// Runs `ferry` to completion.
pub fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

/// Starts `ferry` in the background with its output captured.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Both streams of a finished run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sends `signal` (e.g. "TERM", "KILL") to `pid`.
pub fn signal(pid: u32, signal: &str) {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
}

/// Waits (up to `timeout`) until `sql` on `cluster` prints `expected`.
pub fn wait_for(cluster: &TempCluster, sql: &str, expected: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = cluster.psql(sql).unwrap_or_default();
        if got.trim() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} gave {got:?}, never {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Row count and an order-independent digest of `table`, from the server.
pub fn digest(cluster: &TempCluster, table: &str) -> String {
    cluster
        .psql(&format!(
            "SET extra_float_digits = 3; SELECT count(*) || ' ' || md5(coalesce(string_agg(h, ',' ORDER BY h), '')) \
             FROM (SELECT md5(t::text) AS h FROM {table} t) d"
        ))
        .unwrap_or_default()
}

/// Waits (up to `timeout`) until `table` has the same rows on both clusters.
pub fn wait_equal(source: &TempCluster, target: &TempCluster, table: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (s, t) = (digest(source, table), digest(target, table));
        if s == t {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} never converged: source {s:?}, target {t:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Peak resident memory of a running process in kB (`VmHWM` in /proc/PID/status).
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A source with `schema`, an empty target, and a `ferry.toml` with the `sync` lines.
pub struct Pipeline {
    pub source: TempCluster,
    pub target: TempCluster,
    pub dir: tempfile::TempDir,
    pub cfg: String,
}

impl Pipeline {
    pub fn new(schema: &str, sync: &str) -> Self {
        let source = TempCluster::new().unwrap();
        let target = TempCluster::new().unwrap();
        source.psql(schema).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &source, &target, sync)
            .to_str()
            .unwrap()
            .to_owned();
        Pipeline {
            source,
            target,
            dir,
            cfg,
        }
    }
}
