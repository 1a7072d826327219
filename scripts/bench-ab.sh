#!/usr/bin/env bash
# A/B benchmark: the same vostok-bench workloads against two vostok builds on this machine,
# in alternating rounds (A, B, A, B, ...), each server on a data folder of its own (the demo
# catalogs ingested at its first start). Answers a question such as "did this change make
# cones or crossmatches slower?" — e.g. a DataFusion upgrade, a patch, a planner rule.
#
#   A=DIR B=DIR bash scripts/bench-ab.sh
#
# DIR holds a `vostok` binary (a release build: `cargo build --release -p vostok -p
# vostok-bench`, in a worktree of the commit to compare). vostok-bench comes from BIN
# (default $CARGO_TARGET_DIR/release): one load generator for both. Builds nothing.
#
# Environment (all optional):
#   ROUNDS=2              rounds per build
#   ONLY=tap_cone,scs,agg,xmatch   workloads (vostok-bench run --only)
#   REQUESTS=100 SECONDS_PER=20 TP_SECONDS=5 CONCURRENCY=1,4   as in scripts/bench.sh
#   OUT=DIR               results (default $CARGO_TARGET_DIR/bench-ab/<time>): A-1.json, B-1.json,
#                         ..., and summary.md (per workload: median over rounds of p50 latency
#                         and of the best req/s, and B's change against A)
#   KEEP=1                keep the data folders and logs
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/load-common.sh
source "$ROOT/scripts/load-common.sh"

: "${A:?A=DIR with the first vostok binary}" "${B:?B=DIR with the second vostok binary}"
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-tap_cone,scs,agg,xmatch}
REQUESTS=${REQUESTS:-100}
SECONDS_PER=${SECONDS_PER:-20}
TP_SECONDS=${TP_SECONDS:-5}
CONCURRENCY=${CONCURRENCY:-1,4}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-ab/$(date +%Y%m%d-%H%M%S)}
KEEP=${KEEP:-0}
find_binaries
BENCH="$BIN/vostok-bench"
for d in "$A" "$B"; do
    [[ -x "$d/vostok" ]] || { log "no $d/vostok"; exit 2; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/vostok-bench-ab.XXXXXX)

cleanup() {
    local rc=$?
    stop_server
    if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_round NAME DIR N: starts DIR/vostok on its own data folder, runs the workloads, stops it.
run_round() {
    local name=$1 dir=$2 n=$3 port
    port=$(free_port)
    mkdir -p "$WORK/$name"
    write_config "$WORK/$name/vostok.toml" true 0
    BIN="$dir" start_server "$WORK/$name/vostok.toml" "$WORK/$name/data" "$port" \
        "$WORK/$name/vostok.log" "$WORK/$name/pid"
    log "round $n: $name ($dir/vostok, pid $VOSTOK_PID, port $port)"
    "$BENCH" run --vostok-only --vostok "http://127.0.0.1:$port" \
        --catalog "$WORK/$name/data/catalogs/gaia.dr3_bright" --vostok-pid "$VOSTOK_PID" \
        --only "$ONLY" --requests "$REQUESTS" --seconds "$SECONDS_PER" \
        --throughput-seconds "$TP_SECONDS" --concurrency "$CONCURRENCY" \
        --json "$OUT/$name-$n.json" --markdown "$OUT/$name-$n.md" >/dev/null
    stop_server
}

log "A=$A B=$B, $ROUNDS rounds each, workloads $ONLY; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $(seq 1 "$ROUNDS"); do
    run_round A "$A" "$n"
    run_round B "$B" "$n"
done

python3 - "$OUT" "$ROUNDS" "$A" "$B" > "$OUT/summary.md" <<'PY'
import json, statistics, sys
out, rounds, a_dir, b_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(name):
    per = {}
    for n in range(1, rounds + 1):
        for r in json.load(open(f"{out}/{name}-{n}.json"))["results"]:
            v = r["vostok"]
            best = max(t["req_per_s"] for t in v["throughput"])
            per.setdefault(r["id"], (r["label"], [], []))
            per[r["id"]][1].append(v["latency_ms"]["p50"])
            per[r["id"]][2].append(best)
    return per
a, b = load("A"), load("B")
print(f"A: {a_dir}/vostok  \nB: {b_dir}/vostok  \n{rounds} rounds each, alternating; medians over rounds.\n")
print("| workload | A p50 ms | B p50 ms | B/A p50 | A best req/s | B best req/s | B/A req/s |")
print("|---|--:|--:|--:|--:|--:|--:|")
for k, (label, ap, ar) in a.items():
    if k not in b:
        continue
    _, bp, br = b[k]
    mp, mbp, mr, mbr = (statistics.median(x) for x in (ap, bp, ar, br))
    print(f"| {label} | {mp:.2f} | {mbp:.2f} | {mbp / mp:.2f} | {mr:.1f} | {mbr:.1f} | {mbr / mr:.2f} |")
PY
cat "$OUT/summary.md"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
