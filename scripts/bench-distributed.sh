#!/usr/bin/env bash
# One server against the same server with one and with two query workers (`vostok worker`,
# docs/distributed.md), on this machine: the same large queries over a 10-million-row
# synthetic sky, timed, and their answers compared between the three set-ups (the command
# fails when one differs). Results and the figures for the model of N machines go to
# docs/benchmarks.md by hand ("Query workers").
#
#   bash scripts/bench-distributed.sh
#
# Builds nothing: the release binary from BIN (default $CARGO_TARGET_DIR/release, else
# target/release). The demo catalogs and the synthetic sky (`vostok generate --rows 10M
# --table synth.sky_10m --seed 1`, as scripts/bench.sh makes it) are made once in BENCH_DATA.
#
# Environment (all optional):
#   BENCH_DATA=DIR    the data folder, kept between runs (default ~/.cache/vostok/bench-data)
#   ROWS=10M          the synthetic sky's size (its table: synth.sky_<rows, lower case>)
#   ROUNDS=3          timed runs of each query in each set-up (after one untimed run)
#   SETUPS="0 1 2"    numbers of workers to measure (0: the server alone)
#   ONLY=             workloads to run, e.g. "agg xmatch" (default: all)
#   BYTES_PER_TASK=0  [distributed] bytes_per_task (0: the planner's 16 MiB)
#   MEMORY_MB=8192    [limits] query_memory_mb of the server and of each worker
#   OUT=DIR           results (default $CARGO_TARGET_DIR/bench-distributed/<time>): times.tsv,
#                     answers/, explain-*.txt (explain --analyze with the most workers), logs
#   KEEP=1            keep the temporary folder
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
BENCH_DATA=${BENCH_DATA:-$HOME/.cache/vostok/bench-data}
ROWS=${ROWS:-10M}
ROUNDS=${ROUNDS:-3}
SETUPS=${SETUPS:-0 1 2}
ONLY=${ONLY:-}
BYTES_PER_TASK=${BYTES_PER_TASK:-0}
MEMORY_MB=${MEMORY_MB:-8192}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-distributed/$(date +%Y%m%d-%H%M%S)}
KEEP=${KEEP:-0}
TABLE="synth.sky_${ROWS,,}"

log() { echo "bench-distributed: $*" >&2; }
[[ -x "$BIN/vostok" ]] || { log "no $BIN/vostok: cargo build --release --workspace first, or set BIN=DIR"; exit 2; }

# name<TAB>ADQL. The crossmatch radius (10") gives a few thousand pairs at 10M rows; the
# pairs themselves are the answer, so equality is checked pair by pair.
WORKLOADS=$(cat <<EOF
agg	SELECT COUNT(*) AS n, SUM(phot_g_mean_mag) AS g, AVG(parallax) AS p, MIN(ra) AS lo, MAX(dec) AS hi, COUNT(radial_velocity) AS rv FROM $TABLE
group	SELECT FLOOR(phot_g_mean_mag) AS g, COUNT(*) AS n, AVG(bp_rp) AS c FROM $TABLE GROUP BY FLOOR(phot_g_mean_mag)
hist	SELECT ivo_histogram(phot_g_mean_mag, 5, 21, 16) AS h FROM $TABLE
xmatch	SELECT s.source_id AS s, g.source_id AS g FROM $TABLE AS s JOIN gaia.dr3_bright AS g ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', s.ra, s.dec, 10.0/3600))
EOF
)

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    log "no free port found"; return 1
}

WORK=$(mktemp -d /tmp/vostok-bench-distributed.XXXXXX)
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT/answers" "$BENCH_DATA"
cat >"$WORK/vostok.toml" <<EOF
demo = true
demo_dir = "$ROOT/data/demo"

[tap]
hard_maxrec = 10000000
sync_timeout = 3600

# The crossmatch's hash join over 10M rows holds more than the default 1 GiB; the workers
# read this file too.
[limits]
query_memory_mb = $MEMORY_MB

[distributed]
bytes_per_task = $BYTES_PER_TASK
EOF
if [[ ! -f "$BENCH_DATA/catalogs/$TABLE/vostok.toml" ]]; then
    log "generating $TABLE ($ROWS rows) into $BENCH_DATA"
    "$BIN/vostok" --config "$WORK/vostok.toml" generate --rows "$ROWS" --table "$TABLE" --seed 1 \
        --data-dir "$BENCH_DATA" --force
fi

