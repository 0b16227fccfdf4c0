//! Mechanism names (RFC 4422 §3.1: 1–20 characters of `A-Z 0-9 - _`) and hook-name suggestions.

const MAX_LEN: usize = 20;

/// Checks the name given by `#[auth_mechanism("NAME")]`.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("mechanism name cannot be empty".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && *c != '-' && *c != '_')
    {
        return Err(format!(
            "invalid character `{}` in mechanism name `{name}`; only `A-Z`, `0-9`, `-` and `_` are allowed",
            c.escape_default()
        ));
    }
    if name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!(
            "mechanism name `{name}` must be upper case: `{}`",
            name.to_ascii_uppercase()
        ));
    }
    check_len(name)
}

fn check_len(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len > MAX_LEN {
        return Err(format!(
            "mechanism name `{name}` is {len} characters long; at most {MAX_LEN} are allowed"
        ));
    }
    Ok(())
}

/// The mechanism of a method named `auth_<remainder>`: `__` stands for `-`.
pub fn from_method(remainder: &str) -> Result<String, String> {
    if remainder.is_empty() {
        return Err("missing mechanism name after `auth_`, as in `auth_PLAIN`".to_owned());
    }
    if remainder.chars().any(char::is_lowercase) {
        return Err(format!(
            "mechanism name `{remainder}` must be upper case; did you mean `auth_{}`?",
            remainder.to_uppercase()
        ));
    }
    if remainder.contains("___") {
        return Err(format!(
            "ambiguous mechanism name `{remainder}`: `___` could mean `-_` or `_-`; \
             name it with `#[auth_mechanism(\"…\")]` instead"
        ));
    }
    if remainder.starts_with("__") || remainder.ends_with("__") {
        return Err(format!(
            "mechanism name `{remainder}` cannot start or end with `__` (a dash); \
             name it with `#[auth_mechanism(\"…\")]` instead"
        ));
    }
    if let Some(c) = remainder
        .chars()
        .find(|c| !c.is_ascii_uppercase() && !c.is_ascii_digit() && *c != '_')
    {
        return Err(format!(
            "invalid character `{c}` in mechanism name `{remainder}`; only `A-Z`, `0-9`, `_` and `__` (a dash) are allowed"
        ));
    }
    let name = remainder.replace("__", "-");
    check_len(&name)?;
    Ok(name)
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    let limit = name.chars().count().max(3) / 3;
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("PLAIN", Ok("PLAIN")),
            ("MECH__WITH__DASHES", Ok("MECH-WITH-DASHES")),
            ("MECH_WITH_UNDERSCORE", Ok("MECH_WITH_UNDERSCORE")),
            ("SCRAM__SHA__256__PLUS", Ok("SCRAM-SHA-256-PLUS")),
            ("X_", Ok("X_")),
            ("A1234567890123456789", Ok("A1234567890123456789")),
            ("A12345678901234567890", Err("is 21 characters long")),
            ("", Err("missing mechanism name")),
            ("login", Err("did you mean `auth_LOGIN`?")),
            ("Login", Err("must be upper case")),
            ("A___B", Err("ambiguous")),
            ("__X", Err("cannot start or end")),
            ("X__", Err("cannot start or end")),
            ("É", Err("invalid character `É`")),
        ];
        for (remainder, expected) in cases {
            match (from_method(remainder), expected) {
                (Ok(name), Ok(expected)) => assert_eq!(name, *expected, "{remainder}"),
                (Err(message), Err(expected)) => {
                    assert!(message.contains(expected), "{remainder}: {message}")
                }
                (got, _) => panic!("{remainder}: {got:?}"),
            }
        }
    }

    #[test]
    fn literal_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("X-TOKEN", None),
            ("SCRAM-SHA-256-PLUS", None),
            ("_-09AZ", None),
            ("", Some("cannot be empty")),
            ("x-token", Some("must be upper case: `X-TOKEN`")),
            ("X.TOKEN", Some("invalid character `.`")),
            ("X TOKEN", Some("invalid character ` `")),
            ("X\nTOKEN", Some("invalid character `\\n`")),
            (
                "ABCDEFGHIJKLMNOPQRSTU",
                Some("21 characters long; at most 20"),
            ),
        ];
        for (name, expected) in cases {
            match (check(name), expected) {
                (Ok(()), None) => {}
                (Err(message), Some(expected)) => {
                    assert!(message.contains(expected), "{name}: {message}")
                }
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn suggestions() {
        let hooks = [
            "handle_helo",
            "handle_ehlo",
            "handle_data",
            "handle_rcpt",
            "handle_mail",
        ];
        let cases = [
            ("handle_dta", Some("handle_data")),
            ("handle_DATA", Some("handle_data")),
            ("handle_rcpt_to", Some("handle_rcpt")),
            ("handle_mailfrom", Some("handle_mail")),
            ("handle_x", None),
            ("handle_starttls", None),
        ];
        for (name, expected) in cases {
            assert_eq!(closest(name, hooks), expected, "{name}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
