//! User names as the limiter counts them: one budget for every spelling of one account.

use std::borrow::Cow;

/// The form of a user name that failures are counted by, so that `Alice`, `alice`, `ALICE`
/// and `jo\u{A0}bloggs` for `jo bloggs` share one budget.
///
/// A UTF-8 name is case-folded (lower-, upper-, then lower-cased, so that `ẞ`, `ß` and `SS`
/// meet as `ss`) and then prepared with SASLprep (RFC 4013: non-ASCII spaces become a space,
/// soft hyphens and other "mapped to nothing" characters go, NFKC), again until neither
/// changes it, since NFKC can bring case back (`ℌ` becomes `H`). Where SASLprep refuses the
/// name (control or unassigned characters, mixed directions), it is only case-folded. A name
/// that is not UTF-8 has only its ASCII letters lower-cased.
///
/// This merges more names than most account stores tell apart: two accounts that differ
/// only in case then share a budget, which costs one of them at most a blocked window while
/// the other is attacked. An authenticator that compares names otherwise counts by its own
/// form instead.
pub fn normalize_user(user: &[u8]) -> Cow<'_, [u8]> {
    let text = match std::str::from_utf8(user) {
        Ok(text) if !text.is_ascii() => text,
        // SASLprep leaves ASCII as it is, or refuses it (control characters).
        _ => return ascii_lowercase(user),
    };
    let mut normal = text.to_owned();
    // Two rounds settle every name we know of; the bound only keeps a pathological one cheap.
    for _ in 0..4 {
        let folded = normal.to_lowercase().to_uppercase().to_lowercase();
        let prepared = match stringprep::saslprep(&folded) {
            Ok(prepared) => prepared.into_owned(),
            Err(_) => folded,
        };
        if prepared == normal {
            break;
        }
        normal = prepared;
    }
    match normal.as_bytes() == user {
        true => Cow::Borrowed(user),
        false => Cow::Owned(normal.into_bytes()),
    }
}

fn ascii_lowercase(user: &[u8]) -> Cow<'_, [u8]> {
    match user.iter().any(u8::is_ascii_uppercase) {
        true => Cow::Owned(user.to_ascii_lowercase()),
        false => Cow::Borrowed(user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_are_one_key() {
        for (spellings, key) in [
            (&["alice", "Alice", "ALICE", "aLiCe"][..], "alice"),
            (
                &["jo bloggs", "jo\u{A0}bloggs", "JO\u{2003}BLOGGS"],
                "jo bloggs",
            ),
            (&["pencil", "pen\u{AD}cil", "PEN\u{AD}CIL"], "pencil"),
            (&["strasse", "Straße", "STRASSE", "straẞe"], "strasse"),
            (&["ℌal", "hal", "HAL"], "hal"),
            (&["ｅｖｅ", "eve", "ＥＶＥ"], "eve"),
            (&["émile", "Émile", "E\u{301}mile"], "émile"),
            (&["σοφία", "ΣΟΦΊΑ", "Σοφία"], "σοφία"),
        ] {
            for spelling in spellings {
                assert_eq!(
                    normalize_user(spelling.as_bytes()),
                    key.as_bytes(),
                    "{spelling:?}"
                );
            }
        }
    }

    #[test]
    fn distinct_names_stay_distinct() {
        let names = [
            "alice",
            "alicia",
            "alice ",
            "bob",
            "émile",
            "emile",
            "σοφια",
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(normalize_user(a.as_bytes()), normalize_user(b.as_bytes()));
            }
        }
    }

    #[test]
    fn names_that_are_not_utf8_or_refused_are_only_lower_cased() {
        assert_eq!(normalize_user(b"AL\xffICE"), &b"al\xffice"[..]);
        assert_eq!(
            normalize_user(b"\xc3\x89MILE\xff"),
            &b"\xc3\x89mile\xff"[..]
        );
        // SASLprep refuses control characters; the name is still case-folded.
        assert_eq!(normalize_user(b"ALICE\x07"), &b"alice\x07"[..]);
        assert_eq!(
            normalize_user("ÉMILE\u{7}".as_bytes()),
            "émile\u{7}".as_bytes()
        );
    }

    #[test]
    fn names_already_in_form_are_borrowed() {
        for name in ["alice", "émile", "jo bloggs", ""] {
            assert!(matches!(normalize_user(name.as_bytes()), Cow::Borrowed(_)));
        }
    }

    proptest::proptest! {
        #[test]
        fn normalizing_twice_changes_nothing(name in "\\PC{0,12}") {
            let once = normalize_user(name.as_bytes()).into_owned();
            proptest::prop_assert_eq!(normalize_user(&once), &once[..]);
        }

        #[test]
        fn case_never_matters(name in "\\PC{0,12}") {
            let (upper, lower) = (name.to_uppercase(), name.to_lowercase());
            proptest::prop_assert_eq!(
                normalize_user(upper.as_bytes()),
                normalize_user(lower.as_bytes())
            );
        }
    }
}
