//! Errors of the replication client, each one classified as transient or fatal.
//!
//! DESIGN.md invariant 7: a transient error (connection lost, server restarting) is retried
//! with backoff; a fatal one (bad password, unsupported auth, bad certificate, protocol
//! violation) stops the pipeline with a message naming the fix. Server errors are classified
//! by SQLSTATE, never by their text.

use std::fmt;
use std::io;

use tokio_postgres::error::SqlState;

use crate::frame::ErrorFields;
use crate::tls::TlsConfigError;

/// Bytes from the server that break the protocol. Never transient: retrying would read the
/// same bytes again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message {tag:?} declares length {len}, below the minimum of 4", tag = char::from(*tag))]
    BadLength { tag: u8, len: i64 },
    #[error("message {tag:?} declares length {len}, above the limit of {max} bytes", tag = char::from(*tag))]
    MessageTooLarge { tag: u8, len: usize, max: usize },
    #[error("message {tag:?} ends before its {what}", tag = char::from(*tag))]
    Truncated { tag: u8, what: &'static str },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("message {tag:?} is malformed: {what}", tag = char::from(*tag))]
    Invalid { tag: u8, what: &'static str },
    #[error("unknown replication message kind {kind:?}", kind = char::from(*kind))]
    UnknownReplicationMessage { kind: u8 },
    #[error("unexpected message {tag:?} while {during}", tag = char::from(*tag))]
    Unexpected { tag: u8, during: &'static str },
}

/// An error the server reported (ErrorResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub Box<ErrorFields>);

impl DbError {
    /// The five-character SQLSTATE, e.g. `28P01`.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The SQLSTATE as tokio-postgres' constants, for matching.
    pub fn sqlstate(&self) -> SqlState {
        SqlState::from_code(&self.0.code)
    }

    /// The primary message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The server's detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The server's hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }

    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        is_transient_sqlstate(self.code())
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data and integrity errors quote row values ("Key (id)=(5) already exists"):
        // those never reach a log.
        let e = &self.0;
        f.write_str(&crate::redact::describe(crate::redact::Shown {
            severity: &e.severity,
            code: &e.code,
            message: &e.message,
            detail: e.detail.as_deref(),
            hint: e.hint.as_deref(),
            table: e.table.as_deref(),
            constraint: e.constraint.as_deref(),
        }))
    }
}

impl std::error::Error for DbError {}

/// Whether a server error with this SQLSTATE may go away on retry: connection exceptions,
/// shutdown and startup of the server, serialization failures and deadlocks, exhausted
/// resources, and an object in use (a replication slot still held by a dying walsender).
pub fn is_transient_sqlstate(code: &str) -> bool {
    let state = SqlState::from_code(code);
    code.starts_with("08")
        || code.starts_with("53")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::OBJECT_IN_USE,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
        ]
        .contains(&state)
}

/// Any failure of the replication client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {seconds} s connecting to {endpoint}")]
    ConnectTimeout { endpoint: String, seconds: u64 },
    #[error(
        "server {endpoint} does not accept TLS, but sslmode={sslmode} requires it: \
         enable ssl on the server or use sslmode=prefer"
    )]
    TlsRefused { endpoint: String, sslmode: String },
    #[error("TLS handshake with {endpoint} failed")]
    TlsHandshake {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    #[error(
        "server {endpoint} asks for a password for user {user:?}, but none is set: \
         put it in the connection URL, PGPASSWORD or ~/.pgpass"
    )]
    PasswordMissing { endpoint: String, user: String },
    #[error(
        "server {endpoint} asks for {method} authentication, which Ferry does not support: \
         use scram-sha-256, md5 or password in pg_hba.conf"
    )]
    UnsupportedAuth { endpoint: String, method: String },
    #[error("SCRAM authentication with {endpoint} failed")]
    Scram {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("protocol violation by the server")]
    Protocol(#[from] ProtocolError),
    #[error("connection to the server failed")]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Whether retrying (with backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Io(_) | Error::Closed => {
                true
            }
            Error::Db(db) => db.is_transient(),
            // A reset during the handshake (a restarting server) is worth a retry; a
            // certificate rustls rejected is not.
            Error::TlsHandshake { source, .. } => !crate::sql::is_tls_verdict(source),
            Error::TlsRefused { .. }
            | Error::TlsConfig(_)
            | Error::PasswordMissing { .. }
            | Error::UnsupportedAuth { .. }
            | Error::Scram { .. }
            | Error::Protocol(_)
            | Error::InvalidArgument(_) => false,
        }
    }

    /// The server's error, when the server reported one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Error::Db(db) => Some(db),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("53300"));
        assert!(is_transient_sqlstate("40001"));
        assert!(!is_transient_sqlstate("28P01"));
        assert!(!is_transient_sqlstate("42P01"));
        assert!(!is_transient_sqlstate("42501"));
    }

    #[test]
    fn db_error_display_carries_code_detail_and_hint() {
        let e = DbError(Box::new(ErrorFields {
            severity: "ERROR".into(),
            code: "55000".into(),
            message: "logical decoding requires wal_level >= logical".into(),
            hint: Some("set it".into()),
            ..ErrorFields::default()
        }));
        let text = e.to_string();
        assert!(
            text.contains("55000") && text.contains("hint: set it"),
            "{text}"
        );
    }

    #[test]
    fn integrity_errors_name_the_constraint_but_never_show_the_values() {
        let e = DbError(Box::new(ErrorFields {
            severity: "ERROR".into(),
            code: "23505".into(),
            message: "duplicate key value violates unique constraint \"t_pkey\"".into(),
            detail: Some("Key (id)=(secret-42) already exists.".into()),
            table: Some("t".into()),
            constraint: Some("t_pkey".into()),
            ..ErrorFields::default()
        }));
        let text = e.to_string();
        assert!(
            text.contains("constraint t_pkey") && text.contains("table t"),
            "{text}"
        );
        assert!(!text.contains("secret-42"), "{text}");
    }
}
