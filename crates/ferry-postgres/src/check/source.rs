//! Preflight checks of the source: can Ferry decode this database's changes?
//!
//! Each step reads the catalog or tries the real thing (a replication connection, a
//! TEMPORARY slot with the chosen plugin) and turns what it finds into [`CheckItem`]s that
//! name the object and the fix. Nothing persistent is changed: the test slot is temporary and
//! dropped before the connection closes.

use std::collections::HashMap;
use std::time::Duration;

use ferry_core::{quote_ident, quote_literal, TableName};
use ferry_pgwire::{ConnParams, ReplicationClient, SlotOptions, SnapshotAction};
use tokio_postgres::Client;

use super::report::{CheckItem, Side};
use super::{connect_failure, error_text};
use crate::catalog::{self, ColumnInfo, ServerInfo, TableInfo};
use crate::plugin::Plugin;
use crate::selection::TableSelection;
use crate::source::timestamps::{self, TimestampTable};

const SIDE: Side = Side::Source;

/// How long the test slot may wait for running transactions before the check gives up.
const TEST_SLOT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the source check needs to know.
#[derive(Debug, Clone, Copy)]
pub struct SourceCheck<'a> {
    pub conn: &'a ConnParams,
    pub plugin: Plugin,
    pub slot: &'a str,
    /// The publication (pgoutput only).
    pub publication: Option<&'a str>,
    pub tables: &'a TableSelection,
    /// Whether the pipeline reads a replication slot (every mode but timestamp polling).
    pub logical_decoding: bool,
    /// Connections the full copy opens in parallel.
    pub snapshot_workers: u32,
    /// Set in timestamp mode: how tables are polled.
    pub timestamp: Option<TimestampCheck<'a>>,
}

/// What the timestamp-mode checks need.
#[derive(Debug, Clone, Copy)]
pub struct TimestampCheck<'a> {
    pub default_column: &'a str,
    pub columns: &'a HashMap<TableName, String>,
    pub reconcile_deletes: bool,
}

/// The items, plus what the target check compares against.
#[derive(Debug, Default)]
pub struct SourceFindings {
    pub items: Vec<CheckItem>,
    pub tables: Vec<TableInfo>,
    pub columns: Vec<ColumnInfo>,
}

pub async fn check_source(cfg: SourceCheck<'_>) -> SourceFindings {
    let mut out = SourceFindings::default();
    let client = match ferry_pgwire::connect_sql(cfg.conn).await {
        Ok(client) => client,
        Err(e) => {
            out.items.push(connect_failure(SIDE, cfg.conn, &e));
            return out;
        }
    };
    if let Err(e) = check_with_client(&cfg, &client, &mut out).await {
        out.items.push(
            CheckItem::fail(
                SIDE,
                "catalog",
                format!("reading the source catalog failed: {}", error_text(&e)),
            )
            .why("the remaining source checks could not run")
            .fix("grant the role access to pg_catalog views (it normally has it) and retry"),
        );
    }
    out
}

async fn check_with_client(
    cfg: &SourceCheck<'_>,
    client: &Client,
    out: &mut SourceFindings,
) -> Result<(), tokio_postgres::Error> {
    let info = catalog::server_info(client).await?;
    out.items.push(CheckItem::pass(
        SIDE,
        "connect",
        format!(
            "connected to database {:?} as {:?} (PostgreSQL {})",
            info.database, info.user, info.version
        ),
    ));
    check_connections(client, &info, cfg.snapshot_workers, &mut out.items).await?;
    if cfg.logical_decoding {
        check_version(cfg.plugin, &info, &mut out.items);
        let logical = check_wal_level(&info, &mut out.items);
        check_role(&info, &mut out.items);
        let slot = catalog::slot(client, info.version_num, cfg.slot).await?;
        check_capacity(client, &info, slot.is_some(), &mut out.items).await?;
        check_slot(cfg, &info, slot, &mut out.items);
        let client_addr: Option<String> = client
            .query_one("SELECT host(inet_client_addr())", &[])
            .await?
            .get(0);
        check_replication_connection(cfg, &info, logical, client_addr.as_deref(), &mut out.items)
            .await;
    } else {
        out.items.push(CheckItem::pass(
            SIDE,
            "mode",
            "this mode reads tables with SELECT only (timestamp polling, or a full copy without keep_slot): wal_level, REPLICATION and slots are not needed",
        ));
    }

    let selected = super::selection::check(cfg, client, &info, &mut out.items).await?;
    if let Some(timestamp) = cfg.timestamp {
        check_timestamps(client, &timestamp, &selected, &mut out.items).await;
    }
    let oids: Vec<u32> = selected.iter().map(|t| t.oid).collect();
    out.columns = catalog::columns(client, &oids).await?;
    if cfg.logical_decoding {
        out.items.extend(super::plugin_limits::check(
            cfg.plugin,
            &selected,
            &out.columns,
        ));
    }
    out.tables = selected;
    Ok(())
}

