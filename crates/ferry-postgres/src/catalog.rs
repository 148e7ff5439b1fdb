//! Catalog queries, one function each, with what it returns.
//!
//! All SQL that reads `pg_catalog` lives here (STYLE.md), so that version differences are
//! handled in one place: `relispartition` and `pg_current_wal_lsn` arrived in 10,
//! `wal_status` in 13, `pubtruncate` in 11. Names come back as they are stored; quoting
//! happens where SQL is written, through `ferry_core::quote_ident`.

use ferry_core::TableName;
use tokio_postgres::Client;

mod publication;
pub use publication::{publication, PublicationInfo};

/// Server facts every check needs.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    /// `server_version`, e.g. `15.4 (Debian …)`.
    pub version: String,
    pub wal_level: String,
    pub max_replication_slots: i64,
    pub max_wal_senders: i64,
    pub database: String,
    pub user: String,
    pub is_superuser: bool,
    pub can_replicate: bool,
    pub can_create_in_database: bool,
}

impl ServerInfo {
    /// The major version as packages name it: 15, or 9.6 as 9.6.
    pub fn major_label(&self) -> String {
        if self.version_num >= 100_000 {
            (self.version_num / 10_000).to_string()
        } else {
            format!(
                "{}.{}",
                self.version_num / 10_000,
                self.version_num / 100 % 100
            )
        }
    }
}

/// Reads [`ServerInfo`] of the connected server and role.
pub async fn server_info(client: &Client) -> Result<ServerInfo, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4,
                    current_setting('server_version'),
                    current_setting('wal_level'),
                    current_setting('max_replication_slots')::int8,
                    current_setting('max_wal_senders')::int8,
                    current_database()::text,
                    current_user::text,
                    r.rolsuper, r.rolreplication,
                    has_database_privilege(current_database(), 'CREATE')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    Ok(ServerInfo {
        version_num: u32::try_from(row.get::<_, i32>(0)).unwrap_or(0),
        version: row.get(1),
        wal_level: row.get(2),
        max_replication_slots: row.get(3),
        max_wal_senders: row.get(4),
        database: row.get(5),
        user: row.get(6),
        is_superuser: row.get(7),
        can_replicate: row.get(8),
        can_create_in_database: row.get(9),
    })
}

/// Replication slots and WAL senders in use.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationUsage {
    pub slots_used: i64,
    pub walsenders_used: i64,
}

/// Counts slots and running WAL senders.
pub async fn replication_usage(
    client: &Client,
    version_num: u32,
) -> Result<ReplicationUsage, tokio_postgres::Error> {
    let senders = if version_num >= 100_000 {
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')"
    } else {
        "(SELECT count(*) FROM pg_stat_replication)"
    };
    let row = client
        .query_one(
            &format!("SELECT (SELECT count(*) FROM pg_replication_slots), {senders}"),
            &[],
        )
        .await?;
    Ok(ReplicationUsage {
        slots_used: row.get(0),
        walsenders_used: row.get(1),
    })
}

