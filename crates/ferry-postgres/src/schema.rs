//! The source schema, read from the catalog, and its re-creation on the target.
//!
//! ```text
//!  source catalog ──read──► SourceSchema ──ddl──► pre-load statements  (schemas, types,
//!   (inside the snapshot)        │                  sequences, tables without indexes)
//!                                 │         ──ddl──► post-load steps     (indexes in parallel,
//!                                 │                  then constraints USING INDEX, setval)
//!                                 └──► copy planning, apply (keys, columns)
//! ```
//!
//! Tables are created without indexes and key constraints so the load does not maintain
//! them row by row; the indexes are built afterwards, several at a time.

pub mod create;
pub mod ddl;
pub mod model;
pub mod read;

pub use model::*;
