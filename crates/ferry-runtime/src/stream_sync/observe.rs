//! Reading, once, what a run starts from (the [`Observed`] of `plan.rs`): the source's
//! tables, publication and slots, and the target's stored position and table record.
//! Read-only, so `ferry status` and `ferry sync --dry-run` can show the plan of a pipeline
//! that is running or has never run.

use std::collections::HashMap;

use ferry_core::{quote_ident, Lsn, TableName};
use ferry_postgres::{catalog, Plugin};
use tokio_postgres::Client;

use super::plan::{Observed, TableStart, XidSnapshot};
use super::setup::source_catalog;
use super::StreamSyncOptions;
use crate::error::SyncError;

/// The slot a copy of added tables would use: temporary now, but permanent in older Ferry
/// versions, where a crash left it behind.
pub(super) fn added_tables_slot(slot: &str) -> String {
    format!("{slot}_add")
}

/// Reads what is, on both sides.
pub async fn observe(options: &StreamSyncOptions) -> Result<Observed, SyncError> {
    let (source, version) = source_catalog(options).await?;
    let selection = ferry_postgres::read_selection(&source, version, &options.full.tables)
        .await
        .map_err(|e| SyncError::sql("listing the source's tables", e))?;
    let publication = if options.plugin == Plugin::Pgoutput {
        catalog::publication(&source, version, &options.publication)
            .await
            .map_err(|e| SyncError::sql("reading the publication", e))?
    } else {
        None
    };
    let slot = catalog::slot(&source, version, &options.slot)
        .await
        .map_err(|e| SyncError::sql("reading the slot", e))?;
    let leftover_slots = catalog::slot(&source, version, &added_tables_slot(&options.slot))
        .await
        .map_err(|e| SyncError::sql("reading the slots", e))?
        .filter(|s| !s.temporary)
        .map(|s| s.name)
        .into_iter()
        .collect();
    let target = ferry_pgwire::connect_sql(&options.full.target)
        .await
        .map_err(|source| SyncError::Connect {
            side: "target",
            source,
        })?;
    let (position, recorded, recorded_oids) = read_target(&target, options).await?;
    Ok(Observed {
        version,
        selection,
        publication,
        slot,
        leftover_slots,
        position,
        recorded,
        recorded_oids,
    })
}

/// What [`read_target`] returns: the stored position, the table record and its OIDs.
type TargetState = (
    Option<Lsn>,
    Vec<(TableName, Option<TableStart>)>,
    HashMap<TableName, u32>,
);

/// The stored position and the table record, if the tables that hold them exist.
async fn read_target(
    target: &Client,
    options: &StreamSyncOptions,
) -> Result<TargetState, SyncError> {
    let schema = quote_ident(&options.progress_schema);
    let exists = |table: String| async move {
        target
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map(|r| r.get::<_, bool>(0))
            .map_err(|e| SyncError::sql("reading the target's progress tables", e))
    };
    let parse = |text: Option<String>| -> Result<Option<Lsn>, SyncError> {
        text.map(|t| {
            t.parse::<Lsn>()
                .map_err(|e| SyncError::Internal(format!("stored position: {e}")))
        })
        .transpose()
    };
    let mut position = None;
    if exists(format!("{schema}.progress")).await? {
        let row = target
            .query_opt(
                &format!("SELECT lsn::text FROM {schema}.progress WHERE pipeline = $1"),
                &[&options.pipeline],
            )
            .await
            .map_err(|e| SyncError::sql("reading the stored position", e))?;
        position = parse(row.map(|r| r.get(0)))?;
    }
    let mut recorded = Vec::new();
    let mut oids = HashMap::new();
    if exists(format!("{schema}.tables")).await? {
        let rows = target
            .query(
                &format!(
                    // A record from before the snapshot and OID columns lacks them: read them
                    // by name.
                    "SELECT schema_name, table_name, start_lsn::text, to_jsonb(r) ->> 'snapshot',
                            to_jsonb(r) ->> 'source_oid'
                     FROM {schema}.tables r WHERE pipeline = $1 ORDER BY 1, 2"
                ),
                &[&options.pipeline],
            )
            .await
            .map_err(|e| SyncError::sql("reading the pipeline's tables", e))?;
        for row in rows {
            let snapshot = row
                .get::<_, Option<String>>(3)
                .and_then(|s| XidSnapshot::parse(&s));
            let lsn = parse(row.get(2))?;
            let table = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
            if let Some(oid) = row
                .get::<_, Option<String>>(4)
                .and_then(|s| s.parse::<u32>().ok())
            {
                oids.insert(table.clone(), oid);
            }
            recorded.push((table, lsn.map(|lsn| TableStart { lsn, snapshot })));
        }
    }
    Ok((position, recorded, oids))
}
