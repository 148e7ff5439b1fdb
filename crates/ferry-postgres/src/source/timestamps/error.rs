//! [`TimestampSetupError`]: why the timestamp set-up or its inspection failed, naming the
//! table or object and the fix.
//!
//! Server errors are classified by SQLSTATE only (ARCHITECTURE.md invariant 7): the fix
//! text and `is_transient()` both come from the code, never from the message.

use ferry_core::TableName;
use tokio_postgres::error::SqlState;

/// A failure of [`super::apply_setup`] or [`super::inspect`].
#[derive(Debug, thiserror::Error)]
pub enum TimestampSetupError {
    /// A configured table is not on the source.
    #[error(
        "there is no table {table} on the source: create it, or remove it from the tables \
         synced by timestamp"
    )]
    TableMissing { table: TableName },
    /// The configured column exists with a type that cannot hold a timestamp.
    #[error(
        "column {column} of table {table} is {found}, but timestamp sync needs timestamp with \
         time zone: rename or drop that column, or set timestamp_column for the table to a \
         free name (the set-up adds it)"
    )]
    WrongColumnType {
        table: TableName,
        /// The column, quoted.
        column: String,
        /// Its type as PostgreSQL prints it.
        found: String,
    },
    /// A catalog query failed.
    #[error("reading {what} from the source catalog failed")]
    Catalog {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server answered a catalog query in a way this code does not understand.
    #[error("unexpected answer from the source: {what}")]
    Inconsistent { what: String },
    /// A set-up statement failed; the transaction was rolled back.
    #[error("setting up {object} failed: {fix}")]
    Statement {
        object: String,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// BEGIN or COMMIT of the set-up transaction failed.
    #[error("{step} of the set-up transaction failed: {fix}")]
    Transaction {
        step: &'static str,
        fix: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl TimestampSetupError {
    /// Whether retrying may succeed: lost connections, lock timeouts and other transient
    /// server states, not missing tables, wrong types or privileges.
    pub fn is_transient(&self) -> bool {
        match self {
            TimestampSetupError::TableMissing { .. }
            | TimestampSetupError::WrongColumnType { .. }
            | TimestampSetupError::Inconsistent { .. } => false,
            TimestampSetupError::Catalog { source, .. }
            | TimestampSetupError::Statement { source, .. }
            | TimestampSetupError::Transaction { source, .. } => {
                ferry_pgwire::is_transient_pg_error(source)
            }
        }
    }

    /// A [`TimestampSetupError::Statement`] for `object`; `function_schema` is named in the
    /// privilege fix.
    pub(crate) fn statement(
        object: &str,
        function_schema: &str,
        source: tokio_postgres::Error,
    ) -> Self {
        TimestampSetupError::Statement {
            object: object.to_owned(),
            fix: statement_fix(&source, function_schema),
            source,
        }
    }

    /// A [`TimestampSetupError::Transaction`] for `step` (`BEGIN` or `COMMIT`).
    pub(crate) fn transaction(step: &'static str, source: tokio_postgres::Error) -> Self {
        let fix = if source.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            READ_ONLY_FIX
        } else if source.code().is_none() {
            "the connection was lost (the set-up may or may not have committed); run it again, \
             it is idempotent"
        } else {
            "nothing was changed; fix the cause and run it again"
        };
        TimestampSetupError::Transaction { step, fix, source }
    }
}

const READ_ONLY_FIX: &str =
    "the server is read-only (a standby, or default_transaction_read_only): run the set-up on \
     the primary";

/// What to do about a failed set-up statement, by SQLSTATE.
fn statement_fix(error: &tokio_postgres::Error, function_schema: &str) -> String {
    let Some(code) = error.code() else {
        return "the connection was lost; run the set-up again (it is idempotent)".to_owned();
    };
    let rolled_back = "the set-up was rolled back, nothing was changed";
    let fix = match code {
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "the role must own each table (adding a column, an index and a trigger need \
             ownership) and have CREATE on schema {} for the trigger function: run the set-up \
             as the tables' owner, or print it (without --apply) for the owner to run",
            ferry_core::quote_ident(function_schema)
        ),
        c if *c == SqlState::LOCK_NOT_AVAILABLE => format!(
            "a lock on the table was not granted within lock_timeout = {}: a long transaction \
             holds it (see pg_stat_activity); run the set-up again when it has finished",
            super::LOCK_TIMEOUT
        ),
        c if *c == SqlState::INVALID_SCHEMA_NAME || *c == SqlState::UNDEFINED_SCHEMA => format!(
            "schema {} does not exist: create it, or put the trigger function in an existing \
             schema",
            ferry_core::quote_ident(function_schema)
        ),
        c if *c == SqlState::FEATURE_NOT_SUPPORTED || *c == SqlState::WRONG_OBJECT_TYPE => {
            "this relation cannot have a row trigger (a partitioned table before PostgreSQL 13, \
             a view or a foreign table): sync its partitions or a plain table instead"
                .to_owned()
        }
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => READ_ONLY_FIX.to_owned(),
        c if *c == SqlState::DISK_FULL => "the source's disk is full: free space".to_owned(),
        _ => "fix the cause".to_owned(),
    };
    format!("{fix}; {rolled_back}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_type_names_table_column_type_and_fix() {
        let err = TimestampSetupError::WrongColumnType {
            table: TableName::new("Sales", "Order"),
            column: "\"last_update\"".to_owned(),
            found: "text".to_owned(),
        };
        let text = err.to_string();
        assert!(text.contains("\"Sales\".\"Order\""), "{text}");
        assert!(text.contains("\"last_update\""), "{text}");
        assert!(text.contains(" is text,"), "{text}");
        assert!(text.contains("timestamp_column"), "{text}");
        assert!(!err.is_transient());
    }

    #[test]
    fn missing_table_is_definite() {
        let err = TimestampSetupError::TableMissing {
            table: TableName::new("public", "gone"),
        };
        assert!(err.to_string().contains("\"public\".\"gone\""));
        assert!(!err.is_transient());
    }
}
