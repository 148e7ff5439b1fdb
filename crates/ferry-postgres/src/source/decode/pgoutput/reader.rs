//! A cursor over one pgoutput message that checks every read against the bytes left.
//!
//! Each read names the field it reads, so a short or malformed message becomes a
//! [`DecodeError`] that says which message and which field, never a panic or an allocation
//! sized by the wire. Byte strings come back as [`Bytes`] slices of the message (zero-copy).

use bytes::{Buf, Bytes};
use ferry_core::{Lsn, PgTimestamp};

use super::{DecodeError, MessageKind};

/// The unread rest of one message of kind `kind`.
pub(super) struct Reader {
    kind: MessageKind,
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(kind: MessageKind, buf: Bytes) -> Self {
        Reader { kind, buf }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// An error for `field` needing `needed` bytes where fewer are left.
    pub(super) fn truncated(&self, field: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            kind: self.kind,
            field,
            needed,
            remaining: self.buf.len(),
        }
    }

    /// An error for a `field` whose value the protocol does not allow.
    pub(super) fn invalid(&self, field: &'static str, problem: impl Into<String>) -> DecodeError {
        DecodeError::Invalid {
            kind: self.kind,
            field,
            problem: problem.into(),
        }
    }

    /// Fails unless `needed` more bytes are left for `field`.
    pub(super) fn need(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        if self.buf.len() < needed {
            return Err(self.truncated(field, needed));
        }
        Ok(())
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.buf.get_u16())
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32())
    }

    pub(super) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_i32())
    }

    pub(super) fn lsn(&mut self, field: &'static str) -> Result<Lsn, DecodeError> {
        self.need(field, 8)?;
        Ok(Lsn::from_u64(self.buf.get_u64()))
    }

    pub(super) fn timestamp(&mut self, field: &'static str) -> Result<PgTimestamp, DecodeError> {
        self.need(field, 8)?;
        Ok(PgTimestamp(self.buf.get_i64()))
    }

    /// A byte that must be 0 or 1.
    pub(super) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid(field, format!("is {other}, expected 0 or 1"))),
        }
    }

    /// A byte of flags that must be 0 (the protocol reserves them; PostgreSQL's own reader
    /// rejects anything else too).
    pub(super) fn zero_flags(&mut self, field: &'static str) -> Result<(), DecodeError> {
        match self.u8(field)? {
            0 => Ok(()),
            other => Err(self.invalid(field, format!("is {other}, expected 0"))),
        }
    }

    /// A NUL-terminated UTF-8 string (Ferry connects with `client_encoding=UTF8`, and the
    /// server converts names and prefixes to it).
    pub(super) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let Some(nul) = self.buf.iter().position(|&b| b == 0) else {
            return Err(self.invalid(field, "has no terminating NUL"));
        };
        let text = self.buf.split_to(nul);
        self.buf.advance(1);
        match std::str::from_utf8(&text) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(self.invalid(field, format!("is not UTF-8 ({e})"))),
        }
    }

    /// An Int32 length, then that many bytes, as a slice of the message.
    pub(super) fn counted_bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.i32(field)?;
        let Ok(len) = usize::try_from(len) else {
            return Err(self.invalid(field, format!("has negative length {len}")));
        };
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    /// Fails if bytes are left: a message longer than its fields is not the message this
    /// decoder thinks it is, and misreading it could silently corrupt the target.
    pub(super) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                kind: self.kind,
                count: self.buf.len(),
            })
        }
    }
}
