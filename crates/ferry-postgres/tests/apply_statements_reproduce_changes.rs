//! The SQL that `sink::apply` writes for real decoded pgoutput changes reproduces the
//! source on the target: unchanged TOAST values are kept, REPLICA IDENTITY FULL tables
//! without a key touch one row among duplicates, key changes move the row, TRUNCATE keeps
//! its options. (The streaming pipeline around it is issue 4; this checks its statements.)

use std::collections::HashMap;

use ferry_core::{Change, Relation, RelationId};
use ferry_pgwire::{
    ConnParams, ReplicationClient, ReplicationMessage, SlotOptions, SnapshotAction,
};
use ferry_postgres::sink::apply::{delete_sql, insert_sql, truncate_sql, update_sql};
use ferry_postgres::sink::batch::TargetRelation;
use ferry_postgres::source::decode::pgoutput::PgoutputDecoder;
use ferry_testkit::TempCluster;

fn params(cluster: &TempCluster) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    ))
    .unwrap()
}

/// Creates `schema` on both clusters, streams the changes of `workload` (run on the
/// source), applies them to the target with one transaction per source transaction, and
/// returns the number of source transactions applied (one per workload entry: an entry
/// with several statements wraps them in BEGIN and COMMIT).
async fn replicate(
    source: &TempCluster,
    target: &TempCluster,
    schema: &str,
    workload: &[&str],
) -> usize {
    source.psql(schema).unwrap();
    target.psql(schema).unwrap();
    source
        .psql("CREATE PUBLICATION ferry_apply FOR ALL TABLES")
        .unwrap();
    let mut client = ReplicationClient::connect(&params(source)).await.unwrap();
    let created = client
        .create_slot(
            "ferry_apply",
            "pgoutput",
            SlotOptions {
                temporary: true,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .await
        .unwrap();
    let mut stream = client
        .start_logical_replication(
            "ferry_apply",
            created.consistent_point,
            &[("proto_version", "1"), ("publication_names", "ferry_apply")],
        )
        .await
        .unwrap();
    for statement in workload {
        source.psql(statement).unwrap();
    }
    let mut target_client = ReplicationClient::connect_sql(&params(target))
        .await
        .unwrap();
    let mut decoder = PgoutputDecoder::new();
    let mut relations: HashMap<RelationId, Relation> = HashMap::new();
    let mut batch = String::new();
    let mut applied = 0;
    while applied < workload.len() {
        let Some(ReplicationMessage::XLogData(data)) = stream.next().await.unwrap() else {
            continue;
        };
        let sql = match decoder.decode(data.data).unwrap() {
            Change::Relation { relation, .. } => {
                relations.insert(relation.id, relation);
                None
            }
            Change::Begin { .. } => Some("BEGIN".to_owned()),
            Change::Commit { .. } => {
                applied += 1;
                Some("COMMIT".to_owned())
            }
            Change::Insert { relation, new, .. } => {
                Some(insert_sql(&relations[&relation], &new, &[]).unwrap())
            }
            Change::Update {
                relation,
                key,
                old,
                new,
                ..
            } => update_sql(
                &TargetRelation::plain(relations[&relation].clone()),
                key.as_ref(),
                old.as_ref(),
                &new,
            )
            .unwrap(),
            Change::Delete {
                relation, key, old, ..
            } => Some(
                delete_sql(
                    &TargetRelation::plain(relations[&relation].clone()),
                    key.as_ref(),
                    old.as_ref(),
                )
                .unwrap(),
            ),
            Change::Truncate {
                relations: ids,
                cascade,
                restart_identity,
                ..
            } => {
                let rels: Vec<&Relation> = ids.iter().map(|id| &relations[id]).collect();
                Some(truncate_sql(&rels, cascade, restart_identity))
            }
            _ => None,
        };
        if let Some(sql) = sql {
            batch.push_str(&sql);
            batch.push_str(";\n");
            if sql == "COMMIT" {
                target_client.simple_query(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    applied
}

fn digest(cluster: &TempCluster, table: &str) -> String {
    cluster
        .psql(&format!(
            "SELECT count(*) || ' ' || md5(coalesce(string_agg(md5(t::text), ',' ORDER BY md5(t::text)), '')) FROM {table} t"
        ))
        .unwrap()
}

#[tokio::test]
async fn unchanged_toast_is_kept() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    let schema = "CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text);
                  ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL;";
    let applied = replicate(
        &source,
        &target,
        schema,
        &[
            "INSERT INTO public.docs SELECT g, 't' || g, repeat(md5(g::text), 500) FROM generate_series(1, 5) g",
            "UPDATE public.docs SET title = 'renamed' WHERE id = 3",
        ],
    )
    .await;
    assert_eq!(applied, 2);
    assert_eq!(
        digest(&source, "public.docs"),
        digest(&target, "public.docs")
    );
    assert_eq!(
        target
            .psql("SELECT length(body) FROM public.docs WHERE id = 3")
            .unwrap()
            .trim(),
        "16000"
    );
}

#[tokio::test]
async fn replica_identity_full_without_key() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    let schema = "CREATE TABLE public.log (a int, b text);
                  ALTER TABLE public.log REPLICA IDENTITY FULL;
                  INSERT INTO public.log VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, NULL), (2, NULL);";
    replicate(
        &source,
        &target,
        schema,
        &[
            "DELETE FROM public.log WHERE ctid = (SELECT ctid FROM public.log WHERE a = 1 LIMIT 1)",
            "UPDATE public.log SET b = 'y' WHERE ctid = (SELECT ctid FROM public.log WHERE a = 2 LIMIT 1)",
            "INSERT INTO public.log VALUES (3, NULL)",
        ],
    )
    .await;
    assert_eq!(digest(&source, "public.log"), digest(&target, "public.log"));
    assert_eq!(
        target
            .psql("SELECT count(*) FROM public.log WHERE a = 1")
            .unwrap()
            .trim(),
        "2",
        "exactly one of three identical rows is deleted"
    );
}

#[tokio::test]
async fn key_change_is_applied() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    let schema = "CREATE TABLE public.accounts (id int PRIMARY KEY, owner text);
                  INSERT INTO public.accounts VALUES (1, 'ann'), (2, 'bob');";
    replicate(
        &source,
        &target,
        schema,
        &[
            "UPDATE public.accounts SET id = 10, owner = 'ann2' WHERE id = 1",
            "DELETE FROM public.accounts WHERE id = 2",
        ],
    )
    .await;
    assert_eq!(
        digest(&source, "public.accounts"),
        digest(&target, "public.accounts")
    );
    assert_eq!(
        target
            .psql("SELECT id FROM public.accounts")
            .unwrap()
            .trim(),
        "10"
    );
}

#[tokio::test]
async fn truncate_is_applied() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    let schema = "CREATE TABLE public.a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
                  CREATE TABLE public.b (id int PRIMARY KEY, v text);";
    replicate(
        &source,
        &target,
        schema,
        &[
            "BEGIN; INSERT INTO public.a (v) VALUES ('one'), ('two'); INSERT INTO public.b VALUES (1, 'x'); COMMIT",
            "TRUNCATE public.a, public.b RESTART IDENTITY",
            "INSERT INTO public.a (v) VALUES ('after')",
        ],
    )
    .await;
    assert_eq!(digest(&source, "public.a"), digest(&target, "public.a"));
    assert_eq!(digest(&source, "public.b"), digest(&target, "public.b"));
    assert_eq!(target.psql("SELECT id FROM public.a").unwrap().trim(), "1");
}
