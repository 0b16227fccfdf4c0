//! What successful expansions of the handler macros do; the compile errors are trybuild's
//! (`tests/ui.rs`, `tests/ui/`).

use smtp_core::{
    AuthArgs, AuthResult, AuthServer, Envelope, Handler, HookError, MailParams, Peer, RcptParams,
    Recipient, Reply, Session, SmtpHandler,
};

/// A session outside a server, as a handler's unit tests build one.
fn test_session() -> Session {
    Session::builder(Peer::Local).build()
}

fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn names<H: Handler>() -> Vec<&'static str> {
    H::mechanisms()
        .iter()
        .map(|mechanism| mechanism.name)
        .collect()
}

// The handlers below have inherent methods of the same names as the hooks: calls go through
// `Handler` explicitly, since that is what the server calls.

#[derive(SmtpHandler)]
struct Defaults;

#[test]
fn derive_alone_gives_the_defaults() {
    let mut session = test_session();
    let mut envelope = Envelope::default();
    let quit = run(Handler::handle_quit(&Defaults, &mut session, &mut envelope));
    assert_eq!(quit.to_string(), "221 Bye");
    let helo = run(Handler::handle_helo(
        &Defaults,
        &mut session,
        &mut envelope,
        "client.example",
    ));
    assert_eq!(
        helo.to_string(),
        format!("250 {}", session.server_hostname())
    );
    let data = run(Handler::handle_data(&Defaults, &mut session, &mut envelope));
    assert_eq!(data.code(), 250);
    let body = run(Handler::handle_body(&Defaults, &mut session, &mut envelope));
    assert!(matches!(body, smtp_core::BodyMode::Buffer));
    let lmtp = run(Handler::handle_lmtp_data(
        &Defaults,
        &mut session,
        &mut envelope,
    ));
    assert!(lmtp.is_none(), "the default defers to handle_data");
    assert!(names::<Defaults>().is_empty());
}

#[derive(SmtpHandler)]
struct Custom {
    greeting: &'static str,
}

#[smtp_core::hooks]
impl Custom {
    async fn handle_quit(&self, _session: &mut Session, _envelope: &mut Envelope) -> Reply {
        Reply::new(221, self.greeting)
    }

    async fn handle_rcpt(
        &self,
        _: &mut Session,
        envelope: &mut Envelope,
        address: &str,
        params: &RcptParams,
    ) -> Reply {
        // Records what it was given, to show the derived impl passes the arguments through.
        let mut recipient = Recipient::new(address);
        recipient.dsn = params.dsn.clone();
        envelope.recipients.push(recipient);
        if address.ends_with("@example.com") {
            Reply::ok()
        } else {
            Reply::from("550 not relaying to that domain")
        }
    }

    async fn handle_noop(&self, _: &mut Session, _: &mut Envelope, arg: Option<&str>) -> Reply {
        Reply::new(250, format!("noop {}", arg.unwrap_or("-")))
    }

    async fn handle_exception(&self, _: &Session, error: &HookError) -> Reply {
        Reply::new(451, format!("{} failed", error.hook))
    }

    async fn auth_MECH__WITH__DASHES(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::success()
    }

