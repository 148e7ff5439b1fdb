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
}
