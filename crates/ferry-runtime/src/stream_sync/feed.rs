//! Reading the replication stream in its own task, so that the source keeps decoding while
//! the target applies.
//!
//! Applying a group waits for the target; if nothing read the stream meanwhile, the
//! walsender would stop as soon as the socket buffers filled, and decoding and applying would
//! take turns instead of running at once. The reader task owns the [`ReplicationStream`]: it
//! reads ahead into a channel bounded by bytes ([`READ_AHEAD_BYTES`], so memory stays
//! bounded), answers keepalives, and sends the standby status updates that the apply asks for
//! through [`Feedback`] (the durable position: DESIGN.md invariant 1 holds because only the
//! apply decides it).
//!
//! ```text
//!  walsender ──► reader task ──(messages, ≤ READ_AHEAD_BYTES)──► apply
//!                   ▲                                              │
//!                   └──────────── Feedback: durable LSN, status ───┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use ferry_core::Lsn;
use ferry_pgwire::{ReplicationMessage, ReplicationStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::AbortOnDrop;
use crate::error::SyncError;

/// At most this many bytes of messages are read ahead of the apply.
pub(super) const READ_AHEAD_BYTES: usize = 32 << 20;

/// A commit is reported to the server within this delay.
const STATUS_AFTER_COMMIT: Duration = Duration::from_millis(100);

/// A message with its share of the read-ahead budget, given back when it is dropped.
pub(super) struct Received {
    pub(super) message: ReplicationMessage,
    _budget: OwnedSemaphorePermit,
}

enum Signal {
    Durable(Lsn),
    StatusNow,
    Finish,
}

/// The apply's side of the status updates.
#[derive(Clone)]
pub(super) struct Feedback {
    tx: mpsc::UnboundedSender<Signal>,
}

impl Feedback {
    /// Everything up to `lsn` is durable in the target: report it soon.
    pub(super) fn confirm(&self, lsn: Lsn) {
        let _ = self.tx.send(Signal::Durable(lsn));
    }

    /// Send a status update now.
    pub(super) fn status_now(&self) {
        let _ = self.tx.send(Signal::StatusNow);
    }
}

/// The apply's side of the stream.
pub(super) struct Feed {
    rx: mpsc::Receiver<Result<Received, ferry_pgwire::Error>>,
    feedback: Feedback,
    reader: AbortOnDrop,
}

impl Feed {
    /// Starts reading `stream` in a task.
    pub(super) fn start(stream: ReplicationStream) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let (fb_tx, fb_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read(stream, tx, fb_rx));
        Feed {
            rx,
            feedback: Feedback { tx: fb_tx },
            reader: AbortOnDrop(reader),
        }
    }

    pub(super) fn feedback(&self) -> Feedback {
        self.feedback.clone()
    }

    /// The next message; `None` once the server ended the stream.
    pub(super) async fn recv(&mut self) -> Result<Option<Received>, SyncError> {
        match self.rx.recv().await {
            Some(result) => result
                .map(Some)
                .map_err(|e| SyncError::session("streaming from the slot", e)),
            None => Ok(None),
        }
    }

    /// A message already read, if there is one.
    pub(super) fn try_recv(&mut self) -> Result<Option<Received>, SyncError> {
        match self.rx.try_recv() {
            Ok(result) => result
                .map(Some)
                .map_err(|e| SyncError::session("streaming from the slot", e)),
            Err(_) => Ok(None),
        }
    }

    /// Ends the reader after a last status update with what the apply confirmed.
    pub(super) async fn finish(mut self) {
        let _ = self.feedback.tx.send(Signal::Finish);
        self.rx.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader.0).await;
    }
}

/// While the apply is behind and the reader cannot hand a message on, a status update goes
/// out at least this often: the server's keepalives are not being read meanwhile, and an
/// apply stalled longer than `wal_sender_timeout` (a lock wait, a table rewrite) must not
/// make the server drop the connection.
const STALLED_STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the reader does after a signal from the apply.
enum Next {
    Go,
    Stop,
}

/// Acts on a signal from the apply.
async fn on_signal(
    stream: &mut ReplicationStream,
    signal: Option<Signal>,
    tx: &mpsc::Sender<Result<Received, ferry_pgwire::Error>>,
) -> Next {
    match signal {
        Some(Signal::Durable(lsn)) => {
            stream.confirm_durable(lsn);
            stream.status_within(STATUS_AFTER_COMMIT);
            Next::Go
        }
        Some(Signal::StatusNow) => match stream.send_status(false).await {
            Ok(()) => Next::Go,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                Next::Stop
            }
        },
        Some(Signal::Finish) | None => {
            // The apply is done: tell the server what it confirmed last.
            let _ = stream.send_status(false).await;
            Next::Stop
        }
    }
}

/// Waits for `ready` (room in the read-ahead) while still answering the apply's signals and
/// sending status updates; `None` when the reader must stop.
async fn wait_for_room<T>(
    stream: &mut ReplicationStream,
    feedback: &mut mpsc::UnboundedReceiver<Signal>,
    tx: &mpsc::Sender<Result<Received, ferry_pgwire::Error>>,
    ready: impl std::future::Future<Output = Option<T>>,
) -> Option<T> {
    tokio::pin!(ready);
    loop {
        let due = stream
            .next_status_at()
            .min(tokio::time::Instant::now() + STALLED_STATUS_EVERY);
        tokio::select! {
            biased;
            signal = feedback.recv() => {
                if let Next::Stop = on_signal(stream, signal, tx).await {
                    return None;
                }
            }
            got = &mut ready => return got,
            () = tokio::time::sleep_until(due) => {
                if let Err(e) = stream.send_status(false).await {
                    let _ = tx.send(Err(e)).await;
                    return None;
                }
            }
        }
    }
}

async fn read(
    mut stream: ReplicationStream,
    tx: mpsc::Sender<Result<Received, ferry_pgwire::Error>>,
    mut feedback: mpsc::UnboundedReceiver<Signal>,
) {
    let budget = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
    loop {
        tokio::select! {
            biased;
            signal = feedback.recv() => {
                if let Next::Stop = on_signal(&mut stream, signal, &tx).await {
                    return;
                }
            }
            message = stream.next() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let size = match &message {
                    ReplicationMessage::XLogData(x) => x.data.len(),
                    ReplicationMessage::PrimaryKeepalive(_) => 0,
                };
                let permits = u32::try_from(size.clamp(1, READ_AHEAD_BYTES)).unwrap_or(u32::MAX);
                let room = budget.clone().acquire_many_owned(permits);
                let Some(permit) =
                    wait_for_room(&mut stream, &mut feedback, &tx, async { room.await.ok() }).await
                else {
                    return;
                };
                let slot = wait_for_room(&mut stream, &mut feedback, &tx, async { tx.reserve().await.ok() });
                let Some(slot) = slot.await else {
                    let _ = stream.send_status(false).await;
                    return;
                };
                slot.send(Ok(Received { message, _budget: permit }));
            }
        }
    }
}
