#!/usr/bin/env bash
# The load test: one vostok under many concurrent clients on a mixed workload, on this machine.
#
#   bash scripts/load.sh                       # 1000 clients for 60 s
#   CLIENTS=100 SECONDS=20 bash scripts/load.sh
#   # the fast lane: a few clients sending only heavy queries (cross join, crossmatch, sorted
#   # full scan) while the probe cone is timed
#   CLIENTS=4 SECONDS=60 WEIGHTS=heavy=1 SYNC_TIMEOUT=20 LOAD_ARGS="--timeout 40" bash scripts/load.sh
#
# It builds nothing: it expects release binaries of vostok and vostok-bench, made with
#     cargo build --release -p vostok -p vostok-bench
# (in $CARGO_TARGET_DIR/release, default target/release; BIN=DIR takes them from elsewhere,
# e.g. BIN=$CARGO_TARGET_DIR/debug to try the pipeline on a dev build).
#
# It makes a fresh data folder, writes a vostok.toml with a [limits] section (the memory
# budget of the queries, admission limits), starts `vostok serve` on a free loopback port (the
# first start ingests the demo catalogs), creates USERS VOSpace users with `vostok user add`,
# runs `vostok-bench load` (CLIENTS clients for SECONDS seconds: TAP cones, cone search,
# TAP_SCHEMA, 100k-row downloads, async jobs, VOSpace PUT/GET with MD5s, DataLink previews;
# a probe cone every 100 ms; the server's RSS), stops the server, prints the report and writes
# it to $OUT (load.md, load.json, vostok.log.gz). Everything runs on 127.0.0.1 and is bounded
# in time (the load, then at most the request timeouts and the final check).
#
# Exit status: 0 passed; 1 the server failed (a 5xx other than 503, a 503 without Retry-After,
# a dropped connection, wrong bytes, a lost file, RSS above the budget); 2 the test itself
# could not run.
#
# Environment (all optional):
#   CLIENTS=1000          concurrent clients
#   SECONDS=60            seconds of load (DURATION=60 works too)
#   RSS_BUDGET_MIB=1024   the server's memory budget; the load fails when its peak VmRSS is
#                         above the budget + RSS_SLACK_MIB (issue 14's bar: budget + 100 MiB)
#   RSS_SLACK_MIB=100
#   QUERY_MEMORY_MB=512   [limits] query_memory_mb, the memory budget of all queries together
#   SYNC_QUERIES=8 SYNC_QUEUE_MS=2000 PREVIEWS=2   the other [limits] written
#   SYNC_TIMEOUT=         [tap] sync_timeout (seconds; default: vostok's)
#   LIMITS_TOML=          more [limits] lines, e.g. $'fast_lane_rows = 1000000\nheavy_queries = 1'
#   LIMITS=auto           auto: write [limits], but leave it out (and say so) if this vostok
#                         refuses it (built before issue 14); 1: always; 0: never
#   USERS=8               VOSpace users; client i is user i mod USERS, jobs carry its token
#   WEIGHTS=              operation weights (`vostok-bench load --weights`, default
#                         cone=30,scs=25,schema=10,download=3,async=5,vospace=7,preview=5;
#                         heavy=N adds heavy sync queries)
#   CLIENT_THREADS=2      worker threads of the load generator's tokio runtime
#   LOAD_ARGS=            more arguments for `vostok-bench load` (e.g. "--probe-scs --timeout 30")
#   BIN=DIR               where vostok and vostok-bench are
#   OUT=DIR               where the report goes (default $CARGO_TARGET_DIR/load/<time>)
#   KEEP=1                keep the data folder and logs (kept anyway when the run fails)
set -euo pipefail

