//! The wal2json decoder: one XLogData payload (one JSON object of wal2json's format-version
//! 2) in, the [`Change`]s it means out, sans-IO.
//!
//! Written against wal2json 2.5 (Debian's `postgresql-15-wal2json`), streamed with
//!
//! ```text
//!  format-version '2', include-xids '1', include-lsn '1', include-pk '1',
//!  include-type-oids '1', include-timestamp '1', include-transaction '1'
//! ```
//!
//! (`include-types '0'` is recommended as well: the decoder does not need type names, and
//! wal2json writes a type name that starts with a double quote without escaping it, so a
//! type like `"My Schema".t` makes the payload invalid JSON). A payload missing a field one
//! of these options adds is an error that names the option.
//!
//! ```text
//!  B  {"action":"B","xid":…,"timestamp":…,"lsn":final,"nextlsn":end}   → Begin
//!  I  {"action":"I",…,"schema","table","columns":[…],"pk":[…]}          → (Relation) Insert
//!  U  … "columns":[new, without unchanged TOAST],"identity":[…]       → (Relation) Update
//!  D  … "identity":[…]                                                 → (Relation) Delete
//!  T  one object per table, all with the LSN of the TRUNCATE           → (Relation) Truncate
//!  M  {"action":"M","transactional":…,"lsn",…,"prefix","content"}      → Message
//!  C  {"action":"C",…,"lsn":commit,"nextlsn":end}                      → Commit
//! ```
//!
//! # What is mapped how
//!
//! - **LSNs.** B's `lsn` is the transaction's `final_lsn` (where its commit record starts)
//!   and C's `lsn` the same commit LSN; `nextlsn` of both is `end_lsn`, the end of the
//!   commit record: Commit's `end_lsn` is exactly pgoutput's, the position to confirm.
//! - **Relations.** wal2json sends none, so the decoder is stateful and emits a synthetic
//!   [`Change::Relation`] before a row change whenever the table's column set, key columns
//!   or identity kind differ from what it last emitted (see `relations.rs`). Ids are a
//!   counter per `schema.table`. `type_modifier` is -1 (wal2json prints type names with
//!   their modifier, not the number).
//! - **Unchanged TOAST.** wal2json leaves an unchanged out-of-line value out of an UPDATE's
//!   `columns`; such a column is [`Datum::UnchangedToast`] in `new`, so the row still has
//!   one datum per relation column. (With REPLICA IDENTITY FULL the `identity` has it, as
//!   the server inlines the old row's values.)
//! - **Identity.** `identity` holds the old replica identity (taken from the new row when
//!   the key did not change) or, with REPLICA IDENTITY FULL, the whole old row. The latter,
//!   on a table without a primary key, is `old` with `replica_identity` `f`; otherwise it is
//!   `key` (non-key columns `Null`), left out of an Update when it equals the new row's key,
//!   as pgoutput does. A DELETE without `identity` is a [`DecodeError::NoIdentity`] naming
//!   the table (wal2json itself drops UPDATE and DELETE of tables without a replica
//!   identity, with only a WARNING in the server log: `ferry check` must refuse them).
//! - **Values.** Strings are the type's output text; numbers (integer, oid, float, numeric)
//!   keep their literal JSON text; `true`/`false` stay so spelled; bytea gets its `\x`
//!   back (wal2json assumes `bytea_output = 'hex'`; other text is an error). The database
//!   must be UTF8: wal2json writes text in the server encoding. **Lossy:** wal2json prints NaN, Infinity and -Infinity of `real`, `double
//!   precision` and `numeric` as `null`, so they arrive as [`Datum::Null`], indistinguishable
//!   from SQL NULL. Message content is cut at its first NUL byte by wal2json.
//! - **TRUNCATE.** One T object per table, without CASCADE or RESTART IDENTITY (the tables
//!   a CASCADE reached are listed themselves); consecutive T objects with the same `lsn` are
//!   one statement and become one [`Change::Truncate`], emitted when the next payload (at
//!   the latest the C) arrives. A table truncated before any row change of it gets a
//!   Relation without columns.
//! - **Generated columns.** wal2json sends stored generated columns (pgoutput leaves them
//!   out), so they are in the Relation and the rows: the apply must not write them.
//!
//! Values are copied out of the payload (JSON strings need unescaping). A payload that fails
//! to decode leaves the decoder's state as it was; the decoder never panics and allocates
//! only in proportion to the bytes it was given.

mod json;
mod relations;
#[cfg(test)]
mod tests;
mod timestamp;

