//! The relations a stream has described, and the target tables kept in step with them.
//!
//! pgoutput sends a Relation message before the first change of a table in a session and
//! again after its columns change. Each one is compared with the target table's columns,
//! read from the target's catalog on the connection that applies the changes (after the SQL
//! sent before it, so inside the same transaction). A difference becomes `ALTER TABLE`
//! statements ([`ferry_postgres::sink::alter`]) that run in that transaction, before the
//! change that needs them. The same read tells which target columns an UPDATE must not set.
//!
//! Column types are compared as `format_type` spells them: the source's spelling of a
//! column in a Relation message is looked up once per (type, modifier) on a source SQL
//! connection opened on first need. That connection also answers what existing rows read
//! for a column added with a default.

use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, Relation, RelationId, TableName};
use ferry_pgwire::{ConnParams, ReplicationClient};
use ferry_postgres::sink::alter::{alter_statements, ColumnShape, SourceColumn};
use ferry_postgres::sink::apply::target_table;
use ferry_postgres::sink::batch::TargetRelation;

use crate::error::SyncError;

/// Relations by id.
#[derive(Debug, Default)]
pub(super) struct RelationCache {
    relations: HashMap<RelationId, TargetRelation>,
}

impl RelationCache {
    pub(super) fn get(&self, id: RelationId) -> Option<&TargetRelation> {
        self.relations.get(&id)
    }

    pub(super) fn insert(&mut self, described: TargetRelation) {
        self.relations.insert(described.relation.id, described);
    }

    /// Takes in what a committed streamed transaction described.
    pub(super) fn merge(&mut self, other: RelationCache) {
        self.relations.extend(other.relations);
    }
}

/// Source catalog lookups, on a connection opened on first need (and again after it
/// closed). It lives as long as the pipeline, across the runs that start over, and
/// remembers which columns of each table the stream has described: a target column the
/// stream never described is the target's own, never dropped.
pub(super) struct SourceLookup {
    params: ConnParams,
    client: Option<tokio_postgres::Client>,
    types: HashMap<(u32, i32), String>,
    described: HashMap<TableName, Vec<String>>,
    warned: Vec<(TableName, String)>,
}

impl SourceLookup {
    pub(super) fn new(params: ConnParams) -> Self {
        SourceLookup {
            params,
            client: None,
            types: HashMap::new(),
            described: HashMap::new(),
            warned: Vec::new(),
        }
    }

    async fn client(&mut self) -> Result<&tokio_postgres::Client, SyncError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let client = ferry_pgwire::connect_sql(&self.params)
                .await
                .map_err(|source| SyncError::Connect {
                    side: "source",
                    source,
                })?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    /// The columns of `relation` with their types spelled by the source.
    async fn shape(&mut self, relation: &Relation) -> Result<Vec<ColumnShape>, SyncError> {
        let mut shape = Vec::with_capacity(relation.columns.len());
        for column in &relation.columns {
            let key = (column.type_oid, column.type_modifier);
            if !self.types.contains_key(&key) {
                let name: String = self
                    .client()
                    .await?
                    .query_one("SELECT format_type($1, $2)", &[&key.0, &key.1])
                    .await
                    .map_err(|e| SyncError::sql("reading a column type on the source", e))?
                    .get(0);
                self.types.insert(key, name);
            }
            shape.push(ColumnShape::new(&column.name, &self.types[&key]));
        }
        Ok(shape)
    }

