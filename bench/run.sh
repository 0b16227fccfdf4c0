#!/usr/bin/env bash
# The benchmark of issue 19, from a clone of this repository alone (see bench/README.md).
#
#   bench/run.sh                               # every workload x peer, 5 reps
#   bench/run.sh --quick                       # smoke test: tiny counts, 1 rep, smtpd (+ smtp-sink)
#   bench/run.sh --reps 3 --workloads keepalive,keepalive-pipe --peers smtpd,smtp-sink,go-smtp
#   bench/run.sh --no-install                  # use only what is already installed
#   bench/run.sh --cert rsa                    # TLS rows with an RSA-2048 certificate (default: ec)
#
# As root it installs what is missing (postfix for smtp-sink, not configured and not started;
# Go and Debian's go-smtp/go-sasl; node and npm; aiosmtpd; nats-server for the peer
# `smtpd-jetstream`, smtpd handing each message to JetStream before `250`; `smtpd-metrics` is
# smtpd with its Prometheus recorder on; `floor` is bench/loadgen's canned-reply server, the
# least any tokio server can cost), then builds smtpd, bench/loadgen and
# the go-smtp peer, and installs the node peer under $BENCH_WORK. Each server runs pinned to
# CPU 0 and the generator to CPU 1, with a fresh server per workload, peer and rep. Everything
# stays on 127.0.0.1; every run is bounded in count and time; servers are stopped by process
# group. Results: $BENCH_WORK/results/<timestamp>/ (results.jsonl, report.md, server logs).
# The exit status is non-zero if any run failed.
set -euo pipefail
# All in one function, so that bash has read the whole script before it runs any of it.
main() {
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/smtpbench}
PORT=${PORT:-2525}
TLS_PORT=${TLS_PORT:-2465}
PY=${PYTHON:-python3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ALL_WORKLOADS=keepalive,keepalive-pipe,keepalive-auth,p80,ramp,conn-per-msg,conn-auth,big,starttls-auth,starttls-resume,implicit-tls-auth,scram,idle,syscalls
ALL_PEERS=smtpd,smtpd-metrics,smtpd-jetstream,floor,smtp-sink,go-smtp,smtp-server,aiosmtpd
INSTALL=1 QUICK=0 REPS=5 WORKLOADS=$ALL_WORKLOADS PEERS="" OUT="" CERT=ec
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; REPS=1; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --cert) CERT=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
has() { [[ ",$1," == *",$2,"* ]]; }
for w in ${WORKLOADS//,/ }; do has "$ALL_WORKLOADS" "$w" || { echo "unknown workload $w" >&2; exit 2; }; done
for p in ${PEERS//,/ }; do has "$ALL_PEERS" "$p" || { echo "unknown peer $p" >&2; exit 2; }; done
case $CERT in ec|rsa) ;; *) echo "--cert: ec or rsa, not $CERT" >&2; exit 2 ;; esac
[ -z "$PEERS" ] && [ "$QUICK" = 1 ] && PEERS=smtpd,smtp-sink
PEERS=${PEERS:-$ALL_PEERS}

