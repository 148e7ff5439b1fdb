//! Turning decoded changes into SQL for the target: the statement side of incremental apply.
//!
//! Each row change becomes one statement whose values are the source's text output as
//! literals, so the target's input functions parse them (DESIGN.md invariant 6: no value
//! goes through a Rust type). The rules that make apply exact live here:
//!
//! - INSERT uses `OVERRIDING SYSTEM VALUE`, so identity columns keep the source's values.
//! - UPDATE never writes a column whose value the source did not send (an unchanged TOAST
//!   value): it is left out of SET, so the target keeps what it has.
//! - UPDATE and DELETE find the row by the old key (`K` tuple, sent when the key changed),
//!   else by the key columns of the new tuple; with REPLICA IDENTITY FULL (`O` tuple) by
//!   every old value, touching exactly one row among identical duplicates
//!   (`ctid = (SELECT ctid … LIMIT 1)`).
//! - REPLICA IDENTITY FULL matching is exact for every type: a type's `=` is not identity
//!   (box and circle compare by area, numeric `1.0 = 1.00`, interval `1 day = 24 hours`,
//!   citext ignores case, float `-0 = 0`) and json, xml or point have none. Each old value
//!   is compared by its text form, with the literal read through the target column's type
//!   so both sides are printed by the same output function under the same settings
//!   (`c::text COLLATE "C" = ('v'::type)::text`), NULL by `IS NULL`. Types whose `=` is
//!   identity (integers, uuid, bool, date, timestamps, bytea, oid) use `=`, which an index
//!   can serve.
//! - TRUNCATE keeps CASCADE and RESTART IDENTITY.
//!
//! Statements are built as text for one multi-statement round trip per batch; the runtime
//! wraps them in a transaction together with the progress row.

use ferry_core::{quote_ident, quote_literal, Datum, Relation, RelationColumn, Row, TableName};

use super::batch::TargetRelation;

/// Why a change cannot be turned into SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("a change refers to relation {0}, which no Relation message described")]
    UnknownRelation(u32),
    #[error(
        "table {table} sent a {op} without any row identity: give it a primary key or \
         REPLICA IDENTITY FULL on the source (see ferry check)"
    )]
    NoIdentity { table: TableName, op: &'static str },
    #[error("table {table}: a tuple has {got} values for {expected} columns")]
    ColumnCount {
        table: TableName,
        got: usize,
        expected: usize,
    },
    #[error("table {table}: binary values cannot be applied as SQL text; stream without pgoutput's binary option")]
    Binary { table: TableName },
}

/// The target table of `relation` (same schema and name).
pub fn target_table(relation: &Relation) -> TableName {
    TableName::new(relation.schema.clone(), relation.name.clone())
}

pub(crate) fn literal(table: &TableName, datum: &Datum) -> Result<Option<String>, ApplyError> {
    match datum {
        Datum::Null => Ok(Some("NULL".to_owned())),
        Datum::UnchangedToast => Ok(None),
        Datum::Text(bytes) => Ok(Some(quote_literal(&String::from_utf8_lossy(bytes)))),
        Datum::Binary(_) => Err(ApplyError::Binary {
            table: table.clone(),
        }),
    }
}

fn check_len(relation: &Relation, row: &Row) -> Result<(), ApplyError> {
    if row.0.len() != relation.columns.len() {
        return Err(ApplyError::ColumnCount {
            table: target_table(relation),
            got: row.0.len(),
            expected: relation.columns.len(),
        });
    }
    Ok(())
}

/// `INSERT` of `new`, leaving out the columns flagged in `skip` (the target's generated
/// columns, which wal2json and decoderbufs send; an empty slice flags none).
pub fn insert_sql(relation: &Relation, new: &Row, skip: &[bool]) -> Result<String, ApplyError> {
    check_len(relation, new)?;
    let table = target_table(relation);
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for (i, (column, datum)) in relation.columns.iter().zip(&new.0).enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        // A new row never carries an unchanged TOAST value; skip rather than guess.
        if let Some(value) = literal(&table, datum)? {
            columns.push(quote_ident(&column.name));
            values.push(value);
        }
    }
    Ok(format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})",
        table.quoted(),
        columns.join(", "),
        values.join(", ")
    ))
}

