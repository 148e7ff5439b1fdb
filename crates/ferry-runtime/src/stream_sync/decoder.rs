//! The output plugin side of a stream: what START_REPLICATION asks each plugin for, and one
//! decoder type over the three, so the apply sees only [`Change`]s.
//!
//! | plugin | options | what the apply must know |
//! |---|---|---|
//! | pgoutput | `proto_version` 1, or 2 with `streaming` on 14+; `publication_names`; `messages` on 14+ | the full model |
//! | wal2json | `format-version` 2 with xids, LSNs, keys, type oids, timestamps, B/C records; `add-tables` | no type modifiers; generated columns sent; no TRUNCATE options |
//! | decoderbufs | none (it cannot filter tables: changes of others are dropped here) | no type modifiers; keys come from the catalog; no TRUNCATE, no messages |

use bytes::Bytes;
use ferry_core::{Change, Lsn, TableName};
use ferry_postgres::source::decode::decoderbufs::{DecoderbufsDecoder, TableIdentity};
use ferry_postgres::source::decode::pgoutput::PgoutputDecoder;
use ferry_postgres::source::decode::wal2json::Wal2JsonDecoder;
use ferry_postgres::Plugin;

use ferry_pgwire::ConnParams;
use ferry_postgres::TableSelection;

use crate::error::SyncError;

/// One decoder for whichever plugin the slot uses.
pub enum StreamDecoder {
    Pgoutput(PgoutputDecoder),
    Wal2json(Wal2JsonDecoder),
    Decoderbufs(DecoderbufsDecoder),
}

impl StreamDecoder {
    /// A decoder for `plugin`, streaming from `start`. decoderbufs learns the replica
    /// identity of each of the `selected` tables ([`selected_tables`]) from the source
    /// catalog, as it sends none.
    pub async fn new(
        plugin: Plugin,
        source: &ConnParams,
        selected: &[TableName],
        start: Lsn,
    ) -> Result<Self, SyncError> {
        Ok(match plugin {
            Plugin::Pgoutput => StreamDecoder::Pgoutput(PgoutputDecoder::new()),
            Plugin::Wal2json => StreamDecoder::Wal2json(Wal2JsonDecoder::new()),
            Plugin::Decoderbufs => {
                let mut decoder = DecoderbufsDecoder::new(start);
                decoder.keep_only(selected.iter().cloned());
                for (table, identity) in identities(source, selected).await? {
                    decoder.set_identity(table, identity);
                }
                StreamDecoder::Decoderbufs(decoder)
            }
        })
    }

    /// Whether a Begin carries its transaction's commit position. decoderbufs' carries a
    /// lower bound only (its first change's position, or the last commit's).
    pub fn commit_known_at_begin(&self) -> bool {
        !matches!(self, StreamDecoder::Decoderbufs(_))
    }

    /// Whether Relation changes carry type modifiers (only pgoutput's do).
    pub fn typmods_known(&self) -> bool {
        matches!(self, StreamDecoder::Pgoutput(_))
    }

    /// The changes in one XLogData payload that starts at `wal_start`.
    pub fn decode(&mut self, wal_start: Lsn, data: Bytes) -> Result<Vec<Change>, SyncError> {
        let failed =
            |plugin: Plugin, table: Option<&TableName>, message: String| SyncError::Decode {
                plugin: plugin.name(),
                table: table.cloned(),
                message,
            };
        match self {
            StreamDecoder::Pgoutput(d) => d
                .decode(data)
                .map(|c| vec![c])
                .map_err(|e| failed(Plugin::Pgoutput, None, e.to_string())),
            StreamDecoder::Wal2json(d) => d
                .decode(&data)
                .map_err(|e| failed(Plugin::Wal2json, e.table(), e.to_string())),
            StreamDecoder::Decoderbufs(d) => d
                .decode(wal_start, &data)
                .map_err(|e| failed(Plugin::Decoderbufs, e.table(), e.to_string())),
        }
    }
}

/// The plugin options of START_REPLICATION for a server of major `version`: `publication`
/// for pgoutput (with `streaming` of large transactions, protocol 2, when asked and 14+),
/// the selected `tables` for wal2json.
pub fn plugin_options(
    plugin: Plugin,
    publication: &str,
    version: u32,
    streaming: bool,
    tables: &[TableName],
) -> Vec<(&'static str, String)> {
    match plugin {
        Plugin::Pgoutput => {
            let mut list = vec![
                (
                    "proto_version",
                    if streaming { "2" } else { "1" }.to_owned(),
                ),
                ("publication_names", ferry_core::quote_ident(publication)),
            ];
            if streaming {
                list.push(("streaming", "on".to_owned()));
            }
            if version >= 14 {
                list.push(("messages", "true".to_owned()));
            }
            list
        }
        Plugin::Wal2json => {
            let mut list: Vec<(&'static str, String)> = [
                ("format-version", "2"),
                ("include-xids", "1"),
                ("include-lsn", "1"),
                ("include-pk", "1"),
                ("include-type-oids", "1"),
                ("include-types", "0"),
                ("include-timestamp", "1"),
                ("include-transaction", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
            list.push(("add-tables", wal2json_tables(tables)));
            list
        }
        Plugin::Decoderbufs => Vec::new(),
    }
}

/// wal2json's `add-tables`: `schema.table` entries separated by commas, with `,`, `.`, `*`
/// and `\` in names escaped by a backslash.
fn wal2json_tables(tables: &[TableName]) -> String {
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, ',' | '.' | '*' | '\\' | ' ') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    tables
        .iter()
        .map(|t| format!("{}.{}", escape(&t.schema), escape(&t.name)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Each selected table's (and selected parent's partition's) replica identity, from the
/// source catalog.
async fn identities(
    source: &ConnParams,
    selected: &[TableName],
) -> Result<Vec<(TableName, TableIdentity)>, SyncError> {
    let (client, _) = super::setup::connect_source(source).await?;
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, c.relreplident,
                    ARRAY(SELECT a.attname::text FROM pg_index i
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                          WHERE i.indrelid = c.oid
                            AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END
                          ORDER BY array_position(i.indkey::int2[], a.attnum))
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(|e| SyncError::sql("reading replica identities on the source", e))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let table = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
            if !selected.contains(&table) {
                return None;
            }
            let kind: i8 = row.get(2);
            let key: Vec<String> = row.get(3);
            let identity = match (kind as u8, key.is_empty()) {
                (b'f', _) => TableIdentity::Full,
                (b'n', _) | (_, true) => TableIdentity::Nothing,
                _ => TableIdentity::Key(key),
            };
            Some((table, identity))
        })
        .collect())
}

/// The selected tables of `source` and every partition of a selected partitioned table
/// (changes arrive under the leaf partition's name), for plugins that filter by name.
pub async fn selected_tables(
    source: &ConnParams,
    tables: &TableSelection,
) -> Result<Vec<TableName>, SyncError> {
    let (client, version) = super::setup::connect_source(source).await?;
    let resolved = ferry_postgres::read_selection(&client, version, tables)
        .await
        .map_err(|e| SyncError::sql("listing tables", e))?;
    Ok(resolved.names())
}
