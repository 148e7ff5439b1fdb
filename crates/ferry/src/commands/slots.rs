//! `ferry slots list | drop | cleanup`: the replication slots of the configured sources.
//!
//! Slots are cluster-wide, so each distinct source cluster of the configuration is visited
//! once. A slot is shown with the WAL it retains and who owns it: a configured pipeline,
//! nobody (an orphan Ferry created, e.g. by a consumer that crashed and was reconfigured),
//! or something else (never touched by cleanup).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use ferry_pgwire::ConnParams;
use ferry_postgres::catalog::{self, SlotInfo};
use ferry_postgres::slots::{drop_slot, owner, Owner};

use crate::config::Config;

/// One source cluster and the slot names its pipelines use.
struct Cluster<'a> {
    conn: &'a ConnParams,
    pipelines: Vec<(String, String)>,
}

fn clusters(config: &Config) -> Vec<Cluster<'_>> {
    let mut out: Vec<Cluster<'_>> = Vec::new();
    for p in &config.pipelines {
        let entry = (p.name.clone(), p.source.slot.clone());
        match out.iter_mut().find(|c| c.conn.hosts == p.source.conn.hosts) {
            Some(cluster) => cluster.pipelines.push(entry),
            None => out.push(Cluster {
                conn: &p.source.conn,
                pipelines: vec![entry],
            }),
        }
    }
    out
}

async fn connect(conn: &ConnParams) -> anyhow::Result<(tokio_postgres::Client, u32)> {
    let client = ferry_pgwire::connect_sql(conn)
        .await
        .with_context(|| format!("cannot connect to {}", conn.redacted()))?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    Ok((client, u32::try_from(version).unwrap_or(0)))
}

fn endpoint(conn: &ConnParams) -> String {
    conn.hosts
        .first()
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// `ferry slots list`.
pub async fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for cluster in clusters(config) {
        let (client, version) = connect(cluster.conn).await?;
        let slots = catalog::slots(&client, version).await?;
        if !json {
            println!("source {}", endpoint(cluster.conn));
            println!(
                "  {:<24} {:<12} {:<12} {:<11} {:>14} {:<10} owner",
                "slot", "plugin", "database", "active", "retained WAL", "wal_status"
            );
        }
        for slot in slots {
            let owner = owner(&slot, &cluster.pipelines);
            if json {
                rows.push(serde_json::json!({
                    "source": endpoint(cluster.conn),
                    "slot": slot,
                    "owner": owner,
                }));
            } else {
                println!("  {}", describe(&slot, &owner));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(slot: &SlotInfo, owner: &Owner) -> String {
    let active = match (slot.active, slot.active_pid) {
        (true, Some(pid)) => format!("pid {pid}"),
        (true, None) => "yes".to_owned(),
        (false, _) => "no".to_owned(),
    };
    let owner = match owner {
        Owner::Pipeline(name) => format!("pipeline {name}"),
        Owner::Orphaned => "ferry, no pipeline (orphaned)".to_owned(),
        Owner::Other => "-".to_owned(),
    };
    format!(
        "{:<24} {:<12} {:<12} {:<11} {:>14} {:<10} {owner}",
        slot.name,
        slot.plugin.as_deref().unwrap_or("-"),
        slot.database.as_deref().unwrap_or("-"),
        active,
        slot.retained_bytes.map_or("-".to_owned(), bytes),
        slot.wal_status.as_deref().unwrap_or("-"),
    )
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `ferry slots drop NAME [--force]`, on the first source cluster that has the slot.
pub async fn drop(config: &Config, name: &str, force: bool) -> anyhow::Result<ExitCode> {
    for cluster in clusters(config) {
        let (client, version) = connect(cluster.conn).await?;
        if catalog::slot(&client, version, name).await?.is_none() {
            continue;
        }
        let slot = drop_slot(&client, version, name, force).await?;
        println!(
            "dropped slot {name:?} on {}, freeing {} of WAL",
            endpoint(cluster.conn),
            slot.retained_bytes
                .map_or("an unknown amount".to_owned(), bytes)
        );
        return Ok(ExitCode::SUCCESS);
    }
    bail!("no configured source has a replication slot named {name:?}: list them with ferry slots list")
}

/// `ferry slots cleanup [--older-than D] [--dry-run]`: drops inactive orphaned Ferry slots.
pub async fn cleanup(
    config: &Config,
    older_than: Option<Duration>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let mut freed = 0i64;
    let mut dropped = 0;
    for cluster in clusters(config) {
        let (client, version) = connect(cluster.conn).await?;
        let idle_long_enough: Option<Vec<String>> = match older_than {
            None => None,
            Some(_) if version < 170_000 => bail!(
                "--older-than needs PostgreSQL 17 or later (pg_replication_slots.inactive_since); \
                 run without it (every inactive orphaned slot is a candidate) and --dry-run first"
            ),
            Some(age) => Some(
                client
                    .query(
                        "SELECT slot_name::text FROM pg_replication_slots
                         WHERE inactive_since < now() - $1::interval",
                        &[&format!("{} seconds", age.as_secs())],
                    )
                    .await?
                    .into_iter()
                    .map(|r| r.get(0))
                    .collect(),
            ),
        };
        for slot in catalog::slots(&client, version).await? {
            let orphan = owner(&slot, &cluster.pipelines) == Owner::Orphaned;
            let old = idle_long_enough
                .as_ref()
                .is_none_or(|names| names.contains(&slot.name));
            if !orphan || slot.active || slot.temporary || !old {
                continue;
            }
            let retained = slot.retained_bytes.unwrap_or(0);
            if dry_run {
                println!("would drop {:?} ({} of WAL)", slot.name, bytes(retained));
            } else {
                drop_slot(&client, version, &slot.name, false).await?;
                println!("dropped {:?} ({} of WAL)", slot.name, bytes(retained));
            }
            freed += retained;
            dropped += 1;
        }
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!("{dropped} orphaned slots; {verb} {} of WAL", bytes(freed));
    Ok(ExitCode::SUCCESS)
}
