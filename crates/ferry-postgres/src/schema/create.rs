//! Applying a [`SourceSchema`] to the target: [`prepare_target`] before the load,
//! [`finish_target`] after it.
//!
//! ```text
//!  prepare_target (one transaction):  which tables exist? ─► refuse / TRUNCATE / keep
//!      ─► which schemas, types, sequences exist? ─► pre-load DDL for the missing ones
//!  load (elsewhere)
//!  finish_target (N connections):     indexes (shared queue) ─► constraints ─► setval
//! ```
//!
//! Preparation is all or nothing: the existence checks, the TRUNCATE and every CREATE run in
//! one target transaction, so a failing statement leaves no half-created schema behind.
//! Objects that already exist are not re-created (schemas, types and sequences are looked
//! up in the catalog, since `CREATE TYPE` has no `IF NOT EXISTS` and `CREATE SCHEMA IF NOT
//! EXISTS` still demands the CREATE privilege), and existing tables get no post-load steps:
//! Ferry does not add indexes or keys to tables it did not create. Sequences of existing
//! tables are not set either, since that could move a target sequence backwards.

mod error;
mod finish;

use std::collections::{HashMap, HashSet};

use ferry_core::TableName;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

pub use error::SchemaError;
pub use finish::finish_target;

use super::ddl::pre_load;
use super::model::{SourceSchema, TypeDef, TypeKind};

/// What to do with a selected table that already exists on the target and has rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    /// Stop with [`SchemaError::TargetNotEmpty`].
    Error,
    /// Empty it (one `TRUNCATE` of all such tables) and load into it.
    Truncate,
    /// Keep its rows and load into it.
    Append,
}

/// What [`prepare_target`] found and did.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Tables this call created, parents before partitions.
    pub created: Vec<TableName>,
    /// Selected tables that already existed and were kept.
    pub existing: Vec<TableName>,
    /// Existing tables that had rows and were truncated (`OnExisting::Truncate`).
    pub truncated: Vec<TableName>,
    created_sequences: HashSet<TableName>,
    created_types: HashSet<(String, String)>,
}

impl Prepared {
    /// The part of `schema` this call created: its tables, their sequences and the types
    /// made here. Its `ddl::post_load` is the work left for [`finish_target`].
    pub fn filter(&self, schema: &SourceSchema) -> SourceSchema {
        let created: HashSet<&TableName> = self.created.iter().collect();
        SourceSchema {
            schemas: Vec::new(),
            types: schema
                .types
                .iter()
                .filter(|t| {
                    self.created_types
                        .contains(&(t.schema.clone(), t.name.clone()))
                })
                .cloned()
                .collect(),
            sequences: schema
                .sequences
                .iter()
                .filter(|s| {
                    if s.identity {
                        s.owned_by
                            .as_ref()
                            .is_some_and(|(t, _)| created.contains(t))
                    } else {
                        self.created_sequences.contains(&s.name)
                    }
                })
                .cloned()
                .collect(),
            tables: schema
                .tables
                .iter()
                .filter(|t| created.contains(&t.name))
                .cloned()
                .collect(),
        }
    }
}

/// Makes the target ready for the load: decides about existing tables per `on_existing`
/// and creates everything of `schema` that is missing, in one transaction (so `client`
/// must not be inside one already).
pub async fn prepare_target(
    client: &Client,
    schema: &SourceSchema,
    on_existing: OnExisting,
) -> Result<Prepared, SchemaError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(target_error("starting the schema transaction"))?;
    match prepare_in_transaction(client, schema, on_existing).await {
        Ok(prepared) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(target_error("committing the schema transaction"))?;
            tracing::info!(
                created = prepared.created.len(),
                existing = prepared.existing.len(),
                truncated = prepared.truncated.len(),
                "target schema ready"
            );
            Ok(prepared)
        }
        Err(error) => {
            if let Err(rollback) = client.batch_execute("ROLLBACK").await {
                tracing::debug!(error = %rollback, "rollback of the schema transaction failed");
            }
            Err(error)
        }
    }
}

