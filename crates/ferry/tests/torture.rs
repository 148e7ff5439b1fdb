//! The seeded randomized torture test (`ferry_testkit::torture`): a random schema and a
//! random concurrent workload on a real source, the real `ferry sync` binary killed with
//! SIGKILL in the copy, at the handoff and while streaming, the source and the target
//! restarted, and the end state compared table by table with an independent SQL digest.
//!
//! CI runs a fixed list of seeds per plugin. To replay one case:
//!
//! ```sh
//! FERRY_TORTURE_SEED=17 FERRY_TORTURE_PLUGIN=wal2json \
//!     cargo nextest run -p ferry --test torture torture_replay --run-ignored all
//! ```
//!
//! `FERRY_TORTURE_FEATURES` changes the features (`-truncate,-kill_ferry`, or `none,toast`),
//! `FERRY_TORTURE_WORKLOAD_SECS` the workload's length, `FERRY_TORTURE_KEEP=1` keeps the
//! case's directory (SQL log, ferry logs) when it passes. With `FERRY_TORTURE_SEED` set,
//! the fixed-seed tests run that seed instead of their list. `bench/torture.sh` soaks with
//! fresh seeds.

use std::path::PathBuf;
use std::time::Duration;

use ferry_testkit::torture::{self, Case, Features, Plugin};

/// The CI seeds per plugin; each runs a 20 s workload.
const PGOUTPUT_SEEDS: &[u64] = &[1, 2, 3];
const WAL2JSON_SEEDS: &[u64] = &[11, 12, 13];
const DECODERBUFS_SEEDS: &[u64] = &[21, 22, 23];

const CI_WORKLOAD: Duration = Duration::from_secs(20);

/// The features CI runs with: the plugin's defaults, less what finds a known bug.
///
/// Known bugs, each turned off here until it is fixed:
/// (none yet)
fn ci_features(plugin: Plugin) -> Features {
    Features::for_plugin(plugin)
}

fn case(seed: u64, plugin: Plugin) -> Case {
    let mut case = Case::new(
        seed,
        plugin,
        PathBuf::from(env!("CARGO_BIN_EXE_ferry")),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("torture"),
    );
    case.features = ci_features(plugin);
    case.workload = CI_WORKLOAD;
    if let Ok(spec) = std::env::var("FERRY_TORTURE_FEATURES") {
        case.features.apply(&spec).unwrap();
    }
    if let Ok(secs) = std::env::var("FERRY_TORTURE_WORKLOAD_SECS") {
        case.workload = Duration::from_secs(secs.parse().expect("FERRY_TORTURE_WORKLOAD_SECS"));
    }
    case
}

fn env_seed() -> Option<u64> {
    std::env::var("FERRY_TORTURE_SEED")
        .ok()
        .map(|s| s.parse().expect("FERRY_TORTURE_SEED must be a number"))
}

fn env_plugin() -> Option<Plugin> {
    std::env::var("FERRY_TORTURE_PLUGIN").ok().map(|p| {
        Plugin::parse(&p).expect("FERRY_TORTURE_PLUGIN: pgoutput, wal2json or decoderbufs")
    })
}

/// The line each case prints: `torture: clean|FAILED <summary>` (what `bench/torture.sh`
/// shows).
fn headline(outcome: &torture::Outcome) -> String {
    let verdict = if outcome.is_clean() {
        "clean"
    } else {
        "FAILED"
    };
    format!("torture: {verdict} {}", outcome.summary)
}

/// Runs `seeds` with `plugin` (or the replayed seed), printing each outcome; panics with
/// every failure report.
fn run_seeds(plugin: Plugin, seeds: &[u64]) {
    let seeds = match env_seed() {
        Some(seed) if env_plugin().is_none_or(|p| p == plugin) => vec![seed],
        Some(_) => return,
        None => seeds.to_vec(),
    };
    let mut failures = Vec::new();
    for seed in seeds {
        let outcome = torture::run(&case(seed, plugin));
        eprintln!("{}", headline(&outcome));
        if let Some(report) = outcome.failure {
            eprintln!("{report}");
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} torture case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn torture_pgoutput_fixed_seeds() {
    run_seeds(Plugin::Pgoutput, PGOUTPUT_SEEDS);
}

#[test]
fn torture_wal2json_fixed_seeds() {
    run_seeds(Plugin::Wal2json, WAL2JSON_SEEDS);
}

#[test]
fn torture_decoderbufs_fixed_seeds() {
    run_seeds(Plugin::Decoderbufs, DECODERBUFS_SEEDS);
}

/// One case from `FERRY_TORTURE_SEED` and `FERRY_TORTURE_PLUGIN` (default pgoutput): what
/// a failure report's replay line and `bench/torture.sh` run.
#[test]
#[ignore = "replays FERRY_TORTURE_SEED; run with --run-ignored"]
fn torture_replay() {
    let seed = env_seed().expect("set FERRY_TORTURE_SEED");
    let plugin = env_plugin().unwrap_or(Plugin::Pgoutput);
    let outcome = torture::run(&case(seed, plugin));
    println!("{}", headline(&outcome));
    if let Some(report) = outcome.failure {
        panic!("{report}");
    }
}
