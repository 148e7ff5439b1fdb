//! The set-up SQL of timestamp-column sync, as text: pure, so `ferry setup timestamps` can
//! print exactly what `--apply` runs, and unit tests can pin it.
//!
//! Every name goes through `ferry_core`'s quoting; the function body is a quoted string
//! literal rather than dollar-quoted, so no column name can end it early. Object names are
//! kept within PostgreSQL's 63 bytes here ([`bounded_name`]) instead of letting the server
//! truncate them, which could make two tables' index names collide.

use std::collections::HashSet;

use ferry_core::{quote_ident, quote_literal, TableName};

use super::apply::LOCK_TIMEOUT;
use super::TimestampTable;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
const MAX_IDENT_BYTES: usize = 63;

/// One statement of the set-up and the object it creates or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupStatement {
    /// What the statement is about, for messages: `trigger "ferry_last_update" on table
    /// "public"."orders"`.
    pub object: String,
    /// The statement, without a trailing semicolon.
    pub sql: String,
}

/// The trigger function that stamps `column`: `ferry_set_<column>`.
pub fn function_name(column: &str) -> String {
    bounded_name(&format!("ferry_set_{column}"), "")
}

/// The trigger that stamps `column`: `ferry_<column>`.
pub fn trigger_name(column: &str) -> String {
    bounded_name(&format!("ferry_{column}"), "")
}

/// The index on `column` of `table` (in the table's schema): `<table>_<column>_ferry_idx`.
pub fn index_name(table: &TableName, column: &str) -> String {
    bounded_name(&format!("{}_{column}", table.name), "_ferry_idx")
}

/// The SQL that makes `column` of each table hold the time of the row's last INSERT or
/// UPDATE: one function per distinct column name in `function_schema`, then per table the
/// column, its index and the trigger. Repeated entries are set up once.
pub fn setup_sql(function_schema: &str, tables: &[TimestampTable]) -> Vec<SetupStatement> {
    setup_sql_except_indexes(function_schema, tables, |_| false)
}

/// [`setup_sql`] without the index of the tables for which `has_index` is true (they
/// already have one on the column, under another name).
pub(crate) fn setup_sql_except_indexes(
    function_schema: &str,
    tables: &[TimestampTable],
    has_index: impl Fn(&TimestampTable) -> bool,
) -> Vec<SetupStatement> {
    let tables = distinct(tables);
    let mut statements = Vec::new();
    let mut columns_done = HashSet::new();
    for t in &tables {
        if columns_done.insert(t.column.as_str()) {
            let function = qualified_function(function_schema, &t.column);
            statements.push(SetupStatement {
                object: format!("function {function}"),
                sql: format!(
                    "CREATE OR REPLACE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql AS {}",
                    quote_literal(&format!(
                        "BEGIN NEW.{} := now(); RETURN NEW; END",
                        quote_ident(&t.column)
                    ))
                ),
            });
        }
    }
    for t in &tables {
        let table = t.table.quoted();
        let column = quote_ident(&t.column);
        let index = quote_ident(&index_name(&t.table, &t.column));
        let trigger = quote_ident(&trigger_name(&t.column));
        let function = qualified_function(function_schema, &t.column);
        let column_object = format!("column {column} of table {table}");
        let trigger_object = format!("trigger {trigger} on table {table}");
        statements.push(SetupStatement {
            object: column_object,
            sql: format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} \
                 timestamp with time zone NOT NULL DEFAULT now()"
            ),
        });
        if !has_index(t) {
            statements.push(SetupStatement {
                object: format!("index {index} on table {table}"),
                sql: format!("CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})"),
            });
        }
        statements.push(SetupStatement {
            object: trigger_object.clone(),
            sql: format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
        });
        statements.push(SetupStatement {
            object: trigger_object.clone(),
            sql: format!(
                "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {table} \
                 FOR EACH ROW EXECUTE PROCEDURE {function}"
            ),
        });
        statements.push(SetupStatement {
            object: trigger_object,
            sql: format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}"),
        });
    }
    statements
}

