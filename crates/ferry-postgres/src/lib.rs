//! PostgreSQL as a Ferry source and target.
//!
//! Everything here speaks SQL to PostgreSQL (through tokio-postgres) or the replication
//! protocol (through `ferry-pgwire`): the catalog queries, which tables a pipeline carries,
//! the output plugins, and the preflight `check`. The source and sink halves of sync arrive
//! as `source/` and `sink/` modules.

pub mod catalog;
pub mod check;
mod plugin;
pub mod publication;
pub mod schema;
mod selection;
pub mod sink;
pub mod slots;
pub mod source;
pub mod verify;

pub use plugin::Plugin;
pub use selection::{
    read_selection, resolve, ResolvedSelection, SelectedTable, TablePattern, TableSelection,
};
