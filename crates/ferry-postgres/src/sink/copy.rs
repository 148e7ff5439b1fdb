//! Loading rows into the target with `COPY … FROM STDIN`, fed straight from a source COPY.
//!
//! The bytes of the source's `COPY TO` are valid input for the target's `COPY FROM` in the
//! same format, so rows pass through without being decoded: in binary when every column
//! type is built in (see `TableDef::binary_copy_safe`), in text otherwise. The source sends
//! one CopyData message per row; they are coalesced into larger messages for the target,
//! which COPY allows (the data stream need not align with rows).

use bytes::{BufMut, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;

use crate::schema::TableDef;
use crate::source::snapshot::{column_list, copy_out_statement, CopyChunk};

/// Bytes gathered before one CopyData message goes to the target.
const COALESCE_BYTES: usize = 256 * 1024;

/// The `COPY … FROM STDIN` statement loading `table`.
pub fn copy_in_statement(table: &TableDef, binary: bool) -> String {
    let format = if binary { "binary" } else { "text" };
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT {format})",
        table.name.quoted(),
        column_list(table)
    )
}

/// Which side of a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading from the source failed")]
    Source(#[source] tokio_postgres::Error),
    #[error("writing into the target failed")]
    Target(#[source] tokio_postgres::Error),
}

impl CopyError {
    /// The underlying database error.
    pub fn pg_error(&self) -> &tokio_postgres::Error {
        match self {
            CopyError::Source(e) | CopyError::Target(e) => e,
        }
    }
}

/// Copies `chunk` of `table` from `source` (inside the snapshot transaction) into `target`.
/// `on_bytes` hears of every batch of bytes passed on. Returns the rows the target loaded.
pub async fn copy_chunk(
    source: &Client,
    target: &Client,
    table: &TableDef,
    chunk: &CopyChunk,
    mut on_bytes: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let binary = table.binary_copy_safe();
    let out = source
        .copy_out(&copy_out_statement(table, chunk, binary))
        .await
        .map_err(CopyError::Source)?;
    let sink = target
        .copy_in(&copy_in_statement(table, binary))
        .await
        .map_err(CopyError::Target)?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    let mut buffer = BytesMut::with_capacity(COALESCE_BYTES * 2);
    while let Some(data) = out.next().await {
        let data = data.map_err(CopyError::Source)?;
        buffer.put_slice(&data);
        if buffer.len() >= COALESCE_BYTES {
            let len = buffer.len() as u64;
            sink.send(buffer.split().freeze())
                .await
                .map_err(CopyError::Target)?;
            on_bytes(len);
        }
    }
    if !buffer.is_empty() {
        let len = buffer.len() as u64;
        sink.send(buffer.split().freeze())
            .await
            .map_err(CopyError::Target)?;
        on_bytes(len);
    }
    sink.as_mut().finish().await.map_err(CopyError::Target)
}