async fn prepare_in_transaction(
    client: &Client,
    schema: &SourceSchema,
    on_existing: OnExisting,
) -> Result<Prepared, SchemaError> {
    // The DDL is fully qualified; an empty search path makes sure nothing resolves
    // elsewhere (as pg_dump's output does). Local to this transaction.
    client
        .batch_execute("SELECT set_config('search_path', '', true)")
        .await
        .map_err(target_error("setting search_path"))?;

    let table_names: Vec<&TableName> = schema.tables.iter().map(|t| &t.name).collect();
    let relations = existing_relations(client, &table_names).await?;
    let mut prepared = Prepared::default();
    let mut non_empty = Vec::new();
    for table in &schema.tables {
        match relations.get(&table.name).map(String::as_str) {
            Some("r") => {
                if has_rows(client, &table.name).await? {
                    non_empty.push(table.name.clone());
                }
                prepared.existing.push(table.name.clone());
            }
            Some("p") => prepared.existing.push(table.name.clone()),
            // Missing, or another kind of relation: CREATE TABLE says which.
            _ => prepared.created.push(table.name.clone()),
        }
    }
    match (on_existing, non_empty.first()) {
        (OnExisting::Error, Some(table)) => {
            return Err(SchemaError::TargetNotEmpty {
                table: table.clone(),
            })
        }
        (OnExisting::Truncate, Some(_)) => {
            truncate(client, &non_empty).await?;
            prepared.truncated = non_empty;
        }
        _ => {}
    }

    let missing_schemas = missing_schemas(client, &schema.schemas).await?;
    let missing_types = missing_types(client, &schema.types).await?;
    let sequence_names: Vec<&TableName> = schema
        .sequences
        .iter()
        .filter(|s| !s.identity)
        .map(|s| &s.name)
        .collect();
    let sequences = existing_relations(client, &sequence_names).await?;
    prepared.created_sequences = sequence_names
        .into_iter()
        .filter(|name| sequences.get(*name).map(String::as_str) != Some("S"))
        .cloned()
        .collect();
    prepared.created_types = missing_types;

    let mut to_create = prepared.filter(schema);
    to_create.schemas = missing_schemas;
    for statement in pre_load(&to_create) {
        client
            .batch_execute(&statement.sql)
            .await
            .map_err(|source| {
                SchemaError::create(
                    &statement.object,
                    "nothing was created (the schema transaction was rolled back)",
                    source,
                )
            })?;
        tracing::debug!(object = %statement.object, "created");
    }
    Ok(prepared)
}

/// `map_err` for statements on the target outside the schema DDL.
fn target_error(what: &str) -> impl Fn(tokio_postgres::Error) -> SchemaError + '_ {
    move |source| SchemaError::Target {
        what: what.to_owned(),
        fix: "nothing was changed; run again once the target is reachable".to_owned(),
        source,
    }
}

/// The `relkind` of each of `names` that exists on the target as some relation.
async fn existing_relations(
    client: &Client,
    names: &[&TableName],
) -> Result<HashMap<TableName, String>, SchemaError> {
    let schemas: Vec<&str> = names.iter().map(|n| n.schema.as_str()).collect();
    let relations: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text
             FROM unnest($1::text[], $2::text[]) AS x(s, r)
             JOIN pg_namespace n ON n.nspname = x.s
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.r",
            &[&schemas, &relations],
        )
        .await
        .map_err(target_error("looking up existing tables and sequences"))?;
    let mut found = HashMap::new();
    for row in &rows {
        let read = |i| -> Result<String, SchemaError> {
            row.try_get(i)
                .map_err(target_error("looking up existing tables and sequences"))
        };
        found.insert(TableName::new(read(0)?, read(1)?), read(2)?);
    }
    Ok(found)
}

async fn has_rows(client: &Client, table: &TableName) -> Result<bool, SchemaError> {
    let what = format!("checking whether table {table} has rows");
    client
        .query_one(
            &format!("SELECT EXISTS (SELECT 1 FROM {})", table.quoted()),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|source| SchemaError::Target {
            fix: if source.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                format!("grant the target role SELECT on {table}")
            } else {
                "nothing was changed".to_owned()
            },
            what,
            source,
        })
}