async fn check_connections(
    client: &Client,
    info: &ServerInfo,
    snapshot_workers: u32,
    items: &mut Vec<CheckItem>,
) -> Result<(), tokio_postgres::Error> {
    let free = catalog::free_connections(client, info.version_num).await?;
    // The copy workers, the slot's connection and one for catalog work.
    let needed = i64::from(snapshot_workers) + 2;
    if free >= needed {
        items.push(CheckItem::pass(
            SIDE,
            "connections",
            format!("{free} connections free; sync needs up to {needed}"),
        ));
    } else {
        items.push(
            CheckItem::warn(
                SIDE,
                "connections",
                format!("only {free} connections are free; sync with snapshot_workers = {snapshot_workers} needs {needed}"),
            )
            .why("copy workers that cannot connect slow the full copy down or make it fail")
            .fix(format!(
                "lower [sync] snapshot_workers to {}, or raise max_connections (restart needed)",
                (free - 2).max(1)
            )),
        );
    }
    Ok(())
}

/// Timestamp mode: each table's column, trigger, index and key; whether the role can see
/// other sessions' transactions (the horizon); and that deletes need reconciliation.
async fn check_timestamps(
    client: &Client,
    cfg: &TimestampCheck<'_>,
    tables: &[TableInfo],
    items: &mut Vec<CheckItem>,
) {
    let wanted: Vec<TimestampTable> = tables
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| {
            let column = cfg
                .columns
                .get(&t.name)
                .map_or(cfg.default_column, String::as_str);
            TimestampTable::new(t.name.clone(), column)
        })
        .collect();
    match timestamps::inspect(client, &wanted).await {
        Ok(states) => items.extend(timestamps::check_items(&states)),
        Err(e) => items.push(
            CheckItem::fail(
                SIDE,
                "timestamp_column",
                format!("cannot inspect the timestamp columns: {}", error_text(&e)),
            )
            .why("timestamp mode reads rows by their last-updated column"),
        ),
    }
    let sees_all = client
        .query_one(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                    OR pg_has_role('pg_read_all_stats', 'MEMBER')",
            &[],
        )
        .await
        .map(|row| row.get::<_, bool>(0))
        .unwrap_or(false);
    if sees_all {
        items.push(CheckItem::pass(
            SIDE,
            "timestamp_horizon",
            "the role sees every session's transaction start, so polling stops below the oldest running transaction",
        ));
    } else {
        items.push(
            CheckItem::warn(SIDE, "timestamp_horizon", "the role cannot see other sessions' transactions")
                .why("without it, rows are read only once they are max_transaction_age old, and a transaction running longer than that could be missed")
                .fix("GRANT pg_read_all_stats TO <role>;   -- as a superuser"),
        );
    }
    if !cfg.reconcile_deletes {
        items.push(
            CheckItem::warn(
                SIDE,
                "timestamp_deletes",
                "rows deleted on the source stay in the target",
            )
            .why("a deleted row leaves nothing for a poll to find")
            .fix("set [sync] reconcile_deletes = true to remove them periodically, range by range"),
        );
    }
}

