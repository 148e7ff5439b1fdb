//! Opening the byte stream to one server endpoint: TCP or unix socket, then TLS per sslmode.
//!
//! The result is a boxed `AsyncRead + AsyncWrite` so that everything above it (startup,
//! queries, streaming) is written once for plain, TLS and unix-socket connections.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::conninfo::{Endpoint, Host, SslMode};
use crate::error::Error;
use crate::tls;

/// A connected byte stream, plain or encrypted.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How an endpoint is named in messages: `host:port`, or the socket path.
pub(crate) fn describe(endpoint: &Endpoint) -> String {
    match &endpoint.host {
        Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", endpoint.port),
        Host::Tcp(name) => format!("{name}:{}", endpoint.port),
        Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), endpoint.port),
    }
}

/// Connects to `endpoint` and, over TCP, negotiates TLS as `sslmode` says. `use_tls` forces
/// the attempt (for sslmode=allow's second try).
pub(crate) async fn open(
    endpoint: &Endpoint,
    sslmode: SslMode,
    tls_config: Option<&Arc<rustls::ClientConfig>>,
    use_tls: bool,
) -> Result<Box<dyn Io>, Error> {
    let name = describe(endpoint);
    match &endpoint.host {
        // libpq never uses TLS over a unix socket: the kernel already protects it.
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", endpoint.port));
            let stream = UnixStream::connect(&path)
                .await
                .map_err(|source| Error::Connect {
                    endpoint: name,
                    source,
                })?;
            Ok(Box::new(stream))
        }
        Host::Tcp(host) => {
            let mut stream = TcpStream::connect((host.as_str(), endpoint.port))
                .await
                .map_err(|source| Error::Connect {
                    endpoint: name.clone(),
                    source,
                })?;
            stream.set_nodelay(true).map_err(Error::Io)?;
            let Some(config) = tls_config.filter(|_| use_tls) else {
                return Ok(Box::new(stream));
            };
            if !request_tls(&mut stream).await? {
                if matches!(sslmode, SslMode::Prefer | SslMode::Allow) {
                    return Ok(Box::new(stream));
                }
                return Err(Error::TlsRefused {
                    endpoint: name,
                    sslmode: sslmode.to_string(),
                });
            }
            let server_name = tls::server_name(host)?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let stream = connector
                .connect(server_name, stream)
                .await
                .map_err(|source| Error::TlsHandshake {
                    endpoint: name,
                    source,
                })?;
            Ok(Box::new(stream))
        }
    }
}

/// Sends SSLRequest; true when the server agrees to TLS.
async fn request_tls(stream: &mut TcpStream) -> Result<bool, Error> {
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await?;
    match stream.read_u8().await? {
        b'S' => Ok(true),
        b'N' => Ok(false),
        // An 'E' here is an error from a server too old for SSLRequest; anything else is
        // not PostgreSQL.
        other => Err(crate::error::ProtocolError::Unexpected {
            tag: other,
            during: "negotiating TLS",
        }
        .into()),
    }
}