# 1. What is missing, installed as root (the brief of issue 19 names these packages).
if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
  apt=()
  if has "$PEERS" smtp-sink && ! command -v smtp-sink >/dev/null; then apt+=(postfix); fi
  if has "$PEERS" go-smtp && { ! command -v go >/dev/null ||
      [ ! -d /usr/share/gocode/src/github.com/emersion/go-smtp ]; }; then
    apt+=(golang-go golang-github-emersion-go-smtp-dev golang-github-emersion-go-sasl-dev)
  fi
  # nodesource's nodejs ships npm and conflicts with Debian's npm: ask only for what is absent.
  if has "$PEERS" smtp-server; then
    command -v node >/dev/null || apt+=(nodejs)
    command -v npm >/dev/null || apt+=(npm)
  fi
  if has "$PEERS" smtpd-jetstream && ! command -v nats-server >/dev/null; then apt+=(nats-server); fi
  command -v openssl >/dev/null || apt+=(openssl)
  if has "$WORKLOADS" syscalls && ! command -v strace >/dev/null; then apt+=(strace); fi
  if [ ${#apt[@]} -gt 0 ]; then
    apt-get update -q
    # "No configuration": no main.cf, and postfix is not started (smtp-sink is all we use).
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt[@]}"
  fi
  if has "$PEERS" aiosmtpd && ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
    "$PY" -m pip install -q aiosmtpd==1.4.6
  fi
fi

# 2. The peers that can run here.
avail=(smtpd smtpd-metrics floor)
command -v nats-server >/dev/null && avail+=(smtpd-jetstream)
command -v smtp-sink >/dev/null && avail+=(smtp-sink)
[ -d /usr/share/gocode/src/github.com/emersion/go-smtp ] && command -v go >/dev/null && avail+=(go-smtp)
command -v node >/dev/null && command -v npm >/dev/null && avail+=(smtp-server)
"$PY" -c 'import aiosmtpd' 2>/dev/null && avail+=(aiosmtpd)
run_peers=()
for p in ${PEERS//,/ }; do
  if has "$(IFS=,; echo "${avail[*]}")" "$p"; then run_peers+=("$p")
  elif [ "$QUICK" = 1 ] && [ "$p" = smtp-sink ]; then :   # quick: smtp-sink only if installed
  else echo "peer $p is not installed: skipped" >&2; fi
done

RUN_PEERS=$(IFS=,; echo "${run_peers[*]}")

# 3. Builds: smtpd and the generator (release), the go peer, the node peer.
mkdir -p "$WORK"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin smtpd
CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --manifest-path "$ROOT/bench/loadgen/Cargo.toml"
SMTPD_BIN=$TARGET/release/smtpd
LOADGEN=$TARGET/release/loadgen
FLOOR=$TARGET/release/floor
if has "$RUN_PEERS" go-smtp; then
  (cd "$ROOT/bench/peers/gosmtp" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
    GOCACHE="$WORK/gocache" go build -o "$WORK/gosink" main.go)
fi
if has "$RUN_PEERS" smtp-server; then
  mkdir -p "$WORK/node"
  cp "$ROOT/bench/peers/node/package.json" "$ROOT/bench/peers/node/sink.js" "$WORK/node/"
  [ -d "$WORK/node/node_modules/smtp-server" ] ||
    (cd "$WORK/node" && npm install --silent --no-audit --no-fund >/dev/null)
fi

# 4. A CA and a server certificate signed by it (ECDSA P-256, or RSA-2048 with --cert rsa),
#    made fresh for each run.
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TLS=$OUT/tls
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=loadgen-ca -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
case $CERT in
  ec) leaf=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa) leaf=(-newkey rsa:2048) ;;
esac
openssl req "${leaf[@]}" -nodes -subj /CN=localhost \
  -keyout "$TLS/key.pem" -out "$TLS/req.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
openssl x509 -req -in "$TLS/req.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
  -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/cert.pem" 2>/dev/null

# 5. Servers: each peer's command per kind of workload (plain, tls, scram).
SMTPD="$SMTPD_BIN --listen 127.0.0.1:$PORT --hostname bench.local --handler sink --auth-user user:pass"
SMTPD+=" --max-connections 0 --max-connections-per-ip 0 --size-limit 0 --auth-rate-limit 0 --auth-failure-delay-ms 0"
server_cmd() {  # peer, kind -> the command, or nothing if the peer has no such server
  case "$1/$2" in
    smtpd/plain) echo "$SMTPD --no-auth-require-tls" ;;
    smtpd/scram) echo "$SMTPD --no-auth-require-tls --auth-mechanism SCRAM-SHA-256" ;;
    smtpd-metrics/plain) echo "$SMTPD --no-auth-require-tls --metrics-listen 127.0.0.1:0" ;;
    smtpd-jetstream/plain) echo "${SMTPD/--handler sink/--handler jetstream} --no-auth-require-tls --nats-url nats://127.0.0.1:$NATS_PORT --nats-stream BENCH --nats-subject bench.in" ;;
    smtpd/tls) echo "$SMTPD --tls-cert $TLS/cert.pem --tls-key $TLS/key.pem --implicit-tls-listen 127.0.0.1:$TLS_PORT" ;;
    floor/plain) echo "$FLOOR --addr 127.0.0.1:$PORT" ;;
    smtp-sink/plain) echo "smtp-sink -u nobody -m 4096 127.0.0.1:$PORT 1024" ;;
    go-smtp/plain) echo "$WORK/gosink -addr 127.0.0.1:$PORT" ;;
    go-smtp/tls) echo "$WORK/gosink -addr 127.0.0.1:$PORT -cert $TLS/cert.pem -key $TLS/key.pem -implicit-addr 127.0.0.1:$TLS_PORT -insecure-auth=false" ;;
    smtp-server/plain) echo "node $WORK/node/sink.js --port $PORT" ;;
    aiosmtpd/plain) echo "$PY $ROOT/bench/peers/aiosmtpd_sink.py --port $PORT" ;;
  esac
}
kind_of() {
  case $1 in
    starttls-auth|starttls-resume|implicit-tls-auth) echo tls ;;
    scram) echo scram ;;
    idle|syscalls) [ "$2" = smtpd ] && echo plain ;;   # memory, system calls: smtpd only
    keepalive|keepalive-pipe|conn-per-msg|big) [ "$1/$2" != big/floor ] && echo plain ;;
    # smtpd variants: the message workloads only; the floor: those and conn-auth
    conn-auth) [[ "$2" == smtpd-* ]] && return 1; echo plain ;;
    *) [[ "$2" == smtpd-* || "$2" == floor ]] && return 1; echo plain ;;
  esac
}

