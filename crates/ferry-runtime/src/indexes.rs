//! Building the target's indexes and constraints while the copy is still running.
//!
//! A table's indexes can be built as soon as its last chunk is loaded; waiting for the whole
//! copy leaves CPU idle during the copy's tail (when fewer chunks than workers remain) and
//! then makes every index build wait in line. So each ordinary table's indexes and key
//! constraints are built the moment it is copied, and what needs the whole copy —
//! partitioned tables (whose indexes cascade into every partition), NOT VALID domain checks,
//! sequence values — is built at the end.

use std::collections::HashSet;

use ferry_core::TableName;
use ferry_pgwire::ConnParams;
use ferry_postgres::schema::create::{finish_target, SchemaError};
use ferry_postgres::schema::ddl::post_load;
use ferry_postgres::schema::SourceSchema;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

/// Connections per table for its own indexes (a table rarely has many; more would starve
/// the copy).
const PER_TABLE_SESSIONS: usize = 2;

/// Builds the indexes of `created` (the tables this run created): each ordinary table's as
/// its name arrives on `copied`, the rest once `copied` closes, with up to `parallel`
/// sessions. Returns the number of statements run at the end.
pub(crate) async fn build_indexes(
    target: ConnParams,
    created: SourceSchema,
    mut copied: UnboundedReceiver<TableName>,
    parallel: usize,
) -> Result<(), SchemaError> {
    let early: HashSet<TableName> = created
        .tables
        .iter()
        .filter(|t| t.has_storage() && t.partition_of.is_none())
        .map(|t| t.name.clone())
        .collect();
    let mut builds = JoinSet::new();
    while let Some(name) = copied.recv().await {
        let Some(table) = created.table(&name).filter(|_| early.contains(&name)) else {
            continue;
        };
        let post = post_load(&SourceSchema {
            tables: vec![table.clone()],
            ..SourceSchema::default()
        });
        if post.is_empty() {
            continue;
        }
        let target = target.clone();
        builds.spawn(async move { finish_target(&target, &post, PER_TABLE_SESSIONS).await });
    }
    let mut first_error = None;
    while let Some(joined) = builds.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => tracing::error!(error = %e, "an index build task failed"),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let rest = SourceSchema {
        schemas: Vec::new(),
        types: created.types,
        sequences: created.sequences,
        tables: created
            .tables
            .into_iter()
            .filter(|t| !early.contains(&t.name))
            .collect(),
    };
    finish_target(&target, &post_load(&rest), parallel).await
}
