//! Ferry's pipelines: what runs, in which order, and what it reports.
//!
//! `ferry-postgres` knows how to read and write PostgreSQL; this crate sequences those
//! pieces into a sync (snapshot, parallel copy, index build; later streaming), reports
//! progress as events, and classifies failures.

mod error;
pub mod full_sync;
mod indexes;
pub mod progress;
pub mod stream_sync;
pub mod timestamp_sync;

pub use error::SyncError;
pub use full_sync::{run_full_sync, FullSyncOptions, SnapshotSource};
pub use progress::{FullSyncSummary, Progress, SyncEvent};
pub use stream_sync::decoder::{plugin_options, selected_tables, StreamDecoder};
pub use stream_sync::{
    plan_stream_sync, record_last_error, run_stream_sync, BatchLimits, StreamSyncOptions,
};
pub use timestamp_sync::{run_timestamp_sync, TimestampSyncOptions};
