//! XOAUTH2 and OAUTHBEARER (RFC 7628): tokens reach the authenticator as `AuthData::Token`;
//! refusals go through the JSON error challenge. lettre (`Mechanism::Xoauth2`) is the
//! independent XOAUTH2 client; OAUTHBEARER is spoken with RFC 7628's own example messages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smtp_core::auth::mechanisms::{OAuthBearer, XOAuth2};
use smtp_core::{AuthData, AuthResult, Envelope, Server, ServerHandle, Session};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";

type Seen = Arc<Mutex<Vec<String>>>;

/// Accepts [`TOKEN`] for anybody; records what it was asked, with the token's length only.
async fn token_server() -> (ServerHandle, Seen, Messages) {
    let seen = Seen::default();
    let log = seen.clone();
    let authenticator = move |_: &Session, _: &Envelope, mechanism: &str, data: &AuthData| {
        log.lock().unwrap().push(format!("{mechanism} {data:?}"));
        match data {
            AuthData::Token { token, .. } if token.ct_eq(TOKEN.as_bytes()) => {
                AuthResult::success_with(data.clone())
            }
            _ => AuthResult::failure(),
        }
    };
    let config = {
        let mut config = auth_config();
        config.authenticator = Some(authenticator.into());
        config.max_auth_failures = None;
        config
    };
    let (handler, messages) = collector();
    let server = Server::new(handler, config)
        .mechanism(XOAuth2::new().scope("https://mail.example/"))
        .unwrap()
        .mechanism(
            OAuthBearer::new()
                .scope("example_scope")
                .openid_configuration("https://example.com/.well-known/openid-configuration"),
        )
        .unwrap()
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .start();
    (server, seen, messages)
}

async fn lettre_send(addr: SocketAddr, token: &str) -> Result<(), lettre::transport::smtp::Error> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .hello_name(ClientId::Domain("client.example".into()))
        .credentials(Credentials::new("user@example.com".into(), token.into()))
        .authentication(vec![Mechanism::Xoauth2])
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let email = Message::builder()
        .from("user@example.com".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject("XOAUTH2")
        .body("Hello with a token".to_owned())
        .unwrap();
    transport.send(email).await.map(|_| ())
}

#[tokio::test]
async fn lettre_xoauth2() {
    let (server, seen, messages) = token_server().await;
    lettre_send(server.local_addr(), TOKEN)
        .await
        .expect("lettre XOAUTH2");
    wait_for_messages(&messages, 1).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [r#"XOAUTH2 Token(user=Some("user@example.com"), token=...)"#]
    );
    // lettre does not answer the error challenge; the refusal still reaches it as an error.
    assert!(lettre_send(server.local_addr(), "expired").await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn xoauth2_refusal_sends_the_error_challenge() {
    let (server, _, _) = token_server().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let ir = b64("user=user@example.com\x01auth=Bearer expired\x01\x01");
    let reply = c.cmd(&format!("AUTH XOAUTH2 {ir}"), 334).await;
    assert_eq!(
        BASE64.decode(&reply[0][4..]).unwrap(),
        br#"{"status":"401","schemes":"Bearer","scope":"https://mail.example/"}"#
    );
    c.expect("", INVALID).await;
    // Without an initial response, after an empty challenge.
    assert_eq!(c.cmd("AUTH XOAUTH2", 334).await, ["334 "]);
    c.expect(
        &b64(format!("user=someone\x01auth=Bearer {TOKEN}\x01\x01")),
        SUCCESS,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn oauthbearer_rfc7628_examples() {
    let (server, seen, _) = token_server().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    // §4.3: a refused token gets the JSON challenge; the client answers %x01.
    let refused = b64(
        "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer expired\x01\x01",
    );
    c.expect(
        &format!("AUTH OAUTHBEARER {refused}"),
        "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=",
    )
    .await;
    c.expect("AQ==", INVALID).await;
    // §4.1: the successful exchange, byte for byte.
    c.expect(
        "AUTH OAUTHBEARER bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB",
        SUCCESS,
    )
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            r#"OAUTHBEARER Token(user=Some("user@example.com"), token=...)"#,
            r#"OAUTHBEARER Token(user=Some("user@example.com"), token=...)"#
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_token_messages_fail_without_asking() {
    let (server, seen, _) = token_server().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for (mechanism, message) in [
        ("OAUTHBEARER", "n,,auth=Bearer x"),
        ("OAUTHBEARER", "p=tls-unique,,\x01auth=Bearer x\x01\x01"),
        ("OAUTHBEARER", "n,,\x01auth=Basic x\x01\x01"),
        ("OAUTHBEARER", "n,,\x01host=x\x01\x01"),
        ("XOAUTH2", "user=a\x01auth=Bearer x\x01"),
        ("XOAUTH2", "auth=Bearer x\x01\x01"),
    ] {
        c.expect(&format!("AUTH {mechanism} {}", b64(message)), INVALID)
            .await;
    }
    // `=` is an empty initial response (RFC 4954 §4).
    c.expect("AUTH XOAUTH2 =", INVALID).await;
    c.expect("AUTH XOAUTH2 ***", "501 5.5.2 Can't decode base64")
        .await;
    c.cmd(
        &format!("AUTH OAUTHBEARER {}", b64("n,,\x01auth=Bearer no\x01\x01")),
        334,
    )
    .await;
    c.expect("*", "501 5.7.0 Auth aborted").await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    server.shutdown().await;
}
