//! PostgreSQL as a target: bulk loading (and, later, applying changes).

pub mod copy;
pub mod upsert;
