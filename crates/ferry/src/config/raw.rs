//! The file as written: serde structs that mirror `ferry.toml` and reject unknown fields.
//!
//! Nothing here is checked beyond TOML types; [`super::validate`] turns these into the
//! validated [`super::Config`]. Keeping the two apart means every default and every rule
//! lives in one pure function.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub source: Option<RawSource>,
    pub target: Option<RawTarget>,
    pub sync: Option<RawSync>,
    pub pipeline: Option<Vec<RawPipeline>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: String,
    pub source: RawSource,
    pub target: RawTarget,
    pub sync: Option<RawSync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub url: String,
    pub plugin: Option<String>,
    pub slot: Option<String>,
    pub publication: Option<String>,
    pub tables: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub timestamp_column: Option<String>,
    pub timestamp_columns: Option<std::collections::BTreeMap<String, String>>,
    pub timestamp_function_schema: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub kind: Option<String>,
    pub url: String,
    pub progress_schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub mode: Option<String>,
    pub snapshot_workers: Option<i64>,
    pub on_existing: Option<String>,
    pub keep_slot: Option<bool>,
    pub poll_interval: Option<String>,
    pub batch_rows: Option<i64>,
    pub max_transaction_age: Option<String>,
    pub reconcile_deletes: Option<bool>,
    pub reconcile_interval: Option<String>,
    pub heartbeat_interval: Option<String>,
    pub table_check_interval: Option<String>,
    pub streaming: Option<bool>,
    pub warn_retained_wal: Option<String>,
    pub max_retained_wal: Option<String>,
    pub on_max_retained_wal: Option<String>,
    pub retention_check_interval: Option<String>,
}