/// Built-in types whose `=` holds only between identical values (by OID, which is the
/// same in every cluster for built-in types).
const IDENTITY_EQUALITY: &[u32] = &[
    16,   // bool
    17,   // bytea
    20,   // int8
    21,   // int2
    23,   // int4
    26,   // oid
    1082, // date
    1114, // timestamp
    1184, // timestamptz
    2950, // uuid
];

/// The condition that `column` holds exactly the value the source sent as `datum`
/// (`None` for an unchanged TOAST value, which says nothing). `type_sql` is the target
/// column's type; without it the literal is compared as the source printed it.
fn exact_match(
    table: &TableName,
    column: &RelationColumn,
    datum: &Datum,
    type_sql: Option<&str>,
) -> Result<Option<String>, ApplyError> {
    let name = quote_ident(&column.name);
    if matches!(datum, Datum::Null) {
        return Ok(Some(format!("{name} IS NULL")));
    }
    let Some(value) = literal(table, datum)? else {
        return Ok(None);
    };
    if IDENTITY_EQUALITY.contains(&column.type_oid) {
        return Ok(Some(format!("{name} = {value}")));
    }
    Ok(Some(match type_sql {
        Some(ty) => format!("{name}::text COLLATE \"C\" = ({value}::{ty})::text COLLATE \"C\""),
        None => format!("{name}::text COLLATE \"C\" = {value}"),
    }))
}

/// The WHERE clause finding the old row: by `key` (K tuple), by `old` (O tuple, REPLICA
/// IDENTITY FULL, matched exactly; `types` are the target's column types), or by the key
/// columns of `new` when neither was sent.
fn row_filter(
    relation: &Relation,
    key: Option<&Row>,
    old: Option<&Row>,
    new: Option<&Row>,
    types: &[String],
    op: &'static str,
) -> Result<String, ApplyError> {
    let table = target_table(relation);
    if let Some(old) = old {
        check_len(relation, old)?;
        let mut conditions = Vec::new();
        for (i, (column, datum)) in relation.columns.iter().zip(&old.0).enumerate() {
            let type_sql = types.get(i).map(String::as_str);
            if let Some(condition) = exact_match(&table, column, datum, type_sql)? {
                conditions.push(condition);
            }
        }
        if conditions.is_empty() {
            return Err(ApplyError::NoIdentity { table, op });
        }
        return Ok(format!(
            "ctid = (SELECT ctid FROM ONLY {} WHERE {} LIMIT 1)",
            table.quoted(),
            conditions.join(" AND ")
        ));
    }
    let source = key.or(new).ok_or(ApplyError::NoIdentity {
        table: table.clone(),
        op,
    })?;
    check_len(relation, source)?;
    let mut conditions = Vec::new();
    for (column, datum) in relation.columns.iter().zip(&source.0) {
        if !column.is_key {
            continue;
        }
        if let Some(value) = literal(&table, datum)? {
            conditions.push(format!("{} = {value}", quote_ident(&column.name)));
        }
    }
    if conditions.is_empty() {
        return Err(ApplyError::NoIdentity { table, op });
    }
    Ok(conditions.join(" AND "))
}