# 6. Counts. A run stops at its count or after DUR seconds, whichever comes first.
if [ "$QUICK" = 1 ]; then K=1000 KW=100 C=500 CW=20 T=200 DUR=10 BIGN=4 IDLE=200 RAMP="--rate 2000 --ramp-factor 2 --ramp-step-secs 0.2" P80S=0.5 SYSN=5000
else K=100000 KW=2000 C=20000 CW=500 T=5000 DUR=15 BIGN=100 IDLE=10000 RAMP="--rate 5000 --ramp-factor 1.25 --ramp-step-secs 1" P80S=5 SYSN=20000; fi
G="--concurrency 20 --duration $DUR --op-timeout 10"
args_of() {  # workload -> loadgen arguments (p80 is computed at run time)
  case $1 in
    keepalive) echo "keepalive -n $K --warmup $KW $G" ;;
    keepalive-pipe) echo "keepalive --pipeline -n $((K * 2)) --warmup $KW $G" ;;
    keepalive-auth) echo "keepalive-auth -n $K --warmup $KW $G" ;;
    ramp) echo "keepalive --ramp $RAMP --concurrency 50 --duration $DUR --op-timeout 10" ;;
    conn-per-msg) echo "conn-per-msg -n $C --warmup $CW $G" ;;
    conn-auth) echo "conn-auth -n $C --warmup $CW $G" ;;
    big) echo "big -n $BIGN --warmup 4 --concurrency 4 --duration $((DUR * 2)) --op-timeout 60" ;;
    starttls-auth) echo "starttls-auth --ca $TLS/ca.pem -n $T --warmup $CW $G" ;;
    starttls-resume) echo "starttls-auth --resume --ca $TLS/ca.pem -n $T --warmup $CW $G" ;;
    implicit-tls-auth) echo "implicit-tls-auth --ca $TLS/ca.pem -n $T --warmup $CW $G" ;;
    scram) echo "scram -n $T --warmup $CW $G" ;;
    # Warm-up 0, so that every message the traced server saw is counted.
    syscalls) echo "keepalive --pipeline -n $SYSN --warmup 0 $G" ;;
  esac
}

# 7. Server start and stop, by process group.
export RUST_LOG=error
listening() {  # [port]: whether something listens on 127.0.0.1:port (default $PORT)
  grep -qE "^ *[0-9]+: 0100007F:$(printf '%04X' "${1:-$PORT}") [0-9A-F]+:0000 0A" /proc/net/tcp 2>/dev/null
}
PIN_S="" PIN_G=""
if [ "$(nproc)" -ge 2 ]; then PIN_S="taskset -c 0" PIN_G="taskset -c 1"; fi
SPID=""
start_server() {  # name, command [, second port to wait for]
  if listening; then echo "port $PORT already in use" >&2; return 1; fi
  local also=${3:-$PORT}
  # shellcheck disable=SC2086  # the command is a word list on purpose
  setsid $PIN_S bash -c "ulimit -n 65536 2>/dev/null || ulimit -n 20000; exec $2" >>"$OUT/$1.server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do
    listening && listening "$also" && return 0
    kill -0 "$SPID" 2>/dev/null || { echo "$1 died on start, see $OUT/$1.server.log" >&2; SPID=""; return 1; }
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
trap 'stop_server; [ -z "$NPID" ] || kill -TERM -- "-$NPID" 2>/dev/null || true' EXIT INT TERM

# The JetStream peer: smtpd handing every message to a nats-server (pinned beside the
# generator; its CPU is not in the server's figure), fresh store for each run of the script.
NATS_PORT=${NATS_PORT:-4333}
NPID=""
if has "$RUN_PEERS" smtpd-jetstream; then
  rm -rf "$WORK/nats" && mkdir -p "$WORK/nats"
  setsid ${PIN_G:-} nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats/log" 2>&1 &
  NPID=$!
fi

RES=$OUT/results.jsonl
FAILED=0
fail() { echo "FAILED: $*" >&2; echo "$*" >>"$OUT/failures.txt"; FAILED=1; }
p80_rate() {  # peer -> 80 % of the median keepalive throughput measured so far, or nothing
  "$PY" - "$RES" "$1" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t = [r["throughput"] for r in rows if r["label"].split("/")[:2] == [sys.argv[2], "keepalive"]
     and not r["failures"] and r["count"]]
print(round(0.8 * statistics.median(t)) if t else "")
EOF
}
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -srm), $(nproc) CPUs"
  echo "smtpd: $("$SMTPD_BIN" --version)"; echo "peers: ${run_peers[*]}"
  echo "workloads: $WORKLOADS; reps: $REPS; quick: $QUICK; TLS certificate: $CERT"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"
