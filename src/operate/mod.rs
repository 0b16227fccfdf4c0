//! Running smtpd in production: the metrics, health and readiness endpoints, log format, drain.
