//! Logical streaming against a real PostgreSQL 15 with pgoutput: a committed INSERT arrives
//! as Begin, Relation, Insert, Commit; the slot only advances to what the client declared
//! durable (DESIGN.md invariant 1); keepalives that ask for a reply are answered without help
//! from the caller, so `wal_sender_timeout` never fires on a live consumer; `finish` hands
//! back a usable connection; and a server restart surfaces as a transient error.

use std::time::Duration;

use bytes::Bytes;
use ferry_core::Lsn;
use ferry_pgwire::{
    ConnParams, ReplicationClient, ReplicationMessage, ReplicationStream, SlotOptions,
    SnapshotAction, XLogData,
};
use ferry_testkit::TempCluster;
use tokio::time::{timeout_at, Instant};

const SLOT: &str = "ferry_slot";
const PUBLICATION: &str = "ferry_pub";
const PGOUTPUT_OPTIONS: &[(&str, &str)] =
    &[("proto_version", "1"), ("publication_names", PUBLICATION)];

fn params(cluster: &TempCluster) -> ConnParams {
    let url = format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    );
    let env = |_: &str| None;
    ConnParams::parse_with(&url, &env, "nobody", &|path| path.exists()).unwrap()
}

/// A table `t` in publication `ferry_pub`, a permanent pgoutput slot, and a stream from the
/// slot's consistent point.
async fn start_stream(cluster: &TempCluster) -> ReplicationStream {
    cluster
        .admin_client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text);
             CREATE PUBLICATION ferry_pub FOR TABLE t;",
        )
        .await
        .unwrap();
    let mut client = ReplicationClient::connect(&params(cluster)).await.unwrap();
    let slot = client
        .create_slot(
            SLOT,
            "pgoutput",
            SlotOptions {
                temporary: false,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .await
        .unwrap();
    client
        .start_logical_replication(SLOT, slot.consistent_point, PGOUTPUT_OPTIONS)
        .await
        .unwrap()
}

/// The XLogData messages of the next transaction, Begin through Commit, keepalives skipped.
async fn next_transaction(stream: &mut ReplicationStream) -> Vec<XLogData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut messages = Vec::new();
    loop {
        let message = timeout_at(deadline, stream.next())
            .await
            .expect("no complete transaction within 10 s")
            .unwrap()
            .expect("the stream ended");
        if let ReplicationMessage::XLogData(x) = message {
            let is_commit = x.data.first() == Some(&b'C');
            messages.push(x);
            if is_commit {
                return messages;
            }
        }
    }
}

/// The end LSN of a pgoutput Commit: kind, flags, commit LSN, end LSN, timestamp.
fn commit_end_lsn(commit: &Bytes) -> Lsn {
    assert_eq!(commit.len(), 1 + 1 + 8 + 8 + 8, "{commit:?}");
    let end: [u8; 8] = commit[10..18].try_into().unwrap();
    Lsn::from_u64(u64::from_be_bytes(end))
}

