//! [`VerifyError`]: why a comparison could not be run (as opposed to a difference found).
//!
//! Each error names the database side, the table when there is one, and the fix; the
//! server's own message travels as the `#[source]`. [`VerifyError::is_transient`] follows
//! the SQLSTATE (ARCHITECTURE.md invariant 7): a lost connection, a cancelled statement or a
//! hot-standby conflict may pass on a re-run; a missing privilege will not.

use ferry_core::{quote_ident, TableName};
use ferry_pgwire::{is_transient_sqlstate, SqlConnectError};
use tokio_postgres::error::SqlState;

use crate::check::Side;

/// A failure that stopped `verify` before it could finish the report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot connect to the {side} database: {fix}")]
    Connect {
        side: Side,
        fix: String,
        #[source]
        source: SqlConnectError,
    },
    #[error("cannot open a read-only snapshot on the {side} database: {fix}")]
    Snapshot {
        side: Side,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot read the tables of the {side} database: {fix}")]
    Catalog {
        side: Side,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("comparing table {table} failed on the {side}: {fix}")]
    Table {
        table: TableName,
        side: Side,
        fix: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "no source table matches the selection: check the `tables` and `exclude` patterns \
         (they are schema.table, unqualified names mean public)"
    )]
    NoTables,
}

impl VerifyError {
    /// Whether re-running may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            VerifyError::Connect { source, .. } => source.is_transient(),
            VerifyError::Snapshot { source, .. }
            | VerifyError::Catalog { source, .. }
            | VerifyError::Table { source, .. } => ferry_pgwire::is_transient_pg_error(source),
            VerifyError::NoTables => false,
        }
    }

    /// The failure of connecting to `side` as `user`.
    pub(super) fn connect(side: Side, user: &str, source: SqlConnectError) -> Self {
        let fix = match source.code() {
            Some("28P01") => {
                format!("check the password of user {user:?} in the URL, PGPASSWORD or ~/.pgpass")
            }
            Some("28000") => format!(
                "let role {} log in, and admit it in pg_hba.conf (run `ferry check` for details)",
                quote_ident(user)
            ),
            Some("3D000") => "the database does not exist: correct the URL".to_owned(),
            _ if source.is_transient() => {
                "check that the server runs and accepts connections, then re-run".to_owned()
            }
            _ => "correct the connection settings (run `ferry check` for details)".to_owned(),
        };
        VerifyError::Connect { side, fix, source }
    }

    /// A failed query on `side` while comparing `table` (or reading the catalog, when
    /// `table` is `None`).
    pub(super) fn query(
        side: Side,
        user: &str,
        table: Option<&TableName>,
        source: tokio_postgres::Error,
    ) -> Self {
        let fix = fix_for(&source, user, table);
        match table {
            Some(table) => VerifyError::Table {
                table: table.clone(),
                side,
                fix,
                source,
            },
            None => VerifyError::Catalog { side, fix, source },
        }
    }

    /// A failed session setup (settings, BEGIN, first statement) on `side`.
    pub(super) fn snapshot(side: Side, user: &str, source: tokio_postgres::Error) -> Self {
        let fix = fix_for(&source, user, None);
        VerifyError::Snapshot { side, fix, source }
    }
}

/// What the user can do about `error`, by SQLSTATE.
fn fix_for(error: &tokio_postgres::Error, user: &str, table: Option<&TableName>) -> String {
    let role = quote_ident(user);
    let Some(code) = error.code() else {
        return if ferry_pgwire::is_transient_pg_error(error) {
            "the connection was lost: re-run verify".to_owned()
        } else {
            "see the cause below".to_owned()
        };
    };
    match (code, table) {
        (c, Some(table)) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            format!("run GRANT SELECT ON {table} TO {role}")
        }
        (c, None) if *c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "role {role} lacks a privilege verify needs (see the cause below); \
             grant it, or use a role that can read the catalog and the selected tables"
        ),
        (c, _) if *c == SqlState::QUERY_CANCELED => format!(
            "a statement_timeout cancelled the scan: raise it for this role \
             (ALTER ROLE {role} SET statement_timeout = 0) and re-run"
        ),
        (c, _) if *c == SqlState::T_R_SERIALIZATION_FAILURE => {
            "a hot standby cancelled the long read (recovery conflict): set \
             hot_standby_feedback = on on the standby, or verify against the primary"
                .to_owned()
        }
        (c, _) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::UNDEFINED_COLUMN => {
            "the table or a column was dropped or renamed while verify ran: re-run".to_owned()
        }
        (c, _) if *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => format!(
            "idle_in_transaction_session_timeout ended the snapshot: run \
             ALTER ROLE {role} SET idle_in_transaction_session_timeout = 0 and re-run"
        ),
        _ if is_transient_sqlstate(code.code()) => {
            "the server is restarting, overloaded or the connection broke: re-run".to_owned()
        }
        _ => "see the cause below".to_owned(),
    }
}
