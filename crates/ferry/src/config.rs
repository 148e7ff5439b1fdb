//! `ferry.toml`: reading, defaults and validation.
//!
//! A file holds one pipeline (`[source]`, `[target]`, `[sync]`) or several (`[[pipeline]]`
//! tables, each with a `name`). [`load`] reads and parses; [`validate`] is pure and turns the
//! raw file into a [`Config`] whose every field has been checked, so later code never meets
//! a bad value. Each error names the field, the value and what is expected. Connection URLs
//! are parsed here (with the `PG*` environment, as libpq does), but nothing connects.

mod raw;
mod retention;

pub use retention::{RetentionAction, RetentionConfig};

use std::fmt;
use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::time::Duration;

use ferry_core::TableName;
use ferry_pgwire::commands::validate_slot_name;
use ferry_pgwire::ConnParams;
use ferry_postgres::{Plugin, TablePattern, TableSelection};

pub use raw::RawFile;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub pipelines: Vec<PipelineConfig>,
}

impl Config {
    /// The pipelines a command acts on: the one named `only`, or all. An unknown name is an
    /// error that lists the configured ones.
    pub fn select(&self, only: Option<&str>) -> Result<Vec<&PipelineConfig>, ConfigError> {
        let chosen: Vec<&PipelineConfig> = self
            .pipelines
            .iter()
            .filter(|p| only.is_none_or(|name| p.name == name))
            .collect();
        if chosen.is_empty() {
            let names: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
            return Err(invalid(
                "--pipeline",
                format!(
                    "no pipeline named {:?}: the config has {}",
                    only.unwrap_or_default(),
                    names.join(", ")
                ),
            ));
        }
        Ok(chosen)
    }
}

/// One source, one target, and how to sync them.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// `default` for a single-pipeline file.
    pub name: String,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub conn: ConnParams,
    pub plugin: Plugin,
    pub slot: String,
    /// Used with pgoutput only.
    pub publication: String,
    pub tables: TableSelection,
    /// Timestamp mode: the last-updated column of every table without an override.
    pub timestamp_column: String,
    /// Timestamp mode: per-table last-updated columns.
    pub timestamp_columns: HashMap<TableName, String>,
    /// Timestamp mode: the schema of the trigger functions `ferry setup timestamps` creates.
    pub timestamp_function_schema: String,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub conn: ConnParams,
    /// Where the progress table lives.
    pub progress_schema: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    Incremental,
    FullAndIncremental,
    Timestamp,
}

impl SyncMode {
    const NAMES: [(&'static str, SyncMode); 4] = [
        ("full", SyncMode::Full),
        ("incremental", SyncMode::Incremental),
        ("full+incremental", SyncMode::FullAndIncremental),
        ("timestamp", SyncMode::Timestamp),
    ];
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = SyncMode::NAMES
            .iter()
            .find(|(_, m)| m == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub mode: SyncMode,
    pub snapshot_workers: u32,
    /// What to do with target tables that exist and hold rows.
    pub on_existing: OnExisting,
    /// In `full` mode, keep the slot created with the snapshot so incremental sync can
    /// continue from the copy later.
    pub keep_slot: bool,
    /// Timestamp mode settings.
    pub timestamp: TimestampSettings,
    /// How often a heartbeat message is written on the source while streaming; `None`
    /// (`heartbeat_interval = "off"`) never.
    pub heartbeat_interval: Option<Duration>,
    /// How often the source's tables are listed while streaming, to take in tables created
    /// (or dropped and created again) that match the selection; `None` (`"off"`): only at
    /// each start.
    pub table_check_interval: Option<Duration>,
    /// Let PostgreSQL 14+ stream large transactions before they commit.
    pub streaming: bool,
    /// The WAL retention guard.
    pub retention: RetentionConfig,
}

/// How `mode = "timestamp"` polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampSettings {
    pub poll_interval: Duration,
    pub batch_rows: usize,
    pub max_transaction_age: Duration,
    /// Remove target rows deleted on the source, every `reconcile_interval`.
    pub reconcile_deletes: bool,
    pub reconcile_interval: Duration,
}

impl SyncConfig {
    /// Whether this pipeline needs a replication slot (and so logical decoding). A one-off
    /// `full` copy without `keep_slot` exports its snapshot without one.
    pub fn uses_slot(&self) -> bool {
        match self.mode {
            SyncMode::Timestamp => false,
            SyncMode::Full => self.keep_slot,
            SyncMode::Incremental | SyncMode::FullAndIncremental => true,
        }
    }
}

/// What a full copy does with a target table that already holds rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    /// Stop before copying anything, naming the table.
    Error,
    /// Empty it, then copy.
    Truncate,
    /// Keep its rows and add the source's.
    Append,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: is it there? (set it with -c PATH)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid ferry.toml")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw: RawFile = toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })?;
    validate(raw)
}

pub const DEFAULT_SNAPSHOT_WORKERS: u32 = 4;
pub const MAX_SNAPSHOT_WORKERS: i64 = 64;

