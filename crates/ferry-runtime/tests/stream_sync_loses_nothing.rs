//! Loss paths found from outside, each forced deterministically: a streamed transaction that
//! would overtake the commits before it, a restart that would confirm what the target had
//! not flushed, a stalled apply behind a full read-ahead, an invalidated slot, and a
//! decoderbufs transaction spanning an added table's copy point; and a liveness path: a
//! source's fast shutdown that a commit awaiting the target's flush must not hold.

#[path = "support/sync_support.rs"]
mod support;

use std::time::Duration;

use ferry_runtime::BatchLimits;
use ferry_testkit::TempCluster;
use support::*;
use tokio::sync::watch;

/// A (large, streamed before it commits) begins; B inserts row 5 and commits; A updates row
/// 5 and commits. B's commit reaches Ferry before the block of A that updates row 5, so the
/// group holding B must be committed before that block is applied on A's own connection.
/// The whole workload runs while Ferry is stopped, so on restart every message is already
/// waiting in the read-ahead and a group never commits for lack of input; groups are allowed
/// a minute, so no time bound commits one either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_transaction_sees_rows_committed_before_its_block() {
    let source = TempCluster::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
        .unwrap();
    let mut options = stream_options(&source, &target);
    options.batch = BatchLimits {
        max_delay: Duration::from_secs(60),
        ..BatchLimits::default()
    };
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;

    let a = source.admin_client().await;
    let b = source.admin_client().await;
    let filler = |from: i32, to: i32| {
        format!(
            "INSERT INTO public.t SELECT g, repeat('f', 200) FROM generate_series({from}, {to}) g"
        )
    };
    for round in 0..100 {
        let row = 1_000_000 + round;
        let base = round * 10_000;
        a.batch_execute(&format!("BEGIN; {}", filler(base + 1, base + 1000)))
            .await
            .unwrap();
        b.batch_execute(&format!("INSERT INTO public.t VALUES ({row}, 'b')"))
            .await
            .unwrap();
        a.batch_execute(&format!(
            "UPDATE public.t SET v = 'a' WHERE id = {row}; {}; COMMIT",
            filler(base + 1001, base + 2000)
        ))
        .await
        .unwrap();
    }
    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
    assert_eq!(
        target
            .psql("SELECT count(*) FROM public.t WHERE v = 'a'")
            .unwrap()
            .trim(),
        "100"
    );
    let streamed: i64 = source
        .psql("SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(streamed > 0, "no transaction was streamed");
}