async fn confirmed_flush(admin: &tokio_postgres::Client) -> Lsn {
    let text: String = admin
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

/// Whether the server still has a walsender with this process id.
async fn walsender_alive(admin: &tokio_postgres::Client, pid: i32) -> bool {
    let count: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .get(0);
    count == 1
}

#[tokio::test]
async fn insert_streams_begin_relation_insert_commit() {
    let cluster = TempCluster::new().unwrap();
    let mut stream = start_stream(&cluster).await;
    let admin = cluster.admin_client().await;

    admin
        .batch_execute("INSERT INTO t VALUES (42, 'hello ferry')")
        .await
        .unwrap();
    let messages = next_transaction(&mut stream).await;

    let kinds: Vec<char> = messages
        .iter()
        .map(|m| char::from(*m.data.first().unwrap()))
        .collect();
    assert_eq!(kinds, ['B', 'R', 'I', 'C']);
    let relation = &messages[1].data;
    assert!(
        relation.windows(b"\0t\0".len()).any(|w| w == b"\0t\0"),
        "Relation message does not name table t: {relation:?}"
    );
    let insert = &messages[2].data;
    assert!(
        insert.windows(11).any(|w| w == b"hello ferry"),
        "Insert message does not carry the row: {insert:?}"
    );
    // Begin's final LSN is the commit's LSN.
    let begin_final: [u8; 8] = messages[0].data[1..9].try_into().unwrap();
    let commit_lsn: [u8; 8] = messages[3].data[2..10].try_into().unwrap();
    assert_eq!(begin_final, commit_lsn);
    assert!(commit_end_lsn(&messages[3].data) > Lsn::from_u64(u64::from_be_bytes(commit_lsn)));
}

#[tokio::test]
async fn status_update_moves_confirmed_flush_only_to_the_durable_lsn() {
    let cluster = TempCluster::new().unwrap();
    let mut stream = start_stream(&cluster).await;
    let admin = cluster.admin_client().await;

    admin
        .batch_execute("INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    let messages = next_transaction(&mut stream).await;
    let end = commit_end_lsn(&messages.last().unwrap().data);

    // Received is not durable: the slot must not move past what was confirmed.
    stream.send_status(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(confirmed_flush(&admin).await < end);

    stream.confirm_durable(end);
    assert_eq!(stream.durable(), end);
    stream.send_status(false).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let confirmed = confirmed_flush(&admin).await;
        if confirmed >= end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn stuck at {confirmed}, expected {end}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Positions never move backwards.
    stream.confirm_durable(Lsn::from_u64(1));
    assert_eq!(stream.durable(), end);
}

#[tokio::test]
async fn keepalive_requests_are_answered_at_once() {
    let cluster = TempCluster::builder()
        .setting("wal_sender_timeout", "2s")
        .start()
        .unwrap();
    let mut stream = start_stream(&cluster).await;
    let admin = cluster.admin_client().await;
    let pid = stream.process_id();
    // Only the answers to keepalives can keep the walsender alive now.
    stream.set_status_interval(Duration::from_secs(3600));

    let deadline = Instant::now() + Duration::from_secs(8);
    let mut reply_requests = 0;
    while let Ok(next) = timeout_at(deadline, stream.next()).await {
        match next.unwrap().expect("the server ended the stream") {
            ReplicationMessage::PrimaryKeepalive(k) if k.reply_requested => reply_requests += 1,
            _ => {}
        }
    }

    // The server asked (after wal_sender_timeout / 2 of silence), more than once.
    assert!(reply_requests >= 2, "{reply_requests} reply requests");
    assert!(walsender_alive(&admin, pid).await);
    assert!(
        !cluster.server_log().contains("replication timeout"),
        "{}",
        cluster.server_log()
    );
}

/// The control for `keepalive_requests_are_answered_at_once`: a stream nobody polls sends no
/// answers, and the server drops it after `wal_sender_timeout`.
#[tokio::test]
async fn unanswered_keepalives_get_the_stream_dropped() {
    let cluster = TempCluster::builder()
        .setting("wal_sender_timeout", "2s")
        .start()
        .unwrap();
    let mut stream = start_stream(&cluster).await;
    let admin = cluster.admin_client().await;
    let pid = stream.process_id();
    assert!(walsender_alive(&admin, pid).await);

    let deadline = Instant::now() + Duration::from_secs(10);
    while walsender_alive(&admin, pid).await {
        assert!(
            Instant::now() < deadline,
            "walsender survived 10 s of silence"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster
        .server_log()
        .contains("terminating walsender process due to replication timeout"));

    // Whatever was still buffered comes first, then the loss of the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match timeout_at(deadline, stream.next()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => panic!("expected an error, the stream ended cleanly"),
            Ok(Err(err)) => break err,
            Err(_) => panic!("no error within 10 s of the walsender exiting"),
        }
    };
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn finish_returns_a_client_that_can_drop_the_slot() {
    let cluster = TempCluster::new().unwrap();
    let mut stream = start_stream(&cluster).await;
    let admin = cluster.admin_client().await;
    admin
        .batch_execute("INSERT INTO t VALUES (7, 'seven')")
        .await
        .unwrap();
    let messages = next_transaction(&mut stream).await;
    let end = commit_end_lsn(&messages.last().unwrap().data);
    stream.confirm_durable(end);

    let mut client = stream.finish().await.unwrap();

    // finish sent a last status update with the durable position.
    assert!(confirmed_flush(&admin).await >= end);
    assert!(!client.identify_system().await.unwrap().xlog_pos.is_zero());
    // The walsender released the slot when streaming ended, so no WAIT is needed.
    client.drop_slot(SLOT, false).await.unwrap();
    let slots: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
    client.close().await;
}

#[tokio::test]
async fn server_restart_mid_stream_is_a_transient_error() {
    let cluster = TempCluster::new().unwrap();
    let mut stream = start_stream(&cluster).await;

    // A consumer with nothing pending confirms what the server says it has sent, as
    // pg_recvlogical does; a fast shutdown waits for that before the walsender exits.
    let consume = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match timeout_at(deadline, stream.next()).await {
                Ok(Ok(Some(ReplicationMessage::PrimaryKeepalive(k)))) => {
                    stream.confirm_durable(k.wal_end);
                }
                Ok(Ok(Some(ReplicationMessage::XLogData(_)))) => {}
                Ok(Ok(None)) => panic!("expected an error, the stream ended cleanly"),
                Ok(Err(err)) => break err,
                Err(_) => panic!("no error within 30 s of the restart"),
            }
        }
    };
    let (restarted, err) = tokio::join!(cluster.restart_async(), consume);
    restarted.unwrap();

    assert!(err.is_transient(), "{err:?}");

    // And the retry works: the slot survived the restart.
    let mut client = ReplicationClient::connect(&params(&cluster)).await.unwrap();
    let slots = client
        .simple_query("SELECT slot_name FROM pg_replication_slots")
        .await
        .unwrap();
    assert_eq!(slots[0].get(0, "slot_name"), Some(SLOT));
    client.close().await;
}
