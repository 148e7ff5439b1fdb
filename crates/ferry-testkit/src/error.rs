//! The one error type of the testkit.
//!
//! Tests mostly `unwrap()` these, so the message is what a developer reads in a failed test:
//! it says what failed and, for server start-up problems, carries the tail of the server log,
//! because "postgres exited" alone never explains anything.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Why a test cluster could not be built, started, stopped or queried.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A file system or process operation failed; `action` says which.
    #[error("could not {action}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL program is missing from the binary directory.
    #[error("{} not found: install PostgreSQL 15 or set FERRY_PG_BIN to its bin directory", path.display())]
    MissingBinary { path: PathBuf },
    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error("running as root but the OS user postgres does not exist: create it or run the tests as a non-root user")]
    NoPostgresUser,
    /// A helper program (initdb, psql) exited unsuccessfully.
    #[error("{program} failed ({status}): {stderr}")]
    CommandFailed {
        program: String,
        status: ExitStatus,
        stderr: String,
    },
    /// The server exited while starting.
    #[error("postgres exited during start-up ({status}); server log tail:\n{log_tail}")]
    StartExited {
        status: ExitStatus,
        log_tail: String,
    },
    /// The server was still not accepting connections when the start timeout ran out.
    #[error("postgres did not accept connections on port {port} within {timeout_secs} s; server log tail:\n{log_tail}")]
    StartTimeout {
        port: u16,
        timeout_secs: u64,
        log_tail: String,
    },
    /// Another process holds the port the server must listen on.
    #[error("port {port} on 127.0.0.1 is taken by another process; server log tail:\n{log_tail}")]
    PortTaken { port: u16, log_tail: String },
    /// rcgen could not generate the test CA or server certificate.
    #[error("could not generate test certificates")]
    Certificate(#[source] rcgen::Error),
    /// The admin client could not connect over the unix socket.
    #[error("could not connect to the test cluster at {} port {port}", socket_dir.display())]
    Connect {
        socket_dir: PathBuf,
        port: u16,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The blocking task behind an `*_async` method panicked or was cancelled.
    #[error("background task of the test cluster failed")]
    Join(#[source] tokio::task::JoinError),
}

impl TestkitError {
    /// Whether trying again may succeed: port races, slow starts and refused connections.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::PortTaken { .. } | Self::StartTimeout { .. } | Self::Connect { .. }
        )
    }

    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}
