//! Golden-fixture tests: the sans-IO decoders against bytes a real PostgreSQL 15 sent.
//!
//! `fixtures/pg15_scram_pgoutput_session.bin` is the server-to-client half of one logical
//! replication session, recorded by `examples/capture_fixtures.rs` (see `fixtures/README.md`).
//! Unit tests and proptests only show that the parsers agree with our own idea of the wire
//! format; these show that they agree with the server's, message by message, and that a
//! receive buffer cut at any byte decodes to the same messages.

use bytes::{Buf, Bytes, BytesMut};
use ferry_core::Lsn;
use ferry_pgwire::frame::{Authentication, BackendMessage, Decoder};
use ferry_pgwire::replication::parse_copy_data;
use ferry_pgwire::{PrimaryKeepalive, ReplicationMessage, XLogData};

const FIXTURE: &[u8] = include_bytes!("fixtures/pg15_scram_pgoutput_session.bin");

/// The slot and table `capture_fixtures` creates.
const SLOT: &str = "ferry_fixture";
const TABLE: (&str, &str) = ("public", "fixture_items");

/// Decodes the fixture fed `chunk_len` bytes at a time, as a socket might deliver it; panics
/// on a decode error or on bytes left over at the end.
fn decode_in_chunks(chunk_len: usize) -> Vec<BackendMessage> {
    let decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for chunk in FIXTURE.chunks(chunk_len) {
        buf.extend_from_slice(chunk);
        while let Some(message) = decoder
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("message {} (chunks of {chunk_len}): {e}", messages.len()))
        {
            messages.push(message);
        }
    }
    assert!(
        buf.is_empty(),
        "{} bytes left undecoded (chunks of {chunk_len})",
        buf.len()
    );
    messages
}

fn session() -> Vec<BackendMessage> {
    decode_in_chunks(FIXTURE.len())
}

/// The session split at its protocol boundaries.
struct Phases {
    /// Authentication through the first ReadyForQuery.
    startup: Vec<BackendMessage>,
    /// IDENTIFY_SYSTEM and CREATE_REPLICATION_SLOT replies, up to CopyBothResponse.
    commands: Vec<BackendMessage>,
    /// The CopyData payloads of the replication stream.
    stream: Vec<Bytes>,
    /// Everything after the last CopyData.
    tail: Vec<BackendMessage>,
}

fn phases() -> Phases {
    let messages = session();
    let first_ready = messages
        .iter()
        .position(|m| matches!(m, BackendMessage::ReadyForQuery { .. }))
        .expect("a ReadyForQuery");
    let copy_both = messages
        .iter()
        .position(|m| *m == BackendMessage::CopyBothResponse)
        .expect("a CopyBothResponse");
    let mut rest = messages.into_iter();
    let startup: Vec<_> = rest.by_ref().take(first_ready + 1).collect();
    let commands: Vec<_> = rest.by_ref().take(copy_both - first_ready).collect();
    let mut rest = rest.peekable();
    let mut stream = Vec::new();
    while let Some(BackendMessage::CopyData(_)) = rest.peek() {
        if let Some(BackendMessage::CopyData(bytes)) = rest.next() {
            stream.push(bytes);
        }
    }
    Phases {
        startup,
        commands,
        stream,
        tail: rest.collect(),
    }
}

fn text(value: &Option<Bytes>) -> &str {
    std::str::from_utf8(value.as_deref().expect("a non-NULL value")).expect("UTF-8")
}

fn column_names(message: &BackendMessage) -> Vec<&str> {
    let BackendMessage::RowDescription(fields) = message else {
        panic!("expected RowDescription, got {message:?}");
    };
    fields.iter().map(|f| f.name.as_str()).collect()
}

fn row(message: &BackendMessage) -> &[Option<Bytes>] {
    let BackendMessage::DataRow(values) = message else {
        panic!("expected DataRow, got {message:?}");
    };
    values
}

fn command_tag(message: &BackendMessage) -> &str {
    let BackendMessage::CommandComplete { tag } = message else {
        panic!("expected CommandComplete, got {message:?}");
    };
    tag
}

const READY_IDLE: BackendMessage = BackendMessage::ReadyForQuery { status: b'I' };

#[test]
fn captured_session_decodes_in_any_chunking() {
    let whole = session();
    assert!(whole.len() > 200, "only {} messages", whole.len());
    for chunk_len in [1, 2, 5, 7, 64, 1000, 4096] {
        assert_eq!(
            decode_in_chunks(chunk_len),
            whole,
            "chunks of {chunk_len} bytes"
        );
    }
}

