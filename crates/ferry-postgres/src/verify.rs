//! `ferry verify`: is the target's data the same as the source's, table by table?
//!
//! ```text
//!  source: SET rendering; BEGIN REPEATABLE READ, READ ONLY ─┐ first statements run together:
//!  target: SET rendering; BEGIN REPEATABLE READ, READ ONLY ─┘ two snapshots, close in time
//!  per selected table, both sides at once:
//!    fingerprint per bucket (count, sum of row hashes) ──► equal: OK
//!    differing buckets ──► narrow (sub-buckets) ──► fetch keys + row hashes ──► differences
//! ```
//!
//! Hashing happens in SQL on each server ([`fingerprint`]): an equal bucket ships one row
//! per side, never the table. Values are compared by their text form under identical
//! session settings ([`session`]); `money` is compared as `numeric` because its text depends
//! on `lc_monetary`. Tables with a primary key are bucketed by key, and differences name
//! the keys (`only in source`, `only in target`, `different values`); keyless tables are
//! compared as multisets of row images, and differences name a row image by a short hash
//! and how often each side has it. Row values never go to the log; keys appear only in the
//! report.
//!
//! Which tables: the source tables matching the selection (ordinary and partitioned).
//! Partitioned tables are compared through the parent: a partition whose ancestor is
//! selected is not compared on its own ([`catalog`]), so the target may partition
//! differently. Each table is compared with the target table of the same name, over the
//! source's columns by name (generated columns included; column order and extra target
//! columns do not matter); a missing table or column is a difference. Plain tables are read
//! with `ONLY`, so inheritance children are compared as tables of their own.
//!
//! # What a comparison during a running sync can tell
//!
//! The source and target snapshots are taken at nearly, not exactly, the same moment, and
//! the target lags the source by the replication delay. While changes flow, rows changed
//! in the last moments may show as differences that the pipeline is about to remove. An
//! equal result is reliable: both snapshots agreed. To tell lag from real divergence, run
//! verify when the pipeline is caught up (lag 0) or paused with the source quiet, or re-run
//! it and compare the reported keys: a real difference stays, lag moves on. The long
//! read-only transaction holds back vacuum on both servers while verify runs.
//!
//! Limits: floats render differently between servers older than 12 and 12 or later
//! (`extra_float_digits` changed meaning), so such pairs show float differences; values of
//! different types on the two sides compare equal when their text is equal.

mod catalog;
mod compare;
mod error;
mod fingerprint;
mod report;
mod session;

use std::collections::HashMap;

use ferry_pgwire::ConnParams;
use tracing::info;

use crate::check::Side;
use crate::TableSelection;
use compare::{Comparison, TablePlan, TargetPlan};
use fingerprint::TableHashing;
use session::Session;

pub use error::VerifyError;
pub use report::{Difference, RowKey, TableResult, TableStatus, VerifyReport};

/// How thoroughly to compare and how much to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Differences listed per table; the report says when there are more.
    pub max_differences_per_table: usize,
    /// Buckets per table in the first fingerprint pass (at least 1); differing buckets are
    /// split again the same number of ways when they are large.
    pub buckets: u32,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_differences_per_table: 20,
            buckets: 256,
        }
    }
}

/// Compares every selected source table with the target, each side as of one snapshot.
pub async fn verify(
    source: &ConnParams,
    target: &ConnParams,
    selection: &TableSelection,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let (source, target) = tokio::try_join!(
        Session::open(source, Side::Source),
        Session::open(target, Side::Target)
    )?;
    let (source_version, _) = tokio::try_join!(source.take_snapshot(), target.take_snapshot())?;

    let tables = catalog::source_tables(&source.client, source_version, selection)
        .await
        .map_err(|e| source.error(None, e))?;
    if tables.is_empty() {
        return Err(VerifyError::NoTables);
    }
    let names: Vec<_> = tables.iter().map(|t| t.name.clone()).collect();
    let mut on_target = catalog::target_tables(&target.client, &names)
        .await
        .map_err(|e| target.error(None, e))?;
    info!(tables = tables.len(), "verifying tables");

    let plans: Vec<TablePlan> = tables
        .into_iter()
        .map(|table| plan(table, &mut on_target))
        .collect();
    let mut report = VerifyReport::default();
    for plan in &plans {
        let result = Comparison {
            source: &source,
            target: &target,
            plan,
            fanout: u64::from(options.buckets.max(1)),
            max_differences: options.max_differences_per_table,
        }
        .run()
        .await?;
        info!(
            table = %result.table,
            source_rows = result.source_rows,
            target_rows = result.target_rows,
            status = ?result.status,
            differences = result.differences.len(),
            "table compared"
        );
        report.tables.push(result);
    }
    Ok(report)
}

/// The comparison plan of one source table against the target table of its name.
fn plan(
    table: catalog::SourceTable,
    on_target: &mut HashMap<ferry_core::TableName, catalog::TargetTable>,
) -> TablePlan {
    let key = table.key.as_deref();
    let source = TableHashing::new(&table.name, table.relkind == 'p', &table.columns, key);
    let target = on_target.remove(&table.name).map(|found| TargetPlan {
        hashing: TableHashing::new(&table.name, found.relkind == 'p', &table.columns, key),
        missing_columns: table
            .columns
            .iter()
            .filter(|c| !found.columns.contains(&c.name))
            .map(|c| c.name.clone())
            .collect(),
    });
    TablePlan {
        key_names: key
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        name: table.name,
        source,
        target,
    }
}
