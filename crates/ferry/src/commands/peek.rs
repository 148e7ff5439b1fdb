//! `ferry peek`: the decoded change stream of the source, as it happens, from a throwaway
//! slot: the source document's "test the log plugin" step, done properly.
//!
//! A TEMPORARY slot is created (the server drops it when the connection ends, whatever
//! happens to this process) and streamed from its creation point; each change is printed
//! with its table, operation, key and values until `--limit` changes or Ctrl-C, with any of
//! the three plugins (through the same decoders as `ferry sync`). With pgoutput a
//! publication is needed: the configured one if it exists, otherwise a temporary one for the
//! selected tables, dropped at the end; wal2json is told the selected tables; decoderbufs
//! sends every table's changes and the others are left out here. Values go to stdout because the user
//! asked to see them; they are never logged.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ferry_core::{quote_ident, Datum, Relation, RelationId, Row};
use ferry_pgwire::{ReplicationClient, ReplicationMessage, SlotOptions, SnapshotAction};
use ferry_postgres::{catalog, Plugin};
use ferry_runtime::{plugin_options, selected_tables, StreamDecoder};
use serde_json::{json, Map, Value};

use crate::config::{Config, PipelineConfig};

/// How changes are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per change: `INSERT "public"."t" id=1 note='a'`.
    Text,
    /// One JSON object per line.
    Json,
    /// Nothing per change; at the end, how many were decoded and how fast.
    Count,
}

/// What `ferry peek` was asked for.
#[derive(Debug, Clone)]
pub struct PeekOptions {
    pub plugin: Option<Plugin>,
    pub limit: Option<usize>,
    pub format: Format,
    /// An existing slot to read (its position is not confirmed, so it does not move).
    pub slot: Option<String>,
    pub end_lsn: Option<ferry_core::Lsn>,
}

/// Streams and prints changes until `limit` row changes, `end_lsn`, or Ctrl-C.
pub async fn run(
    config: &Config,
    options: &PeekOptions,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let pipeline = match only {
        Some(name) => config.pipelines.iter().find(|p| p.name == name),
        None => config.pipelines.first(),
    }
    .with_context(|| {
        format!(
            "no pipeline named {:?} in the config",
            only.unwrap_or_default()
        )
    })?;
    let plugin = options.plugin.unwrap_or(pipeline.source.plugin);
    let sql = ferry_pgwire::connect_sql(&pipeline.source.conn)
        .await
        .context("cannot connect to the source")?;
    let (publication, temporary_publication) = if plugin == Plugin::Pgoutput {
        publication(&sql, pipeline).await?
    } else {
        (String::new(), false)
    };
    let result = stream(pipeline, plugin, &publication, options).await;
    if temporary_publication {
        let drop = format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&publication));
        if let Err(e) = sql.batch_execute(&drop).await {
            eprintln!("warning: could not drop the temporary publication: {e}; run {drop}");
        }
    }
    result
}

/// The configured publication if it exists, else a temporary one for the selected tables.
async fn publication(
    sql: &tokio_postgres::Client,
    pipeline: &PipelineConfig,
) -> anyhow::Result<(String, bool)> {
    let configured = &pipeline.source.publication;
    let exists: bool = sql
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[configured],
        )
        .await?
        .get(0);
    if exists {
        return Ok((configured.clone(), false));
    }
    let version: i32 = sql
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    let tables: Vec<String> = catalog::tables(sql, u32::try_from(version).unwrap_or(0))
        .await?
        .into_iter()
        .filter(|t| t.relkind == 'r' && !t.is_partition && pipeline.source.tables.matches(&t.name))
        .map(|t| t.name.to_string())
        .collect();
    if tables.is_empty() {
        bail!("[source] tables match no table: nothing to peek at (run ferry check)");
    }
    let name = format!("ferry_peek_{}", std::process::id());
    sql.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR TABLE {}",
        quote_ident(&name),
        tables.join(", ")
    ))
    .await
    .with_context(|| {
        format!(
            "publication {configured:?} does not exist and a temporary one cannot be created \
             (it needs ownership of the tables): create {configured:?} first, see ferry check"
        )
    })?;
    Ok((name, true))
}

