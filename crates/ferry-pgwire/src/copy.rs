//! COPY through this client, passing CopyData messages through without re-framing.
//!
//! A full sync streams gigabytes from a source's `COPY … TO STDOUT` into a target's
//! `COPY … FROM STDIN`. Both sides speak the same CopyData message, so the source's bytes
//! can go to the target exactly as they arrived: [`CopyOut::next_frames`] hands out runs of
//! whole, length-checked CopyData messages straight from the receive buffer, and
//! [`CopyIn::send_frames`] writes them unchanged. No per-row allocation, no re-encoding,
//! reads and writes of up to 128 KiB.

use bytes::Bytes;
use postgres_protocol::message::frontend;

use crate::client::ReplicationClient;
use crate::error::{DbError, Error, ProtocolError};
use crate::frame::BackendMessage;
use crate::startup::unexpected;

/// A `COPY … TO STDOUT` in progress.
#[derive(Debug)]
pub struct CopyOut<'a> {
    client: &'a mut ReplicationClient,
    done: bool,
}

/// A `COPY … FROM STDIN` in progress.
#[derive(Debug)]
pub struct CopyIn<'a> {
    client: &'a mut ReplicationClient,
}

impl ReplicationClient {
    /// Starts `sql`, a `COPY … TO STDOUT`.
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>, Error> {
        self.start_copy(sql, true).await?;
        Ok(CopyOut {
            client: self,
            done: false,
        })
    }

    /// Starts `sql`, a `COPY … FROM STDIN`.
    pub async fn copy_in(&mut self, sql: &str) -> Result<CopyIn<'_>, Error> {
        self.start_copy(sql, false).await?;
        Ok(CopyIn { client: self })
    }

    async fn start_copy(&mut self, sql: &str, out: bool) -> Result<(), Error> {
        frontend::query(sql, self.wire().out())?;
        self.wire().flush().await?;
        loop {
            match self.wire().read().await? {
                BackendMessage::CopyOutResponse if out => return Ok(()),
                BackendMessage::CopyInResponse if !out => return Ok(()),
                BackendMessage::ErrorResponse(fields) => {
                    self.wait_ready().await?;
                    return Err(DbError(fields).into());
                }
                BackendMessage::ParameterStatus { .. } => {}
                other => return Err(unexpected(&other, "starting COPY")),
            }
        }
    }
}

impl CopyOut<'_> {
    /// The next run of whole CopyData messages, framed as the server sent them; `None` once
    /// the server has sent all data.
    pub async fn next_frames(&mut self) -> Result<Option<Bytes>, Error> {
        if self.done {
            return Ok(None);
        }
        if let Some(frames) = self.client.wire().read_copy_data_run().await? {
            return Ok(Some(frames));
        }
        match self.client.wire().read().await? {
            BackendMessage::CopyDone => {
                self.done = true;
                Ok(None)
            }
            BackendMessage::ErrorResponse(fields) => {
                self.done = true;
                self.client.wait_ready().await?;
                Err(DbError(fields).into())
            }
            other => Err(unexpected(&other, "reading COPY data")),
        }
    }

    /// Reads the command completion; returns the number of rows copied.
    pub async fn finish(mut self) -> Result<u64, Error> {
        while self.next_frames().await?.is_some() {}
        complete(self.client).await
    }
}

impl CopyIn<'_> {
    /// Sends whole CopyData messages exactly as given (from [`CopyOut::next_frames`]).
    pub async fn send_frames(&mut self, frames: &[u8]) -> Result<(), Error> {
        self.client.wire().write_raw(frames).await
    }

    /// Ends the data and reads the completion; returns the rows the server loaded. A
    /// server error during the load (a constraint, a bad value) is returned here.
    pub async fn finish(self) -> Result<u64, Error> {
        frontend::copy_done(self.client.wire().out());
        self.client.wire().flush().await?;
        complete(self.client).await
    }

    /// Aborts the COPY: the server discards what it loaded.
    pub async fn fail(self, reason: &str) -> Result<(), Error> {
        frontend::copy_fail(reason, self.client.wire().out())?;
        self.client.wire().flush().await?;
        match self.client.wait_ready().await {
            // The server answers CopyFail with the error we asked for.
            Err(Error::Db(_)) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Reads CommandComplete (`COPY n`) and ReadyForQuery.
async fn complete(client: &mut ReplicationClient) -> Result<u64, Error> {
    let mut rows = None;
    let mut error = None;
    loop {
        match client.wire().read().await? {
            BackendMessage::CommandComplete { tag } => {
                rows = tag
                    .strip_prefix("COPY ")
                    .and_then(|n| n.parse::<u64>().ok());
            }
            BackendMessage::ErrorResponse(fields) => {
                error.get_or_insert(DbError(fields));
            }
            BackendMessage::ReadyForQuery { .. } => break,
            BackendMessage::ParameterStatus { .. } => {}
            other => return Err(unexpected(&other, "finishing COPY")),
        }
    }
    if let Some(e) = error {
        return Err(e.into());
    }
    rows.ok_or_else(|| {
        ProtocolError::Invalid {
            tag: b'C',
            what: "COPY completed without a row count",
        }
        .into()
    })
}