/// Sends `signal` (a `kill` name) to the target's WAL writer.
fn signal_wal_writer(cluster: &TempCluster, signal: &str) {
    let pid = cluster
        .psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
        .unwrap();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A run killed right after an asynchronous commit on the target leaves a stored position
/// that the target has not flushed. The next run must not confirm it to the source before
/// the target's flush passes it: here the target's WAL writer is stopped, so the commit
/// stays in its WAL buffers, and a crash of the target then loses it. With the position
/// unconfirmed the source sends the transaction again; confirmed, it would be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_confirms_the_stored_position_only_once_the_target_flushed_it() {
    let source = TempCluster::new().unwrap();
    // Nothing on the target may flush WAL behind the test's back: no autovacuum (its
    // commits are synchronous), no background writer flushing for dirty pages.
    let target = TempCluster::builder()
        .setting("autovacuum", "off")
        .setting("bgwriter_lru_maxpages", "0")
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'copied')")
        .unwrap();
    let options = stream_options(&source, &target);
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
    target.psql("CHECKPOINT").unwrap();

    signal_wal_writer(&target, "STOP");
    source
        .psql("INSERT INTO public.t VALUES (2, 'unflushed on the target')")
        .unwrap();
    let (_stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    sync.abort();
    let _ = sync.await;
    wait_slots_released(&source).await;

    // This run reads the position that stores row 2, and stops again.
    let (stop, sync) = start(options.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_run(stop, sync).await;

    // The target crashes: its shared memory, with the WAL buffers, is gone.
    signal_wal_writer(&target, "KILL");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let count = loop {
        match target.psql("SELECT count(*) FROM public.t") {
            Ok(count) => break count,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the target did not come back: {e}"),
        }
    };
    assert_eq!(
        count.trim(),
        "1",
        "the crash was meant to lose the unflushed commit of row 2"
    );

    let (stop, sync) = start(options);
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;
}

/// The apply waits on a lock on the target for three times the source's
/// `wal_sender_timeout` while more than the read-ahead's worth of changes waits: the reader,
/// unable to read further, must still tell the server it is alive, or the server drops the
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_apply_behind_a_full_read_ahead_keeps_the_connection() {
    let source = TempCluster::builder()
        .setting("wal_sender_timeout", "2s")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.t").await;

    let blocker = target.admin_client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE public.t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for batch in 0..50 {
        source
            .psql(&format!(
                "INSERT INTO public.t SELECT g, repeat(md5(g::text), 32) FROM generate_series({}, {}) g",
                batch * 1000 + 1,
                batch * 1000 + 1000
            ))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    wait_equal(&source, &target, "public.t").await;
    assert!(!sync.is_finished(), "the run ended while stalled");
    stop_run(stop, sync).await;
    assert!(
        !source.server_log().contains("replication timeout"),
        "the server timed the stream out"
    );
}

/// The slot is invalidated while Ferry is stopped (its WAL removed past
/// `max_slot_wal_keep_size`): the next start must stop with SlotGone, naming the server's
/// reason and the way to copy again, decided from the catalog rather than message text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_stops_the_run_with_the_reason_and_the_resync() {
    let source = TempCluster::builder()
        .setting("max_slot_wal_keep_size", "1MB")
        .setting("max_wal_size", "32MB")
        .setting("min_wal_size", "32MB")
        .start()
        .unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, pad text)")
        .unwrap();
    let options = stream_options(&source, &target);
    let (stop, sync) = start(options.clone());
    wait_equal(&source, &target, "public.t").await;
    stop_run(stop, sync).await;

    for round in 0..4 {
        source
            .psql(&format!(
                "INSERT INTO public.t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g;
                 SELECT pg_switch_wal();",
                round * 20_000 + 1,
                (round + 1) * 20_000
            ))
            .unwrap();
        source.psql("CHECKPOINT").unwrap();
    }
    let wal_status = source
        .psql(&format!(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
            options.slot
        ))
        .unwrap();
    assert_eq!(wal_status.trim(), "lost", "the test did not lose the slot");

    let (_stop, sync) = start(options);
    let error = tokio::time::timeout(Duration::from_secs(60), sync)
        .await
        .expect("the run did not stop on the invalidated slot")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, ferry_runtime::SyncError::SlotGone { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("wal_removed"), "{message}");
}

