//! The WebSocket wire of a session: the upgraded connection, the close
//! codes, server frames as bytes, and frames read and written on the
//! connection holding memory only while there is something in it. Below
//! every other part of a session, so they all share it without importing
//! each other.
//!
//! Most connections are idle most of the time, so what an idle connection
//! keeps is what the gateway's density is made of. fastwebsockets' reader
//! keeps a fixed 8 KiB buffer for a connection's whole life, and its writer
//! wants a `BufWriter` (another 8 KiB) to send a batch of frames in one
//! system call. Here the reader waits for a connection's next frame with
//! one byte of space, reads into a buffer only while a frame is arriving
//! and lets it go between frames; the writer gathers frames in a buffer
//! that is released once flushed. fastwebsockets still does the upgrade,
//! the frame headers and the unmasking.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chat_shared::protocol::ServerFrame;
use fastwebsockets::{Frame, OpCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// An upgraded connection.
pub type Socket = TokioIo<Upgraded>;

/// Close codes this gateway uses (see docs/protocol.md).
pub mod close {
    /// The client closed, or the session ended normally.
    pub const NORMAL: u16 = 1000;
    /// The client broke the protocol (binary frame, bad fragment).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A message was over `CHAT_MAX_MESSAGE_BYTES`.
    pub const TOO_BIG: u16 = 1009;
    /// The gateway is shutting down: reconnect elsewhere and `sync`.
    pub const RESTARTING: u16 = 1012;
    /// The client fell too far behind: reconnect and `sync`.
    pub const SLOW_CONSUMER: u16 = 1013;
    /// Nothing was heard for 1.25 heartbeat intervals (closed within two).
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The access token expired and no fresh one came with `auth`.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The login session ended (logout, revoked, a replayed refresh
    /// token): log in again.
    pub const SESSION_REVOKED: u16 = 4002;
    /// The store could not be read (to start the session, or to fill a
    /// gap): retry, and resume with `sync`.
    pub const UNAVAILABLE: u16 = 4003;
}

/// Bytes of a server frame.
pub fn frame_bytes(frame: &ServerFrame) -> Bytes {
    Bytes::from(frame.to_json())
}

/// Bytes asked of the socket at once: client frames are usually a few
/// hundred bytes, and a frame that needs more reserves what it needs.
const READ_CHUNK: usize = 4096;

/// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
const MAX_HEAD: usize = 14;

/// A frame as the client sent it, unmasked.
#[derive(Debug)]
pub struct Received {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: BytesMut,
}

/// Why no frame could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The connection ended or failed: nothing more can be said on it.
    Gone,
    /// A frame longer than the limit.
    TooBig,
    /// A frame RFC 6455 does not allow from a client.
    Protocol(&'static str),
}

impl From<std::io::Error> for ReadError {
    fn from(_: std::io::Error) -> Self {
        Self::Gone
    }
}

/// Reads a client's frames, one at a time.
pub struct FrameReader<R> {
    stream: R,
    /// The part of a frame (or of several) read so far; no allocation
    /// between frames.
    buffer: BytesMut,
    /// The largest payload accepted, in bytes.
    max_payload: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that refuses frames with more than `max_payload` bytes.
    pub fn new(stream: R, max_payload: usize) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            max_payload,
        }
    }

    /// The next frame. Cancel-safe only between frames: dropping the
    /// future mid-frame loses what was read of it.
    pub async fn next(&mut self) -> Result<Received, ReadError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Reads more. Between frames the buffer is released and the wait for
    /// the next frame holds one byte of space, not a buffer.
    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.buffer.is_empty() {
            self.buffer = BytesMut::new();
            let mut first = [0; 1];
            if self.stream.read(&mut first).await? == 0 {
                return Err(ReadError::Gone);
            }
            self.buffer.reserve(READ_CHUNK);
            self.buffer.put_u8(first[0]);
            return Ok(());
        }
        self.buffer.reserve(READ_CHUNK);
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(ReadError::Gone);
        }
        Ok(())
    }

    /// Takes one whole frame off the front of the buffer, if there is one;
    /// refuses what no client may send as soon as its header shows it.
    fn decode(&mut self) -> Result<Option<Received>, ReadError> {
        let read = &self.buffer[..];
        if read.len() < 2 {
            return Ok(None);
        }
        let fin = read[0] & 0x80 != 0;
        if read[0] & 0x70 != 0 {
            return Err(ReadError::Protocol("reserved bits set"));
        }
        let opcode = match read[0] & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return Err(ReadError::Protocol("unknown opcode")),
        };
        // RFC 6455 §5.1: a server closes on an unmasked client frame.
        if read[1] & 0x80 == 0 {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        let (length, mask_at) = match read[1] & 0x7F {
            126 if read.len() < 4 => return Ok(None),
            126 => (u64::from(u16::from_be_bytes([read[2], read[3]])), 4),
            127 if read.len() < 10 => return Ok(None),
            127 => {
                let length: [u8; 8] = read[2..10].try_into().expect("eight bytes");
                (u64::from_be_bytes(length), 10)
            }
            short => (u64::from(short), 2),
        };
        let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
        if control && (!fin || length > 125) {
            return Err(ReadError::Protocol(
                "control frames must be whole and at most 125 bytes",
            ));
        }
        if length > self.max_payload as u64 {
            return Err(ReadError::TooBig);
        }
        let start = mask_at + 4;
        let end = start + length as usize;
        if read.len() < end {
            // Room for the rest in one go: one read, not one per chunk.
            let missing = end - read.len();
            self.buffer.reserve(missing);
            return Ok(None);
        }
        let mask: [u8; 4] = read[mask_at..start].try_into().expect("four bytes");
        self.buffer.advance(start);
        let mut payload = self.buffer.split_to(length as usize);
        fastwebsockets::unmask(&mut payload, mask);
        Ok(Some(Received {
            fin,
            opcode,
            payload,
        }))
    }
}

