//! What one connection may use: messages and bytes per session, the slowest DATA transfer
//! tolerated, and its place in the per-IP limit when its client is known only from a PROXY
//! header.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::{Duration, Instant};

use crate::auth::IpPrefix;
use crate::config::{Config, MinDataRate};
use crate::metrics::{self, Rejection};
use crate::proto::Reply;

/// The budgets of one connection.
#[derive(Default)]
pub(crate) struct Budget {
    messages: usize,
    bytes: u64,
    /// Set on a trusted proxy's connection: the per-IP limit is applied to the client named
    /// in the PROXY header or by XCLIENT instead of the proxy.
    proxied: Option<Arc<Limits>>,
    slot: Option<Slot>,
}

impl Budget {
    pub(crate) fn count_proxied_client(&mut self, limits: Arc<Limits>) {
        self.proxied = Some(limits);
    }

    /// Takes the proxied client's place in the per-IP limit, or says why it is refused. A
    /// second client (XCLIENT after a PROXY header, or a second XCLIENT) takes the place of
    /// the first.
    pub(crate) fn admit_proxied(&mut self, ip: IpAddr, config: &Config) -> Result<(), Reply> {
        if let Some(limits) = &self.proxied {
            self.slot = None;
            let slot = limits
                .admit_ip(ip, config)
                .map_err(|t| Reply::new(421, t))?;
            self.slot = Some(slot);
        }
        Ok(())
    }

    /// Counts a message of `size` bytes, answered already; returns the `421` that ends the
    /// session when a per-session cap is now reached.
    pub(crate) fn message_done(&mut self, size: usize, config: &Config) -> Option<Reply> {
        self.messages += 1;
        self.bytes += size as u64;
        let text = if config
            .max_messages_per_connection
            .is_some_and(|max| self.messages >= max)
        {
            "too many messages in one session"
        } else if config
            .max_bytes_per_connection
            .is_some_and(|max| self.bytes >= max)
        {
            "too much data in one session"
        } else {
            return None;
        };
        Some(Reply::new(
            421,
            format!("4.7.0 {} Error: {text}", config.hostname),
        ))
    }
}

/// The server's connection counts: all, and per client address.
#[derive(Default)]
pub(crate) struct Limits {
    active: AtomicUsize,
    /// Connections per client prefix (`Config::client_prefixes`).
    per_ip: Mutex<HashMap<IpPrefix, usize>>,
}

/// Releases a connection's place in the limits when it ends.
pub(crate) struct Slot {
    limits: Arc<Limits>,
    ip: Option<IpPrefix>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else {
            self.limits.active.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

impl Limits {
    /// Takes a place for a client, or says which limit refuses it. Both slots release their
    /// place when dropped.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &Config,
    ) -> Result<[Slot; 2], &'static str> {
        let slot = self.admit_any(config)?;
        Ok([slot, self.admit_ip(ip, config)?])
    }

    /// Takes a place under `max_connections` only.
    pub(crate) fn admit_any(self: &Arc<Self>, config: &Config) -> Result<Slot, &'static str> {
        let active = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Slot {
            limits: self.clone(),
            ip: None,
        };
        if config.max_connections.is_some_and(|max| active > max) {
            metrics::connection_rejected(Rejection::MaxConnections);
            return Err("4.3.2 Too many connections, try again later");
        }
        Ok(slot)
    }

    /// Takes a place under `max_connections_per_ip` for `ip`.
    pub(crate) fn admit_ip(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &Config,
    ) -> Result<Slot, &'static str> {
        let ip = config.client_prefixes.prefix_of(ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = per_ip.entry(ip).or_insert(0);
        *from_ip += 1;
        let from_ip = *from_ip;
        drop(per_ip);
        let slot = Slot {
            limits: self.clone(),
            ip: Some(ip),
        };
        if config
            .max_connections_per_ip
            .is_some_and(|max| from_ip > max)
        {
            metrics::connection_rejected(Rejection::MaxConnectionsPerIp);
            return Err("4.7.0 Too many connections from your address");
        }
        Ok(slot)
    }
}

/// The minimum rate of one DATA transfer (Postfix's `smtpd_min_data_rate`).
pub(crate) struct DataRate {
    start: Instant,
    received: u64,
    min: MinDataRate,
}

impl DataRate {
    pub(crate) fn new(min: MinDataRate) -> DataRate {
        DataRate {
            start: Instant::now(),
            received: 0,
            min,
        }
    }

    pub(crate) fn received(&mut self, n: usize) {
        self.received += n as u64;
    }

    /// When the average rate since the start falls below the minimum, if nothing more
    /// arrives; never before the grace period ends.
    pub(crate) fn deadline(&self) -> Instant {
        let earned = match self.min.bytes_per_second {
            0 => Duration::MAX,
            bps => Duration::from_secs_f64(self.received as f64 / bps as f64),
        };
        self.start
            .checked_add(earned.max(self.min.grace))
            .unwrap_or_else(|| self.start + Duration::from_secs(86400 * 365))
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_grace_or_what_the_bytes_earned() {
        let table: &[(u64, u64, u64, u64)] = &[
            // (bytes per second, grace s, bytes received, deadline s after the start)
            (100, 5, 0, 5),
            (100, 5, 499, 5),
            (100, 5, 1000, 10),
            (500, 10, 60_000, 120),
        ];
        for &(bps, grace, received, after) in table {
            let mut rate = DataRate::new(MinDataRate {
                bytes_per_second: bps,
                grace: Duration::from_secs(grace),
            });
            rate.received(received as usize);
            assert_eq!(
                rate.deadline() - rate.start,
                Duration::from_secs(after),
                "{bps} B/s, {received} B"
            );
        }
    }

    #[test]
    fn session_caps() {
        let config = Config {
            hostname: "mx.example".into(),
            max_messages_per_connection: Some(2),
            max_bytes_per_connection: Some(1000),
            ..Config::default()
        };
        let mut budget = Budget::default();
        assert_eq!(budget.message_done(10, &config), None);
        assert_eq!(
            budget.message_done(10, &config).map(|r| r.to_string()),
            Some("421 4.7.0 mx.example Error: too many messages in one session".into())
        );
        let mut budget = Budget::default();
        assert_eq!(
            budget.message_done(1000, &config).map(|r| r.to_string()),
            Some("421 4.7.0 mx.example Error: too much data in one session".into())
        );
    }
}
