//! The random schema of a torture case: which tables exist, of which kind (single or
//! composite primary key, keyless with REPLICA IDENTITY FULL and duplicate rows, a GENERATED
//! ALWAYS identity key, a partitioned table), with which columns from the type pool, and
//! the SQL that creates them and fills them before the copy.
//!
//! Every table has an integer column `k`, indexed, that the workload uses to address rows:
//! a row inserted for the number `n` gets `k = n` and the key `key(n)`, so statements never
//! need to know what another session did, and a key change (which gives the row a key no
//! one has used) keeps the row addressable.

use ferry_core::{quote_ident, TableName};

use super::rng::Rng;
use super::types::{self, ColumnType};
use super::{Features, Plugin};

/// How a table is keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// `PRIMARY KEY (id)` of an int4, int8, text or uuid column.
    SingleKey(ColumnType),
    /// `PRIMARY KEY (a int8, b text)`: `a = n / 3`, `b = 'x' || n % 3`.
    CompositeKey,
    /// No key, REPLICA IDENTITY FULL, rows inserted in duplicate.
    Keyless,
    /// `id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY`.
    Identity,
    /// `PRIMARY KEY (id int8, at date)`, partitioned by range of `at` into three leaves.
    Partitioned,
}

/// A value column.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

impl Column {
    /// A random value for the column as SQL (NULL sometimes, where allowed).
    pub fn value(&self, rng: &mut Rng, plugin: Plugin) -> String {
        if self.nullable && rng.percent(8) {
            "NULL".to_owned()
        } else {
            self.ty.value(rng, plugin)
        }
    }

    pub fn quoted(&self) -> String {
        quote_ident(&self.name)
    }
}

/// One table of the schema.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: TableName,
    pub kind: TableKind,
    pub columns: Vec<Column>,
    /// A text column whose values are over 2 kB and incompressible (stored out of line).
    pub toast: Option<String>,
    /// A stored generated column computed from `k`.
    pub generated: Option<String>,
    /// Rows created before the copy (numbers `1..=initial_rows`).
    pub initial_rows: u64,
}

/// The whole schema of a case.
#[derive(Clone, Debug)]
pub struct Schema {
    pub tables: Vec<Table>,
    /// Schemas the tables live in (`public` and maybe a quoted one).
    pub schemas: Vec<String>,
    /// Extensions to create on both sides first.
    pub extensions: Vec<&'static str>,
}

/// The quoted odd schema some cases put a table in.
pub const ODD_SCHEMA: &str = "Odd Schema";

const TABLE_NAMES: [&str; 8] = [
    "accounts",
    "orders",
    "events",
    "line_items",
    "docs",
    "ledger",
    "readings",
    "stock",
];
const ODD_TABLE_NAMES: [&str; 6] = [
    "Odd Name",
    "MixedCase",
    "select",
    "ünïcode täble",
    "with\"quote",
    "UPPER",
];
const ODD_COLUMN_NAMES: [&str; 7] = [
    "Col A",
    "from",
    "MiXed",
    "ünï",
    "with space",
    "order",
    "x\"y",
];

/// An SQL expression of the incompressible out-of-line text for the number `g`: a chain of
/// md5 hashes, 32 hex digits each (hex does not compress below pglz's threshold).
pub fn toast_expr(g: &str, pieces: u64) -> String {
    format!(
        "(SELECT string_agg(md5(({g})::text || '.' || i), '') FROM generate_series(1, {pieces}) i)"
    )
}

