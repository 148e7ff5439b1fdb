//! Reads [`SourceSchema`] from the source catalog: the selected tables, the user types and
//! sequences they use, and everything needed to re-create them on the target.
//!
//! ```text
//!  pg_class (r, p) ──selection──► selected ──+ partitions of selected parents (recursive)
//!      │ columns, constraints, indexes          │
//!      └──► column types ──► read/types.rs (enum, domain, composite; dependencies first)
//!      └──► pg_depend    ──► read/sequences.rs (owned by columns, used by defaults)
//! ```
//!
//! The caller runs this inside the transaction that imported the exported snapshot, so
//! the schema describes exactly the rows being copied; nothing here begins or ends a
//! transaction. Every expression the server deparses (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`) is produced with `search_path = ''`, as
//! pg_dump does: names outside `pg_catalog` come out schema-qualified, so the text means
//! the same on a target whatever its search path. The caller's `search_path` is restored
//! afterwards.
//!
//! Written for PostgreSQL 10 and later: `attgenerated` (12+) is the only column chosen by
//! version. These queries live here rather than in `crate::catalog` because they exist only
//! to fill the model, and each one is commented with what it returns.
//!
//! Partitions: a partition whose parent is selected is created on the target with
//! `PARTITION OF`, so what it inherits (check, primary key, unique constraints and the
//! indexes attached to the parent's) is left out of its [`TableDef`]; its `primary_key`
//! still lists the key columns, but `primary_key_constraint` is `None`. A partition
//! selected without its parent is read as an ordinary table with all its constraints.

mod sequences;
mod types;

use std::collections::{BTreeSet, HashMap, HashSet};

use ferry_core::{quote_ident, TableName};
use tokio_postgres::{Client, Row};

use super::create::SchemaError;
use super::model::{
    ColumnDef, ConstraintDef, IndexDef, SourceSchema, TableDef, TableKind, TypeDef,
};
use crate::TableSelection;

/// Reads the schema of the tables `selection` picks (and of their partitions).
///
/// Types the columns use that are neither enums, domains nor standalone composite types
/// (ranges, multiranges and base types defined by extensions, or a table's row type) are
/// not recorded: creating a table that uses one fails on a target that lacks it, and that
/// error names the table and says to create the type or extension on the target first.
pub async fn read_schema(
    client: &Client,
    selection: &TableSelection,
) -> Result<SourceSchema, SchemaError> {
    read_schema_beside(client, selection, &[]).await
}

/// [`read_schema`] for tables added beside `existing` ones the target already has: a
/// selected partition whose parent is one of those is read as its partition (created with
/// `PARTITION OF`, without what it inherits) instead of as an ordinary table.
pub async fn read_schema_beside(
    client: &Client,
    selection: &TableSelection,
    existing: &[TableName],
) -> Result<SourceSchema, SchemaError> {
    let saved = empty_search_path(client).await?;
    let result = read_all(client, selection, existing).await;
    let restored = restore_search_path(client, &saved).await;
    let schema = result?;
    restored?;
    Ok(schema)
}