/// Waits until the source's log holds `needle` more than `seen` times.
async fn wait_log(source: &TempCluster, needle: &str, seen: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while source.server_log().matches(needle).count() <= seen {
        assert!(
            std::time::Instant::now() < deadline,
            "the source never logged {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// decoderbufs' Begin gives only a lower bound of the commit position. C begins while the
/// added table's copy slot is still being built and commits after the slot's consistent
/// point, so the copy does not hold C: the stream must apply C's row to the added table.
/// B, begun earlier and committed before that point, is in the copy and must not be
/// applied again. The slot's phases are forced by holding transactions open and read from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoderbufs_applies_a_transaction_spanning_an_added_tables_copy_point() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(
            "CREATE TABLE public.t1 (id int PRIMARY KEY);
             CREATE TABLE public.t2 (id int PRIMARY KEY, v text);
             INSERT INTO public.t2 VALUES (0, 'before');",
        )
        .unwrap();
    let only = |tables: &[&str]| {
        let mut options =
            stream_options_with(&source, &target, ferry_postgres::Plugin::Decoderbufs);
        options.full.tables = ferry_postgres::TableSelection::parse(
            &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            &[],
        )
        .unwrap();
        options
    };
    let (stop, sync) = start(only(&["public.t1"]));
    wait_equal(&source, &target, "public.t1").await;
    stop_run(stop, sync).await;

    let phases = [
        "logical decoding found initial starting point",
        "logical decoding found initial consistent point",
        "logical decoding found consistent point",
    ];
    let seen: Vec<usize> = phases
        .iter()
        .map(|p| source.server_log().matches(p).count())
        .collect();
    let (x, b, c) = (
        source.admin_client().await,
        source.admin_client().await,
        source.admin_client().await,
    );
    x.batch_execute("BEGIN; INSERT INTO public.t1 VALUES (1)")
        .await
        .unwrap();
    let (stop, sync) = start(only(&["public.t1", "public.t2"]));
    wait_log(&source, phases[0], seen[0]).await;
    b.batch_execute(
        "BEGIN; INSERT INTO public.t1 VALUES (2); INSERT INTO public.t2 VALUES (2, 'in the copy')",
    )
    .await
    .unwrap();
    x.batch_execute("COMMIT").await.unwrap();
    source.psql("CHECKPOINT").unwrap();
    wait_log(&source, phases[1], seen[1]).await;
    c.batch_execute("BEGIN; INSERT INTO public.t2 VALUES (3, 'spanning')")
        .await
        .unwrap();
    b.batch_execute("COMMIT").await.unwrap();
    source.psql("CHECKPOINT").unwrap();
    wait_log(&source, phases[2], seen[2]).await;
    c.batch_execute("COMMIT").await.unwrap();
    wait_equal(&source, &target, "public.t2").await;
    wait_equal(&source, &target, "public.t1").await;
    stop_run(stop, sync).await;
}

/// A pipeline that copied `public.t` and streams, and a row streamed after the target's WAL
/// writer was stopped: its commit on the target is not flushed yet.
async fn streamed_commit_awaiting_the_targets_flush() -> (
    std::sync::Arc<TempCluster>,
    TempCluster,
    watch::Sender<bool>,
    Run,
) {
    let source = std::sync::Arc::new(TempCluster::new().unwrap());
    let target = TempCluster::builder()
        .setting("autovacuum", "off")
        .setting("bgwriter_lru_maxpages", "0")
        .start()
        .unwrap();
    source
        .psql("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'copied')")
        .unwrap();
    let (stop, sync) = start(stream_options(&source, &target));
    wait_equal(&source, &target, "public.t").await;
    // Nothing else may flush the target's WAL while its WAL writer is stopped.
    target.psql("CHECKPOINT").unwrap();
    signal_wal_writer(&target, "STOP");
    source
        .psql("INSERT INTO public.t VALUES (2, 'awaits the target flush')")
        .unwrap();
    wait_equal(&source, &target, "public.t").await;
    (source, target, stop, sync)
}

/// The copy's last commits are synchronous (its data must be durable before streaming
/// starts), but that must not stay the apply session's setting: streamed commits are
/// asynchronous, confirmed once the target flushes them (`durable.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_commits_after_a_copy_are_asynchronous_on_the_target() {
    let (_source, target, _stop, sync) = streamed_commit_awaiting_the_targets_flush().await;
    let positions = target
        .psql("SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()")
        .unwrap();
    signal_wal_writer(&target, "CONT");
    sync.abort();
    let _ = sync.await;
    assert_eq!(
        positions.trim(),
        "t",
        "the streamed commit was flushed at once: the apply session committed synchronously"
    );
}

/// A fast shutdown of the source waits for the walsender, which waits until Ferry confirms
/// everything it sent, asking with a keepalive after every reply. Here a commit awaits the
/// target's flush (its WAL writer is stopped) when the shutdown starts: the flush must still
/// be polled between those keepalives, so once the target flushes, the position is confirmed
/// and the shutdown ends, instead of the walsender holding the source's stop for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_shutdown_of_the_source_ends_while_a_commit_awaits_the_targets_flush() {
    let (source, target, _stop, sync) = streamed_commit_awaiting_the_targets_flush().await;
    let stopping = tokio::spawn({
        let source = std::sync::Arc::clone(&source);
        async move { source.stop_async().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal_wal_writer(&target, "CONT");
    let stopped = tokio::time::timeout(Duration::from_secs(15), stopping).await;
    sync.abort();
    let _ = sync.await;
    stopped
        .expect("the source's fast shutdown did not end within 15 s of the target's flush: Ferry never confirmed")
        .unwrap()
        .unwrap();
}
