//! Authentication handed to Dovecot's auth service, over the `auth-client` socket that
//! Postfix's `smtpd_sasl_type = dovecot` uses.
//!
//! [`DovecotAuth::connect`] opens one connection, reads the mechanisms Dovecot offers, and
//! keeps the connection for every AUTH of the server (requests are multiplexed by id; a lost
//! connection is made again on the next AUTH). Each [`DovecotMechanism`] relays one mechanism:
//! the client's initial response and answers go to Dovecot as `AUTH` and `CONT`, Dovecot's
//! challenges come back as `334`, and its `OK` or `FAIL` decides. smtpd never sees the
//! password store, so Dovecot's schemes, back ends and lockouts apply.
//!
//! ```no_run
//! # async fn f(handler: smtp_core::handlers::Sink) -> Result<(), Box<dyn std::error::Error>> {
//! use smtp_core::auth::dovecot::{DovecotAuth, DovecotOptions};
//! let dovecot = DovecotAuth::connect(
//!     "unix:/run/dovecot/auth-client".parse()?,
//!     DovecotOptions::default(),
//! )
//! .await?;
//! let mut server = smtp_core::Server::new(handler, smtp_core::Config::default());
//! for mechanism in dovecot.mechanisms() {
//!     server = server.mechanism(mechanism)?;
//! }
//! # Ok(()) }
//! ```
//!
//! Dovecot learns the client's address and port (`rip`, `rport`), the local ones when the
//! session knows them (`lip`, `lport`, from a PROXY header or XCLIENT), `secured` under TLS and
//! `valid-client-cert` when TLS verified a client certificate. `FAIL` counts as a failed AUTH
//! (`535`, toward `max_auth_failures` and the limiter); a temporary `FAIL`, an unreachable
//! Dovecot or one that does not answer within `response_timeout` gives
//! `454 4.7.0 Temporary authentication failure`, not counted. Server-wide rules such as
//! `auth_require_tls` apply to these mechanisms as to the built-in ones.

mod client;
mod mechanism;
mod protocol;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use mechanism::DovecotMechanism;
pub use protocol::MechInfo;

use super::registry::is_valid_mechanism_name;

/// Where Dovecot's auth-client listener is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DovecotAddress {
    /// A Unix-domain socket (`unix:/run/dovecot/auth-client`, or just the absolute path).
    Unix(PathBuf),
    /// A TCP `host:port` (`inet:` prefix optional, as in Postfix's `smtpd_sasl_path`).
    Tcp(String),
}

impl FromStr for DovecotAddress {
    type Err = DovecotError;

    fn from_str(text: &str) -> Result<DovecotAddress, DovecotError> {
        let bad = || DovecotError::Address(text.to_owned());
        if let Some(path) = text.strip_prefix("unix:") {
            return (!path.is_empty())
                .then(|| DovecotAddress::Unix(path.into()))
                .ok_or_else(bad);
        }
        if text.starts_with('/') {
            return Ok(DovecotAddress::Unix(text.into()));
        }
        let host_port = text.strip_prefix("inet:").unwrap_or(text);
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(DovecotAddress::Tcp(host_port.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for DovecotAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DovecotAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            DovecotAddress::Tcp(host_port) => f.write_str(host_port),
        }
    }
}

/// How the client talks to Dovecot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DovecotOptions {
    /// The `service=` of each request, which Dovecot's passdb rules can match. Default is
    /// `smtp`.
    pub service: String,
    /// How long connecting and the handshake may take. Default is 5 seconds.
    pub connect_timeout: Duration,
    /// How long Dovecot may take to answer one step; longer gives `454`. Dovecot itself
    /// delays failures (`auth_failure_delay`, 2 s by default). Default is 30 seconds.
    pub response_timeout: Duration,
    /// After a failed connection attempt, AUTH fails at once with `454` for this long
    /// before the next attempt. Default is 1 second.
    pub reconnect_delay: Duration,
    /// Sends `no-penalty`, which exempts the requests from Dovecot's per-client failure
    /// penalty. Only for tests and trusted clients. Default is `false`.
    pub no_penalty: bool,
}

