//! A [`TableSelection`] applied to a source catalog: the tables a pipeline carries.
//!
//! A table is carried when a pattern selects it, or when it is a partition (at any depth)
//! of a selected partitioned table: changes of partitioned tables arrive under their leaf
//! partitions' names unless the publication says otherwise, so every leaf must be known.
//! Each carried table knows the topmost selected partitioned table above it, which is what
//! a publication names (on PostgreSQL 13 and later) and what the copy reads.

use std::collections::HashMap;

use ferry_core::TableName;
use tokio_postgres::Client;

use super::TableSelection;
use crate::catalog::{self, TableInfo};

/// A carried table.
#[derive(Debug, Clone)]
pub struct SelectedTable {
    pub info: TableInfo,
    /// The topmost selected partitioned table this one is a partition of.
    pub root: Option<TableName>,
}

impl SelectedTable {
    pub fn name(&self) -> &TableName {
        &self.info.name
    }
}

/// The selection applied to the catalog.
#[derive(Debug, Clone, Default)]
pub struct ResolvedSelection {
    /// In catalog order (schema, then name).
    pub tables: Vec<SelectedTable>,
    /// Include patterns that matched nothing, with the quoted form that would match.
    pub unmatched: Vec<(String, Option<String>)>,
}

impl ResolvedSelection {
    /// The carried tables' names.
    pub fn names(&self) -> Vec<TableName> {
        self.tables.iter().map(|t| t.info.name.clone()).collect()
    }

    pub fn contains(&self, table: &TableName) -> bool {
        self.tables.iter().any(|t| &t.info.name == table)
    }

    pub fn get(&self, table: &TableName) -> Option<&SelectedTable> {
        self.tables.iter().find(|t| &t.info.name == table)
    }

    /// One warning per include pattern that matched nothing.
    pub fn unmatched_warnings(&self) -> Vec<String> {
        self.unmatched
            .iter()
            .map(|(pattern, suggestion)| match suggestion {
                Some(quoted) => format!(
                    "the tables pattern {pattern:?} matches no table: unquoted names fold to lower case; to match by case write {quoted}"
                ),
                None => format!("the tables pattern {pattern:?} matches no table"),
            })
            .collect()
    }
}

/// Applies `selection` to `all` tables, with `parents` (partition, parent) by oid.
pub fn resolve(
    selection: &TableSelection,
    all: Vec<TableInfo>,
    parents: &[(u32, u32)],
) -> ResolvedSelection {
    let names: Vec<TableName> = all.iter().map(|t| t.name.clone()).collect();
    let parent_of: HashMap<u32, u32> = parents.iter().copied().collect();
    let by_oid: HashMap<u32, &TableInfo> = all.iter().map(|t| (t.oid, t)).collect();
    let matched = |t: &TableInfo| selection.matches(&t.name);
    let mut tables = Vec::new();
    for table in &all {
        // The topmost selected partitioned ancestor.
        let mut root = None;
        let mut at = table.oid;
        while let Some(parent) = parent_of.get(&at).and_then(|p| by_oid.get(p)) {
            if parent.relkind == 'p' && matched(parent) {
                root = Some(parent.name.clone());
            }
            at = parent.oid;
        }
        if root.is_some() || matched(table) {
            tables.push(SelectedTable {
                info: table.clone(),
                root,
            });
        }
    }
    ResolvedSelection {
        tables,
        unmatched: selection.unmatched(&names),
    }
}

/// Reads the catalog on `client` and applies `selection` to it.
pub async fn read(
    client: &Client,
    version_num: u32,
    selection: &TableSelection,
) -> Result<ResolvedSelection, tokio_postgres::Error> {
    let all = catalog::tables(client, version_num).await?;
    let parents = catalog::partition_parents(client).await?;
    Ok(resolve(selection, all, &parents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ReplicaIdentity;

    fn table(oid: u32, name: &str, relkind: char, is_partition: bool) -> TableInfo {
        TableInfo {
            name: TableName::new("public", name),
            oid,
            relkind,
            is_partition,
            replica_identity: ReplicaIdentity::Default,
            has_primary_key: true,
            has_identity_index: false,
            can_select: true,
            owned: true,
            unlogged: false,
        }
    }

    #[test]
    fn partitions_at_any_depth_follow_their_topmost_selected_root() {
        let all = vec![
            table(1, "events", 'p', false),
            table(2, "events_2024", 'p', true),
            table(3, "events_2024_q1", 'r', true),
            table(4, "other", 'r', false),
            table(5, "loose", 'p', false),
            table(6, "loose_a", 'r', true),
        ];
        let parents = [(2, 1), (3, 2), (6, 5)];
        let selection = TableSelection::parse(&["events*".into(), "loose_a".into()], &[]).unwrap();
        let resolved = resolve(&selection, all, &parents);
        let roots: Vec<(String, Option<String>)> = resolved
            .tables
            .iter()
            .map(|t| {
                (
                    t.info.name.name.clone(),
                    t.root.as_ref().map(|r| r.name.clone()),
                )
            })
            .collect();
        assert_eq!(
            roots,
            vec![
                ("events".into(), None),
                ("events_2024".into(), Some("events".into())),
                ("events_2024_q1".into(), Some("events".into())),
                ("loose_a".into(), None),
            ]
        );
    }
}
