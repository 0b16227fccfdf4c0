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

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

/// Where the server is in its life, as the health endpoints report it.
#[derive(Clone, Default)]
pub struct Status(Arc<AtomicU8>);

impl Status {
    /// The listeners are bound and the server accepts.
    pub fn serving(&self) {
        self.0.store(SERVING, Ordering::Relaxed);
    }

    /// A drain has begun: health checks fail from now on.
    pub fn draining(&self) {
        self.0.store(DRAINING, Ordering::Relaxed);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
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
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint failed");
        }
    });
    Ok(bound)
}

async fn metrics(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}

async fn healthz(State(status): State<Status>) -> (StatusCode, &'static str) {
    match status.get() {
        DRAINING => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        _ => (StatusCode::OK, "ok\n"),
    }
}

async fn readyz(State(status): State<Status>) -> (StatusCode, &'static str) {
    match status.get() {
        SERVING => (StatusCode::OK, "ready\n"),
        STARTING => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
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
