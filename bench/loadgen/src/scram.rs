//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.
//!
//! The salted password is cached per (salt, iteration count), as RFC 5802 section 5.1 allows a
//! client to do: PBKDF2 with 4096 iterations per login would make the generator, not the server,
//! the bottleneck.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::conn::Fail;

type HmacSha256 = Hmac<Sha256>;

pub struct Scram {
    user: String,
    pass: String,
    nonce: Nonce,
    salted: Option<(Vec<u8>, u32, [u8; 32])>,
    client_first_bare: String,
}

/// What the client sends after the server's first message, and what it expects back.
pub struct Final {
    pub message: String,
    pub server_signature: [u8; 32],
}

impl Scram {
    pub fn new(user: &str, pass: &str) -> Self {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            user,
            pass: pass.to_owned(),
            nonce: Nonce::new(),
            salted: None,
            client_first_bare: String::new(),
        }
    }

    /// The client-first message of a new exchange, base64-encoded.
    pub fn first(&mut self) -> String {
        self.client_first_bare.clear();
        self.client_first_bare.push_str("n=");
        self.client_first_bare.push_str(&self.user);
        self.client_first_bare.push_str(",r=");
        self.nonce.push_to(&mut self.client_first_bare);
        B64.encode(format!("n,,{}", self.client_first_bare))
    }

    /// The client-final message (base64) for the server-first message `challenge` (base64).
    pub fn finish(&mut self, challenge: &[u8]) -> Result<Final, Fail> {
        let bad = |what: &str| Fail(format!("SCRAM: {what}"));
        let server_first = B64
            .decode(challenge)
            .map_err(|_| bad("server-first is not base64"))?;
        let server_first =
            String::from_utf8(server_first).map_err(|_| bad("server-first is not UTF-8"))?;
        let (mut nonce, mut salt, mut iter) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(B64.decode(v).map_err(|_| bad("salt"))?),
                Some(("i=", v)) => iter = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iter)) = (nonce, salt, iter) else {
            return Err(bad("server-first lacks r=, s= or i="));
        };
        let ours = &self.client_first_bare[self.client_first_bare.find(",r=").unwrap_or(0) + 3..];
        if !nonce.starts_with(ours) {
            return Err(bad("server nonce does not extend ours"));
        }
        let salted = match &self.salted {
            Some((s, i, key)) if *s == salt && *i == iter => *key,
            _ => {
                let mut key = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(self.pass.as_bytes(), &salt, iter, &mut key);
                self.salted = Some((salt, iter, key));
                key
            }
        };
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        Ok(Final {
            message: B64.encode(format!("{without_proof},p={}", B64.encode(proof))),
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        })
    }
}

/// Checks the server-final message (base64 of `v=...`).
pub fn verify(server_final: &[u8], expected: &[u8; 32]) -> Result<(), Fail> {
    let decoded = B64.decode(server_final).unwrap_or_default();
    match decoded.strip_prefix(b"v=").map(|v| B64.decode(v)) {
        Some(Ok(sig)) if sig == expected => Ok(()),
        _ => Err(Fail("SCRAM: wrong server signature".into())),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Client nonces: unpredictable enough for a benchmark (time, pid and a counter mixed by
/// splitmix64), printable, and never containing a comma.
struct Nonce {
    state: u64,
}

impl Nonce {
    fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Nonce {
            state: t ^ (u64::from(std::process::id()) << 32),
        }
    }

    fn push_to(&mut self, out: &mut String) {
        use std::fmt::Write;
        for _ in 0..2 {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let _ = write!(out, "{:016x}", z ^ (z >> 31));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange.
    #[test]
    fn rfc7677_example() {
        let mut s = Scram::new("user", "pencil");
        s.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let f = s.finish(B64.encode(server_first).as_bytes()).unwrap();
        let sent = String::from_utf8(B64.decode(&f.message).unwrap()).unwrap();
        assert_eq!(
            sent,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = B64.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        verify(server_final.as_bytes(), &f.server_signature).unwrap();
    }
}