async fn stream(
    pipeline: &PipelineConfig,
    plugin: Plugin,
    publication: &str,
    options: &PeekOptions,
) -> anyhow::Result<ExitCode> {
    let (limit, format) = (options.limit, options.format);
    let mut client = ReplicationClient::connect(&pipeline.source.conn)
        .await
        .context("cannot open a replication connection to the source (run ferry check)")?;
    let (slot, start) = match &options.slot {
        // 0/0: the server starts at the slot's confirmed position.
        Some(slot) => (slot.clone(), ferry_core::Lsn::ZERO),
        None => {
            let slot = format!("ferry_peek_{}", std::process::id());
            let created = client
                .create_slot(
                    &slot,
                    plugin.name(),
                    SlotOptions {
                        temporary: true,
                        snapshot: SnapshotAction::Nothing,
                    },
                )
                .await
                .context("cannot create the temporary slot (run ferry check)")?;
            (slot, created.consistent_point)
        }
    };
    eprintln!("peeking from slot {slot} ({plugin}) at {start}; Ctrl-C to stop");
    let tables = &pipeline.source.tables;
    let selected = if plugin == Plugin::Pgoutput {
        Vec::new()
    } else {
        selected_tables(&pipeline.source.conn, tables).await?
    };
    let version = client.server_version().0 / 10_000;
    let plugin_opts = plugin_options(plugin, publication, version, false, &selected);
    let plugin_opts: Vec<(&str, &str)> =
        plugin_opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut stream = client
        .start_logical_replication(&slot, start, &plugin_opts)
        .await?;
    let mut decoder = StreamDecoder::new(plugin, &pipeline.source.conn, &selected, start).await?;
    let started = std::time::Instant::now();
    let mut transactions = 0u64;
    let mut relations: HashMap<RelationId, Relation> = HashMap::new();
    let mut shown = 0;
    'stream: loop {
        let message = tokio::select! {
            message = stream.next() => message?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(message) = message else { break };
        let ReplicationMessage::XLogData(data) = message else {
            continue;
        };
        for change in decoder.decode(data.wal_start, data.data)? {
            if let ferry_core::Change::Relation { relation, .. } = &change {
                relations.insert(relation.id, relation.clone());
                continue;
            }
            if let ferry_core::Change::Commit { end_lsn, .. }
            | ferry_core::Change::StreamCommit { end_lsn, .. } = &change
            {
                transactions += 1;
                if options.end_lsn.is_some_and(|end| *end_lsn >= end) {
                    break 'stream;
                }
            }
            if format == Format::Count {
                if relation_of(&change).is_some() {
                    shown += 1;
                    if limit.is_some_and(|l| shown >= l) {
                        break 'stream;
                    }
                }
                continue;
            }
            // decoderbufs sends every table's changes.
            if relation_of(&change)
                .and_then(|id| relations.get(&id))
                .is_some_and(|r| {
                    !tables.matches(&ferry_core::TableName::new(
                        r.schema.clone(),
                        r.name.clone(),
                    ))
                })
            {
                continue;
            }
            let Some(line) = render(&change, &relations, format) else {
                continue;
            };
            println!("{line}");
            if relation_of(&change).is_some() {
                shown += 1;
                if limit.is_some_and(|l| shown >= l) {
                    break 'stream;
                }
            }
        }
    }
    // Closing the connection drops the temporary slot (an existing one is not confirmed).
    drop(stream);
    if format == Format::Count {
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{shown} changes in {transactions} transactions in {seconds:.2} s: {:.0} changes/s",
            shown as f64 / seconds.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The relation a row change is to (the first of a TRUNCATE's).
fn relation_of(change: &ferry_core::Change) -> Option<RelationId> {
    use ferry_core::Change::*;
    match change {
        Insert { relation, .. } | Update { relation, .. } | Delete { relation, .. } => {
            Some(*relation)
        }
        Truncate { relations, .. } => relations.first().copied(),
        _ => None,
    }
}

fn render(
    change: &ferry_core::Change,
    relations: &HashMap<RelationId, Relation>,
    format: Format,
) -> Option<String> {
    use ferry_core::Change::*;
    let table = |id: &RelationId| {
        relations.get(id).map_or(format!("relation {}", id.0), |r| {
            format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name))
        })
    };
    let (op, fields): (&str, Vec<(&str, Value)>) = match change {
        Begin { xid, final_lsn, .. } => (
            "begin",
            vec![("xid", json!(xid)), ("lsn", json!(final_lsn.to_string()))],
        ),
        Commit { end_lsn, .. } => ("commit", vec![("lsn", json!(end_lsn.to_string()))]),
        Insert { relation, new, .. } => (
            "insert",
            vec![
                ("table", json!(table(relation))),
                ("new", row(relations.get(relation), new, false)),
            ],
        ),
        Update {
            relation,
            key,
            old,
            new,
            ..
        } => {
            let mut fields = identity(table(relation), relations.get(relation), key, old);
            fields.push(("new", row(relations.get(relation), new, false)));
            ("update", fields)
        }
        Delete {
            relation, key, old, ..
        } => {
            let fields = identity(table(relation), relations.get(relation), key, old);
            ("delete", fields)
        }
        Truncate {
            relations: ids,
            cascade,
            restart_identity,
            ..
        } => (
            "truncate",
            vec![
                ("tables", json!(ids.iter().map(table).collect::<Vec<_>>())),
                ("cascade", json!(cascade)),
                ("restart_identity", json!(restart_identity)),
            ],
        ),
        Message {
            prefix, content, ..
        } => (
            "message",
            vec![
                ("prefix", json!(prefix)),
                ("content", json!(String::from_utf8_lossy(content))),
            ],
        ),
        _ => return None,
    };
    Some(match format {
        Format::Json => {
            let mut object = Map::new();
            object.insert("op".into(), json!(op));
            for (name, value) in fields {
                object.insert(name.into(), value);
            }
            Value::Object(object).to_string()
        }
        Format::Text => {
            let parts: Vec<String> = fields
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(s) if name == "table" => s,
                    Value::Object(map) => format!(
                        "{name}({})",
                        map.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => format!("{name}={other}"),
                })
                .collect();
            format!("{} {}", op.to_uppercase(), parts.join(" "))
        }
        Format::Count => return None,
    })
}

