//! [`DovecotMechanism`]: one SASL mechanism relayed step by step to Dovecot.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::client::{Answer, Client};
use super::protocol::ClientInfo;
use crate::auth::data::{AuthAbort, AuthData, AuthResult};
use crate::auth::exchange::{AuthArgs, AuthServer};
use crate::auth::registry::AuthMechanism;
use crate::proto::replies;
use crate::session::Session;

/// A mechanism Dovecot offers, relayed to it; made by
/// [`DovecotAuth::mechanisms`](super::DovecotAuth::mechanisms) or
/// [`select`](super::DovecotAuth::select), registered with
/// [`Server::mechanism`](crate::Server::mechanism).
///
/// On success the session's [`auth_data`](Session::auth_data) is
/// [`AuthData::Verified`] with the user Dovecot names (its `user=`, which may differ from
/// what the client typed).
pub struct DovecotMechanism {
    client: Arc<Client>,
    name: String,
}

impl std::fmt::Debug for DovecotMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DovecotMechanism")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DovecotMechanism {
    pub(super) fn new(client: Arc<Client>, name: String) -> DovecotMechanism {
        DovecotMechanism { client, name }
    }
}

impl AuthMechanism for DovecotMechanism {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let info = client_info(server.session());
        // PLAIN and LOGIN name the user in the client's first message.
        let mut first = true;
        let initial = match &args.initial_response {
            Some(response) => {
                let decoded = server.decode_initial_response(response)?;
                self.claim(server, first, &decoded).await?;
                first = false;
                Some(BASE64.encode(decoded))
            }
            None => None,
        };
        let Ok(mut request) = self
            .client
            .start(&self.name, &info, initial.as_deref())
            .await
        else {
            return Ok(temporary_failure());
        };
        loop {
            let challenge = match request.answer().await {
                Ok(Answer::Cont(challenge)) => challenge,
                Ok(Answer::Ok(params)) => {
                    let Some(user) = params.user() else {
                        tracing::warn!("Dovecot said OK without a user");
                        return Ok(temporary_failure());
                    };
                    server.claim_user(user.as_bytes()).await?;
                    let login = user.as_bytes().to_vec();
                    return Ok(AuthResult::success_with(AuthData::Verified { login }));
                }
                Ok(Answer::Fail(params)) if params.is_temporary() => {
                    return Ok(temporary_failure());
                }
                Ok(Answer::Fail(params)) => {
                    if let Some(user) = params.user()
                        && server.claimed_user().is_none()
                    {
                        server.claim_user(user.as_bytes()).await?;
                    }
                    return Ok(AuthResult::failure());
                }
                Err(_) => return Ok(temporary_failure()),
            };
            let Ok(challenge) = BASE64.decode(challenge.trim()) else {
                tracing::warn!("Dovecot sent a challenge that is not base64");
                return Ok(temporary_failure());
            };
            let answer = server.challenge_auth(challenge, true).await?;
            self.claim(server, first, &answer).await?;
            first = false;
            if request.cont(&BASE64.encode(answer)).await.is_err() {
                return Ok(temporary_failure());
            }
        }
    }
}

impl DovecotMechanism {
    /// Claims the user name of PLAIN and LOGIN as soon as the client sends it, so that the
    /// limiter refuses a blocked user before Dovecot checks the password.
    async fn claim(
        &self,
        server: &mut AuthServer<'_>,
        first: bool,
        data: &[u8],
    ) -> Result<(), AuthAbort> {
        let user = match first {
            true if self.name.eq_ignore_ascii_case("PLAIN") => data.split(|b| *b == 0).nth(1),
            true if self.name.eq_ignore_ascii_case("LOGIN") => Some(data),
            _ => None,
        };
        match user.filter(|u| !u.is_empty()) {
            Some(user) => server.claim_user(user).await,
            None => Ok(()),
        }
    }
}

/// `454 4.7.0`, not counted as a failure of the client.
fn temporary_failure() -> AuthResult {
    AuthResult::handled_failure().with_message(replies::AUTH_TEMPORARY_FAILURE)
}

/// What Dovecot is told about the client of `session`.
fn client_info(session: &Session) -> ClientInfo {
    let remote = session.peer().addr().map(|a| (a.ip(), a.port()));
    let xclient = session.xclient().and_then(|x| {
        let ip = x.destaddr.as_ref()?.known()?;
        let port = x.destport.as_ref()?.known()?;
        Some((*ip, *port))
    });
    let proxied = session
        .proxy_data()
        .and_then(|p| p.destination)
        .map(|a| (a.ip(), a.port()));
    ClientInfo {
        remote,
        local: xclient
            .or(proxied)
            .or(session.local_addr().map(|a| (a.ip(), a.port()))),
        secured: session.is_tls(),
        valid_client_cert: session
            .tls()
            .is_some_and(|tls| !tls.peer_certificates.is_empty()),
    }
}