/// `UPDATE` to `new`, leaving unchanged TOAST columns alone. `None` when there is nothing
/// to set (every sent column unchanged).
///
/// Key columns are set only when the key changed (`key` sent): otherwise they are the
/// WHERE clause already. The target's generated columns are never written. Its
/// `GENERATED ALWAYS` identity columns, which an UPDATE can only set to DEFAULT, are written
/// when the source may have changed them (`SET id = DEFAULT`): a key whose old value
/// differs, or a non-key identity whose old value was not sent. The UPDATE is then wrapped
/// in `ALTER … SET GENERATED BY DEFAULT` and back to `ALWAYS`, in the same transaction.
/// The target's column types make REPLICA IDENTITY FULL matching exact (see the module
/// comment).
pub fn update_sql(
    target: &TargetRelation,
    key: Option<&Row>,
    old: Option<&Row>,
    new: &Row,
) -> Result<Option<String>, ApplyError> {
    let relation = &target.relation;
    check_len(relation, new)?;
    let table = target_table(relation);
    let key_unchanged = key.is_none() && old.is_none();
    let flag = |flags: &[bool], i: usize| flags.get(i).copied().unwrap_or(false);
    let mut sets = Vec::new();
    let mut identities = Vec::new();
    for (i, (column, datum)) in relation.columns.iter().zip(&new.0).enumerate() {
        if flag(&target.generated, i) || (key_unchanged && column.is_key) {
            continue;
        }
        let identity = flag(&target.identity_always, i);
        if identity {
            let before = old.or(key).and_then(|row| row.0.get(i));
            let known = before.is_some_and(|d| column.is_key || old.is_some() || *d != Datum::Null);
            if known && before == Some(datum) {
                continue;
            }
        }
        if let Some(value) = literal(&table, datum)? {
            sets.push(format!("{} = {value}", quote_ident(&column.name)));
            if identity {
                identities.push(quote_ident(&column.name));
            }
        }
    }
    if sets.is_empty() {
        return Ok(None);
    }
    let filter = row_filter(relation, key, old, Some(new), &target.types, "UPDATE")?;
    let update = format!(
        "UPDATE ONLY {} SET {} WHERE {filter}",
        table.quoted(),
        sets.join(", ")
    );
    if identities.is_empty() {
        return Ok(Some(update));
    }
    let alter = |how: &str| {
        let each: Vec<String> = identities
            .iter()
            .map(|c| format!("ALTER COLUMN {c} SET GENERATED {how}"))
            .collect();
        format!("ALTER TABLE {} {}", table.quoted(), each.join(", "))
    };
    Ok(Some(format!(
        "{}; {update}; {}",
        alter("BY DEFAULT"),
        alter("ALWAYS")
    )))
}

/// `DELETE` of the row identified by `key` or `old`, matched as [`update_sql`] does.
pub fn delete_sql(
    target: &TargetRelation,
    key: Option<&Row>,
    old: Option<&Row>,
) -> Result<String, ApplyError> {
    let relation = &target.relation;
    let filter = row_filter(relation, key, old, None, &target.types, "DELETE")?;
    Ok(format!(
        "DELETE FROM ONLY {} WHERE {filter}",
        target_table(relation).quoted()
    ))
}

