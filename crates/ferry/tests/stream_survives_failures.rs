//! `ferry sync` in `full+incremental` mode through what production does to it: the source
//! restarting, the target going away, SIGTERM, SIGKILL at random moments under a write load,
//! and one huge transaction. Each test ends with the target equal to the source.

#[path = "support/cli.rs"]
mod cli;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli::*;
use ferry_testkit::TempCluster;

const SCHEMA: &str = "
    CREATE TABLE public.accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text);
    CREATE TABLE public.events (account bigint, amount bigint);
    INSERT INTO public.accounts SELECT g, 1000, 'initial' FROM generate_series(1, 20000) g;";

const MINUTE: Duration = Duration::from_secs(60);

/// Moves money between accounts and logs each move in the keyless `events` table (where a
/// lost or repeated transaction changes the digest), from a thread, until stopped. Returns
/// the number of moves. Errors (the source restarting) are retried.
fn start_writer(source: &TempCluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let url = source.admin_url();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                tokio::spawn(connection);
                while !stop.load(Ordering::Relaxed) {
                    let m = n + 1;
                    let (from, to) = (m % 20000 + 1, (m * 7) % 20000 + 1);
                    let sql = format!(
                        "BEGIN;
                         UPDATE public.accounts SET balance = balance - 1 WHERE id = {from};
                         UPDATE public.accounts SET balance = balance + 1, note = 'moved {m}' WHERE id = {to};
                         INSERT INTO public.events VALUES ({from}, -1), ({to}, 1);
                         COMMIT"
                    );
                    if client.batch_execute(&sql).await.is_err() {
                        break;
                    }
                    n = m;
                }
            }
            n
        })
    })
}

fn sync_config(dir: &tempfile::TempDir, source: &TempCluster, target: &TempCluster) -> String {
    config(
        dir.path(),
        source,
        target,
        "mode = \"full+incremental\"\nheartbeat_interval = \"1s\"",
    )
    .to_str()
    .unwrap()
    .to_owned()
}

fn stop_and_check_exit(child: std::process::Child) -> String {
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    text(&out)
}

/// Clusters with [`SCHEMA`], and `ferry sync` running on them past its copy.
struct Running {
    source: TempCluster,
    target: TempCluster,
    _dir: tempfile::TempDir,
    cfg: String,
    sync: std::process::Child,
}

impl Running {
    fn start() -> Self {
        let source = TempCluster::new().unwrap();
        let target = TempCluster::new().unwrap();
        source.psql(SCHEMA).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = sync_config(&dir, &source, &target);
        let sync = spawn(&["sync", "-c", &cfg]);
        wait_equal(&source, &target, "public.accounts", MINUTE);
        Running {
            source,
            target,
            _dir: dir,
            cfg,
            sync,
        }
    }

    /// Runs the writer while `during` happens; then waits until the target converges.
    fn under_load(&self, during: impl FnOnce()) {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = start_writer(&self.source, stop.clone());
        during();
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() > 10, "the writer barely ran");
        wait_equal(&self.source, &self.target, "public.accounts", MINUTE);
        wait_equal(&self.source, &self.target, "public.events", MINUTE);
    }
}

