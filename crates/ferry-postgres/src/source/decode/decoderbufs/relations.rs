//! Synthetic Relations for decoderbufs, which describes no relation and names no key.
//!
//! Every row message lists every column of the table (name and type oid), so the column
//! set is always complete; which columns form the replica identity comes from the caller
//! ([`TableIdentity`], read from the source catalog as Debezium does). A Relation is
//! emitted whenever the columns or the identity differ from the last one emitted for the
//! table; ids are a counter per `schema.table`, stable for the decoder's life.

use std::collections::HashMap;

use ferry_core::{Relation, RelationColumn, RelationId, TableName};

/// How the source finds a table's rows: its replica identity, from the source catalog
/// (`pg_class.relreplident` and the primary key or identity index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableIdentity {
    /// REPLICA IDENTITY DEFAULT with a primary key, or USING INDEX: the key's columns.
    Key(Vec<String>),
    /// REPLICA IDENTITY FULL: every column (old rows arrive whole).
    Full,
    /// REPLICA IDENTITY NOTHING, or DEFAULT without a primary key: decoderbufs sends no
    /// old row and no new row for UPDATE and DELETE.
    Nothing,
}

/// The last Relation emitted for each table, and the identities the caller registered.
#[derive(Debug, Clone, Default)]
pub(super) struct Registry {
    tables: HashMap<TableName, Relation>,
    identities: HashMap<TableName, TableIdentity>,
    last_id: u32,
}

impl Registry {
    pub(super) fn set_identity(&mut self, table: TableName, identity: TableIdentity) {
        self.identities.insert(table, identity);
    }

    /// The Relation for a change of `table` whose rows have `columns` (name, type oid).
    pub(super) fn plan(&self, table: &TableName, columns: &[(String, u32)]) -> Relation {
        let id = self
            .tables
            .get(table)
            .map_or(RelationId(self.last_id.saturating_add(1)), |r| r.id);
        let identity = self.identities.get(table);
        let replica_identity = match identity {
            Some(TableIdentity::Full) => 'f',
            Some(TableIdentity::Nothing) => 'n',
            Some(TableIdentity::Key(_)) | None => 'd',
        };
        let is_key = |name: &str| match identity {
            Some(TableIdentity::Full) => true,
            Some(TableIdentity::Key(keys)) => keys.iter().any(|k| k == name),
            Some(TableIdentity::Nothing) | None => false,
        };
        Relation {
            id,
            schema: table.schema.clone(),
            name: table.name.clone(),
            replica_identity,
            columns: columns
                .iter()
                .map(|(name, type_oid)| RelationColumn {
                    name: name.clone(),
                    type_oid: *type_oid,
                    // decoderbufs sends the type's name with its modifier, not the number.
                    type_modifier: -1,
                    is_key: is_key(name),
                })
                .collect(),
        }
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
