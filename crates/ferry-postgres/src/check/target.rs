//! Preflight checks of the target: can Ferry write what the source holds?
//!
//! The target is compared with the selected source tables: existing tables must accept
//! INSERT, UPDATE, DELETE and TRUNCATE from this role and have compatible columns; missing
//! ones must be creatable; the progress schema must exist or be creatable.

use std::collections::{BTreeSet, HashMap};

use ferry_core::{quote_ident, TableName};
use ferry_pgwire::ConnParams;
use tokio_postgres::Client;

use super::report::{CheckItem, Side};
use super::source::SourceFindings;
use super::{connect_failure, error_text, list_names, sql_list};
use crate::catalog::{self, ColumnInfo};

const SIDE: Side = Side::Target;

/// What the target check needs to know.
#[derive(Debug, Clone, Copy)]
pub struct TargetCheck<'a> {
    pub conn: &'a ConnParams,
    /// Where `ferry.progress` lives.
    pub progress_schema: &'a str,
}

pub async fn check_target(cfg: TargetCheck<'_>, source: &SourceFindings) -> Vec<CheckItem> {
    let mut items = Vec::new();
    let client = match ferry_pgwire::connect_sql(cfg.conn).await {
        Ok(client) => client,
        Err(e) => {
            items.push(connect_failure(SIDE, cfg.conn, &e));
            return items;
        }
    };
    if let Err(e) = check_with_client(&cfg, &client, source, &mut items).await {
        items.push(
            CheckItem::fail(
                SIDE,
                "catalog",
                format!("reading the target catalog failed: {}", error_text(&e)),
            )
            .why("the remaining target checks could not run"),
        );
    }
    items
}

