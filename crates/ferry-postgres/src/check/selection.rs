//! The source checks of what the pipeline selects: which tables the patterns match (and
//! which patterns match nothing), whether each can be read and decoded, and what the
//! publication must become.
//!
//! The selection is resolved and the publication planned by the same functions the run's
//! setup uses (`selection::resolve`, `publication::plan`), so `ferry check` says exactly
//! what `ferry sync` will do: a table it would add, a publication it would refuse.

use ferry_core::{quote_ident, TableName};
use tokio_postgres::Client;

use super::report::{CheckItem, Side};
use super::source::SourceCheck;
use super::{list_names, sql_list};
use crate::catalog::{self, ServerInfo, TableInfo};
use crate::plugin::Plugin;
use crate::publication::{self, PublicationPlan};
use crate::selection::ResolvedSelection;

const SIDE: Side = Side::Source;

/// Checks the selection and the publication; returns the selected tables.
pub(super) async fn check(
    cfg: &SourceCheck<'_>,
    client: &Client,
    info: &ServerInfo,
    items: &mut Vec<CheckItem>,
) -> Result<Vec<TableInfo>, tokio_postgres::Error> {
    let selection = crate::selection::read_selection(client, info.version_num, cfg.tables).await?;
    check_patterns(&selection, items);
    let tables: Vec<TableInfo> = selection.tables.iter().map(|t| t.info.clone()).collect();
    check_tables(cfg, info, &tables, items);
    if cfg.logical_decoding && cfg.plugin == Plugin::Pgoutput && !tables.is_empty() {
        if let Some(name) = cfg.publication {
            let existing = catalog::publication(client, info.version_num, name).await?;
            let plan =
                publication::plan(name, info.version_num, existing.as_ref(), &selection, &[]);
            let owned = existing.as_ref().is_none_or(|p| p.owned);
            check_publication(info, &plan, owned, &tables, items);
        }
    }
    Ok(tables)
}

/// A pattern that matches nothing is most often a case-folding surprise: say so, with the
/// quoted form that would match.
fn check_patterns(selection: &ResolvedSelection, items: &mut Vec<CheckItem>) {
    for (pattern, suggestion) in &selection.unmatched {
        let item = CheckItem::warn(
            SIDE,
            "tables",
            format!("the tables pattern {pattern:?} matches no table"),
        );
        items.push(match suggestion {
            Some(quoted) => item
                .why("unquoted names fold to lower case, as in psql; a table with capitals or spaces needs quotes")
                .fix(format!("write it as {quoted} in [source] tables (in TOML: {:?})", quoted)),
            None => item
                .why("a pattern that matches nothing may be a typo; the tables it meant are not carried")
                .fix("list the tables with \\dt *.* in psql and correct the pattern, or remove it"),
        });
    }
}

fn check_tables(
    cfg: &SourceCheck<'_>,
    info: &ServerInfo,
    tables: &[TableInfo],
    items: &mut Vec<CheckItem>,
) {
    if tables.is_empty() {
        let patterns: Vec<String> = cfg.tables.include.iter().map(|p| p.to_string()).collect();
        items.push(
            CheckItem::fail(
                SIDE,
                "tables",
                format!(
                    "tables = {patterns:?} matches no table in database {:?}",
                    info.database
                ),
            )
            .why("there would be nothing to copy or stream")
            .fix("fix the patterns in [source] tables (unquoted names are lower-cased; quote mixed case: \"\\\"Sales\\\".*\"); list tables with \\dt *.* in psql"),
        );
        return;
    }
    items.push(CheckItem::pass(
        SIDE,
        "tables",
        format!("{} tables selected", tables.len()),
    ));
    let unreadable: Vec<&TableName> = tables
        .iter()
        .filter(|t| !t.can_select)
        .map(|t| &t.name)
        .collect();
    if unreadable.is_empty() {
        items.push(CheckItem::pass(
            SIDE,
            "select",
            "SELECT is granted on every selected table",
        ));
    } else {
        let list = sql_list(&unreadable);
        items.push(
            CheckItem::fail(
                SIDE,
                "select",
                format!(
                    "role {:?} cannot SELECT from {}",
                    info.user,
                    list_names(&unreadable)
                ),
            )
            .why("the full copy reads every table")
            .fix(format!(
                "GRANT SELECT ON TABLE {list} TO {};",
                quote_ident(&info.user)
            )),
        );
    }
    if !cfg.logical_decoding {
        return;
    }
    for table in tables.iter().filter(|t| t.unlogged) {
        items.push(
            CheckItem::fail(SIDE, "unlogged", format!("table {} is UNLOGGED", table.name))
                .why("its changes are never written to the WAL, so no output plugin can send them: the target would keep the copy and miss every later change")
                .fix(format!(
                    "ALTER TABLE {0} SET LOGGED;\nor leave it out of the pipeline: exclude = ['{0}']",
                    table.name.quoted()
                )),
        );
    }
    for table in tables
        .iter()
        .filter(|t| t.relkind == 'r' && !t.has_row_identity())
    {
        items.push(keyless_table(cfg.plugin, table));
    }
}

