//! Hands out the run's transactions: as fast as connections ask (closed loop), or on a schedule
//! of `rate` per second (open loop) released by a pacer thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How often the pacer releases the transactions that have come due: finer than tokio's 1 ms
/// timer, so that an open-loop run does not send in 1 ms bursts, but not so fine that the
/// pacer's own wake-ups (it shares the generator's core) cost more than the messages. At
/// 27,300 msg/s against smtpd, 100 us kept the generator at 93 % CPU (33.9 us/msg) and left
/// its queueing in the latencies; 250 us takes it to 85 % (31 us/msg), and each due message
/// waits at most 250 us for release (charged to the server's latency, the same for every peer).
const PACER_TICK: Duration = Duration::from_micros(250);

/// The start the schedule gives the first transaction: room to open the connections first.
const PACER_GRACE: Duration = Duration::from_millis(20);

/// One transaction to run, and when it was due (latency is measured from there).
pub struct Slot {
    pub start: Instant,
}

pub struct Slots {
    total: u64,
    next: AtomicU64,
    failures: AtomicU64,
    max_failures: u64,
    stopped: Arc<AtomicBool>,
    deadline: Instant,
    /// When the run (or its schedule) began.
    pub t0: Instant,
    pace: Option<Pace>,
}

struct Pace {
    rate: f64,
    due: Arc<Semaphore>,
}

impl Slots {
    /// `total` transactions, started within `duration`, at `rate` per second if given.
    pub fn new(
        total: u64,
        duration: Duration,
        max_failures: u64,
        rate: Option<f64>,
        waiters: usize,
    ) -> Self {
        let stopped = Arc::new(AtomicBool::new(false));
        let now = Instant::now();
        let pace = rate.map(|rate| {
            let due = Arc::new(Semaphore::new(0));
            let t0 = now + PACER_GRACE;
            let (sem, stop) = (due.clone(), stopped.clone());
            let deadline = t0 + duration;
            thread::spawn(move || pacer(t0, deadline, rate, total, waiters, &sem, &stop));
            Pace { rate, due }
        });
        let t0 = if pace.is_some() {
            now + PACER_GRACE
        } else {
            now
        };
        Slots {
            total,
            next: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            max_failures,
            stopped,
            deadline: t0 + duration,
            t0,
            pace,
        }
    }

    /// Whether the run has started everything it will.
    pub fn done(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
            || self.next.load(Ordering::Relaxed) >= self.total
            || Instant::now() >= self.deadline
    }

    /// Whether transactions follow a schedule (open loop).
    pub fn paced(&self) -> bool {
        self.pace.is_some()
    }

    /// The next transaction, once it is due; `None` when the run is over.
    pub async fn take(&self) -> Option<Slot> {
        match &self.pace {
            None => self.take_now(),
            Some(p) => {
                if self.stopped.load(Ordering::Relaxed) {
                    return None;
                }
                p.due.acquire().await.ok()?.forget();
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                if i >= self.total
                    || self.stopped.load(Ordering::Relaxed)
                    || Instant::now() >= self.deadline
                {
                    return None;
                }
                Some(Slot {
                    start: self.t0 + Duration::from_secs_f64(i as f64 / p.rate),
                })
            }
        }
    }

    /// The next transaction in a closed loop, starting now.
    pub fn take_now(&self) -> Option<Slot> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.total).then_some(Slot { start: now })
    }

    /// Counts a failed transaction; past `max_failures` the run stops.
    pub fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_failures {
            self.stop();
        }
    }

    /// Ends the run: no transaction starts after this.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(p) = &self.pace {
            p.due.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Releases the transactions that have come due, every `PACER_TICK`, then enough permits for
/// every waiting connection to see that the run is over.
fn pacer(
    t0: Instant,
    deadline: Instant,
    rate: f64,
    total: u64,
    waiters: usize,
    due: &Semaphore,
    stopped: &AtomicBool,
) {
    let mut released = 0u64;
    while released < total && !stopped.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= t0 {
            let should = ((now - t0).as_secs_f64() * rate) as u64 + 1;
            let should = should.min(total);
            if should > released {
                due.add_permits((should - released) as usize);
                released = should;
            }
        }
        thread::sleep(PACER_TICK);
    }
    due.add_permits(waiters + 1);
}