/// Connections still free for ordinary roles: `max_connections` less the reserved ones and
/// the client backends and WAL senders running now.
pub async fn free_connections(
    client: &Client,
    version_num: u32,
) -> Result<i64, tokio_postgres::Error> {
    let used = if version_num >= 100_000 {
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('client backend', 'walsender'))"
    } else {
        "(SELECT count(*) FROM pg_stat_activity)"
    };
    let row = client
        .query_one(
            &format!(
                "SELECT current_setting('max_connections')::int8
                        - current_setting('superuser_reserved_connections')::int8 - {used}"
            ),
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotInfo {
    pub name: String,
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub temporary: bool,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<String>,
    pub confirmed_flush_lsn: Option<String>,
    /// `reserved`, `extended`, `unreserved` or `lost` (13 and later).
    pub wal_status: Option<String>,
    /// Bytes of WAL the slot keeps from being recycled.
    pub retained_bytes: Option<i64>,
    /// Why the server invalidated the slot, in PostgreSQL's words (`wal_removed`,
    /// `rows_removed`, `wal_level_insufficient`, `idle_timeout`); `None` while it is usable.
    /// Read from `invalidation_reason` (17+), `conflicting` (16) and `wal_status` (13+), never
    /// from message text, which follows the server's `lc_messages`.
    pub invalidated: Option<String>,
}

impl SlotInfo {
    /// What invalidated the slot, said for a person, or `None` while it is usable.
    pub fn invalidation(&self) -> Option<String> {
        let reason = self.invalidated.as_deref()?;
        let why = match reason {
            "wal_removed" => "the WAL it needed was removed (max_slot_wal_keep_size)",
            "rows_removed" => "rows it needed were removed by vacuum on the primary",
            "wal_level_insufficient" => "wal_level on the primary fell below logical",
            "idle_timeout" => "it was idle longer than idle_replication_slot_timeout",
            _ => "the server invalidated it",
        };
        Some(format!("was invalidated ({reason}: {why})"))
    }
}

/// Every replication slot of the cluster (`name = None`) or the one named `name`.
async fn query_slots(
    client: &Client,
    version_num: u32,
    name: Option<&str>,
) -> Result<Vec<SlotInfo>, tokio_postgres::Error> {
    let wal_status = if version_num >= 130_000 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    let (current, diff) = if version_num >= 100_000 {
        ("pg_current_wal_lsn()", "pg_wal_lsn_diff")
    } else {
        ("pg_current_xlog_location()", "pg_xlog_location_diff")
    };
    let temporary = if version_num >= 100_000 {
        "temporary"
    } else {
        "false"
    };
    let lost = "CASE WHEN wal_status = 'lost' THEN 'wal_removed' END";
    let invalidated = match version_num {
        170_000.. => "invalidation_reason::text".to_owned(),
        160_000.. => format!("CASE WHEN conflicting THEN 'rows_removed' ELSE {lost} END"),
        130_000.. => lost.to_owned(),
        _ => "NULL::text".to_owned(),
    };
    let sql = format!(
        "SELECT slot_name::text, plugin::text, slot_type, database::text, {temporary}, active,
                active_pid, restart_lsn::text, confirmed_flush_lsn::text, {wal_status},
                {diff}({current}, restart_lsn)::int8, {invalidated}
         FROM pg_replication_slots WHERE $1::text IS NULL OR slot_name = $1 ORDER BY 1"
    );
    let rows = client.query(&sql, &[&name]).await?;
    Ok(rows
        .into_iter()
        .map(|row| SlotInfo {
            name: row.get(0),
            plugin: row.get(1),
            slot_type: row.get(2),
            database: row.get(3),
            temporary: row.get(4),
            active: row.get(5),
            active_pid: row.get(6),
            restart_lsn: row.get(7),
            confirmed_flush_lsn: row.get(8),
            wal_status: row.get(9),
            retained_bytes: row.get(10),
            invalidated: row.get(11),
        })
        .collect())
}

/// The slot named `name`, if it exists.
pub async fn slot(
    client: &Client,
    version_num: u32,
    name: &str,
) -> Result<Option<SlotInfo>, tokio_postgres::Error> {
    Ok(query_slots(client, version_num, Some(name)).await?.pop())
}

/// Every replication slot of the cluster, by name.
pub async fn slots(
    client: &Client,
    version_num: u32,
) -> Result<Vec<SlotInfo>, tokio_postgres::Error> {
    query_slots(client, version_num, None).await
}

/// How a table identifies its rows in UPDATE and DELETE (`relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// The primary key, if there is one.
    Default,
    /// No identity at all.
    Nothing,
    /// Every column.
    Full,
    /// A chosen unique index.
    Index,
}

/// A table of the source database.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: TableName,
    pub oid: u32,
    /// `r` for a table, `p` for a partitioned table.
    pub relkind: char,
    pub is_partition: bool,
    pub replica_identity: ReplicaIdentity,
    pub has_primary_key: bool,
    /// The index chosen by REPLICA IDENTITY USING INDEX still exists.
    pub has_identity_index: bool,
    pub can_select: bool,
    /// The current role owns the table (or is a member of its owner).
    pub owned: bool,
    /// UNLOGGED: its changes never reach the WAL, so no plugin can send them.
    pub unlogged: bool,
}

impl TableInfo {
    /// Whether UPDATE and DELETE of this table carry an identity for the row.
    pub fn has_row_identity(&self) -> bool {
        match self.replica_identity {
            ReplicaIdentity::Full => true,
            ReplicaIdentity::Default => self.has_primary_key,
            ReplicaIdentity::Index => self.has_identity_index,
            ReplicaIdentity::Nothing => false,
        }
    }
}