use std::fmt;

use bytes::Bytes;
use ferry_core::{Change, Datum, Lsn, PgTimestamp, Relation, RelationId, Row, TableName};

use json::Payload;
use relations::{Registry, Shape};

/// A payload that is not wal2json output this decoder understands. Never transient: the
/// same bytes decode the same way on every retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("wal2json payload is not a JSON object of the expected shape: {reason}")]
    NotJson { reason: String },
    #[error("unknown wal2json action {action:?}")]
    UnknownAction { action: String },
    #[error("wal2json {action} has no \"{field}\": {fix}")]
    Missing {
        action: Action,
        field: &'static str,
        fix: &'static str,
    },
    #[error("wal2json {action}: \"{field}\" {problem}")]
    Invalid {
        action: Action,
        field: &'static str,
        problem: String,
    },
    #[error("wal2json {action} of table {table}: column {column:?} {problem}")]
    Column {
        action: Action,
        table: TableName,
        column: String,
        problem: String,
    },
    #[error(
        "wal2json {action} of table {table} carries no row identity: give the table a \
         primary key or REPLICA IDENTITY FULL on the source"
    )]
    NoIdentity { action: Action, table: TableName },
    #[error("wal2json {action} {problem}")]
    OutOfPlace { action: Action, problem: String },
}

impl DecodeError {
    /// Always false: a malformed payload is malformed on every retry.
    pub fn is_transient(&self) -> bool {
        false
    }

    /// The table the failing change was about, when it names one: a caller that does not
    /// replicate that table may skip the payload (the decoder's state is unchanged).
    pub fn table(&self) -> Option<&TableName> {
        match self {
            DecodeError::Column { table, .. } | DecodeError::NoIdentity { table, .. } => {
                Some(table)
            }
            _ => None,
        }
    }
}

/// The `action` of a wal2json format-version 2 object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Begin,
    Commit,
    Insert,
    Update,
    Delete,
    Truncate,
    Message,
}

impl Action {
    /// The action whose code is `code` (`B`, `C`, `I`, `U`, `D`, `T`, `M`).
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "B" => Action::Begin,
            "C" => Action::Commit,
            "I" => Action::Insert,
            "U" => Action::Update,
            "D" => Action::Delete,
            "T" => Action::Truncate,
            "M" => Action::Message,
            _ => return None,
        })
    }

    fn code(self) -> char {
        match self {
            Action::Begin => 'B',
            Action::Commit => 'C',
            Action::Insert => 'I',
            Action::Update => 'U',
            Action::Delete => 'D',
            Action::Truncate => 'T',
            Action::Message => 'M',
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Action::Begin => "begin",
            Action::Commit => "commit",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Truncate => "truncate",
            Action::Message => "message",
        };
        write!(f, "{name} ({})", self.code())
    }
}

/// Decodes one replication session's wal2json payloads in order.
///
/// One decoder per replication connection: it holds the synthetic Relations emitted so far
/// (a new connection must describe every table again, and does, because a new decoder has
/// emitted none), the open transaction, and a TRUNCATE waiting for its other tables.
#[derive(Debug, Clone, Default)]
pub struct Wal2JsonDecoder {
    relations: Registry,
    /// The xid of the transaction between B and C.
    open: Option<u32>,
    truncate: Option<PendingTruncate>,
}

/// T objects of one TRUNCATE statement, gathered until a payload of something else.
#[derive(Debug, Clone)]
struct PendingTruncate {
    lsn: Lsn,
    relations: Vec<RelationId>,
}

