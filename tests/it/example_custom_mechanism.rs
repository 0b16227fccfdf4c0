//! Runs the custom-mechanism example's handler end to end: the mechanisms written with
//! `#[auth_mechanism]` and `auth_X__CHALLENGE` are advertised and work next to PLAIN.

#[path = "../../examples/custom_mechanism.rs"]
#[allow(dead_code)]
mod example;

use std::sync::Mutex;

use crate::support::*;
use smtp_core::StaticUsers;

fn desk() -> example::TokenDesk {
    example::TokenDesk {
        tokens: Mutex::new(["let-me-in".to_owned()].into_iter().collect()),
    }
}

fn cfg() -> smtp_core::Config {
    {
        let mut config = config();
        config.auth_require_tls = false;
        config.authenticator = Some(StaticUsers::new().user("demo", "demo").into());
        config
    }
}

#[tokio::test]
async fn token_mechanism_from_the_macros() {
    let server = start(desk(), cfg()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client", 250).await;
    assert!(
        ehlo.contains(&"250-AUTH LOGIN PLAIN X-CHALLENGE X-TOKEN".to_owned()),
        "{ehlo:?}"
    );
    c.expect(
        "MAIL FROM:<a@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    // Initial response, then the token is spent: a second connection cannot reuse it.
    c.expect(
        &format!("AUTH X-TOKEN {}", b64("let-me-in")),
        "235 2.7.0 Authentication successful",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK, token let-me-in")
        .await;
    let mut again = Client::ehloed(server.local_addr()).await;
    again.expect("AUTH x-token", "334 dG9rZW4/").await;
    again
        .expect(
            &b64("let-me-in"),
            "535 5.7.8 Authentication credentials invalid",
        )
        .await;
    again.expect("AUTH X-TOKEN", "334 dG9rZW4/").await;
    again.expect("*", "501 5.7.0 Auth aborted").await;
    server.shutdown().await;
}

#[tokio::test]
async fn challenge_mechanism_from_the_method_name() {
    let server = start(desk(), cfg()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "AUTH X-CHALLENGE",
        &format!("334 {}", b64("What is 6 x 7?")),
    )
    .await;
    c.expect(&b64("41"), "535 5.7.8 Authentication credentials invalid")
        .await;
    c.expect(
        "AUTH X-CHALLENGE",
        &format!("334 {}", b64("What is 6 x 7?")),
    )
    .await;
    c.expect(&b64("42"), "235 2.7.0 Authentication successful")
        .await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    // PLAIN is still there next to the handler's mechanisms.
    let mut p = Client::ehloed(server.local_addr()).await;
    p.expect(
        &format!("AUTH PLAIN {}", plain("", "demo", "demo")),
        "235 2.7.0 Authentication successful",
    )
    .await;
    server.shutdown().await;
}
