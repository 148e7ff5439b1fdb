//! The source schema as Ferry needs it: tables, columns, keys, indexes, types, sequences.
//!
//! Read once from the source catalog inside the exported snapshot's transaction (so it
//! describes exactly the data being copied), then used to create the target, to plan the
//! copy (sizes, which columns, binary or text) and later to apply changes (keys).

use ferry_core::TableName;

/// PostgreSQL's `FirstNormalObjectId`: objects with a smaller oid are built in, and their
/// oids are the same in every cluster.
pub const FIRST_NORMAL_OID: u32 = 16_384;

/// Everything selected from the source.
#[derive(Debug, Clone, Default)]
pub struct SourceSchema {
    /// Schemas that hold selected tables or the types they use, in dependency order.
    pub schemas: Vec<String>,
    /// Enum, domain and other user types the selected columns use, dependencies first.
    pub types: Vec<TypeDef>,
    /// Sequences owned by selected columns (serial) or used by their defaults.
    pub sequences: Vec<SequenceDef>,
    /// Selected tables; a partitioned table comes before its partitions.
    pub tables: Vec<TableDef>,
}

impl SourceSchema {
    /// The table named `name`.
    pub fn table(&self, name: &TableName) -> Option<&TableDef> {
        self.tables.iter().find(|t| &t.name == name)
    }
}

/// Whether a table holds rows itself or routes them to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// An ordinary table (or a leaf partition).
    Table,
    /// A partitioned table: no storage of its own.
    Partitioned,
}

/// One table.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: TableName,
    /// The source oid (for catalog lookups on the source only).
    pub oid: u32,
    pub kind: TableKind,
    /// Live columns in `attnum` order, generated ones included.
    pub columns: Vec<ColumnDef>,
    /// Primary key column names in key order, if any.
    pub primary_key: Option<Vec<String>>,
    /// `pg_get_constraintdef` of the primary key, e.g. `PRIMARY KEY (id)`, and its name.
    pub primary_key_constraint: Option<ConstraintDef>,
    /// Unique and exclusion constraints (not the primary key), created after the load.
    pub constraints: Vec<ConstraintDef>,
    /// Check constraints, created with the table (they hold for every source row).
    pub checks: Vec<ConstraintDef>,
    /// Indexes that back no constraint, created after the load.
    pub indexes: Vec<IndexDef>,
    /// For a partition: its parent and `pg_get_expr(relpartbound)` (`FOR VALUES …`).
    pub partition_of: Option<(TableName, String)>,
    /// For a partition whose columns are in another order than its parent's: created as
    /// an ordinary table with its own column order (and the checks it inherits), then
    /// attached, instead of `PARTITION OF` (which takes the parent's order).
    pub attach: bool,
    /// For a partitioned table: `pg_get_partkeydef`, e.g. `RANGE (created_at)`.
    pub partition_key: Option<String>,
    /// `REPLICA IDENTITY` as `relreplident`: `d`, `n`, `f` or `i`.
    pub replica_identity: char,
    /// `pg_relation_size` in bytes at snapshot time (0 for partitioned tables).
    pub size_bytes: i64,
    /// `reltuples` estimate (-1 or 0 when never analyzed).
    pub estimated_rows: i64,
}

impl TableDef {
    /// Columns that COPY carries: all but generated ones, which the target computes.
    pub fn copy_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.generated.is_none())
    }

    /// Whether every copied column has a built-in type, so binary COPY output of the source
    /// is valid binary COPY input on any target (user types have cluster-specific oids,
    /// and binary arrays embed the element type's oid).
    pub fn binary_copy_safe(&self) -> bool {
        self.copy_columns().all(|c| c.type_oid < FIRST_NORMAL_OID)
    }

    /// Whether the table holds rows (partitioned parents do not).
    pub fn has_storage(&self) -> bool {
        self.kind == TableKind::Table
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// The exact type as SQL: `format_type(atttypid, atttypmod)`, e.g. `numeric(10,2)`,
    /// `character varying(20)[]`, `"Sales"."Mood"`.
    pub type_sql: String,
    pub type_oid: u32,
    pub not_null: bool,
    /// `pg_get_expr(adbin)` of the default, when there is one (not for generated columns).
    pub default: Option<String>,
    /// `GENERATED ALWAYS` (`a`) or `BY DEFAULT` (`d`) identity.
    pub identity: Option<char>,
    /// The expression of a `GENERATED ALWAYS AS (…) STORED` column.
    pub generated: Option<String>,
    /// Collation, when not the type's default: `"C"`, `"de_DE"`.
    pub collation: Option<String>,
}

/// A named constraint: `CONSTRAINT name <definition>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintDef {
    pub name: String,
    /// `pg_get_constraintdef(oid)`, e.g. `UNIQUE (email)`, `CHECK ((qty > 0))`.
    pub definition: String,
    /// `pg_get_indexdef` of the index behind a primary key, unique or exclusion
    /// constraint (`CREATE UNIQUE INDEX name ON schema.table USING btree (…)`), so the
    /// index can be built before the constraint adopts it; `None` for checks.
    pub index_definition: Option<String>,
}

/// An index backing no constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    /// `pg_get_indexdef(oid)`: a complete `CREATE [UNIQUE] INDEX … ON schema.table …`.
    pub definition: String,
}

/// A user-defined type that selected columns use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDef {
    pub schema: String,
    pub name: String,
    pub kind: TypeKind,
}

/// What a user type is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// `CREATE TYPE … AS ENUM (labels in sort order)`.
    Enum { labels: Vec<String> },
    /// `CREATE DOMAIN … AS base [NOT NULL] [DEFAULT …] [CONSTRAINT … CHECK …]`.
    Domain {
        base_type_sql: String,
        not_null: bool,
        default: Option<String>,
        checks: Vec<ConstraintDef>,
    },
    /// `CREATE TYPE … AS (attributes)`.
    Composite { attributes: Vec<(String, String)> },
}

/// A sequence to create on the target and set to the source's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDef {
    pub name: TableName,
    /// `bigint`, `integer` or `smallint`.
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// `last_value` and `is_called` read on the source during the snapshot.
    pub last_value: i64,
    pub is_called: bool,
    /// The column owning it (`OWNED BY`), for serial columns.
    pub owned_by: Option<(TableName, String)>,
    /// An identity column's own sequence: the table creates it; only its value is set.
    pub identity: bool,
}