/// Gathers a server's frames and sends them with one write.
pub struct FrameWriter<W> {
    stream: W,
    /// Frames not yet written; no allocation once flushed.
    buffer: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(stream: W) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Adds a frame to what the next flush sends.
    pub fn push(&mut self, mut frame: Frame<'_>) {
        let mut head = [0; MAX_HEAD];
        let size = frame.fmt_head(&mut head);
        self.buffer.reserve(size + frame.payload.len());
        self.buffer.extend_from_slice(&head[..size]);
        self.buffer.extend_from_slice(&frame.payload);
    }

    /// Bytes pushed and not yet flushed.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Writes what was pushed, then lets the buffer go.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.stream.write_all(&self.buffer).await?;
            self.buffer = Vec::new();
        }
        self.stream.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::Payload;
    use tokio::io::AsyncWriteExt;

    /// A client frame: masked, as clients must.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Received, ReadError>> {
        let (mut client, server) = tokio::io::duplex(64);
        // Written in small pieces: frames arrive split across reads.
        // The writer stops once the reader has gone (after an error, the
        // rest is never read).
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(7) {
                if client.write_all(piece).await.is_err() {
                    break;
                }
            }
        });
        let mut reader = FrameReader::new(server, max);
        let mut frames = Vec::new();
        loop {
            let frame = reader.next().await;
            let end = frame.is_err();
            frames.push(frame);
            if end {
                break;
            }
        }
        drop(reader);
        writer.await.unwrap();
        frames
    }

    #[tokio::test]
    async fn frames_of_every_length_encoding_arrive_whole_and_unmasked() {
        let long = vec![b'x'; 70_000];
        let medium = vec![b'y'; 300];
        let mut bytes = client_frame(0x81, b"hello");
        bytes.extend(client_frame(0x01, &medium));
        bytes.extend(client_frame(0x80, &long));
        bytes.extend(client_frame(0x89, b"ping"));
        let frames = read_all(bytes, 100_000).await;
        let got: Vec<_> = frames
            .iter()
            .map(|f| f.as_ref().map(|f| (f.fin, f.opcode, f.payload.to_vec())))
            .collect();
        assert_eq!(
            got,
            vec![
                Ok((true, OpCode::Text, b"hello".to_vec())),
                Ok((false, OpCode::Text, medium)),
                Ok((true, OpCode::Continuation, long)),
                Ok((true, OpCode::Ping, b"ping".to_vec())),
                Err(&ReadError::Gone),
            ]
        );
    }

    #[tokio::test]
    async fn what_no_client_may_send_is_refused_by_its_header() {
        let cases: [(Vec<u8>, ReadError); 6] = [
            (client_frame(0x81, &[b'a'; 101]), ReadError::TooBig),
            (
                client_frame(0xC1, b"x"),
                ReadError::Protocol("reserved bits set"),
            ),
            (
                client_frame(0x83, b"x"),
                ReadError::Protocol("unknown opcode"),
            ),
            (
                vec![0x81, 0x01, b'x'],
                ReadError::Protocol("client frames must be masked"),
            ),
            (
                client_frame(0x09, b"x"),
                ReadError::Protocol("control frames must be whole and at most 125 bytes"),
            ),
            (
                client_frame(0x89, &[0; 126]),
                ReadError::Protocol("control frames must be whole and at most 125 bytes"),
            ),
        ];
        for (bytes, error) in cases {
            let frames = read_all(bytes, 100).await;
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].as_ref().unwrap_err(), &error);
        }
    }

    #[tokio::test]
    async fn a_connection_that_ends_mid_frame_is_gone() {
        let mut bytes = client_frame(0x81, b"hello");
        bytes.truncate(4);
        let frames = read_all(bytes, 100).await;
        assert_eq!(frames[0].as_ref().unwrap_err(), &ReadError::Gone);
    }

    #[tokio::test]
    async fn pushed_frames_leave_in_one_flush_and_the_buffer_goes() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut writer = FrameWriter::new(client);
        writer.push(Frame::text(Payload::Borrowed(b"one")));
        writer.push(Frame::text(Payload::Borrowed(&[b'z'; 200])));
        writer.push(Frame::close(1000, b""));
        assert!(writer.pending() > 200);
        writer.flush().await.unwrap();
        assert_eq!(writer.pending(), 0);
        assert_eq!(writer.buffer.capacity(), 0);
        drop(writer);
        let mut sent = Vec::new();
        server.read_to_end(&mut sent).await.unwrap();
        let mut expected = vec![0x81, 3];
        expected.extend_from_slice(b"one");
        expected.extend_from_slice(&[0x81, 126, 0, 200]);
        expected.extend_from_slice(&[b'z'; 200]);
        expected.extend_from_slice(&[0x88, 2, 0x03, 0xE8]);
        assert_eq!(sent, expected);
    }
}
