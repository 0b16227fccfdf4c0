//! EXTERNAL (RFC 4422 appendix A) over TLS client certificates.

use async_trait::async_trait;

use crate::auth::{AuthAbort, AuthData, AuthMechanism, AuthResult, AuthServer};

/// EXTERNAL: the client's TLS certificate (already verified by the TLS setup's client CA)
/// is its credential. The client may name an authorization identity (initial response, or
/// after `334 `; empty means none). The authenticator decides, given
/// [`AuthData::External`]; without a client certificate the exchange fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct External;

#[async_trait]
impl AuthMechanism for External {
    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: &[String],
    ) -> Result<AuthResult, AuthAbort> {
        let certificates = server
            .session()
            .tls
            .as_ref()
            .map(|tls| tls.peer_certificates.clone())
            .unwrap_or_default();
        let authzid = match args.get(1) {
            Some(initial) => server.decode_initial_response(initial)?,
            None => server.challenge_auth(b"", false).await?,
        };
        if certificates.is_empty() || authzid.contains(&0) {
            return Ok(AuthResult::failure());
        }
        let data = AuthData::External {
            authzid: (!authzid.is_empty()).then_some(authzid),
            certificates,
        };
        Ok(server.authenticate("EXTERNAL", data).await)
    }
}
