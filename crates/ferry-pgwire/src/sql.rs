//! SQL connections (tokio-postgres) from the same [`ConnParams`] as replication ones.
//!
//! Users give one URL per database; catalog queries, COPY and apply go through
//! tokio-postgres, replication through [`crate::ReplicationClient`]. Both must agree on host
//! order, password lookup and TLS verification, so this module maps the settings onto
//! tokio-postgres and plugs in the same rustls configuration (tokio-postgres itself only
//! knows disable / prefer / require).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls};

use crate::client::DEFAULT_CONNECT_TIMEOUT;
use crate::conninfo::{ConnParams, Endpoint, Host, SslMode};
use crate::error::is_transient_sqlstate;
use crate::tls::{self, TlsConfigError};
use crate::transport::describe;

/// Why a SQL connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SqlConnectError {
    #[error("could not connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error("no host to connect to")]
    NoHost,
}

impl SqlConnectError {
    /// Whether retrying may succeed: network failures and transient server states, not bad
    /// passwords, missing databases or TLS mistakes.
    pub fn is_transient(&self) -> bool {
        match self {
            SqlConnectError::Connect { source, .. } => is_transient_pg_error(source),
            SqlConnectError::Tls(_) | SqlConnectError::NoHost => false,
        }
    }

    /// The server's SQLSTATE, when the server refused us.
    pub fn code(&self) -> Option<&str> {
        match self {
            SqlConnectError::Connect { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// Whether a tokio-postgres error may go away on retry.
pub fn is_transient_pg_error(error: &tokio_postgres::Error) -> bool {
    if let Some(code) = error.code() {
        return is_transient_sqlstate(code.code());
    }
    if error.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io_error) = inner.downcast_ref::<io::Error>() {
            return !is_tls_verdict(io_error);
        }
        source = inner.source();
    }
    false
}

/// Whether an I/O error carries rustls' verdict on the peer (a bad certificate, a failed
/// handshake), which retrying cannot change, rather than a network failure.
pub(crate) fn is_tls_verdict(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// Connects to the first endpoint of `params` that accepts, and drives the connection on
/// the current tokio runtime.
pub async fn connect_sql(params: &ConnParams) -> Result<Client, SqlConnectError> {
    let tls_config = tls::client_config(params)?;
    let mut last = None;
    for endpoint in &params.hosts {
        let config = pg_config(params, endpoint);
        let result = match &tls_config {
            Some(tls) => spawn(config.connect(RustlsConnect(tls.clone())).await),
            None => spawn(config.connect(NoTls).await),
        };
        match result {
            Ok(client) => return Ok(client),
            Err(source) => {
                last = Some(SqlConnectError::Connect {
                    endpoint: describe(endpoint),
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(SqlConnectError::NoHost))
}

fn spawn<S, T>(
    result: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> Result<Client, tokio_postgres::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = result?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "sql connection ended");
        }
    });
    Ok(client)
}

fn pg_config(params: &ConnParams, endpoint: &Endpoint) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&params.user)
        .dbname(&params.dbname)
        .port(endpoint.port)
        .application_name(params.application_name.as_deref().unwrap_or("ferry"))
        .connect_timeout(params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
        .ssl_mode(match params.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    match &endpoint.host {
        Host::Tcp(name) => config.host(name),
        Host::Unix(dir) => config.host_path(dir),
    };
    if let Some(options) = &params.options {
        config.options(options);
    }
    if let Some(password) = params.resolve_password(endpoint) {
        config.password(password.expose());
    }
    config
}

/// tokio-postgres' TLS hook, backed by the rustls configuration of [`crate::tls`].
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    domain: String,
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, io::Error> {
        Ok(RustlsConnector {
            config: self.0.clone(),
            domain: domain.to_owned(),
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = tls::server_name(&self.domain)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS stream as tokio-postgres wants it.
struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
