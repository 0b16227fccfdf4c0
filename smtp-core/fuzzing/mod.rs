//! Harnesses shared by the fuzz targets (`fuzz/`) and the property tests in `tests.rs`: each
//! takes arbitrary bytes, drives one layer, and panics when an invariant breaks.
//! Not a public API: compiled only with the `fuzzing` feature, outside the library's `src/`.

mod parse;
mod sasl;
mod session;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub use parse::{Decoded, command, data, params, proxy, reference_data};
pub use sasl::sasl;
pub use session::session;

/// The login the session and SASL harnesses accept.
pub const LOGIN: &str = "fuzzuser";
/// Its password, which must never reach the log.
pub const PASSWORD: &str = "Fuzz-s3cret-Pa55word";

/// Separates the client's writes in a [`session`] input.
pub const WRITE_BREAK: u8 = 0xff;
/// Starts a write that the harness expands into a credential (see [`session`]).
pub const CREDENTIAL: u8 = 0xfe;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64.encode(bytes)
}

/// The forms of the password that must not be logged.
pub fn secrets() -> Vec<String> {
    vec![
        PASSWORD.to_owned(),
        b64(PASSWORD),
        b64(format!("\0{LOGIN}\0{PASSWORD}")),
        b64(format!("{LOGIN}\0{LOGIN}\0{PASSWORD}")),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks that `out` is a sequence of well-formed replies: every line `ddd[ -]text` ends with
/// CRLF and holds no other CR or LF, and the lines of a multi-line reply share their code.
pub fn check_replies(out: &[u8]) {
    let show = || String::from_utf8_lossy(out).into_owned();
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "unterminated reply: {:?}",
        show()
    );
    let mut continued: Option<&[u8]> = None;
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = line
            .strip_suffix(b"\r")
            .unwrap_or_else(|| panic!("bare LF in replies: {:?}", show()));
        assert!(
            !line.contains(&b'\r'),
            "bare CR in a reply line: {:?}",
            show()
        );
        let well_formed = line.len() >= 4
            && line[..3].iter().all(u8::is_ascii_digit)
            && (b'2'..=b'5').contains(&line[0])
            && matches!(line[3], b' ' | b'-');
        assert!(
            well_formed,
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
        if let Some(code) = continued {
            assert_eq!(
                code,
                &line[..3],
                "code changed inside a reply: {:?}",
                show()
            );
        }
        continued = (line[3] == b'-').then_some(&line[..3]);
    }
    assert!(
        continued.is_none(),
        "multi-line reply without its last line: {:?}",
        show()
    );
}
