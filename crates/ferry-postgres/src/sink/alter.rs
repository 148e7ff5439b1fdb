//! Following a source table's columns on the target: the DDL that turns the target table's
//! column list into the one a new Relation message describes.
//!
//! Logical decoding does not carry DDL. What it does carry is a Relation message, sent
//! before the first change after a table's columns changed; comparing it with the target's
//! columns tells what happened, and the statements here are applied in the same target
//! transaction, before the change that needs them.
//!
//! What a column list can and cannot tell:
//! - A column whose name is new and which sits at the end is an `ADD COLUMN`; one whose name
//!   is gone is a `DROP COLUMN`; a name in both with another type is `ALTER COLUMN TYPE`.
//! - A rename keeps the column's position and type and changes its name, so a gone name and
//!   a new name at the same position with the same type are read as a rename (the rows keep
//!   their values). The one ambiguity: a column dropped and another of the same type added
//!   at the very position the dropped one had (it was the last) between two changes reads as
//!   a rename, keeping the old values where the source has NULL or its default. It is
//!   documented in the README.
//! - A column added with a default gives the source's existing rows that value without
//!   writing them (no change is decoded), so `ADD COLUMN` carries the value the source
//!   stores for them ([`SourceColumn::missing_value`]) and drops the default at once.

use ferry_core::{quote_ident, quote_literal, TableName};

/// One column as a list to compare: its name and its type as `format_type` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnShape {
    pub name: String,
    pub type_sql: String,
}

impl ColumnShape {
    pub fn new(name: impl Into<String>, type_sql: impl Into<String>) -> Self {
        ColumnShape {
            name: name.into(),
            type_sql: type_sql.into(),
        }
    }
}

/// What the source's catalog says about a column being added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceColumn {
    /// The value existing rows read (`attmissingval`) when the column was added with a
    /// non-volatile default, as text.
    pub missing_value: Option<String>,
}

/// The statements that make `table`'s columns `current` into `wanted`, in order; empty when
/// they already match. `added` is asked about each column to add.
pub fn alter_statements(
    table: &TableName,
    current: &[ColumnShape],
    wanted: &[ColumnShape],
    mut added: impl FnMut(&ColumnShape) -> SourceColumn,
) -> Vec<String> {
    let has = |list: &[ColumnShape], name: &str| list.iter().any(|c| c.name == name);
    let gone: Vec<usize> = (0..current.len())
        .filter(|&i| !has(wanted, &current[i].name))
        .collect();
    let new: Vec<usize> = (0..wanted.len())
        .filter(|&i| !has(current, &wanted[i].name))
        .collect();
    let quoted = table.quoted();
    let mut statements = Vec::new();
    let mut renamed_to = Vec::new();
    for &i in &gone {
        let old = &current[i];
        let rename = wanted
            .get(i)
            .filter(|w| new.contains(&i) && w.type_sql == old.type_sql);
        match rename {
            Some(target) => {
                statements.push(format!(
                    "ALTER TABLE {quoted} RENAME COLUMN {} TO {}",
                    quote_ident(&old.name),
                    quote_ident(&target.name)
                ));
                renamed_to.push(i);
            }
            None => statements.push(format!(
                "ALTER TABLE {quoted} DROP COLUMN {}",
                quote_ident(&old.name)
            )),
        }
    }
    for column in wanted {
        let Some(old) = current.iter().find(|c| c.name == column.name) else {
            continue;
        };
        if old.type_sql != column.type_sql {
            statements.push(format!(
                "ALTER TABLE {quoted} ALTER COLUMN {name} TYPE {ty} USING {name}::{ty}",
                name = quote_ident(&column.name),
                ty = column.type_sql
            ));
        }
    }
    for &i in new.iter().filter(|i| !renamed_to.contains(i)) {
        let column = &wanted[i];
        let name = quote_ident(&column.name);
        match added(column).missing_value {
            Some(value) => {
                statements.push(format!(
                    "ALTER TABLE {quoted} ADD COLUMN {name} {} DEFAULT {}",
                    column.type_sql,
                    quote_literal(&value)
                ));
                statements.push(format!(
                    "ALTER TABLE {quoted} ALTER COLUMN {name} DROP DEFAULT"
                ));
            }
            None => statements.push(format!(
                "ALTER TABLE {quoted} ADD COLUMN {name} {}",
                column.type_sql
            )),
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(list: &[(&str, &str)]) -> Vec<ColumnShape> {
        list.iter().map(|(n, t)| ColumnShape::new(*n, *t)).collect()
    }

    fn table() -> TableName {
        TableName::new("public", "Items")
    }

    fn none(_: &ColumnShape) -> SourceColumn {
        SourceColumn::default()
    }

    #[test]
    fn same_columns_need_nothing() {
        let cols = shapes(&[("id", "bigint"), ("note", "text")]);
        assert!(alter_statements(&table(), &cols, &cols, none).is_empty());
    }

    #[test]
    fn a_new_name_at_the_end_is_added_with_the_rows_missing_value() {
        let current = shapes(&[("id", "bigint")]);
        let wanted = shapes(&[("id", "bigint"), ("Qty", "integer")]);
        let found = alter_statements(&table(), &current, &wanted, |_| SourceColumn {
            missing_value: Some("5".into()),
        });
        assert_eq!(
            found,
            [
                r#"ALTER TABLE "public"."Items" ADD COLUMN "Qty" integer DEFAULT '5'"#,
                r#"ALTER TABLE "public"."Items" ALTER COLUMN "Qty" DROP DEFAULT"#,
            ]
        );
    }

    #[test]
    fn a_gone_name_is_dropped() {
        let current = shapes(&[("id", "bigint"), ("old", "text"), ("n", "integer")]);
        let wanted = shapes(&[("id", "bigint"), ("n", "integer")]);
        assert_eq!(
            alter_statements(&table(), &current, &wanted, none),
            [r#"ALTER TABLE "public"."Items" DROP COLUMN "old""#]
        );
    }

    #[test]
    fn a_name_change_in_place_with_the_same_type_is_a_rename() {
        let current = shapes(&[("id", "bigint"), ("note", "text"), ("n", "integer")]);
        let wanted = shapes(&[("id", "bigint"), ("remark", "text"), ("n", "integer")]);
        assert_eq!(
            alter_statements(&table(), &current, &wanted, none),
            [r#"ALTER TABLE "public"."Items" RENAME COLUMN "note" TO "remark""#]
        );
    }

    #[test]
    fn a_drop_and_an_add_elsewhere_stay_a_drop_and_an_add() {
        let current = shapes(&[("id", "bigint"), ("note", "text"), ("n", "integer")]);
        let wanted = shapes(&[("id", "bigint"), ("n", "integer"), ("extra", "text")]);
        assert_eq!(
            alter_statements(&table(), &current, &wanted, none),
            [
                r#"ALTER TABLE "public"."Items" DROP COLUMN "note""#,
                r#"ALTER TABLE "public"."Items" ADD COLUMN "extra" text"#,
            ]
        );
    }

    #[test]
    fn a_type_change_is_altered_with_a_cast() {
        let current = shapes(&[("id", "integer")]);
        let wanted = shapes(&[("id", "bigint")]);
        assert_eq!(
            alter_statements(&table(), &current, &wanted, none),
            [r#"ALTER TABLE "public"."Items" ALTER COLUMN "id" TYPE bigint USING "id"::bigint"#]
        );
    }
}
