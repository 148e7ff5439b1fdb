//! The messages inside the CopyBoth stream of logical replication, sans-IO.
//!
//! The server sends XLogData (`w`) and primary keepalive (`k`) messages inside CopyData; the
//! client answers with standby status updates (`r`). These are fixed-layout big-endian
//! records ("Streaming Replication Protocol" in the PostgreSQL docs); parsing checks every
//! length so that no byte sequence can panic, and the `data` of XLogData is a zero-copy slice
//! that the output-plugin decoders read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ferry_core::{Lsn, PgTimestamp};

use crate::error::ProtocolError;

/// One message of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    XLogData(XLogData),
    PrimaryKeepalive(PrimaryKeepalive),
}

/// A chunk of decoded WAL: for logical replication, one output-plugin message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// Where this message's WAL starts.
    pub wal_start: Lsn,
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// When the server sent it.
    pub server_time: PgTimestamp,
    /// The output plugin's bytes.
    pub data: Bytes,
}

/// The server saying it is alive, and possibly asking for an immediate status update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// When the server sent it.
    pub server_time: PgTimestamp,
    /// The server will disconnect us unless we answer soon (`wal_sender_timeout`).
    pub reply_requested: bool,
}

/// What the client tells the server about its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyStatus {
    /// WAL received.
    pub write: Lsn,
    /// WAL durably applied: the server may discard everything before it. Only durable
    /// positions belong here (DESIGN.md invariant 1).
    pub flush: Lsn,
    /// WAL applied.
    pub apply: Lsn,
    /// The client's clock.
    pub client_time: PgTimestamp,
    /// Ask the server to answer with a keepalive at once.
    pub reply_requested: bool,
}

const XLOG_DATA_HEADER: usize = 8 + 8 + 8;
const KEEPALIVE_LEN: usize = 8 + 8 + 1;

/// Parses the payload of one CopyData message of a replication stream.
pub fn parse_copy_data(mut data: Bytes) -> Result<ReplicationMessage, ProtocolError> {
    let Some(&kind) = data.first() else {
        return Err(ProtocolError::Invalid {
            tag: b'd',
            what: "empty CopyData in a replication stream",
        });
    };
    data.advance(1);
    match kind {
        b'w' => {
            if data.len() < XLOG_DATA_HEADER {
                return Err(ProtocolError::Truncated {
                    tag: b'w',
                    what: "XLogData header",
                });
            }
            let wal_start = Lsn::from_u64(data.get_u64());
            let wal_end = Lsn::from_u64(data.get_u64());
            let server_time = PgTimestamp(data.get_i64());
            Ok(ReplicationMessage::XLogData(XLogData {
                wal_start,
                wal_end,
                server_time,
                data,
            }))
        }
        b'k' => {
            if data.len() < KEEPALIVE_LEN {
                return Err(ProtocolError::Truncated {
                    tag: b'k',
                    what: "primary keepalive",
                });
            }
            Ok(ReplicationMessage::PrimaryKeepalive(PrimaryKeepalive {
                wal_end: Lsn::from_u64(data.get_u64()),
                server_time: PgTimestamp(data.get_i64()),
                reply_requested: data.get_u8() != 0,
            }))
        }
        other => Err(ProtocolError::UnknownReplicationMessage { kind: other }),
    }
}

impl StandbyStatus {
    /// The CopyData payload (`r` record) carrying this status.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + 8 * 4 + 1);
        out.put_u8(b'r');
        out.put_u64(self.write.as_u64());
        out.put_u64(self.flush.as_u64());
        out.put_u64(self.apply.as_u64());
        out.put_i64(self.client_time.0);
        out.put_u8(u8::from(self.reply_requested));
        out.freeze()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Test-only encoders: the server's side of the layout, for round trips.
    pub(crate) fn encode_xlog_data(m: &XLogData) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(b'w');
        out.put_u64(m.wal_start.as_u64());
        out.put_u64(m.wal_end.as_u64());
        out.put_i64(m.server_time.0);
        out.put_slice(&m.data);
        out.freeze()
    }

    pub(crate) fn encode_keepalive(m: &PrimaryKeepalive) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(b'k');
        out.put_u64(m.wal_end.as_u64());
        out.put_i64(m.server_time.0);
        out.put_u8(u8::from(m.reply_requested));
        out.freeze()
    }

    #[test]
    fn standby_status_layout() {
        let status = StandbyStatus {
            write: Lsn::from_u64(3),
            flush: Lsn::from_u64(2),
            apply: Lsn::from_u64(1),
            client_time: PgTimestamp(7),
            reply_requested: true,
        };
        let bytes = status.encode();
        assert_eq!(bytes.len(), 34);
        assert_eq!(bytes[0], b'r');
        assert_eq!(&bytes[1..9], &3u64.to_be_bytes());
        assert_eq!(&bytes[9..17], &2u64.to_be_bytes());
        assert_eq!(&bytes[17..25], &1u64.to_be_bytes());
        assert_eq!(&bytes[25..33], &7i64.to_be_bytes());
        assert_eq!(bytes[33], 1);
    }

    #[test]
    fn short_messages_are_errors() {
        for bad in [&b""[..], b"w", b"w1234567", b"k12345678", b"x"] {
            assert!(parse_copy_data(Bytes::copy_from_slice(bad)).is_err());
        }
    }

    proptest! {
        #[test]
        fn xlog_data_round_trips(start: u64, end: u64, time: i64, data: Vec<u8>) {
            let m = XLogData {
                wal_start: Lsn::from_u64(start),
                wal_end: Lsn::from_u64(end),
                server_time: PgTimestamp(time),
                data: Bytes::from(data),
            };
            prop_assert_eq!(
                parse_copy_data(encode_xlog_data(&m)).unwrap(),
                ReplicationMessage::XLogData(m)
            );
        }

        #[test]
        fn keepalive_round_trips(end: u64, time: i64, reply: bool) {
            let m = PrimaryKeepalive {
                wal_end: Lsn::from_u64(end),
                server_time: PgTimestamp(time),
                reply_requested: reply,
            };
            prop_assert_eq!(
                parse_copy_data(encode_keepalive(&m)).unwrap(),
                ReplicationMessage::PrimaryKeepalive(m)
            );
        }

        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            let _ = parse_copy_data(Bytes::from(data));
        }
    }
}
