#!/usr/bin/env bash
# The chaos test: the load of scripts/load.sh while vostok is SIGKILLed at random moments and
# restarted on the same data folder and port; then a data folder that runs out of space.
#
#   bash scripts/chaos.sh
#   CLIENTS=100 SECONDS=60 KILLS=5 bash scripts/chaos.sh
#
# It builds nothing (see scripts/load.sh: `cargo build --release -p vostok -p vostok-bench`).
#
# 1. Crashes. A fresh data folder, vostok.toml with [limits], `vostok serve` on a free loopback
#    port, USERS users; `vostok-bench load --chaos --ledger` runs for SECONDS seconds and keeps
#    a ledger: every VOSpace PUT the server acknowledged (with the MD5 of the bytes sent), every
#    async job seen COMPLETED (with the MD5 of its result; those jobs are not deleted), every
#    upload and delete left unacknowledged. Meanwhile the server is SIGKILLed KILLS times, at a
#    random moment in each of KILLS equal slices of the load, and restarted at once. After the
#    load and the last restart, `vostok-bench verify` checks every ledger entry: a committed
#    file still has its bytes (GET, MD5), a completed job's result is still served with the same
#    MD5 (fetched with its owner's token), an unacknowledged upload is absent or complete, never
#    partial.
# 2. Disk full (as root; skipped with a message when tmpfs cannot be mounted). A tmpfs of
#    DISK_MIB MiB as the data folder (no demo catalogs: they would fill it), a server on it, and
#    `vostok-bench fill`: uploads until the space runs out. Every refusal must be a clean HTTP
#    error (a VOSpace fault, or 503/507), the server must keep answering /tap/availability and
#    stay alive, and every acknowledged file must keep its bytes; after deleting half of them a
#    new upload is tried. Then the server is restarted on the full disk and the files checked
#    again.
#
# Exit status: 0 nothing lost and no failure; 1 a loss, a corruption, a 5xx other than 503, a
# crash or a restart that failed; 2 the test itself could not run.
#
# Environment (all optional):
#   CLIENTS=200           concurrent clients
#   SECONDS=90            seconds of load (DURATION=90 works too)
#   KILLS=5               SIGKILLs during the load
#   CHAOS_SEED=           seed of the kill moments (default: random; printed)
#   RESTART_WAIT=60       how long clients and checks wait for a restarting server (s)
#   RSS_BUDGET_MIB=       memory budget for the load (default: none; chaos is about data)
#   USERS=8 WEIGHTS= CLIENT_THREADS=2 LOAD_ARGS= QUERY_MEMORY_MB= LIMITS= LIMITS_TOML=
#                         as in scripts/load.sh (WEIGHTS default here:
#                         cone=20,scs=15,schema=5,download=2,async=15,vospace=30,preview=3)
#   DISK_MIB=64           size of the tmpfs of the disk-full part; FILL=0 skips that part
#   FILL_FILE_KIB=4096    size of each upload of the disk-full part
#   BIN=DIR OUT=DIR KEEP=1   as in scripts/load.sh (OUT default $CARGO_TARGET_DIR/chaos/<time>)
set -euo pipefail

DURATION=${DURATION:-$(printenv SECONDS || echo 90)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/load-common.sh
source "$ROOT/scripts/load-common.sh"

CLIENTS=${CLIENTS:-200}
KILLS=${KILLS:-5}
RESTART_WAIT=${RESTART_WAIT:-60}
USERS=${USERS:-8}
CLIENT_THREADS=${CLIENT_THREADS:-2}
WEIGHTS=${WEIGHTS:-cone=20,scs=15,schema=5,download=2,async=15,vospace=30,preview=3}
LOAD_ARGS=${LOAD_ARGS:-}
DISK_MIB=${DISK_MIB:-64}
FILL=${FILL:-1}
FILL_FILE_KIB=${FILL_FILE_KIB:-4096}
OUT=${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/chaos/$(date +%Y%m%d-%H%M%S)}
KEEP=${KEEP:-0}
CHAOS_SEED=${CHAOS_SEED:-$(( (RANDOM << 15) | RANDOM ))}
RANDOM=$CHAOS_SEED

find_binaries
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/vostok-chaos.XXXXXX)
DATA="$WORK/data"
FULL="$WORK/full"
MOUNTED=0
LOAD_PID=""
FAILURES=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$LOAD_PID" ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
        kill -INT "$LOAD_PID" 2>/dev/null || true
        sleep 1
        kill -9 "$LOAD_PID" 2>/dev/null || true
    fi
    stop_server
    keep_log "$WORK/vostok.log" "$OUT/vostok.log"
    keep_log "$WORK/full.log" "$OUT/vostok-diskfull.log"
    if [[ "$MOUNTED" == 1 ]]; then
        umount "$FULL" 2>/dev/null || umount -l "$FULL" 2>/dev/null || true
    fi
    if [[ "$KEEP" == 1 || $rc -ne 0 ]]; then
        log "kept $WORK (data folder, logs)"
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
log "seed $CHAOS_SEED; starting $BIN/vostok on $URL (data: $DATA)"
start_server "$WORK/vostok.toml" "$DATA" "$PORT" "$WORK/vostok.log" "$WORK/vostok.pid" || exit 2
add_users "$USERS" "$DATA" "$WORK/users.txt" || exit 2
cp "$WORK/vostok.toml" "$OUT/vostok.toml"

