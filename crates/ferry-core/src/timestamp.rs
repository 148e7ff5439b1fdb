//! [`PgTimestamp`]: a server time as the replication protocol carries it.
//!
//! The protocol sends times as microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's
//! epoch). Keeping that integer, rather than converting on receipt, keeps decoding cheap and
//! exact; conversion happens where a human or a lag metric needs it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;

/// Microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// The current time of this machine.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// `time` in PostgreSQL's representation, saturating far outside its range.
    pub fn from_system_time(time: SystemTime) -> Self {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        let micros = match time.duration_since(pg_epoch) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|m| -m)
                .unwrap_or(i64::MIN),
        };
        PgTimestamp(micros)
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        if self.0 >= 0 {
            pg_epoch + Duration::from_micros(self.0.unsigned_abs())
        } else {
            pg_epoch - Duration::from_micros(self.0.unsigned_abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_the_postgres_epoch() {
        let t = PgTimestamp(0).to_system_time();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            PG_EPOCH_UNIX_SECS
        );
    }

    #[test]
    fn system_time_round_trips() {
        let now = SystemTime::now();
        let back = PgTimestamp::from_system_time(now).to_system_time();
        let diff = now.duration_since(back).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_micros(1));
    }
}
