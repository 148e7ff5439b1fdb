//! Synthetic Relations for wal2json, which describes no relation: the shape of each table
//! is inferred from its row changes, and a [`Relation`] is emitted whenever it differs from
//! the one last emitted for that table.
//!
//! What a row change tells:
//! - INSERT: every column (name and type oid) and the primary key (`pk`, names only).
//! - UPDATE: the new row without its unchanged TOAST columns, and `identity`: the replica
//!   identity's old values (taken from the new row when the key did not change), or every
//!   old column with REPLICA IDENTITY FULL.
//! - DELETE: `identity` only.
//!
//! So the column set of an UPDATE or DELETE is the last emitted one when it covers the
//! columns the change names (the others are unchanged TOAST values, or non-key columns),
//! and otherwise what the change names. Key columns come from `identity` whenever there is
//! one, because that is what the server uses to find the row: the primary key when it is
//! part of the identity, else the identity's columns (REPLICA IDENTITY USING INDEX), and
//! every column (`f`) when the identity carries the whole row of a table without a primary
//! key. Relation ids are a counter per `schema.table`, stable for the decoder's life.
//!
//! Planning reads the registry and recording writes it, so a payload that fails to decode
//! between the two leaves the registry as it was.

use std::collections::{HashMap, HashSet};

use ferry_core::{Datum, Relation, RelationColumn, RelationId, Row, TableName};

use super::json::Value;

/// The rows of one row change, as far as they tell the table's shape (a TRUNCATE tells
/// nothing: it plans with `None`).
pub(super) enum Shape<'r> {
    Insert {
        new: &'r [Value],
    },
    Update {
        new: &'r [Value],
        identity: Option<&'r [Value]>,
    },
    Delete {
        identity: &'r [Value],
    },
}

/// The last Relation emitted for each table.
#[derive(Debug, Clone, Default)]
pub(super) struct Registry {
    tables: HashMap<TableName, Relation>,
    last_id: u32,
}

impl Registry {
    /// The Relation a change of `table` with `shape` needs (the id is the table's, or the
    /// next free one). `pk` names the primary key columns.
    pub(super) fn plan(
        &self,
        table: &TableName,
        shape: Option<&Shape<'_>>,
        pk: &[String],
    ) -> Relation {
        let last = self.tables.get(table);
        let id = last.map_or(RelationId(self.last_id.saturating_add(1)), |r| r.id);
        let named = named_columns(shape);
        let columns = match last {
            Some(last) if reusable(last, &named, shape) => last.columns.clone(),
            _ => named
                .iter()
                .map(|&(name, type_oid)| RelationColumn {
                    name: name.to_owned(),
                    type_oid,
                    // wal2json prints the type name with its modifier, not the number.
                    type_modifier: -1,
                    is_key: false,
                })
                .collect(),
        };
        let mut relation = Relation {
            id,
            schema: table.schema.clone(),
            name: table.name.clone(),
            replica_identity: 'd',
            columns,
        };
        let identity = match shape {
            Some(Shape::Update { identity, .. }) => *identity,
            Some(Shape::Delete { identity }) => Some(*identity),
            Some(Shape::Insert { .. }) | None => None,
        };
        match identity {
            Some(identity) => {
                let identity: HashSet<&str> = identity.iter().map(|v| v.name.as_str()).collect();
                let full = pk.is_empty()
                    && relation
                        .columns
                        .iter()
                        .all(|c| identity.contains(c.name.as_str()));
                if full {
                    relation.replica_identity = 'f';
                    set_keys(&mut relation, |_| true);
                } else if !pk.is_empty() && pk.iter().all(|k| identity.contains(k.as_str())) {
                    set_keys(&mut relation, |name| pk.iter().any(|k| k == name));
                } else {
                    set_keys(&mut relation, |name| identity.contains(name));
                }
            }
            // No identity: keep what the last Relation learnt from one, unless it has no key
            // and the table now has a primary key.
            None => match last {
                Some(last)
                    if same_columns(last, &relation)
                        && (pk.is_empty() || last.columns.iter().any(|c| c.is_key)) =>
                {
                    relation.replica_identity = last.replica_identity;
                    relation.columns = last.columns.clone();
                }
                _ => set_keys(&mut relation, |name| pk.iter().any(|k| k == name)),
            },
        }
        relation
    }

