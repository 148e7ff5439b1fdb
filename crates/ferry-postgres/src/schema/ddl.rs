//! The SQL that re-creates a [`SourceSchema`] on a target, in two phases around the load.
//!
//! ```text
//!  pre_load:  CREATE SCHEMA ─► types (enum, domain, composite) ─► sequences ─► tables
//!             (columns, defaults, identity, generated, CHECKs, PARTITION BY / OF)
//!             ─► REPLICA IDENTITY ─► ALTER SEQUENCE … OWNED BY
//!  post_load: indexes      CREATE [UNIQUE] INDEX …              (in parallel, largest first)
//!             constraints  ADD CONSTRAINT … USING INDEX / EXCLUDE / NOT VALID checks
//!             sequences    SELECT setval(…)
//! ```
//!
//! Tables are created without primary keys, unique constraints or indexes so the load does
//! not maintain them row by row. A primary key or unique constraint of an ordinary table
//! becomes a `CREATE UNIQUE INDEX` (which can run beside other index builds) and then a
//! constraint that adopts it (`USING INDEX`, a catalog-only change). Partitioned tables
//! cannot adopt an index, so theirs are added with a plain `ADD CONSTRAINT`, which builds
//! the index on every partition; a partitioned table's plain index is likewise created on
//! the parent and cascades. Checks marked `NOT VALID` on the source may be violated by
//! copied rows, so they are added after the load, still `NOT VALID`.
//!
//! Pure functions: names are quoted with `ferry_core`'s helpers; expressions, types and
//! index definitions are the server's own deparsed text (read with `search_path = ''`, so
//! already schema-qualified).

use std::cmp::Reverse;
use std::collections::HashMap;

use ferry_core::{quote_ident, quote_literal, TableName};

use super::model::{
    ColumnDef, ConstraintDef, SequenceDef, SourceSchema, TableDef, TableKind, TypeDef, TypeKind,
};

/// One SQL statement and the object it creates, for progress and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What the statement creates, e.g. `table "public"."t"`.
    pub object: String,
    pub sql: String,
    /// The table whose lock the statement takes (for a partition, the root of its partition
    /// tree, whose constraints cascade into it): statements of one table must not run at
    /// the same time. `None` for statements that lock no table.
    pub table: Option<TableName>,
}

/// The steps after the load, in the order they run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostLoad {
    /// Index builds, largest table first; any number may run at once.
    pub indexes: Vec<Statement>,
    /// Constraints, after every index: those of one [`Statement::table`] one at a time,
    /// in this order.
    pub constraints: Vec<Statement>,
    /// `setval` of every sequence, after the constraints.
    pub sequences: Vec<Statement>,
}

impl PostLoad {
    /// How many statements there are.
    pub fn len(&self) -> usize {
        self.indexes.len() + self.constraints.len() + self.sequences.len()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Statements that create `schema` before the load: schemas, types, sequences, tables
/// without keys or indexes, then sequence ownership. Run them in order.
pub fn pre_load(schema: &SourceSchema) -> Vec<Statement> {
    let mut out = Vec::new();
    for name in &schema.schemas {
        out.push(Statement {
            object: format!("schema {}", quote_ident(name)),
            sql: format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(name)),
            table: None,
        });
    }
    out.extend(schema.types.iter().map(create_type));
    out.extend(
        schema
            .sequences
            .iter()
            .filter(|s| !s.identity)
            .map(create_sequence),
    );
    for table in &schema.tables {
        out.push(create_table(table, schema));
        let identity = match table.replica_identity {
            'f' => "FULL",
            'n' => "NOTHING",
            _ => continue,
        };
        out.push(Statement {
            object: format!("replica identity of table {}", table.name),
            sql: format!("ALTER TABLE {} REPLICA IDENTITY {identity}", table.name),
            table: Some(table.name.clone()),
        });
    }
    for sequence in schema.sequences.iter().filter(|s| !s.identity) {
        let Some((owner, column)) = &sequence.owned_by else {
            continue;
        };
        if schema.table(owner).is_none() {
            continue;
        }
        out.push(Statement {
            object: format!("ownership of sequence {}", sequence.name),
            sql: format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                sequence.name,
                owner,
                quote_ident(column)
            ),
            table: Some(owner.clone()),
        });
    }
    out
}