# SECONDS is bash's own clock: read the caller's value from the environment.
DURATION=${DURATION:-$(printenv SECONDS || echo 60)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/load-common.sh
source "$ROOT/scripts/load-common.sh"

CLIENTS=${CLIENTS:-1000}
RSS_BUDGET_MIB=${RSS_BUDGET_MIB:-1024}
RSS_SLACK_MIB=${RSS_SLACK_MIB:-100}
RSS_LIMIT_MIB=$(( RSS_BUDGET_MIB + RSS_SLACK_MIB ))
USERS=${USERS:-8}
CLIENT_THREADS=${CLIENT_THREADS:-2}
LOAD_ARGS=${LOAD_ARGS:-}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/load/$(date +%Y%m%d-%H%M%S)}
KEEP=${KEEP:-0}

find_binaries
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/vostok-load.XXXXXX)
DATA="$WORK/data"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    keep_log "$WORK/vostok.log" "$OUT/vostok.log"
    if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then
        log "kept $WORK (data folder, vostok.log, vostok.toml)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

raise_nofile "$CLIENTS"
case "${LIMITS:-auto}" in
    0) write_config "$WORK/vostok.toml" true 0 ;;
    *) write_config "$WORK/vostok.toml" true 1 ;;
esac
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
log "starting $BIN/vostok on $URL (data: $DATA)"
start_server "$WORK/vostok.toml" "$DATA" "$PORT" "$WORK/vostok.log" "$WORK/vostok.pid" || exit 2
log "vostok (pid $VOSTOK_PID) is up; adding $USERS users"
add_users "$USERS" "$DATA" "$WORK/users.txt" || exit 2
cp "$WORK/vostok.toml" "$OUT/vostok.toml"

ARGS=(--client-threads "$CLIENT_THREADS" load --url "$URL" --clients "$CLIENTS"
      --seconds "$DURATION" --users-file "$WORK/users.txt" --server-pid "$VOSTOK_PID"
      --rss-budget-mib "$RSS_LIMIT_MIB" --json "$OUT/load.json" --markdown "$OUT/load.md")
if [[ -n "${WEIGHTS:-}" ]]; then ARGS+=(--weights "$WEIGHTS"); fi
log "vostok-bench ${ARGS[*]} $LOAD_ARGS"
log "peak RSS allowed: $RSS_LIMIT_MIB MiB (budget $RSS_BUDGET_MIB MiB + $RSS_SLACK_MIB MiB)"
MACHINE_BEFORE=$(machine_note)
log "machine: $MACHINE_BEFORE"
rc=0
# shellcheck disable=SC2086 # LOAD_ARGS is a list of words
timeout --signal=INT $(( DURATION + 1800 )) "$BIN/vostok-bench" "${ARGS[@]}" $LOAD_ARGS || rc=$?
if ! kill -0 "$VOSTOK_PID" 2>/dev/null; then
    log "vostok is no longer running after the load (log: $OUT/vostok.log.gz)"
    tail -n 30 "$WORK/vostok.log" >&2
    VOSTOK_PID=""
    [[ $rc -eq 0 ]] && rc=1
fi
MACHINE_AFTER=$(machine_note)
{
    printf '\nServer binary: %s (%s). Machine before the load: %s; after: %s.\n' \
        "$BIN/vostok" "$(date -r "$BIN/vostok" '+%Y-%m-%d %H:%M')" "$MACHINE_BEFORE" "$MACHINE_AFTER"
    printf 'Peak RSS allowed: %s MiB (the memory budget %s MiB + %s MiB, the bar of issue 14).\n' \
        "$RSS_LIMIT_MIB" "$RSS_BUDGET_MIB" "$RSS_SLACK_MIB"
    if [[ -n "$LIMITS_NOTE" ]]; then printf 'Note: %s.\n' "$LIMITS_NOTE"; fi
} >> "$OUT/load.md"
if [[ -n "$LIMITS_NOTE" ]]; then log "note: $LIMITS_NOTE"; fi
log "machine after the load: $MACHINE_AFTER"
log "binary: $BIN/vostok; report: $OUT/load.md, $OUT/load.json"
case $rc in
    0) log "PASS" ;;
    1) log "FAIL: the server did not pass (see the verdict above)" ;;
    *) log "the load test could not run (exit $rc)" ;;
esac
exit "$rc"
