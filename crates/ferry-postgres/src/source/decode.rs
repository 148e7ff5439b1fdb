//! Decoders of logical decoding output: each turns the bytes of one XLogData payload into a
//! [`ferry_core::Change`].
//!
//! One module per output plugin (pgoutput, wal2json format-version 2, decoderbufs). They are sans-IO (bytes in, changes out) so that golden
//! fixtures from a real server, property tests and fuzzing can drive them without a
//! connection, and so that no byte a server (or an attacker in between) sends can make them
//! allocate what it declares or panic (STYLE.md, "Parsing wire bytes").

pub mod decoderbufs;
pub mod pgoutput;
#[cfg(test)]
mod test_render;
pub mod wal2json;