# ---------------------------------------------------------------------------------------------
# 1. Crashes under load.
ARGS=(--client-threads "$CLIENT_THREADS" load --url "$URL" --clients "$CLIENTS"
      --seconds "$DURATION" --users-file "$WORK/users.txt" --weights "$WEIGHTS"
      --chaos --restart-grace "$RESTART_WAIT" --ledger "$OUT/ledger.json" --skip-verify
      --server-pid-file "$WORK/vostok.pid" --json "$OUT/load.json" --markdown "$OUT/load.md")
if [[ -n "${RSS_BUDGET_MIB:-}" ]]; then ARGS+=(--rss-budget-mib "$RSS_BUDGET_MIB"); fi
log "vostok-bench ${ARGS[*]} $LOAD_ARGS"
# shellcheck disable=SC2086 # LOAD_ARGS is a list of words
timeout --signal=INT $(( DURATION + 1800 )) "$BIN/vostok-bench" "${ARGS[@]}" $LOAD_ARGS \
    > "$OUT/load.txt" &
LOAD_PID=$!
T0=$(date +%s.%N)
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }
elapsed() { calc "$(date +%s.%N) - $T0"; }

: > "$OUT/kills.txt"
SLICE=$(calc "$DURATION / $KILLS")
for k in $(seq 1 "$KILLS"); do
    # A random moment in the k-th slice of the load (not in its first 2 s: clients ramp up).
    at=$(calc "($k - 1) * $SLICE + ($RANDOM / 32768) * $SLICE")
    at=$(calc "($at < 2) ? 2 : $at")
    wait_s=$(calc "$at - $(elapsed)")
    if [[ $(calc "($wait_s > 0) ? 1 : 0") == 1.000 ]]; then sleep "$wait_s"; fi
    if ! kill -0 "$LOAD_PID" 2>/dev/null; then
        log "the load ended before kill $k"
        break
    fi
    old=$VOSTOK_PID
    t_kill=$(elapsed)
    kill_server
    t_dead=$(elapsed)
    if start_server "$WORK/vostok.toml" "$DATA" "$PORT" "$WORK/vostok.log" "$WORK/vostok.pid"; then
        t_up=$(elapsed)
        line=$(printf 'kill %d: SIGKILL pid %s at %.1f s of load; restarted as pid %s, answering after %.1f s' \
            "$k" "$old" "$t_kill" "$VOSTOK_PID" "$(calc "$t_up - $t_dead")")
        log "$line"
        echo "$line" >> "$OUT/kills.txt"
    else
        line=$(printf 'kill %d: SIGKILL pid %s at %.1f s; THE RESTART FAILED' "$k" "$old" "$t_kill")
        log "$line"
        echo "$line" >> "$OUT/kills.txt"
        FAILURES+=("restart after kill $k failed (log: $OUT/vostok.log.gz)")
        break
    fi
done

rc_load=0
wait "$LOAD_PID" || rc_load=$?
LOAD_PID=""
cat "$OUT/load.txt"
case $rc_load in
    0) ;;
    1) FAILURES+=("the load under crashes failed (5xx other than 503, wrong bytes or lost files seen by the clients: see the verdict in $OUT/load.md)") ;;
    *) FAILURES+=("vostok-bench load could not run (exit $rc_load)") ;;
esac

# Every ledger entry, after the last restart.
rc_verify=0
if [[ -z "$VOSTOK_PID" ]]; then
    FAILURES+=("no server to verify against")
    rc_verify=1
elif [[ -f "$OUT/ledger.json" ]]; then
    log "verifying the ledger after the last restart"
    "$BIN/vostok-bench" verify --url "$URL" --ledger "$OUT/ledger.json" --wait "$RESTART_WAIT" \
        --json "$OUT/verify.json" | tee "$OUT/verify.txt" || rc_verify=$?
    if [[ $rc_verify -ne 0 ]]; then
        FAILURES+=("after $KILLS kills: committed files or job results lost, corrupted or unreadable (see $OUT/verify.txt)")
    fi
