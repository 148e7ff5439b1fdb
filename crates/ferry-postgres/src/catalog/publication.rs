//! What a publication is and what it publishes, as the catalog says (pgoutput only).
//!
//! Three views of membership matter and differ: the tables named in it
//! (`pg_publication_rel`, what `ALTER PUBLICATION … DROP TABLE` can remove), the schemas
//! named in it (`pg_publication_namespace`, 15 and later), and what it actually publishes
//! (`pg_publication_tables`: leaf partitions instead of their root unless
//! `publish_via_partition_root`, 13 and later). Row filters and column lists (15 and later)
//! make a publication send less than the whole table, which Ferry must refuse.

use ferry_core::TableName;
use tokio_postgres::Client;

/// A publication and what it publishes.
#[derive(Debug, Clone, Default)]
pub struct PublicationInfo {
    pub all_tables: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    /// Always true before 11, which had no TRUNCATE in logical decoding at all.
    pub truncate: bool,
    /// Changes of partitions arrive under their root's name (13 and later).
    pub via_root: bool,
    pub owned: bool,
    /// What it publishes (`pg_publication_tables`).
    pub tables: Vec<TableName>,
    /// The tables named in it (`pg_publication_rel`).
    pub named: Vec<TableName>,
    /// The schemas named in it (`FOR TABLES IN SCHEMA`).
    pub schemas: Vec<String>,
    /// Tables named with a row filter (`WHERE`) or a column list: (table, which).
    pub partial: Vec<(TableName, &'static str)>,
}

impl PublicationInfo {
    /// Whether the publication sends every operation Ferry applies.
    pub fn publishes_everything(&self) -> bool {
        self.insert && self.update && self.delete && self.truncate
    }

    /// The operations it leaves out, as `publish` names them.
    pub fn missing_operations(&self) -> Vec<&'static str> {
        [
            (self.insert, "insert"),
            (self.update, "update"),
            (self.delete, "delete"),
            (self.truncate, "truncate"),
        ]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, name)| name)
        .collect()
    }

    /// Whether changes of `table` (not a partitioned table) are published.
    pub fn publishes(&self, table: &TableName) -> bool {
        self.all_tables || self.tables.contains(table) || self.schemas.contains(&table.schema)
    }
}

/// The publication `name`, if it exists.
pub async fn publication(
    client: &Client,
    version_num: u32,
    name: &str,
) -> Result<Option<PublicationInfo>, tokio_postgres::Error> {
    let truncate = if version_num >= 110_000 {
        "p.pubtruncate"
    } else {
        "true"
    };
    let via_root = if version_num >= 130_000 {
        "p.pubviaroot"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, {truncate}, {via_root},
                pg_has_role(p.pubowner, 'USAGE'), p.oid
         FROM pg_publication p WHERE p.pubname = $1"
    );
    let Some(row) = client.query_opt(&sql, &[&name]).await? else {
        return Ok(None);
    };
    let oid: u32 = row.get(7);
    let names = |rows: Vec<tokio_postgres::Row>| -> Vec<TableName> {
        rows.into_iter()
            .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect()
    };
    let tables = names(
        client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[&name],
            )
            .await?,
    );
    let partial_sql = if version_num >= 150_000 {
        "r.prqual IS NOT NULL, r.prattrs IS NOT NULL"
    } else {
        "false, false"
    };
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, {partial_sql}
                 FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = $1"
            ),
            &[&oid],
        )
        .await?;
    let mut named = Vec::new();
    let mut partial = Vec::new();
    for row in rows {
        let table = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if row.get::<_, bool>(2) {
            partial.push((table.clone(), "a row filter (WHERE)"));
        } else if row.get::<_, bool>(3) {
            partial.push((table.clone(), "a column list"));
        }
        named.push(table);
    }
    let schemas = if version_num >= 150_000 {
        client
            .query(
                "SELECT n.nspname::text FROM pg_publication_namespace pn
                 JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = $1",
                &[&oid],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(PublicationInfo {
        all_tables: row.get(0),
        insert: row.get(1),
        update: row.get(2),
        delete: row.get(3),
        truncate: row.get(4),
        via_root: row.get(5),
        owned: row.get(6),
        tables,
        named,
        schemas,
        partial,
    }))
}
