//! Asynchronous commits on the target, confirmed to the source only once durable.
//!
//! Apply sessions commit with `synchronous_commit = off`, as PostgreSQL's own apply worker
//! does: a commit returns without waiting for the target's WAL flush, which is most of a
//! small transaction's latency. The slot is still confirmed only up to what is durable
//! (DESIGN.md invariant 1): each commit records the target's WAL insert position after it,
//! paired with the source position it stores, and a source position is confirmed once the
//! target's flush position has passed its commit. If the target crashes before that flush,
//! the commit and its progress row are lost together and the source sends the changes again.
//! A run's stored position counts as such a commit too: the run that wrote it may have been
//! killed before the target flushed it, so a new run confirms it only once the target's
//! flush passes the insert position read at its start.
//!
//! ```text
//!  COMMIT; SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()
//!      └─ pending += (insert, source end); confirm every pending entry with insert <= flush
//!  idle: SELECT pg_current_wal_flush_lsn() every POLL until nothing is pending
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use ferry_core::Lsn;
use ferry_pgwire::{QueryResult, ReplicationClient};

use crate::error::SyncError;

/// Ends a transaction and reads the target's WAL positions, in one round trip.
pub(super) const COMMIT: &str =
    "COMMIT; SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text";

/// How often the flush position is read while commits wait for it and nothing else happens
/// (the target's WAL writer flushes asynchronous commits within `wal_writer_delay`, 200 ms
/// by default).
pub(super) const POLL: Duration = Duration::from_millis(50);

/// Source positions committed on the target but maybe not yet durable there.
#[derive(Debug, Default)]
pub(super) struct Durability {
    pending: VecDeque<(Lsn, Lsn)>,
}

impl Durability {
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A commit ended at or before `target` on the target and stored `source`; the target
    /// had flushed up to `flushed` then. Returns the source position now durable, if it moved.
    pub(super) fn committed(&mut self, target: Lsn, source: Lsn, flushed: Lsn) -> Option<Lsn> {
        self.pending.push_back((target, source));
        self.flushed(flushed)
    }

    /// The target has flushed up to `flushed`: the source position now durable, if it moved.
    pub(super) fn flushed(&mut self, flushed: Lsn) -> Option<Lsn> {
        let mut durable = None;
        while let Some(&(target, source)) = self.pending.front() {
            if target > flushed {
                break;
            }
            durable = Some(source);
            self.pending.pop_front();
        }
        durable
    }
}

/// The insert and flush positions a [`COMMIT`] read.
pub(super) fn positions(results: &[QueryResult]) -> Result<(Lsn, Lsn), SyncError> {
    let row = results
        .last()
        .and_then(|r| r.rows.first())
        .ok_or_else(|| SyncError::Internal("the target sent no WAL positions".into()))?;
    let lsn = |i: usize| -> Result<Lsn, SyncError> {
        row.get(i)
            .cloned()
            .flatten()
            .unwrap_or_default()
            .parse()
            .map_err(|e| SyncError::Internal(format!("target WAL position: {e}")))
    };
    Ok((lsn(0)?, lsn(1)?))
}

/// The target's WAL insert and flush positions now.
pub(super) async fn wal_positions(target: &mut ReplicationClient) -> Result<(Lsn, Lsn), SyncError> {
    let results = target
        .simple_query("SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text")
        .await
        .map_err(|e| SyncError::session("reading the target's WAL flush position", e))?;
    positions(&results)
}

/// The target's WAL flush position now.
pub(super) async fn flush_position(target: &mut ReplicationClient) -> Result<Lsn, SyncError> {
    Ok(wal_positions(target).await?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: u64) -> Lsn {
        Lsn::from_u64(n)
    }

    #[test]
    fn a_source_position_is_durable_once_its_commit_is_flushed() {
        let mut d = Durability::default();
        assert_eq!(d.committed(l(100), l(1000), l(50)), None);
        assert_eq!(d.committed(l(200), l(2000), l(100)), Some(l(1000)));
        assert!(!d.is_empty());
        assert_eq!(d.flushed(l(150)), None);
        assert_eq!(d.flushed(l(200)), Some(l(2000)));
        assert!(d.is_empty());
    }
}