fn check_version(plugin: Plugin, info: &ServerInfo, items: &mut Vec<CheckItem>) {
    if info.version_num >= plugin.min_server_version() {
        items.push(CheckItem::pass(
            SIDE,
            "version",
            format!(
                "PostgreSQL {} supports the {plugin} plugin",
                info.major_label()
            ),
        ));
    } else {
        let oldest = if plugin == Plugin::Pgoutput {
            "10"
        } else {
            "9.4"
        };
        items.push(
            CheckItem::fail(
                SIDE,
                "version",
                format!(
                    "PostgreSQL {} is too old for the {plugin} plugin (needs {oldest} or later)",
                    info.major_label()
                ),
            )
            .why("the server cannot load this output plugin")
            .fix("set plugin = \"wal2json\" (works from PostgreSQL 9.4), or upgrade the server"),
        );
    }
}

fn check_wal_level(info: &ServerInfo, items: &mut Vec<CheckItem>) -> bool {
    if info.wal_level == "logical" {
        items.push(CheckItem::pass(SIDE, "wal_level", "wal_level is logical"));
        return true;
    }
    items.push(
        CheckItem::fail(SIDE, "wal_level", format!("wal_level is {}, not logical", info.wal_level))
            .why("logical decoding, and so incremental sync, needs wal_level = logical; no slot can be created without it")
            .fix(
                "ALTER SYSTEM SET wal_level = logical;\n\
                 then restart PostgreSQL (the setting takes effect only at server start)\n\
                 managed services: rds.logical_replication = 1 (AWS RDS), cloudsql.logical_decoding = on (Cloud SQL)",
            ),
    );
    false
}

fn check_role(info: &ServerInfo, items: &mut Vec<CheckItem>) {
    if info.is_superuser || info.can_replicate {
        let how = if info.is_superuser {
            "is a superuser"
        } else {
            "has REPLICATION"
        };
        items.push(CheckItem::pass(
            SIDE,
            "role",
            format!("role {:?} {how}", info.user),
        ));
    } else {
        items.push(
            CheckItem::fail(SIDE, "role", format!("role {:?} may not replicate (no REPLICATION attribute)", info.user))
                .why("only roles with REPLICATION (or superusers) may open a replication connection and create slots")
                .fix(format!(
                    "ALTER ROLE {} REPLICATION;   -- as a superuser\n\
                     AWS RDS: GRANT rds_replication TO {};\n\
                     or use mode = \"timestamp\", which needs only SELECT",
                    quote_ident(&info.user),
                    quote_ident(&info.user)
                )),
        );
    }
}

async fn check_capacity(
    client: &Client,
    info: &ServerInfo,
    slot_exists: bool,
    items: &mut Vec<CheckItem>,
) -> Result<(), tokio_postgres::Error> {
    let usage = catalog::replication_usage(client, info.version_num).await?;
    let free_slots = info.max_replication_slots - usage.slots_used;
    if slot_exists || free_slots > 0 {
        items.push(CheckItem::pass(
            SIDE,
            "replication_slots",
            format!(
                "{} of max_replication_slots = {} in use",
                usage.slots_used, info.max_replication_slots
            ),
        ));
    } else {
        items.push(
            CheckItem::fail(
                SIDE,
                "replication_slots",
                format!(
                    "all {} replication slots are in use",
                    info.max_replication_slots
                ),
            )
            .why("Ferry needs one slot per pipeline (and one briefly for `check` and `peek`)")
            .fix(format!(
                "drop unused slots (ferry slots list; ferry slots cleanup), or\n\
                 ALTER SYSTEM SET max_replication_slots = {};\nthen restart PostgreSQL",
                info.max_replication_slots + 4
            )),
        );
    }
    let free_senders = info.max_wal_senders - usage.walsenders_used;
    if free_senders > 0 {
        items.push(CheckItem::pass(
            SIDE,
            "wal_senders",
            format!(
                "{} of max_wal_senders = {} in use",
                usage.walsenders_used, info.max_wal_senders
            ),
        ));
    } else {
        items.push(
            CheckItem::fail(
                SIDE,
                "wal_senders",
                format!("all {} WAL senders are in use", info.max_wal_senders),
            )
            .why("each replication connection occupies one WAL sender")
            .fix(format!(
                "ALTER SYSTEM SET max_wal_senders = {};\nthen restart PostgreSQL",
                info.max_wal_senders + 4
            )),
        );
    }
    Ok(())
}