/// The user types the live columns of `table` use now, each after the types it is built
/// from: what a column added or retyped while streaming needs on the target first.
pub async fn column_types(client: &Client, table: &TableName) -> Result<Vec<TypeDef>, SchemaError> {
    let saved = empty_search_path(client).await?;
    let result = async {
        let oids: Vec<u32> = client
            .query(
                "SELECT atttypid FROM pg_attribute
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                &[&table.quoted()],
            )
            .await
            .map_err(SchemaError::catalog("the column types of a table"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        types::read_types(client, &oids).await
    }
    .await;
    restore_search_path(client, &saved).await?;
    result
}

/// The labels of every enum type, in sort order, by schema and name.
pub async fn enum_labels(
    client: &Client,
) -> Result<Vec<(String, String, Vec<String>)>, SchemaError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
             FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
             JOIN pg_namespace n ON n.oid = t.typnamespace
             GROUP BY 1, 2",
            &[],
        )
        .await
        .map_err(SchemaError::catalog("the labels of enum types"))?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

/// Empties `search_path` (deparsed text comes out schema-qualified); returns the old one.
async fn empty_search_path(client: &Client) -> Result<String, SchemaError> {
    let saved: String = client
        .query_one("SELECT current_setting('search_path')", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(SchemaError::catalog("the search_path setting"))?;
    client
        .execute("SELECT set_config('search_path', '', false)", &[])
        .await
        .map_err(SchemaError::catalog("the search_path setting"))?;
    Ok(saved)
}

async fn restore_search_path(client: &Client, saved: &str) -> Result<(), SchemaError> {
    client
        .execute("SELECT set_config('search_path', $1, false)", &[&saved])
        .await
        .map_err(SchemaError::catalog("the search_path setting"))?;
    Ok(())
}

async fn read_all(
    client: &Client,
    selection: &TableSelection,
    existing: &[TableName],
) -> Result<SourceSchema, SchemaError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(SchemaError::catalog("the server version"))?;
    let relations = read_relations(client).await?;
    let existing: HashMap<u32, TableName> = relations
        .iter()
        .filter(|r| existing.contains(&r.name))
        .map(|r| (r.oid, r.name.clone()))
        .collect();
    let included = include(relations, selection);
    let oids: Vec<u32> = included.iter().map(|r| r.oid).collect();
    let names: HashMap<u32, TableName> = included.iter().map(|r| (r.oid, r.name.clone())).collect();

    // The parents' columns too, for partitions whose own order differs.
    let column_oids: Vec<u32> = oids.iter().chain(existing.keys()).copied().collect();
    let mut columns = read_columns(client, &column_oids, version).await?;
    let order = |oid: u32| -> Vec<String> {
        columns
            .get(&oid)
            .map(|c| c.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    };
    let own_order: HashSet<u32> = included
        .iter()
        .filter(|r| {
            r.parent.is_some_and(|p| {
                (names.contains_key(&p) || existing.contains_key(&p)) && order(p) != order(r.oid)
            })
        })
        .map(|r| r.oid)
        .collect();
    let mut constraints = read_constraints(client, &oids).await?;
    let mut indexes = read_indexes(client, &oids).await?;

    let mut tables = Vec::with_capacity(included.len());
    for relation in included {
        let parent = relation
            .parent
            .and_then(|p| names.get(&p).or_else(|| existing.get(&p)).cloned());
        let inherits = parent.is_some();
        let mut table = TableDef {
            name: relation.name,
            oid: relation.oid,
            kind: relation.kind,
            columns: columns.remove(&relation.oid).unwrap_or_default(),
            primary_key: None,
            primary_key_constraint: None,
            constraints: Vec::new(),
            checks: Vec::new(),
            indexes: Vec::new(),
            partition_of: parent.zip(relation.bound),
            attach: own_order.contains(&relation.oid),
            partition_key: relation.partition_key,
            replica_identity: relation.replica_identity,
            size_bytes: relation.size_bytes,
            estimated_rows: relation.estimated_rows,
        };
        for constraint in constraints.remove(&table.oid).unwrap_or_default() {
            // An attached partition needs the inherited checks itself.
            let skip =
                inherits && constraint.inherited && !(table.attach && constraint.kind == 'c');
            match constraint.kind {
                'p' => {
                    table.primary_key = Some(constraint.columns);
                    if !skip {
                        table.primary_key_constraint = Some(constraint.def);
                    }
                }
                'c' if !skip => table.checks.push(constraint.def),
                'u' | 'x' if !skip => table.constraints.push(constraint.def),
                _ => {}
            }
        }
        for index in indexes.remove(&table.oid).unwrap_or_default() {
            if !(inherits && index.attached) {
                table.indexes.push(index.def);
            }
        }
        tables.push(table);
    }

    let type_oids: Vec<u32> = tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| c.type_oid))
        .collect();
    let types = types::read_types(client, &type_oids).await?;
    let sequences = sequences::read_sequences(client, &names).await?;

    let schemas: BTreeSet<&str> = tables
        .iter()
        .map(|t| t.name.schema.as_str())
        .chain(types.iter().map(|t| t.schema.as_str()))
        .chain(sequences.iter().map(|s| s.name.schema.as_str()))
        .collect();
    Ok(SourceSchema {
        schemas: schemas.into_iter().map(str::to_owned).collect(),
        types,
        sequences,
        tables,
    })
}

/// A table or partitioned table as `pg_class` describes it.
struct Relation {
    oid: u32,
    name: TableName,
    kind: TableKind,
    /// The parent, for a partition.
    parent: Option<u32>,
    /// `FOR VALUES …` or `DEFAULT`, for a partition.
    bound: Option<String>,
    partition_key: Option<String>,
    replica_identity: char,
    size_bytes: i64,
    estimated_rows: i64,
}

