//! An authenticated relay: clients log in with PLAIN or LOGIN against argon2 hashes kept in
//! SQLite, and accepted mail is forwarded to an upstream server with lettre.
//! (aiosmtpd ships the same example as `examples/authenticated_relayer`.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use lettre::address::Envelope as LettreEnvelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_core::{
    AuthData, AuthResult, Authenticator, Config, Envelope, Handler, Reply, Server, ServerHandle,
    Session,
};

/// Logins and their argon2 hashes, in SQLite.
#[derive(Clone)]
pub struct UserDb {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl UserDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<UserDb> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS users (login TEXT PRIMARY KEY, hash TEXT NOT NULL)",
            [],
        )?;
        Ok(UserDb {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Adds or replaces a user, storing only the argon2 hash of the password.
    pub fn add_user(&self, login: &str, password: &str) -> Result<(), Box<dyn std::error::Error>> {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| e.to_string())?
            .to_string();
        let conn = self.conn.lock().map_err(|_| "database lock poisoned")?;
        conn.execute(
            "INSERT OR REPLACE INTO users (login, hash) VALUES (?1, ?2)",
            (login, hash),
        )?;
        Ok(())
    }

    fn verify(&self, login: &[u8], password: &[u8]) -> bool {
        let Ok(login) = std::str::from_utf8(login) else {
            return false;
        };
        let Ok(conn) = self.conn.lock() else {
            return false;
        };
        let hash: Option<String> = conn
            .query_row("SELECT hash FROM users WHERE login = ?1", [login], |row| {
                row.get(0)
            })
            .ok();
        drop(conn);
        match hash.as_deref().map(PasswordHash::new) {
            Some(Ok(hash)) => Argon2::default().verify_password(password, &hash).is_ok(),
            _ => false,
        }
    }
}

impl Authenticator for UserDb {
    async fn authenticate(
        &self,
        _: &Session,
        _: &Envelope,
        _: &str,
        auth_data: &AuthData,
    ) -> AuthResult {
        let Some(lp) = auth_data.login_password() else {
            return AuthResult::failure();
        };
        if lp.authzid.is_some() {
            return AuthResult::failure();
        }
        let (db, login, password) = (self.clone(), lp.login.clone(), lp.password.clone());
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || db.verify(&login, password.expose()))
            .await
            .unwrap_or(false);
        if ok {
            AuthResult::success_with(auth_data.clone())
        } else {
            AuthResult::failure()
        }
    }
}

/// Forwards every accepted message to the upstream server.
pub struct Relay {
    upstream: AsyncSmtpTransport<Tokio1Executor>,
}

impl Relay {
    /// Relays to `host:port` without TLS (a smart host on a trusted network).
    pub fn new(host: &str, port: u16) -> Relay {
        Relay {
            upstream: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .build(),
        }
    }
}

impl Handler for Relay {
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let from = envelope
            .mail_from
            .as_deref()
            .filter(|f| *f != "<>")
            .and_then(|f| f.parse().ok());
        let to: Result<Vec<_>, _> = envelope.rcpt_tos().map(|r| r.parse()).collect();
        let Ok(to) = to else {
            return Reply::from("553 5.1.3 Error: a recipient is not a valid address");
        };
        let Ok(lettre_envelope) = LettreEnvelope::new(from, to) else {
            return Reply::from("554 5.5.0 Error: envelope refused");
        };
        let login = session
            .login_data()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut message = format!("X-Authenticated-User: {login}\r\n").into_bytes();
        // lettre ends the data with CRLF.CRLF itself, so the message's own last CRLF goes.
        let content = &envelope.content;
        message.extend_from_slice(content.strip_suffix(b"\r\n").unwrap_or(content));
        match self.upstream.send_raw(&lettre_envelope, &message).await {
            Ok(_) => Reply::ok(),
            Err(e) if e.is_permanent() => {
                Reply::new(554, format!("5.0.0 upstream refused the message: {e}"))
            }
            Err(e) => Reply::new(451, format!("4.4.0 upstream unavailable: {e}")),
        }
    }
}

/// Starts the relay on `listen`, requiring AUTH before any mail.
pub async fn start(
    db: UserDb,
    listen: &str,
    upstream: (&str, u16),
    mut config: Config,
) -> std::io::Result<ServerHandle> {
    config.auth_required = true;
    config.authenticator = Some(db.into());
    let server = Server::new(Relay::new(upstream.0, upstream.1), config)
        .listen(listen)
        .await?;
    Ok(server.start())
}
