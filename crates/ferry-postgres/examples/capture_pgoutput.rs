//! Captures the pgoutput golden fixtures in `tests/fixtures/pgoutput/`: every XLogData
//! payload a real PostgreSQL server sends for a workload that exercises each message kind
//! the decoder must read, once as text and once with `binary 'true'`.
//!
//! ```text
//!  TempCluster (logical_decoding_work_mem = 64kB, so big transactions stream)
//!    admin connection: DDL, publication, two slots, then the WORKLOAD
//!    ReplicationClient per slot, streaming while the workload runs: proto_version 2,
//!                       streaming on, messages true (+ binary true) ──► <name>.bin
//! ```
//!
//! Each record of a `.bin` file is one XLogData payload: a big-endian u32 length, then the
//! bytes. `tests/pgoutput_golden_fixtures.rs` decodes them and pins what they contain.
//!
//! Run `cargo run -p ferry-postgres --example capture_pgoutput -- [dir]`; the directory
//! defaults to this crate's `tests/fixtures/pgoutput`.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use ferry_core::Lsn;
use ferry_pgwire::{
    ConnParams, ReplicationClient, ReplicationMessage, SlotOptions, SnapshotAction,
};
use ferry_testkit::TempCluster;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

type BoxError = Box<dyn Error + Send + Sync>;

const PUBLICATION: &str = "ferry_pub";

/// The schema, created before the slots so that none of it is decoded.
const SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (id integer PRIMARY KEY, label text NOT NULL);
CREATE TABLE events_log (kind text, payload text);
ALTER TABLE events_log REPLICA IDENTITY FULL;
CREATE TABLE docs (id integer PRIMARY KEY, version integer NOT NULL, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE measurements (id integer, region text, reading numeric,
                           PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
CREATE TABLE people (id integer PRIMARY KEY, name text, feeling mood);
CREATE TABLE parents (id serial PRIMARY KEY, name text);
CREATE TABLE children (id serial PRIMARY KEY, parent_id integer REFERENCES parents);
CREATE PUBLICATION ferry_pub FOR TABLE items, events_log, docs, measurements, people,
                                         parents, children;
";

/// One entry per transaction, in order (`tests/pgoutput_golden_fixtures.rs` relies on it).
const WORKLOAD: &[&str] = &[
    // 1. inserts into a keyed table
    "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    // 2. update without and 3. with a key change (K tuple), 4. delete (K tuple)
    "UPDATE items SET label = 'two, updated' WHERE id = 2",
    "UPDATE items SET id = 30 WHERE id = 3",
    "DELETE FROM items WHERE id = 1",
    // 5. keyless table with REPLICA IDENTITY FULL, duplicates included: O tuples
    "BEGIN;
     INSERT INTO events_log VALUES ('a', 'x'), ('a', 'x'), ('b', NULL);
     UPDATE events_log SET payload = 'y' WHERE kind = 'b';
     DELETE FROM events_log WHERE kind = 'b';
     COMMIT",
    // 6. a TOASTed value, then 7. an update that leaves it alone ('u')
    "INSERT INTO docs VALUES (1, 1, repeat('toast-', 2000))",
    "UPDATE docs SET version = 2 WHERE id = 1",
    // 8. a partitioned table (changes arrive as the leaf partitions) and a row moving
    //    between partitions (a delete from one, an insert into the other)
    "INSERT INTO measurements VALUES (1, 'eu', 1.5), (2, 'us', 2.25)",
    "UPDATE measurements SET region = 'us' WHERE id = 1",
    // 10. an enum column: a Type message before the Relation
    "INSERT INTO people VALUES (1, 'ann', 'happy')",
    // 11. rows for the truncate, then 12. truncate two tables
    "INSERT INTO parents (name) VALUES ('p'); INSERT INTO children (parent_id) VALUES (1)",
    "TRUNCATE parents, children RESTART IDENTITY CASCADE",
    // 13. a transactional logical message, 14. a non-transactional one
    "SELECT pg_logical_emit_message(true, 'ferry', 'hello')",
    "SELECT pg_logical_emit_message(false, 'ferry', 'heartbeat')",
    // 15. a big transaction that streams, with an aborted subtransaction that streamed and
    //     a column added mid-stream
    "BEGIN;
     INSERT INTO items SELECT g, 'streamed ' || g FROM generate_series(1000, 2499) AS g;
     SAVEPOINT sp;
     INSERT INTO items SELECT g, 'rolled back ' || g FROM generate_series(5000, 5799) AS g;
     ROLLBACK TO SAVEPOINT sp;
     ALTER TABLE items ADD COLUMN extra integer DEFAULT 7;
     INSERT INTO items SELECT g, 'after alter ' || g, g FROM generate_series(2500, 2999) AS g;
     COMMIT",
    // 16. a big transaction that streams (while it is still open) and then aborts
    "BEGIN;
     INSERT INTO items SELECT g, 'aborted ' || g FROM generate_series(10000, 10999) AS g",
    AWAIT_STREAMED,
    "ROLLBACK",
    // 17. the end marker the capture stops at
    "SELECT pg_logical_emit_message(false, 'ferry', 'capture done')",
];

/// Not SQL: the capture waits until every stream has received rows of the open transaction
/// (`aborted ...`), so that they are decoded and streamed before it aborts. Had the abort
/// been written first, the server would notice it when it starts streaming and send an empty
/// block.
const AWAIT_STREAMED: &str = "-- await streamed";

/// One fixture: its file, its slot and the pgoutput options besides the common ones.
struct Capture {
    file: &'static str,
    slot: &'static str,
    options: &'static [(&'static str, &'static str)],
}

const CAPTURES: &[Capture] = &[
    Capture {
        file: "pg15_proto2_stream_text.bin",
        slot: "ferry_text",
        options: &[],
    },
    Capture {
        file: "pg15_proto2_stream_binary.bin",
        slot: "ferry_binary",
        options: &[("binary", "true")],
    },
];

const CAPTURE_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pgoutput")
        });
    std::fs::create_dir_all(&dir)?;

    let cluster = TempCluster::builder()
        .setting("logical_decoding_work_mem", "64kB")
        .start()?;
    let admin = cluster.admin_client().await;
    admin.batch_execute(SCHEMA).await?;

    let url = format!(
        "{}?sslmode=disable",
        cluster.url("postgres", None, "postgres")
    );
    let params = ConnParams::parse_with(&url, &|_: &str| None, "postgres", &|path| path.exists())?;
    let mut client = ReplicationClient::connect(&params).await?;
    let version = client
        .parameter("server_version")
        .unwrap_or("unknown")
        .to_owned();
    let mut captures = Vec::new();
    for &Capture {
        file,
        slot,
        options: extra,
    } in CAPTURES
    {
        let options = SlotOptions {
            temporary: false,
            snapshot: SnapshotAction::Nothing,
        };
        let start = client
            .create_slot(slot, "pgoutput", options)
            .await?
            .consistent_point;
        let (progress, watch) = watch::channel(0usize);
        let task = tokio::spawn(capture(params.clone(), slot, start, extra, progress));
        captures.push((file, task, watch));
    }
    client.close().await;

    // The streams run while the workload does, as in production: a transaction is decoded
    // (and, past logical_decoding_work_mem, streamed) while it is still open.
    for &sql in WORKLOAD {
        if sql == AWAIT_STREAMED {
            for (_, _, watch) in &mut captures {
                timeout(CAPTURE_DEADLINE, watch.wait_for(|&rows| rows > 0)).await??;
            }
        } else {
            admin.batch_execute(sql).await?;
        }
    }

    for (file, task, _) in captures {
        let (records, out) = task.await??;
        let path = dir.join(file);
        std::fs::write(&path, &out)?;
        println!(
            "wrote {records} messages ({} bytes) from PostgreSQL {version} to {}",
            out.len(),
            path.display()
        );
    }
    Ok(())
}

