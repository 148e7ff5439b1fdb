//! The catalog reads `verify` needs beyond [`crate::catalog`]: partition ancestry, the
//! columns with how to render them, primary keys, and the target tables of the same names.
//!
//! They run inside each side's snapshot transaction, so the table list and columns describe
//! exactly the data compared. Partitioned tables are compared through their root: a
//! selected partition whose ancestor is also selected is skipped, because the ancestor's
//! scan already covers its rows (and the target may partition differently, or not at all).

use std::collections::{HashMap, HashSet};

use ferry_core::TableName;
use tokio_postgres::{Client, Row};

use crate::catalog;
use crate::TableSelection;

/// A source column and how its value is rendered for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub name: String,
    /// A cast applied before rendering: `money` prints with the server's `lc_monetary`,
    /// which may differ between the servers, so it is compared as `numeric`.
    pub cast: Option<&'static str>,
}

/// A selected source table, with what comparing it needs.
#[derive(Debug, Clone)]
pub(super) struct SourceTable {
    pub name: TableName,
    /// `r` or `p`: a plain table is read with `ONLY` (inheritance children are separate
    /// tables), a partitioned one with its partitions.
    pub relkind: char,
    /// Live columns in `attnum` order, generated ones included.
    pub columns: Vec<Column>,
    /// Primary key columns in key order.
    pub key: Option<Vec<Column>>,
}

/// A target table with a selected source table's name.
#[derive(Debug, Clone)]
pub(super) struct TargetTable {
    pub relkind: char,
    pub columns: HashSet<String>,
}

/// `server_version_num` of the connected server.
pub(super) async fn version_num(client: &Client) -> Result<u32, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?;
    let version: i32 = row.try_get(0)?;
    Ok(u32::try_from(version).unwrap_or(0))
}

/// The selected source tables in schema and name order, partitions of a selected ancestor
/// left out.
pub(super) async fn source_tables(
    client: &Client,
    version_num: u32,
    selection: &TableSelection,
) -> Result<Vec<SourceTable>, tokio_postgres::Error> {
    let selected: Vec<catalog::TableInfo> = catalog::tables(client, version_num)
        .await?
        .into_iter()
        .filter(|t| selection.matches(&t.name))
        .collect();
    let selected_oids: HashSet<u32> = selected.iter().map(|t| t.oid).collect();
    let ancestors = partition_ancestors(client, version_num).await?;
    let selected: Vec<catalog::TableInfo> = selected
        .into_iter()
        .filter(|t| {
            !ancestors
                .get(&t.oid)
                .is_some_and(|up| up.iter().any(|a| selected_oids.contains(a)))
        })
        .collect();
    let oids: Vec<u32> = selected.iter().map(|t| t.oid).collect();
    let mut columns = columns(client, &oids).await?;
    let mut keys = primary_keys(client, &oids).await?;
    Ok(selected
        .into_iter()
        .map(|t| {
            let columns = columns.remove(&t.oid).unwrap_or_default();
            let key = keys.remove(&t.oid).map(|names| {
                names
                    .iter()
                    .filter_map(|n| columns.iter().find(|c| &c.name == n).cloned())
                    .collect()
            });
            SourceTable {
                name: t.name,
                relkind: t.relkind,
                columns,
                key,
            }
        })
        .collect())
}

/// For each partition, every partitioned table above it (10 and later; none before).
async fn partition_ancestors(
    client: &Client,
    version_num: u32,
) -> Result<HashMap<u32, Vec<u32>>, tokio_postgres::Error> {
    let mut ancestors: HashMap<u32, Vec<u32>> = HashMap::new();
    if version_num < 100_000 {
        return Ok(ancestors);
    }
    let rows = client
        .query(
            "WITH RECURSIVE up(relid, ancestor) AS (
                 SELECT i.inhrelid, i.inhparent
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE c.relispartition
               UNION ALL
                 SELECT up.relid, i.inhparent
                 FROM up JOIN pg_inherits i ON i.inhrelid = up.ancestor
                 JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE c.relispartition)
             SELECT relid, ancestor FROM up",
            &[],
        )
        .await?;
    for row in rows {
        let relid: u32 = row.try_get(0)?;
        ancestors.entry(relid).or_default().push(row.try_get(1)?);
    }
    Ok(ancestors)
}

/// The live columns of `oids` in `attnum` order, `money` (also under a domain, or as array
/// elements) marked for comparison as `numeric`.
async fn columns(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<Column>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname::text,
                    CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
                        = 'money'::regtype,
                    t.typelem = 'money'::regtype AND t.typlen = -1
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?;
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for row in rows {
        let cast = match (row.try_get(2)?, row.try_get(3)?) {
            (true, _) => Some("numeric"),
            (_, true) => Some("numeric[]"),
            _ => None,
        };
        columns.entry(row.try_get(0)?).or_default().push(Column {
            name: row.try_get(1)?,
            cast,
        });
    }
    Ok(columns)
}

/// The primary key column names of those of `oids` that have one, in key order.
async fn primary_keys(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.conrelid, array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_constraint c
             CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             WHERE c.contype = 'p' AND c.conrelid = ANY($1)
             GROUP BY c.conrelid",
            &[&oids],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The tables among `names` that exist on the connected (target) server, with their
/// column names.
pub(super) async fn target_tables(
    client: &Client,
    names: &[TableName],
) -> Result<HashMap<TableName, TargetTable>, tokio_postgres::Error> {
    let schemas: Vec<&str> = names.iter().map(|t| t.schema.as_str()).collect();
    let tables: Vec<&str> = names.iter().map(|t| t.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text,
                    array(SELECT a.attname::text FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&schemas, &tables],
        )
        .await?;
    rows.iter().map(target_table).collect()
}

fn target_table(row: &Row) -> Result<(TableName, TargetTable), tokio_postgres::Error> {
    let relkind: String = row.try_get(2)?;
    let columns: Vec<String> = row.try_get(3)?;
    Ok((
        TableName::new(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?),
        TargetTable {
            relkind: relkind.chars().next().unwrap_or('r'),
            columns: columns.into_iter().collect(),
        },
    ))
}
