//! Reading the source inside one exported snapshot: importing it, and planning the copy.
//!
//! Every copy worker runs `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` and
//! `SET TRANSACTION SNAPSHOT '<name>'`, so all of them see the database exactly as of the
//! moment the snapshot was exported (DESIGN.md invariant 3). The work is cut into chunks:
//! a whole table, or, for a large table on PostgreSQL 14 and later (which scans a ctid
//! range without reading the rest of the table), a range of heap blocks. Chunks are handed
//! out largest first so the longest one does not start last.

use ferry_core::{quote_ident, quote_literal};
use tokio_postgres::Client;

use crate::schema::{SourceSchema, TableDef};

/// PostgreSQL's block size; `pg_relation_size / BLOCK_SIZE` is the number of heap blocks.
const BLOCK_SIZE: i64 = 8192;

/// A table smaller than this is copied in one piece.
pub const DEFAULT_SPLIT_BYTES: i64 = 256 << 20;

/// The statements that start a REPEATABLE READ, READ ONLY transaction seeing `snapshot`.
pub fn import_snapshot_sql(snapshot: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(snapshot)
    )
}

/// Starts a REPEATABLE READ, READ ONLY transaction on `client` that sees `snapshot`.
pub async fn import_snapshot(client: &Client, snapshot: &str) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&import_snapshot_sql(snapshot)).await
}

/// One unit of copy work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyChunk {
    /// Index into `SourceSchema::tables`.
    pub table: usize,
    /// Heap blocks `[start, end)`; `end = None` reads to the end of the table. `None` for
    /// a whole table.
    pub blocks: Option<(i64, Option<i64>)>,
    /// Estimated bytes, for ordering and progress.
    pub estimated_bytes: i64,
}

/// Chunks are never cut smaller than this: each costs a query and a COPY on both sides.
pub const MIN_CHUNK_BYTES: i64 = 32 << 20;

/// Cuts the tables with storage into chunks, most rows first, when the server can scan ctid
/// ranges efficiently (`server_version_num >= 140000`). The chunk size aims at about four
/// chunks per worker over the whole copy, so that workers finish close together, within
/// [`MIN_CHUNK_BYTES`] and `split_bytes`; a table above it is cut into block ranges.
pub fn plan_chunks(
    schema: &SourceSchema,
    workers: usize,
    split_bytes: i64,
    server_version_num: u32,
) -> Vec<CopyChunk> {
    let can_split = server_version_num >= 140_000;
    let total: i64 = schema.tables.iter().map(|t| t.size_bytes.max(0)).sum();
    let balanced = total / (workers.max(1) as i64 * 4);
    let split_bytes = balanced.clamp(MIN_CHUNK_BYTES.min(split_bytes), split_bytes.max(1));
    let mut chunks = Vec::new();
    for (index, table) in schema.tables.iter().enumerate() {
        if !table.has_storage() {
            continue;
        }
        let size = table.size_bytes.max(0);
        if !can_split || size <= split_bytes || split_bytes <= 0 {
            chunks.push(CopyChunk {
                table: index,
                blocks: None,
                estimated_bytes: size,
            });
            continue;
        }
        let blocks = (size + BLOCK_SIZE - 1) / BLOCK_SIZE;
        let pieces = (size / split_bytes)
            .max(workers as i64)
            .clamp(1, blocks.max(1));
        let per_piece = (blocks + pieces - 1) / pieces;
        let mut start = 0;
        while start < blocks {
            let end = start + per_piece;
            // The last range is open-ended: rows the snapshot sees are inside the size read
            // at planning time, but the size is not transactional, so never cut the tail.
            let open = end >= blocks;
            chunks.push(CopyChunk {
                table: index,
                blocks: Some((start, (!open).then_some(end))),
                estimated_bytes: (per_piece.min(blocks - start)) * BLOCK_SIZE,
            });
            start = end;
        }
    }
    // Tables with the most rows first (their indexes take longest to build, and a table's
    // indexes are built as soon as it is copied, overlapping the rest of the copy), then
    // larger chunks first.
    let rows = |c: &CopyChunk| schema.tables[c.table].estimated_rows.max(0);
    chunks.sort_by_key(|c| std::cmp::Reverse((rows(c), c.estimated_bytes)));
    chunks
}

