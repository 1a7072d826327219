# Shared by scripts/load.sh and scripts/chaos.sh (sourced, not run): the binaries, a fresh
# data folder and its vostok.toml, one `vostok serve` on a free loopback port (started,
# stopped, killed and restarted on the same folder and port), VOSpace users, file limits.
#
# The caller sets ROOT, WORK (a private temporary folder) and OUT before using these.

log() { echo "$(basename "$0" .sh): $*" >&2; }

# The release binaries (or BIN=DIR). Builds nothing.
find_binaries() {
    BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
    local b
    for b in vostok vostok-bench; do
        if [[ ! -x "$BIN/$b" ]]; then
            log "no $BIN/$b: build the release binaries first:"
            log "    cargo build --release -p vostok -p vostok-bench"
            log "(a cold release build of DataFusion takes ~45-60 min on 2 cores), or set BIN=DIR"
            exit 2
        fi
    done
}

# Enough file descriptors for CLIENTS connections on both sides (the server is started from
# this shell and inherits the limit).
raise_nofile() {
    local want=$(( ${1:-1000} * 2 + 4096 )) hard
    hard=$(ulimit -Hn)
    if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then
        log "warning: the hard limit of open files is $hard, below the $want wanted; using $hard"
        want=$hard
    fi
    if [[ $(ulimit -Sn) != unlimited && $(ulimit -Sn) -lt "$want" ]]; then
        ulimit -n "$want"
    fi
    log "open files: $(ulimit -n)"
}

free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if command -v ss >/dev/null 2>&1; then
            ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
        elif ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    log "no free port found"; return 1
}

# write_config FILE DEMO(true|false) WITH_LIMITS(1|0)
write_config() {
    local file=$1 demo=$2 limits=$3
    cat > "$file" <<EOF
demo = $demo
demo_dir = "$ROOT/data/demo"

[tap]
default_maxrec = 100000
hard_maxrec = 10000000
EOF
    if [[ -n "${SYNC_TIMEOUT:-}" ]]; then echo "sync_timeout = $SYNC_TIMEOUT" >> "$file"; fi
    if [[ "$limits" == 1 ]]; then
        cat >> "$file" <<EOF

[limits]
# The memory budget of all queries together (DataFusion's pool; sorts and joins spill).
query_memory_mb = ${QUERY_MEMORY_MB:-512}
sync_queries = ${SYNC_QUERIES:-8}
sync_queue_ms = ${SYNC_QUEUE_MS:-2000}
previews = ${PREVIEWS:-2}
${LIMITS_TOML:-}
EOF
    fi
}

VOSTOK_PID=""
LIMITS_NOTE=""

# start_server CONFIG DATA PORT LOG PIDFILE: starts `vostok serve` and waits until
# /tap/availability answers (the first start ingests the demo catalogs). With LIMITS=auto,
# a server that refuses the [limits] section (one built before issue 14) is started again
# without it, and LIMITS_NOTE says so.
start_server() {
    local conf=$1 data=$2 port=$3 logf=$4 pidf=$5 i
    while :; do
        RUST_LOG=${RUST_LOG:-info} "$BIN/vostok" --config "$conf" serve \
            --bind "127.0.0.1:$port" --data-dir "$data" >>"$logf" 2>&1 &
        VOSTOK_PID=$!
        echo "$VOSTOK_PID" > "$pidf"
        for i in $(seq 1 1200); do
            if ! kill -0 "$VOSTOK_PID" 2>/dev/null; then
                wait "$VOSTOK_PID" 2>/dev/null || true
                if [[ "${LIMITS:-auto}" == auto ]] && grep -q '\[limits\]' "$conf" \
                    && tail -n 20 "$logf" | grep -q 'unknown field `limits`'; then
                    LIMITS_NOTE="this vostok does not know [limits] (a build before issue 14): it ran without it"
                    log "note: $LIMITS_NOTE"
                    sed -i '/^\[limits\]/,$d' "$conf"
                    continue 2
                fi
                tail -n 30 "$logf" >&2
                log "vostok exited during start (log: $logf)"
                VOSTOK_PID=""
                return 1
            fi
            if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/tap/availability" 2>/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        log "vostok did not answer within 120 s"
        return 1
    done
}

# stop_server: SIGTERM, then SIGKILL after 20 s.
stop_server() {
    local pid=$VOSTOK_PID
    [[ -n "$pid" ]] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "vostok (pid $pid) still running 20 s after SIGTERM: SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    VOSTOK_PID=""
}

# kill_server: SIGKILL, and wait until it is gone.
kill_server() {
    local pid=$VOSTOK_PID
    [[ -n "$pid" ]] || return 0
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    wait "$pid" 2>/dev/null || true
    VOSTOK_PID=""
}

# add_users N DATA FILE [QUOTA]: `vostok user add` N users; NAME:TOKEN lines into FILE.
add_users() {
    local n=$1 data=$2 file=$3 quota=${4:-1000000000000} i name out
    : > "$file"
    for i in $(seq 1 "$n"); do
        name="load$i"
        out=$("$BIN/vostok" --config "$WORK/vostok.toml" user add "$name" --quota "$quota" \
            --data-dir "$data" 2>>"$WORK/users.log") || {
            log "vostok user add $name failed:"; tail -n 20 "$WORK/users.log" >&2; return 1; }
        echo "$name:${out##* }" >> "$file"
    done
}

# The server log next to the report (compressed), and how many panics it shows.
keep_log() {
    local logf=$1 dest=$2 panics
    [[ -f "$logf" ]] || return 0
    gzip -c "$logf" > "$dest.gz" 2>/dev/null || cp "$logf" "$dest"
    panics=$(grep -c 'panicked' "$logf" || true)
    if [[ "$panics" -gt 0 ]]; then
        log "the server log shows $panics panics:"
        grep -m 5 -A 2 'panicked' "$logf" >&2 || true
    fi
}

# What else the machine is doing (numbers taken beside a compiler are not worth much).
machine_note() {
    local busy
    busy=$(ps -eo comm= | grep -cE '^(rustc|cc1|cc1plus|ld|cargo)$' || true)
    echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $busy compiler processes running"
}
