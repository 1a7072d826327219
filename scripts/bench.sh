#!/usr/bin/env bash
# The end-to-end benchmark in one command: vostok against the PostgreSQL + pgSphere + q3c floor
# that GAVO DaCHS sits on, on this machine.
#
#   bash scripts/bench.sh
#
# It builds vostok and vostok-bench (release), starts a private PostgreSQL 15 cluster
# (scripts/pg-baseline.sh; installs the pinned packages first when run as root), starts
# `vostok serve` on a free loopback port with a fresh data folder (the demo catalogs are
# ingested on first start), loads gaia.dr3_bright into PostgreSQL with DaCHS's indexes, runs
# the workloads against both, prints the table, and stops everything it started, also on
# failure or Ctrl-C. Results: $OUT/results.{md,json} (default target/bench/<time>/).
#
# Environment (all optional):
#   PROFILE=release|dev   cargo profile (default release; dev for a quick try of the pipeline)
#   REQUESTS=100          latency phase: at most this many requests per workload and server...
#   SECONDS_PER=20        ...and at most this many seconds
#   TP_SECONDS=5          throughput phase: seconds per concurrency level
#   CONCURRENCY=1,4,16    throughput phase: concurrency levels
#   CLIENT_THREADS=1      worker threads of the load generator (keep the cores for the servers)
#   SCALE="500k 1M 10M 100M"  synthetic sky sizes for the scale part ("" to skip it)
#   BENCH_DATA=DIR        vostok's data folder, kept between runs (default ~/.cache/vostok/bench-data):
#                         the demo catalogs and the synthetic skies are made there once
#   RUN_ARGS=             more arguments for `vostok-bench run` (e.g. "--only tap_cone,agg")
#   OUT=DIR               where results go
#   KEEP=1                keep the temporary folder (PostgreSQL cluster, vostok data, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PROFILE=${PROFILE:-release}
REQUESTS=${REQUESTS:-100}
SECONDS_PER=${SECONDS_PER:-20}
TP_SECONDS=${TP_SECONDS:-5}
CONCURRENCY=${CONCURRENCY:-1,4,16}
CLIENT_THREADS=${CLIENT_THREADS:-1}
SCALE=${SCALE-500k 1M 10M 100M}
SCALE_TABLES=""
BENCH_DATA=${BENCH_DATA:-$HOME/.cache/vostok/bench-data}
RUN_ARGS=${RUN_ARGS:-}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench/$(date +%Y%m%d-%H%M%S)}
KEEP=${KEEP:-0}

case "$PROFILE" in
    release) CARGO_PROFILE=(--release); BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release" ;;
    dev|debug) CARGO_PROFILE=(); BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug" ;;
    *) echo "bench: PROFILE must be release or dev" >&2; exit 2 ;;
esac

