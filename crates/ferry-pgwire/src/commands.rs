//! The replication commands as text, in the syntax of each server version.
//!
//! PostgreSQL changed this grammar twice: TEMPORARY slots and `EXPORT_SNAPSHOT` keywords came
//! in 10, the parenthesised option list (`(SNAPSHOT 'export')`) in 15, which also deprecated
//! the keywords. Building the text is pure, so each version's form is unit-tested without a
//! server of that version.

use ferry_core::{quote_ident, quote_literal, Lsn};

use crate::error::Error;
use crate::version::ServerVersion;

const V10: ServerVersion = ServerVersion(100_000);
const V15: ServerVersion = ServerVersion(150_000);

/// What slot creation does with the snapshot it builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it by name, for other sessions to `SET TRANSACTION SNAPSHOT` (full sync).
    Export,
    /// Neither export nor use it (a slot for streaming only, or a throwaway check).
    Nothing,
}

/// How to create a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotOptions {
    /// Dropped by the server when this connection ends (10 and later).
    pub temporary: bool,
    pub snapshot: SnapshotAction,
}

/// Checks a slot name the way the server does (`ReplicationSlotValidateName`): 1 to 63
/// characters of lower-case letters, digits and underscores.
pub fn validate_slot_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "slot name {name:?} must be 1 to 63 characters long"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "slot name {name:?} contains {bad:?}: only lower-case letters, digits and underscores are allowed"
        ));
    }
    Ok(())
}

/// `CREATE_REPLICATION_SLOT` for a logical slot on a server of `version`.
pub fn create_slot(
    version: ServerVersion,
    slot: &str,
    plugin: &str,
    options: SlotOptions,
) -> Result<String, Error> {
    validate_slot_name(slot).map_err(Error::InvalidArgument)?;
    let mut sql = format!("CREATE_REPLICATION_SLOT {}", quote_ident(slot));
    if options.temporary {
        if version < V10 {
            return Err(Error::InvalidArgument(format!(
                "temporary replication slots need PostgreSQL 10 or later; the server is {version}"
            )));
        }
        sql.push_str(" TEMPORARY");
    }
    sql.push_str(" LOGICAL ");
    sql.push_str(&quote_ident(plugin));
    if version >= V15 {
        let value = match options.snapshot {
            SnapshotAction::Export => "export",
            SnapshotAction::Nothing => "nothing",
        };
        sql.push_str(&format!(" (SNAPSHOT {})", quote_literal(value)));
    } else if version >= V10 {
        sql.push_str(match options.snapshot {
            SnapshotAction::Export => " EXPORT_SNAPSHOT",
            SnapshotAction::Nothing => " NOEXPORT_SNAPSHOT",
        });
    }
    // Before 10 the server always exports a snapshot and accepts no keyword.
    Ok(sql)
}

/// `DROP_REPLICATION_SLOT`; `wait` (10 and later) waits for an active slot to be released
/// instead of failing.
pub fn drop_slot(version: ServerVersion, slot: &str, wait: bool) -> Result<String, Error> {
    validate_slot_name(slot).map_err(Error::InvalidArgument)?;
    let mut sql = format!("DROP_REPLICATION_SLOT {}", quote_ident(slot));
    if wait && version >= V10 {
        sql.push_str(" WAIT");
    }
    Ok(sql)
}

/// `START_REPLICATION SLOT … LOGICAL` from `start` with output-plugin options.
/// A string literal for the replication command grammar, which knows no `E''` strings:
/// quotes are doubled and backslashes are plain characters.
fn replication_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub fn start_logical(slot: &str, start: Lsn, options: &[(&str, &str)]) -> Result<String, Error> {
    validate_slot_name(slot).map_err(Error::InvalidArgument)?;
    let mut sql = format!(
        "START_REPLICATION SLOT {} LOGICAL {start}",
        quote_ident(slot)
    );
    if !options.is_empty() {
        let list: Vec<String> = options
            .iter()
            .map(|(name, value)| format!("{} {}", quote_ident(name), replication_literal(value)))
            .collect();
        sql.push_str(&format!(" ({})", list.join(", ")));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_options_are_plain_literals_with_backslashes_kept() {
        let sql = start_logical("s", Lsn::ZERO, &[("add-tables", r"Sales\ Dept.it's")]).unwrap();
        assert!(
            sql.ends_with(r#"("add-tables" 'Sales\ Dept.it''s')"#),
            "{sql}"
        );
    }

    const EXPORT: SlotOptions = SlotOptions {
        temporary: false,
        snapshot: SnapshotAction::Export,
    };
    const TEMP: SlotOptions = SlotOptions {
        temporary: true,
        snapshot: SnapshotAction::Nothing,
    };

    #[test]
    fn create_slot_uses_option_list_on_15() {
        assert_eq!(
            create_slot(ServerVersion(150_004), "s1", "pgoutput", EXPORT).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s1" LOGICAL "pgoutput" (SNAPSHOT 'export')"#
        );
        assert_eq!(
            create_slot(ServerVersion(160_000), "s1", "wal2json", TEMP).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s1" TEMPORARY LOGICAL "wal2json" (SNAPSHOT 'nothing')"#
        );
    }

    #[test]
    fn create_slot_uses_keywords_on_10_to_14() {
        assert_eq!(
            create_slot(ServerVersion(140_010), "s1", "pgoutput", EXPORT).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s1" LOGICAL "pgoutput" EXPORT_SNAPSHOT"#
        );
        assert_eq!(
            create_slot(ServerVersion(100_000), "s1", "pgoutput", TEMP).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s1" TEMPORARY LOGICAL "pgoutput" NOEXPORT_SNAPSHOT"#
        );
    }

    #[test]
    fn create_slot_on_9x_has_no_keywords_and_no_temporary() {
        assert_eq!(
            create_slot(ServerVersion(90_624), "s1", "wal2json", EXPORT).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s1" LOGICAL "wal2json""#
        );
        assert!(create_slot(ServerVersion(90_624), "s1", "wal2json", TEMP).is_err());
    }

    #[test]
    fn slot_names_follow_server_rules() {
        assert!(validate_slot_name("ferry_app_1").is_ok());
        assert!(validate_slot_name("").is_err());
        assert!(validate_slot_name("Ferry").is_err());
        assert!(validate_slot_name("a-b").is_err());
        assert!(validate_slot_name(&"a".repeat(64)).is_err());
        assert!(create_slot(ServerVersion(150_000), "x; DROP", "p", EXPORT).is_err());
    }

    #[test]
    fn start_replication_quotes_options() {
        assert_eq!(
            start_logical(
                "s1",
                Lsn::from_u64(0x1_0000_0010),
                &[("proto_version", "1"), ("publication_names", "\"my pub\"")]
            )
            .unwrap(),
            r#"START_REPLICATION SLOT "s1" LOGICAL 1/10 ("proto_version" '1', "publication_names" '"my pub"')"#
        );
        assert_eq!(
            drop_slot(ServerVersion(150_000), "s1", true).unwrap(),
            r#"DROP_REPLICATION_SLOT "s1" WAIT"#
        );
    }
}
