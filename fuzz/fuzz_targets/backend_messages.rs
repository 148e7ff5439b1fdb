//! Fuzz target `backend_messages`: every byte a server sends, through the decoders that see it
//! first.
//!
//! The input is one selector byte and then the wire bytes. The selector is the size of the
//! chunks the receive buffer is fed in (0 = everything at once), because a socket may cut the
//! stream anywhere. Each chunk is appended to a `BytesMut` and [`Decoder::decode`] is called
//! until it asks for more; every CopyData payload also goes through [`parse_copy_data`], as
//! the replication stream does. Decoding stops at the first error.
//!
//! Two properties are checked: nothing panics (no index, slice or allocation is trusted to a
//! wire length), and the chunking does not matter (the same messages and the same error as
//! decoding the whole input at once). The maximum message length is 1 MiB rather than the
//! production 1 GiB so that large declared lengths are reached, and rejected, cheaply.

#![no_main]

use bytes::BytesMut;
use ferry_pgwire::frame::{BackendMessage, Decoder};
use ferry_pgwire::replication::parse_copy_data;
use ferry_pgwire::{ProtocolError, ReplicationMessage};
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE_LEN: usize = 1 << 20;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, wire)) = input.split_first() else {
        return;
    };
    let whole_len = wire.len().max(1);
    let chunk_len = match selector {
        0 => whole_len,
        n => usize::from(n),
    };
    let chunked = decode(wire, chunk_len);
    if chunk_len != whole_len {
        assert_eq!(
            chunked,
            decode(wire, whole_len),
            "chunks of {chunk_len} bytes decode differently from the whole input"
        );
    }
});

/// What one backend message decoded to.
#[derive(Debug, PartialEq)]
enum Decoded {
    Message(BackendMessage),
    /// A CopyData message and its replication-stream reading.
    Replication(ReplicationMessage),
}

/// The messages decoded before the input ran out or failed, and the failure.
type Outcome = (Vec<Decoded>, Option<ProtocolError>);

fn decode(wire: &[u8], chunk_len: usize) -> Outcome {
    let decoder = Decoder::with_max_message_len(MAX_MESSAGE_LEN);
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for chunk in wire.chunks(chunk_len) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(BackendMessage::CopyData(data))) => match parse_copy_data(data) {
                    Ok(message) => decoded.push(Decoded::Replication(message)),
                    Err(e) => return (decoded, Some(e)),
                },
                Ok(Some(message)) => decoded.push(Decoded::Message(message)),
                Err(e) => return (decoded, Some(e)),
            }
        }
    }
    (decoded, None)
}
