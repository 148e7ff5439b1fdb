//! PostgreSQL as a source: reading a consistent snapshot (and, later, the change stream).

pub mod poll;
pub mod snapshot;