    async fn auth_MECH_WITH_UNDERSCORE(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    #[smtp_core::auth_mechanism("X-TOKEN")]
    async fn token(
        &self,
        server: &mut AuthServer<'_>,
        _: AuthArgs,
    ) -> Result<AuthResult, smtp_core::AuthAbort> {
        server.challenge_auth(b"token please", true).await?;
        Ok(AuthResult::success())
    }

    #[smtp_core::auth_mechanism("RENAMED")]
    async fn auth_PLAIN(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    fn not_a_hook(&self) -> &'static str {
        self.greeting
    }
}

#[test]
fn hooks_replace_the_defaults() {
    let handler = Custom {
        greeting: "see you",
    };
    let mut session = test_session();
    let mut envelope = Envelope::default();
    assert_eq!(
        run(Handler::handle_quit(&handler, &mut session, &mut envelope)).to_string(),
        "221 see you"
    );
    let accepted = run(Handler::handle_rcpt(
        &handler,
        &mut session,
        &mut envelope,
        "a@example.com",
        &RcptParams::default(),
    ));
    assert_eq!(accepted.code(), 250);
    let refused = run(Handler::handle_rcpt(
        &handler,
        &mut session,
        &mut envelope,
        "a@example.org",
        &RcptParams::default(),
    ));
    assert_eq!(refused.to_string(), "550 not relaying to that domain");
    assert_eq!(
        envelope.rcpt_tos().collect::<Vec<_>>(),
        ["a@example.com", "a@example.org"]
    );
    assert_eq!(
        run(Handler::handle_noop(
            &handler,
            &mut session,
            &mut envelope,
            Some("x")
        ))
        .to_string(),
        "250 noop x"
    );
    let error = HookError::new("handle_data", "boom");
    assert_eq!(
        run(Handler::handle_exception(&handler, &session, &error)).to_string(),
        "451 handle_data failed"
    );
    assert_eq!(handler.not_a_hook(), "see you");
}

#[test]
fn hooks_not_written_keep_the_defaults() {
    let mut session = test_session();
    let mut envelope = Envelope::default();
    let handler = Custom { greeting: "" };
    assert_eq!(
        run(Handler::handle_data(&handler, &mut session, &mut envelope)).code(),
        250
    );
    let vrfy = run(Handler::handle_vrfy(
        &handler,
        &mut session,
        &mut envelope,
        "someone",
    ));
    assert_eq!(vrfy.code(), 252);
}

#[test]
fn mechanism_table_follows_the_naming_rules() {
    assert_eq!(
        names::<Custom>(),
        [
            "MECH-WITH-DASHES",
            "MECH_WITH_UNDERSCORE",
            "X-TOKEN",
            "RENAMED"
        ]
    );
}

mod generic {
    use super::*;

    #[derive(SmtpHandler)]
    pub struct Generic<T> {
        pub reply: T,
    }

    #[smtp_core::hooks]
    impl<T: Fn() -> Reply + Send + Sync + 'static> Generic<T> {
        async fn handle_data(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            (self.reply)()
        }

        async fn auth_GENERIC(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
            AuthResult::success()
        }
    }

    #[test]
    fn generic_handlers_use_their_hooks() {
        let handler = Generic {
            reply: || Reply::from("554 no thanks"),
        };
        let mut session = test_session();
        let reply = run(Handler::handle_data(
            &handler,
            &mut session,
            &mut Envelope::default(),
        ));
        assert_eq!(reply.to_string(), "554 no thanks");
        fn mechanisms<H: Handler>(_: &H) -> Vec<&'static str> {
            names::<H>()
        }
        assert_eq!(mechanisms(&handler), ["GENERIC"]);
    }
}

mod handle_auth {
    use super::*;

    #[derive(SmtpHandler)]
    struct Decides;

    #[smtp_core::hooks]
    impl Decides {
        async fn handle_auth(&self, _: &mut AuthServer<'_>, _: &smtp_core::AuthArgs) -> AuthResult {
            AuthResult::failure()
        }
    }

    #[derive(SmtpHandler)]
    struct MayPass;

    #[smtp_core::hooks]
    impl MayPass {
        async fn handle_auth(
            &self,
            _: &mut AuthServer<'_>,
            _: &smtp_core::AuthArgs,
        ) -> Option<AuthResult> {
            None
        }
    }

    fn assert_handler<H: Handler>() {}

    #[test]
    fn handle_auth_may_return_a_result_or_an_option() {
        assert_handler::<Decides>();
        assert_handler::<MayPass>();
    }
}

/// Every prelude name the generated code could use is shadowed here, and warnings are errors.
#[deny(warnings)]
mod hygiene {
    use ::smtp_core::{AuthResult, AuthServer, Envelope, Reply, SmtpHandler, auth_mechanism};

