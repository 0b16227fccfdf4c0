//! `POST /api/faults`: the library's [`Fault`]s, described in JSON.
//!
//! ```json
//! {"command": "mail", "nth": 1, "reply": "451 4.3.0 Try again later"}
//! {"command": "rcpt", "reply": "452 4.2.2 Mailbox full"}
//! {"command": "data", "nth": 2, "drop": "in_data"}
//! {"command": "mail", "drop": "at_command"}
//! {"command": "ehlo", "delay_ms": 1500}
//! ```
//! `nth` counts the command's attempts from the moment the fault is set (1 is the next one);
//! without `nth` the fault applies to every attempt. Exactly one of `reply`, `drop` and
//! `delay_ms` says what happens.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use smtp_core::Reply;
use smtp_core::testing::{Action, Command, Fault, Faults};

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum CommandName {
    Ehlo,
    Mail,
    Rcpt,
    Data,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum DropAt {
    AtCommand,
    InData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    command: CommandName,
    nth: Option<NonZeroUsize>,
    reply: Option<String>,
    drop: Option<DropAt>,
    delay_ms: Option<u64>,
}

/// Reads one fault object, or an array of them.
fn parse(body: &[u8]) -> Result<Vec<FaultSpec>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| serde_json::from_value(item).map_err(|e| format!("fault {}: {e}", i + 1)))
        .collect()
}

/// Checks a reply line: a 2xx, 4xx or 5xx code, then a space and the text. A 3xx would tell
/// the client to go on with data it never meant to send.
fn reply(line: &str) -> Result<Reply, String> {
    let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
    let well_formed = matches!(code, Some(200..=299 | 400..=599))
        && (line.len() == 3 || line.as_bytes()[3] == b' ')
        && !line.contains(['\r', '\n']);
    if !well_formed {
        return Err(format!(
            "reply {line:?} is not a reply line: expected a 2xx, 4xx or 5xx code, a space \
             and a text, as in \"451 4.3.0 Try again later\""
        ));
    }
    Ok(Reply::parse(line.to_owned()))
}

/// A fault read from JSON, checked, to be added with the others.
struct Checked {
    command: Command,
    nth: Option<NonZeroUsize>,
    action: Action,
}

impl FaultSpec {
    fn check(self) -> Result<Checked, String> {
        let command = match self.command {
            CommandName::Ehlo => Command::Ehlo,
            CommandName::Mail => Command::Mail,
            CommandName::Rcpt => Command::Rcpt,
            CommandName::Data => Command::Data,
        };
        let action = match (self.reply, self.drop, self.delay_ms) {
            (Some(line), None, None) => Action::Reply(reply(&line)?),
            (None, Some(DropAt::AtCommand), None) => Action::Reply(Reply::disconnect()),
            (None, Some(DropAt::InData), None) if matches!(command, Command::Data) => {
                Action::DropInData
            }
            (None, Some(DropAt::InData), None) => {
                return Err("\"drop\": \"in_data\" needs \"command\": \"data\"".to_owned());
            }
            (None, None, Some(ms)) => Action::Delay(Duration::from_millis(ms)),
            _ => {
                return Err(
                    "expected exactly one of \"reply\", \"drop\" and \"delay_ms\"".to_owned(),
                );
            }
        };
        Ok(Checked {
            command,
            nth: self.nth,
            action,
        })
    }
}

/// The most faults set at once: the API is open to whoever reaches it, and each fault costs a
/// check on every command.
const MAX_FAULTS: usize = 1000;

/// Adds the faults `body` describes, all or none; how many were added, or why not.
pub fn add(faults: &Faults, body: &[u8]) -> Result<usize, String> {
    let specs = parse(body)?;
    let count = specs.len();
    if faults.len() + count > MAX_FAULTS {
        return Err(format!(
            "at most {MAX_FAULTS} faults at a time ({} set): DELETE /api/faults first",
            faults.len()
        ));
    }
    let checked = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| spec.check().map_err(|e| format!("fault {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    for Checked {
        command,
        nth,
        action,
    } in checked
    {
        match nth {
            Some(nth) => faults.add_from_now(command, nth.get(), action),
            None => faults.add(Fault::every(command, action)),
        };
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_fault_descriptions() {
        let cases: &[(&str, Result<usize, &str>)] = &[
            (
                r#"{"command":"mail","nth":1,"reply":"451 4.3.0 Later"}"#,
                Ok(1),
            ),
            (
                r#"[{"command":"rcpt","reply":"452"},{"command":"ehlo","delay_ms":5}]"#,
                Ok(2),
            ),
            (r#"{"command":"data","nth":2,"drop":"in_data"}"#, Ok(1)),
            (r#"{"command":"rcpt","drop":"at_command"}"#, Ok(1)),
            (r#"{"command":"mail""#, Err("the body is not JSON")),
            (
                r#"{"command":"quit","reply":"421"}"#,
                Err("fault 1: unknown variant `quit`"),
            ),
            (
                r#"{"command":"mail","nht":1}"#,
                Err("fault 1: unknown field `nht`"),
            ),
            (
                r#"{"command":"mail","nth":0,"reply":"451"}"#,
                Err("fault 1: invalid value"),
            ),
            (
                r#"{"command":"mail"}"#,
                Err("fault 1: expected exactly one of"),
            ),
            (
                r#"{"command":"mail","reply":"451","delay_ms":1}"#,
                Err("fault 1: expected"),
            ),
            (
                r#"{"command":"mail","reply":"45 later"}"#,
                Err("fault 1: reply \"45 later\""),
            ),
            (
                r#"{"command":"mail","reply":"600 x"}"#,
                Err("fault 1: reply \"600 x\""),
            ),
            (
                r#"{"command":"mail","reply":"354 go on"}"#,
                Err("fault 1: reply \"354 go on\""),
            ),
            (
                r#"{"command":"mail","drop":"in_data"}"#,
                Err("fault 1: \"drop\": \"in_data\""),
            ),
        ];
        for (body, expected) in cases {
            let got = add(&Faults::default(), body.as_bytes());
            match (expected, &got) {
                (Ok(n), Ok(added)) => assert_eq!(n, added, "{body}"),
                (Err(prefix), Err(e)) => assert!(e.starts_with(prefix), "{body}: {e}"),
                _ => panic!("{body}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn the_number_of_faults_is_bounded() {
        let faults = Faults::default();
        let one = br#"{"command":"rcpt","reply":"452 4.2.2 Full"}"#;
        for _ in 0..MAX_FAULTS {
            assert_eq!(add(&faults, one), Ok(1));
        }
        let refused = add(&faults, one).unwrap_err();
        assert!(refused.starts_with("at most 1000 faults"), "{refused}");
        faults.clear();
        assert_eq!(add(&faults, one), Ok(1));
    }
}
