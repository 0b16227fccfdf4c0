//! `floor`: the cheapest SMTP-shaped server tokio can run, as a benchmark peer. It answers every
//! command with a fixed reply and parses nothing but the command's first four letters and the end
//! of DATA: no addresses, no limits, no logs, no AUTH check. No real server can cost less per
//! connection or message on the same kernel and runtime, so its row shows how much of a ratio
//! between real servers is left to win in user space (for a connection: little; the kernel's
//! connect, accept and close dominate). Plain TCP only; loopback only; for bench/run.sh.
//!
//!   floor --addr 127.0.0.1:2525

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A command line longer than this closes the connection (the generator never sends one).
const BUF: usize = 64 * 1024;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--addr"), Some(a)) => a.parse().map_err(std::io::Error::other)?,
        _ => return Err(std::io::Error::other("usage: floor --addr 127.0.0.1:PORT")),
    };
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::other(format!(
            "{addr} is not a loopback address"
        )));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
        })
}

/// Where the end-of-data search stands: how much of CR LF "." CR LF has been seen.
/// DATA's own line ended with CR LF, so a body starts two bytes in.
const AFTER_CRLF: u8 = 2;
const END: &[u8; 5] = b"\r\n.\r\n";

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; BUF];
    let (mut start, mut end) = (0, 0);
    let mut data: Option<u8> = None;
    let mut out = Vec::with_capacity(512);
    if stream.write_all(b"220 floor ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        let mut quit = false;
        while start < end && !quit {
            if let Some(seen) = data.as_mut() {
                // The body: only its end matters.
                while start < end && *seen < 5 {
                    let b = buf[start];
                    start += 1;
                    *seen = if b == END[*seen as usize] {
                        *seen + 1
                    } else if b == b'\r' {
                        1
                    } else {
                        0
                    };
                }
                if *seen == 5 {
                    data = None;
                    out.extend_from_slice(b"250 2.0.0 Ok: queued\r\n");
                }
                continue;
            }
            let Some(nl) = buf[start..end].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &buf[start..start + nl];
            start += nl + 1;
            let verb = line.get(..4).unwrap_or(line).to_ascii_uppercase();
            out.extend_from_slice(match &verb[..] {
                b"EHLO" => {
                    &b"250-floor\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"[..]
                }
                b"HELO" => b"250 floor\r\n",
                b"AUTH" => b"235 2.7.0 Authentication successful\r\n",
                b"DATA" => {
                    data = Some(AFTER_CRLF);
                    b"354 End data with <CR><LF>.<CR><LF>\r\n"
                }
                b"QUIT" => {
                    quit = true;
                    b"221 2.0.0 Bye\r\n"
                }
                _ => b"250 2.0.0 Ok\r\n",
            });
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if quit {
            let _ = stream.shutdown().await;
            return;
        }
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            if start == 0 {
                return; // a line longer than the buffer
            }
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        match stream.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}
