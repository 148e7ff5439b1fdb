//! PostgreSQL as a target: bulk loading, polled upserts, and the SQL of applied changes.

pub mod alter;
pub mod apply;
pub mod batch;
pub mod copy;
pub mod upsert;