    /// Statements that create, on `target` (inside its open transaction), the user types
    /// the source's `table` uses now and the target lacks: a column added or retyped while
    /// streaming may use a domain, enum or composite type created since the copy.
    async fn missing_types(
        &mut self,
        table: &TableName,
        target: &mut ReplicationClient,
    ) -> Result<Vec<String>, SyncError> {
        let types = ferry_postgres::schema::read::column_types(self.client().await?, table).await?;
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = types
            .iter()
            .map(|t| {
                quote_literal(&format!(
                    "{}.{}",
                    quote_ident(&t.schema),
                    quote_ident(&t.name)
                ))
            })
            .collect();
        let result = target
            .simple_query(&format!(
                "SELECT n FROM unnest(ARRAY[{}]::text[]) n WHERE to_regtype(n) IS NULL",
                names.join(", ")
            ))
            .await
            .map_err(|e| SyncError::session("reading which types the target has", e))?;
        let missing: Vec<String> = result
            .last()
            .map(|r| {
                r.rows
                    .iter()
                    .filter_map(|row| row.first().cloned().flatten())
                    .collect()
            })
            .unwrap_or_default();
        let create: Vec<_> = types
            .into_iter()
            .zip(names)
            .filter(|(_, name)| missing.iter().any(|m| quote_literal(m) == *name))
            .map(|(t, _)| t)
            .collect();
        if !create.is_empty() {
            tracing::info!(%table, types = create.len(), "creating on the target the types a column change of the source uses");
        }
        Ok(ferry_postgres::schema::ddl::create_types_live(&create))
    }

    /// Says once that the target's `table` has a `column` the source has not, and keeps it.
    fn warn_own_column(&mut self, table: &TableName, column: &str) {
        let key = (table.clone(), column.to_owned());
        if !self.warned.contains(&key) {
            tracing::warn!(%table, column, "the target table has a column the source has not: it is kept, and left to its default in the rows Ferry writes; if the source dropped it while Ferry was stopped, drop it on the target (ALTER TABLE … DROP COLUMN)");
            self.warned.push(key);
        }
    }

    /// The OID of the source's `table` now, if it exists.
    pub(super) async fn current_oid(
        &mut self,
        table: &TableName,
    ) -> Result<Option<u32>, SyncError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT to_regclass($1)::oid", &[&table.quoted()])
            .await
            .map_err(|e| SyncError::sql("reading a table's OID on the source", e))?;
        Ok(row.get(0))
    }

    /// Whether the source's `table` has `column` now.
    async fn source_has_column(
        &mut self,
        table: &TableName,
        column: &str,
    ) -> Result<bool, SyncError> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT 1 FROM pg_attribute
                 WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped AND attnum > 0",
                &[&table.quoted(), &column],
            )
            .await
            .map_err(|e| SyncError::sql("reading a column on the source", e))?
            .is_some())
    }

    /// What the source's catalog says now about `column` of `table`, being added: the value
    /// its existing rows read when it was added with a non-volatile default, its type with
    /// its modifier (for plugins that send no modifier), and whether its existing rows may
    /// hold values no change carried (a default and no stored value for them: a volatile
    /// default, `serial` or an identity filled them by rewriting the table, which is not
    /// decoded). Nothing when the column is gone from the source by now (a later change
    /// dropped it: its value no longer matters).
    async fn added_column(
        &mut self,
        table: &TableName,
        column: &str,
    ) -> Result<(SourceColumn, Option<String>, bool), SyncError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT CASE WHEN atthasmissing THEN (attmissingval::text::text[])[1] END,
                        format_type(atttypid, atttypmod),
                        NOT atthasmissing AND (atthasdef OR attidentity <> '')
                 FROM pg_attribute
                 WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
                &[&table.quoted(), &column],
            )
            .await
            .map_err(|e| SyncError::sql("reading an added column on the source", e))?;
        Ok(match row {
            Some(row) => (
                SourceColumn {
                    missing_value: row.get(0),
                },
                row.get(1),
                row.get(2),
            ),
            None => (SourceColumn::default(), None, false),
        })
    }
}

/// A target column as [`follow`] reads it.
struct TargetColumn {
    shape: ColumnShape,
    identity_always: bool,
    generated: bool,
}

/// The target table's columns, in order, read on `target` (inside its open transaction,
/// if any).
async fn target_columns(
    target: &mut ReplicationClient,
    relation: &Relation,
) -> Result<Vec<TargetColumn>, SyncError> {
    let table = target_table(relation);
    let result = target
        .simple_query(&format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity = 'a',
                    a.attgenerated <> ''
             FROM (SELECT to_regclass({}) AS oid) c
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.oid IS NOT NULL
             ORDER BY a.attnum",
            quote_literal(&table.quoted())
        ))
        .await
        .map_err(|e| SyncError::session("reading a target table's columns", e))?;
    let rows = result.last().map(|r| r.rows.as_slice()).unwrap_or_default();
    if rows.is_empty() {
        return Err(SyncError::TargetTableMissing { table });
    }
    // A table without columns (all dropped) reads as one row of NULLs.
    Ok(rows
        .iter()
        .filter(|row| row.first().is_some_and(Option::is_some))
        .map(|row| {
            let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            TargetColumn {
                shape: ColumnShape::new(cell(0), cell(1)),
                identity_always: cell(2) == "t",
                generated: cell(3) == "t",
            }
        })
        .collect())
}

