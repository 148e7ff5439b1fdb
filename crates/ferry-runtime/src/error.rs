//! Why a sync stopped, with the table and the fix where there is one.
//!
//! Server errors are classified by SQLSTATE into a hint a person can act on (a table
//! dropped on the source, a constraint the target's existing rows violate, a full disk), and
//! every error says whether retrying may help (DESIGN.md invariant 7).

use ferry_core::TableName;
use ferry_pgwire::SqlConnectError;
use ferry_postgres::schema::create::SchemaError;
use ferry_postgres::sink::copy::CopyError;

/// A sync that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot connect to the {side}")]
    Connect {
        side: &'static str,
        #[source]
        source: SqlConnectError,
    },
    #[error("cannot create replication slot {slot:?}")]
    Slot {
        slot: String,
        #[source]
        source: ferry_pgwire::Error,
    },
    #[error(
        "replication slot {slot:?} already exists: another pipeline or an earlier run uses it; \
         set another [source] slot, or drop it if nothing uses it: \
         SELECT pg_drop_replication_slot('{slot}')"
    )]
    SlotExists { slot: String },
    #[error("no table matches [source] tables: run ferry check to see what the patterns select")]
    NothingSelected,
    #[error("role {role:?} cannot read {tables}: GRANT SELECT ON TABLE {tables} TO {role_sql};")]
    Unreadable {
        role: String,
        role_sql: String,
        tables: String,
    },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("copying table {table} failed: {hint}")]
    Copy {
        table: TableName,
        hint: String,
        #[source]
        source: Box<CopyError>,
    },
    #[error("{what} failed")]
    Sql {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{what} failed")]
    Session {
        what: &'static str,
        #[source]
        source: ferry_pgwire::Error,
    },
    #[error(
        "an earlier run of pipeline {pipeline:?} stopped during its initial copy into tables \
         that already held rows (on_existing = \"append\"), so its rows cannot be told from \
         the target's own: empty those tables or set on_existing = \"truncate\", then run again"
    )]
    CopyInterrupted { pipeline: String },
    #[error("table {table} {problem}")]
    Timestamp { table: TableName, problem: String },
    #[error(
        "table {table} is not on the target any more: create it again (ferry sync with \
         mode = \"full+incremental\" and a new pipeline name copies it), or remove it from \
         [source] tables and the publication"
    )]
    TargetTableMissing { table: TableName },
    #[error(
        "replication slot {slot:?} {problem}: the changes since the last applied position are \
         no longer available, so the target must be copied again. To resync: \
         DELETE FROM {progress_schema}.progress WHERE pipeline = '{pipeline}'; (on the target), \
         then run ferry sync with on_existing = \"truncate\""
    )]
    SlotGone {
        slot: String,
        problem: String,
        pipeline: String,
        progress_schema: String,
    },
    #[error("a large transaction streamed before its commit conflicts with the others ({0}); retrying without streaming")]
    StreamingConflict(String),
    #[error("a batch of changes applied as one statement hit an integrity check ({0}); retrying one change at a time")]
    BatchConflict(String),
    #[error("{plugin} output{} cannot be applied: {message}", .table.as_ref().map(|t| format!(" for table {t}")).unwrap_or_default())]
    Decode {
        plugin: &'static str,
        table: Option<TableName>,
        message: String,
    },
    #[error("{problem}; to fix it: {fix}")]
    Refused { problem: String, fix: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl SyncError {
    pub(crate) fn sql(what: &'static str, source: tokio_postgres::Error) -> Self {
        SyncError::Sql { what, source }
    }

    pub(crate) fn session(what: &'static str, source: ferry_pgwire::Error) -> Self {
        SyncError::Session { what, source }
    }

    /// An error applying changes. A lock timeout while streamed transactions are open is a
    /// [`SyncError::StreamingConflict`]; an integrity error while runs of changes were
    /// coalesced is a [`SyncError::BatchConflict`]: both retry in safe mode.
    pub(crate) fn apply(
        what: &'static str,
        source: ferry_pgwire::Error,
        streams_open: bool,
        coalesced: bool,
    ) -> Self {
        let code = source.as_db_error().map(|e| e.code().to_owned());
        match code.as_deref() {
            Some("55P03") if streams_open => SyncError::StreamingConflict(source.to_string()),
            Some(c) if coalesced && c.starts_with("23") => {
                SyncError::BatchConflict(source.to_string())
            }
            _ => SyncError::Session { what, source },
        }
    }

    /// Whether a target statement failed on an enum label the target's type lacks: the
    /// source added it (`ALTER TYPE … ADD VALUE`), which no plugin sends.
    pub(crate) fn is_missing_enum_label(&self) -> bool {
        let SyncError::Session { source, .. } = self else {
            return false;
        };
        source.as_db_error().is_some_and(|db| {
            db.code() == "22P02" && db.message().starts_with("invalid input value for enum")
        })
    }

    /// The pipeline should run again in safe mode: streaming off, one statement per change.
    pub fn needs_safe_mode(&self) -> bool {
        matches!(
            self,
            SyncError::StreamingConflict(_) | SyncError::BatchConflict(_)
        )
    }

    pub(crate) fn copy(table: &TableName, source: CopyError) -> Self {
        let code = source.code().map(str::to_owned);
        let hint = match (&source, code.as_deref()) {
            (CopyError::Source(_), Some("42P01" | "XX000")) => {
                "the table was dropped or rewritten on the source during the copy; \
                 remove it from [source] tables, or run the sync again"
                    .to_owned()
            }
            (CopyError::Target(_), Some(c)) if c.starts_with("23") => format!(
                "rows violate a constraint of the target table; if it held rows before the \
                 sync, set [sync] on_existing = \"truncate\" or empty {table} first"
            ),
            (CopyError::Target(_), Some("53100")) => {
                "the target ran out of disk space; free space on the target and run the sync again"
                    .to_owned()
            }
            (_, Some("42501")) => {
                "permission denied; run ferry check for the GRANT that fixes it".to_owned()
            }
            (CopyError::Source(_), _) => "reading from the source failed".to_owned(),
            (CopyError::Target(_), _) => "writing into the target failed".to_owned(),
        };
        SyncError::Copy {
            table: table.clone(),
            hint,
            source: Box::new(source),
        }
    }

    /// Whether running again may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Connect { source, .. } => source.is_transient(),
            SyncError::Slot { source, .. } => source.is_transient(),
            SyncError::Schema(e) => e.is_transient(),
            SyncError::Copy { source, .. } => source.pg_error().is_transient(),
            SyncError::Session { source, .. } => source.is_transient(),
            SyncError::Sql { source, .. } => ferry_pgwire::is_transient_pg_error(source),
            SyncError::SlotExists { .. }
            | SyncError::NothingSelected
            | SyncError::Unreadable { .. }
            | SyncError::Timestamp { .. }
            | SyncError::CopyInterrupted { .. }
            | SyncError::TargetTableMissing { .. }
            | SyncError::SlotGone { .. }
            | SyncError::Decode { .. }
            | SyncError::Refused { .. }
            | SyncError::Internal(_) => false,
            SyncError::StreamingConflict(_) | SyncError::BatchConflict(_) => true,
        }
    }
}