/// The quoted list of the columns COPY carries.
pub fn column_list(table: &TableDef) -> String {
    table
        .copy_columns()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (a, b)`: the column list of a `COPY` of `table`, or nothing for a table without
/// columns (every one dropped: legal, and `COPY t ()` is not).
pub fn copy_column_clause(table: &TableDef) -> String {
    match column_list(table) {
        list if list.is_empty() => String::new(),
        list => format!(" ({list})"),
    }
}

/// The `COPY … TO STDOUT` statement reading `chunk` of `table`.
pub fn copy_out_statement(table: &TableDef, chunk: &CopyChunk, binary: bool) -> String {
    let format = if binary { "binary" } else { "text" };
    let columns = column_list(table);
    match chunk.blocks {
        None => format!(
            "COPY {}{} TO STDOUT (FORMAT {format})",
            table.name.quoted(),
            copy_column_clause(table)
        ),
        Some((start, end)) => {
            let mut filter = format!("ctid >= '({start},0)'::tid");
            if let Some(end) = end {
                filter.push_str(&format!(" AND ctid < '({end},0)'::tid"));
            }
            format!(
                "COPY (SELECT {columns} FROM ONLY {} WHERE {filter}) TO STDOUT (FORMAT {format})",
                table.name.quoted()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnDef, TableKind};
    use ferry_core::TableName;

    fn table(name: &str, size_bytes: i64) -> TableDef {
        TableDef {
            name: TableName::new("public", name),
            oid: 1,
            kind: TableKind::Table,
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    type_sql: "integer".into(),
                    type_oid: 23,
                    not_null: true,
                    default: None,
                    identity: None,
                    generated: None,
                    collation: None,
                },
                ColumnDef {
                    name: "Total".into(),
                    type_sql: "integer".into(),
                    type_oid: 23,
                    not_null: false,
                    default: None,
                    identity: None,
                    generated: Some("(id * 2)".into()),
                    collation: None,
                },
            ],
            primary_key: None,
            primary_key_constraint: None,
            constraints: vec![],
            checks: vec![],
            indexes: vec![],
            partition_of: None,
            attach: false,
            partition_key: None,
            replica_identity: 'd',
            size_bytes,
            estimated_rows: 0,
        }
    }

    #[test]
    fn small_tables_are_one_chunk_largest_first() {
        let schema = SourceSchema {
            tables: vec![table("a", 10), table("b", 1000)],
            ..SourceSchema::default()
        };
        let chunks = plan_chunks(&schema, 4, 1 << 20, 150_000);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].table, 1);
        assert!(chunks.iter().all(|c| c.blocks.is_none()));
    }

    #[test]
    fn large_tables_split_into_contiguous_ranges_with_an_open_tail() {
        let schema = SourceSchema {
            tables: vec![table("big", 100 * BLOCK_SIZE)],
            ..SourceSchema::default()
        };
        let mut chunks = plan_chunks(&schema, 4, 10 * BLOCK_SIZE, 150_000);
        chunks.sort_by_key(|c| c.blocks.map(|b| b.0));
        assert_eq!(chunks.len(), 10);
        let mut expected_start = 0;
        for chunk in &chunks[..9] {
            let (start, end) = chunk.blocks.unwrap();
            assert_eq!(start, expected_start);
            expected_start = end.unwrap();
        }
        assert_eq!(chunks[9].blocks, Some((expected_start, None)));
    }

    #[test]
    fn no_split_before_postgres_14() {
        let schema = SourceSchema {
            tables: vec![table("big", 100 * BLOCK_SIZE)],
            ..SourceSchema::default()
        };
        assert_eq!(plan_chunks(&schema, 4, BLOCK_SIZE, 130_000).len(), 1);
    }

    #[test]
    fn statements_quote_and_skip_generated_columns() {
        let t = table("Order", 0);
        let whole = CopyChunk {
            table: 0,
            blocks: None,
            estimated_bytes: 0,
        };
        assert_eq!(
            copy_out_statement(&t, &whole, true),
            r#"COPY "public"."Order" ("id") TO STDOUT (FORMAT binary)"#
        );
        let range = CopyChunk {
            blocks: Some((10, Some(20))),
            ..whole
        };
        assert_eq!(
            copy_out_statement(&t, &range, false),
            r#"COPY (SELECT "id" FROM ONLY "public"."Order" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT (FORMAT text)"#
        );
    }
}