/// The root of the partition tree the target's `table` is a partition of, if it is one: a
/// partition's columns can only change through its root (PostgreSQL refuses `ADD COLUMN`
/// on a partition, and `DROP COLUMN` of an inherited one), and a change on the root reaches
/// every partition.
async fn partition_root(
    target: &mut ReplicationClient,
    table: &TableName,
) -> Result<Option<TableName>, SyncError> {
    let result = target
        .simple_query(&format!(
            "WITH RECURSIVE up (oid, partition) AS (
                 SELECT c.oid, c.relispartition FROM pg_class c WHERE c.oid = to_regclass({})
                 UNION ALL
                 SELECT p.oid, p.relispartition FROM up
                 JOIN pg_inherits i ON i.inhrelid = up.oid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE up.partition)
             SELECT n.nspname, c.relname FROM up
             JOIN pg_class c ON c.oid = up.oid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT up.partition AND (SELECT count(*) FROM up) > 1",
            quote_literal(&table.quoted())
        ))
        .await
        .map_err(|e| SyncError::session("reading a target table's partition root", e))?;
    Ok(result.last().and_then(|r| r.rows.first()).and_then(|row| {
        Some(TableName::new(
            row.first().cloned().flatten()?,
            row.get(1).cloned().flatten()?,
        ))
    }))
}

/// Compares `relation` with its target table (read on `target`, after everything sent on
/// it): the statements that bring the table in line, and what the apply needs to know
/// about it.
///
/// `typmods_known` is false for plugins that send no type modifier (wal2json,
/// decoderbufs): then a column present on both sides keeps the target's type, and an added
/// column takes its full type from the source's catalog. Generated columns (which those
/// plugins send and pgoutput does not) are never added, dropped or written.
/// What [`follow`] found.
pub(super) struct Followed {
    /// The statements that bring the target table in line, to run before the change.
    pub(super) statements: Vec<String>,
    pub(super) described: TargetRelation,
    /// Why the table must be copied anew instead: the source filled an added column's
    /// existing rows with values no change carries.
    pub(super) copy_anew: Option<String>,
}

