//! Ferry's change model: the vocabulary every other crate speaks.
//!
//! This crate owns the types that must not be confused across an API (an LSN is not a byte
//! count, a relation id is not a row count), the server's time representation, and the one
//! SQL quoting helper. It does no I/O, so the protocol client, the source and sink code and
//! the runtime can all depend on it without pulling each other in.

pub mod change;
mod lsn;
pub mod quote;
mod timestamp;

pub use change::{Change, Datum, Relation, RelationColumn, RelationId, Row};
pub use lsn::{Lsn, ParseLsnError};
pub use quote::{quote_ident, quote_literal, TableName};
pub use timestamp::PgTimestamp;
