//! [`finish_target`]: the post-load steps, with index builds spread over several sessions.
//!
//! ```text
//!  queue of index builds ──► session 1..N each takes the next one when it is free
//!  queue of per-table constraint groups ──► same sessions (one table's statements in order
//!                                           on one session; tables in parallel)
//!  setval of every sequence ──► session 1
//! ```
//!
//! A shared queue rather than a fixed split keeps every session busy when index sizes
//! differ by orders of magnitude; `ddl::post_load` lists the largest tables first so the
//! longest build does not start last. Sessions keep the server's `maintenance_work_mem`
//! (raise it for the target role if builds spill to disk) and its `statement_timeout`;
//! when the server refuses some of the sessions, the work runs on those it accepted.
//! On the first failure the other sessions stop taking work and the error names the
//! object; builds already running on the server finish or are cancelled when their
//! session closes.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use ferry_core::TableName;
use ferry_pgwire::{connect_sql, ConnParams};
use futures_util::future::try_join_all;
use tokio_postgres::Client;

use super::SchemaError;
use crate::schema::ddl::{PostLoad, Statement};

/// What a post-load failure leaves behind, for the error message.
const STAGE_NOTE: &str = "the rows are loaded, and the steps before this one are kept";

/// Runs `post` on the target: `indexes` on up to `parallel` sessions at once, then
/// `constraints` (one table's at a time), then `sequences`.
pub async fn finish_target(
    conn: &ConnParams,
    post: &PostLoad,
    parallel: usize,
) -> Result<(), SchemaError> {
    if post.is_empty() {
        return Ok(());
    }
    let indexes: Vec<Vec<&Statement>> = post.indexes.iter().map(|s| vec![s]).collect();
    let constraints = by_table(&post.constraints);
    let sessions = parallel
        .max(1)
        .min(indexes.len().max(constraints.len()).max(1));
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let client = match connect_sql(conn).await {
            Ok(client) => client,
            // Fewer sessions only make it slower (the server may be near max_connections).
            Err(error) if !clients.is_empty() => {
                tracing::warn!(error = %error, sessions = clients.len(), "building indexes with fewer sessions");
                break;
            }
            Err(source) => return Err(SchemaError::Connect { source }),
        };
        // Everything post_load writes is schema-qualified, as in prepare_target.
        client
            .batch_execute("SET search_path = ''")
            .await
            .map_err(|source| {
                SchemaError::create("a session for index builds", STAGE_NOTE, source)
            })?;
        clients.push(client);
    }
    let started = Instant::now();
    run_stage(&clients, indexes, "index built").await?;
    run_stage(&clients, constraints, "constraint added").await?;
    let sequences = vec![post.sequences.iter().collect()];
    run_stage(&clients[..1], sequences, "sequences set").await?;
    tracing::info!(
        indexes = post.indexes.len(),
        constraints = post.constraints.len(),
        sequences = post.sequences.len(),
        sessions = clients.len(),
        seconds = started.elapsed().as_secs_f64(),
        "indexes, constraints and sequences done"
    );
    Ok(())
}

/// `statements` grouped by [`Statement::table`], groups in order of first appearance;
/// a statement without a table is a group of its own.
fn by_table(statements: &[Statement]) -> Vec<Vec<&Statement>> {
    let mut groups: Vec<(Option<&TableName>, Vec<&Statement>)> = Vec::new();
    for statement in statements {
        let key = statement.table.as_ref();
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, group)) => group.push(statement),
            None => groups.push((key, vec![statement])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Runs `jobs` on `clients`, each client taking the next job when free; a job's
/// statements run in order on one client. Stops at the first failure.
async fn run_stage(
    clients: &[Client],
    jobs: Vec<Vec<&Statement>>,
    done: &'static str,
) -> Result<(), SchemaError> {
    if jobs.iter().all(Vec::is_empty) {
        return Ok(());
    }
    let queue = Mutex::new(VecDeque::from(jobs));
    let next = || {
        queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    };
    let workers = clients.iter().map(|client| async {
        while let Some(job) = next() {
            for statement in job {
                let started = Instant::now();
                if let Err(source) = client.batch_execute(&statement.sql).await {
                    queue.lock().unwrap_or_else(PoisonError::into_inner).clear();
                    return Err(SchemaError::create(&statement.object, STAGE_NOTE, source));
                }
                tracing::info!(
                    object = %statement.object,
                    seconds = started.elapsed().as_secs_f64(),
                    "{done}"
                );
            }
        }
        Ok(())
    });
    try_join_all(workers).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(table: Option<&str>, sql: &str) -> Statement {
        Statement {
            object: sql.to_owned(),
            sql: sql.to_owned(),
            table: table.map(|t| TableName::new("public", t)),
        }
    }

    #[test]
    fn one_tables_statements_stay_together_and_in_order() {
        let statements = vec![
            statement(Some("a"), "a1"),
            statement(Some("b"), "b1"),
            statement(None, "x"),
            statement(Some("a"), "a2"),
            statement(None, "y"),
        ];
        let groups: Vec<Vec<&str>> = by_table(&statements)
            .into_iter()
            .map(|g| g.into_iter().map(|s| s.sql.as_str()).collect())
            .collect();
        assert_eq!(groups, [vec!["a1", "a2"], vec!["b1"], vec!["x"], vec!["y"]]);
    }
}
