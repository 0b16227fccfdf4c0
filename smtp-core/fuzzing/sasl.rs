//! The SASL mechanisms, each driven through one AUTH exchange.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{LOGIN, PASSWORD, check_replies, contains};
use crate::auth::exchange::{AuthIo, ResponseLine};
use crate::auth::mechanisms::{Anonymous, CramMd5, External, OAuthBearer, Scram, XOAuth2};
use crate::auth::registry::DynMechanism;
use crate::auth::{AuthArgs, AuthServer, Login, Plain};
use crate::proto::Reply;
use crate::{Envelope, Peer, Session, StaticUsers};

/// A scripted client for one AUTH exchange.
struct Script {
    lines: VecDeque<Vec<u8>>,
    replies: Vec<u8>,
    line_limit: usize,
}

impl AuthIo for Script {
    fn send<'a>(&'a mut self, reply: &'a Reply) -> BoxFuture<'a, std::io::Result<()>> {
        reply.write_to(&mut self.replies);
        Box::pin(async { Ok(()) })
    }

    fn read_line(&mut self) -> BoxFuture<'_, ResponseLine> {
        let line = match self.lines.pop_front() {
            None => ResponseLine::Closed,
            Some(line) if line.len() > self.line_limit => ResponseLine::TooLong,
            Some(line) => ResponseLine::Line(line),
        };
        Box::pin(async move { line })
    }
}

/// The SASL decoders: `input[0]` picks the mechanism and whether an initial response comes
/// with AUTH; the rest, split at LF, is that initial response and the client's answers.
/// The authenticator knows [`LOGIN`]/[`PASSWORD`].
pub fn sasl(input: &[u8]) {
    let Some((&select, rest)) = input.split_first() else {
        return;
    };
    let users = StaticUsers::new().user(LOGIN, PASSWORD);
    let mechanisms: Vec<(&str, Box<dyn DynMechanism>)> = vec![
        ("PLAIN", Box::new(Plain)),
        ("LOGIN", Box::new(Login)),
        ("SCRAM-SHA-256", Box::new(Scram::sha256(users.clone()))),
        ("SCRAM-SHA-1", Box::new(Scram::sha1(users.clone()))),
        ("CRAM-MD5", Box::new(CramMd5::new(users.clone()))),
        ("XOAUTH2", Box::new(XOAuth2::new())),
        ("OAUTHBEARER", Box::new(OAuthBearer::new())),
        ("EXTERNAL", Box::new(External)),
        ("ANONYMOUS", Box::new(Anonymous)),
    ];
    let (name, mechanism) = &mechanisms[usize::from(select >> 1) % mechanisms.len()];
    let name = *name;
    let mut lines: VecDeque<Vec<u8>> = rest.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let mut args = vec![name.to_owned()];
    if select & 1 == 1 {
        // As the connection splits the AUTH line: one word, `=` for empty, more is a 501.
        let initial = lines.pop_front().unwrap_or_default();
        let initial = String::from_utf8_lossy(&initial).into_owned();
        let mut words = initial.split_whitespace();
        match (words.next(), words.next()) {
            (Some("="), None) => args.push(String::new()),
            (Some(word), None) => args.push(word.to_owned()),
            (None, _) => {}
            (Some(_), Some(_)) => return,
        }
    }
    let sent: Vec<Vec<u8>> = args[1..]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .chain(lines.iter().cloned())
        .collect();

    let mut io = Script {
        lines,
        replies: Vec::new(),
        line_limit: 256,
    };
    let mut session = Session::new(Peer::Local, Arc::from("fuzz.example"));
    let envelope = Envelope::default();
    let mut server = AuthServer::new(&mut io, &mut session, &envelope, Some(&users), None);
    let auth_args = AuthArgs::new(name, args.get(1).map(String::as_str));
    let outcome = mechanism
        .run_boxed(&mut server, auth_args)
        .now_or_never()
        .expect("a scripted exchange never waits");
    let abort = server.finish();
    check_replies(&io.replies);
    let challenges = io
        .replies
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(challenges <= 3, "{name} asked {challenges} times");
    match outcome {
        Err(a) => assert_eq!(abort, Some(a)),
        // Only PLAIN and LOGIN carry the password itself; the others prove it or use tokens.
        Ok(result) if result.success && matches!(name, "PLAIN" | "LOGIN") => {
            // Only the real password opens the door.
            let decoded = sent
                .iter()
                .filter_map(|l| BASE64.decode(l.trim_ascii()).ok());
            assert!(
                decoded
                    .into_iter()
                    .any(|d: Vec<u8>| contains(&d, PASSWORD.as_bytes())),
                "{name} accepted {sent:?}"
            );
        }
        Ok(_) => {}
    }
}
