//! STARTTLS (RFC 3207) and the handshake of implicit-TLS listeners (RFC 8314).

use tokio::time::timeout;
use tracing::info;

use super::Connection;
use super::hooks::call_hook;
use crate::handler::Handler;
use crate::metrics;
use crate::proto::{Reply, Verb, replies};
use crate::stream::{Stream, Transport};
use crate::tls::TlsInfo;

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) fn starttls_command(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        if arg.is_some() {
            return Err(self.syntax(Verb::StartTls));
        }
        if self.shared.config.tls.is_none() {
            return Err(replies::TLS_NOT_AVAILABLE);
        }
        if self.session.is_tls() {
            return Err(replies::TLS_ALREADY_ACTIVE);
        }
        Ok(replies::READY_TO_START_TLS)
    }

    /// Runs the TLS handshake and starts the session over. Returns false when the connection
    /// must close.
    pub(super) async fn start_tls(&mut self, implicit: bool) -> bool {
        let Some(tls) = self.shared.config.tls.clone() else {
            return false;
        };
        if self.io.flush().await.is_err() {
            return false;
        }
        self.io.discard_input();
        let stream = self.io.stream_mut();
        let Stream::Plain(plain) = std::mem::replace(stream, Stream::Upgrading) else {
            return false;
        };
        let certificate = tls.snapshot();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let kill = self.io.kill_signal().clone();
        let started = std::time::Instant::now();
        let handshake = tokio::select! {
            biased;
            _ = kill.cancelled() => return false,
            r = timeout(self.shared.config.tls_handshake_timeout, acceptor.accept(plain)) => r,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                info!(error = %e, "TLS handshake failed");
                metrics::tls_handshake(implicit, None, started.elapsed());
                return false;
            }
            Err(_) => {
                info!("TLS handshake timed out");
                metrics::tls_handshake(implicit, None, started.elapsed());
                return false;
            }
        };
        let presented = tls.presented(&certificate);
        let info = TlsInfo::from_connection(stream.get_ref().1, implicit, presented);
        info!(version = %info.version, cipher = %info.cipher_suite, "TLS established");
        metrics::tls_handshake(implicit, Some(&info.version), started.elapsed());
        *self.io.stream_mut() = Stream::Tls(Box::new(stream));
        self.session.after_tls(info);
        self.reset_envelope();
        self.phase.restart();
        self.io.touch();
        if !implicit {
            let accepted = call_hook!(self, "handle_starttls", |h, session, envelope| h
                .handle_starttls(session, envelope))
            .unwrap_or(false);
            if !accepted {
                info!("TLS result refused by the handler");
                self.tls_refused = true;
            }
        }
        true
    }
}