#[test]
fn fixture_is_whole_frames_with_nothing_left_over() {
    let decoder = Decoder::default();
    let mut offset = 0;
    while offset < FIXTURE.len() {
        let len = decoder
            .frame_len(&FIXTURE[offset..])
            .unwrap()
            .expect("a whole frame header");
        offset += len;
    }
    assert_eq!(offset, FIXTURE.len(), "the last frame runs past the end");
}

#[test]
fn startup_is_a_scram_exchange_ending_ready_for_query() {
    let startup = phases().startup;
    let mut it = startup.iter();

    let Some(BackendMessage::Authentication(Authentication::Sasl { mechanisms })) = it.next()
    else {
        panic!("the server should open with AuthenticationSASL");
    };
    // Without TLS there is no channel binding, so no SCRAM-SHA-256-PLUS.
    assert_eq!(mechanisms, &["SCRAM-SHA-256"]);

    let Some(BackendMessage::Authentication(Authentication::SaslContinue(first))) = it.next()
    else {
        panic!("expected AuthenticationSASLContinue");
    };
    let first = std::str::from_utf8(first).unwrap();
    assert!(first.starts_with("r="), "server-first-message {first:?}");
    assert!(first.contains(",s=") && first.contains(",i="), "{first:?}");

    let Some(BackendMessage::Authentication(Authentication::SaslFinal(last))) = it.next() else {
        panic!("expected AuthenticationSASLFinal");
    };
    assert!(last.starts_with(b"v="), "server-final-message {last:?}");

    assert_eq!(
        it.next(),
        Some(&BackendMessage::Authentication(Authentication::Ok))
    );

    let mut parameters = std::collections::HashMap::new();
    let mut next = it.next();
    while let Some(BackendMessage::ParameterStatus { name, value }) = next {
        parameters.insert(name.as_str(), value.as_str());
        next = it.next();
    }
    let version = parameters.get("server_version").expect("server_version");
    assert!(version.starts_with("15"), "server_version {version:?}");
    assert_eq!(parameters.get("session_authorization"), Some(&"ferry"));
    assert_eq!(parameters.get("client_encoding"), Some(&"UTF8"));
    assert_eq!(parameters.get("integer_datetimes"), Some(&"on"));

    let Some(BackendMessage::BackendKeyData { process_id, .. }) = next else {
        panic!("expected BackendKeyData, got {next:?}");
    };
    assert!(*process_id > 0);
    assert_eq!(it.next(), Some(&READY_IDLE));
    assert_eq!(it.next(), None);
}

#[test]
fn identify_system_and_slot_creation_each_answer_one_row() {
    let commands = phases().commands;
    assert_eq!(commands.len(), 9, "{commands:#?}");

    assert_eq!(
        column_names(&commands[0]),
        ["systemid", "timeline", "xlogpos", "dbname"]
    );
    let system = row(&commands[1]);
    assert_eq!(system.len(), 4);
    assert!(text(&system[0]).bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(text(&system[1]), "1");
    text(&system[2]).parse::<Lsn>().expect("xlogpos is an LSN");
    assert_eq!(text(&system[3]), "postgres");
    assert_eq!(command_tag(&commands[2]), "IDENTIFY_SYSTEM");
    assert_eq!(commands[3], READY_IDLE);

    assert_eq!(
        column_names(&commands[4]),
        [
            "slot_name",
            "consistent_point",
            "snapshot_name",
            "output_plugin"
        ]
    );
    let slot = row(&commands[5]);
    assert_eq!(slot.len(), 4);
    assert_eq!(text(&slot[0]), SLOT);
    text(&slot[1])
        .parse::<Lsn>()
        .expect("consistent_point is an LSN");
    assert!(!text(&slot[2]).is_empty(), "an exported snapshot name");
    assert_eq!(text(&slot[3]), "pgoutput");
    assert_eq!(command_tag(&commands[6]), "CREATE_REPLICATION_SLOT");
    assert_eq!(commands[7], READY_IDLE);

    assert_eq!(commands[8], BackendMessage::CopyBothResponse);
}

/// The pgoutput messages of the workload in `capture_fixtures`, one letter per message. The
/// relation is sent again after TRUNCATE because truncation invalidates its cache entry.
fn expected_pgoutput_kinds() -> String {
    let mut kinds = String::from("BRIIIC"); // INSERT of three rows
    kinds.push_str("BUC"); // UPDATE
    kinds.push_str("BDC"); // DELETE
    kinds.push_str("BRTC"); // TRUNCATE
    kinds.push_str("BR");
    kinds.push_str(&"I".repeat(200)); // INSERT … SELECT generate_series(1, 200)
    kinds.push('C');
    kinds
}

fn consistent_point() -> Lsn {
    text(&row(&phases().commands[5])[1]).parse().unwrap()
}

fn replication_messages() -> Vec<ReplicationMessage> {
    phases()
        .stream
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| parse_copy_data(bytes).unwrap_or_else(|e| panic!("CopyData {i}: {e}")))
        .collect()
}

