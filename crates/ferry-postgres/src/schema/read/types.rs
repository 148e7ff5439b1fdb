//! The user types selected columns use, with everything they are built from, dependencies
//! first: element types of arrays, base types of domains and attribute types of composite
//! types, recursively.
//!
//! Only enums, domains and standalone composite types are recorded: those Ferry can
//! re-create from the catalog alone. Built-in types (oid below `FirstNormalObjectId`) exist
//! everywhere; ranges, multiranges, base types of extensions and table row types are left
//! out, so the target either has them already or fails to create the table that uses one,
//! with an error naming that table (see `create::SchemaError::Create`).

use std::collections::{HashMap, HashSet};

use tokio_postgres::Client;

use super::get;
use crate::schema::create::SchemaError;
use crate::schema::model::{ConstraintDef, TypeDef, TypeKind, FIRST_NORMAL_OID};

/// A user type as `pg_type` describes it, with the oids it is built from.
struct TypeInfo {
    schema: String,
    name: String,
    /// What to create, or `None` for arrays and types Ferry does not create.
    kind: Option<TypeKind>,
    depends_on: Vec<u32>,
}

/// The types behind `column_types` (oids, repeated or built-in ones allowed) that need
/// creating on the target, each after the types it uses.
pub(super) async fn read_types(
    client: &Client,
    column_types: &[u32],
) -> Result<Vec<TypeDef>, SchemaError> {
    let mut infos: HashMap<u32, TypeInfo> = HashMap::new();
    let mut frontier: Vec<u32> = user_oids(column_types.iter().copied(), &infos);
    while !frontier.is_empty() {
        for (oid, info) in read_batch(client, &frontier).await? {
            infos.insert(oid, info);
        }
        let next = infos
            .values()
            .flat_map(|i| i.depends_on.iter().copied())
            .collect::<Vec<_>>();
        frontier = user_oids(next.into_iter(), &infos);
    }

    // Depth first from each column type: a type is emitted after what it depends on.
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    for &oid in column_types {
        visit(oid, &infos, &mut visited, &mut order);
    }
    Ok(order
        .into_iter()
        .filter_map(|oid| infos.remove(&oid))
        .filter_map(|info| {
            info.kind.map(|kind| TypeDef {
                schema: info.schema,
                name: info.name,
                kind,
            })
        })
        .collect())
}

/// User type oids among `oids` not read yet, without repeats.
fn user_oids(oids: impl Iterator<Item = u32>, known: &HashMap<u32, TypeInfo>) -> Vec<u32> {
    let mut seen = HashSet::new();
    oids.filter(|&oid| oid >= FIRST_NORMAL_OID && !known.contains_key(&oid) && seen.insert(oid))
        .collect()
}

fn visit(
    oid: u32,
    infos: &HashMap<u32, TypeInfo>,
    visited: &mut HashSet<u32>,
    order: &mut Vec<u32>,
) {
    let Some(info) = infos.get(&oid) else { return };
    if !visited.insert(oid) {
        return;
    }
    for &dependency in &info.depends_on {
        visit(dependency, infos, visited, order);
    }
    order.push(oid);
}

/// Reads the types `oids` and what each is built from.
async fn read_batch(client: &Client, oids: &[u32]) -> Result<Vec<(u32, TypeInfo)>, SchemaError> {
    let what = "the types of the selected columns";
    // typtype: e enum, d domain, c composite (standalone when its relation has relkind c),
    // b base (an array when typelem is set and typlen is -1); the domain's base type and
    // default come deparsed; composite attributes come as name, type pairs.
    let rows = client
        .query(
            "SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text,
                    t.typelem, t.typlen, t.typbasetype, t.typnotnull,
                    CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
                    COALESCE(pg_get_expr(t.typdefaultbin, 0), t.typdefault),
                    COALESCE((SELECT r.relkind::text FROM pg_class r WHERE r.oid = t.typrelid), ''),
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum),
                    ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum),
                    ARRAY(SELECT a.atttypid FROM pg_attribute a
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum),
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                          WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let oid: u32 = get(row, 0, what)?;
        let typtype: String = get(row, 3, what)?;
        let element: u32 = get(row, 4, what)?;
        let length: i16 = get(row, 5, what)?;
        let base: u32 = get(row, 6, what)?;
        let relkind: String = get(row, 10, what)?;
        let (kind, depends_on) = match typtype.as_str() {
            "e" => (
                Some(TypeKind::Enum {
                    labels: get(row, 14, what)?,
                }),
                Vec::new(),
            ),
            "d" => (
                Some(TypeKind::Domain {
                    base_type_sql: get::<Option<String>>(row, 8, what)?.unwrap_or_default(),
                    not_null: get(row, 7, what)?,
                    default: get(row, 9, what)?,
                    checks: domain_checks(client, oid).await?,
                }),
                vec![base],
            ),
            "c" if relkind == "c" => {
                let names: Vec<String> = get(row, 11, what)?;
                let types: Vec<String> = get(row, 12, what)?;
                (
                    Some(TypeKind::Composite {
                        attributes: names.into_iter().zip(types).collect(),
                    }),
                    get(row, 13, what)?,
                )
            }
            "b" if element != 0 && length == -1 => (None, vec![element]),
            _ => (None, Vec::new()),
        };
        let info = TypeInfo {
            schema: get(row, 1, what)?,
            name: get(row, 2, what)?,
            kind,
            depends_on,
        };
        out.push((oid, info));
    }
    Ok(out)
}

/// The CHECK constraints of domain `oid`, by name.
async fn domain_checks(client: &Client, oid: u32) -> Result<Vec<ConstraintDef>, SchemaError> {
    let what = "the constraints of a domain";
    let rows = client
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE contypid = $1 AND contype = 'c' ORDER BY conname",
            &[&oid],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    rows.iter()
        .map(|row| {
            Ok(ConstraintDef {
                name: get(row, 0, what)?,
                definition: get(row, 1, what)?,
                index_definition: None,
            })
        })
        .collect()
}
