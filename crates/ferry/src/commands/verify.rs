//! `ferry verify`: compare source and target table by table, as of one snapshot per side.
//!
//! Exit status 1 when any table differs, so it can gate a cut-over.

use std::process::ExitCode;

use anyhow::Context;
use ferry_postgres::verify::{verify, VerifyOptions};

use crate::config::Config;

/// Verifies each pipeline (or `--pipeline NAME`) and prints the report.
pub async fn run(
    config: &Config,
    json: bool,
    only: Option<&str>,
    max_differences: usize,
) -> anyhow::Result<ExitCode> {
    let options = VerifyOptions {
        max_differences_per_table: max_differences,
        ..VerifyOptions::default()
    };
    let mut equal = true;
    for pipeline in config.select(only)? {
        let report = verify(
            &pipeline.source.conn,
            &pipeline.target.conn,
            &pipeline.source.tables,
            &options,
        )
        .await
        .with_context(|| format!("verifying pipeline {:?} failed", pipeline.name))?;
        equal &= report.is_equal();
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            if config.pipelines.len() > 1 {
                println!("pipeline {}", pipeline.name);
            }
            println!("{report}");
        }
    }
    Ok(if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