echo "== results in $OUT (peers: ${run_peers[*]})"
touch "$RES"

# 8. The runs: rep, then workload, then peer, so that peers compared in a ratio ran close in time.
for rep in $(seq 1 "$REPS"); do
  for w in ${WORKLOADS//,/ }; do
    for p in "${run_peers[@]}"; do
      kind=$(kind_of "$w" "$p") || kind=""
      cmd=$(server_cmd "$p" "$kind")
      [ -n "$cmd" ] || continue
      if [ "$w" = idle ]; then
        start_server "$p" "$cmd" || { fail "$p/$w/$rep: server did not start"; continue; }
        timeout 300 $PIN_G "$PY" "$ROOT/bench/idle_and_large.py" --pid "$SPID" --port "$PORT" \
          --json "$p/idle/$rep" idle --count "$IDLE" >>"$OUT/memory.jsonl" 2>>"$OUT/loadgen.log" ||
          fail "$p/$w/$rep: idle connections failed"
        stop_server
        continue
      fi
      if [ "$w" = syscalls ]; then
        # The pipelined workload with the server under strace -c: a slower server, but counts
        # are what is wanted.
        command -v strace >/dev/null || { echo "syscalls: strace is not installed: skipped" >&2; continue; }
        trace=$OUT/$p.syscalls.$rep.txt run=$OUT/$p.syscalls.$rep.json
        start_server "$p" "strace -f -c -q -o $trace $cmd" || { fail "$p/$w/$rep: server did not start"; continue; }
        # shellcheck disable=SC2086  # word lists on purpose
        timeout 300 $PIN_G "$LOADGEN" $(args_of syscalls) --addr "127.0.0.1:$PORT" \
          --label "$p/$w/$rep" >"$run" 2>>"$OUT/loadgen.log" || fail "$p/$w/$rep: loadgen exit status $?"
        stop_server   # strace writes its summary as the server exits
        if "$PY" "$ROOT/bench/loadgen_report.py" --strace "$trace" "$run" >>"$OUT/syscalls.jsonl"; then
          echo "$p/$w/$rep: traced ($trace)"
        else
          fail "$p/$w/$rep: no strace summary of a run without failures"
        fi
        continue
      fi
      addr="--addr 127.0.0.1:$PORT"
      [ "$w" = implicit-tls-auth ] && addr="--addr 127.0.0.1:$TLS_PORT"
      if [ "$w" = p80 ]; then
        rate=$(p80_rate "$p")
        [ -n "$rate" ] || { echo "p80: no keepalive figure for $p yet: skipped" >&2; continue; }
        a="keepalive --rate $rate -n $(awk "BEGIN { printf \"%d\", $rate * $P80S }") --warmup $KW --concurrency 50 --duration $DUR --op-timeout 10"
      else
        a=$(args_of "$w")
      fi
      also=$PORT
      [ "$kind" = tls ] && also=$TLS_PORT
      start_server "$p" "$cmd" "$also" || { fail "$p/$w/$rep: server did not start"; continue; }
      # shellcheck disable=SC2086  # word lists on purpose
      before=$(wc -l <"$RES")
      if ! timeout 600 $PIN_G "$LOADGEN" $a $addr --server-pid "$SPID" --label "$p/$w/$rep" \
          >>"$RES" 2>>"$OUT/loadgen.log"; then
        fail "$p/$w/$rep: loadgen exit status $? ($(tail -n1 "$OUT/loadgen.log" 2>/dev/null))"
      fi
      tail -n "+$((before + 1))" "$RES" | "$PY" "$ROOT/bench/loadgen_report.py" --line || true
      stop_server
    done
  done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
"$PY" "$ROOT/bench/loadgen_report.py" "$OUT" | tee "$OUT/report.md"
if [ "$FAILED" = 1 ]; then
  echo "== some runs failed: $OUT/failures.txt" >&2
  exit 1
fi
echo "== report: $OUT/report.md"
}
main "$@"; exit  # read to here before running: an edit during a run cannot reach bash
