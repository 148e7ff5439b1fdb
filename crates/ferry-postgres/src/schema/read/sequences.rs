//! The sequences selected tables use, with their parameters and current value.
//!
//! Two kinds of link bring a sequence in: ownership by a selected column (`pg_depend`
//! `deptype` `a` for serial columns, `i` for identity columns) and a `nextval()` in a
//! selected column's default (a `pg_depend` row from the `pg_attrdef` to the sequence),
//! which catches sequences shared between tables or owned by none. The value is read with
//! `SELECT last_value, is_called FROM seq` inside the caller's snapshot, so it is the
//! value that goes with the copied rows.

use std::collections::{BTreeMap, HashMap};

use ferry_core::TableName;
use tokio_postgres::Client;

use super::get;
use crate::schema::create::SchemaError;
use crate::schema::model::SequenceDef;

/// Sequences used by the tables `tables` (oid to name), in schema and name order.
pub(super) async fn read_sequences(
    client: &Client,
    tables: &HashMap<u32, TableName>,
) -> Result<Vec<SequenceDef>, SchemaError> {
    let oids: Vec<u32> = tables.keys().copied().collect();
    let what = "the sequences of the selected tables";
    // Sequences owned by a selected column: sequence, table, column, `a` or `i`.
    let owned = client
        .query(
            "SELECT d.objid, d.refobjid, a.attname::text, d.deptype::text
             FROM pg_depend d
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = ANY($1) AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')",
            &[&oids],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    // Sequences a default of a selected column refers to (nextval('…'::regclass)).
    let used = client
        .query(
            "SELECT DISTINCT d.refobjid
             FROM pg_depend d
             JOIN pg_attrdef ad ON ad.oid = d.objid
             JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
             WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
               AND ad.adrelid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(SchemaError::catalog(what))?;

    let mut owners: HashMap<u32, ((TableName, String), bool)> = HashMap::new();
    for row in &owned {
        let sequence: u32 = get(row, 0, what)?;
        let table: u32 = get(row, 1, what)?;
        let column: String = get(row, 2, what)?;
        let deptype: String = get(row, 3, what)?;
        if let Some(name) = tables.get(&table) {
            owners.insert(sequence, ((name.clone(), column), deptype == "i"));
        }
    }
    let mut wanted: Vec<u32> = owners.keys().copied().collect();
    for row in &used {
        wanted.push(get(row, 0, what)?);
    }
    wanted.sort_unstable();
    wanted.dedup();

    // Parameters of each wanted sequence (pg_sequence, PostgreSQL 10+).
    let rows = client
        .query(
            "SELECT q.seqrelid, n.nspname::text, c.relname::text, format_type(q.seqtypid, NULL),
                    q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache, q.seqcycle
             FROM pg_sequence q
             JOIN pg_class c ON c.oid = q.seqrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE q.seqrelid = ANY($1)",
            &[&wanted],
        )
        .await
        .map_err(SchemaError::catalog(what))?;
    let mut sequences = BTreeMap::new();
    for row in &rows {
        let oid: u32 = get(row, 0, what)?;
        let name = TableName::new(get::<String>(row, 1, what)?, get::<String>(row, 2, what)?);
        let (last_value, is_called) = current_value(client, &name).await?;
        let (owned_by, identity) = match owners.remove(&oid) {
            Some((owner, identity)) => (Some(owner), identity),
            None => (None, false),
        };
        let sequence = SequenceDef {
            name: name.clone(),
            data_type: get(row, 3, what)?,
            start: get(row, 4, what)?,
            increment: get(row, 5, what)?,
            min: get(row, 6, what)?,
            max: get(row, 7, what)?,
            cache: get(row, 8, what)?,
            cycle: get(row, 9, what)?,
            last_value,
            is_called,
            owned_by,
            identity,
        };
        sequences.insert(name, sequence);
    }
    Ok(sequences.into_values().collect())
}

/// `last_value` and `is_called` of sequence `name`.
async fn current_value(client: &Client, name: &TableName) -> Result<(i64, bool), SchemaError> {
    let row = client
        .query_one(
            &format!("SELECT last_value, is_called FROM {}", name.quoted()),
            &[],
        )
        .await
        .map_err(|source| SchemaError::Sequence {
            sequence: name.clone(),
            source,
        })?;
    let error = |source| SchemaError::Sequence {
        sequence: name.clone(),
        source,
    };
    Ok((
        row.try_get(0).map_err(error)?,
        row.try_get(1).map_err(error)?,
    ))
}
