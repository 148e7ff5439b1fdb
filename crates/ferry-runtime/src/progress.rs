//! What a running sync reports, as events for whoever displays them.
//!
//! The runtime never prints: it sends [`SyncEvent`]s over a channel, and the binary draws
//! progress bars on a terminal or writes periodic log lines elsewhere. Events carry table
//! names and counts only, never row values.

use std::time::Duration;

use ferry_core::TableName;

/// One step of a full sync.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// The copy is planned: how much there is to do.
    Planned {
        tables: usize,
        chunks: usize,
        estimated_bytes: u64,
    },
    /// A table's first chunk started.
    TableStarted {
        table: TableName,
        estimated_bytes: u64,
        estimated_rows: i64,
    },
    /// Bytes of `table` passed to the target.
    Bytes { table: TableName, bytes: u64 },
    /// Every chunk of `table` is loaded.
    TableFinished {
        table: TableName,
        rows: u64,
        bytes: u64,
    },
    /// The copy is done; the remaining indexes and constraints are being built (those of
    /// tables copied earlier may already be done).
    BuildingIndexes,
    /// The whole sync finished.
    Finished(FullSyncSummary),
    /// Incremental sync committed `transactions` source transactions with `changes` row
    /// changes on the target (one group, or one streamed transaction), up to `lsn`.
    Applied {
        transactions: u64,
        changes: u64,
        /// Bytes of SQL sent to the target for them.
        bytes: u64,
        lsn: ferry_core::Lsn,
    },
}

/// What a finished full sync did.
#[derive(Debug, Clone, PartialEq)]
pub struct FullSyncSummary {
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub copy_time: Duration,
    /// From the end of the copy to the last index built.
    pub index_time: Duration,
    pub total_time: Duration,
    /// The slot's consistent point, when the snapshot came from a slot (kept or not).
    pub consistent_point: Option<ferry_core::Lsn>,
    /// The copy snapshot's transaction ids (`xmin:xmax:xip,…`): which transactions the copy
    /// holds, for decoders that give no commit position at Begin.
    pub snapshot_xids: String,
}

impl FullSyncSummary {
    /// Copy throughput in MB/s (10^6 bytes) over the whole run.
    pub fn megabytes_per_second(&self) -> f64 {
        let secs = self.total_time.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / 1e6 / secs
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for FullSyncSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "copied {} {}, {} rows, {:.1} MB in {:.1} s ({:.1} MB/s; copy {:.1} s, indexes {:.1} s)",
            self.tables,
            if self.tables == 1 { "table" } else { "tables" },
            self.rows,
            self.bytes as f64 / 1e6,
            self.total_time.as_secs_f64(),
            self.megabytes_per_second(),
            self.copy_time.as_secs_f64(),
            self.index_time.as_secs_f64()
        )
    }
}

/// Where events go; a closed receiver is ignored (nobody is watching).
#[derive(Debug, Clone)]
pub struct Progress(Option<tokio::sync::mpsc::UnboundedSender<SyncEvent>>);

impl Progress {
    /// Reports to `sender`.
    pub fn to(sender: tokio::sync::mpsc::UnboundedSender<SyncEvent>) -> Self {
        Progress(Some(sender))
    }

    /// Reports nowhere.
    pub fn none() -> Self {
        Progress(None)
    }

    pub(crate) fn send(&self, event: SyncEvent) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(event);
        }
    }
}