    macro_rules! unused {
        ($($item:item)*) => { $(#[allow(dead_code)] $item)* };
    }

    unused! {
        struct Option;
        struct String;
        struct Box;
        struct Vec;
        struct Send;
        struct Future;
        struct Pin;
        type Result = ();
        struct Session;
        struct Handler;
        struct Mechanism;
        struct Hooks;
        struct Probe;
        mod core {}
        mod std {}
        mod smtp_core {}
    }

    #[derive(SmtpHandler)]
    pub struct Shadowed;

    #[::smtp_core::hooks]
    impl Shadowed {
        async fn handle_data(&self, _: &mut ::smtp_core::Session, _: &mut Envelope) -> Reply {
            Reply::new(250, "shadowed")
        }

        async fn handle_noop(
            &self,
            _: &mut ::smtp_core::Session,
            _: &mut Envelope,
            _: ::core::option::Option<&str>,
        ) -> Reply {
            Reply::ok()
        }

        async fn auth_MECH__WITH__DASHES(
            &self,
            _: &mut AuthServer<'_>,
            _: ::smtp_core::AuthArgs,
        ) -> AuthResult {
            AuthResult::success()
        }

        #[auth_mechanism("X-TOKEN")]
        async fn token(&self, _: &mut AuthServer<'_>, _: ::smtp_core::AuthArgs) -> AuthResult {
            AuthResult::success()
        }
    }

    #[derive(SmtpHandler)]
    pub struct Plain;

    #[test]
    fn generated_code_ignores_local_names() {
        use ::smtp_core::Handler;
        let mut session = ::smtp_core::Session::builder(::smtp_core::Peer::Local).build();
        let mut envelope = Envelope::default();
        let reply = super::run(Handler::handle_data(&Shadowed, &mut session, &mut envelope));
        ::std::assert_eq!(reply.to_string(), "250 shadowed");
        let names = super::names::<Shadowed>();
        ::std::assert_eq!(names, ["MECH-WITH-DASHES", "X-TOKEN"]);
        let reply = super::run(Handler::handle_quit(&Plain, &mut session, &mut envelope));
        ::std::assert_eq!(reply.to_string(), "221 Bye");
    }
}

mod renamed_crate {
    use super::*;

    mod reexport {
        pub use ::smtp_core as smtp;
    }

    #[derive(SmtpHandler)]
    #[smtp(crate = "reexport::smtp")]
    struct Renamed;

    #[smtp_core::hooks(crate = "reexport::smtp")]
    impl Renamed {
        async fn handle_quit(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            Reply::from("221 renamed")
        }

        async fn auth_RENAMED(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
            AuthResult::success()
        }
    }

    #[test]
    fn crate_path_can_be_given() {
        let mut session = test_session();
        let reply = run(Handler::handle_quit(
            &Renamed,
            &mut session,
            &mut Envelope::default(),
        ));
        assert_eq!(reply.to_string(), "221 renamed");
        assert_eq!(names::<Renamed>(), ["RENAMED"]);
    }
}

mod configured_out {
    use super::*;

    #[derive(SmtpHandler)]
    struct Configured;

    #[smtp_core::hooks]
    impl Configured {
        #[cfg(not(test))]
        async fn handle_quit(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            Reply::from("221 configured out")
        }

        #[cfg(not(test))]
        async fn auth_GONE(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
            AuthResult::success()
        }

        #[cfg(test)]
        async fn auth_KEPT(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
            AuthResult::success()
        }
    }

    #[test]
    fn cfg_on_a_method_applies_to_its_hook_or_mechanism() {
        let mut session = test_session();
        let reply = run(Handler::handle_quit(
            &Configured,
            &mut session,
            &mut Envelope::default(),
        ));
        assert_eq!(reply.to_string(), "221 Bye");
        assert_eq!(names::<Configured>(), ["KEPT"]);
    }
}

/// Every hook of `Handler`, with its exact signature: a hook the macros do not know, or know
/// with other parameters, fails to compile here.
mod every_hook {
    use super::*;

    #[derive(SmtpHandler)]
    struct Every;

    fn reply(hook: &str) -> Reply {
        Reply::new(250, hook.to_owned())
    }

    #[smtp_core::hooks]
    impl Every {
        async fn handle_helo(&self, _: &mut Session, _: &mut Envelope, _: &str) -> Reply {
            reply("helo")
        }
        async fn handle_ehlo(&self, _: &mut Session, _: &mut Envelope, _: &str, _: Reply) -> Reply {
            reply("ehlo")
        }
        async fn handle_mail(
            &self,
            _: &mut Session,
            _: &mut Envelope,
            _: &str,
            _: &smtp_core::MailParams,
        ) -> Reply {
            reply("mail")
        }
        async fn handle_rcpt(
            &self,
            _: &mut Session,
            _: &mut Envelope,
            _: &str,
            _: &smtp_core::RcptParams,
        ) -> Reply {
            reply("rcpt")
        }
        async fn handle_data(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            reply("data")
        }
        async fn handle_rset(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            reply("rset")
        }
        async fn handle_noop(&self, _: &mut Session, _: &mut Envelope, _: Option<&str>) -> Reply {
            reply("noop")
        }
        async fn handle_quit(&self, _: &mut Session, _: &mut Envelope) -> Reply {
            reply("quit")
        }
        async fn handle_vrfy(&self, _: &mut Session, _: &mut Envelope, _: &str) -> Reply {
            reply("vrfy")
        }
        async fn handle_exception(&self, _: &Session, _: &HookError) -> Reply {
            reply("exception")
        }
        async fn handle_proxy(&self, _: &mut Session, _: &smtp_core::ProxyData) -> bool {
            false
        }
        async fn handle_body(&self, _: &mut Session, _: &mut Envelope) -> smtp_core::BodyMode {
            smtp_core::BodyMode::Discard
        }
        async fn handle_lmtp_data(&self, _: &mut Session, _: &mut Envelope) -> Option<Vec<Reply>> {
            Some(vec![reply("lmtp"), Reply::from("550 5.1.1 no")])
        }
        async fn handle_auth(&self, _: &mut AuthServer<'_>, _: &smtp_core::AuthArgs) -> AuthResult {
            AuthResult::failure()
        }
    }

    #[test]
    fn every_hook_is_forwarded() {
        let (s, e) = (&mut test_session(), &mut Envelope::default());
        let error = HookError::new("handle_data", "");
        let replies = [
            run(Handler::handle_helo(&Every, s, e, "client")),
            run(Handler::handle_ehlo(&Every, s, e, "client", Reply::ok())),
            run(Handler::handle_mail(
                &Every,
                s,
                e,
                "a@example.com",
                &MailParams::default(),
            )),
            run(Handler::handle_rcpt(
                &Every,
                s,
                e,
                "b@example.com",
                &RcptParams::default(),
            )),
            run(Handler::handle_data(&Every, s, e)),
            run(Handler::handle_rset(&Every, s, e)),
            run(Handler::handle_noop(&Every, s, e, None)),
            run(Handler::handle_quit(&Every, s, e)),
            run(Handler::handle_vrfy(&Every, s, e, "someone")),
            run(Handler::handle_exception(&Every, s, &error)),
        ];
        let texts: Vec<String> = replies.iter().map(Reply::to_string).collect();
        let expected = [
            "helo",
            "ehlo",
            "mail",
            "rcpt",
            "data",
            "rset",
            "noop",
            "quit",
            "vrfy",
            "exception",
        ];
        assert_eq!(texts, expected.map(|hook| format!("250 {hook}")));
        let proxy = smtp_core::ProxyData::unknown(1, smtp_core::ProxyCommand::Proxy);
        assert!(
            !run(Handler::handle_proxy(&Every, s, &proxy)),
            "the default is true"
        );
        assert!(matches!(
            run(Handler::handle_body(&Every, s, e)),
            smtp_core::BodyMode::Discard
        ));
        let lmtp = run(Handler::handle_lmtp_data(&Every, s, e))
            .map(|replies| replies.iter().map(Reply::to_string).collect::<Vec<_>>());
        assert_eq!(
            lmtp,
            Some(vec!["250 lmtp".to_owned(), "550 5.1.1 no".to_owned()])
        );
    }
}