/// Streams `slot` from `start` until the end marker; returns the number of records and the
/// fixture bytes. `progress` counts the streamed rows of the transaction that aborts.
async fn capture(
    params: ConnParams,
    slot: &'static str,
    start: Lsn,
    extra: &'static [(&'static str, &'static str)],
    progress: watch::Sender<usize>,
) -> Result<(usize, Vec<u8>), BoxError> {
    let mut options = vec![
        ("proto_version", "2"),
        ("publication_names", PUBLICATION),
        ("messages", "true"),
        ("streaming", "on"),
    ];
    options.extend_from_slice(extra);
    let client = ReplicationClient::connect(&params).await?;
    let mut stream = client
        .start_logical_replication(slot, start, &options)
        .await?;
    let deadline = Instant::now() + CAPTURE_DEADLINE;
    let mut out = Vec::new();
    let mut records = 0;
    loop {
        let message = timeout_at(deadline, stream.next())
            .await??
            .ok_or("the server ended the stream early")?;
        let ReplicationMessage::XLogData(x) = message else {
            continue;
        };
        out.extend_from_slice(&u32::try_from(x.data.len())?.to_be_bytes());
        out.extend_from_slice(&x.data);
        records += 1;
        match x.data.first() {
            Some(b'I') if x.data.windows(8).any(|w| w == b"aborted ") => {
                progress.send_modify(|rows| *rows += 1);
            }
            Some(b'M') if x.data.ends_with(b"capture done") => break,
            _ => {}
        }
    }
    stream.finish().await?.close().await;
    Ok((records, out))
}
