//! Sans-IO framing and parsing of backend (server to client) messages.
//!
//! Every byte the server sends passes through [`Decoder::decode`] before anything else looks
//! at it, so this is where untrusted lengths are checked: a length below 4 or above the
//! configured maximum is a [`ProtocolError`], never an allocation, and a body shorter than
//! its fields is an error, never a panic. Payloads are sliced out of the receive buffer
//! (`Bytes`), not copied. Only the messages a replication client meets are parsed; any other
//! tag is returned as [`BackendMessage::Other`] for the caller to reject or skip.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;

/// PostgreSQL never sends a message over 1 GiB (its `MaxAllocSize`).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 30;

/// One message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendMessage {
    Authentication(Authentication),
    ParameterStatus {
        name: String,
        value: String,
    },
    BackendKeyData {
        process_id: i32,
        secret_key: i32,
    },
    ReadyForQuery {
        status: u8,
    },
    ErrorResponse(Box<ErrorFields>),
    NoticeResponse(Box<ErrorFields>),
    RowDescription(Vec<FieldDescription>),
    DataRow(Vec<Option<Bytes>>),
    CommandComplete {
        tag: String,
    },
    EmptyQueryResponse,
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    CopyData(Bytes),
    CopyDone,
    NegotiateProtocolVersion {
        newest_minor: i32,
        unrecognized: Vec<String>,
    },
    /// A message this client does not interpret (e.g. NotificationResponse).
    Other {
        tag: u8,
    },
}

/// The authentication request the server makes during startup.
#[derive(Debug, Clone, PartialEq)]
pub enum Authentication {
    Ok,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, GSSAPI, SSPI and anything newer: not supported by Ferry.
    Unsupported {
        code: i32,
    },
}

/// The fields of an ErrorResponse or NoticeResponse, by their one-byte codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub where_: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    pub type_oid: u32,
    pub format: i16,
}

/// Cuts complete messages off the front of a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    max_message_len: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

impl Decoder {
    /// A decoder refusing messages longer than `max_message_len` bytes.
    pub fn with_max_message_len(max_message_len: usize) -> Self {
        Decoder { max_message_len }
    }

    /// The next complete message in `buf`, removed from it; `Ok(None)` when more bytes are
    /// needed. The declared length is checked but never used to allocate.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<BackendMessage>, ProtocolError> {
        let Some(total) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total).freeze();
        let tag = frame.get_u8();
        frame.advance(4);
        parse_body(tag, frame).map(Some)
    }

    /// The full length (tag included) of the message at the front of `buf`, once its header
    /// has arrived.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(header) = buf.get(..5) else {
            return Ok(None);
        };
        let tag = header[0];
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len =
            usize::try_from(len)
                .ok()
                .filter(|&l| l >= 4)
                .ok_or(ProtocolError::BadLength {
                    tag,
                    len: i64::from(len),
                })?;
        if len > self.max_message_len {
            return Err(ProtocolError::MessageTooLarge {
                tag,
                len,
                max: self.max_message_len,
            });
        }
        Ok(Some(len + 1))
    }
}

/// A bounds-checked reader over one message body.
struct Body {
    tag: u8,
    buf: Bytes,
}

