//! PostgreSQL as a source: reading a consistent snapshot, polling by timestamp (and, later,
//! the change stream).

pub mod decode;
pub mod poll;
pub mod snapshot;
pub mod timestamps;