impl Wal2JsonDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the next payload of the session into the changes it completes: usually one,
    /// preceded by a Relation when the table's shape changed; none for a T object that
    /// joins a pending TRUNCATE.
    pub fn decode(&mut self, payload: &[u8]) -> Result<Vec<Change>, DecodeError> {
        let payload: Payload<'_> =
            serde_json::from_slice(payload).map_err(|e| DecodeError::NotJson {
                reason: e.to_string(),
            })?;
        let action =
            Action::from_code(&payload.action).ok_or_else(|| DecodeError::UnknownAction {
                action: payload.action.clone(),
            })?;
        match action {
            Action::Begin => self.begin(&payload),
            Action::Commit => self.commit(&payload),
            Action::Insert | Action::Update | Action::Delete => self.row(action, &payload),
            Action::Truncate => self.truncate(&payload),
            Action::Message => self.message(&payload),
        }
    }

    fn begin(&mut self, p: &Payload<'_>) -> Result<Vec<Change>, DecodeError> {
        let action = Action::Begin;
        let xid = required(action, p.xid, "xid", "stream with include-xids")?;
        let final_lsn = lsn(action, "lsn", p.lsn.as_deref())?;
        lsn(action, "nextlsn", p.nextlsn.as_deref())?;
        let commit_time = commit_time(action, p.timestamp.as_deref())?;
        if let Some(open) = self.open {
            return Err(out_of_place(
                action,
                format!("of xid {xid} while xid {open} is open"),
            ));
        }
        let mut out = self.finish_truncate();
        self.open = Some(xid);
        out.push(Change::Begin {
            final_lsn,
            commit_time,
            xid,
        });
        Ok(out)
    }

    fn commit(&mut self, p: &Payload<'_>) -> Result<Vec<Change>, DecodeError> {
        let action = Action::Commit;
        let xid = required(action, p.xid, "xid", "stream with include-xids")?;
        let commit_lsn = lsn(action, "lsn", p.lsn.as_deref())?;
        let end_lsn = lsn(action, "nextlsn", p.nextlsn.as_deref())?;
        let commit_time = commit_time(action, p.timestamp.as_deref())?;
        self.check_open(action, Some(xid))?;
        if end_lsn <= commit_lsn {
            return Err(invalid(
                action,
                "nextlsn",
                format!("{end_lsn} is not after the commit LSN {commit_lsn}"),
            ));
        }
        let mut out = self.finish_truncate();
        self.open = None;
        out.push(Change::Commit {
            commit_lsn,
            end_lsn,
            commit_time,
        });
        Ok(out)
    }

    fn row(&mut self, action: Action, p: &Payload<'_>) -> Result<Vec<Change>, DecodeError> {
        let table = table(action, p)?;
        let column_error = |e: json::ColumnProblem| DecodeError::Column {
            action,
            table: table.clone(),
            column: e.column,
            problem: e.problem,
        };
        let pk = p.pk.as_deref().ok_or(DecodeError::Missing {
            action,
            field: "pk",
            fix: "stream with include-pk",
        })?;
        let pk = json::names(pk).map_err(column_error)?;
        let new = match (&p.columns, action) {
            (Some(columns), Action::Insert | Action::Update) => {
                Some(json::row(columns).map_err(column_error)?)
            }
            (None, Action::Insert | Action::Update) => {
                return Err(invalid(action, "columns", "is missing".to_owned()))
            }
            _ => None,
        };
        let identity = match &p.identity {
            Some(columns) if !columns.is_empty() => Some(json::row(columns).map_err(column_error)?),
            _ => None,
        };
        self.check_open(action, p.xid)?;
        let shape = match (action, &new, &identity) {
            (Action::Insert, Some(new), _) => Shape::Insert { new },
            (Action::Update, Some(new), identity) => Shape::Update {
                new,
                identity: identity.as_deref(),
            },
            (_, _, Some(identity)) => Shape::Delete { identity },
            _ => return Err(DecodeError::NoIdentity { action, table }),
        };
        let relation = self.relations.plan(&table, Some(&shape), &pk);
        let change = match shape {
            Shape::Insert { new } => Change::Insert {
                stream_xid: None,
                relation: relation.id,
                new: relations::arrange(&relation, new, &Datum::Null),
            },
            Shape::Update { new, identity } => {
                let new = relations::arrange(&relation, new, &Datum::UnchangedToast);
                let (key, old) = match identity {
                    Some(identity) if relation.is_replica_identity_full() => (
                        None,
                        Some(relations::arrange(&relation, identity, &Datum::Null)),
                    ),
                    Some(identity) => {
                        let key = relations::key_row(&relation, identity);
                        (key_changed(&relation, &key, &new).then_some(key), None)
                    }
                    None => (None, None),
                };
                Change::Update {
                    stream_xid: None,
                    relation: relation.id,
                    key,
                    old,
                    new,
                }
            }
            Shape::Delete { identity } => {
                let (key, old) = if relation.is_replica_identity_full() {
                    (
                        None,
                        Some(relations::arrange(&relation, identity, &Datum::Null)),
                    )
                } else {
                    (Some(relations::key_row(&relation, identity)), None)
                };
                Change::Delete {
                    stream_xid: None,
                    relation: relation.id,
                    key,
                    old,
                }
            }
        };
        let mut out = self.finish_truncate();
        if let Some(relation) = self.relations.record(relation) {
            out.push(Change::Relation {
                stream_xid: None,
                relation,
            });
        }
        out.push(change);
        Ok(out)
    }

    fn truncate(&mut self, p: &Payload<'_>) -> Result<Vec<Change>, DecodeError> {
        let action = Action::Truncate;
        let table = table(action, p)?;
        let lsn = lsn(action, "lsn", p.lsn.as_deref())?;
        self.check_open(action, p.xid)?;
        let relation = self.relations.plan(&table, None, &[]);
        let id = relation.id;
        let mut out = match &self.truncate {
            Some(pending) if pending.lsn == lsn => Vec::new(),
            _ => self.finish_truncate(),
        };
        if let Some(relation) = self.relations.record(relation) {
            out.push(Change::Relation {
                stream_xid: None,
                relation,
            });
        }
        let pending = self.truncate.get_or_insert_with(|| PendingTruncate {
            lsn,
            relations: Vec::new(),
        });
        if !pending.relations.contains(&id) {
            pending.relations.push(id);
        }
        Ok(out)
    }

    fn message(&mut self, p: &Payload<'_>) -> Result<Vec<Change>, DecodeError> {
        let action = Action::Message;
        let transactional = required(action, p.transactional, "transactional", "")?;
        let lsn = lsn(action, "lsn", p.lsn.as_deref())?;
        let prefix = required(action, p.prefix.clone(), "prefix", "")?;
        let content = required(action, p.content.clone(), "content", "")?;
        if transactional {
            self.check_open(action, p.xid)?;
        }
        let mut out = self.finish_truncate();
        out.push(Change::Message {
            stream_xid: None,
            transactional,
            lsn,
            prefix,
            content: Bytes::from(content.into_bytes()),
        });
        Ok(out)
    }

    /// Fails unless a transaction is open (and, when the payload names its xid, it is the
    /// open one).
    fn check_open(&self, action: Action, xid: Option<u32>) -> Result<(), DecodeError> {
        match (self.open, xid) {
            (None, _) => Err(out_of_place(
                action,
                "outside a transaction (stream with include-transaction)".to_owned(),
            )),
            (Some(open), Some(xid)) if open != xid => Err(out_of_place(
                action,
                format!("of xid {xid} inside transaction {open}"),
            )),
            _ => Ok(()),
        }
    }

    /// The pending TRUNCATE as a change (none if nothing is pending).
    fn finish_truncate(&mut self) -> Vec<Change> {
        self.truncate
            .take()
            .map(|pending| Change::Truncate {
                stream_xid: None,
                relations: pending.relations,
                cascade: false,
                restart_identity: false,
            })
            .into_iter()
            .collect()
    }
}

