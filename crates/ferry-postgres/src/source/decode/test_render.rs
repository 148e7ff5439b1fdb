//! Test-only rendering of decoded changes, one line each with every field shown: what the
//! golden tests of the wal2json and decoderbufs decoders compare.

use bytes::Bytes;
use ferry_core::{Change, Datum, Relation, Row};

/// One line per change, every field shown: what the golden tests compare.
pub(crate) fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        assert_eq!(
            change.stream_xid(),
            None,
            "wal2json and decoderbufs never stream"
        );
        let line = match change {
            Change::Begin {
                final_lsn,
                commit_time,
                xid,
            } => format!("B xid={xid} final={final_lsn} time={}", commit_time.0),
            Change::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            } => format!("C commit={commit_lsn} end={end_lsn} time={}", commit_time.0),
            Change::Relation { relation, .. } => render_relation(relation),
            Change::Insert { relation, new, .. } => format!("I {} new={}", relation.0, row(new)),
            Change::Update {
                relation,
                key,
                old,
                new,
                ..
            } => format!(
                "U {}{}{} new={}",
                relation.0,
                opt_row(" key=", key),
                opt_row(" old=", old),
                row(new)
            ),
            Change::Delete {
                relation, key, old, ..
            } => format!(
                "D {}{}{}",
                relation.0,
                opt_row(" key=", key),
                opt_row(" old=", old)
            ),
            Change::Truncate {
                relations,
                cascade,
                restart_identity,
                ..
            } => {
                let ids: Vec<String> = relations.iter().map(|r| r.0.to_string()).collect();
                format!(
                    "T [{}] cascade={cascade} restart_identity={restart_identity}",
                    ids.join(",")
                )
            }
            Change::Message {
                transactional,
                lsn,
                prefix,
                content,
                ..
            } => format!(
                "M transactional={transactional} lsn={lsn} prefix={prefix:?} content={:?}",
                String::from_utf8_lossy(content)
            ),
            other => format!("unexpected {}", other.name()),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn render_relation(r: &Relation) -> String {
    let columns: Vec<String> = r
        .columns
        .iter()
        .map(|c| {
            let key = if c.is_key { "*" } else { "" };
            format!("{}{key}:{}", c.name, c.type_oid)
        })
        .collect();
    format!(
        "R {} {:?}.{:?} {} [{}]",
        r.id.0,
        r.schema,
        r.name,
        r.replica_identity,
        columns.join(" ")
    )
}

/// A datum as `null`, `toast` or its text quoted (long ones shortened).
pub(crate) fn datum(d: &Datum) -> String {
    match d {
        Datum::Null => "null".to_owned(),
        Datum::UnchangedToast => "toast".to_owned(),
        Datum::Text(text) if text.len() > 40 => format!("<{} bytes>", text.len()),
        Datum::Text(text) => format!("{:?}", String::from_utf8_lossy(text)),
        Datum::Binary(bytes) => format!("binary{bytes:?}"),
    }
}

fn row(r: &Row) -> String {
    let datums: Vec<String> = r.0.iter().map(datum).collect();
    format!("({})", datums.join(", "))
}

fn opt_row(label: &str, r: &Option<Row>) -> String {
    r.as_ref()
        .map(|r| format!("{label}{}", row(r)))
        .unwrap_or_default()
}

/// The toast scenario of both plugins' fixtures: the two inserts carry their TOASTed bodies
/// whole, and the REPLICA IDENTITY FULL update's old row carries the second body whole.
pub(crate) fn assert_toasted_bodies(
    changes: &[Change],
    body: &'static str,
    full_body: &'static str,
) {
    let text = |body: &'static str| Datum::Text(Bytes::from_static(body.trim_end().as_bytes()));
    let bodies: Vec<&Datum> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Insert { new, .. } => new.0.get(2),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, [&text(body), &text(full_body)]);
    let Some(Change::Update { old: Some(old), .. }) = changes.iter().rev().nth(1) else {
        panic!("no FULL update");
    };
    assert_eq!(old.0.get(2), Some(&text(full_body)));
}
