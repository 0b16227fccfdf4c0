//! Faults: replies, delays and dropped connections a [`TestServer`](super::TestServer) plays
//! at chosen commands, to test how a sender handles errors and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proto::Reply;
use crate::session::Session;

/// The commands a fault can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// HELO and EHLO.
    Ehlo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The message: the reply after DATA's final dot (or the last BDAT chunk); a drop happens
    /// while the body arrives.
    Data,
}

/// What a fault does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Action {
    /// Answer with this reply instead of the handler. A `421` closes the connection after it;
    /// [`Reply::disconnect`] closes it without a reply.
    Reply(Reply),
    /// Wait this long, then answer as usual.
    Delay(Duration),
    /// Close the connection in the middle of the message body, without a reply
    /// ([`Command::Data`] only).
    DropInData,
}

/// One attempt at a command, as a fault's predicate sees it.
#[non_exhaustive]
pub struct Attempt<'a> {
    /// The command.
    pub command: Command,
    /// Its number among the server's commands of this kind, from 1 (all connections).
    pub nth: usize,
    /// The address of MAIL or RCPT; the EHLO name; `None` for DATA.
    pub argument: Option<&'a str>,
    /// The session.
    pub session: &'a Session,
}

type Predicate = Arc<dyn Fn(&Attempt<'_>) -> bool + Send + Sync>;

#[derive(Clone)]
enum When {
    Nth(usize),
    Every,
    Matching(Predicate),
}

/// One fault: a command, which of its attempts, and an action.
#[derive(Clone)]
pub struct Fault {
    command: Command,
    when: When,
    action: Action,
}

impl Fault {
    /// The `nth` attempt of `command` on the server (from 1, counted over all connections).
    pub fn nth(command: Command, nth: usize, action: Action) -> Fault {
        Fault {
            command,
            when: When::Nth(nth),
            action,
        }
    }

    /// Every attempt of `command`.
    pub fn every(command: Command, action: Action) -> Fault {
        Fault {
            command,
            when: When::Every,
            action,
        }
    }

    /// Every attempt of `command` for which `predicate` holds.
    pub fn matching(
        command: Command,
        predicate: impl Fn(&Attempt<'_>) -> bool + Send + Sync + 'static,
        action: Action,
    ) -> Fault {
        Fault {
            command,
            when: When::Matching(Arc::new(predicate)),
            action,
        }
    }

    fn applies(&self, attempt: &Attempt<'_>) -> bool {
        self.command == attempt.command
            && match &self.when {
                When::Nth(n) => *n == attempt.nth,
                When::Every => true,
                When::Matching(p) => p(attempt),
            }
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = match &self.when {
            When::Nth(n) => format!("#{n}"),
            When::Every => "every".to_owned(),
            When::Matching(_) => "matching".to_owned(),
        };
        write!(f, "Fault({:?} {when}: {:?})", self.command, self.action)
    }
}

/// The faults of a running [`TestServer`](super::TestServer), changeable at any time; a
/// change applies to the next command. Cloning gives another handle on the same set.
#[derive(Clone, Default, Debug)]
pub struct Faults {
    inner: Arc<Mutex<State>>,
}

#[derive(Default, Debug)]
struct State {
    faults: Vec<Fault>,
    counts: [usize; 4],
}

/// What the faults decided for one attempt.
#[derive(Default)]
pub(super) struct Decision {
    pub(super) delay: Duration,
    pub(super) reply: Option<Reply>,
    pub(super) drop_in_data: bool,
}

impl Faults {
    /// Adds a fault.
    pub fn add(&self, fault: Fault) -> &Faults {
        self.lock().faults.push(fault);
        self
    }

    /// Answers the `nth` MAIL FROM (from 1, over all connections) with `reply`.
    pub fn on_mail(&self, nth: usize, reply: Reply) -> &Faults {
        self.add(Fault::nth(Command::Mail, nth, Action::Reply(reply)))
    }

    /// Answers the `nth` RCPT TO with `reply`.
    pub fn on_rcpt(&self, nth: usize, reply: Reply) -> &Faults {
        self.add(Fault::nth(Command::Rcpt, nth, Action::Reply(reply)))
    }

    /// Answers the `nth` message with `reply`; it is not recorded.
    pub fn on_data(&self, nth: usize, reply: Reply) -> &Faults {
        self.add(Fault::nth(Command::Data, nth, Action::Reply(reply)))
    }

    /// Closes the connection, without a reply, at the `nth` `command`.
    pub fn drop_at(&self, command: Command, nth: usize) -> &Faults {
        self.add(Fault::nth(command, nth, Action::Reply(Reply::disconnect())))
    }

    /// Closes the connection in the middle of the `nth` message body.
    pub fn drop_in_data(&self, nth: usize) -> &Faults {
        self.add(Fault::nth(Command::Data, nth, Action::DropInData))
    }

    /// Delays the reply to every `command` by `delay`.
    pub fn delay(&self, command: Command, delay: Duration) -> &Faults {
        self.add(Fault::every(command, Action::Delay(delay)))
    }

    /// How many faults are set (a fault for the `nth` attempt stays after it fired).
    pub fn len(&self) -> usize {
        self.lock().faults.len()
    }

    /// Whether no fault is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every fault (the counts of commands go on).
    pub fn clear(&self) {
        self.lock().faults.clear();
    }

    /// Adds a fault for the `nth` attempt of `command` from now on (1 is the next one,
    /// whatever came before), as a client of a running server means "the next MAIL".
    pub fn add_from_now(&self, command: Command, nth: usize, action: Action) -> &Faults {
        let mut state = self.lock();
        let at = state.counts[command as usize] + nth;
        state.faults.push(Fault::nth(command, at, action));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt of `command` and decides what happens to it. Delays add up; the first
    /// reply wins.
    pub(super) fn decide(
        &self,
        command: Command,
        argument: Option<&str>,
        session: &Session,
    ) -> Decision {
        let mut state = self.lock();
        let count = &mut state.counts[command as usize];
        *count += 1;
        let attempt = Attempt {
            command,
            nth: *count,
            argument,
            session,
        };
        let mut decision = Decision::default();
        for fault in state.faults.iter().filter(|f| f.applies(&attempt)) {
            match &fault.action {
                Action::Delay(d) => decision.delay += *d,
                Action::Reply(r) if decision.reply.is_none() => decision.reply = Some(r.clone()),
                Action::Reply(_) => {}
                Action::DropInData => decision.drop_in_data = true,
            }
        }
        decision
    }
}
