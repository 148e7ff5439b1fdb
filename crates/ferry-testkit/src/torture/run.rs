//! One torture case from start to verdict: clusters, schema, `ferry check`, the workload
//! sessions, ferry's runs and the faults, convergence, a clean SIGTERM, and the final digest
//! comparison; on failure, the report with everything needed to look into it and replay it.
//!
//! Ferry exiting on its own (any time before the final SIGTERM) is a failure, as is a target
//! that does not catch up within the case's timeout once the workload is over (a hang or a
//! loss), a SIGTERM that does not end the run promptly with status 0, and any table whose
//! digest differs at the end.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::digest::{self, Mismatch};
use super::faults::{Fault, FaultPlan};
use super::process::{FerryRun, Marker};
use super::rng::Rng;
use super::schema::Schema;
use super::session::{run_session, SessionStats, SqlLog};
use super::workload::SessionPlan;
use super::{Case, Outcome};
use crate::TempCluster;

/// Differing rows shown per table and direction.
const ROWS_SHOWN: usize = 5;

/// Runs `case` to its verdict on a runtime of its own. Blocks.
pub fn run(case: &Case) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run_case(case))
}

/// Why a case failed, and what it had done until then.
struct Failed {
    reason: String,
    details: String,
}

fn failed(reason: impl Into<String>) -> Failed {
    Failed {
        reason: reason.into(),
        details: String::new(),
    }
}

/// What the driver keeps while it runs, for the summary and the report.
struct State {
    dir: PathBuf,
    sql_log: PathBuf,
    faults: FaultPlan,
    runs: u32,
    stats: Vec<SessionStats>,
    tables: usize,
    sessions: usize,
    last_tail: String,
    check_warnings: usize,
}

async fn run_case(case: &Case) -> Outcome {
    let started = Instant::now();
    let dir = case
        .log_root
        .join(format!("seed-{}-{}", case.seed, case.plugin));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Outcome {
            seed: case.seed,
            plugin: case.plugin,
            summary: String::new(),
            failure: Some(format!("cannot create {}: {e}", dir.display())),
            dir,
        };
    }
    let mut state = State {
        sql_log: dir.join("workload.sql"),
        dir: dir.clone(),
        faults: FaultPlan::default(),
        runs: 0,
        stats: Vec::new(),
        tables: 0,
        sessions: 0,
        last_tail: String::new(),
        check_warnings: 0,
    };
    let result = drive(case, &mut state).await;
    let stats = state
        .stats
        .iter()
        .fold(SessionStats::default(), |mut a, s| {
            a.committed += s.committed;
            a.rolled_back += s.rolled_back;
            a.failed += s.failed;
            a.reconnects += s.reconnects;
            a
        });
    let summary = format!(
        "seed {} {}: {} tables, {} sessions ({} committed, {} rolled back, {} failed statements), \
         {} ferry runs, {} check warnings, faults: {}; {:.1} s",
        case.seed,
        case.plugin,
        state.tables,
        state.sessions,
        stats.committed,
        stats.rolled_back,
        stats.failed,
        state.runs,
        state.check_warnings,
        state.faults,
        started.elapsed().as_secs_f64()
    );
    let failure = result.err().map(|f| {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "torture case FAILED: seed {} plugin {}\n  what: {}",
            case.seed, case.plugin, f.reason
        );
        let _ = writeln!(text, "  features: {}", case.features);
        let _ = writeln!(text, "  faults: {}", state.faults);
        let _ = writeln!(text, "  {summary}");
        text.push_str(&f.details);
        let _ = writeln!(
            text,
            "  SQL log (every statement, in order of completion): {}",
            state.sql_log.display()
        );
        let _ = writeln!(
            text,
            "  ferry logs: {}/ferry-*.log, config {}/ferry.toml",
            state.dir.display(),
            state.dir.display()
        );
        let _ = writeln!(
            text,
            "  replay: FERRY_TORTURE_SEED={} FERRY_TORTURE_PLUGIN={} FERRY_TORTURE_FEATURES='none,{}' \
             cargo nextest run -p ferry --test torture torture_replay --run-ignored all",
            case.seed, case.plugin, case.features
        );
        if !state.last_tail.is_empty() {
            let _ = writeln!(text, "  last output of ferry:\n{}", indent(&state.last_tail));
        }
        text
    });
    let keep = std::env::var_os("FERRY_TORTURE_KEEP").is_some_and(|v| v != "0");
    if failure.is_none() && !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Outcome {
        seed: case.seed,
        plugin: case.plugin,
        summary,
        failure,
        dir,
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn start_cluster(
    settings: &'static [(&'static str, &'static str)],
) -> Result<Arc<TempCluster>, Failed> {
    tokio::task::spawn_blocking(move || {
        let mut builder = TempCluster::builder();
        for (name, value) in settings {
            builder = builder.setting(*name, *value);
        }
        builder.start()
    })
    .await
    .map_err(|e| failed(format!("cluster start panicked: {e}")))?
    .map(Arc::new)
    .map_err(|e| failed(format!("could not start a cluster: {e}")))
}

async fn blocking(
    cluster: &Arc<TempCluster>,
    what: &str,
    work: fn(&TempCluster) -> Result<(), crate::TestkitError>,
) -> Result<(), Failed> {
    let c = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || work(&c))
        .await
        .map_err(|e| failed(format!("{what} panicked: {e}")))?
        .map_err(|e| failed(format!("{what} failed: {e}")))
}

