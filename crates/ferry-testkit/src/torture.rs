//! The seeded randomized torture test: from one `u64` seed, a random schema, a random
//! concurrent workload on a real source cluster, `ferry sync` (the real binary, mode
//! `full+incremental`) run through it while it is SIGKILLed and its servers restart, and an
//! end state checked by an independent per-table digest computed by SQL on both sides.
//!
//! ```text
//!  seed ──► Schema ──► CREATE + fill on the source ──► ferry check (must pass)
//!    │                                                     │
//!    ├──► SessionPlan × 2-4 ──► sessions on the source ────┤  (SQL log: every statement)
//!    │                                                     ▼
//!    └──► FaultPlan ──► kills in the copy, at the handoff, while streaming; restarts
//!                                                          │
//!           workload ends ──► ferry runs until the digests agree ──► SIGTERM ──► digest
//! ```
//!
//! A seed replays the same schema, the same statement stream per session and the same
//! fault plan (what the sessions' statements did depends on timing, which the SQL log
//! records). On failure the [`Outcome`] names the seed, the plugin, the first differing rows
//! of each differing table (`EXCEPT ALL` both ways by text form), the SQL log and ferry's
//! logs. What is generated is bounded by [`Features`]: schema changes are off by default
//! (they belong to another issue), and each plugin leaves out what it documents it cannot
//! carry.

mod digest;
mod faults;
mod process;
mod rng;
mod run;
mod schema;
mod session;
mod types;
mod workload;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use faults::{Fault, FaultPlan};
pub use rng::Rng;
pub use run::run;
pub use schema::{Schema, Table, TableKind};
pub use types::ColumnType;

/// The output plugin a case runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    Pgoutput,
    Wal2json,
    Decoderbufs,
}

impl Plugin {
    /// Every plugin.
    pub const ALL: [Plugin; 3] = [Plugin::Pgoutput, Plugin::Wal2json, Plugin::Decoderbufs];

    /// The name in `ferry.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Pgoutput => "pgoutput",
            Plugin::Wal2json => "wal2json",
            Plugin::Decoderbufs => "decoderbufs",
        }
    }

    /// The plugin named `name`.
    pub fn parse(name: &str) -> Option<Plugin> {
        Plugin::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a case may generate. [`Features::for_plugin`] is the default set, with what the
/// plugin cannot carry turned off; a named flag turns a feature off while it finds a bug
/// (see the test's list), and [`Features::apply`] changes flags from a spec like
/// `"-truncate,+schema_changes"` to narrow a failure down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// citext and hstore columns (CREATE EXTENSION on both sides).
    pub contrib_types: bool,
    /// Tables without a key, REPLICA IDENTITY FULL, with duplicate rows.
    pub keyless_tables: bool,
    /// A `GENERATED ALWAYS AS IDENTITY` key, updated with `SET id = DEFAULT`.
    pub identity_tables: bool,
    /// Stored generated columns.
    pub generated_columns: bool,
    /// A table partitioned by range, with rows moving between partitions.
    pub partitioned_tables: bool,
    /// Out-of-line text values that most updates leave unchanged.
    pub toast: bool,
    /// Mixed-case, quoted and odd table, column and schema names.
    pub odd_names: bool,
    /// Updates that change a row's key.
    pub key_changes: bool,
    /// Savepoints rolled back to and released.
    pub savepoints: bool,
    /// Transactions that end in ROLLBACK.
    pub aborted_transactions: bool,
    /// Transactions over `logical_decoding_work_mem`, streamed before they commit.
    pub large_transactions: bool,
    /// TRUNCATE, also of two tables and with RESTART IDENTITY (not with decoderbufs, which
    /// sends no TRUNCATE).
    pub truncate: bool,
    /// SIGKILL of ferry in the copy, at the handoff and while streaming.
    pub kill_ferry: bool,
    /// Fast restarts of the source.
    pub restart_source: bool,
    /// Crashes and outages of the target.
    pub restart_target: bool,
    /// Columns added (with volatile defaults, of enums and domains created for them),
    /// renamed, retyped and dropped; enum labels added; tables and partitions created,
    /// tables dropped and created again: all while streaming.
    pub schema_changes: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            contrib_types: true,
            keyless_tables: true,
            identity_tables: true,
            generated_columns: true,
            partitioned_tables: true,
            toast: true,
            odd_names: true,
            key_changes: true,
            savepoints: true,
            aborted_transactions: true,
            large_transactions: true,
            truncate: true,
            kill_ferry: true,
            restart_source: true,
            restart_target: true,
            schema_changes: true,
        }
    }
}

