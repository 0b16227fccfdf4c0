//! Running smtpd in production: the metrics, health and readiness endpoints, log format, drain.
//!
//! `GET /metrics` is the Prometheus text exposition of `metrics-exporter-prometheus`;
//! `GET /healthz` answers 200 until a drain begins, then 503, so that a load balancer's health
//! check (HAProxy's `option httpchk`) takes the instance out of rotation while it still
//! accepts; `GET /readyz` answers 200 only while the server accepts and is not draining.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::cli::LogFormat;

/// Where the server is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Starting,
    Serving,
    Draining,
}

/// Where the server is in its life, as the health endpoints report it; shared with the
/// signal handling, which moves it on.
#[derive(Clone, Default)]
pub struct Status(Arc<AtomicU8>);

impl Status {
    /// The listeners are bound and the server accepts.
    pub fn serving(&self) {
        self.0.store(Phase::Serving as u8, Ordering::Relaxed);
    }

    /// A drain has begun: health checks fail from now on.
    pub fn draining(&self) {
        self.0.store(Phase::Draining as u8, Ordering::Relaxed);
    }

    fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }
}

/// Histogram buckets (upper bounds), so that Prometheus gets histograms, which aggregate
/// across instances, rather than summaries.
const BUCKETS: &[(&str, &[f64])] = &[
    (
        "smtpd_message_size_bytes",
        &[
            1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
            67108864.0,
        ],
    ),
    (
        "smtpd_message_recipients",
        &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
    ),
    (
        "smtpd_tls_handshake_seconds",
        &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
    ),
    (
        "smtpd_session_seconds",
        &[0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0],
    ),
];

/// How often the exporter's histograms are compacted when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder (before the server starts, so that the server's metrics
/// reach it) and serves the endpoints on `addr`. Returns the bound address.
pub async fn serve_endpoints(addr: SocketAddr, status: Status) -> Result<SocketAddr, String> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|e| e.to_string())?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(handle)
        .merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .with_state(status),
        );
    crate::http::serve(addr, app, "the metrics endpoint").await
}

async fn metrics(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}

async fn healthz(State(status): State<Status>) -> (StatusCode, &'static str) {
    match status.get() {
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        Phase::Starting | Phase::Serving => (StatusCode::OK, "ok\n"),
    }
}

async fn readyz(State(status): State<Status>) -> (StatusCode, &'static str) {
    match status.get() {
        Phase::Serving => (StatusCode::OK, "ready\n"),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
    }
}

/// Sets up logging to stderr in `format`, at `default_level` unless `RUST_LOG` says otherwise.
/// In JSON each line carries its spans' fields: the `smtp` span's `session` names the
/// connection, as `Session::id` does.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}
