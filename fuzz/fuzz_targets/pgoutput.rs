//! Fuzz target `pgoutput`: arbitrary bytes through the pgoutput decoder
//! (`ferry_postgres::source::decode::pgoutput`).
//!
//! The first input byte chooses the mode, the rest is the data:
//! - bit 1 clear: the data is one message, decoded with [`decode_message`]; bit 0 says
//!   whether it arrived inside a stream block (where some kinds carry a leading xid).
//! - bit 1 set: the data is a session in the golden fixtures' format (records of a
//!   big-endian u32 length and a payload), fed in order to one [`PgoutputDecoder`], which
//!   tracks the stream blocks itself; decoding continues after an error, as the state must
//!   survive one.
//!
//! Checked: nothing panics (no index, slice or allocation trusts a wire length), and every
//! value of a decoded change is a slice of the input (zero-copy), so it cannot be a buffer
//! sized by the wire.

#![no_main]

use bytes::Bytes;
use ferry_core::{Change, Datum, Row};
use ferry_postgres::source::decode::pgoutput::{decode_message, PgoutputDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    if mode & 2 == 0 {
        let message = Bytes::copy_from_slice(data);
        if let Ok(change) = decode_message(message.clone(), mode & 1 == 1) {
            assert_values_within(&change, &message);
        }
        return;
    }
    let mut decoder = PgoutputDecoder::new();
    let mut rest = data;
    while let Some(len) = rest.get(..4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let Some(record) = rest.get(4..).and_then(|r| r.get(..len)) else {
            return;
        };
        let message = Bytes::copy_from_slice(record);
        if let Ok(change) = decoder.decode(message.clone()) {
            assert_values_within(&change, &message);
        }
        rest = rest.get(4 + len..).unwrap_or_default();
    }
});

/// Panics unless every datum and message content of `change` points into `message`.
fn assert_values_within(change: &Change, message: &Bytes) {
    let range = message.as_ptr_range();
    let within = |value: &Bytes| {
        value.is_empty() || {
            let value_range = value.as_ptr_range();
            range.start <= value_range.start && value_range.end <= range.end
        }
    };
    let rows: Vec<&Row> = match change {
        Change::Insert { new, .. } => vec![new],
        Change::Update { key, old, new, .. } => key
            .iter()
            .chain(old.iter())
            .chain(std::iter::once(new))
            .collect(),
        Change::Delete { key, old, .. } => key.iter().chain(old.iter()).collect(),
        Change::Message { content, .. } => {
            assert!(within(content), "message content was copied");
            Vec::new()
        }
        _ => Vec::new(),
    };
    for datum in rows.iter().flat_map(|row| row.0.iter()) {
        if let Datum::Text(value) | Datum::Binary(value) = datum {
            assert!(within(value), "a value was copied");
        }
    }
}
