#!/usr/bin/env bash
# One command for the benchmark: builds smtpd in release mode, installs the peers that are
# missing (unless --no-install), and runs the shared harness (../shared/bench) with smtpd and
# every installed peer on identical workloads. Prints the tables (msg/s, latency, server CPU
# per message, peak RSS); results land in $BENCH_WORK/results/<timestamp>/.
#
#   bench/run.sh                         # all workloads, 5 reps, all peers
#   bench/run.sh --quick                 # smoke test: counts/10, 1 rep
#   bench/run.sh --peers smtp-sink,go-smtp --workloads a,c,d --reps 3
#   bench/run.sh --no-install            # use only what is installed
#
# Everything stays on loopback; each run is bounded by the harness (time limits, fresh server
# per workload and rep, servers stopped by PID).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench}
INSTALL=1
REPS=5
ARGS=()
PEERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) INSTALL=0; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ -x "$HARNESS/run_peers.sh" ] || { echo "harness not found at $HARNESS (set HARNESS=)" >&2; exit 2; }

if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
  need=()
  command -v smtp-sink >/dev/null || need+=(postfix)
  command -v go >/dev/null || need+=(golang-go golang-github-emersion-go-smtp-dev golang-github-emersion-go-sasl-dev)
  command -v node >/dev/null || need+=(nodejs)
  command -v swaks >/dev/null || need+=(swaks)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  fi
  python3 -c 'import aiosmtpd' 2>/dev/null || pip install -q aiosmtpd==1.4.6
fi

# Peers that can run here (the harness builds go-smtp and installs the node peer itself).
if [ -z "$PEERS" ]; then
  avail=()
  python3 -c 'import aiosmtpd' 2>/dev/null && avail+=(aiosmtpd-auth)
  command -v node >/dev/null && avail+=(smtp-server)
  command -v go >/dev/null && avail+=(go-smtp)
  command -v smtp-sink >/dev/null && avail+=(smtp-sink)
  PEERS=$(IFS=,; echo "${avail[*]:-}")
fi

cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin smtpd
BIN="$ROOT/target/release/smtpd"
SMTPD="$BIN --listen 127.0.0.1:{PORT} --handler sink --auth-user user:pass --no-auth-require-tls \
--max-connections 0 --max-connections-per-ip 0 --hostname bench.local"

echo "== smtpd $("$BIN" --version) against: ${PEERS:-no peers}"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
[ -n "$PEERS" ] && ARGS+=(--peers "$PEERS")
exec env RUST_LOG=error "$HARNESS/run_peers.sh" --custom smtpd "$SMTPD" --reps "$REPS" "${ARGS[@]}"