#[test]
fn source_restart_reconnects() {
    let run = Running::start();
    run.under_load(|| {
        std::thread::sleep(Duration::from_millis(500));
        run.source.restart().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let output = stop_and_check_exit(run.sync);
    assert!(output.contains("retrying"), "{output}");
}

#[test]
fn target_outage_retries() {
    let run = Running::start();
    run.under_load(|| {
        std::thread::sleep(Duration::from_millis(300));
        run.target.stop().unwrap();
        // The source keeps writing while the target is down.
        std::thread::sleep(Duration::from_secs(3));
        run.target.start().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let output = stop_and_check_exit(run.sync);
    assert!(output.contains("retrying"), "{output}");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let run = Running::start();
    let (source, target) = (&run.source, &run.target);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(source, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    // Stopped while changes are flowing: exit 0, promptly, nothing left open.
    let asked = Instant::now();
    let output = stop_and_check_exit(run.sync);
    assert!(asked.elapsed() < Duration::from_secs(10), "{output}");
    assert!(output.contains("stopped"), "{output}");
    assert_eq!(
        target
            .psql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .unwrap()
            .trim(),
        "0"
    );
    // The slot was let go and confirmed up to what the target holds.
    wait_for(
        source,
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'ferry'",
        "f",
        MINUTE,
    );
    let stored = target
        .psql("SELECT lsn FROM ferry.progress")
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        source
            .psql(&format!(
                "SELECT confirmed_flush_lsn >= '{stored}' FROM pg_replication_slots WHERE slot_name = 'ferry'"
            ))
            .unwrap()
            .trim(),
        "t"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // The next run continues from there.
    let sync = spawn(&["sync", "-c", &run.cfg]);
    wait_equal(source, target, "public.accounts", MINUTE);
    wait_equal(source, target, "public.events", MINUTE);
    stop_and_check_exit(sync);
}

#[test]
fn kill_and_resume_loses_nothing() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    // Enough to copy that the first kills land inside the copy.
    source
        .psql(
            "CREATE TABLE public.bulk (id bigint PRIMARY KEY, payload text);
             INSERT INTO public.bulk SELECT g, md5(g::text) FROM generate_series(1, 400000) g;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = sync_config(&dir, &source, &target);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&source, stop.clone());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut state = seed | 1;
    let mut random_ms = |low: u64, high: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        low + state % (high - low)
    };
    // Two kills early (in the copy or right after it), four at random while streaming.
    let delays: Vec<u64> = [random_ms(200, 600), random_ms(600, 1500)]
        .into_iter()
        .chain((0..4).map(|_| random_ms(300, 3000)))
        .collect();
    for delay in &delays {
        let sync = spawn(&["sync", "-c", &cfg]);
        std::thread::sleep(Duration::from_millis(*delay));
        signal(sync.id(), "KILL");
        let _ = sync.wait_with_output();
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let moves = writer.join().unwrap();
    assert!(moves > 100, "the writer made only {moves} moves");
    let sync = spawn(&["sync", "-c", &cfg]);
    wait_equal(&source, &target, "public.bulk", MINUTE * 2);
    wait_equal(&source, &target, "public.accounts", MINUTE * 2);
    wait_equal(&source, &target, "public.events", MINUTE * 2);
    stop_and_check_exit(sync);
    let out = ferry(&["verify", "-c", &cfg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "kills after {delays:?} ms: {}",
        text(&out)
    );
}

/// Ferry's peak RSS while one transaction updates a million rows must stay under this.
const RSS_BUDGET_KB: u64 = 100 * 1024;

#[test]
fn large_transaction_bounded_memory() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.wide (id int PRIMARY KEY, n int NOT NULL, pad text);
             INSERT INTO public.wide SELECT g, 0, 'padding padding ' || g FROM generate_series(1, 1000000) g;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = sync_config(&dir, &source, &target);
    let sync = spawn(&["sync", "-c", &cfg]);
    wait_equal(&source, &target, "public.wide", MINUTE * 2);
    source.psql("UPDATE public.wide SET n = n + 1").unwrap();
    wait_for(
        &target,
        "SELECT count(*) FROM public.wide WHERE n = 1",
        "1000000",
        MINUTE * 5,
    );
    let peak = peak_rss_kb(sync.id()).unwrap();
    eprintln!("ferry peak RSS while applying a 1M-row transaction: {peak} kB");
    stop_and_check_exit(sync);
    assert!(
        peak < RSS_BUDGET_KB,
        "peak RSS {peak} kB is over the budget of {RSS_BUDGET_KB} kB"
    );
    wait_equal(&source, &target, "public.wide", MINUTE);
}

/// Changes to different tables are grouped per table within a target transaction. A target
/// with a foreign key of its own can object to that order: the integrity error makes the
/// pipeline apply the same transactions again one statement at a time, in source order.
#[test]
fn batch_conflict_retries_in_safe_mode() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.parent (id int PRIMARY KEY);
             CREATE TABLE public.child (id int PRIMARY KEY, parent int);
             INSERT INTO public.parent VALUES (0); INSERT INTO public.child VALUES (0, 0);",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = sync_config(&dir, &source, &target);
    let sync = spawn(&["sync", "-c", &cfg]);
    wait_equal(&source, &target, "public.child", MINUTE);
    // Both tables described in this session already (a Relation message ends a group's runs).
    source
        .psql("INSERT INTO public.parent VALUES (100); INSERT INTO public.child VALUES (100, 100);")
        .unwrap();
    wait_equal(&source, &target, "public.child", MINUTE);
    target
        .psql("ALTER TABLE public.child ADD FOREIGN KEY (parent) REFERENCES public.parent (id)")
        .unwrap();
    // Per table, the child's insert would come before the parent's.
    source
        .psql(
            "BEGIN; DELETE FROM public.child WHERE id = 0; INSERT INTO public.parent VALUES (1);
             INSERT INTO public.child VALUES (1, 1); COMMIT",
        )
        .unwrap();
    wait_equal(&source, &target, "public.child", MINUTE);
    wait_equal(&source, &target, "public.parent", MINUTE);
    let output = stop_and_check_exit(sync);
    assert!(output.contains("safe mode"), "{output}");
    let fk = target
        .psql("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
        .unwrap();
    assert_eq!(fk.trim(), "1");
}