/// Statements that finish `schema` after the load: indexes, constraints, sequence values.
pub fn post_load(schema: &SourceSchema) -> PostLoad {
    let roots = partition_roots(schema);
    let root_of = |table: &TableDef| roots.get(&table.name).unwrap_or(&table.name).clone();
    let mut family_bytes: HashMap<TableName, i64> = HashMap::new();
    for table in &schema.tables {
        *family_bytes.entry(root_of(table)).or_default() += table.size_bytes.max(0);
    }
    let mut tables: Vec<&TableDef> = schema.tables.iter().collect();
    tables.sort_by_key(|t| Reverse(family_bytes.get(&root_of(t)).copied().unwrap_or(0)));

    let mut post = PostLoad::default();
    for table in tables {
        let lock = root_of(table);
        if let Some(key) = &table.primary_key_constraint {
            key_constraint(table, key, "PRIMARY KEY", &lock, &mut post);
        }
        for constraint in &table.constraints {
            if constraint.definition.starts_with("UNIQUE") {
                key_constraint(table, constraint, "UNIQUE", &lock, &mut post);
            } else {
                post.constraints
                    .push(add_constraint(table, constraint, &lock));
            }
        }
        for index in &table.indexes {
            post.indexes.push(Statement {
                object: format!("index {} on table {}", quote_ident(&index.name), table.name),
                sql: cascading_index_definition(&index.definition),
                table: Some(lock.clone()),
            });
        }
        for check in table.checks.iter().filter(|c| not_valid(c)) {
            post.constraints.push(add_constraint(table, check, &lock));
        }
    }
    for ty in &schema.types {
        let TypeKind::Domain { checks, .. } = &ty.kind else {
            continue;
        };
        for check in checks.iter().filter(|c| not_valid(c)) {
            post.constraints.push(Statement {
                object: format!(
                    "constraint {} on domain {}",
                    quote_ident(&check.name),
                    type_name(ty)
                ),
                sql: format!(
                    "ALTER DOMAIN {} ADD CONSTRAINT {} {}",
                    type_name(ty),
                    quote_ident(&check.name),
                    check.definition
                ),
                table: None,
            });
        }
    }
    post.sequences = schema.sequences.iter().map(set_value).collect();
    post
}

/// The root of each partition's tree, for partitions whose parent is in `schema`.
fn partition_roots(schema: &SourceSchema) -> HashMap<TableName, TableName> {
    let parents: HashMap<&TableName, &TableName> = schema
        .tables
        .iter()
        .filter_map(|t| t.partition_of.as_ref().map(|(parent, _)| (&t.name, parent)))
        .collect();
    let mut roots = HashMap::new();
    for &name in parents.keys() {
        let mut root = name;
        // A partition tree is a tree: the walk ends within as many steps as there are tables.
        for _ in 0..=parents.len() {
            match parents.get(root) {
                Some(parent) if schema.table(parent).is_some() => root = parent,
                _ => break,
            }
        }
        roots.insert(name.clone(), root.clone());
    }
    roots
}

/// A primary key or unique constraint: on an ordinary table, its index first and then the
/// constraint adopting it; on a partitioned one, the constraint alone.
fn key_constraint(
    table: &TableDef,
    constraint: &ConstraintDef,
    keyword: &str,
    lock: &TableName,
    post: &mut PostLoad,
) {
    let index = match (&constraint.index_definition, table.kind) {
        (Some(index), TableKind::Table) => index,
        _ => {
            post.constraints
                .push(add_constraint(table, constraint, lock));
            return;
        }
    };
    let name = quote_ident(&constraint.name);
    post.indexes.push(Statement {
        object: format!("index {name} on table {}", table.name),
        sql: index.clone(),
        table: Some(lock.clone()),
    });
    post.constraints.push(Statement {
        object: format!("constraint {name} on table {}", table.name),
        sql: format!(
            "ALTER TABLE {} ADD CONSTRAINT {name} {keyword} USING INDEX {name}{}",
            table.name,
            deferrable(&constraint.definition)
        ),
        table: Some(lock.clone()),
    });
}

/// `ALTER TABLE … ADD CONSTRAINT name <definition>`.
fn add_constraint(table: &TableDef, constraint: &ConstraintDef, lock: &TableName) -> Statement {
    let name = quote_ident(&constraint.name);
    Statement {
        object: format!("constraint {name} on table {}", table.name),
        sql: format!(
            "ALTER TABLE {} ADD CONSTRAINT {name} {}",
            table.name, constraint.definition
        ),
        table: Some(lock.clone()),
    }
}

