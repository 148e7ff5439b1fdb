//! [`ReplicationClient`]: a `replication=database` connection and its commands.
//!
//! It tries the configured endpoints in order (as libpq does), authenticates, and then
//! offers the simple-query protocol (which a replication connection accepts for both SQL and
//! replication commands) plus typed wrappers for the commands Ferry uses. Starting
//! replication consumes the client and returns a [`ReplicationStream`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ferry_core::Lsn;
use postgres_protocol::message::frontend;

use crate::commands::{self, SlotOptions};
use crate::conninfo::{ConnParams, SslMode};
use crate::error::{DbError, Error, ProtocolError};
use crate::frame::BackendMessage;
use crate::startup::{self, unexpected, StartupRequest};
use crate::stream::ReplicationStream;
use crate::transport;
use crate::version::ServerVersion;
use crate::wire::Wire;

/// Connection attempts give up after this long unless `connect_timeout` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The rows and command tag of one statement run with the simple-query protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

impl QueryResult {
    /// The value in `row` under column `name`, if present and not NULL.
    pub fn get(&self, row: usize, name: &str) -> Option<&str> {
        let col = self.columns.iter().position(|c| c == name)?;
        self.rows.get(row)?.get(col)?.as_deref()
    }
}

/// The answer to IDENTIFY_SYSTEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_pos: Lsn,
    pub dbname: Option<String>,
}

/// A slot just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// Streaming from here continues exactly where the exported snapshot ends.
    pub consistent_point: Lsn,
    /// The exported snapshot, valid while this connection stays open and idle.
    pub snapshot_name: Option<String>,
    pub output_plugin: String,
}

/// A replication connection, ready for commands.
pub struct ReplicationClient {
    wire: Wire,
    endpoint: String,
    parameters: HashMap<String, String>,
    process_id: i32,
    version: ServerVersion,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("endpoint", &self.endpoint)
            .field("process_id", &self.process_id)
            .field("version", &self.version)
            .finish()
    }
}

impl ReplicationClient {
    /// Opens a replication connection (`replication=database`) to the first endpoint of
    /// `params` that accepts it.
    pub async fn connect(params: &ConnParams) -> Result<Self, Error> {
        Self::connect_with(params, true).await
    }

    /// Opens a plain (non-replication) connection with the same machinery; used where only
    /// the simple-query protocol is needed.
    pub async fn connect_sql(params: &ConnParams) -> Result<Self, Error> {
        Self::connect_with(params, false).await
    }

    async fn connect_with(params: &ConnParams, replication: bool) -> Result<Self, Error> {
        let tls_config = crate::tls::client_config(params)?;
        let timeout = params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut last_error = None;
        for endpoint in &params.hosts {
            let name = transport::describe(endpoint);
            // sslmode=allow: plain first, TLS if the server refuses the plain connection.
            let attempts: &[bool] = match params.sslmode {
                SslMode::Disable => &[false],
                SslMode::Allow => &[false, true],
                _ => &[true],
            };
            for &use_tls in attempts {
                let attempt = async {
                    let io =
                        transport::open(endpoint, params.sslmode, tls_config.as_ref(), use_tls)
                            .await?;
                    let mut wire = Wire::new(io);
                    let password = params.resolve_password(endpoint);
                    let request = StartupRequest {
                        endpoint: &name,
                        user: &params.user,
                        dbname: &params.dbname,
                        password: password.as_ref(),
                        application_name: params.application_name.as_deref().unwrap_or("ferry"),
                        options: params.options.as_deref(),
                        replication,
                    };
                    let session = startup::startup(&mut wire, &request).await?;
                    Ok::<_, Error>((wire, session))
                };
                match tokio::time::timeout(timeout, attempt).await {
                    Ok(Ok((wire, session))) => {
                        let version = session
                            .parameters
                            .get("server_version")
                            .and_then(|v| ServerVersion::parse(v))
                            .ok_or(ProtocolError::Invalid {
                                tag: b'S',
                                what: "server_version missing or unreadable",
                            })?;
                        tracing::debug!(endpoint = %name, version = %version, replication, "connected");
                        return Ok(ReplicationClient {
                            wire,
                            endpoint: name,
                            parameters: session.parameters,
                            process_id: session.process_id,
                            version,
                        });
                    }
                    Ok(Err(e)) => last_error = Some(e),
                    Err(_) => {
                        last_error = Some(Error::ConnectTimeout {
                            endpoint: name.clone(),
                            seconds: timeout.as_secs(),
                        })
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidArgument("no host to connect to".into())))
    }

    /// The server's version.
    pub fn server_version(&self) -> ServerVersion {
        self.version
    }

    /// A parameter the server reported at startup (`server_version`, `TimeZone`, …).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The server process serving this connection (its walsender).
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// `host:port` or socket path of the connected server.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `sql` with the simple-query protocol; one result per statement. A server error
    /// is returned after the server is ready again, so the connection stays usable.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<QueryResult>, Error> {
        frontend::query(sql, self.wire.out())?;
        self.wire.flush().await?;
        let mut results = Vec::new();
        let mut current = QueryResult::default();
        let mut error = None;
        loop {
            match self.wire.read().await? {
                BackendMessage::RowDescription(fields) => {
                    current.columns = fields.into_iter().map(|f| f.name).collect();
                }
                BackendMessage::DataRow(values) => {
                    let row = values
                        .into_iter()
                        .map(|v| v.map(text).transpose())
                        .collect::<Result<Vec<_>, _>>()?;
                    current.rows.push(row);
                }
                BackendMessage::CommandComplete { tag } => {
                    current.tag = tag;
                    results.push(std::mem::take(&mut current));
                }
                BackendMessage::EmptyQueryResponse => {}
                BackendMessage::ErrorResponse(fields) => error = Some(DbError(fields)),
                BackendMessage::ReadyForQuery { .. } => {
                    return match error {
                        Some(e) => Err(e.into()),
                        None => Ok(results),
                    }
                }
                BackendMessage::ParameterStatus { name, value } => {
                    self.parameters.insert(name, value);
                }
                other => return Err(unexpected(&other, "running a simple query")),
            }
        }
    }

    /// IDENTIFY_SYSTEM: the cluster's id, timeline and current WAL position.
    pub async fn identify_system(&mut self) -> Result<SystemInfo, Error> {
        let result = self.single_row("IDENTIFY_SYSTEM").await?;
        let field = |name: &'static str| {
            result.get(0, name).ok_or(ProtocolError::Invalid {
                tag: b'D',
                what: "IDENTIFY_SYSTEM reply lacks a column",
            })
        };
        Ok(SystemInfo {
            system_id: field("systemid")?.to_owned(),
            timeline: field("timeline")?
                .parse()
                .map_err(|_| ProtocolError::Invalid {
                    tag: b'D',
                    what: "IDENTIFY_SYSTEM timeline is not a number",
                })?,
            xlog_pos: parse_lsn(field("xlogpos")?)?,
            dbname: result.get(0, "dbname").map(str::to_owned),
        })
    }