/// [`setup_sql`] as one script for a person to read or run with psql: a transaction with
/// the same `lock_timeout` as [`super::apply_setup`], each statement under a comment
/// naming its object.
pub fn setup_script(function_schema: &str, tables: &[TimestampTable]) -> String {
    let mut script = format!(
        "BEGIN;\nSET LOCAL lock_timeout = {};\n",
        quote_literal(LOCK_TIMEOUT)
    );
    for statement in setup_sql(function_schema, tables) {
        script.push_str("\n-- ");
        // A newline in a quoted name would end the comment and turn the rest into SQL.
        script.extend(
            statement
                .object
                .chars()
                .map(|c| if c.is_control() { '?' } else { c }),
        );
        script.push('\n');
        script.push_str(&statement.sql);
        script.push_str(";\n");
    }
    script.push_str("\nCOMMIT;\n");
    script
}

/// `tables` without repeated (table, column) pairs, in first-seen order.
pub(crate) fn distinct(tables: &[TimestampTable]) -> Vec<&TimestampTable> {
    let mut seen = HashSet::new();
    tables.iter().filter(|t| seen.insert(*t)).collect()
}

/// `"schema"."ferry_set_<column>"()`.
fn qualified_function(function_schema: &str, column: &str) -> String {
    format!(
        "{}.{}()",
        quote_ident(function_schema),
        quote_ident(&function_name(column))
    )
}

/// `stem` + `tail` if it fits in 63 bytes; otherwise `stem` cut at a character boundary, an
/// underscore and 8 hex digits of its hash, then `tail`. The hash is FNV-1a, fixed forever,
/// so a later Ferry computes the same names and the set-up stays idempotent.
fn bounded_name(stem: &str, tail: &str) -> String {
    if stem.len() + tail.len() <= MAX_IDENT_BYTES {
        return format!("{stem}{tail}");
    }
    let hash = format!("_{:08x}", fnv1a32(stem.as_bytes()));
    let mut end = MAX_IDENT_BYTES
        .saturating_sub(tail.len() + hash.len())
        .min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{hash}{tail}", &stem[..end])
}