impl Features {
    /// The default features less what `plugin` documents it cannot carry.
    pub fn for_plugin(plugin: Plugin) -> Features {
        let mut features = Features::default();
        if plugin == Plugin::Decoderbufs {
            features.truncate = false;
        }
        features
    }

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "contrib_types" => &mut self.contrib_types,
            "keyless_tables" => &mut self.keyless_tables,
            "identity_tables" => &mut self.identity_tables,
            "generated_columns" => &mut self.generated_columns,
            "partitioned_tables" => &mut self.partitioned_tables,
            "toast" => &mut self.toast,
            "odd_names" => &mut self.odd_names,
            "key_changes" => &mut self.key_changes,
            "savepoints" => &mut self.savepoints,
            "aborted_transactions" => &mut self.aborted_transactions,
            "large_transactions" => &mut self.large_transactions,
            "truncate" => &mut self.truncate,
            "kill_ferry" => &mut self.kill_ferry,
            "restart_source" => &mut self.restart_source,
            "restart_target" => &mut self.restart_target,
            "schema_changes" => &mut self.schema_changes,
            _ => return None,
        })
    }

    /// Applies a comma-separated spec: `+name` or `name` turns a flag on, `-name` off,
    /// `none` turns everything off (then add what you want), `faults-` turns the three
    /// fault flags off. Unknown names are an error naming them.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "none" {
                *self = Features {
                    contrib_types: false,
                    keyless_tables: false,
                    identity_tables: false,
                    generated_columns: false,
                    partitioned_tables: false,
                    toast: false,
                    odd_names: false,
                    key_changes: false,
                    savepoints: false,
                    aborted_transactions: false,
                    large_transactions: false,
                    truncate: false,
                    kill_ferry: false,
                    restart_source: false,
                    restart_target: false,
                    schema_changes: false,
                };
                continue;
            }
            let (on, name) = match item.strip_prefix('-') {
                Some(name) => (false, name),
                None => (true, item.trim_start_matches('+')),
            };
            *self
                .flag(name)
                .ok_or_else(|| format!("unknown torture feature {name:?}"))? = on;
        }
        Ok(())
    }
}

impl fmt::Display for Features {
    /// The flags that are on, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut copy = *self;
        let names = [
            "contrib_types",
            "keyless_tables",
            "identity_tables",
            "generated_columns",
            "partitioned_tables",
            "toast",
            "odd_names",
            "key_changes",
            "savepoints",
            "aborted_transactions",
            "large_transactions",
            "truncate",
            "kill_ferry",
            "restart_source",
            "restart_target",
            "schema_changes",
        ];
        let on: Vec<&str> = names
            .into_iter()
            .filter(|n| copy.flag(n).is_some_and(|v| *v))
            .collect();
        f.write_str(&on.join(","))
    }
}

/// One case to run.
#[derive(Clone, Debug)]
pub struct Case {
    pub seed: u64,
    pub plugin: Plugin,
    pub features: Features,
    /// How long the workload sessions run.
    pub workload: Duration,
    /// How long the target may take to catch up once the workload is over.
    pub converge_timeout: Duration,
    /// The `ferry` binary.
    pub ferry_bin: PathBuf,
    /// Where the case's directory (SQL log, ferry logs, config) is made.
    pub log_root: PathBuf,
}

impl Case {
    /// A case with the default features of `plugin` and a 25 s workload.
    pub fn new(seed: u64, plugin: Plugin, ferry_bin: PathBuf, log_root: PathBuf) -> Case {
        Case {
            seed,
            plugin,
            features: Features::for_plugin(plugin),
            workload: Duration::from_secs(25),
            converge_timeout: Duration::from_secs(120),
            ferry_bin,
            log_root,
        }
    }
}

/// What a case found.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub plugin: Plugin,
    /// One line: tables, rows, transactions, faults, time.
    pub summary: String,
    /// The failure report, or `None` when the end states are equal.
    pub failure: Option<String>,
    /// The case's directory (kept on failure).
    pub dir: PathBuf,
}

impl Outcome {
    pub fn is_clean(&self) -> bool {
        self.failure.is_none()
    }
}
