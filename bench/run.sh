#!/usr/bin/env bash
# One command for the benchmark of issue 7: builds smtpd in release mode, installs the peers that
# are missing (as root, unless --no-install), runs every workload against smtpd and each installed
# peer, and prints the harness's tables followed by bench/report.py's ratios and targets.
#
#   bench/run.sh                         # everything, 5 reps
#   bench/run.sh --quick                 # smoke test: counts/10, 1 rep
#   bench/run.sh --reps 3 --peers smtp-sink,go-smtp --workloads a,c,d,t,mem
#   bench/run.sh --no-install            # use only what is installed
#
# Workloads: a b a10 b10 c c200 d src srcc come from the shared harness (../shared/bench, see its
# README); this script adds
#   t    2000 x (connect, EHLO, STARTTLS, TLS 1.3 handshake, EHLO, AUTH PLAIN, QUIT), 20 at a
#        time, OpenSSL client (bench/tls_conns.py), ECDSA P-256 certificate; smtpd against go-smtp
#        built with the same TLS setup (bench/peers/gosmtp_tls)
#   mem  smtpd only: 10,000 idle connections after EHLO (RSS), and one 100 MiB message through
#        the sink and the Maildir handler (peak RSS growth), bench/idle_and_large.py
#
# Server pinned to CPU 0, client to CPU 1, a fresh server per workload and rep. Everything stays
# on loopback; every client run has a time limit and servers are stopped by their process group.
# Results: $BENCH_WORK/results/<timestamp>/ (results.jsonl, memory.jsonl, report.md, logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench}
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/smtpbench}
PORT=${PORT:-2525}
PY=${PYTHON:-python3}
INSTALL=1
REPS=5
SCALE=1
PEERS=""
WORKLOADS="a,b,a10,b10,c,c200,d,src,srcc,t,mem"
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) INSTALL=0; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --quick) SCALE=10; REPS=1; shift ;;
    --mult) PASS+=(--mult "$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$HARNESS/run_peers.sh" ] || { echo "harness not found at $HARNESS (set HARNESS=)" >&2; exit 2; }

if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
  need=()
  command -v smtp-sink >/dev/null || need+=(postfix)
  command -v go >/dev/null || need+=(golang-go golang-github-emersion-go-smtp-dev golang-github-emersion-go-sasl-dev)
  command -v node >/dev/null || need+=(nodejs npm)
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  fi
  "$PY" -c 'import aiosmtpd' 2>/dev/null || "$PY" -m pip install -q aiosmtpd==1.4.6
fi

# Peers that can run here (the harness builds go-smtp and installs the node peer itself).
if [ -z "$PEERS" ]; then
  avail=()
  "$PY" -c 'import aiosmtpd' 2>/dev/null && avail+=(aiosmtpd-auth)
  command -v node >/dev/null && avail+=(smtp-server)
  command -v go >/dev/null && avail+=(go-smtp)
  command -v smtp-sink >/dev/null && avail+=(smtp-sink)
  PEERS=$(IFS=,; echo "${avail[*]:-}")
fi
has() { [[ ",$1," == *",$2,"* ]]; }

cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin smtpd
BIN="$ROOT/target/release/smtpd"
SMTPD="$BIN --listen 127.0.0.1:{PORT} --hostname bench.local --max-connections 0 --max-connections-per-ip 0"

OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
MEM="$OUT/memory.jsonl"
echo "== smtpd $("$BIN" --version) against: ${PEERS:-no peers}; results in $OUT"

# 1. The shared harness's workloads, smtpd as its custom server.
harness=()
for w in ${WORKLOADS//,/ }; do
  case $w in t|mem) ;; *) harness+=("$w") ;; esac