impl Schema {
    /// The schema for a case, drawn from `rng`.
    pub fn generate(rng: &mut Rng, plugin: Plugin, features: &Features) -> Schema {
        let pool = types::pool(plugin, features);
        let table_count = rng.between(3, 6) as usize;
        let mut kinds = vec![TableKind::SingleKey(ColumnType::Int8)];
        if features.keyless_tables {
            kinds.push(TableKind::Keyless);
        }
        let mut optional = vec![
            TableKind::SingleKey(ColumnType::Int4),
            TableKind::SingleKey(ColumnType::Text),
            TableKind::SingleKey(ColumnType::Uuid),
            TableKind::CompositeKey,
        ];
        if features.keyless_tables {
            optional.push(TableKind::Keyless);
        }
        if features.identity_tables {
            optional.push(TableKind::Identity);
        }
        if features.partitioned_tables {
            optional.push(TableKind::Partitioned);
        }
        while kinds.len() < table_count {
            kinds.push(*rng.pick(&optional));
        }
        let odd_schema = features.odd_names && rng.percent(40);
        let odd_table = rng.index(kinds.len());
        let mut used_names: Vec<String> = Vec::new();
        let mut tables = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let name = loop {
                let candidate = if features.odd_names && rng.percent(35) {
                    rng.pick(&ODD_TABLE_NAMES).to_string()
                } else {
                    format!("{}_{i}", rng.pick(&TABLE_NAMES))
                };
                if !used_names.contains(&candidate) {
                    break candidate;
                }
            };
            used_names.push(name.clone());
            let schema = if odd_schema && i == odd_table {
                ODD_SCHEMA
            } else {
                "public"
            };
            let column_count = rng.between(2, 6) as usize;
            let mut columns: Vec<Column> = Vec::new();
            for c in 0..column_count {
                let ty = *rng.pick(&pool);
                let name = if features.odd_names && rng.percent(20) {
                    let odd = rng.pick(&ODD_COLUMN_NAMES).to_string();
                    if columns.iter().any(|col| col.name == odd) {
                        format!("c{c}")
                    } else {
                        odd
                    }
                } else {
                    format!(
                        "c{c}_{}",
                        ty.sql()
                            .trim_start_matches("public.")
                            .split(['(', '['])
                            .next()
                            .unwrap_or("x")
                    )
                };
                columns.push(Column {
                    name,
                    ty,
                    nullable: rng.percent(80),
                });
            }
            // The first table is the big one, so the copy takes long enough to be killed in.
            let initial_rows = if i == 0 {
                rng.between(30_000, 60_000)
            } else {
                rng.between(100, 2_000)
            };
            let toast = (features.toast && (i == 1 || rng.percent(40))).then(|| "body".to_owned());
            let generated =
                (features.generated_columns && kind != TableKind::Keyless && rng.percent(40))
                    .then(|| "gen".to_owned());
            tables.push(Table {
                name: TableName::new(schema, name),
                kind,
                columns,
                toast,
                generated,
                initial_rows,
            });
        }
        let mut extensions = Vec::new();
        for table in &tables {
            for column in &table.columns {
                if let Some(ext) = column.ty.extension() {
                    if !extensions.contains(&ext) {
                        extensions.push(ext);
                    }
                }
            }
        }
        let mut schemas = vec!["public".to_owned()];
        if odd_schema {
            schemas.push(ODD_SCHEMA.to_owned());
        }
        Schema {
            tables,
            schemas,
            extensions,
        }
    }

    /// SQL for both sides before anything else: the extensions the types need.
    pub fn extensions_sql(&self) -> String {
        self.extensions
            .iter()
            .map(|e| format!("CREATE EXTENSION IF NOT EXISTS {e};\n"))
            .collect()
    }

    /// SQL that creates the schema on the source.
    pub fn create_sql(&self) -> String {
        let mut sql = String::from(types::TYPES_SQL);
        for schema in &self.schemas {
            if schema != "public" {
                sql.push_str(&format!("CREATE SCHEMA {};\n", quote_ident(schema)));
            }
        }
        for table in &self.tables {
            sql.push_str(&table.create_sql());
        }
        sql
    }

    /// SQL that fills the tables before the copy, one statement per table, with edge values
    /// sprinkled in and (for keyless tables) every third row twice.
    pub fn fill_sql(&self, rng: &mut Rng, plugin: Plugin) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| t.bulk_insert_sql(rng, plugin, 1, t.initial_rows, true))
            .collect()
    }

    /// The `[source] tables` patterns that select every table of the schema.
    pub fn table_patterns(&self) -> Vec<String> {
        self.schemas
            .iter()
            .map(|s| {
                if s == "public" {
                    "public.*".to_owned()
                } else {
                    format!("{}.*", quote_ident(s))
                }
            })
            .collect()
    }
}