/// The deferrability clause at the end of a constraint definition, for `USING INDEX`.
fn deferrable(definition: &str) -> &'static str {
    if definition.ends_with(" DEFERRABLE INITIALLY DEFERRED") {
        " DEFERRABLE INITIALLY DEFERRED"
    } else if definition.ends_with(" DEFERRABLE") {
        " DEFERRABLE"
    } else {
        ""
    }
}

fn not_valid(constraint: &ConstraintDef) -> bool {
    constraint.definition.ends_with(" NOT VALID")
}

/// `pg_get_indexdef` writes `ON ONLY` for a partitioned table's index, which creates it on
/// the parent alone; without `ONLY` it cascades to the partitions, which is what a freshly
/// created tree needs.
fn cascading_index_definition(definition: &str) -> String {
    let Some(rest) = definition
        .strip_prefix("CREATE UNIQUE INDEX ")
        .or_else(|| definition.strip_prefix("CREATE INDEX "))
    else {
        return definition.to_owned();
    };
    let head = definition.len() - rest.len() + identifier_len(rest);
    match definition.get(head..) {
        Some(tail) if tail.starts_with(" ON ONLY ") => {
            format!("{} ON {}", &definition[..head], &tail[" ON ONLY ".len()..])
        }
        _ => definition.to_owned(),
    }
}

/// The byte length of the identifier `text` starts with, as the server writes one: bare,
/// or double-quoted with `""` for a quote inside.
fn identifier_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'"') {
        return text.find(' ').unwrap_or(text.len());
    }
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            if bytes.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    text.len()
}

fn type_name(ty: &TypeDef) -> String {
    format!("{}.{}", quote_ident(&ty.schema), quote_ident(&ty.name))
}

fn create_type(ty: &TypeDef) -> Statement {
    let name = type_name(ty);
    let sql = match &ty.kind {
        TypeKind::Enum { labels } => {
            let labels: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
            format!("CREATE TYPE {name} AS ENUM ({})", labels.join(", "))
        }
        TypeKind::Domain {
            base_type_sql,
            not_null,
            default,
            checks,
        } => {
            let mut sql = format!("CREATE DOMAIN {name} AS {base_type_sql}");
            if let Some(default) = default {
                sql.push_str(&format!(" DEFAULT {default}"));
            }
            if *not_null {
                sql.push_str(" NOT NULL");
            }
            for check in checks.iter().filter(|c| !not_valid(c)) {
                sql.push_str(&format!(
                    " CONSTRAINT {} {}",
                    quote_ident(&check.name),
                    check.definition
                ));
            }
            sql
        }
        TypeKind::Composite { attributes } => {
            let attributes: Vec<String> = attributes
                .iter()
                .map(|(attribute, type_sql)| format!("{} {type_sql}", quote_ident(attribute)))
                .collect();
            format!("CREATE TYPE {name} AS ({})", attributes.join(", "))
        }
    };
    Statement {
        object: format!("type {name}"),
        sql,
        table: None,
    }
}

/// Statements that create `types` (in order, dependencies first) on a target that has
/// none of them, for a column the source added while streaming: each type's schema, the
/// type, then a domain's `NOT VALID` checks.
pub fn create_types_live(types: &[TypeDef]) -> Vec<String> {
    let mut out = Vec::new();
    for ty in types {
        out.push(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(&ty.schema)
        ));
        out.push(create_type(ty).sql);
        if let TypeKind::Domain { checks, .. } = &ty.kind {
            out.extend(checks.iter().filter(|c| not_valid(c)).map(|check| {
                format!(
                    "ALTER DOMAIN {} ADD CONSTRAINT {} {}",
                    type_name(ty),
                    quote_ident(&check.name),
                    check.definition
                )
            }));
        }
    }
    out
}

/// `ALTER TYPE … ADD VALUE` statements that give the enum `schema.name`, with labels
/// `target` on the target, the labels the source has (`source`, in sort order) at their
/// place: each after the one before it on the source, or before the first. Each must run
/// on its own, outside a transaction block (PostgreSQL before 12 refuses it inside one,
/// and later ones cannot use the label before it commits).
pub fn add_enum_labels(
    schema: &str,
    name: &str,
    source: &[String],
    target: &[String],
) -> Vec<String> {
    let type_sql = format!("{}.{}", quote_ident(schema), quote_ident(name));
    let mut present: Vec<&String> = target.iter().collect();
    let mut out = Vec::new();
    for (at, label) in source.iter().enumerate() {
        if present.contains(&label) {
            continue;
        }
        let place = match at.checked_sub(1).map(|i| &source[i]) {
            Some(before) if present.contains(&before) => {
                format!(" AFTER {}", quote_literal(before))
            }
            _ => match source[at + 1..].iter().find(|l| present.contains(l)) {
                Some(next) => format!(" BEFORE {}", quote_literal(next)),
                None => String::new(),
            },
        };
        out.push(format!(
            "ALTER TYPE {type_sql} ADD VALUE IF NOT EXISTS {}{place}",
            quote_literal(label)
        ));
        present.push(label);
    }
    out
}

