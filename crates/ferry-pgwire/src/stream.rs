//! [`ReplicationStream`]: the CopyBoth phase of a logical replication connection.
//!
//! It yields XLogData and keepalives, and keeps the server content on its own: a keepalive
//! that requests a reply is answered at once, and a standby status update goes out every
//! `status_interval` even when nothing arrives, so `wal_sender_timeout` never fires on a
//! healthy consumer. The `flush` position it reports is only ever what the caller declared
//! durable with [`ReplicationStream::confirm_durable`] (DESIGN.md invariant 1).

use std::time::Duration;

use ferry_core::{Lsn, PgTimestamp};
use postgres_protocol::message::frontend;
use tokio::time::{sleep_until, Instant};

use crate::client::ReplicationClient;
use crate::error::{DbError, Error};
use crate::frame::BackendMessage;
use crate::replication::{parse_copy_data, ReplicationMessage, StandbyStatus};
use crate::startup::unexpected;

/// Half of the server's default `wal_sender_timeout` (60 s) would do; 10 s is what
/// PostgreSQL's own subscribers use, and keeps the slot's progress fresh for monitoring.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// A running logical replication stream.
#[derive(Debug)]
pub struct ReplicationStream {
    client: ReplicationClient,
    received: Lsn,
    durable: Lsn,
    status_interval: Duration,
    next_status: Instant,
    finished: bool,
}

enum Event {
    Message(BackendMessage),
    StatusDue,
}

impl ReplicationStream {
    pub(crate) fn new(client: ReplicationClient, start: Lsn) -> Self {
        ReplicationStream {
            client,
            received: start,
            // Nothing is declared durable until the caller says so: a flush of 0 is ignored
            // by the server, while the start position may not be durable on the target yet.
            durable: Lsn::ZERO,
            status_interval: DEFAULT_STATUS_INTERVAL,
            next_status: Instant::now() + DEFAULT_STATUS_INTERVAL,
            finished: false,
        }
    }

    /// How often a status update goes out when nothing else prompts one.
    pub fn set_status_interval(&mut self, interval: Duration) {
        self.status_interval = interval;
        self.next_status = Instant::now() + interval;
    }

    /// Declares everything up to `lsn` durable in the target: the next status update lets
    /// the server recycle WAL before it. Positions never move backwards.
    pub fn confirm_durable(&mut self, lsn: Lsn) {
        self.durable = self.durable.max(lsn);
    }

    /// Brings the next status update forward to at most `within` from now (after a commit,
    /// so that the server, and whoever watches the slot, learn of it promptly).
    pub fn status_within(&mut self, within: Duration) {
        self.next_status = self.next_status.min(Instant::now() + within);
    }

    /// When the next status update is due if nothing prompts one earlier.
    pub fn next_status_at(&self) -> Instant {
        self.next_status
    }

    /// The position last declared durable.
    pub fn durable(&self) -> Lsn {
        self.durable
    }

    /// The highest WAL position the server has told us about.
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// The server process streaming to us.
    pub fn process_id(&self) -> i32 {
        self.client.process_id()
    }

    /// The next message; `None` once the server has ended the stream. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<ReplicationMessage>, Error> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let deadline = self.next_status;
            let event = tokio::select! {
                message = self.client.wire().read() => Event::Message(message?),
                () = sleep_until(deadline) => Event::StatusDue,
            };
            match event {
                Event::StatusDue => self.send_status(false).await?,
                Event::Message(BackendMessage::CopyData(bytes)) => {
                    let message = parse_copy_data(bytes)?;
                    match &message {
                        ReplicationMessage::XLogData(x) => {
                            self.received = self.received.max(x.wal_start);
                        }
                        ReplicationMessage::PrimaryKeepalive(k) => {
                            self.received = self.received.max(k.wal_end);
                            if k.reply_requested {
                                self.send_status(false).await?;
                            }
                        }
                    }
                    return Ok(Some(message));
                }
                Event::Message(BackendMessage::CopyDone) => {
                    // The server ended the stream (e.g. shutting down): finish our half and
                    // read its command completion so the connection is clean.
                    frontend::copy_done(self.client.wire().out());
                    self.client.wire().flush().await?;
                    self.finished = true;
                    self.client.wait_ready().await?;
                }
                Event::Message(BackendMessage::ErrorResponse(fields)) => {
                    return Err(DbError(fields).into())
                }
                // A server shutting down while we are caught up ends the COPY with
                // CommandComplete and closes, without CopyDone (walsender.c WalSndDone).
                Event::Message(BackendMessage::CommandComplete { .. }) => {
                    self.finished = true;
                    return Err(Error::Closed);
                }
                Event::Message(other) => return Err(unexpected(&other, "streaming")),
            }
        }
    }

    /// Sends a standby status update now: write = received, flush = apply = durable.
    pub async fn send_status(&mut self, reply_requested: bool) -> Result<(), Error> {
        let status = StandbyStatus {
            write: self.received.max(self.durable),
            flush: self.durable,
            apply: self.durable,
            client_time: PgTimestamp::now(),
            reply_requested,
        };
        frontend::CopyData::new(status.encode())?.write(self.client.wire().out());
        self.client.wire().flush().await?;
        self.next_status = Instant::now() + self.status_interval;
        tracing::trace!(flush = %self.durable, "standby status sent");
        Ok(())
    }

    /// Ends streaming from our side (after a final status update) and returns the connection
    /// for further commands.
    pub async fn finish(mut self) -> Result<ReplicationClient, Error> {
        if !self.finished {
            self.send_status(false).await?;
            frontend::copy_done(self.client.wire().out());
            self.client.wire().flush().await?;
            let mut error = None;
            loop {
                match self.client.wire().read().await? {
                    BackendMessage::ReadyForQuery { .. } => break,
                    BackendMessage::ErrorResponse(fields) => {
                        error.get_or_insert(DbError(fields));
                    }
                    // Data still in flight when we said stop, then the server's own end.
                    _ => {}
                }
            }
            if let Some(e) = error {
                return Err(e.into());
            }
        }
        Ok(self.client)
    }
}
