//! Server settings. Every limit and timeout is a field with a documented default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::tls::TlsConfig;

/// The default `data_size_limit`: 32 MiB, as aiosmtpd.
pub const DEFAULT_DATA_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// How a server behaves. Shared read-only by all connections; what a connection changes
/// (limits that grow after EHLO, counters) lives in the connection.
#[derive(Clone)]
pub struct Config {
    /// The server's name in the greeting and the HELO/EHLO replies. Default is the machine's
    /// host name.
    pub hostname: String,
    /// The greeting's text after the host name: `220 <hostname> <ident>`.
    /// Default is `smtpd <version>`.
    pub ident: String,
    /// The largest message accepted, advertised as `SIZE`, checked at `MAIL … SIZE=` and
    /// enforced while DATA is read (memory never grows past it). `None` means no limit and no
    /// `SIZE` extension. Default is 32 MiB.
    pub data_size_limit: Option<usize>,
    /// Whether to offer SMTPUTF8 (RFC 6531) and accept UTF-8 in commands. Default is `false`.
    pub enable_smtputf8: bool,
    /// The longest command line, CRLF excluded. After EHLO, MAIL may be 26 octets longer
    /// when SIZE is offered and 10 more with SMTPUTF8 (RFC 1870, 6531). Default is 512.
    pub command_size_limit: usize,
    /// The longest DATA line, CRLF included (RFC 5321 §4.5.3.1.6). Default is 1001.
    pub data_line_limit: usize,
    /// The most recipients per message; one more gets `452 4.5.3 Too many recipients`.
    /// Default is 1000.
    pub max_recipients: usize,
    /// How long a client may stay silent. On expiry the server sends
    /// `421 4.4.2 <hostname> Error: timeout exceeded` and closes. Default is 300 seconds.
    pub timeout: Duration,
    /// Budgets of command calls per connection, by verb; `None` means unlimited.
    /// Exceeding one gets `421 4.7.0 <VERB> sent too many times` and a close. Default is `None`.
    pub command_call_limit: Option<CallLimit>,
    /// Unknown commands allowed per connection; the last one gets
    /// `502 5.5.1 Too many unrecognized commands, goodbye.` and a close. Default is 5.
    pub bogus_limit: usize,
    /// Connections served at once; further clients get `421 4.3.2` and are closed.
    /// `None` means unlimited. Default is 1000.
    pub max_connections: Option<usize>,
    /// Connections served at once from one IP address; `None` means unlimited. Default is 50.
    pub max_connections_per_ip: Option<usize>,
    /// Whether MAIL, RCPT, DATA, VRFY and HELP need a successful AUTH first
    /// (`530 5.7.0 Authentication required`). Default is `false`.
    pub auth_required: bool,
    /// Whether AUTH needs TLS: until then AUTH is neither advertised nor accepted
    /// (`538 5.7.11`). Default is `true`.
    pub auth_require_tls: bool,
    /// Mechanism names not to offer, e.g. `["LOGIN"]`. Default is empty.
    pub auth_exclude_mechanism: Vec<String>,
    /// Decides on the credentials of LOGIN and PLAIN. Without one every login fails.
    /// Default is `None`.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Failed AUTH attempts allowed per connection; the last one gets
    /// `421 4.7.0 Too many authentication failures` and a close. `None` means unlimited.
    /// Default is 3.
    pub max_auth_failures: Option<u32>,
    /// The longest AUTH initial response or challenge answer, in octets (RFC 4954 §4).
    /// Default is 12288.
    pub auth_line_limit: usize,
    /// Certificates for STARTTLS; `None` means STARTTLS is not offered. Default is `None`.
    pub tls: Option<TlsConfig>,
    /// Whether every command but NOOP, EHLO, STARTTLS and QUIT needs TLS first
    /// (`530 Must issue a STARTTLS command first`). Default is `false`.
    pub require_starttls: bool,
    /// How long a TLS handshake may take. Default is 30 seconds.
    pub tls_handshake_timeout: Duration,
    /// On shutdown, how long a message transfer in progress may take to finish.
    /// Default is 30 seconds.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: local_hostname(),
            ident: concat!("smtpd ", env!("CARGO_PKG_VERSION")).to_owned(),
            data_size_limit: Some(DEFAULT_DATA_SIZE_LIMIT),
            enable_smtputf8: false,
            command_size_limit: 512,
            data_line_limit: 1001,
            max_recipients: 1000,
            timeout: Duration::from_secs(300),
            command_call_limit: None,
            bogus_limit: 5,
            max_connections: Some(1000),
            max_connections_per_ip: Some(50),
            auth_required: false,
            auth_require_tls: true,
            auth_exclude_mechanism: Vec::new(),
            authenticator: None,
            max_auth_failures: Some(3),
            auth_line_limit: 12288,
            tls: None,
            require_starttls: false,
            tls_handshake_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hostname", &self.hostname)
            .field("ident", &self.ident)
            .field("data_size_limit", &self.data_size_limit)
            .field("enable_smtputf8", &self.enable_smtputf8)
            .field("max_recipients", &self.max_recipients)
            .field("timeout", &self.timeout)
            .field("auth_required", &self.auth_required)
            .field("auth_require_tls", &self.auth_require_tls)
            .field("authenticator", &self.authenticator.as_ref().map(|_| "..."))
            .field("tls", &self.tls.is_some())
            .field("require_starttls", &self.require_starttls)
            .finish_non_exhaustive()
    }
}

/// Per-verb budgets of command calls, as aiosmtpd's `command_call_limit`.
#[derive(Clone, Debug, Default)]
pub struct CallLimit {
    /// Budget of every verb without its own entry.
    pub default: usize,
    /// Budgets by upper-case verb.
    pub per_verb: HashMap<String, usize>,
}

impl CallLimit {
    /// The same budget for every verb.
    pub fn all(limit: usize) -> CallLimit {
        CallLimit {
            default: limit,
            per_verb: HashMap::new(),
        }
    }

    /// The budget of `verb`.
    pub fn limit(&self, verb: &str) -> usize {
        self.per_verb.get(verb).copied().unwrap_or(self.default)
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
