#!/usr/bin/env bash
# Soak test: SECONDS (default 60) of CLIENTS (default 32) concurrent loopback clients
# delivering messages with AUTH, pipelining and aborted sessions against a server in a child
# process. Prints messages, duration, server RSS at start, after warm-up and at the end, and
# failures; exits non-zero on a lost or duplicated message, a failed session, or memory that
# keeps growing after warm-up. See examples/soak.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example soak
exec target/release/examples/soak "${1:-60}" "${2:-32}"
