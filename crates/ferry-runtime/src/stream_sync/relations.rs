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

use ferry_core::{quote_literal, Relation, RelationId};
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

/// Source catalog lookups, on a connection opened on first need.
pub(super) struct SourceLookup {
    params: ConnParams,
    client: Option<tokio_postgres::Client>,
    types: HashMap<(u32, i32), String>,
}

impl SourceLookup {
    pub(super) fn new(params: ConnParams) -> Self {
        SourceLookup {
            params,
            client: None,
            types: HashMap::new(),
        }
    }

    async fn client(&mut self) -> Result<&tokio_postgres::Client, SyncError> {
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

    /// What the source's existing rows read for `column` of `relation`, when it was added
    /// with a non-volatile default. `None` when the column is gone from the source by now
    /// (a later change dropped it: its value no longer matters).
    async fn added_column(
        &mut self,
        relation: RelationId,
        column: &str,
    ) -> Result<SourceColumn, SyncError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT CASE WHEN atthasmissing THEN (attmissingval::text::text[])[1] END
                 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped",
                &[&relation.0, &column],
            )
            .await
            .map_err(|e| SyncError::sql("reading an added column on the source", e))?;
        Ok(SourceColumn {
            missing_value: row.and_then(|r| r.get(0)),
        })
    }
}

/// A target column as [`follow`] reads it.
struct TargetColumn {
    shape: ColumnShape,
    identity_always: bool,
}

/// The target table's columns (without generated ones, which pgoutput never sends), in
/// order, read on `target` (inside its open transaction, if any).
async fn target_columns(
    target: &mut ReplicationClient,
    relation: &Relation,
) -> Result<Vec<TargetColumn>, SyncError> {
    let table = target_table(relation);
    let result = target
        .simple_query(&format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity = 'a'
             FROM pg_attribute a
             WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = ''
             ORDER BY a.attnum",
            quote_literal(&table.quoted())
        ))
        .await
        .map_err(|e| SyncError::session("reading a target table's columns", e))?;
    let rows = result.last().map(|r| r.rows.as_slice()).unwrap_or_default();
    if rows.is_empty() {
        return Err(SyncError::TargetTableMissing { table });
    }
    Ok(rows
        .iter()
        .map(|row| {
            let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            TargetColumn {
                shape: ColumnShape::new(cell(0), cell(1)),
                identity_always: cell(2) == "t",
            }
        })
        .collect())
}

/// Compares `relation` with its target table (read on `target`, after everything sent on
/// it): the statements that bring the table in line, and what the apply needs to know
/// about it.
pub(super) async fn follow(
    relation: Relation,
    target: &mut ReplicationClient,
    lookup: &mut SourceLookup,
) -> Result<(Vec<String>, TargetRelation), SyncError> {
    let wanted = lookup.shape(&relation).await?;
    let columns = target_columns(target, &relation).await?;
    let never_set = relation
        .columns
        .iter()
        .map(|c| {
            columns
                .iter()
                .any(|t| t.identity_always && t.shape.name == c.name)
        })
        .collect();
    let current: Vec<ColumnShape> = columns.into_iter().map(|c| c.shape).collect();
    let mut statements = Vec::new();
    if current != wanted {
        let mut added = Vec::new();
        for column in wanted
            .iter()
            .filter(|w| !current.iter().any(|c| c.name == w.name))
        {
            added.push((
                column.name.clone(),
                lookup.added_column(relation.id, &column.name).await?,
            ));
        }
        statements = alter_statements(&target_table(&relation), &current, &wanted, |c| {
            added
                .iter()
                .find(|(name, _)| *name == c.name)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        });
        // The statements themselves may carry a value (an added column's default): not logged.
        tracing::info!(
            table = %target_table(&relation),
            columns_before = current.len(),
            columns_after = wanted.len(),
            statements = statements.len(),
            "following a column change of the source"
        );
    }
    let types = wanted.into_iter().map(|c| c.type_sql).collect();
    Ok((
        statements,
        TargetRelation {
            relation,
            never_set,
            types,
        },
    ))
}