wait_port() {  # wait_port PID PORT LOG
    for _ in $(seq 1 1200); do
        kill -0 "$1" 2>/dev/null || { tail -n 30 "$3" >&2; log "process $1 exited"; exit 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        sleep 0.5
    done
    log "nothing listens on $2"; exit 1
}

# start_setup N: N workers (none for 0) and a server sending them its large queries
start_setup() {
    local n=$1 i port urls=()
    for ((i = 1; i <= n; i++)); do
        port=$(free_port)
        RUST_LOG=info "$BIN/vostok" --config "$WORK/vostok.toml" worker --bind "127.0.0.1:$port" \
            --data-dir "$BENCH_DATA" >>"$WORK/worker-$n-$i.log" 2>&1 &
        PIDS+=($!)
        wait_port $! "$port" "$WORK/worker-$n-$i.log"
        urls+=("http://127.0.0.1:$port")
    done
    WORKER_URLS=$(IFS=,; echo "${urls[*]}")
    PORT=$(free_port)
    local args=(serve --bind "127.0.0.1:$PORT" --data-dir "$BENCH_DATA")
    ((n > 0)) && args+=(--workers "$WORKER_URLS")
    SERVER_LOG="$WORK/server-$n.log"
    RUST_LOG=info "$BIN/vostok" --config "$WORK/vostok.toml" "${args[@]}" >>"$SERVER_LOG" 2>&1 &
    PIDS+=($!)
    wait_port $! "$PORT" "$SERVER_LOG"
    until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/tap/availability"; do sleep 0.5; done
}

# run_query NAME ADQL FILE: the seconds the answer took (CSV into FILE); fails on an error
run_query() {
    local t
    t=$(curl -sS -o "$3" -w '%{http_code} %{time_total}' "http://127.0.0.1:$PORT/tap/sync" \
        --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL --data-urlencode RESPONSEFORMAT=csv \
        --data-urlencode MAXREC=10000000 --data-urlencode "QUERY=$2")
    [[ "${t%% *}" == 200 ]] || { head -c 2000 "$3" >&2; log "$1: HTTP ${t%% *}"; exit 1; }
    grep -q 'QUERY_STATUS\|ERROR' "$3" && { tail -c 2000 "$3" >&2; log "$1: error in the result"; exit 1; }
    echo "${t#* }"
}

# same_answer A B: the same rows; floating values equal to 1e-12 relative (a sum's last bits
# depend on the order its partial sums are added in, which varies from run to run)
cat >"$WORK/same.py" <<'PY'
import csv, math, sys
def rows(p):
    return sorted(tuple(r) for r in list(csv.reader(open(p)))[1:])
def same(a, b):
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    except ValueError:
        return False
want, got = rows(sys.argv[1]), rows(sys.argv[2])
sys.exit(0 if len(got) == len(want) and all(
    len(g) == len(w) and all(same(x, y) for x, y in zip(g, w)) for g, w in zip(got, want)) else 1)
PY
same_answer() { python3 "$WORK/same.py" "$1" "$2"; }

printf 'setup\tworkload\tround\tseconds\trows\tspread\n' >"$OUT/times.tsv"
for n in $SETUPS; do
    log "set-up: $n worker(s)"
    start_setup "$n"
    while IFS=$'\t' read -r name adql; do
        [[ -z "$ONLY" || " $ONLY " == *" $name "* ]] || continue
        answer="$OUT/answers/$name-$n.csv"
        run_query "$name" "$adql" "$answer" >/dev/null
        for ((r = 1; r <= ROUNDS; r++)); do
            before=$(grep -c 'query spread over the workers' "$SERVER_LOG" || true)
            secs=$(run_query "$name" "$adql" "$WORK/round.csv")
            spread=$(( $(grep -c 'query spread over the workers' "$SERVER_LOG" || true) - before ))
            same_answer "$answer" "$WORK/round.csv" \
                || { log "$name with $n workers: round $r differs from the first run"; exit 1; }
            rows=$(( $(wc -l <"$answer") - 1 ))
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$name" "$r" "$secs" "$rows" "$spread" | tee -a "$OUT/times.tsv" >&2
        done
        if [[ "$n" == "${SETUPS##* }" && "$n" -gt 0 ]]; then
            { cat "$WORK/vostok.toml"; echo "workers = [\"${WORKER_URLS//,/\", \"}\"]"; } >"$WORK/explain.toml"
            "$BIN/vostok" --config "$WORK/explain.toml" adql explain --analyze --data-dir "$BENCH_DATA" \
                <<<"$adql" >"$OUT/explain-$name.txt" 2>>"$WORK/explain.log"
        fi
    done <<<"$WORKLOADS"
    cp "$SERVER_LOG" "$OUT/"
    stop_all
done

# The answers of every set-up against the server alone's.
first=${SETUPS%% *}
bad=0
for a in "$OUT"/answers/*-"$first".csv; do
    name=$(basename "$a" "-$first.csv")
    for n in $SETUPS; do
        [[ "$n" == "$first" ]] && continue
        if same_answer "$a" "$OUT/answers/$name-$n.csv"; then
            log "$name: $n worker(s) agree with $first ($(( $(wc -l <"$a") - 1 )) rows)"
        else
            log "$name: $n worker(s) DIFFER from $first"; bad=1
        fi
    done
done
((bad == 0)) || exit 1

# The median of the rounds, per workload and set-up.
python3 - "$OUT/times.tsv" <<'PY' | tee "$OUT/summary.md"
import csv, statistics, sys
t = {}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    t.setdefault(r["workload"], {}).setdefault(int(r["setup"]), []).append(r)
setups = sorted({s for w in t.values() for s in w})
print("| workload | rows | " + " | ".join(f"{s} worker(s): median s (spread)" if s else "server alone: median s" for s in setups) + " |")
print("|---|--:|" + "--:|" * len(setups))
for name, by in t.items():
    cells = []
    for s in setups:
        rs = by.get(s, [])
        if not rs:
            cells.append("–"); continue
        med = statistics.median(float(r["seconds"]) for r in rs)
        spread = sum(int(r["spread"]) > 0 for r in rs)
        cells.append(f"{med:.3f}" + (f" ({spread}/{len(rs)})" if s else ""))
    rows = next(iter(by.values()))[0]["rows"]
    print(f"| {name} | {rows} | " + " | ".join(cells) + " |")
PY
log "results in $OUT"
