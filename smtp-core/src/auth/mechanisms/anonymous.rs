//! ANONYMOUS (RFC 4505), for trace-only access.

use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer};

/// ANONYMOUS: any client gets in; what it sends as trace information (an email address or
/// an opaque string of at most 255 characters) is logged and kept as
/// [`AuthData::Anonymous`]. The authenticator is not asked. Offer it only where
/// "authenticated" grants nothing a stranger should not have.
#[derive(Clone, Copy, Debug, Default)]
pub struct Anonymous;

impl AuthMechanism for Anonymous {
    fn name(&self) -> &str {
        "ANONYMOUS"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let trace = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        let Ok(trace) = String::from_utf8(trace) else {
            return Ok(AuthResult::failure());
        };
        if trace.chars().count() > 255 || trace.chars().any(char::is_control) {
            return Ok(AuthResult::failure());
        }
        tracing::info!(peer = %server.session().peer(), trace = ?trace, "anonymous AUTH");
        Ok(AuthResult::success_with(AuthData::Anonymous { trace }))
    }
}
