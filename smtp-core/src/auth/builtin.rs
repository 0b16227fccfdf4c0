//! The built-in PLAIN (RFC 4616) and LOGIN mechanisms.

use super::data::{AuthAbort, AuthData, AuthResult, LoginPassword, Secret};
use super::exchange::{AuthArgs, AuthServer};
use super::registry::AuthMechanism;

/// PLAIN: `authzid NUL login NUL password`, as an initial response or after an empty `334 `.
pub struct Plain;

/// LOGIN: the user name and the password, each after its own prompt
/// (`334 VXNlciBOYW1lAA==`, `334 UGFzc3dvcmQA`); the user name may come as initial response.
pub struct Login;

fn usable(field: &[u8]) -> bool {
    !field.is_empty() && !field.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

impl AuthMechanism for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let blob = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        let mut parts = blob.split(|b| *b == 0);
        let (Some(authzid), Some(login), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(AuthResult::failure_with("501 5.5.2 Can't split auth value"));
        };
        // Checked before the authenticator sees them: an empty or multi-line credential
        // is never valid and only serves to probe the backend.
        if !usable(login) || !usable(password) {
            return Ok(AuthResult::failure());
        }
        let authzid = (!authzid.is_empty() && authzid != login).then(|| authzid.to_vec());
        let data = LoginPassword {
            login: login.to_vec(),
            password: Secret::new(password),
            authzid,
        };
        Ok(server
            .authenticate("PLAIN", AuthData::LoginPassword(data))
            .await)
    }
}

impl AuthMechanism for Login {
    fn name(&self) -> &str {
        "LOGIN"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let login = server
            .initial_or_challenge(args.initial_response, b"User Name\0")
            .await?;
        let password = server.challenge_auth(b"Password\0", true).await?;
        let data = LoginPassword {
            login,
            password: Secret::new(password),
            authzid: None,
        };
        Ok(server
            .authenticate("LOGIN", AuthData::LoginPassword(data))
            .await)
    }
}
