//! The `ferry` binary: parse the command line, load the config, run the command.
//!
//! Exit status: 0 success, 1 the command found a problem (e.g. a FAIL in `check`), 2 the
//! command could not run (bad config, bad arguments). Errors print their whole cause chain.

mod cli;
mod commands;
mod config;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, SetupCommand, SlotsCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", ferry_pgwire::error_chain(&*e));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Demo {
        duration,
        orders,
        plugin,
    } = cli.command
    {
        return commands::demo::run(duration, orders, plugin).await;
    }
    let config = config::load(&cli.config)?;
    match cli.command {
        Command::Check { json, pipeline } => {
            commands::check::run(&config, json, pipeline.as_deref()).await
        }
        Command::Verify {
            json,
            pipeline,
            max_differences,
        } => commands::verify::run(&config, json, pipeline.as_deref(), max_differences).await,
        Command::Peek {
            plugin,
            limit,
            format,
            pipeline,
            slot,
            end_lsn,
        } => {
            let options = commands::peek::PeekOptions {
                plugin,
                limit,
                format,
                slot,
                end_lsn,
            };
            commands::peek::run(&config, &options, pipeline.as_deref()).await
        }
        Command::Serve { listen } => commands::serve::run(&config, listen).await,
        Command::Status { json, pipeline } => {
            commands::status::run(&config, json, pipeline.as_deref()).await
        }
        Command::Slots { what } => match what {
            SlotsCommand::List { json } => commands::slots::list(&config, json).await,
            SlotsCommand::Drop { name, force } => {
                commands::slots::drop(&config, &name, force).await
            }
            SlotsCommand::Cleanup {
                older_than,
                dry_run,
            } => commands::slots::cleanup(&config, older_than, dry_run).await,
        },
        Command::Setup {
            what: SetupCommand::Timestamps { apply, pipeline },
        } => commands::setup::timestamps(&config, apply, pipeline.as_deref()).await,
        Command::Sync { pipeline, dry_run } => {
            if dry_run {
                commands::sync::dry_run(&config, pipeline.as_deref()).await
            } else {
                commands::sync::run(&config, pipeline.as_deref()).await
            }
        }
        // Handled above, before a config file is needed.
        Command::Demo {
            duration,
            orders,
            plugin,
        } => commands::demo::run(duration, orders, plugin).await,
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,ferry=info",
        1 => "info,ferry=debug",
        _ => "debug,ferry=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter::default)
        .init();
}