/// `TRUNCATE` of `relations`, with the source's options.
pub fn truncate_sql(relations: &[&Relation], cascade: bool, restart_identity: bool) -> String {
    let names: Vec<String> = relations.iter().map(|r| target_table(r).quoted()).collect();
    let mut sql = format!("TRUNCATE {}", names.join(", "));
    if restart_identity {
        sql.push_str(" RESTART IDENTITY");
    }
    if cascade {
        sql.push_str(" CASCADE");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferry_core::RelationId;

    fn relation(identity: char) -> Relation {
        let column = |name: &str, is_key: bool| RelationColumn {
            name: name.into(),
            type_oid: 25,
            type_modifier: -1,
            is_key,
        };
        Relation {
            id: RelationId(1),
            schema: "public".into(),
            name: "Order".into(),
            replica_identity: identity,
            columns: vec![
                column("id", true),
                column("note", false),
                column("big", false),
            ],
        }
    }

    fn text(s: &str) -> Datum {
        Datum::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn unchanged_toast_columns_are_left_out_of_set() {
        let new = Row(vec![text("1"), text("it's"), Datum::UnchangedToast]);
        assert_eq!(
            update_sql(&TargetRelation::plain(relation('d')), None, None, &new)
                .unwrap()
                .unwrap(),
            r#"UPDATE ONLY "public"."Order" SET "note" = 'it''s' WHERE "id" = '1'"#
        );
    }

    #[test]
    fn key_change_finds_the_row_by_the_old_key() {
        let key = Row(vec![text("1"), Datum::Null, Datum::Null]);
        let new = Row(vec![text("2"), text("n"), text("b")]);
        let target = TargetRelation {
            generated: vec![false, false, true],
            ..TargetRelation::plain(relation('d'))
        };
        let sql = update_sql(&target, Some(&key), None, &new)
            .unwrap()
            .unwrap();
        assert_eq!(
            sql,
            r#"UPDATE ONLY "public"."Order" SET "id" = '2', "note" = 'n' WHERE "id" = '1'"#
        );
    }

    #[test]
    fn a_generated_always_identity_is_written_only_when_it_may_have_changed() {
        let always = TargetRelation {
            identity_always: vec![true, false, false],
            ..TargetRelation::plain(relation('d'))
        };
        let new = Row(vec![text("1"), text("n"), text("b")]);
        let same = update_sql(&always, None, None, &new).unwrap().unwrap();
        assert!(!same.contains("ALTER"), "{same}");
        let key = Row(vec![text("7"), Datum::Null, Datum::Null]);
        let changed = update_sql(&always, Some(&key), None, &new)
            .unwrap()
            .unwrap();
        assert_eq!(
            changed,
            r#"ALTER TABLE "public"."Order" ALTER COLUMN "id" SET GENERATED BY DEFAULT; UPDATE ONLY "public"."Order" SET "id" = '1', "note" = 'n', "big" = 'b' WHERE "id" = '7'; ALTER TABLE "public"."Order" ALTER COLUMN "id" SET GENERATED ALWAYS"#
        );
        // Outside the key, nothing says whether it changed: always written.
        let outside = TargetRelation {
            identity_always: vec![false, true, false],
            ..TargetRelation::plain(relation('d'))
        };
        let sql = update_sql(&outside, None, None, &new).unwrap().unwrap();
        assert!(sql.starts_with("ALTER TABLE"), "{sql}");
    }

    #[test]
    fn replica_identity_full_touches_one_row_matching_nulls() {
        let mut full = relation('f');
        full.columns[0].type_oid = 23;
        let old = Row(vec![text("1"), Datum::Null, text("b")]);
        let types = ["integer".to_owned(), "text".to_owned(), "json".to_owned()];
        let target = TargetRelation {
            types: types.to_vec(),
            ..TargetRelation::plain(full)
        };
        let sql = delete_sql(&target, None, Some(&old)).unwrap();
        assert_eq!(
            sql,
            r#"DELETE FROM ONLY "public"."Order" WHERE ctid = (SELECT ctid FROM ONLY "public"."Order" WHERE "id" = '1' AND "note" IS NULL AND "big"::text COLLATE "C" = ('b'::json)::text COLLATE "C" LIMIT 1)"#
        );
    }

    #[test]
    fn inserts_override_identity_and_truncate_keeps_options() {
        let new = Row(vec![text("1"), Datum::Null, text(r"a\b")]);
        assert_eq!(
            insert_sql(&relation('d'), &new, &[]).unwrap(),
            r#"INSERT INTO "public"."Order" ("id", "note", "big") OVERRIDING SYSTEM VALUE VALUES ('1', NULL, E'a\\b')"#
        );
        let r = relation('d');
        assert_eq!(
            truncate_sql(&[&r], true, true),
            r#"TRUNCATE "public"."Order" RESTART IDENTITY CASCADE"#
        );
    }

    #[test]
    fn missing_identity_and_wrong_arity_are_errors() {
        let mut keyless = relation('d');
        keyless.columns.iter_mut().for_each(|c| c.is_key = false);
        let row = Row(vec![text("1"), text("n"), text("b")]);
        let keyless = TargetRelation::plain(keyless);
        assert!(matches!(
            delete_sql(&keyless, None, None),
            Err(ApplyError::NoIdentity { .. })
        ));
        assert!(matches!(
            update_sql(&keyless, None, None, &row),
            Err(ApplyError::NoIdentity { .. })
        ));
        assert!(matches!(
            insert_sql(&relation('d'), &Row(vec![text("1")]), &[]),
            Err(ApplyError::ColumnCount { .. })
        ));
    }
}
