//! The end-to-end tests, one module per subject, in one binary (a test binary per file would
//! link tokio and rustls 35 times). Shared fixtures are in `support`.

mod support;

mod adversarial_clients;
mod adversarial_framing;
mod adversarial_logs;
mod adversarial_overlong;
mod adversarial_starttls;
mod auth_clients;
mod auth_dialogues;
mod auth_exchange;
mod auth_limiter;
mod auth_secrecy;
mod bench_tools;
mod chunking;
mod dsn;
mod engine_commands;
mod engine_data;
mod engine_lifecycle;
mod engine_limits;
mod enhanced_codes;
mod example_custom_mechanism;
mod example_relay;
mod governance;
mod handlers_relay;
mod interop_clients;
mod jetstream;
mod lmtp;
mod macros;
mod proxy_protocol;
mod sasl_cram;
mod sasl_external;
mod sasl_oauth;
mod sasl_scram;
mod scale_out;
mod smoke;
mod streaming;
mod tls;
mod tls_interop;
mod unix_socket;
