//! Loading rows into the target with `COPY … FROM STDIN`, fed straight from a source COPY.
//!
//! The bytes of the source's `COPY TO` are valid input for the target's `COPY FROM` in the
//! same format, so rows pass through without being decoded: in binary when every column
//! type is built in (see `TableDef::binary_copy_safe`), in text otherwise. Both ends use
//! Ferry's own protocol client, which hands the source's CopyData messages to the target
//! unchanged (see `ferry_pgwire::CopyOut`): no per-row work in Ferry at all.

use ferry_pgwire::ReplicationClient;

use crate::schema::TableDef;
use crate::source::snapshot::{copy_column_clause, copy_out_statement, CopyChunk};

/// The `COPY … FROM STDIN` statement loading `table`.
pub fn copy_in_statement(table: &TableDef, binary: bool) -> String {
    let format = if binary { "binary" } else { "text" };
    format!(
        "COPY {}{} FROM STDIN (FORMAT {format})",
        table.name.quoted(),
        copy_column_clause(table)
    )
}

/// Which side of a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading from the source failed")]
    Source(#[source] ferry_pgwire::Error),
    #[error("writing into the target failed")]
    Target(#[source] ferry_pgwire::Error),
}

impl CopyError {
    /// The underlying client error.
    pub fn pg_error(&self) -> &ferry_pgwire::Error {
        match self {
            CopyError::Source(e) | CopyError::Target(e) => e,
        }
    }

    /// The server's SQLSTATE, when a server reported the failure.
    pub fn code(&self) -> Option<&str> {
        self.pg_error().as_db_error().map(|e| e.code())
    }
}

/// Copies `chunk` of `table` from `source` (inside the snapshot transaction) into `target`.
/// `on_bytes` hears of every batch of bytes passed on. Returns the rows the target loaded.
pub async fn copy_chunk(
    source: &mut ReplicationClient,
    target: &mut ReplicationClient,
    table: &TableDef,
    chunk: &CopyChunk,
    mut on_bytes: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let binary = table.binary_copy_safe();
    let mut out = source
        .copy_out(&copy_out_statement(table, chunk, binary))
        .await
        .map_err(CopyError::Source)?;
    let mut load = target
        .copy_in(&copy_in_statement(table, binary))
        .await
        .map_err(CopyError::Target)?;
    loop {
        match out.next_frames().await {
            Ok(Some(frames)) => {
                load.send_frames(&frames).await.map_err(CopyError::Target)?;
                on_bytes(frames.len() as u64);
            }
            Ok(None) => break,
            Err(e) => {
                // Leave the target clean: nothing of this chunk is committed.
                if let Err(fail) = load.fail("the source COPY failed").await {
                    tracing::debug!(error = %fail, "aborting the target COPY failed");
                }
                return Err(CopyError::Source(e));
            }
        }
    }
    out.finish().await.map_err(CopyError::Source)?;
    load.finish().await.map_err(CopyError::Target)
}