async fn truncate(client: &Client, tables: &[TableName]) -> Result<(), SchemaError> {
    let list: Vec<String> = tables.iter().map(TableName::quoted).collect();
    let list = list.join(", ");
    client
        .batch_execute(&format!("TRUNCATE {list}"))
        .await
        .map_err(|source| SchemaError::Target {
            what: format!("TRUNCATE {list}"),
            fix: match source.code() {
                Some(c) if *c == SqlState::FEATURE_NOT_SUPPORTED => format!(
                    "a foreign key of another table references {list}: empty those tables \
                     yourself, or drop the foreign key"
                ),
                Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                    format!("grant the target role TRUNCATE on {list}, or empty them yourself")
                }
                _ => "nothing was changed".to_owned(),
            },
            source,
        })
}

/// Schemas of `names` that the target lacks.
async fn missing_schemas(client: &Client, names: &[String]) -> Result<Vec<String>, SchemaError> {
    let what = "looking up existing schemas";
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(target_error(what))?;
    let mut existing = HashSet::new();
    for row in &rows {
        existing.insert(row.try_get::<_, String>(0).map_err(target_error(what))?);
    }
    Ok(names
        .iter()
        .filter(|n| !existing.contains(*n))
        .cloned()
        .collect())
}

/// Types of `types` that the target lacks, as (schema, name). A type that exists must be of
/// the same kind, and an enum must have every source label.
async fn missing_types(
    client: &Client,
    types: &[TypeDef],
) -> Result<HashSet<(String, String)>, SchemaError> {
    let what = "looking up existing types";
    let schemas: Vec<&str> = types.iter().map(|t| t.schema.as_str()).collect();
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, t.typname::text, t.typtype::text,
                    COALESCE((SELECT r.relkind::text FROM pg_class r WHERE r.oid = t.typrelid), ''),
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                          WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
             FROM unnest($1::text[], $2::text[]) AS x(s, r)
             JOIN pg_namespace n ON n.nspname = x.s
             JOIN pg_type t ON t.typnamespace = n.oid AND t.typname = x.r",
            &[&schemas, &names],
        )
        .await
        .map_err(target_error(what))?;
    let mut found: HashMap<(String, String), (String, Vec<String>)> = HashMap::new();
    for row in &rows {
        let schema: String = row.try_get(0).map_err(target_error(what))?;
        let name: String = row.try_get(1).map_err(target_error(what))?;
        let typtype: String = row.try_get(2).map_err(target_error(what))?;
        let relkind: String = row.try_get(3).map_err(target_error(what))?;
        let labels: Vec<String> = row.try_get(4).map_err(target_error(what))?;
        let kind = match (typtype.as_str(), relkind.as_str()) {
            ("e", _) => "an enum",
            ("d", _) => "a domain",
            ("c", "c") => "a composite type",
            ("c", _) => "the row type of a table or view",
            ("r", _) => "a range type",
            ("m", _) => "a multirange type",
            ("p", _) => "a pseudo-type",
            _ => "a base type",
        };
        found.insert((schema, name), (kind.to_owned(), labels));
    }
    let mut missing = HashSet::new();
    for ty in types {
        let key = (ty.schema.clone(), ty.name.clone());
        let Some((found_kind, found_labels)) = found.get(&key) else {
            missing.insert(key);
            continue;
        };
        let type_name = format!(
            "{}.{}",
            ferry_core::quote_ident(&ty.schema),
            ferry_core::quote_ident(&ty.name)
        );
        let expected = match &ty.kind {
            TypeKind::Enum { .. } => "an enum",
            TypeKind::Domain { .. } => "a domain",
            TypeKind::Composite { .. } => "a composite type",
        };
        if found_kind != expected {
            return Err(SchemaError::TypeMismatch {
                type_name,
                expected: expected.to_owned(),
                found: found_kind.clone(),
            });
        }
        if let TypeKind::Enum { labels } = &ty.kind {
            let absent: Vec<String> = labels
                .iter()
                .filter(|l| !found_labels.contains(l))
                .map(|l| ferry_core::quote_literal(l))
                .collect();
            if !absent.is_empty() {
                return Err(SchemaError::EnumLabelsMissing {
                    type_name,
                    missing: absent.join(", "),
                });
            }
        }
    }
    Ok(missing)
}