fn check_slot(
    cfg: &SourceCheck<'_>,
    info: &ServerInfo,
    slot: Option<catalog::SlotInfo>,
    items: &mut Vec<CheckItem>,
) {
    let Some(slot) = slot else {
        items.push(CheckItem::pass(
            SIDE,
            "slot",
            format!("slot {:?} does not exist yet; sync creates it", cfg.slot),
        ));
        return;
    };
    let name = &slot.name;
    let drop_sql = format!("SELECT pg_drop_replication_slot({});", quote_literal(name));
    if slot.slot_type != "logical" || slot.plugin.as_deref() != Some(cfg.plugin.name()) {
        items.push(
            CheckItem::fail(
                SIDE,
                "slot",
                format!(
                    "slot {name:?} exists with plugin {} ({} slot), not {}",
                    slot.plugin.as_deref().unwrap_or("none"),
                    slot.slot_type,
                    cfg.plugin
                ),
            )
            .why("a slot decodes with the plugin it was created with")
            .fix(format!(
                "choose another slot name, or set plugin to the slot's plugin, or drop it if nothing uses it:\n{drop_sql}"
            )),
        );
        return;
    }
    if slot.database.as_deref() != Some(info.database.as_str()) {
        items.push(
            CheckItem::fail(
                SIDE,
                "slot",
                format!(
                    "slot {name:?} belongs to database {:?}, not {:?}",
                    slot.database.as_deref().unwrap_or("?"),
                    info.database
                ),
            )
            .why("a logical slot decodes only the database it was created in")
            .fix("choose another slot name for this database"),
        );
        return;
    }
    if let Some(invalidation) = slot.invalidation() {
        items.push(
            CheckItem::fail(SIDE, "slot", format!("slot {name:?} {invalidation}"))
                .why("changes after the slot's position are gone; streaming cannot resume and the target is incomplete")
                .fix(format!(
                    "drop the slot and run a full sync again:\n{drop_sql}\nferry sync -c ferry.toml   (with mode = \"full+incremental\")"
                )),
        );
        return;
    }
    let retained = slot
        .retained_bytes
        .map(|b| format!("{b} bytes of WAL retained"))
        .unwrap_or_else(|| "retained WAL unknown".to_owned());
    if slot.active {
        let pid = slot.active_pid.map_or("?".to_owned(), |p| p.to_string());
        items.push(
            CheckItem::fail(SIDE, "slot", format!("slot {name:?} is active, used by process {pid}; {retained}"))
                .why("a slot serves one consumer at a time; Ferry cannot stream from it while another process does")
                .fix(format!(
                    "stop the other consumer, or end it: SELECT pg_terminate_backend({pid});"
                )),
        );
        return;
    }
    items.push(CheckItem::pass(
        SIDE,
        "slot",
        format!(
            "slot {name:?} exists with plugin {}, inactive; {retained}",
            cfg.plugin
        ),
    ));
}

