//! Timestamp-column sync: a full copy, then polling each table for rows stamped after its
//! watermark, upserted into the target with the watermark in the same transaction.
//!
//! ```text
//!  horizon H0 ──► full copy (exported snapshot, no slot) ──► watermark (H0, none) per table
//!  every poll_interval:  H = horizon (before the poll's snapshot)
//!     per table, until a batch comes back short:
//!        source COPY (rows > watermark, < H, ordered, LIMIT n) ──► target temp table
//!        INSERT … ON CONFLICT (key) DO UPDATE; watermark := last row, or (H, none); COMMIT
//!  every reconcile_interval (optional): delete target keys the source no longer has
//! ```
//!
//! Why the horizon and the ordering make this lossless is explained in
//! `ferry_postgres::source::poll`. The role needs SELECT only: no REPLICATION, no slot.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ferry_core::{quote_ident, quote_literal, TableName};
use ferry_pgwire::{ConnParams, ReplicationClient};
use ferry_postgres::schema::read::read_schema;
use ferry_postgres::sink::upsert::{
    begin_batch_sql, copy_batch_sql, last_row_sql, load_watermarks, merge_sql, save_watermark_sql,
    watermark_ddl,
};
use ferry_postgres::source::poll::{poll_statement, PolledTable, Watermark, HORIZON_SQL};
use tokio::sync::watch;

use crate::error::SyncError;
use crate::full_sync::{run_full_sync, FullSyncOptions, SESSION_SETTINGS};
use crate::progress::Progress;

/// How a timestamp pipeline runs.
#[derive(Debug, Clone)]
pub struct TimestampSyncOptions {
    /// The initial copy (its snapshot is always exported without a slot).
    pub full: FullSyncOptions,
    /// Names this pipeline's watermarks on the target.
    pub pipeline: String,
    /// Schema of the watermark table on the target.
    pub progress_schema: String,
    /// The last-updated column of every table without an override.
    pub default_column: String,
    /// Per-table last-updated columns.
    pub columns: HashMap<TableName, String>,
    pub poll_interval: Duration,
    /// Rows per batch (one target transaction).
    pub batch_rows: usize,
    /// Transactions open longer than this may be missed (see `ferry_postgres::source::poll`).
    pub max_transaction_age: Duration,
    /// Remove target rows whose key the source no longer has, this often.
    pub reconcile_every: Option<Duration>,
}

/// Rows of keys compared per reconciliation step.
const RECONCILE_PAGE: usize = 10_000;

