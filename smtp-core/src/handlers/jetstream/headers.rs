//! The headers of a stream message published by [`JetStream`](super::JetStream).

/// The message id, also sent as `Nats-Msg-Id`: 32 hex digits, the first half of the SHA-256
/// of the sender, the recipients, their parameters and the body.
pub const ID: &str = "Smtp-Id";
/// The reverse-path of MAIL FROM, without angle brackets; `<>` for the null sender.
pub const MAIL_FROM: &str = "Smtp-Mail-From";
/// The MAIL parameters as the engine records them (upper-cased), space-separated; absent
/// when there were none.
pub const MAIL_PARAMS: &str = "Smtp-Mail-Params";
/// `FULL` or `HDRS`: MAIL's DSN `RET=` (RFC 3461), when given.
pub const DSN_RET: &str = "Smtp-Dsn-Ret";
/// MAIL's DSN `ENVID=`, xtext-decoded, when given.
pub const DSN_ENVID: &str = "Smtp-Dsn-Envid";
/// One value per recipient, in order: the address, then its DSN parameters when given
/// (`NOTIFY=SUCCESS,FAILURE` or `NOTIFY=NEVER`; `ORCPT=<type>;<address>`, xtext-decoded).
pub const RCPT_TO: &str = "Smtp-Rcpt-To";
/// The client's address (after the PROXY protocol, the proxied client's).
pub const CLIENT: &str = "Smtp-Client";
/// The name the client gave in HELO or EHLO.
pub const HELO: &str = "Smtp-Helo";
/// The TLS version and cipher suite, when the session was encrypted.
pub const TLS: &str = "Smtp-Tls";
/// The authenticated identity, when the client used AUTH.
pub const AUTH: &str = "Smtp-Auth";
/// When the message was received: milliseconds since the Unix epoch.
pub const RECEIVED_AT: &str = "Smtp-Received-At";
/// The receiving server's host name.
pub const SERVER: &str = "Smtp-Server";
/// The size of the message in octets.
pub const SIZE: &str = "Smtp-Size";
/// `<bucket>/<object>` when the body is in the object store (the payload is then empty).
pub const OBJECT: &str = "Smtp-Object";
