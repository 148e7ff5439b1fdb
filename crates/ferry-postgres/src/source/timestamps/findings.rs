//! `ferry check` items for timestamp mode, from [`super::inspect`]'s states: per table a
//! failure or warning with the exact fix, or one passing item per check when all is well.
//!
//! Check ids: `timestamp_column`, `timestamp_trigger`, `timestamp_index`,
//! `timestamp_primary_key`. A missing table is reported once, under `timestamp_column`.

use ferry_core::quote_ident;

use super::inspect::{quoted_column, TableTimestampState, TriggerMode, TriggerState};
use super::sql::{index_name, trigger_name};
use crate::check::{CheckItem, Side};

const SIDE: Side = Side::Source;

const SETUP_FIX: &str = "run `ferry setup timestamps -c <config> --apply` as the tables' owner \
                         (without --apply it prints the SQL for the owner to run)";

/// The check items for `states`.
pub fn check_items(states: &[TableTimestampState]) -> Vec<CheckItem> {
    let existing: Vec<&TableTimestampState> = states.iter().filter(|s| s.table_exists).collect();
    let mut items = Vec::new();

    let mut column_items: Vec<CheckItem> = states.iter().filter_map(column_item).collect();
    if column_items.is_empty() {
        column_items.push(CheckItem::pass(
            SIDE,
            "timestamp_column",
            format!(
                "all {} tables have their timestamp with time zone column",
                states.len()
            ),
        ));
    }
    items.extend(column_items);

    items.extend(per_table_or_pass(
        &existing,
        "timestamp_trigger",
        trigger_item,
        "every table's trigger stamps each INSERT and UPDATE",
    ));
    items.extend(per_table_or_pass(
        &existing,
        "timestamp_index",
        index_item,
        "every timestamp column is indexed",
    ));
    items.extend(per_table_or_pass(
        &existing,
        "timestamp_primary_key",
        key_item,
        "every table has a primary key to upsert by",
    ));
    items
}

/// The per-table items `item` yields for `states`, or one passing item saying `all_good`.
fn per_table_or_pass(
    states: &[&TableTimestampState],
    check: &'static str,
    item: fn(&TableTimestampState) -> Option<CheckItem>,
    all_good: &str,
) -> Vec<CheckItem> {
    let found: Vec<CheckItem> = states.iter().filter_map(|s| item(s)).collect();
    if found.is_empty() {
        vec![CheckItem::pass(SIDE, check, all_good)]
    } else {
        found
    }
}

fn column_item(state: &TableTimestampState) -> Option<CheckItem> {
    const CHECK: &str = "timestamp_column";
    let table = &state.table;
    let column = quoted_column(state);
    if !state.table_exists {
        return Some(
            CheckItem::fail(
                SIDE,
                CHECK,
                format!("there is no table {table} on the source"),
            )
            .why("it is configured for timestamp sync")
            .fix("create it, or remove it from the tables synced by timestamp"),
        );
    }
    match &state.column {
        None => Some(
            CheckItem::fail(SIDE, CHECK, format!("table {table} has no column {column}"))
                .why("the poller reads changed rows by the time in this column")
                .fix(SETUP_FIX),
        ),
        Some(c) if c.is_timestamptz() => None,
        Some(c) if c.is_timestamp_without_time_zone() => Some(
            CheckItem::warn(
                SIDE,
                CHECK,
                format!("column {column} of table {table} is timestamp without time zone"),
            )
            .why(
                "its values are in each writer's TimeZone setting: writers in other zones or a \
                 daylight-saving change can give a later change an earlier time, which the \
                 poller can miss",
            )
            .fix(format!(
                "ALTER TABLE {table} ALTER COLUMN {column} TYPE timestamp with time zone; \
                 (rewrites the table)"
            )),
        ),
        Some(c) => Some(
            CheckItem::fail(
                SIDE,
                CHECK,
                format!("column {column} of table {table} is {}", c.type_name),
            )
            .why("timestamp sync needs it to hold the time of each row's last change")
            .fix(
                "rename or drop that column, or set timestamp_column for the table to a free \
                 name, then run `ferry setup timestamps -c <config> --apply`",
            ),
        ),
    }
}

