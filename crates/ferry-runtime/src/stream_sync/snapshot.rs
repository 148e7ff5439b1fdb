//! Which transactions an added table's copy already holds, decided by the copy snapshot's
//! transaction ids (`pg_current_snapshot()`: `xmin:xmax:xip,…`).
//!
//! A table added to a running pipeline is copied from a temporary slot's snapshot; its
//! changes then apply only from transactions the copy does not hold. pgoutput and wal2json
//! give each transaction's commit position at its Begin, and a commit before the temporary
//! slot's consistent point is in the copy. decoderbufs gives only a lower bound there, so a
//! transaction that began before the consistent point and committed after it cannot be told
//! by position; by its xid it can: the copy holds exactly the transactions its snapshot
//! sees.

use std::collections::HashSet;

/// A snapshot's transaction ids, with epoch (64-bit, as `pg_current_snapshot()` prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidSnapshot {
    xmin: u64,
    xmax: u64,
    running: HashSet<u64>,
}

impl XidSnapshot {
    /// Parses `xmin:xmax:xip1,xip2,…`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin: u64 = parts.next()?.parse().ok()?;
        let xmax: u64 = parts.next()?.parse().ok()?;
        let list = parts.next()?;
        let running = list
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().ok())
            .collect::<Option<HashSet<u64>>>()?;
        // A snapshot a logical slot exports may read `xmin` one past `xmax` ("1374:1373:",
        // seen with PostgreSQL 15): every xid below `xmin` is visible, as PostgreSQL's own
        // test decides first, so it means `xmin:xmin:`.
        let xmax = if running.is_empty() {
            xmax.max(xmin)
        } else {
            xmax
        };
        (xmin <= xmax && running.iter().all(|x| (xmin..xmax).contains(x))).then_some(Self {
            xmin,
            xmax,
            running,
        })
    }

    /// Whether a transaction with this (32-bit, as decoders send it) xid had committed
    /// when the snapshot was taken. The epoch is the one that puts the xid nearest below
    /// `xmax`: decoded transactions are never 2^31 xids older than a snapshot still in use.
    pub fn sees(&self, xid: u32) -> bool {
        let full = self.widen(xid);
        full < self.xmin || (full < self.xmax && !self.running.contains(&full))
    }

    fn widen(&self, xid: u32) -> u64 {
        let epoch = self.xmax >> 32;
        let candidate = (epoch << 32) | u64::from(xid);
        // More than 2^31 above xmax: it belongs to the epoch before.
        if candidate > self.xmax.saturating_add(1 << 31) && epoch > 0 {
            candidate - (1 << 32)
        } else {
            candidate
        }
    }
}

impl std::fmt::Display for XidSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut running: Vec<u64> = self.running.iter().copied().collect();
        running.sort_unstable();
        let list: Vec<String> = running.iter().map(u64::to_string).collect();
        write!(f, "{}:{}:{}", self.xmin, self.xmax, list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_what_committed_before_it() {
        let s = XidSnapshot::parse("100:110:103,107").unwrap();
        assert!(s.sees(99), "older than xmin");
        assert!(s.sees(104), "finished between xmin and xmax");
        assert!(!s.sees(103), "running at the snapshot");
        assert!(!s.sees(110), "started after it");
        assert!(!s.sees(200));
        assert_eq!(s.to_string(), "100:110:103,107");
        assert_eq!(XidSnapshot::parse(&s.to_string()), Some(s));
    }

    #[test]
    fn xids_are_widened_into_the_snapshots_epoch() {
        let epoch = 3u64 << 32;
        let s = XidSnapshot::parse(&format!("{}:{}:", epoch + 5, epoch + 10)).unwrap();
        assert!(s.sees(4));
        assert!(!s.sees(12));
        // Just before the epoch turned: the previous epoch, long committed.
        assert!(s.sees(u32::MAX - 3));
    }

    /// Found by the torture test: a copy slot's exported snapshot read back as this.
    #[test]
    fn an_exported_snapshot_with_xmin_past_xmax_sees_everything_below_xmin() {
        let s = XidSnapshot::parse("1374:1373:").unwrap();
        assert!(s.sees(1373));
        assert!(!s.sees(1374));
    }

    #[test]
    fn anything_else_is_not_a_snapshot() {
        for text in [
            "", "1", "1:2", "a:b:", "5:3:4", "1:5:9", "1:5:2,x", "1:2:3:4",
        ] {
            assert_eq!(XidSnapshot::parse(text), None, "{text:?}");
        }
    }
}
