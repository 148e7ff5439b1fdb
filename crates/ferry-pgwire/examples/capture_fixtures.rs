//! Captures the golden fixture `tests/fixtures/pg15_scram_pgoutput_session.bin`: every byte a
//! real PostgreSQL 15 server sends to [`ReplicationClient`] during one SCRAM-authenticated
//! logical replication session.
//!
//! The decoders in `frame` and `replication` must be checked against what a server really
//! sends, not only against bytes our own tests encode (STYLE.md, "Parsing wire bytes"). So
//! this program puts a recording TCP proxy between the client and a throwaway cluster and
//! keeps the server-to-client direction verbatim:
//!
//! ```text
//!  ReplicationClient ──► proxy (127.0.0.1:0) ──► TempCluster (SCRAM, wal_sender_timeout=2s)
//!                     ◄── records every byte ◄──
//! ```
//!
//! The session: startup with SCRAM-SHA-256, IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT (pgoutput,
//! exported snapshot), then, after an admin connection has inserted, updated, deleted,
//! truncated and bulk-inserted, START_REPLICATION until the last commit and one keepalive,
//! CopyDone and Terminate. With `sslmode=disable` no SSLRequest is sent, so the recording is
//! backend messages from its first byte. `tests/golden_fixtures_parse.rs` pins its structure.
//!
//! Run `cargo run -p ferry-pgwire --example capture_fixtures -- <dir>`; the argument is the
//! output directory (or a `.bin` file path) and defaults to this crate's `tests/fixtures`.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry_pgwire::conninfo::{Endpoint, Host};
use ferry_pgwire::{
    ConnParams, ReplicationClient, ReplicationMessage, SlotOptions, SnapshotAction,
};
use ferry_testkit::{Auth, RoleSpec, TempCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

const FIXTURE_FILE: &str = "pg15_scram_pgoutput_session.bin";
const SLOT: &str = "ferry_fixture";

/// One statement per entry: each runs in its own transaction, so pgoutput sends one
/// Begin/Commit pair per DML entry (PostgreSQL 15 skips the empty DDL transactions).
const WORKLOAD: &[&str] = &[
    "CREATE TABLE public.fixture_items (id integer PRIMARY KEY, label text NOT NULL)",
    "CREATE PUBLICATION fixture_pub FOR TABLE public.fixture_items",
    "INSERT INTO public.fixture_items VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')",
    "UPDATE public.fixture_items SET label = 'beta, updated' WHERE id = 2",
    "DELETE FROM public.fixture_items WHERE id = 3",
    "TRUNCATE public.fixture_items",
    "INSERT INTO public.fixture_items SELECT g, 'bulk row ' || g FROM generate_series(1, 200) AS g",
];

/// Inserts in the workload: the commit after the last of them ends the interesting part.
const EXPECTED_INSERTS: usize = 3 + 200;

/// The whole capture normally takes a few seconds; anything past this is a hang.
const SESSION_DEADLINE: Duration = Duration::from_secs(60);

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let out = output_path(std::env::args_os().nth(1).map(PathBuf::from));

    let cluster = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(
            RoleSpec::new("ferry")
                .password("pw")
                .replication()
                .superuser(),
        )
        // Idle walsenders send a keepalive every wal_sender_timeout / 2.
        .setting("wal_sender_timeout", "2s")
        .start()?;

    let upstream = SocketAddr::from(([127, 0, 0, 1], cluster.port()));
    let (proxy_addr, recording) = start_recording_proxy(upstream).await?;

    let url = cluster.url("ferry", Some("pw"), "postgres");
    let mut params = ConnParams::parse(&format!(
        "{url}?sslmode=disable&application_name=ferry_fixture_capture"
    ))?;
    params.hosts = vec![Endpoint {
        host: Host::Tcp(proxy_addr.ip().to_string()),
        port: proxy_addr.port(),
    }];

    let deadline = Instant::now() + SESSION_DEADLINE;
    let server_version = timeout_at(deadline, replication_session(&cluster, &params)).await??;
    let recorded = timeout(Duration::from_secs(10), recording).await???;

    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &recorded)?;
    println!(
        "wrote {} bytes from PostgreSQL {server_version} to {}",
        recorded.len(),
        out.display()
    );
    Ok(())
}

/// `arg` as a directory (the fixture file goes inside) or, ending in `.bin`, as the file.
fn output_path(arg: Option<PathBuf>) -> PathBuf {
    match arg {
        Some(path) if path.extension().is_some_and(|ext| ext == "bin") => path,
        Some(dir) => dir.join(FIXTURE_FILE),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join(FIXTURE_FILE),
    }
}

/// Runs the recorded session through the proxy; returns the server's `server_version`.
async fn replication_session(
    cluster: &TempCluster,
    params: &ConnParams,
) -> Result<String, BoxError> {
    let mut client = ReplicationClient::connect(params).await?;
    let server_version = client
        .parameter("server_version")
        .unwrap_or("unknown")
        .to_owned();
    let system = client.identify_system().await?;
    let slot = client
        .create_slot(
            SLOT,
            "pgoutput",
            SlotOptions {
                temporary: false,
                snapshot: SnapshotAction::Export,
            },
        )
        .await?;
    println!(
        "system {} timeline {} at {}; slot {} consistent at {}",
        system.system_id, system.timeline, system.xlog_pos, slot.slot_name, slot.consistent_point
    );

    // The workload runs over the unix socket, so none of it is in the recording.
    let admin = cluster.admin_client().await;
    for sql in WORKLOAD {
        admin.batch_execute(sql).await?;
    }
    drop(admin);

    let mut stream = client
        .start_logical_replication(
            SLOT,
            slot.consistent_point,
            &[
                ("proto_version", "1"),
                ("publication_names", "\"fixture_pub\""),
            ],
        )
        .await?;
    stream.set_status_interval(Duration::from_secs(1));

    let mut inserts = 0;
    let mut last_commit_seen = false;
    loop {
        let message = stream
            .next()
            .await?
            .ok_or("the server ended the stream early")?;
        match message {
            ReplicationMessage::XLogData(x) => match x.data.first() {
                Some(b'I') => inserts += 1,
                Some(b'C') if inserts == EXPECTED_INSERTS => last_commit_seen = true,
                _ => {}
            },
            // The stream answers keepalives that ask for a reply on its own.
            ReplicationMessage::PrimaryKeepalive(_) if last_commit_seen => break,
            ReplicationMessage::PrimaryKeepalive(_) => {}
        }
    }

    let client = stream.finish().await?;
    client.close().await;
    Ok(server_version)
}

/// Accepts one connection on 127.0.0.1:0 and relays it to `upstream`; the task returns every
/// byte the server sent once both directions have closed.
async fn start_recording_proxy(
    upstream: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<Vec<u8>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await?;
        let server = TcpStream::connect(upstream).await?;
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let to_server = async {
            tokio::io::copy(&mut client_read, &mut server_write).await?;
            server_write.shutdown().await
        };
        let to_client = async {
            let mut recorded = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = server_read.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let chunk = buf.get(..n).unwrap_or_default();
                recorded.extend_from_slice(chunk);
                client_write.write_all(chunk).await?;
            }
            client_write.shutdown().await?;
            Ok::<_, std::io::Error>(recorded)
        };
        let (to_server, to_client) = tokio::join!(to_server, to_client);
        to_server?;
        to_client
    });
    Ok((addr, task))
}