log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# The scale part: synthetic Gaia-like skies (`vostok generate`, deterministic from the seed) of
# the sizes in SCALE, generated once into the persistent data folder and reused by later runs
# (100M rows: ~45 s and 9.1 GB of disk on the reference machine). Each is then measured against
# vostok only: cones whose radius keeps the expected rows constant (R = R0 * sqrt(N0 / N)), a
# fixed R = 0.1 deg cone, and a filtered full scan.
generate_synthetic() {
    local n name
    local tables=()
    for n in $SCALE; do
        name="synth.sky_${n,,}"
        if [[ ! -f "$DATA/catalogs/$name/vostok.toml" ]]; then
            log "generating $name ($n rows) into $DATA"
            "$BIN/vostok" --config "$WORK/vostok.toml" generate --rows "$n" --table "$name" \
                --seed 1 --data-dir "$DATA" --force
        fi
        tables+=("$name")
    done
    if [[ ${#tables[@]} -gt 0 ]]; then
        SCALE_TABLES=$(IFS=,; echo "${tables[*]}")
    fi
}
# ---------------------------------------------------------------------------------------------

free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if command -v ss >/dev/null 2>&1; then
            ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
        elif ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    log "no free port found"; return 1
}

WORK=""
VOSTOK_PID=""
PG_STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$VOSTOK_PID" ]] && kill -0 "$VOSTOK_PID" 2>/dev/null; then
        kill "$VOSTOK_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$VOSTOK_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$VOSTOK_PID" 2>/dev/null || true
        log "vostok stopped"
    fi
    if [[ "$PG_STARTED" == 1 ]]; then
        bash "$ROOT/scripts/pg-baseline.sh" stop "$WORK/pg" >&2 || true
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then
            log "kept $WORK (logs: $WORK/vostok.log, $WORK/pg/server.log)"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Build (vostok and the bench tool together: they then share every dependency's build).
log "building ($PROFILE): cargo build ${CARGO_PROFILE[*]} -p vostok -p vostok-bench"
cargo build "${CARGO_PROFILE[@]}" -p vostok -p vostok-bench

# 2. PostgreSQL + pgSphere + q3c.
if [[ $(id -u) -eq 0 ]]; then
    bash "$ROOT/scripts/pg-baseline.sh" install >&2
fi
WORK=$(mktemp -d /tmp/vostok-bench.XXXXXX)
chmod 755 "$WORK" # the postgres user must reach $WORK/pg
DATA="$BENCH_DATA"
mkdir -p "$DATA"
mkdir -p "$OUT"
bash "$ROOT/scripts/pg-baseline.sh" start "$WORK/pg" >&2
PG_STARTED=1
PG_CONN=$(cat "$WORK/pg/conninfo")

# 3. vostok, with its own configuration file so that a ./vostok.toml does not interfere.
cat > "$WORK/vostok.toml" <<EOF
demo = true
demo_dir = "$ROOT/data/demo"

[tap]
default_maxrec = 100000
hard_maxrec = 10000000
EOF
generate_synthetic
start_vostok() {
    PORT=$(free_port)
    RUST_LOG=${RUST_LOG:-info} "$BIN/vostok" --config "$WORK/vostok.toml" serve \
        --bind "127.0.0.1:$PORT" --data-dir "$DATA" >>"$WORK/vostok.log" 2>&1 &
    VOSTOK_PID=$!
    log "vostok (pid $VOSTOK_PID) starting on 127.0.0.1:$PORT (first start ingests the demo catalogs)"
    for i in $(seq 1 600); do
        if ! kill -0 "$VOSTOK_PID" 2>/dev/null; then
            tail -n 30 "$WORK/vostok.log" >&2
            log "vostok exited"; exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            break
        fi
        sleep 0.5
    done
}
stop_vostok() {
    kill "$VOSTOK_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$VOSTOK_PID" 2>/dev/null || break; sleep 0.1; done
    VOSTOK_PID=""
}
start_vostok
URL="http://127.0.0.1:$PORT"
CATALOG="$DATA/catalogs/gaia.dr3_bright"
[[ -f "$CATALOG/partition_info.csv" ]] || { log "no $CATALOG after start"; exit 1; }

# 4. The same catalog into PostgreSQL, indexed as DaCHS indexes it.
"$BIN/vostok-bench" pg-load --catalog "$CATALOG" --table gaia.dr3_bright --pg "$PG_CONN"

# 5. The comparison (gaia.dr3_bright, vostok against PostgreSQL).
# shellcheck disable=SC2086 # RUN_ARGS is a list of words
"$BIN/vostok-bench" --client-threads "$CLIENT_THREADS" run \
    --vostok "$URL" --pg "$PG_CONN" --catalog "$CATALOG" \
    --vostok-pid "$VOSTOK_PID" --pg-pids auto \
    --requests "$REQUESTS" --seconds "$SECONDS_PER" \
    --throughput-seconds "$TP_SECONDS" --concurrency "$CONCURRENCY" \
    --json "$OUT/results.json" --markdown "$OUT/results.md" $RUN_ARGS
log "results: $OUT/results.md, $OUT/results.json ($PROFILE build)"

# 6. Scale (vostok only), on a freshly started server so that its memory is measured apart.
if [[ -n "$SCALE_TABLES" ]]; then
    stop_vostok
    start_vostok
    URL="http://127.0.0.1:$PORT"
    "$BIN/vostok-bench" --client-threads "$CLIENT_THREADS" run --vostok-only --only scale \
        --vostok "$URL" --catalog "$CATALOG" --vostok-pid "$VOSTOK_PID" \
        --tables "$SCALE_TABLES" --catalogs-dir "$DATA/catalogs" \
        --requests "$REQUESTS" --seconds "$SECONDS_PER" \
        --throughput-seconds "$TP_SECONDS" --concurrency "$CONCURRENCY" \
        --json "$OUT/scale.json" --markdown "$OUT/scale.md"
    log "scale results: $OUT/scale.md, $OUT/scale.json"
fi