fn keyless_table(plugin: Plugin, table: &TableInfo) -> CheckItem {
    use catalog::ReplicaIdentity::*;
    let identity = match table.replica_identity {
        Default => "no primary key and REPLICA IDENTITY DEFAULT",
        Nothing => "REPLICA IDENTITY NOTHING",
        Index => "REPLICA IDENTITY USING INDEX on an index that no longer exists",
        Full => "REPLICA IDENTITY FULL",
    };
    let why = match plugin {
        Plugin::Pgoutput => "once the table is in the publication, every UPDATE and DELETE on it fails on the source (\"cannot update table because it does not have a replica identity and publishes updates\")",
        Plugin::Wal2json => "wal2json sends no old values for its UPDATEs and DELETEs, so deletes cannot be carried and updates cannot find their row in the target",
        Plugin::Decoderbufs => "decoderbufs sends no old values for its UPDATEs and DELETEs, so Ferry cannot find the row to change in the target",
    };
    CheckItem::fail(
        SIDE,
        "replica_identity",
        format!("table {} has {identity}", table.name),
    )
    .why(why)
    .fix(format!(
        "ALTER TABLE {} REPLICA IDENTITY FULL;\nor give it a primary key: ALTER TABLE {} ADD PRIMARY KEY (<columns>);",
        table.name, table.name
    ))
}

/// What the run's setup would do to the publication, as check items: a refusal fails, a
/// change this role may make is a warning that says sync makes it, one it may not make
/// fails with the SQL for someone who may.
fn check_publication(
    info: &ServerInfo,
    plan: &PublicationPlan,
    owns_publication: bool,
    tables: &[TableInfo],
    items: &mut Vec<CheckItem>,
) {
    let name = &plan.name;
    let quoted = quote_ident(name);
    for refusal in &plan.refusals {
        items.push(
            CheckItem::fail(SIDE, "publication", refusal.problem.clone())
                .why("sync refuses to start with it")
                .fix(refusal.fix.clone()),
        );
    }
    if !plan.refusals.is_empty() {
        return;
    }
    let added: Vec<&TableName> = plan.add.iter().map(|m| &m.table).collect();
    let owns_added = added
        .iter()
        .all(|a| tables.iter().any(|t| &t.name == *a && t.owned));
    if plan.create {
        if info.is_superuser || (info.can_create_in_database && owns_added) {
            items.push(CheckItem::pass(
                SIDE,
                "publication",
                format!("publication {name:?} does not exist yet; sync creates it"),
            ));
        } else {
            items.push(
                CheckItem::fail(
                    SIDE,
                    "publication",
                    format!("publication {name:?} does not exist, and role {:?} cannot create it", info.user),
                )
                .why("creating a publication FOR TABLE needs CREATE on the database and ownership of each table")
                .fix(format!("as the tables' owner or a superuser:\n{};", plan.statements().join(";\n"))),
            );
        }
        return;
    }
    if !plan.add.is_empty() {
        // Adding a table to a publication takes ownership of both (or superuser).
        if info.is_superuser || (owns_publication && owns_added) {
            items.push(
                CheckItem::warn(
                    SIDE,
                    "publication",
                    format!(
                        "publication {name:?} lacks {}; sync adds them",
                        list_names(&added)
                    ),
                )
                .why("a table outside the publication sends no changes"),
            );
        } else {
            items.push(
                CheckItem::fail(
                    SIDE,
                    "publication",
                    format!("publication {name:?} lacks {}", list_names(&added)),
                )
                .why("a table outside the publication sends no changes, and this role may not add it")
                .fix(format!(
                    "as the publication's owner:\nALTER PUBLICATION {quoted} ADD TABLE {};",
                    plan.add.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
                )),
            );
        }
        return;
    }
    let others = if plan.publishes_others {
        "; it publishes other tables too, whose changes sync ignores"
    } else {
        ""
    };
    items.push(CheckItem::pass(
        SIDE,
        "publication",
        format!("publication {name:?} covers every selected table{others}"),
    ));
}