/// Every ordinary and partitioned table outside the system schemas, by schema and name.
async fn read_relations(client: &Client) -> Result<Vec<Relation>, SchemaError> {
    let what = "the tables of the source database";
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                    (SELECT i.inhparent FROM pg_inherits i
                      WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1),
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                    c.relreplident::text,
                    -- NULL for a table dropped since the snapshot (the copy's snapshot
                    -- still lists it): counted as empty.
                    coalesce(pg_relation_size(c.oid), 0),
                    c.reltuples::int8
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND n.nspname !~ '^pg_(toast_)?temp_'
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    rows.iter()
        .map(|row| {
            let kind: String = get(row, 3, what)?;
            Ok(Relation {
                oid: get(row, 0, what)?,
                name: TableName::new(get::<String>(row, 1, what)?, get::<String>(row, 2, what)?),
                kind: if kind == "p" {
                    TableKind::Partitioned
                } else {
                    TableKind::Table
                },
                parent: get(row, 4, what)?,
                bound: get(row, 5, what)?,
                partition_key: get(row, 6, what)?,
                replica_identity: first_char(&get::<String>(row, 7, what)?).unwrap_or('d'),
                size_bytes: get(row, 8, what)?,
                estimated_rows: get(row, 9, what)?,
            })
        })
        .collect()
}

/// The selected relations plus every partition below a selected one, each parent before
/// its partitions; otherwise in schema and name order.
fn include(relations: Vec<Relation>, selection: &TableSelection) -> Vec<Relation> {
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    for (index, relation) in relations.iter().enumerate() {
        if let Some(parent) = relation.parent {
            children.entry(parent).or_default().push(index);
        }
    }
    let mut wanted = vec![false; relations.len()];
    let mut stack: Vec<usize> = (0..relations.len())
        .filter(|&i| selection.matches(&relations[i].name))
        .collect();
    while let Some(index) = stack.pop() {
        if !std::mem::replace(&mut wanted[index], true) {
            stack.extend(children.get(&relations[index].oid).into_iter().flatten());
        }
    }
    let wanted_oids: HashSet<u32> = relations
        .iter()
        .zip(&wanted)
        .filter(|(_, &w)| w)
        .map(|(r, _)| r.oid)
        .collect();
    // Roots: wanted relations whose parent is not wanted; then each subtree depth first.
    let mut order = Vec::new();
    let mut stack: Vec<usize> = (0..relations.len())
        .rev()
        .filter(|&i| {
            wanted[i]
                && !relations[i]
                    .parent
                    .is_some_and(|p| wanted_oids.contains(&p))
        })
        .collect();
    while let Some(index) = stack.pop() {
        order.push(index);
        let below = children.get(&relations[index].oid).into_iter().flatten();
        stack.extend(below.rev().filter(|&&i| wanted[i]));
    }
    let mut taken: Vec<Option<Relation>> = relations.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| taken[i].take()).collect()
}

/// Live columns of `oids` in `attnum` order, per table.
async fn read_columns(
    client: &Client,
    oids: &[u32],
    version: i32,
) -> Result<HashMap<u32, Vec<ColumnDef>>, SchemaError> {
    let what = "the columns of the selected tables";
    let generated = if version >= 120_000 {
        "a.attgenerated::text"
    } else {
        "''::text"
    };
    let sql = format!(
        "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.atttypid,
                a.attnotnull,
                CASE WHEN {generated} = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                a.attidentity::text,
                CASE WHEN {generated} = 's' THEN pg_get_expr(d.adbin, d.adrelid) END,
                cn.nspname::text, co.collname::text
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_collation co
                ON co.oid = a.attcollation AND a.attcollation <> t.typcollation
         LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum"
    );
    let rows = client
        .query(&sql, &[&oids])
        .await
        .map_err(SchemaError::catalog(what))?;
    let mut columns: HashMap<u32, Vec<ColumnDef>> = HashMap::new();
    for row in &rows {
        let collation = match (
            get::<Option<String>>(row, 8, what)?,
            get::<Option<String>>(row, 9, what)?,
        ) {
            (Some(schema), Some(name)) => {
                Some(format!("{}.{}", quote_ident(&schema), quote_ident(&name)))
            }
            _ => None,
        };
        let column = ColumnDef {
            name: get(row, 1, what)?,
            type_sql: get(row, 2, what)?,
            type_oid: get(row, 3, what)?,
            not_null: get(row, 4, what)?,
            default: get(row, 5, what)?,
            identity: first_char(&get::<String>(row, 6, what)?),
            generated: get(row, 7, what)?,
            collation,
        };
        columns.entry(get(row, 0, what)?).or_default().push(column);
    }
    Ok(columns)
}

