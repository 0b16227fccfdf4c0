#!/usr/bin/env bash
# Runs every fuzz target (or those named in $TARGETS) for SECONDS each, one after another,
# with the SMTP dictionary, and reports per target: seconds run, executions, coverage, findings.
# Needs cargo-fuzz and a nightly toolchain: `cargo install cargo-fuzz`, `rustup toolchain
# install nightly`. New corpus entries stay in corpus/<target>/ (only seed-* files are
# committed); crashes land in artifacts/<target>/. Exits non-zero when a target found something.
#
#   fuzz/run.sh 600                     # ten minutes each
#   TARGETS="data session" fuzz/run.sh 60
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
targets=${TARGETS:-$(cargo +nightly fuzz list)}
mkdir -p logs
for target in $targets; do
    cargo +nightly fuzz build "$target" 2>logs/build.log || { cat logs/build.log; exit 2; }
done

failed=0
printf '%-10s %8s %12s %8s %9s\n' target seconds executions coverage findings
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    start=$(date +%s)
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -dict=smtp.dict -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$target.log" 2>&1
    status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "logs/$target.log")
    coverage=$(grep -o 'cov: [0-9]*' "logs/$target.log" | tail -1 | cut -d' ' -f2)
    findings=$(($(find "artifacts/$target" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
        failed=1
        findings="$findings (exit $status; see fuzz/logs/$target.log)"
    fi
    printf '%-10s %8s %12s %8s %9s\n' "$target" "$elapsed" "${execs:-?}" "${coverage:-?}" "$findings"
done
exit $failed