impl Body {
    fn truncated(&self, what: &'static str) -> ProtocolError {
        ProtocolError::Truncated {
            tag: self.tag,
            what,
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        if self.buf.remaining() < 1 {
            return Err(self.truncated(what));
        }
        Ok(self.buf.get_u8())
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, ProtocolError> {
        if self.buf.remaining() < 2 {
            return Err(self.truncated(what));
        }
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        if self.buf.remaining() < 4 {
            return Err(self.truncated(what));
        }
        Ok(self.buf.get_i32())
    }

    fn bytes(&mut self, len: usize, what: &'static str) -> Result<Bytes, ProtocolError> {
        if self.buf.remaining() < len {
            return Err(self.truncated(what));
        }
        Ok(self.buf.split_to(len))
    }

    /// A NUL-terminated string.
    fn cstr(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(self.truncated(what))?;
        let raw = self.buf.split_to(end);
        self.buf.advance(1);
        String::from_utf8(raw.to_vec()).map_err(|_| ProtocolError::InvalidUtf8 { what })
    }

    fn rest(self) -> Bytes {
        self.buf
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn parse_body(tag: u8, buf: Bytes) -> Result<BackendMessage, ProtocolError> {
    let mut body = Body { tag, buf };
    let message = match tag {
        b'R' => BackendMessage::Authentication(parse_authentication(&mut body)?),
        b'S' => BackendMessage::ParameterStatus {
            name: body.cstr("parameter name")?,
            value: body.cstr("parameter value")?,
        },
        b'K' => BackendMessage::BackendKeyData {
            process_id: body.i32("process id")?,
            secret_key: body.i32("secret key")?,
        },
        b'Z' => BackendMessage::ReadyForQuery {
            status: body.u8("transaction status")?,
        },
        b'E' => BackendMessage::ErrorResponse(Box::new(parse_error_fields(&mut body)?)),
        b'N' => BackendMessage::NoticeResponse(Box::new(parse_error_fields(&mut body)?)),
        b'T' => BackendMessage::RowDescription(parse_row_description(&mut body)?),
        b'D' => BackendMessage::DataRow(parse_data_row(&mut body)?),
        b'C' => BackendMessage::CommandComplete {
            tag: body.cstr("command tag")?,
        },
        b'I' => BackendMessage::EmptyQueryResponse,
        b'G' => BackendMessage::CopyInResponse,
        b'H' => BackendMessage::CopyOutResponse,
        b'W' => BackendMessage::CopyBothResponse,
        b'd' => BackendMessage::CopyData(body.rest()),
        b'c' => BackendMessage::CopyDone,
        b'v' => {
            let newest_minor = body.i32("newest minor version")?;
            let count = body.i32("option count")?;
            let mut unrecognized = Vec::new();
            for _ in 0..count.max(0) {
                unrecognized.push(body.cstr("option name")?);
            }
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            }
        }
        other => BackendMessage::Other { tag: other },
    };
    Ok(message)
}

fn parse_authentication(body: &mut Body) -> Result<Authentication, ProtocolError> {
    let code = body.i32("authentication code")?;
    Ok(match code {
        0 => Authentication::Ok,
        3 => Authentication::CleartextPassword,
        5 => {
            let salt = body.bytes(4, "md5 salt")?;
            Authentication::Md5Password {
                salt: [salt[0], salt[1], salt[2], salt[3]],
            }
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let name = body.cstr("SASL mechanism")?;
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name);
            }
            Authentication::Sasl { mechanisms }
        }
        11 => Authentication::SaslContinue(std::mem::take(&mut body.buf)),
        12 => Authentication::SaslFinal(std::mem::take(&mut body.buf)),
        other => Authentication::Unsupported { code: other },
    })
}

fn parse_error_fields(body: &mut Body) -> Result<ErrorFields, ProtocolError> {
    let mut fields = ErrorFields::default();
    loop {
        let kind = body.u8("error field type")?;
        if kind == 0 {
            break;
        }
        let value = body.cstr("error field value")?;
        match kind {
            // 'V' is the untranslated severity (9.6+); prefer it over the localized 'S'.
            b'V' => fields.severity = value,
            b'S' if fields.severity.is_empty() => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            b'D' => fields.detail = Some(value),
            b'H' => fields.hint = Some(value),
            b'W' => fields.where_ = Some(value),
            b's' => fields.schema = Some(value),
            b't' => fields.table = Some(value),
            b'c' => fields.column = Some(value),
            b'n' => fields.constraint = Some(value),
            _ => {}
        }
    }
    Ok(fields)
}

fn parse_row_description(body: &mut Body) -> Result<Vec<FieldDescription>, ProtocolError> {
    let count = body.i16("field count")?;
    let count = usize::try_from(count).map_err(|_| ProtocolError::Invalid {
        tag: body.tag,
        what: "negative field count",
    })?;
    // Each field takes at least 19 bytes, so the body bounds the allocation.
    let mut fields = Vec::with_capacity(count.min(body.buf.len() / 19));
    for _ in 0..count {
        let name = body.cstr("field name")?;
        let _table_oid = body.i32("table oid")?;
        let _column = body.i16("column number")?;
        let type_oid = body.i32("type oid")? as u32;
        let _type_len = body.i16("type length")?;
        let _type_mod = body.i32("type modifier")?;
        let format = body.i16("format code")?;
        fields.push(FieldDescription {
            name,
            type_oid,
            format,
        });
    }
    Ok(fields)
}

fn parse_data_row(body: &mut Body) -> Result<Vec<Option<Bytes>>, ProtocolError> {
    let count = body.i16("column count")?;
    let count = usize::try_from(count).map_err(|_| ProtocolError::Invalid {
        tag: body.tag,
        what: "negative column count",
    })?;
    let mut values = Vec::with_capacity(count.min(body.buf.len() / 4));
    for _ in 0..count {
        let len = body.i32("value length")?;
        if len == -1 {
            values.push(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| ProtocolError::Invalid {
            tag: body.tag,
            what: "negative value length",
        })?;
        values.push(Some(body.bytes(len, "column value")?));
    }
    if !body.is_empty() {
        return Err(ProtocolError::Invalid {
            tag: body.tag,
            what: "trailing bytes after the last column",
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        out.extend_from_slice(&[tag]);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn waits_for_a_whole_message() {
        let whole = frame(b'Z', b"I");
        let decoder = Decoder::default();
        for cut in 0..whole.len() {
            let mut partial = BytesMut::from(&whole[..cut]);
            assert_eq!(decoder.decode(&mut partial).unwrap(), None, "cut at {cut}");
        }
        let mut buf = whole.clone();
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(BackendMessage::ReadyForQuery { status: b'I' })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_lengths_below_four_and_above_the_maximum() {
        let decoder = Decoder::with_max_message_len(100);
        let mut short = BytesMut::from(&[b'Z', 0, 0, 0, 3][..]);
        assert!(matches!(
            decoder.decode(&mut short),
            Err(ProtocolError::BadLength { .. })
        ));
        let mut negative = BytesMut::from(&[b'd', 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(decoder.decode(&mut negative).is_err());
        let mut huge = BytesMut::from(&[b'd', 0x7F, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            decoder.decode(&mut huge),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn parses_error_fields() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0";
        let mut buf = frame(b'E', body);
        let Some(BackendMessage::ErrorResponse(fields)) =
            Decoder::default().decode(&mut buf).unwrap()
        else {
            panic!("not an error response");
        };
        assert_eq!(fields.code, "28P01");
        assert_eq!(fields.severity, "FATAL");
        assert!(fields.message.starts_with("password authentication failed"));
    }

    #[test]
    fn data_row_with_null_and_values() {
        let mut body = Vec::new();
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        body.extend_from_slice(&0i32.to_be_bytes());
        let mut buf = frame(b'D', &body);
        assert_eq!(
            Decoder::default().decode(&mut buf).unwrap(),
            Some(BackendMessage::DataRow(vec![
                None,
                Some(Bytes::from_static(b"ab")),
                Some(Bytes::new())
            ]))
        );
    }

    #[test]
    fn data_row_value_longer_than_body_is_an_error() {
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1000i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        let mut buf = frame(b'D', &body);
        assert!(Decoder::default().decode(&mut buf).is_err());
    }

    #[test]
    fn sasl_mechanisms_are_listed() {
        let mut body = 10i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let mut buf = frame(b'R', &body);
        assert_eq!(
            Decoder::default().decode(&mut buf).unwrap(),
            Some(BackendMessage::Authentication(Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
            }))
        );
    }

    #[test]
    fn unterminated_string_is_an_error_not_a_panic() {
        let mut buf = frame(b'C', b"SELECT 1");
        assert!(matches!(
            Decoder::default().decode(&mut buf),
            Err(ProtocolError::Truncated { .. })
        ));
    }
}