pub(super) async fn follow(
    relation: Relation,
    typmods_known: bool,
    target: &mut ReplicationClient,
    lookup: &mut SourceLookup,
) -> Result<Followed, SyncError> {
    let table = target_table(&relation);
    let columns = target_columns(target, &relation).await?;
    let find = |name: &str| columns.iter().find(|t| t.shape.name == name);
    let flag = |f: fn(&TargetColumn) -> bool| -> Vec<bool> {
        relation
            .columns
            .iter()
            .map(|c| find(&c.name).is_some_and(f))
            .collect()
    };
    let identity_always = flag(|t| t.identity_always);
    let generated = flag(|t| t.generated);
    let mut wanted = Vec::new();
    for (column, shape) in relation.columns.iter().zip(lookup.shape(&relation).await?) {
        match find(&column.name) {
            Some(t) if t.generated => {}
            Some(t) if !typmods_known => wanted.push(t.shape.clone()),
            _ => wanted.push(shape),
        }
    }
    let current: Vec<ColumnShape> = columns
        .iter()
        .filter(|c| !c.generated)
        .map(|c| c.shape.clone())
        .collect();
    // A column the Relation leaves out is dropped (or renamed) only if the source no longer
    // has it (wal2json and decoderbufs leave out unchanged TOAST values of an UPDATE, and a
    // TRUNCATE describes a table with no columns at all), and only if the stream described
    // it before: one it never did is the target's own (added there by the user).
    // (A column never described that a new one of the same type takes the place of is
    // read as renamed, as `alter_statements` reads every gone column.)
    let described = lookup.described.get(&table).cloned().unwrap_or_default();
    for (at, column) in current.iter().enumerate() {
        if wanted.iter().any(|w| w.name == column.name) {
            continue;
        }
        if lookup.source_has_column(&table, &column.name).await? {
            wanted.insert(at.min(wanted.len()), column.clone());
            continue;
        }
        let renamed = wanted.get(at).is_some_and(|w| {
            w.type_sql == column.type_sql && !current.iter().any(|c| c.name == w.name)
        });
        if !described.contains(&column.name) && !renamed {
            lookup.warn_own_column(&table, &column.name);
            wanted.insert(at.min(wanted.len()), column.clone());
        }
    }
    let mut names: Vec<String> = relation.columns.iter().map(|c| c.name.clone()).collect();
    let still: Vec<String> = described
        .into_iter()
        .filter(|n| !names.contains(n) && wanted.iter().any(|w| w.name == *n))
        .collect();
    names.extend(still);
    lookup.described.insert(table.clone(), names);
    let mut statements = Vec::new();
    let mut copy_anew = None;
    if current != wanted {
        statements = lookup.missing_types(&table, target).await?;
        let mut added = Vec::new();
        for column in wanted.iter_mut() {
            if current.iter().any(|c| c.name == column.name) {
                continue;
            }
            let (source, full_type, filled) = lookup.added_column(&table, &column.name).await?;
            if let (false, Some(full_type)) = (typmods_known, full_type) {
                column.type_sql = full_type;
            }
            if filled {
                copy_anew = Some(format!(
                    "column {:?} was added to table {table} with a volatile default (or as serial or identity): \
                     the values of its existing rows reach no stream, so the table is copied anew",
                    column.name
                ));
            }
            added.push((column.name.clone(), source));
        }
        let altered = partition_root(target, &table)
            .await?
            .unwrap_or_else(|| table.clone());
        statements.extend(alter_statements(&altered, &current, &wanted, |c| {
            added
                .iter()
                .find(|(name, _)| *name == c.name)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        }));
        // The statements themselves may carry a value (an added column's default): not logged.
        tracing::info!(
            %table,
            columns_before = current.len(),
            columns_after = wanted.len(),
            statements = statements.len(),
            "following a column change of the source"
        );
    }
    // Casts use the target's own spelling where the column exists, else what it becomes.
    let types = relation
        .columns
        .iter()
        .map(|c| {
            find(&c.name)
                .map(|t| t.shape.type_sql.clone())
                .or_else(|| {
                    wanted
                        .iter()
                        .find(|w| w.name == c.name)
                        .map(|w| w.type_sql.clone())
                })
                .unwrap_or_else(|| "text".to_owned())
        })
        .collect();
    Ok(Followed {
        statements,
        described: TargetRelation {
            relation,
            identity_always,
            generated,
            types,
        },
        copy_anew,
    })
}

/// Adds to the target's enum types the labels the source's types of the same name have and
/// they lack, at the source's place; returns how many. A label added on the source
/// (`ALTER TYPE … ADD VALUE`) reaches no plugin's stream: the first change that uses it
/// fails on the target, and this runs before the run starts over. Each statement commits
/// alone.
pub(super) async fn add_enum_labels(
    source: &ConnParams,
    target: &ConnParams,
) -> Result<usize, SyncError> {
    let connect = |params: &ConnParams, side: &'static str| {
        let params = params.clone();
        async move {
            ferry_pgwire::connect_sql(&params)
                .await
                .map_err(|source| SyncError::Connect { side, source })
        }
    };
    let source = connect(source, "source").await?;
    let target = connect(target, "target").await?;
    let on_target = ferry_postgres::schema::read::enum_labels(&target).await?;
    let mut added = 0;
    for (schema, name, labels) in ferry_postgres::schema::read::enum_labels(&source).await? {
        let Some((_, _, have)) = on_target
            .iter()
            .find(|(s, n, _)| *s == schema && *n == name)
        else {
            continue;
        };
        for statement in ferry_postgres::schema::ddl::add_enum_labels(&schema, &name, &labels, have)
        {
            target
                .batch_execute(&statement)
                .await
                .map_err(|e| SyncError::sql("adding an enum label on the target", e))?;
            added += 1;
        }
    }
    Ok(added)
}
