//! A handler with AUTH mechanisms of its own, written with the macros.
//!
//! `X-TOKEN` takes a one-time token as initial response or after a challenge;
//! `X-CHALLENGE` asks a question and checks the answer. LOGIN and PLAIN stay available.
//!
//! ```sh
//! cargo run --example custom_mechanism
//! # then, in another shell (the server allows AUTH without TLS on loopback for the demo):
//! swaks --server 127.0.0.1:8026 --auth PLAIN --auth-user demo --auth-password demo --to x@example.com
//! ```

use std::collections::HashSet;
use std::sync::Mutex;

use smtp_core::{
    AuthAbort, AuthArgs, AuthData, AuthResult, AuthServer, Config, Envelope, MailParams, Reply,
    Server, Session, SmtpHandler, StaticUsers, auth_mechanism,
};

/// Accepts tokens from a set of one-time tokens; each works once.
#[derive(SmtpHandler)]
pub struct TokenDesk {
    /// Tokens not used yet.
    pub tokens: Mutex<HashSet<String>>,
}

#[smtp_core::hooks]
impl TokenDesk {
    /// Refuses mail from clients that did not authenticate, and says which token was used.
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &MailParams,
    ) -> Reply {
        if !session.authenticated() {
            return Reply::from("530 5.7.0 Authentication required");
        }
        match session.auth_data().and_then(|d| d.downcast_ref::<String>()) {
            Some(token) => Reply::new(250, format!("OK, token {token}")),
            None => Reply::ok(),
        }
    }

    #[auth_mechanism("X-TOKEN")]
    async fn token(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let token = server
            .initial_or_challenge(args.initial_response, b"token?")
            .await?;
        let token = String::from_utf8_lossy(&token).into_owned();
        let fresh = self
            .tokens
            .lock()
            .map(|mut t| t.remove(&token))
            .unwrap_or(false);
        Ok(if fresh {
            AuthResult::success_with(AuthData::custom_for("token-holder", token))
        } else {
            AuthResult::failure()
        })
    }

    /// `X-CHALLENGE`: the mechanism name comes from the method name (`__` is a dash).
    async fn auth_X__CHALLENGE(
        &self,
        server: &mut AuthServer<'_>,
        _args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let answer = server.challenge_auth(b"What is 6 x 7?", true).await?;
        Ok(if answer == b"42" {
            AuthResult::success()
        } else {
            AuthResult::failure()
        })
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let desk = TokenDesk {
        tokens: Mutex::new(["let-me-in".to_owned()].into_iter().collect()),
    };
    let mut config = Config::default();
    config.auth_require_tls = false; // demo on loopback only: never do this on a network
    config.authenticator = Some(StaticUsers::new().user("demo", "demo").into());
    let server = Server::new(desk, config)
        .listen("127.0.0.1:8026")
        .await?
        .start();
    eprintln!(
        "listening on {}; mechanisms X-TOKEN, X-CHALLENGE, LOGIN, PLAIN",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
