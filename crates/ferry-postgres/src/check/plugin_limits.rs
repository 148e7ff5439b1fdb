//! What each output plugin cannot carry, checked against the selected tables' columns, so
//! that a limitation is a line in `ferry check` before the first change instead of a
//! silent difference in the target (or a stopped pipeline) later.
//!
//! | plugin | limitation | item |
//! |---|---|---|
//! | wal2json | NaN and ±Infinity in `real`, `double precision`, `numeric` arrive as JSON `null` | WARN per table |
//! | decoderbufs | `timetz` loses its zone and `money` its scale: the pipeline stops on them | FAIL per table |
//! | decoderbufs | TRUNCATE and logical messages are not sent (heartbeats do nothing) | WARN |
//!
//! pgoutput carries everything.

use std::collections::BTreeMap;

use crate::catalog::{ColumnInfo, TableInfo};
use crate::check::report::{CheckItem, Side};
use crate::Plugin;

const SIDE: Side = Side::Source;

/// The items for `plugin` over `tables` and their `columns`.
pub(super) fn check(
    plugin: Plugin,
    tables: &[TableInfo],
    columns: &[ColumnInfo],
) -> Vec<CheckItem> {
    let mut items = Vec::new();
    let matching = |wanted: fn(&str) -> bool| -> BTreeMap<String, Vec<String>> {
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for column in columns.iter().filter(|c| wanted(&c.type_name)) {
            if let Some(table) = tables.iter().find(|t| t.oid == column.table_oid) {
                found
                    .entry(table.name.to_string())
                    .or_default()
                    .push(format!("{} ({})", column.name, column.type_name));
            }
        }
        found
    };
    match plugin {
        Plugin::Pgoutput => {}
        Plugin::Wal2json => {
            for (table, cols) in
                matching(|t| t == "real" || t == "double precision" || t.starts_with("numeric"))
            {
                items.push(
                    CheckItem::warn(
                        SIDE,
                        "plugin_values",
                        format!("table {table}: wal2json sends NaN and Infinity in {} as null", cols.join(", ")),
                    )
                    .why("JSON has no NaN or Infinity, and this wal2json writes them as null, which the target stores as NULL")
                    .fix("use plugin = \"pgoutput\" if these columns can hold NaN or Infinity; otherwise nothing to do"),
                );
            }
        }
        Plugin::Decoderbufs => {
            for (table, cols) in matching(|t| {
                t.starts_with("time")
                    && t.ends_with("with time zone")
                    && !t.starts_with("timestamp")
                    || t == "money"
            }) {
                items.push(
                    CheckItem::fail(
                        SIDE,
                        "plugin_values",
                        format!("table {table}: decoderbufs cannot carry {} exactly", cols.join(", ")),
                    )
                    .why("decoderbufs sends timetz without its zone offset and money without its scale; Ferry stops rather than write a wrong value")
                    .fix("use plugin = \"pgoutput\", or leave the table out of [source] tables"),
                );
            }
            items.push(
                CheckItem::warn(
                    SIDE,
                    "plugin_truncate",
                    "decoderbufs does not send TRUNCATE or logical messages",
                )
                .why("a TRUNCATE on the source leaves the target's rows in place, and heartbeats cannot advance an idle slot (keepalives still do)")
                .fix("use plugin = \"pgoutput\" if tables are truncated; otherwise nothing to do"),
            );
        }
    }
    items
}