/// Every ordinary and partitioned table outside the system schemas, by name.
pub async fn tables(
    client: &Client,
    version_num: u32,
) -> Result<Vec<TableInfo>, tokio_postgres::Error> {
    let is_partition = if version_num >= 100_000 {
        "c.relispartition"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, c.oid, c.relkind::text, {is_partition},
                c.relreplident::text,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),
                has_table_privilege(c.oid, 'SELECT'),
                pg_has_role(c.relowner, 'USAGE'), c.relpersistence = 'u'
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
         ORDER BY 1, 2"
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let relkind: String = row.get(3);
            let ident: String = row.get(5);
            TableInfo {
                name: TableName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                oid: row.get(2),
                relkind: relkind.chars().next().unwrap_or('r'),
                is_partition: row.get(4),
                replica_identity: match ident.as_str() {
                    "n" => ReplicaIdentity::Nothing,
                    "f" => ReplicaIdentity::Full,
                    "i" => ReplicaIdentity::Index,
                    _ => ReplicaIdentity::Default,
                },
                has_primary_key: row.get(6),
                has_identity_index: row.get(7),
                can_select: row.get(8),
                owned: row.get(9),
                unlogged: row.get(10),
            }
        })
        .collect())
}

/// Each partition's parent, by oid (`pg_inherits` rows of partitions; inheritance children
/// that are not partitions are left out: their changes are their own table's).
pub async fn partition_parents(client: &Client) -> Result<Vec<(u32, u32)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT i.inhrelid, i.inhparent FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relispartition",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
/// A column of a table, with its exact SQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub table_oid: u32,
    pub name: String,
    /// `format_type` output: `character varying(20)`, `numeric(10,2)`, `integer[]`.
    pub type_name: String,
    pub not_null: bool,
    pub has_default: bool,
}

/// The live columns of the tables `oids`, in table then column order.
pub async fn columns(
    client: &Client,
    oids: &[u32],
) -> Result<Vec<ColumnInfo>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, a.atthasdef
             FROM pg_attribute a
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ColumnInfo {
            table_oid: row.get(0),
            name: row.get(1),
            type_name: row.get(2),
            not_null: row.get(3),
            has_default: row.get(4),
        })
        .collect())
}

/// A table of the target that has the name of a source table, with the current role's
/// privileges on it.
#[derive(Debug, Clone)]
pub struct TargetTableInfo {
    pub name: TableName,
    pub oid: u32,
    pub can_insert: bool,
    pub can_update: bool,
    pub can_delete: bool,
    pub can_truncate: bool,
}

/// The tables among `names` that exist on the connected (target) server.
pub async fn existing_tables(
    client: &Client,
    names: &[TableName],
) -> Result<Vec<TargetTableInfo>, tokio_postgres::Error> {
    let schemas: Vec<&str> = names.iter().map(|t| t.schema.as_str()).collect();
    let tables: Vec<&str> = names.iter().map(|t| t.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.oid,
                    has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'),
                    has_table_privilege(c.oid, 'DELETE'), has_table_privilege(c.oid, 'TRUNCATE')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
             ORDER BY 1, 2",
            &[&schemas, &tables],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| TargetTableInfo {
            name: TableName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            oid: row.get(2),
            can_insert: row.get(3),
            can_update: row.get(4),
            can_delete: row.get(5),
            can_truncate: row.get(6),
        })
        .collect())
}

/// For each schema name: whether it exists and whether the current role may create in it.
pub async fn schema_privileges(
    client: &Client,
    schemas: &[String],
) -> Result<Vec<(String, bool, bool)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT s.name, n.oid IS NOT NULL,
                    COALESCE(has_schema_privilege(n.oid, 'CREATE'), false)
             FROM unnest($1::text[]) AS s(name)
             LEFT JOIN pg_namespace n ON n.nspname = s.name
             ORDER BY 1",
            &[&schemas],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The tables among `oids` that the current role may not SELECT from.
pub async fn unreadable_tables(
    client: &Client,
    oids: &[u32],
) -> Result<Vec<TableName>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = ANY($1) AND NOT has_table_privilege(c.oid, 'SELECT')
             ORDER BY 1, 2",
            &[&oids],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}
