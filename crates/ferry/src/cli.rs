//! The command line: `ferry <command> -c ferry.toml [options]`.
//!
//! clap derives parsing and help from these types; each command's module does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Ferry: a consistent copy of a PostgreSQL database, then every change, exactly once.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "ferry.toml",
        env = "FERRY_CONFIG"
    )]
    pub config: PathBuf,

    /// Log more (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight: check source and target, and print the fix for every problem.
    Check {
        /// Print the items as a JSON array.
        #[arg(long)]
        json: bool,
        /// Check only this pipeline (default: all).
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Compare source and target data table by table; exit 1 on any difference.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Verify only this pipeline (default: all).
        #[arg(long)]
        pipeline: Option<String>,
        /// List at most this many differing keys per table.
        #[arg(long, default_value_t = 20)]
        max_differences: usize,
    },
    /// Print the source's changes as they happen, from a temporary slot (nothing is left behind).
    Peek {
        /// The output plugin to decode with (default: the configured one).
        #[arg(long)]
        plugin: Option<ferry_postgres::Plugin>,
        /// Stop after this many row changes.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = crate::commands::peek::Format::Text)]
        format: crate::commands::peek::Format,
        /// The pipeline whose source to peek at (default: the first).
        #[arg(long)]
        pipeline: Option<String>,
        /// Read an existing slot (from its confirmed position, which is not moved) instead
        /// of a temporary one: for measuring decoding over WAL already written.
        #[arg(long)]
        slot: Option<String>,
        /// Stop at the first transaction that ends at or after this LSN (e.g. 0/3000000).
        #[arg(long)]
        end_lsn: Option<ferry_core::Lsn>,
    },
    /// Run every streaming pipeline as a service, with an HTTP API and Prometheus metrics.
    Serve {
        /// Where the API listens; any address but loopback needs FERRY_API_TOKEN.
        #[arg(long, default_value = "127.0.0.1:9187")]
        listen: std::net::SocketAddr,
    },
    /// Where each pipeline stands: phase, applied position, slot, lag, last error.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only this pipeline (default: all).
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Replication slots of the configured sources: list, drop, clean up orphans.
    Slots {
        #[command(subcommand)]
        what: SlotsCommand,
    },
    /// Prepare the source for a sync mode.
    Setup {
        #[command(subcommand)]
        what: SetupCommand,
    },
    /// Two throwaway local clusters, a live workload and a full+incremental pipeline between
    /// them, verified at the end; needs only the installed PostgreSQL (no config file).
    Demo {
        /// How long the live workload runs.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Orders in the sample data before the copy.
        #[arg(long, default_value_t = 200_000)]
        orders: u32,
        /// The output plugin to decode with.
        #[arg(long, default_value = "pgoutput")]
        plugin: ferry_postgres::Plugin,
    },
    /// Run a pipeline: copy (mode = "full"), copy then stream changes ("full+incremental"),
    /// stream only ("incremental"), or poll by timestamp ("timestamp").
    Sync {
        /// The pipeline to run, when the config has several.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print what the run would do at its start (publication, slots, tables to copy,
        /// warnings) or why it would refuse to start, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// The last-updated column, index and trigger that mode = "timestamp" polls by: printed,
    /// or run with --apply (idempotent).
    Timestamps {
        /// Run the SQL instead of printing it.
        #[arg(long)]
        apply: bool,
        /// Only this pipeline (default: all).
        #[arg(long)]
        pipeline: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SlotsCommand {
    /// Every slot with its plugin, activity, retained WAL and owner.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop one slot; an active one only with --force, which ends the process holding it.
    Drop {
        /// The slot name.
        name: String,
        /// End the walsender holding an active slot first.
        #[arg(long)]
        force: bool,
    },
    /// Drop inactive slots Ferry created that no configured pipeline uses.
    Cleanup {
        /// Only slots inactive for at least this long (e.g. 1h; PostgreSQL 17 and later).
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Say what would be dropped, drop nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
