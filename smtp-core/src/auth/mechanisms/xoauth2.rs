//! XOAUTH2, the Google and Microsoft bearer-token mechanism.

use super::oauthbearer::bearer_token;
use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer, Secret};

/// XOAUTH2: `user=<user>\x01auth=Bearer <token>\x01\x01`, handed to the authenticator as
/// [`AuthData::Token`]. When it refuses, the client gets a `334` JSON error challenge as
/// Google sends it, answers with an empty line, then gets the authenticator's reply.
#[derive(Clone, Debug, Default)]
pub struct XOAuth2 {
    scope: Option<String>,
}

impl XOAuth2 {
    /// XOAUTH2.
    pub fn new() -> XOAuth2 {
        XOAuth2::default()
    }

    /// The `scope` named in the error challenge.
    pub fn scope(mut self, scope: impl Into<String>) -> XOAuth2 {
        self.scope = Some(scope.into());
        self
    }

    fn error_json(&self) -> String {
        let mut json = String::from(r#"{"status":"401","schemes":"Bearer""#);
        if let Some(scope) = &self.scope {
            json.push_str(&format!(
                ",\"scope\":{}",
                serde_json::Value::from(scope.as_str())
            ));
        }
        json.push('}');
        json
    }
}

/// Parses `user=… %x01 auth=Bearer … %x01 %x01`.
pub(crate) fn parse(message: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let body = message.strip_suffix(b"\x01\x01")?;
    let mut fields = body.split(|b| *b == 1);
    let user = fields.next()?.strip_prefix(b"user=")?;
    let token = bearer_token(fields.next()?.strip_prefix(b"auth=")?)?;
    if user.is_empty() || fields.next().is_some() {
        return None;
    }
    Some((user.to_vec(), token.to_vec()))
}

impl AuthMechanism for XOAuth2 {
    fn name(&self) -> &str {
        "XOAUTH2"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let message = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        let Some((user, token)) = parse(&message) else {
            return Ok(AuthResult::failure());
        };
        let data = AuthData::Token {
            user: Some(user),
            token: Secret::new(token),
        };
        let result = server.authenticate("XOAUTH2", data).await;
        if result.success {
            return Ok(result);
        }
        server.challenge_auth(self.error_json(), true).await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_format() {
        // Google's documented example: user=someuser@example.com^Aauth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg^A^A
        assert_eq!(
            parse(b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"),
            Some((
                b"someuser@example.com".to_vec(),
                b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".to_vec()
            ))
        );
        for bad in [
            &b"user=a\x01auth=Bearer t\x01"[..],
            b"auth=Bearer t\x01user=a\x01\x01",
            b"user=\x01auth=Bearer t\x01\x01",
            b"user=a\x01auth=t\x01\x01",
            b"user=a\x01auth=Bearer t\x01x=y\x01\x01",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            XOAuth2::new()
                .scope("https://mail.google.com/")
                .error_json(),
            r#"{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}"#
        );
    }
}