/// `INCREMENT BY … CYCLE`: the options shared by `CREATE SEQUENCE` and identity columns.
fn sequence_options(sequence: &SequenceDef) -> String {
    format!(
        "INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
        sequence.increment,
        sequence.min,
        sequence.max,
        sequence.start,
        sequence.cache,
        if sequence.cycle { "CYCLE" } else { "NO CYCLE" }
    )
}

fn create_sequence(sequence: &SequenceDef) -> Statement {
    Statement {
        object: format!("sequence {}", sequence.name),
        sql: format!(
            "CREATE SEQUENCE {} AS {} {}",
            sequence.name,
            sequence.data_type,
            sequence_options(sequence)
        ),
        table: None,
    }
}

fn create_table(table: &TableDef, schema: &SourceSchema) -> Statement {
    let mut elements: Vec<String> = Vec::new();
    if table.partition_of.is_none() || table.attach {
        elements.extend(table.columns.iter().map(|c| column(table, c, schema)));
    }
    for check in table.checks.iter().filter(|c| !not_valid(c)) {
        elements.push(format!(
            "CONSTRAINT {} {}",
            quote_ident(&check.name),
            check.definition
        ));
    }
    let body = if elements.is_empty() {
        "()".to_owned()
    } else {
        format!("(\n    {}\n)", elements.join(",\n    "))
    };
    let mut sql = format!("CREATE TABLE {}", table.name);
    match &table.partition_of {
        Some((_, _)) if table.attach => sql.push_str(&format!(" {body}")),
        Some((parent, bound)) => {
            sql.push_str(&format!(" PARTITION OF {parent}"));
            if !elements.is_empty() {
                sql.push_str(&format!(" {body}"));
            }
            sql.push_str(&format!(" {bound}"));
        }
        None => sql.push_str(&format!(" {body}")),
    }
    if let Some(key) = &table.partition_key {
        sql.push_str(&format!(" PARTITION BY {key}"));
    }
    if let (Some((parent, bound)), true) = (&table.partition_of, table.attach) {
        sql.push_str(&format!(
            ";\nALTER TABLE {parent} ATTACH PARTITION {} {bound}",
            table.name
        ));
    }
    Statement {
        object: format!("table {}", table.name),
        sql,
        table: Some(table.name.clone()),
    }
}

/// One column definition: type, collation, generation, identity, default, NOT NULL.
fn column(table: &TableDef, column: &ColumnDef, schema: &SourceSchema) -> String {
    let mut sql = format!("{} {}", quote_ident(&column.name), column.type_sql);
    if let Some(collation) = &column.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(expression) = &column.generated {
        sql.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
    }
    if let Some(kind) = column.identity {
        let how = if kind == 'a' { "ALWAYS" } else { "BY DEFAULT" };
        sql.push_str(&format!(" GENERATED {how} AS IDENTITY"));
        let sequence = schema.sequences.iter().find(|s| {
            s.identity
                && s.owned_by
                    .as_ref()
                    .is_some_and(|(t, c)| t == &table.name && c == &column.name)
        });
        if let Some(sequence) = sequence {
            sql.push_str(&format!(" ({})", sequence_options(sequence)));
        }
    }
    if let Some(default) = &column.default {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    if column.not_null {
        sql.push_str(" NOT NULL");
    }
    sql
}

/// `SELECT setval(…)` to the source's value: by name, or for an identity column through
/// `pg_get_serial_sequence` (the target names that sequence itself).
fn set_value(sequence: &SequenceDef) -> Statement {
    let target = match (&sequence.owned_by, sequence.identity) {
        (Some((table, column)), true) => format!(
            "pg_get_serial_sequence({}, {})",
            quote_literal(&table.quoted()),
            quote_literal(column)
        ),
        _ => format!("{}::regclass", quote_literal(&sequence.name.quoted())),
    };
    Statement {
        object: format!("value of sequence {}", sequence.name),
        sql: format!(
            "SELECT setval({target}, {}, {})",
            sequence.last_value, sequence.is_called
        ),
        table: None,
    }
}

#[cfg(test)]
mod tests;