/// 32-bit FNV-1a.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, column: &str) -> TimestampTable {
        TimestampTable::new(TableName::new(schema, name), column)
    }

    #[test]
    fn default_column_gives_the_documented_statements() {
        let sql: Vec<String> = setup_sql("public", &[table("public", "orders", "last_update")])
            .into_iter()
            .map(|s| s.sql)
            .collect();
        assert_eq!(
            sql,
            [
                r#"CREATE OR REPLACE FUNCTION "public"."ferry_set_last_update"() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW."last_update" := now(); RETURN NEW; END'"#,
                r#"ALTER TABLE "public"."orders" ADD COLUMN IF NOT EXISTS "last_update" timestamp with time zone NOT NULL DEFAULT now()"#,
                r#"CREATE INDEX IF NOT EXISTS "orders_last_update_ferry_idx" ON "public"."orders" ("last_update")"#,
                r#"DROP TRIGGER IF EXISTS "ferry_last_update" ON "public"."orders""#,
                r#"CREATE TRIGGER "ferry_last_update" BEFORE INSERT OR UPDATE ON "public"."orders" FOR EACH ROW EXECUTE PROCEDURE "public"."ferry_set_last_update"()"#,
                r#"ALTER TABLE "public"."orders" ENABLE ALWAYS TRIGGER "ferry_last_update""#,
            ]
        );
    }

    #[test]
    fn names_with_quotes_spaces_and_case_are_quoted_everywhere() {
        let statements = setup_sql(
            "My Funcs",
            &[table("Sales", "Order's \"x\"", "Changed 'At'")],
        );
        let function = &statements[0].sql;
        assert!(
            function.starts_with(
                r#"CREATE OR REPLACE FUNCTION "My Funcs"."ferry_set_Changed 'At'"() "#
            ),
            "{function}"
        );
        // The body is a literal: the column's quotes are doubled inside it.
        assert!(
            function.ends_with(r#"AS 'BEGIN NEW."Changed ''At''" := now(); RETURN NEW; END'"#),
            "{function}"
        );
        assert_eq!(
            statements[1].sql,
            r#"ALTER TABLE "Sales"."Order's ""x""" ADD COLUMN IF NOT EXISTS "Changed 'At'" timestamp with time zone NOT NULL DEFAULT now()"#
        );
        assert_eq!(
            statements[2].sql,
            r#"CREATE INDEX IF NOT EXISTS "Order's ""x""_Changed 'At'_ferry_idx" ON "Sales"."Order's ""x""" ("Changed 'At'")"#
        );
        assert_eq!(
            statements[4].object,
            r#"trigger "ferry_Changed 'At'" on table "Sales"."Order's ""x""""#
        );
    }

    #[test]
    fn a_backslash_in_a_column_uses_an_escape_string_body() {
        let statements = setup_sql("public", &[table("public", "t", r"a\b")]);
        assert!(
            statements[0]
                .sql
                .ends_with(r#"AS E'BEGIN NEW."a\\b" := now(); RETURN NEW; END'"#),
            "{}",
            statements[0].sql
        );
    }

    #[test]
    fn one_function_per_distinct_column_and_repeats_are_dropped() {
        let tables = [
            table("public", "a", "last_update"),
            table("public", "b", "changed"),
            table("public", "c", "last_update"),
            table("public", "a", "last_update"),
        ];
        let statements = setup_sql("public", &tables);
        let functions: Vec<&str> = statements
            .iter()
            .filter(|s| s.sql.starts_with("CREATE OR REPLACE FUNCTION"))
            .map(|s| s.object.as_str())
            .collect();
        assert_eq!(
            functions,
            [
                r#"function "public"."ferry_set_last_update"()"#,
                r#"function "public"."ferry_set_changed"()"#
            ]
        );
        assert_eq!(statements.len(), 2 + 3 * 5);
    }

    #[test]
    fn long_names_are_cut_at_a_char_boundary_with_a_hash() {
        let long = "é".repeat(40); // 80 bytes
        for name in [
            function_name(&long),
            trigger_name(&long),
            index_name(&TableName::new("s", &long), "col"),
        ] {
            assert!(
                name.len() <= MAX_IDENT_BYTES,
                "{name} is {} bytes",
                name.len()
            );
        }
        let index = index_name(&TableName::new("s", &long), "col");
        assert!(index.ends_with("_ferry_idx"), "{index}");
        // Two names differing only past the cut stay different.
        let a = index_name(&TableName::new("s", format!("{long}a")), "col");
        let b = index_name(&TableName::new("s", format!("{long}b")), "col");
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        // Short names are left alone.
        assert_eq!(trigger_name("last_update"), "ferry_last_update");
        assert_eq!(index_name(&TableName::new("s", "t"), "c"), "t_c_ferry_idx");
    }

    #[test]
    fn the_name_hash_is_pinned() {
        // Changing it would make a new Ferry create a second index beside the old one.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(
            bounded_name(&"x".repeat(70), ""),
            format!(
                "{}_{:08x}",
                "x".repeat(54),
                fnv1a32("x".repeat(70).as_bytes())
            )
        );
    }

    #[test]
    fn script_is_one_transaction_and_comments_cannot_be_escaped() {
        let script = setup_script("public", &[table("public", "a\nDROP TABLE x", "c")]);
        assert!(
            script.starts_with("BEGIN;\nSET LOCAL lock_timeout = '10s';\n"),
            "{script}"
        );
        assert!(script.ends_with("\nCOMMIT;\n"), "{script}");
        // Inside the quoted names the newline is harmless; in a comment it would not be.
        assert!(
            !script.contains("-- column \"c\" of table \"public\".\"a\n"),
            "{script}"
        );
        assert!(script.contains("-- column \"c\" of table \"public\".\"a?DROP TABLE x\"\n"));
    }
}
