//! Coalescing runs of row changes into multi-row statements, for apply throughput.
//!
//! One statement per row change costs the target a parse, a plan and an executor start per
//! row. Consecutive changes of the same kind to the same table are written as one statement
//! instead, in their order, so the result is the same:
//!
//! ```text
//!  INSERT ×n          INSERT INTO t (cols) OVERRIDING SYSTEM VALUE VALUES (…), (…), …
//!  UPDATE ×n by key   UPDATE ONLY t SET c = v.c, … FROM (VALUES (…), …) AS v(…) WHERE t.k = v.k
//!  DELETE ×n by key   DELETE FROM ONLY t WHERE (k, …) IN (VALUES (…), …)
//! ```
//!
//! Only what keeps the meaning joins a run: inserts with the same columns (any table);
//! updates that keep the key (no `K` or `O` tuple) and set the same columns, where a second
//! update of a row already in the run replaces its values (both set every one of those
//! columns, so the row ends the same); deletes by key. Everything else
//! (REPLICA IDENTITY FULL updates and deletes, key changes, TRUNCATE) ends the run and is
//! written alone by [`crate::sink::apply`]. The first VALUES row carries a cast to each
//! column's type, which types the rest.
//!
//! One difference remains: within a multi-row UPDATE, PostgreSQL updates rows in join order,
//! and a unique constraint on a non-key column is checked row by row, so values swapped
//! between rows can collide where the source's one-by-one order did not. The runtime treats
//! an integrity error from a coalesced batch as a reason to apply again one by one.

use std::collections::HashMap;

use ferry_core::{quote_ident, Change, Datum, Relation, RelationId, Row};

use super::apply::{literal, target_table, ApplyError};

/// A relation as the apply knows it: the stream's description and the target's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRelation {
    pub relation: Relation,
    /// Per column: the target column is `GENERATED ALWAYS AS IDENTITY` (never SET).
    pub never_set: Vec<bool>,
    /// Per column: the target column is generated (never written; wal2json and
    /// decoderbufs send its value, pgoutput does not).
    pub generated: Vec<bool>,
    /// Per column: its type as `format_type` spells it, for casts.
    pub types: Vec<String>,
}

/// Rows per multi-row statement, at most.
pub const MAX_RUN_ROWS: usize = 1000;

#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Insert { columns: Vec<usize> },
    Update { set: Vec<usize>, key: Vec<usize> },
    Delete { key: Vec<usize> },
}

#[derive(Debug)]
struct Run {
    relation: RelationId,
    shape: Shape,
    /// The values of each row.
    rows: Vec<Values>,
    /// Update runs: the row index of each key.
    keys: HashMap<String, usize>,
    /// The casts of the first row.
    types: Vec<String>,
    /// Bytes of the literals held.
    bytes: usize,
    sql_head: String,
    sql_tail: String,
}

/// Gathers runs of row changes and writes them as statements.
#[derive(Debug, Default)]
pub struct Batcher {
    run: Option<Run>,
}

impl Batcher {
    /// Whether a run is open (statements are pending in it).
    pub fn is_empty(&self) -> bool {
        self.run.is_none()
    }

    /// Takes a row change into a run if it can join one, writing the run it ends to `out`
    /// (`;\n` after each statement). Returns false, having written any open run, when the
    /// change cannot be coalesced: the caller writes it alone.
    pub fn add(
        &mut self,
        target: &TargetRelation,
        change: &Change,
        out: &mut String,
    ) -> Result<bool, ApplyError> {
        let Some((shape, values, key)) = shape_of(target, change)? else {
            self.finish(out);
            return Ok(false);
        };
        let size: usize = values.iter().map(|(_, v)| v.len() + 2).sum();
        let joins = self.run.as_ref().is_some_and(|run| {
            run.relation == target.relation.id
                && run.shape == shape
                && run.rows.len() < MAX_RUN_ROWS
        });
        if !joins {
            self.finish(out);
            let (sql_head, sql_tail) = frame(target, &shape);
            self.run = Some(Run {
                relation: target.relation.id,
                shape,
                rows: Vec::new(),
                keys: HashMap::new(),
                types: target.types.clone(),
                bytes: 0,
                sql_head,
                sql_tail,
            });
        }
        if let Some(run) = self.run.as_mut() {
            run.bytes += size;
            match key.map(|k| match run.keys.get(&k) {
                Some(&at) => Err(at),
                None => Ok(k),
            }) {
                // A later update of a row already in the run, setting the same columns:
                // its values replace the earlier ones (the row ends the same).
                Some(Err(at)) => run.rows[at] = values,
                Some(Ok(k)) => {
                    run.keys.insert(k, run.rows.len());
                    run.rows.push(values);
                }
                None => run.rows.push(values),
            }
        }
        Ok(true)
    }

