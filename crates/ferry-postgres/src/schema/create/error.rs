//! [`SchemaError`]: why reading the source schema or creating it on the target failed,
//! naming the table or object and the fix.
//!
//! Server errors are classified by SQLSTATE only (DESIGN.md invariant 7): the fix text
//! comes from the code, and so does `is_transient()`.

use ferry_core::TableName;
use ferry_pgwire::SqlConnectError;
use tokio_postgres::error::SqlState;

/// A failure while reading the schema from the source or creating it on the target.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A catalog query on the source failed.
    #[error("reading {what} from the source catalog failed{}", privilege_fix(.source))]
    Catalog {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// `SELECT last_value, is_called FROM seq` failed.
    #[error("reading the current value of sequence {sequence} failed{}", sequence_fix(.source, .sequence))]
    Sequence {
        sequence: TableName,
        #[source]
        source: tokio_postgres::Error,
    },
    /// An existing target table has rows and `on_existing` is `error`.
    #[error(
        "target table {table} already has rows: set [sync] on_existing = \"truncate\" \
         (empties it first) or \"append\" (keeps its rows), or empty it yourself"
    )]
    TargetNotEmpty { table: TableName },
    /// A type of the same name but another kind exists on the target.
    #[error(
        "type {type_name} exists on the target as {found} but is {expected} on the source: \
         drop or rename the target's type, or exclude the tables that use it"
    )]
    TypeMismatch {
        type_name: String,
        expected: String,
        found: String,
    },
    /// An enum exists on the target without some of the source's labels.
    #[error(
        "enum type {type_name} on the target lacks the labels {missing} the source has: \
         add them on the target with ALTER TYPE {type_name} ADD VALUE …"
    )]
    EnumLabelsMissing { type_name: String, missing: String },
    /// Inspecting or truncating existing target tables failed.
    #[error("{what} on the target failed: {fix}")]
    Target {
        what: String,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A schema statement on the target failed.
    #[error("creating {object} on the target failed: {fix}")]
    Create {
        object: String,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection to the target for building indexes.
    #[error("cannot connect to the target to build indexes and constraints")]
    Connect {
        #[source]
        source: SqlConnectError,
    },
}

impl SchemaError {
    /// Whether retrying may succeed: lost connections and transient server states (by
    /// SQLSTATE), not conflicts, privileges or rows that violate a constraint.
    pub fn is_transient(&self) -> bool {
        match self {
            SchemaError::Catalog { source, .. }
            | SchemaError::Sequence { source, .. }
            | SchemaError::Target { source, .. }
            | SchemaError::Create { source, .. } => ferry_pgwire::is_transient_pg_error(source),
            SchemaError::Connect { source } => source.is_transient(),
            SchemaError::TargetNotEmpty { .. }
            | SchemaError::TypeMismatch { .. }
            | SchemaError::EnumLabelsMissing { .. } => false,
        }
    }

    /// A `map_err` adapter for catalog queries reading `what`.
    pub(crate) fn catalog(what: &str) -> impl Fn(tokio_postgres::Error) -> SchemaError + '_ {
        move |source| SchemaError::Catalog {
            what: what.to_owned(),
            source,
        }
    }

    /// A [`SchemaError::Create`] for `object`; `stage_note` says what state the target is
    /// left in.
    pub(crate) fn create(object: &str, stage_note: &str, source: tokio_postgres::Error) -> Self {
        SchemaError::Create {
            object: object.to_owned(),
            fix: format!("{}; {stage_note}", create_fix(&source)),
            source,
        }
    }
}

fn privilege_fix(error: &tokio_postgres::Error) -> &'static str {
    if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        ": the source role needs SELECT on the selected tables and USAGE on their schemas"
    } else {
        ""
    }
}

fn sequence_fix(error: &tokio_postgres::Error, sequence: &TableName) -> String {
    if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        format!(
            ": grant the source role SELECT on it: GRANT SELECT ON SEQUENCE {sequence} TO <role>"
        )
    } else {
        String::new()
    }
}

/// What to do about a failed schema statement, by SQLSTATE.
fn create_fix(error: &tokio_postgres::Error) -> &'static str {
    let Some(code) = error.code() else {
        return "the connection to the target failed; run again";
    };
    match code {
        c if *c == SqlState::UNDEFINED_OBJECT
            || *c == SqlState::UNDEFINED_FUNCTION
            || *c == SqlState::UNDEFINED_TABLE =>
        {
            "it uses a type, function or extension the target lacks: create it on the target \
             first (CREATE EXTENSION …, CREATE TYPE …)"
        }
        c if *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::DUPLICATE_SCHEMA
            || *c == SqlState::DUPLICATE_FUNCTION =>
        {
            "another object of that name exists on the target: drop or rename it, or exclude \
             the table"
        }
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            "the target role lacks a privilege: grant it CREATE on the database and its \
             schemas, or connect as their owner"
        }
        c if *c == SqlState::UNIQUE_VIOLATION => {
            "the target table holds duplicate keys (rows kept by on_existing = \"append\"?): \
             remove the duplicates, then run again"
        }
        c if *c == SqlState::CHECK_VIOLATION
            || *c == SqlState::NOT_NULL_VIOLATION
            || *c == SqlState::EXCLUSION_VIOLATION =>
        {
            "rows in the target table violate it: remove them, then run again"
        }
        c if *c == SqlState::DISK_FULL => "the target's disk is full: free space, then run again",
        c if *c == SqlState::FEATURE_NOT_SUPPORTED => {
            "the target server does not support it: use a target PostgreSQL at least as new \
             as the source"
        }
        _ => "fix the cause, then run again",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_empty_names_the_table_and_the_setting() {
        let err = SchemaError::TargetNotEmpty {
            table: TableName::new("Sales", "Order"),
        };
        let text = err.to_string();
        assert!(text.contains("\"Sales\".\"Order\""), "{text}");
        assert!(text.contains("on_existing = \"truncate\""), "{text}");
        assert!(text.contains("\"append\""), "{text}");
        assert!(!err.is_transient());
    }
}
