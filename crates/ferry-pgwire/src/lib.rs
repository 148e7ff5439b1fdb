//! The PostgreSQL replication-protocol client.
//!
//! tokio-postgres speaks the SQL protocol but not the replication one (no `replication=database`
//! startup, no CopyBoth), so Ferry owns this piece. It is layered so that every byte from the
//! wire goes through sans-IO parsers that can be fuzzed on their own:
//!
//! ```text
//!  conninfo    libpq-style settings (URL, key=value, PG* env, ~/.pgpass)
//!  tls         rustls configuration per sslmode
//!  transport   TCP / unix socket, TLS negotiation
//!  frame       sans-IO backend message framing and parsing        (fuzzed)
//!  replication sans-IO XLogData / keepalive / status update        (fuzzed)
//!  wire        buffers around one stream
//!  startup     startup message and authentication
//!  commands    replication command text per server version
//!  client      ReplicationClient: connect, simple query, slot commands
//!  stream      ReplicationStream: CopyBoth with automatic status updates
//!  copy        COPY TO / FROM passing CopyData messages through unchanged
//!  sql         tokio-postgres connections from the same settings
//! ```

mod client;
pub mod commands;
pub mod conninfo;
mod copy;
mod error;
pub mod frame;
pub mod redact;
pub mod replication;
mod sql;
mod startup;
mod stream;
pub mod tls;
mod transport;
mod version;
mod wire;

pub use client::{
    CreatedSlot, QueryResult, ReplicationClient, SystemInfo, DEFAULT_CONNECT_TIMEOUT,
};
pub use commands::{SlotOptions, SnapshotAction};
pub use conninfo::{ConnParams, SslMode};
pub use copy::{CopyIn, CopyOut};
pub use error::{is_transient_sqlstate, DbError, Error, ProtocolError};
pub use redact::error_chain;
pub use replication::{PrimaryKeepalive, ReplicationMessage, StandbyStatus, XLogData};
pub use sql::{connect_sql, is_transient_pg_error, SqlConnectError};
pub use stream::{ReplicationStream, DEFAULT_STATUS_INTERVAL};
pub use version::ServerVersion;