done
if [ ${#harness[@]} -gt 0 ]; then
  args=(--custom smtpd "$SMTPD --handler sink --auth-user user:pass --no-auth-require-tls"
        --reps "$REPS" --port "$PORT" --out "$OUT" --workloads "$(IFS=,; echo "${harness[*]}")")
  [ -n "$PEERS" ] && args+=(--peers "$PEERS")
  [ "$SCALE" = 10 ] && args+=(--quick)
  RUST_LOG=error "$HARNESS/run_peers.sh" "${args[@]}" "${PASS[@]+"${PASS[@]}"}"
fi

# 2. This project's workloads: same pinning, fresh server per run, stopped by process group,
# and the same log level as in the harness's runs (go-smtp's peer logs nothing).
export RUST_LOG=error
port_hex=$(printf '%04X' "$PORT")
listening() { grep -qE "^ *[0-9]+: [0-9A-F]+:$port_hex [0-9A-F]+:0000 0A" /proc/net/tcp 2>/dev/null; }
SPID=""
start_server() {  # name, command
  if listening; then echo "port $PORT already in use" >&2; exit 1; fi
  setsid taskset -c 0 bash -c "ulimit -n 65536; exec ${2//\{PORT\}/$PORT}" >>"$OUT/$1.server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do
    listening && return 0
    kill -0 "$SPID" 2>/dev/null || { echo "$1 died on start, see $OUT/$1.server.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$1 did not listen on $PORT within 10 s" >&2; stop_server; return 1
}
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -TERM -- "-$SPID" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
  for _ in $(seq 1 50); do listening || break; sleep 0.1; done
}
trap 'stop_server' EXIT INT TERM
n() { echo $(( $1 / SCALE )); }

if has "$WORKLOADS" t; then
  TLS="$WORK/tls"
  if [ ! -s "$TLS/cert.pem" ]; then
    mkdir -p "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
      -subj /CN=localhost -addext subjectAltName=DNS:localhost \
      -keyout "$TLS/key.pem" -out "$TLS/cert.pem" 2>/dev/null
  fi
  declare -A TCMD=([smtpd]="$SMTPD --handler sink --auth-user user:pass --tls-cert $TLS/cert.pem --tls-key $TLS/key.pem")
  if has "$PEERS" go-smtp; then
    if [ ! -x "$WORK/gosink-tls" ]; then
      echo "building the go-smtp TLS peer (offline, Debian packages)"
      (cd "$ROOT/bench/peers/gosmtp_tls" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
        GOPROXY=off GOCACHE="$WORK/gocache" go build -o "$WORK/gosink-tls" main.go)
    fi
    TCMD[go-smtp]="$WORK/gosink-tls -addr 127.0.0.1:{PORT} -cert $TLS/cert.pem -key $TLS/key.pem"
  fi
  TLSCLI="$PY $ROOT/bench/tls_conns.py 127.0.0.1:$PORT --cafile $TLS/cert.pem -c 20"
  for p in smtpd go-smtp; do
    [ -n "${TCMD[$p]:-}" ] || continue
    for r in $(seq 1 "$REPS"); do
      start_server "$p" "${TCMD[$p]}" || continue
      [ "$r" = 1 ] && echo "t: $p negotiates $($TLSCLI -n 1 --show | sed -n 1p)" | tee -a "$OUT/meta.txt"
      timeout 120 taskset -c 1 $TLSCLI -n "$(n 200)" >/dev/null || true   # warm-up, unmeasured
      timeout 600 taskset -c 1 "$PY" "$HARNESS/smtpbench.py" "127.0.0.1:$PORT" --json \
        --server-pid auto --time-limit 300 --label "$p/t/$r" -n "$(n 2000)" \
        --external "$TLSCLI -n $(n 2000)" >>"$RES" || true
      stop_server
      tail -n1 "$RES" | "$PY" "$HARNESS/bench_table.py" --line || true
    done
  done
fi

if has "$WORKLOADS" mem; then
  MEMCLI="timeout 600 taskset -c 1 $PY $ROOT/bench/idle_and_large.py --port $PORT"
  BIG="$SMTPD --size-limit 0"   # the default limit (32 MiB) would refuse the 100 MiB message
  for r in $(seq 1 "$REPS"); do
    start_server smtpd "$SMTPD --handler sink" &&
      { $MEMCLI --pid "$SPID" --json "smtpd/idle/$r" idle --count "$(n 10000)" >>"$MEM" || true; stop_server; }
    start_server smtpd "$BIG --handler sink" &&
      { $MEMCLI --pid "$SPID" --json "smtpd/large-sink/$r" large --mib "$(n 100)" >>"$MEM" || true; stop_server; }
    box=$(mktemp -d "$WORK/maildir.XXXXXX")
    start_server smtpd "$BIG --handler maildir:$box" &&
      { $MEMCLI --pid "$SPID" --json "smtpd/large-maildir/$r" large --mib "$(n 100)" >>"$MEM" || true; stop_server; }
    rm -rf "$box"
  done
fi

"$PY" "$ROOT/bench/report.py" "$OUT" | tee "$OUT/report.md"
