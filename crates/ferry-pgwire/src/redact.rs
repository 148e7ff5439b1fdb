//! Server errors rendered without the row values they quote, for logs, `last_error`, the
//! API and the progress table (the brief: never log row values).
//!
//! Data exceptions (SQLSTATE class 22) quote the offending input in their message
//! (`invalid input syntax for type integer: "…"`, `value "…" is out of range for type
//! smallint`); data and integrity errors (22 and 23) put whole rows or keys in their detail
//! (`Key (id)=(5) already exists`, `Failing row contains (…)`). What is kept says what went
//! wrong and where: SQLSTATE, the message up to the quoted input, table, constraint, hint.
//! Both our own [`DbError`](crate::DbError) and tokio-postgres' are rendered here, so every
//! path that shows a server error shows it the same way.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt::Write as _;

/// Whether errors of this SQLSTATE may quote row values in their message or detail.
pub fn carries_values(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23")
}

/// `message` without the input it quotes: a data exception's message is cut before its
/// `": "` (after which the input follows) and a quoted `value "…"` is replaced.
pub fn without_values<'a>(code: &str, message: &'a str) -> Cow<'a, str> {
    if !code.starts_with("22") {
        return Cow::Borrowed(message);
    }
    let kept = message.split_once(": ").map_or(message, |(head, _)| head);
    let mut out = String::with_capacity(kept.len());
    let mut rest = kept;
    while let Some(at) = rest.find("value \"") {
        out.push_str(&rest[..at]);
        out.push_str("value (not shown)");
        let after = &rest[at + "value \"".len()..];
        rest = after.find('"').map_or("", |close| &after[close + 1..]);
    }
    out.push_str(rest);
    if out.len() < message.len() {
        out.push_str(" (the value is not shown)");
    }
    Cow::Owned(out)
}

/// The fields of a server error that [`describe`] shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shown<'a> {
    pub severity: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
    pub table: Option<&'a str>,
    pub constraint: Option<&'a str>,
}

/// One line for a server error, safe to log:
/// `ERROR: message (SQLSTATE c); table t; constraint k; detail: …; hint: …`.
pub fn describe(e: Shown<'_>) -> String {
    let mut out = format!(
        "{}: {} (SQLSTATE {})",
        e.severity,
        without_values(e.code, e.message),
        e.code
    );
    if let Some(table) = e.table {
        let _ = write!(out, "; table {table}");
    }
    if let Some(constraint) = e.constraint {
        let _ = write!(out, "; constraint {constraint}");
    }
    if let (Some(detail), false) = (e.detail, carries_values(e.code)) {
        let _ = write!(out, "; detail: {detail}");
    }
    if let Some(hint) = e.hint {
        let _ = write!(out, "; hint: {hint}");
    }
    out
}

/// A tokio-postgres server error, rendered like ours.
pub fn describe_tokio(e: &tokio_postgres::error::DbError) -> String {
    describe(Shown {
        severity: e.severity(),
        code: e.code().code(),
        message: e.message(),
        detail: e.detail(),
        hint: e.hint(),
        table: e.table(),
        constraint: e.constraint(),
    })
}

/// An error with its causes, `what failed: why: because`, each server error among them
/// rendered by [`describe`] (tokio-postgres' own display would show its detail).
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        if !text.is_empty() {
            text.push_str(": ");
        }
        match cause.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => text.push_str(&describe_tokio(db)),
            None => {
                let _ = write!(text, "{cause}");
            }
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_exceptions_never_show_the_input() {
        for (code, message, kept) in [
            (
                "22P02",
                "invalid input syntax for type integer: \"secret-42\"",
                "invalid input syntax for type integer",
            ),
            (
                "22007",
                "invalid input syntax for type timestamp: \"secret-42\"",
                "invalid input syntax for type timestamp",
            ),
            (
                "22003",
                "value \"secret-42\" is out of range for type smallint",
                "value (not shown) is out of range for type smallint",
            ),
            (
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0xsecret-42",
                "invalid byte sequence for encoding \"UTF8\"",
            ),
        ] {
            let shown = without_values(code, message);
            assert!(!shown.contains("secret-42"), "{shown}");
            assert!(shown.starts_with(kept), "{shown}");
        }
        assert_eq!(
            without_values("42P01", "relation \"t\" does not exist"),
            "relation \"t\" does not exist"
        );
    }

    #[test]
    fn a_chain_through_tokio_postgres_hides_the_detail() {
        let shown = describe(Shown {
            severity: "ERROR",
            code: "23505",
            message: "duplicate key value violates unique constraint \"t_pkey\"",
            detail: Some("Key (id)=(secret-42) already exists."),
            constraint: Some("t_pkey"),
            ..Shown::default()
        });
        assert!(shown.contains("constraint t_pkey"), "{shown}");
        assert!(!shown.contains("secret-42"), "{shown}");
    }
}
