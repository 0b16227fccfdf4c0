//! The code under test: an application's "send a password-reset mail" function, written with
//! lettre. Nothing here knows about smtp-core.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where the application sends mail.
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Require STARTTLS, trusting this CA (PEM); `None` sends in the clear.
    pub starttls_ca: Option<Vec<u8>>,
    pub credentials: Option<(String, String)>,
}

/// Why the mail was not sent.
#[derive(Debug)]
pub enum ResetMailError {
    /// The address is not an email address.
    BadAddress(String),
    /// The SMTP server refused it, or the connection failed.
    Smtp(lettre::transport::smtp::Error),
}

impl std::fmt::Display for ResetMailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResetMailError::BadAddress(a) => write!(f, "not an email address: {a}"),
            ResetMailError::Smtp(e) => write!(f, "SMTP: {e}"),
        }
    }
}

/// Sends `to` the link that resets their password.
pub async fn send_password_reset(
    settings: &SmtpSettings,
    to: &str,
    link: &str,
) -> Result<(), ResetMailError> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| ResetMailError::BadAddress(to.to_owned()))?;
    let email = Message::builder()
        .from(
            "Example App <no-reply@app.example>"
                .parse()
                .expect("sender"),
        )
        .to(to)
        .subject("Reset your password")
        .body(format!(
            "Open this link to choose a new password:\r\n{link}\r\n"
        ))
        .expect("a valid message");
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .timeout(Some(Duration::from_secs(10)));
    if let Some(ca) = &settings.starttls_ca {
        let ca = Certificate::from_pem(ca).map_err(ResetMailError::Smtp)?;
        let tls = TlsParameters::builder(settings.host.clone())
            .add_root_certificate(ca)
            .build()
            .map_err(ResetMailError::Smtp)?;
        transport = transport.tls(Tls::Required(tls));
    }
    if let Some((user, password)) = &settings.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport
        .build()
        .send(email)
        .await
        .map(drop)
        .map_err(ResetMailError::Smtp)
}