impl Table {
    /// The quoted name.
    pub fn quoted(&self) -> String {
        self.name.quoted()
    }

    /// The primary-key columns (empty for keyless tables).
    pub fn key_columns(&self) -> Vec<&'static str> {
        match self.kind {
            TableKind::SingleKey(_) | TableKind::Identity => vec!["id"],
            TableKind::CompositeKey => vec!["a", "b"],
            TableKind::Partitioned => vec!["id", "at"],
            TableKind::Keyless => vec![],
        }
    }

    /// The key columns the workload writes itself (all but an identity), and their values
    /// for the number expression `g`.
    pub fn key_values(&self, g: &str) -> Vec<(&'static str, String)> {
        match self.kind {
            TableKind::SingleKey(ty) => vec![("id", key_expr(ty, g))],
            TableKind::CompositeKey => vec![
                ("a", format!("(({g})::int8 / 3)")),
                ("b", format!("('x' || ({g}) % 3)")),
            ],
            TableKind::Partitioned => vec![
                ("id", format!("({g})::int8")),
                ("at", format!("(date '2020-01-01' + (({g}) % 3) * 400)")),
            ],
            TableKind::Keyless | TableKind::Identity => vec![],
        }
    }

    /// `WHERE` condition matching the row whose key is that of number `n` (keyed tables).
    pub fn key_condition(&self, n: u64) -> Option<String> {
        let pairs = self.key_values(&n.to_string());
        if pairs.is_empty() {
            return None;
        }
        Some(
            pairs
                .into_iter()
                .map(|(c, v)| format!("{c} = {v}"))
                .collect::<Vec<_>>()
                .join(" AND "),
        )
    }

    fn create_sql(&self) -> String {
        let q = self.quoted();
        let mut defs = vec!["k int4 NOT NULL".to_owned()];
        match self.kind {
            TableKind::SingleKey(ty) => defs.push(format!("id {} NOT NULL", ty.sql())),
            TableKind::CompositeKey => {
                defs.push("a int8 NOT NULL".to_owned());
                defs.push("b text NOT NULL".to_owned());
            }
            TableKind::Identity => defs.push("id int8 GENERATED ALWAYS AS IDENTITY".to_owned()),
            TableKind::Partitioned => {
                defs.push("id int8 NOT NULL".to_owned());
                defs.push("at date NOT NULL".to_owned());
            }
            TableKind::Keyless => {}
        }
        for c in &self.columns {
            defs.push(format!(
                "{} {}{}",
                c.quoted(),
                c.ty.sql(),
                if c.nullable { "" } else { " NOT NULL" }
            ));
        }
        if let Some(body) = &self.toast {
            defs.push(format!("{} text", quote_ident(body)));
        }
        if let Some(generated) = &self.generated {
            defs.push(format!(
                "{} int8 GENERATED ALWAYS AS (k::int8 * 3 + 1) STORED",
                quote_ident(generated)
            ));
        }
        let keys = self.key_columns();
        if !keys.is_empty() {
            defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        let mut sql = format!("CREATE TABLE {q} (\n  {}\n)", defs.join(",\n  "));
        if self.kind == TableKind::Partitioned {
            sql.push_str(" PARTITION BY RANGE (at);\n");
            let leaf = |suffix: &str| {
                TableName::new(
                    self.name.schema.clone(),
                    format!("{}_{suffix}", self.name.name),
                )
                .quoted()
            };
            sql.push_str(&format!(
                "CREATE TABLE {} PARTITION OF {q} FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');\n\
                 CREATE TABLE {} PARTITION OF {q} FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');\n\
                 CREATE TABLE {} PARTITION OF {q} DEFAULT;\n",
                leaf("2020"),
                leaf("2021"),
                leaf("rest")
            ));
        } else {
            sql.push_str(";\n");
        }
        sql.push_str(&format!("CREATE INDEX ON {q} (k);\n"));
        if self.kind == TableKind::Keyless {
            sql.push_str(&format!("ALTER TABLE {q} REPLICA IDENTITY FULL;\n"));
        }
        sql
    }

    /// The columns an INSERT names, in order: `k`, the written key columns, the value
    /// columns, and the TOAST column.
    pub fn insert_columns(&self) -> Vec<String> {
        let mut cols = vec!["k".to_owned()];
        cols.extend(self.key_values("0").into_iter().map(|(c, _)| c.to_owned()));
        cols.extend(self.columns.iter().map(Column::quoted));
        if let Some(body) = &self.toast {
            cols.push(quote_ident(body));
        }
        cols
    }

    /// One row of an INSERT ... VALUES for number `n`.
    pub fn values_row(&self, rng: &mut Rng, plugin: Plugin, n: u64) -> String {
        let g = n.to_string();
        let mut vals = vec![g.clone()];
        vals.extend(self.key_values(&g).into_iter().map(|(_, v)| v));
        for c in &self.columns {
            vals.push(c.value(rng, plugin));
        }
        if self.toast.is_some() {
            vals.push(if rng.percent(50) {
                toast_expr(&rng.between(0, 1_000_000).to_string(), rng.between(70, 200))
            } else {
                "NULL".to_owned()
            });
        }
        format!("({})", vals.join(", "))
    }

    /// `INSERT INTO t SELECT ... FROM generate_series(from, to) g`: numbers `from..=to`;
    /// `initial` sprinkles NULLs and edge values by `g` and duplicates keyless rows.
    pub fn bulk_insert_sql(
        &self,
        rng: &mut Rng,
        plugin: Plugin,
        from: u64,
        to: u64,
        initial: bool,
    ) -> String {
        let mut vals = vec!["g".to_owned()];
        vals.extend(self.key_values("g").into_iter().map(|(_, v)| v));
        for c in &self.columns {
            let m1 = rng.between(5, 29);
            let m2 = rng.between(31, 97);
            let null = if c.nullable {
                format!("WHEN g % {m1} = 1 THEN NULL ")
            } else {
                String::new()
            };
            let edge = c.ty.edge(rng, plugin);
            vals.push(format!(
                "CASE {null}WHEN g % {m2} = 2 THEN {edge} ELSE {} END",
                c.ty.expr("g")
            ));
        }
        if self.toast.is_some() {
            let every = if initial { 10 } else { 3 };
            vals.push(format!(
                "CASE WHEN g % {every} = 0 THEN {} END",
                toast_expr("g", rng.between(70, 160))
            ));
        }
        let dup = if self.kind == TableKind::Keyless {
            " CROSS JOIN LATERAL generate_series(1, 1 + (g % 3 = 0)::int) dup"
        } else {
            ""
        };
        let conflict = if self.key_columns().is_empty() || self.kind == TableKind::Identity {
            ""
        } else {
            " ON CONFLICT DO NOTHING"
        };
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM generate_series({from}, {to}) g{dup}{conflict}",
            self.quoted(),
            self.insert_columns().join(", "),
            vals.join(", ")
        )
    }
}

/// The key value of number `g` for a single-column key of type `ty`.
fn key_expr(ty: ColumnType, g: &str) -> String {
    match ty {
        ColumnType::Int4 => format!("({g})::int4"),
        ColumnType::Text => format!("('k' || ({g}))"),
        ColumnType::Uuid => format!("md5(({g})::text)::uuid"),
        _ => format!("({g})::int8"),
    }
}
