//! `ferry check`: the preflight a user runs first.
//!
//! It answers "will sync work against these two databases, and if not, what exactly do I
//! run to fix it?" Source checks ([`source`]) come first because the target checks compare
//! against the source's tables. Every finding is a [`CheckItem`] with a status, the reason it
//! matters and the fix; the report prints as text or JSON.

mod plugin_limits;
mod report;
mod selection;
mod source;
mod target;

use std::error::Error as StdError;

use ferry_core::TableName;
use ferry_pgwire::{ConnParams, SqlConnectError};

pub use report::{CheckItem, CheckReport, Side, Status};
pub use source::{check_source, SourceCheck, SourceFindings, TimestampCheck};
pub use target::{check_target, TargetCheck};

/// Runs the source checks, then the target checks if a target is given.
pub async fn run_check(source: SourceCheck<'_>, target: Option<TargetCheck<'_>>) -> CheckReport {
    let findings = check_source(source).await;
    let mut items = findings.items.clone();
    if let Some(target) = target {
        items.extend(check_target(target, &findings).await);
    }
    CheckReport { items }
}

/// An error and its causes on one line, `outer: inner: innermost`, without repeats.
pub(crate) fn error_text(error: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn StdError> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Every name, quoted and comma-separated, as SQL lists them (`GRANT … ON TABLE a, b`).
pub(crate) fn sql_list(names: &[&TableName]) -> String {
    names
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to five names, then a count of the rest.
pub(crate) fn list_names(names: &[&TableName]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The item for a database Ferry could not connect to, with the fix its SQLSTATE suggests.
pub(crate) fn connect_failure(side: Side, conn: &ConnParams, e: &SqlConnectError) -> CheckItem {
    let item = CheckItem::fail(
        side,
        "connect",
        format!(
            "cannot connect to the {side} ({}): {}",
            conn.redacted(),
            error_text(e)
        ),
    );
    match e.code() {
        Some("28P01") => item
            .why("the server rejected the password")
            .fix(format!("check the password of user {:?} in the URL, PGPASSWORD or ~/.pgpass", conn.user)),
        Some("28000") => item
            .why("the role does not exist or may not log in, or pg_hba.conf has no line admitting it from this address")
            .fix(format!(
                "create the role if it is missing: CREATE ROLE {role} LOGIN PASSWORD '…';\n\
                 or let it log in: ALTER ROLE {role} LOGIN;\n\
                 or add to pg_hba.conf: host {} {} <client address>/32 scram-sha-256\n\
                 then SELECT pg_reload_conf();",
                conn.dbname,
                conn.user,
                role = ferry_core::quote_ident(&conn.user)
            )),
        Some("3D000") => item
            .why("the database does not exist")
            .fix(format!("CREATE DATABASE {};", ferry_core::quote_ident(&conn.dbname))),
        _ if e.is_transient() => item
            .why("the server did not answer")
            .fix("check that PostgreSQL runs at that host and port, that listen_addresses includes the interface, and that no firewall blocks it"),
        _ => item.why("the connection settings are not usable").fix("correct the URL (see README, Connection settings)"),
    }
}