/// Checks every field and fills in defaults.
pub fn validate(raw: RawFile) -> Result<Config, ConfigError> {
    let single = raw.source.is_some() || raw.target.is_some() || raw.sync.is_some();
    let pipelines = match (raw.pipeline, single) {
        (Some(_), true) => return Err(invalid(
            "pipeline",
            "use either [source]/[target]/[sync] for one pipeline or [[pipeline]] tables, not both",
        )),
        (Some(list), false) => {
            if list.is_empty() {
                return Err(invalid("pipeline", "at least one [[pipeline]] is needed"));
            }
            let mut pipelines = Vec::new();
            for (i, p) in list.into_iter().enumerate() {
                let prefix = format!("pipeline[{i}]");
                let name = validate_pipeline_name(&p.name)
                    .map_err(|m| invalid(format!("{prefix}.name"), m))?;
                if pipelines.iter().any(|q: &PipelineConfig| q.name == name) {
                    return Err(invalid(
                        format!("{prefix}.name"),
                        format!("{name:?} is used by two pipelines: names must be unique"),
                    ));
                }
                let default_slot = format!("ferry_{}", name.to_ascii_lowercase().replace('-', "_"));
                pipelines.push(pipeline(
                    &prefix,
                    name,
                    p.source,
                    p.target,
                    p.sync,
                    &default_slot,
                )?);
            }
            pipelines
        }
        (None, _) => {
            let source = raw.source.ok_or_else(|| {
                invalid(
                    "source",
                    "missing: add a [source] table with url = \"postgres://…\"",
                )
            })?;
            let target = raw.target.ok_or_else(|| {
                invalid(
                    "target",
                    "missing: add a [target] table with url = \"postgres://…\"",
                )
            })?;
            vec![pipeline(
                "",
                "default".to_owned(),
                source,
                target,
                raw.sync,
                "ferry",
            )?]
        }
    };
    check_distinct_slots(&pipelines)?;
    Ok(Config { pipelines })
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn pipeline(
    prefix: &str,
    name: String,
    source: raw::RawSource,
    target: raw::RawTarget,
    sync: Option<raw::RawSync>,
    default_slot: &str,
) -> Result<PipelineConfig, ConfigError> {
    let f = |name: &str| field(prefix, name);
    let source_conn =
        ConnParams::parse(&source.url).map_err(|e| invalid(f("source.url"), e.to_string()))?;
    let plugin = match source.plugin.as_deref() {
        None => Plugin::Pgoutput,
        Some(text) => text
            .parse()
            .map_err(|m: String| invalid(f("source.plugin"), m))?,
    };
    let slot = source.slot.unwrap_or_else(|| default_slot.to_owned());
    validate_slot_name(&slot).map_err(|m| invalid(f("source.slot"), m))?;
    let publication = source.publication.unwrap_or_else(|| slot.clone());
    validate_identifier(&publication).map_err(|m| invalid(f("source.publication"), m))?;
    let include = source.tables.unwrap_or_else(|| vec!["public.*".to_owned()]);
    if include.is_empty() {
        return Err(invalid(
            f("source.tables"),
            "is empty: list at least one pattern, e.g. [\"public.*\"]",
        ));
    }
    let tables = TableSelection::parse(&include, &source.exclude.unwrap_or_default())
        .map_err(|m| invalid(f("source.tables"), m))?;
    let timestamp_column = source
        .timestamp_column
        .unwrap_or_else(|| "last_update".to_owned());
    validate_identifier(&timestamp_column).map_err(|m| invalid(f("source.timestamp_column"), m))?;
    let timestamp_function_schema = source
        .timestamp_function_schema
        .unwrap_or_else(|| "public".to_owned());
    validate_identifier(&timestamp_function_schema)
        .map_err(|m| invalid(f("source.timestamp_function_schema"), m))?;
    let mut timestamp_columns = HashMap::new();
    for (table, column) in source.timestamp_columns.unwrap_or_default() {
        let field = f(&format!("source.timestamp_columns.{table:?}"));
        let name = TablePattern::parse(&table)
            .ok()
            .and_then(|p| p.exact_name())
            .ok_or_else(|| {
                invalid(
                    &field,
                    format!(
                        "{table:?} is not a table name: expected schema.table without wildcards"
                    ),
                )
            })?;
        validate_identifier(&column).map_err(|m| invalid(&field, m))?;
        timestamp_columns.insert(name, column);
    }

    match target.kind.as_deref() {
        None | Some("postgres") => {}
        Some(other) => {
            return Err(invalid(
                f("target.kind"),
                format!("{other:?} is not a target kind: expected \"postgres\""),
            ))
        }
    }
    let target_conn =
        ConnParams::parse(&target.url).map_err(|e| invalid(f("target.url"), e.to_string()))?;
    let progress_schema = target.progress_schema.unwrap_or_else(|| "ferry".to_owned());
    validate_identifier(&progress_schema).map_err(|m| invalid(f("target.progress_schema"), m))?;

    let sync = sync.unwrap_or_default();
    let mode = match sync.mode.as_deref() {
        None => SyncMode::FullAndIncremental,
        Some(text) => SyncMode::NAMES.iter().find(|(n, _)| *n == text).map(|(_, m)| *m).ok_or_else(|| {
            invalid(f("sync.mode"), format!("{text:?} is not a mode: expected full, incremental, full+incremental or timestamp"))
        })?,
    };
    let workers = sync
        .snapshot_workers
        .unwrap_or(i64::from(DEFAULT_SNAPSHOT_WORKERS));
    if !(1..=MAX_SNAPSHOT_WORKERS).contains(&workers) {
        return Err(invalid(
            f("sync.snapshot_workers"),
            format!("{workers} is out of range: expected 1 to {MAX_SNAPSHOT_WORKERS}"),
        ));
    }
    let on_existing = match sync.on_existing.as_deref() {
        None | Some("error") => OnExisting::Error,
        Some("truncate") => OnExisting::Truncate,
        Some("append") => OnExisting::Append,
        Some(other) => {
            return Err(invalid(
                f("sync.on_existing"),
                format!("{other:?} is not a choice: expected error, truncate or append"),
            ))
        }
    };
    Ok(PipelineConfig {
        name,
        source: SourceConfig {
            conn: source_conn,
            plugin,
            slot,
            publication,
            tables,
            timestamp_column,
            timestamp_columns,
            timestamp_function_schema,
        },
        target: TargetConfig {
            conn: target_conn,
            progress_schema,
        },
        sync: SyncConfig {
            mode,
            snapshot_workers: u32::try_from(workers).unwrap_or(DEFAULT_SNAPSHOT_WORKERS),
            on_existing,
            keep_slot: sync.keep_slot.unwrap_or(false),
            heartbeat_interval: match sync.heartbeat_interval.as_deref() {
                Some("off") => None,
                text => Some(duration(&f("sync.heartbeat_interval"), text, "10s")?),
            },
            table_check_interval: match sync.table_check_interval.as_deref() {
                Some("off") => None,
                text => Some(duration(&f("sync.table_check_interval"), text, "5s")?),
            },
            streaming: sync.streaming.unwrap_or(true),
            retention: RetentionConfig::parse(
                |name| f(&format!("sync.{name}")),
                sync.warn_retained_wal.as_deref(),
                sync.max_retained_wal.as_deref(),
                sync.on_max_retained_wal.as_deref(),
                sync.retention_check_interval.as_deref(),
            )?,
            timestamp: TimestampSettings {
                poll_interval: duration(
                    &f("sync.poll_interval"),
                    sync.poll_interval.as_deref(),
                    "5s",
                )?,
                batch_rows: match sync.batch_rows {
                    None => 10_000,
                    Some(n) if (1..=10_000_000).contains(&n) => n as usize,
                    Some(n) => {
                        return Err(invalid(
                            f("sync.batch_rows"),
                            format!("{n} is out of range: expected 1 to 10000000"),
                        ))
                    }
                },
                max_transaction_age: duration(
                    &f("sync.max_transaction_age"),
                    sync.max_transaction_age.as_deref(),
                    "15m",
                )?,
                reconcile_deletes: sync.reconcile_deletes.unwrap_or(false),
                reconcile_interval: duration(
                    &f("sync.reconcile_interval"),
                    sync.reconcile_interval.as_deref(),
                    "10m",
                )?,
            },
        },
    })
}

/// A duration like `500ms`, `5s`, `10m`, `1h 30m`; `default` when absent.
fn duration(field: &str, text: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or(default);
    let value = humantime::parse_duration(text).map_err(|_| {
        invalid(
            field,
            format!(
                "{text:?} is not a duration: expected e.g. \"500ms\", \"5s\", \"10m\" or \"1h\""
            ),
        )
    })?;
    if value.is_zero() {
        return Err(invalid(
            field,
            format!("{text:?} is zero: expected a positive duration"),
        ));
    }
    Ok(value)
}

fn validate_pipeline_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{name:?} is not a pipeline name: expected 1 to 40 letters, digits, '_' or '-'"
        ));
    }
    Ok(name.to_owned())
}

/// A name PostgreSQL accepts as an identifier (any characters, at most 63 bytes).
fn validate_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(format!(
            "{name:?} is not a valid name: expected 1 to 63 bytes"
        ));
    }
    Ok(())
}

fn check_distinct_slots(pipelines: &[PipelineConfig]) -> Result<(), ConfigError> {
    for (i, p) in pipelines.iter().enumerate() {
        if let Some(q) = pipelines[..i].iter().find(|q| {
            q.source.slot == p.source.slot
                && q.source.conn.hosts == p.source.conn.hosts
                && q.source.conn.dbname == p.source.conn.dbname
        }) {
            return Err(invalid(
                format!("pipeline[{i}].source.slot"),
                format!("slot {:?} is also used by pipeline {:?}: a slot serves one pipeline; set distinct slot names", p.source.slot, q.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
