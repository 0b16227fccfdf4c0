//! The TLS client of the TLS workloads.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
    WebPkiServerVerifier,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

/// A connector that verifies the server's certificate chain against the PEM certificates in
/// `ca`, for `server_name`; with `resume`, it resumes sessions from the server's tickets.
pub fn connector(
    ca: &Path,
    server_name: &str,
    resume: bool,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", ca.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| at(&e))? {
        roots.add(cert.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
    }
    // aws-lc-rs, as smtpd uses, offering X25519 first: the server takes the group of the
    // client's first key share. Today's browsers, OpenSSL 3.5 and Go 1.24 send the post-quantum
    // hybrid X25519MLKEM768 first, but not every peer of the benchmark speaks it (its Go is
    // older); classic X25519 makes every server do the same work.
    use rustls::crypto::aws_lc_rs::kx_group;
    #[allow(deprecated)]
    let provider: Arc<CryptoProvider> = Arc::new(CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| at(&e))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(VerifiedOnce {
            webpki,
            known: Mutex::default(),
            signature_checked: AtomicBool::new(false),
        }))
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::store(Arc::new(Tickets::default()))
    } else {
        // rustls resumes by default; a full handshake per connection is what is measured then.
        Resumption::disabled()
    };
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// Verifies a certificate chain against the roots once, then accepts the same chain by its bytes;
/// checks the handshake signature (the proof that the server holds the key) of the first
/// connection only. The server still signs every full handshake, so its cost is unchanged; but an
/// ECDSA verification costs the generator two to three times the server's signature, and with
/// one per connection the generator, not the server, would be the bottleneck of every TLS row.
/// (A chain verified per connection would add two more.) The first connection of every run
/// checks both, so a server with a wrong key or chain still fails the run.
#[derive(Debug)]
struct VerifiedOnce {
    webpki: Arc<WebPkiServerVerifier>,
    known: Mutex<Option<Vec<Vec<u8>>>>,
    signature_checked: AtomicBool,
}

impl VerifiedOnce {
    fn signature(
        &self,
        check: impl FnOnce() -> Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.signature_checked.load(Ordering::Relaxed) {
            return Ok(HandshakeSignatureValid::assertion());
        }
        let ok = check()?;
        self.signature_checked.store(true, Ordering::Relaxed);
        Ok(ok)
    }
}

impl ServerCertVerifier for VerifiedOnce {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = || std::iter::once(end_entity).chain(intermediates);
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = known.as_ref()
            && k.len() == intermediates.len() + 1
            && k.iter().zip(chain()).all(|(a, b)| a[..] == b[..])
        {
            return Ok(ServerCertVerified::assertion());
        }
        let ok = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        *known = Some(chain().map(|c| c.to_vec()).collect());
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(|| self.webpki.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(|| self.webpki.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Session tickets for the one server a run talks to. rustls's own store keeps 8 TLS 1.3 tickets
/// per server, fewer than a run has connections at once, so a third of them or more would fall
/// back to full handshakes; this one keeps up to `TICKETS`, newest used first.
#[derive(Debug, Default)]
struct Tickets(Mutex<Sessions>);

#[derive(Debug, Default)]
struct Sessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

const TICKETS: usize = 4096;

impl Tickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientSessionStore for Tickets {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.lock().kx_hint = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.lock().kx_hint
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.lock().tls12 = Some(value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.lock().tls12.clone()
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.lock().tls12 = None;
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut s = self.lock();
        if s.tls13.len() == TICKETS {
            s.tls13.pop_front();
        }
        s.tls13.push_back(value);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.lock().tls13.pop_back()
    }
}
