//! A run's figures, and its JSON line.

use std::fmt::Write;
use std::time::Duration;

use crate::cli::Args;
use crate::procstat::TICK_SECS;
use crate::session::Tally;

pub struct Run {
    latencies: Vec<u64>,
    pub failures: u64,
    pub error: Option<String>,
    resumed: u64,
    unpipelined: u64,
    elapsed: Duration,
    rate: Option<f64>,
    gen_ticks: Option<u64>,
    server_ticks: Option<u64>,
    server_rss_kib: Option<u64>,
    message_bytes: usize,
}

impl Run {
    pub fn new(
        tallies: Vec<Tally>,
        elapsed: Duration,
        rate: Option<f64>,
        gen_ticks: Option<u64>,
        server_ticks: Option<u64>,
        server_rss_kib: Option<u64>,
        message_bytes: usize,
    ) -> Self {
        let mut latencies = Vec::with_capacity(tallies.iter().map(|t| t.latencies.len()).sum());
        let (mut failures, mut error, mut resumed, mut unpipelined) = (0, None, 0, 0);
        for t in tallies {
            latencies.extend_from_slice(&t.latencies);
            failures += t.failures;
            error = error.or(t.first_error);
            resumed += t.resumed;
            unpipelined += t.unpipelined;
        }
        latencies.sort_unstable();
        Run {
            latencies,
            failures,
            error,
            resumed,
            unpipelined,
            elapsed,
            rate,
            gen_ticks,
            server_ticks,
            server_rss_kib,
            message_bytes,
        }
    }

    /// Completed transactions per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        let i = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        self.latencies.get(i).map(|&ns| ns as f64 / 1e6)
    }

    /// The JSON line: `step` is a ramp step (0 for the ramp's saturation point).
    pub fn json(&self, args: &Args, step: Option<u32>) -> String {
        let done = self.latencies.len() as f64;
        let secs = self.elapsed.as_secs_f64();
        let per_unit_us = |ticks: Option<u64>| {
            ticks
                .filter(|_| done > 0.0)
                .map(|t| t as f64 * TICK_SECS * 1e6 / done)
        };
        let pct = |ticks: Option<u64>| ticks.map(|t| t as f64 * TICK_SECS * 100.0 / secs);
        let mut j = Json::default();
        j.str("label", &args.label);
        j.str("workload", args.workload.name());
        j.str(
            "unit",
            if args.workload.sends_mail() {
                "msg"
            } else {
                "conn"
            },
        );
        j.bool("pipeline", args.pipeline && self.unpipelined == 0);
        j.bool("resume", args.resume);
        j.num("concurrency", Some(args.concurrency as f64));
        j.num("size", Some(self.message_bytes as f64));
        j.num("rate_offered", self.rate);
        if let Some(s) = step {
            j.num("ramp_step", Some(f64::from(s)));
        }
        j.num("count", Some(done));
        j.num("failures", Some(self.failures as f64));
        j.num("elapsed_s", Some(secs));
        j.num("throughput", Some(self.throughput()));
        if args.workload.sends_mail() {
            j.num(
                "mib_s",
                Some(self.throughput() * self.message_bytes as f64 / (1 << 20) as f64),
            );
        }
        j.num("p50_ms", self.percentile_ms(0.50));
        j.num("p90_ms", self.percentile_ms(0.90));
        j.num("p99_ms", self.percentile_ms(0.99));
        j.num("max_ms", self.percentile_ms(1.0));
        j.num("gen_cpu_pct", pct(self.gen_ticks));
        j.num("gen_us_per_unit", per_unit_us(self.gen_ticks));
        j.num("server_pid", args.server_pid.map(f64::from));
        j.num("server_cpu_pct", pct(self.server_ticks));
        j.num("server_us_per_unit", per_unit_us(self.server_ticks));
        j.num(
            "server_rss_mib",
            self.server_rss_kib.map(|k| k as f64 / 1024.0),
        );
        if args.workload.tls() {
            j.num("tls_resumed", Some(self.resumed as f64));
        }
        if let Some(e) = &self.error {
            j.str("first_error", e);
        }
        j.finish()
    }
}

/// Just enough JSON writing for one flat object.
#[derive(Default)]
struct Json(String);

impl Json {
    fn key(&mut self, k: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        let _ = write!(self.0, "\"{k}\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push('"');
        for c in v.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
    }

    fn num(&mut self, k: &str, v: Option<f64>) {
        self.key(k);
        match v {
            Some(x) if x.is_finite() => {
                let _ = if x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(self.0, "{x:.0}")
                } else {
                    write!(self.0, "{x:.4}")
                };
            }
            _ => self.0.push_str("null"),
        }
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}
