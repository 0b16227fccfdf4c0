//! OAUTHBEARER (RFC 7628): a bearer token for the authenticator, and the JSON error
//! challenge when it refuses.

use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer, Secret};

/// OAUTHBEARER: hands [`AuthData::Token`] to the authenticator. When it refuses, the client
/// gets the `334` JSON error challenge (`{"status":"invalid_token",…}`), answers `\x01`, and
/// then gets the authenticator's reply (by default `535 5.7.8`).
#[derive(Clone, Debug, Default)]
pub struct OAuthBearer {
    scope: Option<String>,
    openid_configuration: Option<String>,
}

impl OAuthBearer {
    /// OAUTHBEARER with a bare error challenge.
    pub fn new() -> OAuthBearer {
        OAuthBearer::default()
    }

    /// The `scope` the error challenge asks the client to get a token for.
    pub fn scope(mut self, scope: impl Into<String>) -> OAuthBearer {
        self.scope = Some(scope.into());
        self
    }

    /// The `openid-configuration` URL the error challenge points the client to.
    pub fn openid_configuration(mut self, url: impl Into<String>) -> OAuthBearer {
        self.openid_configuration = Some(url.into());
        self
    }

    /// The error challenge (RFC 7628 §3.2.2), fields in the RFC's order.
    pub(crate) fn error_json(&self) -> String {
        let mut json = String::from(r#"{"status":"invalid_token""#);
        for (key, value) in [
            ("scope", &self.scope),
            ("openid-configuration", &self.openid_configuration),
        ] {
            if let Some(value) = value {
                json.push_str(&format!(
                    ",\"{key}\":{}",
                    serde_json::Value::from(value.as_str())
                ));
            }
        }
        json.push('}');
        json
    }
}

/// What the client sent: the authorization identity and the token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BearerRequest {
    pub(crate) user: Option<Vec<u8>>,
    pub(crate) token: Vec<u8>,
}

/// Parses `gs2-header %x01 *(key=value %x01) %x01` (RFC 7628 §3.1).
pub(crate) fn parse(message: &[u8]) -> Option<BearerRequest> {
    let mut header = message.splitn(3, |b| *b == b',');
    let (flag, authzid, rest) = (header.next()?, header.next()?, header.next()?);
    // Channel binding is not defined for OAUTHBEARER.
    if flag != b"n" && flag != b"y" {
        return None;
    }
    let user = match authzid {
        b"" => None,
        a => Some(a.strip_prefix(b"a=")?.to_vec()),
    };
    let pairs = rest.strip_prefix(b"\x01")?.strip_suffix(b"\x01\x01")?;
    let mut token = None;
    for pair in pairs.split(|b| *b == 1) {
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (key, value) = (&pair[..eq], &pair[eq + 1..]);
        if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        if key == b"auth" {
            token = bearer_token(value);
        }
    }
    Some(BearerRequest {
        user,
        token: token?.to_vec(),
    })
}

/// The token of an `Authorization` value `Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

impl AuthMechanism for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let message = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        let Some(request) = parse(&message) else {
            return Ok(AuthResult::failure());
        };
        let data = AuthData::Token {
            user: request.user,
            token: Secret::new(request.token),
        };
        let result = server.authenticate("OAUTHBEARER", data).await;
        if result.success {
            return Ok(result);
        }
        // The client must answer the error challenge with a lone %x01 (RFC 7628 §3.2.3);
        // the exchange fails whatever it sends.
        server.challenge_auth(self.error_json(), true).await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    #[test]
    fn rfc7628_examples() {
        // §4.1: the client's initial response.
        let message = BASE64
            .decode("bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB")
            .unwrap();
        assert_eq!(
            parse(&message),
            Some(BearerRequest {
                user: Some(b"user@example.com".to_vec()),
                token: b"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".to_vec(),
            })
        );
        // §4.3: the server's error challenge.
        let challenge = OAuthBearer::new()
            .scope("example_scope")
            .openid_configuration("https://example.com/.well-known/openid-configuration")
            .error_json();
        assert_eq!(
            BASE64.encode(challenge),
            "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
        );
        assert_eq!(
            OAuthBearer::new().error_json(),
            r#"{"status":"invalid_token"}"#
        );
    }

    #[test]
    fn tokens_stay_hidden() {
        let data = AuthData::Token {
            user: Some(b"alice".to_vec()),
            token: Secret::new("ya29.secret"),
        };
        assert_eq!(
            format!("{data:?}"),
            r#"Token(user=Some("alice"), token=...)"#
        );
    }

    #[test]
    fn malformed_messages() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,\x01auth=Bearer x\x01",
            b"p=tls-unique,,\x01auth=Bearer x\x01\x01",
            b"n,user,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01host=x\x01\x01",
            b"n,,\x01noequals\x01\x01",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // Keys are case-sensitive (only `auth` carries the token); the scheme is not.
        assert_eq!(
            parse(b"y,,\x01AUTH=x\x01auth=bearer t\x01\x01"),
            Some(BearerRequest {
                user: None,
                token: b"t".to_vec()
            })
        );
    }
}
