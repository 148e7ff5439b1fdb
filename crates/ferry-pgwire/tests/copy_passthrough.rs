//! COPY through Ferry's own client: the source's CopyData messages reach the target
//! unchanged, row counts come back from both sides, and a failing source leaves nothing in
//! the target.

use ferry_pgwire::{ConnParams, ReplicationClient};
use ferry_testkit::TempCluster;

fn params(cluster: &TempCluster) -> ConnParams {
    ConnParams::parse(&format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    ))
    .unwrap()
}

const TABLE: &str = "CREATE TABLE public.t (id int PRIMARY KEY, note text, data bytea)";

#[tokio::test]
async fn copy_frames_pass_from_source_to_target_unchanged() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "{TABLE}; INSERT INTO public.t SELECT g, repeat('x', g % 300), decode(md5(g::text), 'hex')
             FROM generate_series(1, 20000) g"
        ))
        .unwrap();
    target.psql(TABLE).unwrap();
    let mut from = ReplicationClient::connect_sql(&params(&source))
        .await
        .unwrap();
    let mut into = ReplicationClient::connect_sql(&params(&target))
        .await
        .unwrap();
    for format in ["binary", "text"] {
        into.simple_query("TRUNCATE public.t").await.unwrap();
        let mut out = from
            .copy_out(&format!("COPY public.t TO STDOUT (FORMAT {format})"))
            .await
            .unwrap();
        let mut load = into
            .copy_in(&format!("COPY public.t FROM STDIN (FORMAT {format})"))
            .await
            .unwrap();
        let mut runs = 0;
        while let Some(frames) = out.next_frames().await.unwrap() {
            assert_eq!(frames[0], b'd', "a run starts with a CopyData message");
            load.send_frames(&frames).await.unwrap();
            runs += 1;
        }
        assert!(runs > 1, "expected the data to arrive in several runs");
        assert_eq!(out.finish().await.unwrap(), 20_000);
        assert_eq!(load.finish().await.unwrap(), 20_000);
        let digest = "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.t";
        assert_eq!(
            source.psql(digest).unwrap(),
            target.psql(digest).unwrap(),
            "{format}"
        );
    }
    // Both connections are ready for more work afterwards.
    assert_eq!(
        into.simple_query("SELECT count(*) FROM public.t")
            .await
            .unwrap()[0]
            .get(0, "count"),
        Some("20000")
    );
}

#[tokio::test]
async fn a_target_error_is_reported_at_finish_and_the_connection_survives() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "{TABLE}; INSERT INTO public.t SELECT g, 'n', NULL FROM generate_series(1, 100) g"
        ))
        .unwrap();
    target
        .psql(&format!(
            "{TABLE}; INSERT INTO public.t VALUES (50, 'already here', NULL)"
        ))
        .unwrap();
    let mut from = ReplicationClient::connect_sql(&params(&source))
        .await
        .unwrap();
    let mut into = ReplicationClient::connect_sql(&params(&target))
        .await
        .unwrap();
    let mut out = from
        .copy_out("COPY public.t TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let mut load = into
        .copy_in("COPY public.t FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    while let Some(frames) = out.next_frames().await.unwrap() {
        load.send_frames(&frames).await.unwrap();
    }
    out.finish().await.unwrap();
    let err = load.finish().await.unwrap_err();
    assert_eq!(
        err.as_db_error().map(|e| e.code()),
        Some("23505"),
        "{err:?}"
    );
    // The failed COPY loaded nothing and the connection is usable.
    let rows = into
        .simple_query("SELECT count(*) FROM public.t")
        .await
        .unwrap();
    assert_eq!(rows[0].get(0, "count"), Some("1"));
}

#[tokio::test]
async fn copy_fail_discards_what_was_sent() {
    let source = TempCluster::new().unwrap();
    let target = TempCluster::new().unwrap();
    source
        .psql(&format!(
            "{TABLE}; INSERT INTO public.t SELECT g, 'n', NULL FROM generate_series(1, 1000) g"
        ))
        .unwrap();
    target.psql(TABLE).unwrap();
    let mut from = ReplicationClient::connect_sql(&params(&source))
        .await
        .unwrap();
    let mut into = ReplicationClient::connect_sql(&params(&target))
        .await
        .unwrap();
    let mut out = from
        .copy_out("COPY public.t TO STDOUT (FORMAT text)")
        .await
        .unwrap();
    let mut load = into
        .copy_in("COPY public.t FROM STDIN (FORMAT text)")
        .await
        .unwrap();
    let frames = out.next_frames().await.unwrap().unwrap();
    load.send_frames(&frames).await.unwrap();
    load.fail("test abort").await.unwrap();
    out.finish().await.unwrap();
    let rows = into
        .simple_query("SELECT count(*) FROM public.t")
        .await
        .unwrap();
    assert_eq!(rows[0].get(0, "count"), Some("0"));
}

#[tokio::test]
async fn a_failing_copy_out_is_a_server_error_and_the_connection_survives() {
    let source = TempCluster::new().unwrap();
    let mut from = ReplicationClient::connect_sql(&params(&source))
        .await
        .unwrap();
    // Division by zero on the 50th row: the error arrives in the middle of the data.
    let mut out = from
        .copy_out("COPY (SELECT 1 / (50 - g) FROM generate_series(1, 100) g) TO STDOUT")
        .await
        .unwrap();
    let mut result = Ok(Some(bytes::Bytes::new()));
    while let Ok(Some(_)) = result {
        result = out.next_frames().await;
    }
    let err = result.unwrap_err();
    assert_eq!(
        err.as_db_error().map(|e| e.code()),
        Some("22012"),
        "{err:?}"
    );
    let rows = from.simple_query("SELECT 1 AS one").await.unwrap();
    assert_eq!(rows[0].get(0, "one"), Some("1"));
}