/// The table and whichever identity of the old row the change carries: the key (`K`) or
/// the whole old row (`O`, REPLICA IDENTITY FULL).
fn identity(
    table: String,
    relation: Option<&Relation>,
    key: &Option<Row>,
    old: &Option<Row>,
) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("table", json!(table))];
    if let Some(key) = key {
        fields.push(("key", row(relation, key, true)));
    }
    if let Some(old) = old {
        fields.push(("old", row(relation, old, false)));
    }
    fields
}

/// A tuple as `{column: value}`; with `key_only`, only the replica-identity columns.
fn row(relation: Option<&Relation>, row: &Row, key_only: bool) -> Value {
    let mut object = Map::new();
    for (i, datum) in row.0.iter().enumerate() {
        let column = relation.and_then(|r| r.columns.get(i));
        if key_only && !column.is_some_and(|c| c.is_key) {
            continue;
        }
        let name = column.map_or_else(|| format!("${}", i + 1), |c| c.name.clone());
        let value = match datum {
            Datum::Null => Value::Null,
            Datum::UnchangedToast => json!("(unchanged TOAST)"),
            Datum::Text(bytes) => json!(String::from_utf8_lossy(bytes)),
            Datum::Binary(bytes) => json!(format!(
                "\\x{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )),
        };
        object.insert(name, value);
    }
    Value::Object(object)
}