    /// Makes `relation` the table's current shape; returns it when it differs from the last
    /// one emitted (or is the first), for the caller to emit.
    pub(super) fn record(&mut self, relation: Relation) -> Option<Relation> {
        let table = TableName::new(relation.schema.clone(), relation.name.clone());
        if self.tables.get(&table) == Some(&relation) {
            return None;
        }
        self.last_id = self.last_id.max(relation.id.0);
        self.tables.insert(table, relation.clone());
        Some(relation)
    }
}

fn set_keys(relation: &mut Relation, is_key: impl Fn(&str) -> bool) {
    for column in &mut relation.columns {
        column.is_key = is_key(&column.name);
    }
}

fn same_columns(a: &Relation, b: &Relation) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns
            .iter()
            .zip(&b.columns)
            .all(|(x, y)| x.name == y.name && x.type_oid == y.type_oid)
}

/// The columns the change names: the new row's, then identity columns it lacks.
fn named_columns<'r>(shape: Option<&Shape<'r>>) -> Vec<(&'r str, u32)> {
    let pairs = |values: &'r [Value]| values.iter().map(|v| (v.name.as_str(), v.type_oid));
    match shape {
        Some(Shape::Insert { new }) => pairs(new).collect(),
        Some(Shape::Update { new, identity }) => {
            let mut named: Vec<_> = pairs(new).collect();
            if let Some(identity) = identity {
                let in_new: HashSet<&str> = new.iter().map(|v| v.name.as_str()).collect();
                named.extend(pairs(identity).filter(|(name, _)| !in_new.contains(name)));
            }
            named
        }
        Some(Shape::Delete { identity }) => pairs(identity).collect(),
        None => Vec::new(),
    }
}

/// Whether the last Relation still describes the table: it has every column the change
/// names, with the same type, and an INSERT (which names them all) names no fewer.
fn reusable(last: &Relation, named: &[(&str, u32)], shape: Option<&Shape<'_>>) -> bool {
    if matches!(shape, Some(Shape::Insert { .. })) && named.len() != last.columns.len() {
        return false;
    }
    let mut cursor = 0;
    named.iter().all(|&(name, type_oid)| {
        find(&last.columns, &mut cursor, |c| c.name == name).is_some_and(|c| c.type_oid == type_oid)
    })
}

/// The first item from `cursor` on (wrapping around) that matches; moves the cursor past
/// it. Rows list columns in the relation's order, so this is one step per column.
fn find<'a, T>(items: &'a [T], cursor: &mut usize, matches: impl Fn(&T) -> bool) -> Option<&'a T> {
    let len = items.len();
    for step in 0..len {
        let index = (*cursor + step) % len;
        let item = items.get(index)?;
        if matches(item) {
            *cursor = index + 1;
            return Some(item);
        }
    }
    None
}

/// `values` laid out as `relation`'s columns; a column the values lack is `missing`.
pub(super) fn arrange(relation: &Relation, values: &[Value], missing: &Datum) -> Row {
    let mut cursor = 0;
    Row(relation
        .columns
        .iter()
        .map(|column| {
            find(values, &mut cursor, |v| v.name == column.name)
                .map_or_else(|| missing.clone(), |v| v.datum.clone())
        })
        .collect())
}

/// The key tuple pgoutput would send (`K`): the key columns' values from `identity`, every
/// other column `Null`.
pub(super) fn key_row(relation: &Relation, identity: &[Value]) -> Row {
    let mut row = arrange(relation, identity, &Datum::Null);
    for (datum, column) in row.0.iter_mut().zip(&relation.columns) {
        if !column.is_key {
            *datum = Datum::Null;
        }
    }
    row
}