/// Whether the old key differs from the new row's key columns (else pgoutput sends none).
fn key_changed(relation: &Relation, key: &Row, new: &Row) -> bool {
    relation
        .columns
        .iter()
        .zip(key.0.iter().zip(&new.0))
        .any(|(column, (old, new))| column.is_key && old != new)
}

fn table(action: Action, p: &Payload<'_>) -> Result<TableName, DecodeError> {
    let schema = required(
        action,
        p.schema.clone(),
        "schema",
        "stream with include-schemas",
    )?;
    let name = required(action, p.table.clone(), "table", "")?;
    Ok(TableName::new(schema, name))
}

fn required<T>(
    action: Action,
    value: Option<T>,
    field: &'static str,
    fix: &'static str,
) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::Missing {
        action,
        field,
        fix: if fix.is_empty() {
            "wal2json always sends it"
        } else {
            fix
        },
    })
}

fn lsn(action: Action, field: &'static str, text: Option<&str>) -> Result<Lsn, DecodeError> {
    let text = required(action, text, field, "stream with include-lsn")?;
    text.parse()
        .map_err(|_| invalid(action, field, format!("{text:?} is not an LSN")))
}

fn commit_time(action: Action, text: Option<&str>) -> Result<PgTimestamp, DecodeError> {
    let text = required(action, text, "timestamp", "stream with include-timestamp")?;
    timestamp::parse(text).ok_or_else(|| {
        invalid(
            action,
            "timestamp",
            format!("{text:?} is not an ISO timestamp with time zone"),
        )
    })
}

fn invalid(action: Action, field: &'static str, problem: String) -> DecodeError {
    DecodeError::Invalid {
        action,
        field,
        problem,
    }
}

fn out_of_place(action: Action, problem: String) -> DecodeError {
    DecodeError::OutOfPlace { action, problem }
}
