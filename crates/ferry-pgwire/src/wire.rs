//! [`Wire`]: one connection's byte stream with its receive and send buffers.
//!
//! Reading fills the receive buffer and hands it to the sans-IO [`Decoder`]; writing
//! accumulates frontend messages in the send buffer until [`Wire::flush`]. Server notices are
//! logged here (level and text only, never data) and not passed on, so no caller has to
//! skip them.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::frame::{BackendMessage, Decoder};
use crate::transport::Io;

const READ_CHUNK: usize = 128 * 1024;

pub(crate) struct Wire {
    io: Box<dyn Io>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: Decoder,
}

impl Wire {
    pub(crate) fn new(io: Box<dyn Io>) -> Self {
        Wire {
            io,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            decoder: Decoder::default(),
        }
    }

    /// The send buffer, for frontend message encoders.
    pub(crate) fn out(&mut self) -> &mut BytesMut {
        &mut self.write_buf
    }

    /// Sends everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        self.io.write_all(&self.write_buf).await?;
        self.io.flush().await?;
        self.write_buf.clear();
        Ok(())
    }

    /// The next message that is not a notice. Cancel-safe: a message is either returned or
    /// stays in the buffer.
    pub(crate) async fn read(&mut self) -> Result<BackendMessage, Error> {
        loop {
            match self.decoder.decode(&mut self.read_buf)? {
                Some(BackendMessage::NoticeResponse(notice)) => {
                    tracing::info!(
                        severity = %notice.severity,
                        code = %notice.code,
                        "server notice: {}",
                        notice.message
                    );
                }
                Some(message) => return Ok(message),
                None => self.fill().await?,
            }
        }
    }

    /// The longest run of whole CopyData messages at the front of the receive buffer, raw
    /// (headers included), reading more when there is not one whole message yet. `None`
    /// when the next message is something else (CopyDone, an error): read it with
    /// [`Wire::read`]. Frames are length-checked like every other message.
    pub(crate) async fn read_copy_data_run(&mut self) -> Result<Option<bytes::Bytes>, Error> {
        loop {
            let mut end = 0;
            while let Some(len) = self.decoder.frame_len(&self.read_buf[end..])? {
                if self.read_buf[end] != b'd' || self.read_buf.len() - end < len {
                    break;
                }
                end += len;
            }
            if end > 0 {
                return Ok(Some(self.read_buf.split_to(end).freeze()));
            }
            if self.read_buf.first().is_some_and(|&tag| tag != b'd') {
                return Ok(None);
            }
            self.fill().await?;
        }
    }

    /// Writes `bytes` (already framed messages) as they are, after anything buffered.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if !self.write_buf.is_empty() {
            self.io.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        self.io.write_all(bytes).await?;
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), Error> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        let n = self.io.read_buf(&mut self.read_buf).await?;
        if n == 0 {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Shuts the stream down politely (Terminate), ignoring errors: the peer may be gone.
    pub(crate) async fn terminate(mut self) {
        postgres_protocol::message::frontend::terminate(&mut self.write_buf);
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

/// The protocol tag of a message, for error reports.
pub(crate) fn tag_of(message: &BackendMessage) -> u8 {
    match message {
        BackendMessage::Authentication(_) => b'R',
        BackendMessage::ParameterStatus { .. } => b'S',
        BackendMessage::BackendKeyData { .. } => b'K',
        BackendMessage::ReadyForQuery { .. } => b'Z',
        BackendMessage::ErrorResponse(_) => b'E',
        BackendMessage::NoticeResponse(_) => b'N',
        BackendMessage::RowDescription(_) => b'T',
        BackendMessage::DataRow(_) => b'D',
        BackendMessage::CommandComplete { .. } => b'C',
        BackendMessage::EmptyQueryResponse => b'I',
        BackendMessage::CopyInResponse => b'G',
        BackendMessage::CopyOutResponse => b'H',
        BackendMessage::CopyBothResponse => b'W',
        BackendMessage::CopyData(_) => b'd',
        BackendMessage::CopyDone => b'c',
        BackendMessage::NegotiateProtocolVersion { .. } => b'v',
        BackendMessage::Other { tag } => *tag,
    }
}