    /// Creates a logical slot with `plugin`, in the syntax of the server's version.
    pub async fn create_slot(
        &mut self,
        slot: &str,
        plugin: &str,
        options: SlotOptions,
    ) -> Result<CreatedSlot, Error> {
        let sql = commands::create_slot(self.version, slot, plugin, options)?;
        let result = self.single_row(&sql).await?;
        let consistent_point = result
            .get(0, "consistent_point")
            .ok_or(ProtocolError::Invalid {
                tag: b'D',
                what: "CREATE_REPLICATION_SLOT reply lacks consistent_point",
            })?;
        Ok(CreatedSlot {
            slot_name: result.get(0, "slot_name").unwrap_or(slot).to_owned(),
            consistent_point: parse_lsn(consistent_point)?,
            snapshot_name: result.get(0, "snapshot_name").map(str::to_owned),
            output_plugin: result.get(0, "output_plugin").unwrap_or(plugin).to_owned(),
        })
    }

    /// Drops a slot; with `wait`, waits until an active slot is released.
    pub async fn drop_slot(&mut self, slot: &str, wait: bool) -> Result<(), Error> {
        let sql = commands::drop_slot(self.version, slot, wait)?;
        self.simple_query(&sql).await.map(drop)
    }

    /// Starts logical replication from `start` and hands the connection to the stream.
    pub async fn start_logical_replication(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, &str)],
    ) -> Result<ReplicationStream, Error> {
        let sql = commands::start_logical(slot, start, options)?;
        frontend::query(&sql, self.wire.out())?;
        self.wire.flush().await?;
        loop {
            match self.wire.read().await? {
                BackendMessage::CopyBothResponse => {
                    return Ok(ReplicationStream::new(self, start));
                }
                BackendMessage::ErrorResponse(fields) => {
                    self.wait_ready().await?;
                    return Err(DbError(fields).into());
                }
                BackendMessage::ParameterStatus { .. } => {}
                other => return Err(unexpected(&other, "starting replication")),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.wire.terminate().await;
    }

    pub(crate) fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }

    /// Reads until ReadyForQuery, keeping the first server error.
    pub(crate) async fn wait_ready(&mut self) -> Result<(), Error> {
        let mut error = None;
        loop {
            match self.wire.read().await? {
                BackendMessage::ReadyForQuery { .. } => {
                    return error.map_or(Ok(()), |e: DbError| Err(e.into()))
                }
                BackendMessage::ErrorResponse(fields) => {
                    error.get_or_insert(DbError(fields));
                }
                _ => {}
            }
        }
    }

    async fn single_row(&mut self, sql: &str) -> Result<QueryResult, Error> {
        let mut results = self.simple_query(sql).await?;
        match results.pop() {
            Some(result) if result.rows.len() == 1 => Ok(result),
            _ => Err(ProtocolError::Invalid {
                tag: b'D',
                what: "expected exactly one row",
            }
            .into()),
        }
    }
}

fn text(bytes: Bytes) -> Result<String, ProtocolError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtocolError::InvalidUtf8 {
        what: "a text column value",
    })
}

fn parse_lsn(text: &str) -> Result<Lsn, ProtocolError> {
    text.parse().map_err(|_| ProtocolError::Invalid {
        tag: b'D',
        what: "an LSN column is not of the form X/X",
    })
}
