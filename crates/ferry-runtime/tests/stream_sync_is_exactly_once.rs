//! Incremental sync with pgoutput: the copy and the stream meet with no gap and no
//! duplicate while writes run throughout, and a pipeline aborted at five different moments
//! while streaming resumes from its stored position without losing or repeating a change.
//! Both run with each of the three output plugins; the binary's tests kill the process
//! itself (crates/ferry/tests/stream_survives_failures.rs).

#[path = "support/sync_support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_postgres::Plugin;
use ferry_runtime::{run_stream_sync, Progress};
use ferry_testkit::TempCluster;
use support::*;
use tokio::sync::watch;

per_plugin!(handoff_has_no_gap_or_duplicate);

async fn handoff_has_no_gap_or_duplicate(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&source, stop_writer.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (stop, stop_rx) = watch::channel(false);
    let opts = stream_options_with(&source, &target, plugin);
    let sync =
        tokio::spawn(async move { run_stream_sync(&opts, &Progress::none(), stop_rx).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_writer.store(true, Ordering::Relaxed);
    let moves = writer.await.unwrap();
    assert!(moves > 50, "the writer made only {moves} moves");
    wait_equal(&source, &target, "public.accounts").await;
    wait_equal(&source, &target, "public.events").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    assert_verified(&source, &target, &["public.*"]).await;
}

per_plugin!(aborted_streaming_resumes_without_loss_or_duplicate);

async fn aborted_streaming_resumes_without_loss_or_duplicate(plugin: Plugin) {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&source, stop_writer.clone());
    for round in 0..5u64 {
        let (_stop, stop_rx) = watch::channel(false);
        let opts = stream_options_with(&source, &target, plugin);
        let sync =
            tokio::spawn(async move { run_stream_sync(&opts, &Progress::none(), stop_rx).await });
        // Killed at a different moment each round: the future is dropped mid-work.
        tokio::time::sleep(Duration::from_millis(700 + round * 300)).await;
        sync.abort();
        let _ = sync.await;
        wait_slots_released(&source).await;
    }
    stop_writer.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let opts = stream_options_with(&source, &target, plugin);
    let sync =
        tokio::spawn(async move { run_stream_sync(&opts, &Progress::none(), stop_rx).await });
    wait_equal(&source, &target, "public.accounts").await;
    wait_equal(&source, &target, "public.events").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_copy_starts_over_and_ends_exact() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source.psql(SCHEMA).unwrap();
    source
        .psql("INSERT INTO public.events SELECT g % 20000, g FROM generate_series(1, 400000) g")
        .unwrap();
    // Abort as soon as the copy has started loading.
    let (_stop, stop_rx) = watch::channel(false);
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let opts = stream_options(&source, &target);
    let sync =
        tokio::spawn(async move { run_stream_sync(&opts, &Progress::to(sender), stop_rx).await });
    while let Some(event) = events.recv().await {
        if matches!(event, ferry_runtime::SyncEvent::Bytes { .. }) {
            break;
        }
    }
    sync.abort();
    let _ = sync.await;
    wait_slots_released(&source).await;
    // Writes continue between the runs.
    source
        .psql("UPDATE public.accounts SET note = 'between runs' WHERE id <= 10")
        .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let opts = stream_options(&source, &target);
    let sync =
        tokio::spawn(async move { run_stream_sync(&opts, &Progress::none(), stop_rx).await });
    wait_equal(&source, &target, "public.accounts").await;
    wait_equal(&source, &target, "public.events").await;
    source
        .psql("INSERT INTO public.accounts VALUES (900000, 1, 'streamed')")
        .unwrap();
    wait_equal(&source, &target, "public.accounts").await;
    stop.send(true).unwrap();
    sync.await.unwrap().unwrap();
    // The copy that finished built the key the aborted one never reached.
    let key = target
        .psql("SELECT count(*) FROM pg_index WHERE indrelid = 'public.accounts'::regclass AND indisprimary")
        .unwrap();
    assert_eq!(key.trim(), "1");
}