fn trigger_item(state: &TableTimestampState) -> Option<CheckItem> {
    const CHECK: &str = "timestamp_trigger";
    let table = &state.table;
    let trigger = quote_ident(&trigger_name(&state.column_name));
    let why = "changes the trigger does not stamp keep an old time, and the poller never sees \
               them";
    match state.trigger {
        TriggerState::Missing => Some(
            CheckItem::fail(
                SIDE,
                CHECK,
                format!("table {table} has no trigger {trigger}"),
            )
            .why(why)
            .fix(SETUP_FIX),
        ),
        TriggerState::Present {
            stamps_inserts_and_updates: false,
            ..
        } => Some(
            CheckItem::fail(
                SIDE,
                CHECK,
                format!(
                    "trigger {trigger} on table {table} is not BEFORE INSERT OR UPDATE FOR EACH \
                     ROW on all columns without a WHEN condition"
                ),
            )
            .why(why)
            .fix(format!("{SETUP_FIX}; it re-creates the trigger")),
        ),
        TriggerState::Present {
            mode: mode @ (TriggerMode::Disabled | TriggerMode::Replica),
            ..
        } => Some(
            CheckItem::fail(
                SIDE,
                CHECK,
                format!(
                    "trigger {trigger} on table {table} is {}",
                    if mode == TriggerMode::Disabled {
                        "disabled"
                    } else {
                        "enabled for replica sessions only"
                    }
                ),
            )
            .why(why)
            .fix(format!(
                "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger};"
            )),
        ),
        TriggerState::Present {
            mode: TriggerMode::Origin,
            ..
        } => Some(
            CheckItem::warn(
                SIDE,
                CHECK,
                format!(
                    "trigger {trigger} on table {table} does not fire in sessions with \
                     session_replication_role = replica"
                ),
            )
            .why(
                "changes made by logical-replication apply workers (if this database \
                 subscribes to another) are not stamped, and the poller never sees them",
            )
            .fix(format!(
                "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger};"
            )),
        ),
        TriggerState::Present {
            mode: TriggerMode::Always,
            stamps_inserts_and_updates: true,
        } => None,
    }
}

fn index_item(state: &TableTimestampState) -> Option<CheckItem> {
    // Without a timestamp column there is nothing to index yet; the column item says so.
    if state.indexed || !state.column.as_ref().is_some_and(|c| c.is_timestamp()) {
        return None;
    }
    let table = &state.table;
    let column = quoted_column(state);
    let size = match state.row_estimate {
        Some(rows) => format!(" (about {rows} rows)"),
        None => String::new(),
    };
    Some(
        CheckItem::warn(
            SIDE,
            "timestamp_index",
            format!("column {column} of table {table} has no index"),
        )
        .why(format!("every poll then reads the whole table{size}"))
        .fix(format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {table} ({column}); (does not \
             block writes; the set-up then skips its own)",
            quote_ident(&index_name(table, &state.column_name))
        )),
    )
}

fn key_item(state: &TableTimestampState) -> Option<CheckItem> {
    if !state.primary_key.is_empty() {
        return None;
    }
    let table = &state.table;
    Some(
        CheckItem::fail(
            SIDE,
            "timestamp_primary_key",
            format!("table {table} has no primary key"),
        )
        .why(
            "the poller upserts changed rows by key: without one it cannot tell an update from \
             a new row, so the table cannot be polled",
        )
        .fix(format!("ALTER TABLE {table} ADD PRIMARY KEY (<columns>);")),
    )
}

#[cfg(test)]
mod tests {
    use ferry_core::TableName;

    use super::*;
    use crate::check::Status;
    use crate::source::timestamps::ColumnState;

    fn ready(name: &str) -> TableTimestampState {
        TableTimestampState {
            table: TableName::new("public", name),
            column_name: "last_update".to_owned(),
            table_exists: true,
            column: Some(ColumnState {
                type_name: "timestamp with time zone".to_owned(),
                type_oid: 1184,
                not_null: true,
            }),
            trigger: TriggerState::Present {
                mode: TriggerMode::Always,
                stamps_inserts_and_updates: true,
            },
            indexed: true,
            primary_key: vec!["id".to_owned()],
            row_estimate: Some(10),
        }
    }

    #[test]
    fn a_ready_table_passes_every_check() {
        let items = check_items(&[ready("a"), ready("b")]);
        assert_eq!(items.len(), 4, "{items:?}");
        assert!(items.iter().all(|i| i.status == Status::Pass), "{items:?}");
    }

    #[test]
    fn problems_name_the_table_and_the_fix() {
        let mut disabled = ready("disabled");
        disabled.trigger = TriggerState::Present {
            mode: TriggerMode::Disabled,
            stamps_inserts_and_updates: true,
        };
        let mut keyless = ready("keyless");
        keyless.primary_key.clear();
        keyless.indexed = false;
        let items = check_items(&[ready("ok"), disabled, keyless]);
        let find = |check: &str| {
            items
                .iter()
                .find(|i| i.check == check && i.status != Status::Pass)
                .unwrap_or_else(|| panic!("no {check} problem in {items:?}"))
        };
        let trigger = find("timestamp_trigger");
        assert_eq!(trigger.status, Status::Fail);
        assert!(trigger.message.contains("\"public\".\"disabled\""));
        assert_eq!(
            trigger.fix.as_deref(),
            Some(r#"ALTER TABLE "public"."disabled" ENABLE ALWAYS TRIGGER "ferry_last_update";"#)
        );
        let key = find("timestamp_primary_key");
        assert_eq!(key.status, Status::Fail);
        assert!(key.message.contains("\"public\".\"keyless\""));
        let index = find("timestamp_index");
        assert_eq!(index.status, Status::Warn);
        assert!(index
            .fix
            .as_deref()
            .unwrap()
            .contains(r#""keyless_last_update_ferry_idx" ON "public"."keyless" ("last_update")"#));
    }
}
