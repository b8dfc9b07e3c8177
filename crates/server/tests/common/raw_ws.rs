//! [`RawWs`]: a WebSocket client for tests of the bytes on the wire. It writes its own
//! handshake (with whatever headers a test offers) and reads whole frames with the
//! codec's [`FrameHeader`], keeping every byte as it came.

use switchboard_ws::FrameHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::bounded;

pub(crate) struct RawWs {
    s: TcpStream,
    /// Read and not yet taken.
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens `path` with `offer` (header lines, each ending in `\r\n`) added to the
    /// handshake; returns the response's head, whatever its status.
    pub(crate) async fn open(
        addr: std::net::SocketAddr,
        path: &str,
        offer: &str,
    ) -> (RawWs, String) {
        Self::open_on(TcpStream::connect(addr).await.unwrap(), path, offer).await
    }

    /// The same on a connected stream (a socket with a small receive buffer, say).
    pub(crate) async fn open_on(mut s: TcpStream, path: &str, offer: &str) -> (RawWs, String) {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut ws = RawWs { s, buf: Vec::new() };
        let head = loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
                ws.buf.drain(..end + 4);
                break head;
            }
            ws.fill().await;
        };
        (ws, head)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = bounded(self.s.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "the connection ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next whole frame: its header and all its bytes as they came on the wire.
    pub(crate) async fn frame(&mut self) -> (FrameHeader, Vec<u8>) {
        loop {
            if let Some((h, n)) = FrameHeader::parse(&self.buf).unwrap() {
                let len = n + usize::try_from(h.payload_len).unwrap();
                if self.buf.len() >= len {
                    return (h, self.buf.drain(..len).collect());
                }
            }
            self.fill().await;
        }
    }

    /// Sends a masked text frame (the mask is zero, so the bytes are the text).
    pub(crate) async fn send_text(&mut self, text: &str) {
        let len = u8::try_from(text.len()).unwrap();
        assert!(len < 126);
        let mut f = vec![0x81, 0x80 | len, 0, 0, 0, 0];
        f.extend_from_slice(text.as_bytes());
        self.s.write_all(&f).await.unwrap();
    }
}