/// Runs until `stop` turns true (then finishes the batch in flight and returns).
pub async fn run_timestamp_sync(
    options: &TimestampSyncOptions,
    progress: &Progress,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SyncError> {
    let mut source = session(&options.full.source, "source").await?;
    let mut target = session(&options.full.target, "target").await?;
    let tables = polled_tables(options).await?;
    let mut watermarks =
        initial_watermarks(options, progress, &mut source, &mut target, &tables).await?;
    let mut next_reconcile = options.reconcile_every.map(|every| Instant::now() + every);
    while !*stop.borrow() {
        let horizon = horizon(&mut source, options.max_transaction_age).await?;
        for table in &tables {
            if *stop.borrow() {
                break;
            }
            let mark = watermarks.get(&table.table.name).cloned().ok_or_else(|| {
                SyncError::Internal(format!("no watermark for {}", table.table.name))
            })?;
            let (rows, mark) =
                poll_table(options, &mut source, &mut target, table, &mark, &horizon).await?;
            if rows > 0 {
                tracing::info!(table = %table.table.name, rows, "rows applied");
            }
            watermarks.insert(table.table.name.clone(), mark);
        }
        if next_reconcile.is_some_and(|at| Instant::now() >= at) {
            for table in &tables {
                let deleted = reconcile_table(&mut source, &mut target, table).await?;
                if deleted > 0 {
                    tracing::info!(table = %table.table.name, deleted, "deleted rows removed");
                }
            }
            next_reconcile = options.reconcile_every.map(|every| Instant::now() + every);
        }
        tokio::select! {
            _ = tokio::time::sleep(options.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    source.close().await;
    target.close().await;
    Ok(())
}

async fn session(params: &ConnParams, side: &'static str) -> Result<ReplicationClient, SyncError> {
    let mut client = ReplicationClient::connect_sql(params)
        .await
        .map_err(|source| SyncError::Session {
            what: if side == "source" {
                "connecting to the source"
            } else {
                "connecting to the target"
            },
            source,
        })?;
    client
        .simple_query(SESSION_SETTINGS)
        .await
        .map_err(|e| SyncError::session("configuring a session", e))?;
    Ok(client)
}

/// The selected tables with storage, their timestamp column and key, checked.
async fn polled_tables(options: &TimestampSyncOptions) -> Result<Vec<PolledTable>, SyncError> {
    let client = ferry_pgwire::connect_sql(&options.full.source)
        .await
        .map_err(|source| SyncError::Connect {
            side: "source",
            source,
        })?;
    let schema = read_schema(&client, &options.full.tables).await?;
    if schema.tables.is_empty() {
        return Err(SyncError::NothingSelected);
    }
    let mut tables = Vec::new();
    for table in schema.tables.into_iter().filter(|t| t.has_storage()) {
        let column = options
            .columns
            .get(&table.name)
            .cloned()
            .unwrap_or_else(|| options.default_column.clone());
        let Some(column_type) = table
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.type_sql.clone())
        else {
            return Err(SyncError::Timestamp {
                table: table.name.clone(),
                problem: format!(
                    "has no column {column:?}: run `ferry setup timestamps -c ferry.toml --apply`, \
                     or name its last-updated column in [source.timestamp_columns]"
                ),
            });
        };
        let Some(key_names) = table.primary_key.clone() else {
            return Err(SyncError::Timestamp {
                table: table.name.clone(),
                problem: "has no primary key, so polled rows cannot be matched to target rows: \
                          add one, or leave the table out of [source] tables"
                    .to_owned(),
            });
        };
        let key = key_names
            .iter()
            .map(|k| {
                let ty = table
                    .columns
                    .iter()
                    .find(|c| &c.name == k)
                    .map(|c| c.type_sql.clone())
                    .unwrap_or_else(|| "text".to_owned());
                (k.clone(), ty)
            })
            .collect();
        tables.push(PolledTable {
            table,
            column,
            column_type,
            key,
        });
    }
    Ok(tables)
}

/// The stored watermarks, or, on the first run, a full copy and watermarks at the horizon
/// read just before its snapshot.
async fn initial_watermarks(
    options: &TimestampSyncOptions,
    progress: &Progress,
    source: &mut ReplicationClient,
    target: &mut ReplicationClient,
    tables: &[PolledTable],
) -> Result<HashMap<TableName, Watermark>, SyncError> {
    let control = ferry_pgwire::connect_sql(&options.full.target)
        .await
        .map_err(|source| SyncError::Connect {
            side: "target",
            source,
        })?;
    let stored = load_watermarks(&control, &options.progress_schema, &options.pipeline)
        .await
        .map_err(|e| SyncError::sql("reading the stored watermarks", e))?;
    if tables.iter().all(|t| stored.contains_key(&t.table.name)) {
        tracing::info!(pipeline = %options.pipeline, "resuming from the stored watermarks");
        return Ok(stored);
    }
    // Read before the copy's snapshot: every row stamped below it is in the copy.
    let start = horizon(source, options.max_transaction_age).await?;
    let summary = run_full_sync(&options.full, progress).await?;
    tracing::info!(%summary, "initial copy done");
    let mark = Watermark {
        ts: start,
        key: None,
    };
    let mut sql = format!("{}; BEGIN", watermark_ddl(&options.progress_schema));
    for table in tables {
        sql.push_str("; ");
        sql.push_str(&save_watermark_sql(
            &options.progress_schema,
            &options.pipeline,
            &table.table.name,
            &mark,
        ));
    }
    sql.push_str("; COMMIT");
    target
        .simple_query(&sql)
        .await
        .map_err(|e| SyncError::session("storing the initial watermarks", e))?;
    Ok(tables
        .iter()
        .map(|t| (t.table.name.clone(), mark.clone()))
        .collect())
}

async fn horizon(source: &mut ReplicationClient, max_age: Duration) -> Result<String, SyncError> {
    let age = format!("{} milliseconds", max_age.as_millis());
    let sql = HORIZON_SQL.replace("$1", &quote_literal(&age));
    let result = source
        .simple_query(&sql)
        .await
        .map_err(|e| SyncError::session("reading the source's horizon", e))?;
    result
        .first()
        .and_then(|r| r.rows.first())
        .and_then(|row| row.first().cloned().flatten())
        .ok_or_else(|| SyncError::Internal("the horizon query returned nothing".into()))
}

/// Applies every row of `table` after `mark` and below `horizon`, batch by batch.
async fn poll_table(
    options: &TimestampSyncOptions,
    source: &mut ReplicationClient,
    target: &mut ReplicationClient,
    table: &PolledTable,
    mark: &Watermark,
    horizon: &str,
) -> Result<(u64, Watermark), SyncError> {
    let binary = table.table.binary_copy_safe();
    let name = &table.table.name;
    let mut mark = mark.clone();
    let mut total = 0;
    loop {
        target
            .simple_query(&begin_batch_sql(table))
            .await
            .map_err(|e| SyncError::session("starting a batch", e))?;
        let batch = copy_batch(
            source,
            target,
            table,
            &mark,
            horizon,
            options.batch_rows,
            binary,
        )
        .await;
        let rows = match batch {
            Ok(rows) => rows,
            Err(e) => {
                let _ = target.simple_query("ROLLBACK").await;
                return Err(e);
            }
        };
        let full = rows as usize >= options.batch_rows;
        let mut sql = String::new();
        if rows > 0 {
            sql.push_str(&merge_sql(table));
            sql.push_str("; ");
        }
        let next = if full {
            let last = target
                .simple_query(&last_row_sql(table))
                .await
                .map_err(|e| SyncError::session("reading the batch's last row", e))?;
            let row = last
                .first()
                .and_then(|r| r.rows.first())
                .ok_or_else(|| SyncError::Internal("a full batch has no last row".into()))?;
            let values: Vec<String> = row.iter().map(|v| v.clone().unwrap_or_default()).collect();
            Watermark {
                ts: values.first().cloned().unwrap_or_default(),
                key: Some(values[1..].to_vec()),
            }
        } else {
            Watermark {
                ts: horizon.to_owned(),
                key: None,
            }
        };
        sql.push_str(&save_watermark_sql(
            &options.progress_schema,
            &options.pipeline,
            name,
            &next,
        ));
        sql.push_str("; COMMIT");
        if let Err(e) = target.simple_query(&sql).await {
            let _ = target.simple_query("ROLLBACK").await;
            return Err(SyncError::Timestamp {
                table: name.clone(),
                problem: format!("applying polled rows failed: {e}"),
            });
        }
        total += rows;
        mark = next;
        if !full {
            return Ok((total, mark));
        }
    }
}

async fn copy_batch(
    source: &mut ReplicationClient,
    target: &mut ReplicationClient,
    table: &PolledTable,
    mark: &Watermark,
    horizon: &str,
    limit: usize,
    binary: bool,
) -> Result<u64, SyncError> {
    let read = |e| SyncError::session("reading polled rows", e);
    let write = |e| SyncError::session("loading polled rows", e);
    let mut out = source
        .copy_out(&poll_statement(table, mark, horizon, limit, binary))
        .await
        .map_err(read)?;
    let mut load = target
        .copy_in(&copy_batch_sql(table, binary))
        .await
        .map_err(write)?;
    while let Some(frames) = out.next_frames().await.map_err(read)? {
        load.send_frames(&frames).await.map_err(write)?;
    }
    out.finish().await.map_err(read)?;
    load.finish().await.map_err(write)
}

/// Deletes target rows whose key the source no longer has, one key range at a time: a page
/// of target keys first, then the source's keys in that range (read later, so a row added
/// to the source meanwhile is seen there and not deleted).
async fn reconcile_table(
    source: &mut ReplicationClient,
    target: &mut ReplicationClient,
    table: &PolledTable,
) -> Result<u64, SyncError> {
    let keys: Vec<String> = table.key.iter().map(|(n, _)| quote_ident(n)).collect();
    let key_list = keys.join(", ");
    let text_keys: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
    let literal = |values: &[String]| {
        let parts: Vec<String> = table
            .key
            .iter()
            .zip(values)
            .map(|((_, ty), v)| format!("{}::{ty}", quote_literal(v)))
            .collect();
        format!("({})", parts.join(", "))
    };
    let select = |filter: &str, limit: &str| {
        format!(
            "SELECT {} FROM ONLY {} {filter} ORDER BY {key_list} {limit}",
            text_keys.join(", "),
            table.table.name.quoted()
        )
    };
    let rows_of = |result: Vec<ferry_pgwire::QueryResult>| -> Vec<Vec<String>> {
        result
            .into_iter()
            .flat_map(|r| r.rows)
            .map(|row| row.into_iter().map(Option::unwrap_or_default).collect())
            .collect()
    };
    let mut after: Option<Vec<String>> = None;
    let mut deleted = 0;
    loop {
        let filter = after
            .as_ref()
            .map(|a| format!("WHERE ({key_list}) > {}", literal(a)))
            .unwrap_or_default();
        let page = rows_of(
            target
                .simple_query(&select(&filter, &format!("LIMIT {RECONCILE_PAGE}")))
                .await
                .map_err(|e| SyncError::session("reading target keys", e))?,
        );
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(deleted);
        };
        let range = format!(
            "WHERE ({key_list}) >= {} AND ({key_list}) <= {}",
            literal(first),
            literal(last)
        );
        let present: HashSet<Vec<String>> = rows_of(
            source
                .simple_query(&select(&range, ""))
                .await
                .map_err(|e| SyncError::session("reading source keys", e))?,
        )
        .into_iter()
        .collect();
        let gone: Vec<String> = page
            .iter()
            .filter(|k| !present.contains(*k))
            .map(|k| literal(k))
            .collect();
        if !gone.is_empty() {
            target
                .simple_query(&format!(
                    "DELETE FROM ONLY {} WHERE ({key_list}) IN ({})",
                    table.table.name.quoted(),
                    gone.join(", ")
                ))
                .await
                .map_err(|e| SyncError::session("deleting rows gone from the source", e))?;
            deleted += gone.len() as u64;
        }
        if page.len() < RECONCILE_PAGE {
            return Ok(deleted);
        }
        after = Some(last.clone());
    }
}