    /// Bytes of values held in the open run.
    pub fn pending_bytes(&self) -> usize {
        self.run.as_ref().map_or(0, |r| r.bytes)
    }

    /// Writes the open run, if any.
    pub fn finish(&mut self, out: &mut String) {
        if let Some(run) = self.run.take() {
            out.push_str(&run.sql_head);
            for (i, row) in run.rows.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                tuple(&run.types, row, i == 0, out);
            }
            out.push_str(&run.sql_tail);
            out.push_str(";\n");
        }
    }
}

/// Runs kept per table, so that changes to different tables, interleaved in the source's
/// transactions, still form long runs: within one target transaction, each table's changes
/// stay in their order, and the order between tables does not change the result (the
/// target has no foreign keys or triggers of Ferry's making; if it has its own and they
/// object, the integrity error makes the runtime apply again one statement at a time).
#[derive(Debug, Default)]
pub struct Partitioned {
    tables: Vec<TableBatch>,
    bytes: usize,
}

#[derive(Debug)]
struct TableBatch {
    relation: RelationId,
    batcher: Batcher,
    sql: String,
}

impl Partitioned {
    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// About how many bytes of SQL and values are held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn table(&mut self, relation: RelationId) -> &mut TableBatch {
        let at = match self.tables.iter().position(|t| t.relation == relation) {
            Some(at) => at,
            None => {
                self.tables.push(TableBatch {
                    relation,
                    batcher: Batcher::default(),
                    sql: String::new(),
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[at]
    }

    /// Takes a row change into its table's run; false (its table's run written out) when it
    /// cannot join one, and the caller hands its statement to [`Partitioned::push`].
    pub fn add(&mut self, target: &TargetRelation, change: &Change) -> Result<bool, ApplyError> {
        let table = self.table(target.relation.id);
        let (before_sql, before_run) = (table.sql.len(), table.batcher.pending_bytes());
        let joined = table.batcher.add(target, change, &mut table.sql)?;
        let after = table.sql.len() + table.batcher.pending_bytes();
        self.bytes = (self.bytes + after).saturating_sub(before_sql + before_run);
        Ok(joined)
    }

    /// Adds a statement about one table after that table's earlier changes.
    pub fn push(&mut self, relation: RelationId, sql: &str) {
        let table = self.table(relation);
        table.batcher.finish(&mut table.sql);
        let before = table.sql.len();
        table.sql.push_str(sql);
        table.sql.push_str(";\n");
        let grown = table.sql.len() - before;
        self.bytes += grown;
    }

    /// Writes everything held to `out`, table by table.
    pub fn finish(&mut self, out: &mut String) {
        for mut table in self.tables.drain(..) {
            table.batcher.finish(&mut table.sql);
            out.push_str(&table.sql);
        }
        self.bytes = 0;
    }
}

/// A value of a run row: the column index and its literal.
type Values = Vec<(usize, String)>;

/// How `change` would join a run: its shape, the values of its row (in shape order), and
/// the key literal that must be unique in an update run. `None`: it cannot join one.
fn shape_of(
    target: &TargetRelation,
    change: &Change,
) -> Result<Option<(Shape, Values, Option<String>)>, ApplyError> {
    let relation = &target.relation;
    let table = target_table(relation);
    let key_columns: Vec<usize> = (0..relation.columns.len())
        .filter(|&i| relation.columns[i].is_key)
        .collect();
    let values = |row: &Row, columns: &[usize]| -> Result<Option<Values>, ApplyError> {
        let mut out = Vec::with_capacity(columns.len());
        for &i in columns {
            match row.0.get(i).map(|d| literal(&table, d)).transpose()? {
                Some(Some(value)) => out.push((i, value)),
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    };
    match change {
        Change::Insert { new, .. } if new.0.len() == relation.columns.len() => {
            let columns: Vec<usize> = (0..new.0.len())
                .filter(|&i| {
                    !matches!(new.0[i], Datum::UnchangedToast) && !flag(&target.generated, i)
                })
                .collect();
            Ok(values(new, &columns)?.map(|v| (Shape::Insert { columns }, v, None)))
        }
        Change::Update {
            key: None,
            old: None,
            new,
            ..
        } if new.0.len() == relation.columns.len()
            && !key_columns.is_empty()
            && !relation.is_replica_identity_full() =>
        {
            let set: Vec<usize> = (0..new.0.len())
                .filter(|&i| {
                    !relation.columns[i].is_key
                        && !flag(&target.never_set, i)
                        && !flag(&target.generated, i)
                        && !matches!(new.0[i], Datum::UnchangedToast)
                })
                .collect();
            if set.is_empty() {
                return Ok(None);
            }
            let all: Vec<usize> = key_columns.iter().chain(&set).copied().collect();
            let Some(v) = values(new, &all)? else {
                return Ok(None);
            };
            let key = v[..key_columns.len()]
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join(",");
            Ok(Some((
                Shape::Update {
                    set,
                    key: key_columns,
                },
                v,
                Some(key),
            )))
        }
        Change::Delete {
            key: Some(key),
            old: None,
            ..
        } if key.0.len() == relation.columns.len()
            && !key_columns.is_empty()
            && !relation.is_replica_identity_full() =>
        {
            Ok(values(key, &key_columns)?.map(|v| (Shape::Delete { key: key_columns }, v, None)))
        }
        _ => Ok(None),
    }
}

fn flag(flags: &[bool], i: usize) -> bool {
    flags.get(i).copied().unwrap_or(false)
}

/// Writes `(v, …)` to `out`, with casts when `first`.
fn tuple(types: &[String], values: &Values, first: bool, out: &mut String) {
    out.push('(');
    for (n, (i, value)) in values.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(value);
        if let (true, Some(ty)) = (first, types.get(*i)) {
            out.push_str("::");
            out.push_str(ty);
        }
    }
    out.push(')');
}

/// The text around the VALUES rows of a run.
fn frame(target: &TargetRelation, shape: &Shape) -> (String, String) {
    let table = target_table(&target.relation).quoted();
    let name = |i: &usize| quote_ident(&target.relation.columns[*i].name);
    let alias = |i: &usize| format!("c{i}");
    match shape {
        Shape::Insert { columns } => (
            format!(
                "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE VALUES ",
                columns.iter().map(name).collect::<Vec<_>>().join(", ")
            ),
            String::new(),
        ),
        Shape::Update { set, key } => {
            let aliases: Vec<String> = key.iter().chain(set).map(alias).collect();
            let sets: Vec<String> = set
                .iter()
                .map(|i| format!("{} = v.{}", name(i), alias(i)))
                .collect();
            let filter: Vec<String> = key
                .iter()
                .map(|i| format!("t.{} = v.{}", name(i), alias(i)))
                .collect();
            (
                format!(
                    "UPDATE ONLY {table} AS t SET {} FROM (VALUES ",
                    sets.join(", ")
                ),
                format!(
                    ") AS v({}) WHERE {}",
                    aliases.join(", "),
                    filter.join(" AND ")
                ),
            )
        }
        Shape::Delete { key } => (
            format!(
                "DELETE FROM ONLY {table} WHERE ({}) IN (VALUES ",
                key.iter().map(name).collect::<Vec<_>>().join(", ")
            ),
            ")".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests;