async fn check_with_client(
    cfg: &TargetCheck<'_>,
    client: &Client,
    source: &SourceFindings,
    items: &mut Vec<CheckItem>,
) -> Result<(), tokio_postgres::Error> {
    let info = catalog::server_info(client).await?;
    let role = quote_ident(&info.user);
    items.push(CheckItem::pass(
        SIDE,
        "connect",
        format!(
            "connected to database {:?} as {:?} (PostgreSQL {})",
            info.database, info.user, info.version
        ),
    ));
    let names: Vec<TableName> = source.tables.iter().map(|t| t.name.clone()).collect();
    let existing = catalog::existing_tables(client, &names).await?;

    let lacking: Vec<&TableName> = existing
        .iter()
        .filter(|t| !(t.can_insert && t.can_update && t.can_delete && t.can_truncate))
        .map(|t| &t.name)
        .collect();
    if !existing.is_empty() && lacking.is_empty() {
        items.push(CheckItem::pass(
            SIDE,
            "privileges",
            format!(
                "INSERT, UPDATE, DELETE and TRUNCATE granted on the {} existing tables",
                existing.len()
            ),
        ));
    } else if !lacking.is_empty() {
        let list = sql_list(&lacking);
        items.push(
            CheckItem::fail(
                SIDE,
                "privileges",
                format!(
                    "role {:?} lacks INSERT, UPDATE, DELETE or TRUNCATE on {}",
                    info.user,
                    list_names(&lacking)
                ),
            )
            .why("applying changes writes every kind of statement")
            .fix(format!(
                "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON TABLE {list} TO {role};"
            )),
        );
    }

    let existing_names: BTreeSet<&TableName> = existing.iter().map(|t| &t.name).collect();
    let missing: Vec<&TableName> = names
        .iter()
        .filter(|n| !existing_names.contains(n))
        .collect();
    let mut schemas: BTreeSet<String> = missing.iter().map(|t| t.schema.clone()).collect();
    schemas.insert(cfg.progress_schema.to_owned());
    let schema_rights: HashMap<String, (bool, bool)> =
        catalog::schema_privileges(client, &schemas.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|(name, exists, create)| (name, (exists, create)))
            .collect();
    let can_create_in = |schema: &str| match schema_rights.get(schema) {
        Some((true, create)) => *create,
        _ => info.can_create_in_database,
    };
    if !missing.is_empty() {
        let blocked: BTreeSet<&str> = missing
            .iter()
            .map(|t| t.schema.as_str())
            .filter(|s| !can_create_in(s))
            .collect();
        if blocked.is_empty() {
            items.push(CheckItem::pass(
                SIDE,
                "create",
                format!(
                    "{} tables are missing and will be created from the source schema",
                    missing.len()
                ),
            ));
        } else {
            let fixes: Vec<String> = blocked
                .iter()
                .map(|s| match schema_rights.get(*s) {
                    Some((true, _)) => {
                        format!("GRANT CREATE ON SCHEMA {} TO {role};", quote_ident(s))
                    }
                    _ => format!(
                        "GRANT CREATE ON DATABASE {} TO {role};",
                        quote_ident(&info.database)
                    ),
                })
                .collect();
            items.push(
                CheckItem::fail(
                    SIDE,
                    "create",
                    format!(
                        "role {:?} cannot create the missing tables in schema {}",
                        info.user,
                        blocked
                            .iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .why("tables missing on the target are created from the source schema")
                .fix(fixes.join("\n")),
            );
        }
    }

    check_columns(client, source, &existing, items).await?;

    if can_create_in(cfg.progress_schema)
        || schema_rights.get(cfg.progress_schema).is_some_and(|r| r.0)
    {
        items.push(CheckItem::pass(
            SIDE,
            "progress",
            format!(
                "progress schema {:?} exists or can be created",
                cfg.progress_schema
            ),
        ));
    } else {
        items.push(
            CheckItem::fail(
                SIDE,
                "progress",
                format!(
                    "progress schema {:?} does not exist and role {:?} cannot create it",
                    cfg.progress_schema, info.user
                ),
            )
            .why("Ferry stores its position in the same transaction as the data, in this schema")
            .fix(format!(
                "CREATE SCHEMA {} AUTHORIZATION {role};",
                quote_ident(cfg.progress_schema)
            )),
        );
    }
    Ok(())
}

async fn check_columns(
    client: &Client,
    source: &SourceFindings,
    existing: &[catalog::TargetTableInfo],
    items: &mut Vec<CheckItem>,
) -> Result<(), tokio_postgres::Error> {
    if existing.is_empty() {
        return Ok(());
    }
    let target_oids: Vec<u32> = existing.iter().map(|t| t.oid).collect();
    let target_columns = catalog::columns(client, &target_oids).await?;
    let mut all_compatible = true;
    for table in existing {
        let Some(src) = source.tables.iter().find(|t| t.name == table.name) else {
            continue;
        };
        let src_cols: Vec<&ColumnInfo> = source
            .columns
            .iter()
            .filter(|c| c.table_oid == src.oid)
            .collect();
        let dst_cols: Vec<&ColumnInfo> = target_columns
            .iter()
            .filter(|c| c.table_oid == table.oid)
            .collect();
        for col in &src_cols {
            match dst_cols.iter().find(|d| d.name == col.name) {
                None => {
                    all_compatible = false;
                    items.push(
                        CheckItem::fail(
                            SIDE,
                            "columns",
                            format!("table {} has no column {:?}", table.name, col.name),
                        )
                        .why("every source column is written to the target")
                        .fix(format!(
                            "ALTER TABLE {} ADD COLUMN {} {};",
                            table.name,
                            quote_ident(&col.name),
                            col.type_name
                        )),
                    );
                }
                Some(dst) if dst.type_name != col.type_name => {
                    all_compatible = false;
                    items.push(
                        CheckItem::warn(
                            SIDE,
                            "columns",
                            format!(
                                "column {:?} of {} is {} on the source but {} on the target",
                                col.name, table.name, col.type_name, dst.type_name
                            ),
                        )
                        .why("values pass through the target type's input function; they may be rejected or changed")
                        .fix(format!(
                            "ALTER TABLE {} ALTER COLUMN {} TYPE {};",
                            table.name,
                            quote_ident(&col.name),
                            col.type_name
                        )),
                    );
                }
                Some(_) => {}
            }
        }
        for dst in dst_cols.iter().filter(|d| d.not_null && !d.has_default) {
            if !src_cols.iter().any(|c| c.name == dst.name) {
                all_compatible = false;
                items.push(
                    CheckItem::fail(
                        SIDE,
                        "columns",
                        format!("table {} has column {:?}, NOT NULL without a default, that the source lacks", table.name, dst.name),
                    )
                    .why("rows from the source carry no value for it, so every insert would fail")
                    .fix(format!(
                        "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL;   -- or SET DEFAULT …",
                        table.name,
                        quote_ident(&dst.name)
                    )),
                );
            }
        }
    }
    if all_compatible {
        items.push(CheckItem::pass(
            SIDE,
            "columns",
            format!(
                "columns of the {} existing tables match the source",
                existing.len()
            ),
        ));
    }
    Ok(())
}
