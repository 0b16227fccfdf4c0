//! The PROXY protocol header (HAProxy v1/v2), read before the greeting.

use tokio::time::Instant;
use tracing::{debug, info};

use super::Connection;
use super::hooks::call_hook;
use super::io::READ_CHUNK;
use crate::handler::Handler;
use crate::metrics::{self, Rejection};
use crate::proto::proxy::{self as header, ProxyParse};
use crate::session::Peer;
use crate::stream::Transport;

impl<H: Handler, S: Transport> Connection<H, S> {
    /// Reads the PROXY header and asks the handler. Returns false when the connection must
    /// close with nothing sent: untrusted source, invalid header, timeout, or the hook says no.
    pub(super) async fn proxy_header(&mut self, exact: bool) -> bool {
        let Some(proxy) = self.shared.config.proxy_protocol.clone() else {
            return true;
        };
        if let Some(addr) = self.session.peer().addr()
            && !proxy.trusts(addr.ip())
        {
            info!("PROXY header from an untrusted source");
            metrics::connection_rejected(Rejection::ProxyUntrusted);
            return false;
        }
        let deadline = Instant::now() + proxy.timeout;
        let data = loop {
            let wanted = match header::parse(self.io.pending()) {
                ProxyParse::Done(data, consumed) => {
                    self.io.consume(consumed);
                    break data;
                }
                ProxyParse::Invalid(why) => {
                    info!(error = why, "invalid PROXY header");
                    metrics::connection_rejected(Rejection::ProxyInvalid);
                    return false;
                }
                ProxyParse::NeedMore(n) if exact => n,
                ProxyParse::NeedMore(_) => READ_CHUNK,
            };
            let kill = self.io.kill_signal().clone();
            let shutdown = self.io.shutdown_signal().clone();
            let read = tokio::select! {
                biased;
                _ = kill.cancelled() => return false,
                _ = shutdown.cancelled() => return false,
                read = tokio::time::timeout_at(deadline, self.io.read_at_most(wanted)) => read,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return false,
                Err(_) => {
                    info!("PROXY header timed out");
                    metrics::connection_rejected(Rejection::ProxyTimeout);
                    return false;
                }
            }
        };
        debug!(?data, "PROXY header");
        if let Some(source) = data.source {
            self.session.set_peer(Peer::Tcp(source));
            if let Err(reply) = self.budget.admit_proxied(source.ip(), &self.shared.config) {
                info!(peer = %self.session.peer(), "{}", reply.text());
                self.io.push(&reply);
                let _ = self.io.flush().await;
                return false;
            }
        }
        let accepted = call_hook!(self, "handle_proxy", |h, session, envelope| h
            .handle_proxy(session, &data))
        .unwrap_or(false);
        if !accepted {
            info!(peer = %self.session.peer(), "PROXY connection refused by the handler");
            metrics::connection_rejected(Rejection::ProxyRefused);
            return false;
        }
        self.session.set_proxy_data(data);
        true
    }
}