impl Default for DovecotOptions {
    fn default() -> DovecotOptions {
        DovecotOptions {
            service: "smtp".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(1),
            no_penalty: false,
        }
    }
}

/// Why Dovecot cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum DovecotError {
    /// The address does not parse.
    Address(String),
    /// Connecting or talking failed.
    Connect(std::io::Error),
    /// Connecting or the handshake took longer than `connect_timeout`.
    Timeout,
    /// The server does not speak the auth-client protocol.
    Protocol(String),
    /// A mechanism asked for is not offered by Dovecot.
    NotOffered(String),
}

impl fmt::Display for DovecotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DovecotError::Address(text) => write!(
                f,
                "bad Dovecot auth address `{text}`: expected unix:/PATH or HOST:PORT"
            ),
            DovecotError::Connect(error) => write!(f, "cannot reach Dovecot auth: {error}"),
            DovecotError::Timeout => f.write_str("Dovecot auth did not answer in time"),
            DovecotError::Protocol(what) => write!(f, "Dovecot auth protocol error: {what}"),
            DovecotError::NotOffered(name) => {
                write!(f, "Dovecot does not offer the mechanism `{name}`")
            }
        }
    }
}

impl std::error::Error for DovecotError {}

/// A connection to Dovecot's auth service, shared by the mechanisms it makes. Cheap to clone.
#[derive(Clone)]
pub struct DovecotAuth {
    client: Arc<client::Client>,
}

impl fmt::Debug for DovecotAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DovecotAuth").finish_non_exhaustive()
    }
}

impl DovecotAuth {
    /// Connects to Dovecot and reads the mechanisms it offers.
    pub async fn connect(
        address: DovecotAddress,
        options: DovecotOptions,
    ) -> Result<DovecotAuth, DovecotError> {
        let client = client::Client::connect(address, options).await?;
        Ok(DovecotAuth {
            client: Arc::new(client),
        })
    }

    /// The mechanisms Dovecot announced in the last handshake, as announced.
    pub fn offered(&self) -> Vec<MechInfo> {
        self.client.offered()
    }

    /// A mechanism for each one Dovecot offers, except those it marks private and those
    /// whose names SASL does not allow.
    pub fn mechanisms(&self) -> Vec<DovecotMechanism> {
        self.offered()
            .into_iter()
            .filter(|m| !m.is_private() && is_valid_mechanism_name(&m.name))
            .map(|m| DovecotMechanism::new(self.client.clone(), m.name))
            .collect()
    }

    /// The mechanisms called `names` (case-insensitive), each of which Dovecot must offer.
    pub fn select<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Vec<DovecotMechanism>, DovecotError> {
        let offered = self.offered();
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                offered
                    .iter()
                    .find(|m| m.name.eq_ignore_ascii_case(name))
                    .filter(|m| is_valid_mechanism_name(&m.name))
                    .map(|m| DovecotMechanism::new(self.client.clone(), m.name.clone()))
                    .ok_or_else(|| DovecotError::NotOffered(name.to_owned()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let unix = |p: &str| Some(DovecotAddress::Unix(p.into()));
        let tcp = |h: &str| Some(DovecotAddress::Tcp(h.into()));
        let cases = [
            (
                "unix:/run/dovecot/auth-client",
                unix("/run/dovecot/auth-client"),
            ),
            ("/run/dovecot/auth-client", unix("/run/dovecot/auth-client")),
            ("127.0.0.1:12345", tcp("127.0.0.1:12345")),
            ("inet:127.0.0.1:12345", tcp("127.0.0.1:12345")),
            ("[::1]:12345", tcp("[::1]:12345")),
            ("auth.example:12345", tcp("auth.example:12345")),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<DovecotAddress>().ok(), expected, "{text}");
        }
        for bad in [
            "",
            "unix:",
            "host",
            "host:",
            ":12",
            "host:99999",
            "run/dovecot",
        ] {
            assert!(bad.parse::<DovecotAddress>().is_err(), "{bad}");
        }
    }
}
