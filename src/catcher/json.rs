//! What the API says about a message: a summary for lists and events, the details for one.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use smtp_core::mail_parser::{MessageParser, MimeHeaders as _, PartType};
use smtp_core::testing::Message;

/// One message in `GET /api/messages` and in `GET /api/events`.
#[derive(Serialize)]
pub struct Summary {
    id: u64,
    time: String,
    sender: String,
    recipients: Vec<String>,
    subject: Option<String>,
    size: usize,
}

impl Summary {
    pub fn of(message: &Message) -> Summary {
        let headers = MessageParser::default().parse_headers(&message.raw[..]);
        Summary {
            id: message.id,
            time: rfc3339(message.received),
            sender: message.mail_from.clone(),
            recipients: message.rcpt_tos().into_iter().map(str::to_owned).collect(),
            subject: headers.and_then(|h| h.subject().map(str::to_owned)),
            size: message.raw.len(),
        }
    }
}

/// `GET /api/messages/{id}`.
#[derive(Serialize)]
pub struct Detail {
    #[serde(flatten)]
    summary: Summary,
    envelope: EnvelopeJson,
    session: SessionJson,
    headers: Vec<HeaderJson>,
    text: Vec<String>,
    html: Vec<String>,
    attachments: Vec<AttachmentJson>,
}

#[derive(Serialize)]
struct EnvelopeJson {
    sender: String,
    /// MAIL's parameters, upper-cased (`"SIZE=1024"`, `"BODY=8BITMIME"`).
    parameters: Vec<String>,
    recipients: Vec<RecipientJson>,
}

#[derive(Serialize)]
struct RecipientJson {
    address: String,
    /// RCPT's parameters, upper-cased (`"NOTIFY=SUCCESS,FAILURE"`).
    parameters: Vec<String>,
}

#[derive(Serialize)]
struct SessionJson {
    peer: String,
    helo: Option<String>,
    tls: Option<TlsJson>,
    auth: Option<AuthJson>,
}

#[derive(Serialize)]
struct TlsJson {
    version: String,
    cipher_suite: String,
    sni: Option<String>,
    implicit: bool,
}

/// The mechanism and the login; never a password.
#[derive(Serialize)]
struct AuthJson {
    mechanism: String,
    login: Option<String>,
}

#[derive(Serialize)]
struct HeaderJson {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct AttachmentJson {
    name: Option<String>,
    content_type: Option<String>,
    size: usize,
}

impl Detail {
    pub fn of(message: &Message) -> Detail {
        let session = SessionJson {
            peer: message.peer.to_string(),
            helo: message.helo.clone(),
            tls: message.tls.as_ref().map(|tls| TlsJson {
                version: tls.version.clone(),
                cipher_suite: tls.cipher_suite.clone(),
                sni: tls.sni.clone(),
                implicit: tls.implicit,
            }),
            auth: message.auth_mechanism.as_ref().map(|mechanism| AuthJson {
                mechanism: mechanism.clone(),
                login: message.auth_login.clone(),
            }),
        };
        let envelope = EnvelopeJson {
            sender: message.mail_from.clone(),
            parameters: message.mail_options.clone(),
            recipients: message
                .recipients
                .iter()
                .map(|r| RecipientJson {
                    address: r.address.clone(),
                    parameters: r.params.clone(),
                })
                .collect(),
        };
        let mut detail = Detail {
            summary: Summary::of(message),
            envelope,
            session,
            headers: Vec::new(),
            text: Vec::new(),
            html: Vec::new(),
            attachments: Vec::new(),
        };
        if let Some(parsed) = message.parsed() {
            detail.headers = parsed
                .headers_raw()
                .map(|(name, value)| HeaderJson {
                    name: name.to_owned(),
                    value: value.trim().to_owned(),
                })
                .collect();
            // mail-parser lists an HTML-only message's part among the text bodies too (and
            // the other way round): keep each part under its own kind.
            detail.text = parsed
                .text_bodies()
                .filter(|p| matches!(p.body, PartType::Text(_)))
                .filter_map(|p| p.text_contents().map(str::to_owned))
                .collect();
            detail.html = parsed
                .html_bodies()
                .filter(|p| matches!(p.body, PartType::Html(_)))
                .filter_map(|p| p.text_contents().map(str::to_owned))
                .collect();
            detail.attachments = parsed
                .attachments()
                .map(|p| AttachmentJson {
                    name: p.attachment_name().map(str::to_owned),
                    content_type: p.content_type().map(|ct| match &ct.c_subtype {
                        Some(sub) => format!("{}/{sub}", ct.c_type),
                        None => ct.c_type.to_string(),
                    }),
                    size: p.contents().len(),
                })
                .collect();
        }
        detail
    }
}

/// `time` as RFC 3339 in UTC, to the millisecond: `2026-12-07T04:23:09.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        let cases: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_250, "2000-02-29T00:00:00.250Z"),
            (1_796_613_789_007, "2026-12-07T03:23:09.007Z"),
        ];
        for &(millis, text) in cases {
            let time = UNIX_EPOCH + Duration::from_millis(millis);
            assert_eq!(rfc3339(time), text, "{millis} ms");
        }
    }
}