#[test]
fn copy_data_parses_into_ordered_pgoutput_transactions() {
    let messages = replication_messages();
    let xlog: Vec<&XLogData> = messages
        .iter()
        .filter_map(|m| match m {
            ReplicationMessage::XLogData(x) => Some(x),
            ReplicationMessage::PrimaryKeepalive(_) => None,
        })
        .collect();

    let kinds: String = xlog
        .iter()
        .map(|x| char::from(*x.data.first().expect("a pgoutput message")))
        .collect();
    assert_eq!(kinds, expected_pgoutput_kinds());

    // The walsender stamps only the last message written for a WAL record with its LSN; the
    // Relation messages pgoutput writes ahead of a change carry 0/0.
    let start = consistent_point();
    let mut previous = start;
    for (i, x) in xlog.iter().enumerate() {
        if x.wal_start == Lsn::ZERO {
            assert_eq!(x.data[0], b'R', "XLogData {i} has no position");
            continue;
        }
        assert!(
            x.wal_start >= previous,
            "XLogData {i} starts at {} after {previous}",
            x.wal_start
        );
        previous = x.wal_start;
    }
    assert!(previous > start);
}

#[test]
fn xlog_data_header_agrees_with_the_pgoutput_body() {
    let messages = replication_messages();
    let mut begin_final_lsn = None;
    let mut commits = 0;
    for message in &messages {
        let ReplicationMessage::XLogData(x) = message else {
            continue;
        };
        let mut body = x.data.clone();
        match body.get_u8() {
            // Begin: final LSN, commit time, xid.
            b'B' => begin_final_lsn = Some(body.get_u64()),
            // Commit: flags, commit LSN, end LSN, commit time. The header's start is the end.
            b'C' => {
                let _flags = body.get_u8();
                let commit_lsn = body.get_u64();
                let end_lsn = body.get_u64();
                assert_eq!(begin_final_lsn.take(), Some(commit_lsn));
                assert_eq!(Lsn::from_u64(end_lsn), x.wal_start);
                commits += 1;
            }
            // Relation: id, namespace, name, ...
            b'R' => {
                let _relation_id = body.get_u32();
                let mut names = body.split(|&b| b == 0);
                let namespace = names.next().unwrap();
                let name = names.next().unwrap();
                assert_eq!((namespace, name), (TABLE.0.as_bytes(), TABLE.1.as_bytes()));
            }
            _ => {}
        }
    }
    assert_eq!(commits, 5);
}

#[test]
fn keepalives_arrive_and_one_follows_the_last_commit() {
    let messages = replication_messages();
    let keepalives: Vec<&PrimaryKeepalive> = messages
        .iter()
        .filter_map(|m| match m {
            ReplicationMessage::PrimaryKeepalive(k) => Some(k),
            ReplicationMessage::XLogData(_) => None,
        })
        .collect();
    assert!(!keepalives.is_empty());
    assert!(keepalives.iter().all(|k| k.wal_end >= consistent_point()));
    assert!(
        matches!(
            messages.last(),
            Some(ReplicationMessage::PrimaryKeepalive(_))
        ),
        "capture_fixtures stops after a keepalive that follows the last commit"
    );
}

#[test]
fn session_ends_with_copy_done_and_ready_for_query() {
    let tail = phases().tail;
    assert_eq!(tail.len(), 4, "{tail:#?}");
    assert_eq!(tail[0], BackendMessage::CopyDone);
    assert_eq!(command_tag(&tail[1]), "COPY 0");
    assert_eq!(command_tag(&tail[2]), "START_REPLICATION");
    assert_eq!(tail[3], READY_IDLE);
}
