//! SCRAM messages (RFC 5802 §7): parsing the client's, building the server's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use subtle::ConstantTimeEq as _;

use super::keys::{ScramCredentials, ScramHash};

/// Why an exchange failed: RFC 5802's `server-error-value`s, for the debug log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    InvalidEncoding,
    ExtensionsNotSupported,
    InvalidProof,
    ChannelBindingsDontMatch,
    ServerDoesSupportChannelBinding,
    ChannelBindingNotSupported,
    UnsupportedChannelBindingType,
    UnknownUser,
    InvalidUsernameEncoding,
    NoAuthorization,
    OtherError,
}

/// The client's channel-binding flag (gs2-cbind-flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CbFlag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds with this type.
    Bind(String),
}

#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    pub(crate) gs2_header: &'a str,
    pub(crate) flag: CbFlag,
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    pub(crate) bare: &'a str,
    pub(crate) nonce: &'a str,
}

/// `saslname` unescaping: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::InvalidUsernameEncoding),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::InvalidUsernameEncoding);
    }
    Ok(out)
}

fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

pub(crate) fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let mut parts = message.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ScramError::InvalidEncoding);
    };
    let flag = match flag {
        "n" => CbFlag::No,
        "y" => CbFlag::ClientOnly,
        _ => match flag.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                CbFlag::Bind(name.to_owned())
            }
            _ => return Err(ScramError::InvalidEncoding),
        },
    };
    let authzid = match authzid {
        "" => None,
        a => Some(saslname(
            a.strip_prefix("a=").ok_or(ScramError::InvalidEncoding)?,
        )?),
    };
    let gs2_header = &message[..message.len() - bare.len()];
    if bare.starts_with("m=") {
        return Err(ScramError::ExtensionsNotSupported);
    }
    let mut attrs = bare.split(',');
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(ScramError::InvalidEncoding)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| valid_nonce(n))
        .ok_or(ScramError::InvalidEncoding)?;
    // Extensions are allowed after the nonce, and ignored.
    if attrs.any(|a| a.len() < 2 || a.as_bytes()[1] != b'=') {
        return Err(ScramError::InvalidEncoding);
    }
    Ok(ClientFirst {
        gs2_header,
        flag,
        authzid,
        user: saslname(user)?,
        bare,
        nonce,
    })
}

/// The server's side of one exchange after server-first.
pub(crate) struct Exchange {
    hash: ScramHash,
    credentials: ScramCredentials,
    cbind_input: Vec<u8>,
    client_first_bare: String,
    pub(crate) server_first: String,
    nonce: String,
}

/// Builds server-first for `client_first` with the server's part of the nonce.
/// `cb_data` is the channel-binding data when the client binds (`p=`).
pub(crate) fn server_first(
    hash: ScramHash,
    client_first: &ClientFirst<'_>,
    credentials: ScramCredentials,
    server_nonce: &str,
    cb_data: Option<&[u8]>,
) -> Exchange {
    let nonce = format!("{}{server_nonce}", client_first.nonce);
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credentials.salt),
        credentials.iterations
    );
    let mut cbind_input = client_first.gs2_header.as_bytes().to_vec();
    cbind_input.extend_from_slice(cb_data.unwrap_or_default());
    Exchange {
        hash,
        credentials,
        cbind_input,
        client_first_bare: client_first.bare.to_owned(),
        server_first,
        nonce,
    }
}

/// Checks client-final; returns server-final (`v=…`).
pub(crate) fn client_final(exchange: &Exchange, message: &str) -> Result<String, ScramError> {
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or(ScramError::InvalidEncoding)?;
    let mut attrs = without_proof.split(',');
    let cbind = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .and_then(|c| BASE64.decode(c).ok())
        .ok_or(ScramError::InvalidEncoding)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::InvalidEncoding)?;
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::InvalidEncoding)?;
    if cbind != exchange.cbind_input {
        return Err(ScramError::ChannelBindingsDontMatch);
    }
    if nonce != exchange.nonce {
        return Err(ScramError::OtherError);
    }
    let hash = exchange.hash;
    let auth_message = format!(
        "{},{},{without_proof}",
        exchange.client_first_bare, exchange.server_first
    );
    let keys = &exchange.credentials;
    let client_signature = hash.hmac(&keys.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::InvalidProof);
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !bool::from(hash.h(&client_key).ct_eq(&keys.stored_key)) {
        return Err(ScramError::InvalidProof);
    }
    let server_signature = hash.hmac(&keys.server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature)))
}