async fn check_replication_connection(
    cfg: &SourceCheck<'_>,
    info: &ServerInfo,
    logical: bool,
    client_addr: Option<&str>,
    items: &mut Vec<CheckItem>,
) {
    let mut repl = match ReplicationClient::connect(cfg.conn).await {
        Ok(repl) => repl,
        Err(e) => {
            items.push(replication_refused(info, client_addr, &e));
            return;
        }
    };
    match repl.identify_system().await {
        Ok(_) => items.push(CheckItem::pass(
            SIDE,
            "replication_connection",
            "a replication connection is accepted (pg_hba.conf admits it)",
        )),
        Err(e) => items.push(replication_refused(info, client_addr, &e)),
    }
    if !logical {
        items.push(
            CheckItem::warn(
                SIDE,
                "plugin",
                format!("plugin {} not tested: wal_level is not logical", cfg.plugin),
            )
            .why("a test slot can only be created once wal_level = logical")
            .fix("fix wal_level (above) and run ferry check again"),
        );
        repl.close().await;
        return;
    }
    let test_slot = format!("ferry_check_{}", std::process::id());
    let options = SlotOptions {
        temporary: true,
        snapshot: SnapshotAction::Nothing,
    };
    let created = tokio::time::timeout(
        TEST_SLOT_TIMEOUT,
        repl.create_slot(&test_slot, cfg.plugin.name(), options),
    )
    .await;
    match created {
        Ok(Ok(_)) => {
            items.push(CheckItem::pass(
                SIDE,
                "plugin",
                format!("plugin {} loads (a temporary test slot was created and dropped)", cfg.plugin),
            ));
            if let Err(e) = repl.drop_slot(&test_slot, false).await {
                tracing::debug!(error = %e, "dropping the test slot failed; the server drops it at disconnect");
            }
        }
        Ok(Err(e)) => items.push(plugin_failure(cfg.plugin, info, &e)),
        Err(_) => items.push(
            CheckItem::warn(
                SIDE,
                "plugin",
                format!(
                    "creating a test slot with {} took over {} s",
                    cfg.plugin,
                    TEST_SLOT_TIMEOUT.as_secs()
                ),
            )
            .why("slot creation waits for every transaction running at that moment to end; a long transaction will also delay sync's start")
            .fix("find long transactions: SELECT pid, xact_start, state, left(query, 60) FROM pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start;"),
        ),
    }
    repl.close().await;
}

fn replication_refused(
    info: &ServerInfo,
    client_addr: Option<&str>,
    e: &ferry_pgwire::Error,
) -> CheckItem {
    let text = error_text(e);
    let item = CheckItem::fail(
        SIDE,
        "replication_connection",
        format!("replication connection refused: {text}"),
    );
    let addr = client_addr.map_or("<client address>/32".to_owned(), |a| {
        if a.contains(':') {
            format!("{a}/128")
        } else {
            format!("{a}/32")
        }
    });
    match e.as_db_error().map(|d| d.code()) {
        Some("28000") => item
            .why("pg_hba.conf rejects this replication connection; logical replication connections are matched by the database column (a `replication` line admits only physical replication)")
            .fix(format!(
                "add to pg_hba.conf, above any reject line:\nhost  {}  {}  {addr}  scram-sha-256\nthen SELECT pg_reload_conf();",
                info.database, info.user
            )),
        Some("42501") => item
            .why("the role lacks the REPLICATION attribute (see role above)")
            .fix(format!("ALTER ROLE {} REPLICATION;", quote_ident(&info.user))),
        Some(code) if code.starts_with("53") => item
            .why("the server has no free WAL sender or connection slot")
            .fix("raise max_wal_senders (and max_connections), then restart PostgreSQL"),
        _ => item
            .why("streaming changes needs a replication connection with the same settings as the source URL")
            .fix("check that the source URL reaches the server and that pg_hba.conf admits replication connections"),
    }
}

fn plugin_failure(plugin: Plugin, info: &ServerInfo, e: &ferry_pgwire::Error) -> CheckItem {
    let item = CheckItem::fail(
        SIDE,
        "plugin",
        format!("plugin {plugin} cannot be used: {}", error_text(e)),
    );
    match e.as_db_error().map(|d| d.code()) {
        // undefined_file: the shared library is not installed.
        Some("58P01") => item
            .why(format!("the server could not load {plugin}.so"))
            .fix(plugin.install_hint(&info.major_label())),
        Some(code) if code.starts_with("53") => item
            .why("no replication slot is free")
            .fix("drop unused slots or raise max_replication_slots"),
        _ => item
            .why("the output plugin must load for incremental sync")
            .fix(plugin.install_hint(&info.major_label())),
    }
}