/// A SQL connection with the text settings of the digest, retried while the server starts.
async fn digest_client(cluster: &TempCluster) -> Result<Client, Failed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match cluster.try_admin_client_db("postgres").await {
            Ok(client) => {
                client
                    .batch_execute(digest::TEXT_SETTINGS)
                    .await
                    .map_err(|e| failed(format!("digest settings: {e}")))?;
                return Ok(client);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(failed(format!("cannot connect for the digest: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn setup_sql(
    cluster: &TempCluster,
    log: &SqlLog,
    side: &str,
    statements: &[String],
) -> Result<(), Failed> {
    let client = cluster.admin_client().await;
    for sql in statements {
        if let Err(e) = client.batch_execute(sql).await {
            log.statement(side, sql, Err(&e.to_string()));
            return Err(failed(format!("setup on the {side} failed: {e:?}\n{sql}")));
        }
        log.statement(side, sql, Ok(()));
    }
    Ok(())
}

fn start_ferry(case: &Case, state: &mut State, config: &Path) -> Result<FerryRun, Failed> {
    state.runs += 1;
    let log = state.dir.join(format!("ferry-{}.log", state.runs));
    FerryRun::start(&case.ferry_bin, config, log)
        .map_err(|e| failed(format!("cannot start {}: {e}", case.ferry_bin.display())))
}

/// Fails if `ferry` ended on its own.
fn still_running(ferry: &mut FerryRun, state: &mut State) -> Result<(), Failed> {
    if let Some(status) = ferry.exited() {
        state.last_tail = ferry.tail();
        return Err(failed(format!(
            "ferry sync exited on its own with {status} (log {})",
            ferry.log_path.display()
        )));
    }
    Ok(())
}

/// Sleeps until `until`, failing as soon as ferry exits.
async fn watch(ferry: &mut FerryRun, state: &mut State, until: Instant) -> Result<(), Failed> {
    while Instant::now() < until {
        still_running(ferry, state)?;
        tokio::time::sleep(Duration::from_millis(50).min(until - Instant::now())).await;
    }
    still_running(ferry, state)
}

async fn drive(case: &Case, state: &mut State) -> Result<(), Failed> {
    let schema = Schema::generate(&mut Rng::fork(case.seed, 1), case.plugin, &case.features);
    state.tables = schema.tables.len();
    state.faults = FaultPlan::generate(&mut Rng::fork(case.seed, 3), &case.features, case.workload);
    let log = Arc::new(
        SqlLog::create(&state.sql_log)
            .map_err(|e| failed(format!("cannot write the SQL log: {e}")))?,
    );
    log.note(&format!(
        "torture case seed {} plugin {}\nfeatures: {}\nfaults: {}\n\
         Setup statements first (target, then source), then the workload: each statement with\n\
         its session, transaction number and kind, and seconds since the log began; failed\n\
         statements are commented out with their error.",
        case.seed, case.plugin, case.features, state.faults
    ));

    const SOURCE_SETTINGS: &[(&str, &str)] = &[
        // Transactions over this are streamed (pgoutput) or spilled before they commit.
        ("logical_decoding_work_mem", "64kB"),
        ("deadlock_timeout", "200ms"),
        ("max_connections", "60"),
    ];
    let source = start_cluster(SOURCE_SETTINGS).await?;
    let target = start_cluster(&[]).await?;
    let extensions = schema.extensions_sql();
    if !extensions.is_empty() {
        setup_sql(
            &target,
            &log,
            "target setup",
            std::slice::from_ref(&extensions),
        )
        .await?;
    }
    let mut source_setup = Vec::new();
    if !extensions.is_empty() {
        source_setup.push(extensions);
    }
    source_setup.push(schema.create_sql());
    source_setup.extend(schema.fill_sql(&mut Rng::fork(case.seed, 4), case.plugin));
    source_setup.push("ANALYZE".to_owned());
    setup_sql(&source, &log, "source setup", &source_setup).await?;

    let patterns: Vec<String> = schema
        .table_patterns()
        .iter()
        .map(|p| toml_string(p))
        .collect();
    let config = state.dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = {}\nplugin = \"{}\"\ntables = [{}]\n\n[target]\nurl = {}\n\n\
             [sync]\nmode = \"full+incremental\"\nheartbeat_interval = \"1s\"\nsnapshot_workers = 2\n",
            toml_string(&source.admin_url()),
            case.plugin,
            patterns.join(", "),
            toml_string(&target.admin_url()),
        ),
    )
    .map_err(|e| failed(format!("cannot write the config: {e}")))?;

    // The pool leaves out what the plugin cannot carry, so the preflight must pass.
    let check = {
        let (bin, config) = (case.ferry_bin.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .arg("check")
                .arg("-c")
                .arg(config)
                .output()
        })
        .await
        .map_err(|e| failed(format!("ferry check panicked: {e}")))?
        .map_err(|e| failed(format!("cannot run ferry check: {e}")))?
    };
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::write(state.dir.join("check.txt"), &check_text);
    state.check_warnings = check_text
        .lines()
        .filter(|l| l.trim_start().starts_with("WARN"))
        .count();
    if !check.status.success() {
        return Err(Failed {
            reason: format!(
                "ferry check failed ({}) on a schema the plugin should carry",
                check.status
            ),
            details: indent(&check_text),
        });
    }

    // The workload starts before the first run, so the copy's snapshot is taken under load.
    let sessions = Rng::fork(case.seed, 2).between(2, 4) as usize;
    state.sessions = sessions;
    let stop = Arc::new(AtomicBool::new(false));
    let workload_start = Instant::now();
    let deadline = workload_start + case.workload;
    let handles: Vec<_> = (0..sessions)
        .map(|i| {
            let plan = SessionPlan::new(case.seed, i, case.plugin, case.features, schema.clone());
            tokio::spawn(run_session(
                i,
                source.admin_url(),
                plan,
                deadline,
                Arc::clone(&stop),
                Arc::clone(&log),
            ))
        })
        .collect();
    let result = faults_and_verdict(
        case,
        state,
        &source,
        &target,
        &schema,
        &config,
        &log,
        workload_start,
        &stop,
        handles,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    log.flush();
    result
}

#[allow(clippy::too_many_arguments)]
async fn faults_and_verdict(
    case: &Case,
    state: &mut State,
    source: &Arc<TempCluster>,
    target: &Arc<TempCluster>,
    schema: &Schema,
    config: &Path,
    log: &SqlLog,
    workload_start: Instant,
    stop: &Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<SessionStats>>,
) -> Result<(), Failed> {
    let mut ferry = start_ferry(case, state, config)?;
    for kill in state.faults.copy_kills.clone() {
        // Wait for the moment (or for streaming, when the copy is already over).
        let give_up = Instant::now() + Duration::from_secs(90);
        while !ferry.seen(kill.marker) && !ferry.seen(Marker::Streaming) {
            still_running(&mut ferry, state)?;
            if Instant::now() > give_up {
                state.last_tail = ferry.tail();
                return Err(failed(format!(
                    "ferry never reached {:?} in 90 s",
                    kill.marker
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watch(&mut ferry, state, Instant::now() + kill.delay).await?;
        log.note(&format!(
            "fault: SIGKILL of ferry run {} ({:?} + {} ms)",
            state.runs,
            kill.marker,
            kill.delay.as_millis()
        ));
        ferry.kill().await;
        ferry = start_ferry(case, state, config)?;
    }
    for (at, fault) in state.faults.timed.clone() {
        watch(&mut ferry, state, workload_start + at).await?;
        log.note(&format!("fault: {fault:?}"));
        match fault {
            Fault::KillFerry { pause } => {
                ferry.kill().await;
                tokio::time::sleep(pause).await;
                ferry = start_ferry(case, state, config)?;
            }
            Fault::RestartSource => {
                blocking(source, "source restart", TempCluster::restart).await?
            }
            Fault::CrashTarget => {
                blocking(target, "target crash", TempCluster::stop_immediate).await?;
                blocking(target, "target start", TempCluster::start).await?;
            }
            Fault::TargetOutage { down } => {
                blocking(target, "target stop", TempCluster::stop).await?;
                tokio::time::sleep(down).await;
                blocking(target, "target start", TempCluster::start).await?;
            }
        }
    }
    let workload_end = workload_start + case.workload;
    watch(&mut ferry, state, workload_end).await?;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        state.stats.push(handle.await.unwrap_or_default());
    }
    log.note("workload over");
    log.flush();

    let source_client = digest_client(source).await?;
    let tables = digest::source_tables(&source_client, &schema.schemas)
        .await
        .map_err(|e| failed(format!("reading the source catalog: {e}")))?;
    state.tables = tables.len();
    let converge_deadline = Instant::now() + case.converge_timeout;
    loop {
        still_running(&mut ferry, state)?;
        let target_client = digest_client(target).await?;
        let mismatches = digest::compare(&source_client, &target_client, &tables).await;
        if mismatches.is_empty() {
            break;
        }
        if Instant::now() > converge_deadline {
            state.last_tail = ferry.tail();
            let details = describe(&source_client, &target_client, &mismatches).await;
            return Err(Failed {
                reason: format!(
                    "the target did not catch up within {} s of the workload's end ({} tables differ)",
                    case.converge_timeout.as_secs(),
                    mismatches.len()
                ),
                details,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = ferry.terminate(Duration::from_secs(30)).await;
    state.last_tail = ferry.tail();
    match status {
        Some(s) if s.success() => {}
        Some(s) => return Err(failed(format!("ferry sync exited with {s} after SIGTERM"))),
        None => return Err(failed("ferry sync did not exit within 30 s of SIGTERM")),
    }
    let target_client = digest_client(target).await?;
    let mismatches = digest::compare(&source_client, &target_client, &tables).await;
    if !mismatches.is_empty() {
        let details = describe(&source_client, &target_client, &mismatches).await;
        return Err(Failed {
            reason: format!("{} tables differ after ferry stopped", mismatches.len()),
            details,
        });
    }
    state.last_tail.clear();
    Ok(())
}

/// The differing tables, their digests and their first differing rows.
async fn describe(source: &Client, target: &Client, mismatches: &[Mismatch]) -> String {
    let mut text = String::new();
    for m in mismatches {
        let _ = writeln!(
            text,
            "  table {}: source (rows, digest) {:?}, target {:?}",
            m.table.name, m.source, m.target
        );
        let _ = writeln!(text, "    columns: {}", m.table.columns.join(", "));
        match digest::differing_rows(source, target, &m.table, ROWS_SHOWN).await {
            Ok((ns, only_source, nt, only_target)) => {
                let _ = writeln!(text, "    only in source: {ns} rows");
                for r in only_source {
                    let _ = writeln!(text, "      {r}");
                }
                let _ = writeln!(text, "    only in target: {nt} rows");
                for r in only_target {
                    let _ = writeln!(text, "      {r}");
                }
            }
            Err(e) => {
                let _ = writeln!(text, "    rows not compared: {e}");
            }
        }
    }
    text
}
