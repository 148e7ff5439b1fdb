//! `ferry check`: run the preflight for each pipeline and print the report.
//!
//! Exit status 1 when any item fails, so scripts and CI can gate on it.

use std::process::ExitCode;

use ferry_postgres::check::{run_check, CheckItem, SourceCheck, TargetCheck, TimestampCheck};
use ferry_postgres::Plugin;

use crate::config::{Config, PipelineConfig, SyncMode};

/// Runs the checks and prints them; exit status 1 if anything failed.
pub async fn run(config: &Config, json: bool, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let pipelines = config.select(only)?;
    let mut failed = false;
    let mut json_items = Vec::new();
    for pipeline in &pipelines {
        let report = check_pipeline(pipeline).await;
        failed |= report.has_failures();
        if json {
            json_items.extend(report.items.into_iter().map(|item| JsonItem {
                pipeline: pipeline.name.clone(),
                item,
            }));
        } else {
            if pipelines.len() > 1 || pipeline.name != "default" {
                println!("pipeline {}", pipeline.name);
            }
            println!("{report}");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&json_items)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn check_pipeline(pipeline: &PipelineConfig) -> ferry_postgres::check::CheckReport {
    let source = SourceCheck {
        conn: &pipeline.source.conn,
        plugin: pipeline.source.plugin,
        slot: &pipeline.source.slot,
        publication: (pipeline.source.plugin == Plugin::Pgoutput)
            .then_some(pipeline.source.publication.as_str()),
        tables: &pipeline.source.tables,
        logical_decoding: pipeline.sync.uses_slot(),
        snapshot_workers: pipeline.sync.snapshot_workers,
        timestamp: (pipeline.sync.mode == SyncMode::Timestamp).then(|| TimestampCheck {
            default_column: &pipeline.source.timestamp_column,
            columns: &pipeline.source.timestamp_columns,
            reconcile_deletes: pipeline.sync.timestamp.reconcile_deletes,
        }),
    };
    let target = TargetCheck {
        conn: &pipeline.target.conn,
        progress_schema: &pipeline.target.progress_schema,
    };
    run_check(source, Some(target)).await
}

#[derive(serde::Serialize)]
struct JsonItem {
    pipeline: String,
    #[serde(flatten)]
    item: CheckItem,
}