else
    FAILURES+=("no ledger was written")
fi
stop_server

# ---------------------------------------------------------------------------------------------
# 2. Disk full.
if [[ "$FILL" == 0 ]]; then
    log "disk-full part skipped (FILL=0)"
    echo "disk full: skipped (FILL=0)" > "$OUT/fill.txt"
elif ! mkdir -p "$FULL" || ! mount -t tmpfs -o "size=${DISK_MIB}m,mode=0755" tmpfs "$FULL" 2>"$WORK/mount.err"; then
    log "disk-full part SKIPPED: cannot mount a tmpfs here ($(cat "$WORK/mount.err" 2>/dev/null)); run as root where mount is permitted"
    echo "disk full: skipped, mount -t tmpfs is not permitted" > "$OUT/fill.txt"
else
    MOUNTED=1
    write_config "$WORK/full.toml" false "$(grep -q '^\[limits\]' "$WORK/vostok.toml" && echo 1 || echo 0)"
    FPORT=$(free_port)
    FURL="http://127.0.0.1:$FPORT"
    log "disk full: a ${DISK_MIB} MiB tmpfs at $FULL as the data folder; vostok on $FURL"
    if ! start_server "$WORK/full.toml" "$FULL" "$FPORT" "$WORK/full.log" "$WORK/full.pid"; then
        FAILURES+=("disk full: the server did not start on an empty ${DISK_MIB} MiB tmpfs")
    else
        tok=$("$BIN/vostok" --config "$WORK/full.toml" user add filler --data-dir "$FULL" 2>>"$WORK/users.log")
        tok=${tok##* }
        rc_fill=0
        "$BIN/vostok-bench" fill --url "$FURL" --user "filler:$tok" --file-kib "$FILL_FILE_KIB" \
            --ledger "$OUT/fill-ledger.json" --json "$OUT/fill.json" | tee "$OUT/fill.txt" || rc_fill=$?
        df -h "$FULL" | tee -a "$OUT/fill.txt" >&2
        if [[ $rc_fill -ne 0 ]]; then
            FAILURES+=("disk full: unclean refusals, lost files or an unanswering server (see $OUT/fill.txt)")
        fi
        if ! kill -0 "$VOSTOK_PID" 2>/dev/null; then
            FAILURES+=("disk full: the server died (log: $OUT/vostok-diskfull.log.gz)")
            VOSTOK_PID=""
        else
            # A restart on the (nearly) full disk: it must come up and still serve the files.
            stop_server
            if start_server "$WORK/full.toml" "$FULL" "$FPORT" "$WORK/full.log" "$WORK/full.pid"; then
                rc_v=0
                "$BIN/vostok-bench" verify --url "$FURL" --ledger "$OUT/fill-ledger.json" \
                    --wait 30 --json "$OUT/fill-verify.json" | tee -a "$OUT/fill.txt" || rc_v=$?
                if [[ $rc_v -ne 0 ]]; then
                    FAILURES+=("disk full: after a restart on the full disk, files are lost or corrupted")
                fi
            else
                FAILURES+=("disk full: the server does not start again on the full disk (log: $OUT/vostok-diskfull.log.gz)")
            fi
            stop_server
        fi
    fi
fi

# ---------------------------------------------------------------------------------------------
{
    echo "# vostok chaos test"
    echo
    echo "- binary: $BIN/vostok ($(date -r "$BIN/vostok" '+%Y-%m-%d %H:%M')); $CLIENTS clients for $DURATION s; seed $CHAOS_SEED"
    echo "- machine at the end: $(machine_note)"
    if [[ -n "$LIMITS_NOTE" ]]; then echo "- note: $LIMITS_NOTE"; fi
    echo
    echo "## Kills"
    echo
    sed 's/^/- /' "$OUT/kills.txt"
    echo
    echo "## Ledger check after the last restart"
    echo
    sed 's/^/    /' "$OUT/verify.txt" 2>/dev/null || echo "    (none)"
    echo
    echo "## Disk full"
    echo
    sed 's/^/    /' "$OUT/fill.txt" 2>/dev/null || echo "    (none)"
    echo
    echo "## Verdict"
    echo
    if [[ ${#FAILURES[@]} -eq 0 ]]; then
        echo "PASS: nothing lost"
    else
        echo "FAIL"
        for f in "${FAILURES[@]}"; do echo "- $f"; done
    fi
    echo
    echo "The load's own report (latencies, statuses, connection errors during the kills): load.md"
} > "$OUT/chaos.md"
echo
cat "$OUT/chaos.md"
log "report: $OUT/chaos.md (load: $OUT/load.md, ledger: $OUT/ledger.json)"
if [[ ${#FAILURES[@]} -gt 0 ]]; then exit 1; fi
