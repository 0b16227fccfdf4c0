//! EXTERNAL (RFC 4422 appendix A) over TLS client certificates.

use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer};

/// EXTERNAL: the client's TLS certificate (already verified by the TLS setup's client CA)
/// is its credential. The client may name an authorization identity (initial response, or
/// after `334 `; empty means none). The authenticator decides, given
/// [`AuthData::External`]; without a client certificate the exchange fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct External;

impl AuthMechanism for External {
    fn name(&self) -> &str {
        "EXTERNAL"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let certificates = server
            .session()
            .tls()
            .map(|tls| tls.peer_certificates.clone())
            .unwrap_or_default();
        let authzid = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        if certificates.is_empty() || authzid.contains(&0) {
            return Ok(AuthResult::failure());
        }
        let identities = super::certificate::identities(&certificates[0]);
        let data = AuthData::External {
            authzid: (!authzid.is_empty()).then_some(authzid),
            certificates,
            identities,
        };
        Ok(server.authenticate("EXTERNAL", data).await)
    }
}