/// A primary key, unique, exclusion or check constraint of a selected table.
struct Constraint {
    /// `contype`: `p`, `u`, `x` or `c`.
    kind: char,
    def: ConstraintDef,
    /// Inherited from a parent (`coninhcount > 0`).
    inherited: bool,
    /// The constrained columns in key order.
    columns: Vec<String>,
}

/// Primary key, unique, exclusion and check constraints of `oids`, by name, per table,
/// with the definition of the index behind each (none for checks).
async fn read_constraints(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<Constraint>>, SchemaError> {
    let what = "the constraints of the selected tables";
    let rows = client
        .query(
            "SELECT k.conrelid, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid),
                    k.coninhcount > 0,
                    ARRAY(SELECT a.attname::text
                          FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
                          JOIN pg_attribute a
                            ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                          ORDER BY u.ord),
                    CASE WHEN k.conindid <> 0 THEN pg_get_indexdef(k.conindid) END
             FROM pg_constraint k
             WHERE k.conrelid = ANY($1) AND k.contype IN ('p', 'u', 'x', 'c')
             ORDER BY k.conrelid, k.conname",
            &[&oids],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    let mut constraints: HashMap<u32, Vec<Constraint>> = HashMap::new();
    for row in &rows {
        let constraint = Constraint {
            kind: first_char(&get::<String>(row, 2, what)?).unwrap_or('c'),
            def: ConstraintDef {
                name: get(row, 1, what)?,
                definition: get(row, 3, what)?,
                index_definition: get(row, 6, what)?,
            },
            inherited: get(row, 4, what)?,
            columns: get(row, 5, what)?,
        };
        constraints
            .entry(get(row, 0, what)?)
            .or_default()
            .push(constraint);
    }
    Ok(constraints)
}

/// An index of a selected table that backs no constraint.
struct Index {
    def: IndexDef,
    /// Attached to an index of the parent (so created by the parent's).
    attached: bool,
}

/// Valid indexes of `oids` backing no primary key, unique or exclusion constraint, by
/// name, per table.
async fn read_indexes(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<Index>>, SchemaError> {
    let what = "the indexes of the selected tables";
    let rows = client
        .query(
            "SELECT i.indrelid, c.relname::text, pg_get_indexdef(i.indexrelid),
                    EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = ANY($1) AND i.indisvalid
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                               WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                                 AND k.contype IN ('p', 'u', 'x'))
             ORDER BY i.indrelid, c.relname",
            &[&oids],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    let mut indexes: HashMap<u32, Vec<Index>> = HashMap::new();
    for row in &rows {
        let index = Index {
            def: IndexDef {
                name: get(row, 1, what)?,
                definition: get(row, 2, what)?,
            },
            attached: get(row, 3, what)?,
        };
        indexes.entry(get(row, 0, what)?).or_default().push(index);
    }
    Ok(indexes)
}

/// Column `index` of `row`, or a catalog error naming `what` was being read.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &str,
) -> Result<T, SchemaError> {
    row.try_get(index).map_err(SchemaError::catalog(what))
}

/// The single character of a `"char"` column read as text; `None` when empty.
fn first_char(text: &str) -> Option<char> {
    text.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(oid: u32, schema: &str, name: &str, parent: Option<u32>) -> Relation {
        Relation {
            oid,
            name: TableName::new(schema, name),
            kind: TableKind::Table,
            parent,
            bound: parent.map(|_| "DEFAULT".to_owned()),
            partition_key: None,
            replica_identity: 'd',
            size_bytes: 0,
            estimated_rows: 0,
        }
    }

    #[test]
    fn partitions_of_selected_parents_follow_them() {
        // In name order the partitions sort before their parent.
        let relations = vec![
            relation(1, "public", "a_part", Some(3)),
            relation(2, "public", "a_sub", Some(1)),
            relation(3, "public", "b_parent", None),
            relation(4, "public", "c_plain", None),
            relation(5, "other", "x", None),
        ];
        let selection =
            TableSelection::parse(&["public.b_parent".into(), "public.c_plain".into()], &[])
                .unwrap();
        let names: Vec<String> = include(relations, &selection)
            .into_iter()
            .map(|r| r.name.name)
            .collect();
        assert_eq!(names, ["b_parent", "a_part", "a_sub", "c_plain"]);
    }

    #[test]
    fn a_partition_selected_alone_is_a_root() {
        let relations = vec![
            relation(1, "public", "part", Some(2)),
            relation(2, "public", "parent", None),
        ];
        let selection = TableSelection::parse(&["public.part".into()], &[]).unwrap();
        let included = include(relations, &selection);
        assert_eq!(included.len(), 1);
        assert_eq!(included[0].name.name, "part");
    }
}
