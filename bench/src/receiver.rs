//! A receive-only WebSocket client that costs far less per frame than any
//! server it measures: one `read` fills a buffer with as many frames
//! as have arrived, and each is parsed in place (server frames are not
//! masked; RFC 6455 §5.2) with no allocation. Only what a receiver needs:
//! text frames go to the caller, pings are answered, a close ends it.
//!
//! The handshake is written by hand for the same reason: the bytes that
//! follow the `101` response (often the server's first frame) must stay in
//! our buffer, which a general client library would keep in its own.
//!
//! This is the benchmark's own measurement codec and stays apart from the
//! test kit's `TestClient` (`chat-testkit`), which every other suite
//! shares: the kit's client parses every frame into a JSON value and keeps
//! the ones it skipped, a cost per frame that, times 1,000 members, would
//! load the generator's core and measure the generator instead of the
//! server. The processes it connects to are started by the kit's launcher.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An open connection and the bytes read but not yet parsed.
pub struct Receiver {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Parsed up to here.
    start: usize,
    /// Filled up to here.
    end: usize,
}

/// What the next frame was.
pub enum Frame<'a> {
    Text(&'a str),
    Closed,
}

/// The buffer of a busy receiver: room for many frames per read.
pub const BUSY_BUFFER: usize = 64 * 1024;

impl Receiver {
    /// Opens `path` on `addr` from `source`, sending `headers` (each
    /// `name: value`), and checks the `101`. The read buffer starts at
    /// `buffer` bytes and grows only for a frame larger than itself.
    pub async fn connect(
        addr: SocketAddr,
        source: std::net::IpAddr,
        path: &str,
        headers: &[String],
        buffer: usize,
    ) -> Result<Self> {
        let mut stream = crate::sockets::bound_to(source)?.connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut receiver = Self {
            stream,
            buf: vec![0; buffer],
            start: 0,
            end: 0,
        };
        // Read until the end of the response head; keep what follows.
        loop {
            if let Some(head_end) = find(&receiver.buf[..receiver.end], b"\r\n\r\n") {
                let head =
                    std::str::from_utf8(&receiver.buf[..head_end]).context("response head")?;
                if !head.starts_with("HTTP/1.1 101") {
                    bail!(
                        "the upgrade was refused: {}",
                        head.lines().next().unwrap_or_default()
                    );
                }
                receiver.start = head_end + 4;
                return Ok(receiver);
            }
            if receiver.fill().await? == 0 {
                bail!("connection closed during the handshake");
            }
        }
    }

    /// Reads more bytes after what is buffered; 0 at end of stream.
    async fn fill(&mut self) -> Result<usize> {
        if self.end == self.buf.len() {
            // Keep the unparsed tail; grow only for a frame larger than
            // the whole buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next text frame (pings answered on the way), or `Closed`.
    pub async fn next(&mut self) -> Result<Frame<'_>> {
        loop {
            match parse(&self.buf[self.start..self.end])? {
                Some((opcode, payload, used)) => {
                    let payload = self.start + payload.start..self.start + payload.end;
                    self.start += used;
                    match opcode {
                        0x1 => {
                            let text =
                                std::str::from_utf8(&self.buf[payload]).context("text frame")?;
                            return Ok(Frame::Text(text));
                        }
                        0x8 => return Ok(Frame::Closed),
                        0x9 => {
                            let pong = masked(0xA, &self.buf[payload]);
                            self.stream.write_all(&pong).await?;
                        }
                        _ => {}
                    }
                }
                None => {
                    if self.fill().await? == 0 {
                        return Ok(Frame::Closed);
                    }
                }
            }
        }
    }

    /// Sends a text frame (clients must mask: RFC 6455 §5.3).
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.stream.write_all(&masked(0x1, text.as_bytes())).await?;
        Ok(())
    }
}

/// One complete frame at the start of `bytes`: its opcode, the payload's
/// range within `bytes`, and how many bytes it took; `None` if incomplete.
/// Fragmented messages are refused: no server here fragments its frames.
fn parse(bytes: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>, usize)>> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let (fin, opcode) = (bytes[0] & 0x80 != 0, bytes[0] & 0x0f);
    if !fin || opcode == 0 {
        bail!("a fragmented frame (opcode {opcode}), which this receiver does not take");
    }
    if bytes[1] & 0x80 != 0 {
        bail!("a masked frame from a server");
    }
    let (len, header) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        126 | 127 => return Ok(None),
        short => (short as usize, 2),
    };
    if bytes.len() < header + len {
        return Ok(None);
    }
    Ok(Some((opcode, header..header + len, header + len)))
}

/// A final client frame with a fixed mask (the mask only has to exist; it
/// protects proxies, not secrets).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_in_place_whatever_their_length_field() {
        let mut bytes = vec![0x81, 5];
        bytes.extend_from_slice(b"hello");
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        bytes.extend_from_slice(&long);
        let (op, range, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!((op, &bytes[range], used), (1, &b"hello"[..], 7));
        let (op, range, used) = parse(&bytes[7..]).unwrap().unwrap();
        assert_eq!((op, range.len(), used), (1, 256, 260));
        assert!(parse(&bytes[7..100]).unwrap().is_none(), "incomplete");
        assert!(parse(&[0x01, 1, b'x']).is_err(), "fragmented");
    }

    #[test]
    fn client_frames_are_masked() {
        let frame = masked(0xA, b"ab");
        assert_eq!(&frame[..2], &[0x8A, 0x82]);
        assert_eq!(frame[6] ^ frame[2], b'a');
        assert_eq!(frame[7] ^ frame[3], b'b');
    }
}
