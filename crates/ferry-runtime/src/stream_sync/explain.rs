//! Target errors whose cause is what an output plugin cannot carry, turned into a stop that
//! names that cause, the plugin and the fix, instead of the bare constraint violation.
//!
//! wal2json writes NaN, Infinity and -Infinity of `numeric`, `real` and `double precision`
//! columns as JSON `null` (JSON has no such numbers): such a value arrives as NULL. In a
//! nullable column nothing can tell it from a real NULL (the README's Limits and `ferry
//! check` say so); in a NOT NULL column or a key the target refuses it, and the stop says
//! why.

use ferry_core::{quote_literal, TableName};
use ferry_postgres::Plugin;

use super::StreamSyncOptions;
use crate::error::SyncError;

/// `error` as it should reach the user: explained when its cause is known, else as it is.
pub(super) async fn explain(options: &StreamSyncOptions, error: SyncError) -> SyncError {
    if options.plugin != Plugin::Wal2json {
        return error;
    }
    let SyncError::Session { source, .. } = &error else {
        return error;
    };
    let Some(db) = source.as_db_error().filter(|db| db.code() == "23502") else {
        return error;
    };
    let fields = &db.0;
    let (Some(schema), Some(table), Some(column)) = (&fields.schema, &fields.table, &fields.column)
    else {
        return error;
    };
    let table = TableName::new(schema.clone(), table.clone());
    let Ok(client) = ferry_pgwire::connect_sql(&options.full.target).await else {
        return error;
    };
    let type_sql: Option<String> = client
        .query_opt(
            &format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = to_regclass({}) AND attname = $1",
                quote_literal(&table.quoted())
            ),
            &[column],
        )
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0));
    let Some(type_sql) = type_sql.filter(|t| is_floating(t)) else {
        return error;
    };
    SyncError::Refused {
        problem: format!(
            "a change of table {table} sets its NOT NULL column {column:?} ({type_sql}) to NULL on the target: \
             wal2json sends NaN, Infinity and -Infinity of numeric and floating-point columns as null, \
             so such a value on the source arrives as NULL ({error})"
        ),
        fix: "carry the pipeline with pgoutput ([source] plugin = \"pgoutput\"), which sends every value exactly, \
              and copy it anew; or keep NaN and Infinity out of the column on the source"
            .to_owned(),
    }
}

/// Whether `format_type` text names a type whose NaN or Infinity wal2json sends as null.
fn is_floating(type_sql: &str) -> bool {
    type_sql.starts_with("numeric") || type_sql == "real" || type_sql == "double precision"
}

#[cfg(test)]
mod tests {
    use super::is_floating;

    #[test]
    fn numeric_and_floating_types_are_the_ones_wal2json_nulls() {
        for t in ["numeric", "numeric(10,2)", "real", "double precision"] {
            assert!(is_floating(t), "{t}");
        }
        for t in ["integer", "text", "double precision[]", "money"] {
            assert!(!is_floating(t), "{t}");
        }
    }
}
