//! The test server's sockets answer every segment with an immediate ACK.
//!
//! Why: lettre writes a message's body and its final `.` in two writes, without
//! `TCP_NODELAY`, so Nagle holds the `.` until the body is acknowledged, while the server,
//! having nothing to reply yet, delays its ACK by 40 ms. Every message sent to a test server
//! would cost those 40 ms. Linux's `TCP_QUICKACK` is not sticky, so it is set again at every
//! read; elsewhere this is a plain stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that asks for immediate ACKs around every read.
pub(super) struct QuickAck(pub(super) TcpStream);

impl QuickAck {
    fn quickack(&self) {
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.quickack();
        let read = Pin::new(&mut this.0).poll_read(cx, buf);
        if read.is_ready() {
            this.quickack();
        }
        read
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
