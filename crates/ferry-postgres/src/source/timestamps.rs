//! The source-side set-up of timestamp-column sync: a column on each table that a trigger
//! keeps at the time of the row's last INSERT or UPDATE, which the poller reads by.
//!
//! This owns the SQL (pure: [`setup_sql`], [`setup_script`]), applying it in one transaction
//! ([`apply_setup`]), and reading back what a source has ([`inspect`], and [`check_items`]
//! for `ferry check` in timestamp mode). It is the source document's step 8, with its
//! misspelled column (`last_udpate`) replaced by the configured name (default
//! `last_update`).
//!
//! ```text
//!  function  <schema>.ferry_set_<column>()          one per distinct column name
//!              BEGIN NEW.<column> := now(); RETURN NEW; END
//!  per table ALTER TABLE t ADD COLUMN IF NOT EXISTS <column> timestamptz NOT NULL DEFAULT now()
//!            CREATE INDEX IF NOT EXISTS <table>_<column>_ferry_idx ON t (<column>)
//!            DROP TRIGGER IF EXISTS ferry_<column> ON t
//!            CREATE TRIGGER ferry_<column> BEFORE INSERT OR UPDATE ON t FOR EACH ROW …
//!            ALTER TABLE t ENABLE ALWAYS TRIGGER ferry_<column>
//! ```
//!
//! **Why `now()`.** `now()` is the start time of the writing transaction, so every row a
//! transaction writes carries that one time, however late it commits. A row that is not yet
//! visible to a poll therefore carries a time no earlier than the start of the oldest
//! transaction still running; a poller that only advances its watermark to just below that
//! start time (read on the server, from the server's clock) misses no late commit, and
//! re-reads the rest idempotently. `clock_timestamp()` would be no safer (still before the
//! commit) and would split one transaction's rows over many times.
//!
//! **Why one tiny function per column name.** A trigger function cannot take the column as
//! a typed argument. The generic alternative, `NEW := jsonb_populate_record(NEW,
//! jsonb_build_object(TG_ARGV[0], now()))`, renders the time as JSON text and parses it back
//! and rebuilds the whole row from a record on every write. `NEW.<column> := now()` is a
//! direct field store with the assignment cast plpgsql compiles once per table, and the
//! function body says exactly what it writes. Tables almost always share one column name,
//! so this is usually one function: `ferry_set_last_update`.
//!
//! **Idempotent.** `CREATE OR REPLACE FUNCTION`, `ADD COLUMN IF NOT EXISTS`, `CREATE INDEX IF
//! NOT EXISTS`, and `DROP TRIGGER IF EXISTS` + `CREATE TRIGGER` (`CREATE OR REPLACE
//! TRIGGER` needs PostgreSQL 14; this supports 10 and later, hence also `EXECUTE
//! PROCEDURE`): a second run leaves the same catalog state. Names longer than PostgreSQL's
//! 63 bytes are cut at a character boundary and get a hash of the full name, so two long
//! names never collapse into one (PostgreSQL would silently truncate them).
//!
//! **ENABLE ALWAYS.** A plain trigger does not fire in sessions with
//! `session_replication_role = replica`, which is how logical-replication apply workers
//! run: if the source is itself a subscriber, its replicated UPDATEs would not be stamped
//! and the poller would never see them.
//!
//! **Costs on a big table.** On PostgreSQL 11 and later, adding a `NOT NULL DEFAULT now()`
//! column is a metadata-only change (a "fast default": `now()` is stable, evaluated once),
//! so it takes a brief ACCESS EXCLUSIVE lock and no rewrite; PostgreSQL 10 rewrites the
//! table, and the report warns. Existing rows all get the time of the ALTER, so the first
//! poll after the full copy re-reads them: harmless, the upserts are idempotent. The index
//! build blocks writes to its table until the set-up commits; for a large, busy table, add
//! the column first, then `CREATE INDEX CONCURRENTLY` on it (any name): [`apply_setup`]
//! skips its own index when a valid btree index leads with the column (the printed SQL's
//! `IF NOT EXISTS` only knows the name [`index_name`]). Everything runs with
//! `lock_timeout` ([`LOCK_TIMEOUT`]), so a long transaction holding a table makes the set-up
//! fail (transient; run again) instead of queueing every other session behind its lock
//! request.

mod apply;
mod error;
mod findings;
mod inspect;
mod sql;

use ferry_core::TableName;

pub use apply::{apply_setup, SetupReport, LOCK_TIMEOUT};
pub use error::TimestampSetupError;
pub use findings::check_items;
pub use inspect::{inspect, ColumnState, TableTimestampState, TriggerMode, TriggerState};
pub use sql::{function_name, index_name, setup_script, setup_sql, trigger_name, SetupStatement};

/// The column name used when a table configures none.
pub const DEFAULT_TIMESTAMP_COLUMN: &str = "last_update";

/// The schema of the trigger functions when the configuration names none.
pub const DEFAULT_FUNCTION_SCHEMA: &str = "public";

/// A table synced by timestamp, and the column that holds its rows' last-change time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimestampTable {
    pub table: TableName,
    pub column: String,
}

impl TimestampTable {
    /// `table` stamped in `column`.
    pub fn new(table: TableName, column: impl Into<String>) -> Self {
        TimestampTable {
            table,
            column: column.into(),
        }
    }
}
