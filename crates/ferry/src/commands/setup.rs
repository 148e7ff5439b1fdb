//! `ferry setup timestamps`: the trigger set-up that timestamp mode polls by.
//!
//! Without `--apply` it prints the SQL (one transaction) for a DBA to review or run; with
//! `--apply` it runs it as the configured source role, which must own the tables. Running
//! it again changes nothing.

use std::process::ExitCode;

use anyhow::Context;
use ferry_postgres::catalog;
use ferry_postgres::source::timestamps::{apply_setup, setup_script, TimestampTable};

use crate::config::{Config, PipelineConfig};

/// Prints or applies the set-up of each pipeline (or `--pipeline NAME`).
pub async fn timestamps(
    config: &Config,
    apply: bool,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    for pipeline in config.select(only)? {
        let client = ferry_pgwire::connect_sql(&pipeline.source.conn)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the source of pipeline {:?}",
                    pipeline.name
                )
            })?;
        let tables = selected_tables(&client, pipeline).await?;
        anyhow::ensure!(
            !tables.is_empty(),
            "[source] tables of pipeline {:?} match no table: run ferry check to see what they select",
            pipeline.name
        );
        let schema = &pipeline.source.timestamp_function_schema;
        if !apply {
            print!("{}", setup_script(schema, &tables));
            continue;
        }
        let report = apply_setup(&client, schema, &tables)
            .await
            .with_context(|| {
                format!(
                    "setting up timestamps for pipeline {:?} failed",
                    pipeline.name
                )
            })?;
        for statement in &report.statements {
            println!("done  {}", statement.object);
        }
        for warning in &report.warnings {
            println!("warn  {warning}");
        }
        if !report.added_columns.is_empty() {
            println!(
                "note  {} tables got the column; their existing rows carry the set-up time and are read once more after the first copy",
                report.added_columns.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn selected_tables(
    client: &tokio_postgres::Client,
    pipeline: &PipelineConfig,
) -> anyhow::Result<Vec<TimestampTable>> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    let all = catalog::tables(client, u32::try_from(version).unwrap_or(0)).await?;
    Ok(all
        .into_iter()
        .filter(|t| t.relkind == 'r' && pipeline.source.tables.matches(&t.name))
        .map(|t| {
            let column = pipeline
                .source
                .timestamp_columns
                .get(&t.name)
                .cloned()
                .unwrap_or_else(|| pipeline.source.timestamp_column.clone());
            TimestampTable::new(t.name, column)
        })
        .collect())
}
