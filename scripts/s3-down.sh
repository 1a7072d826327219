#!/usr/bin/env bash
# Stops the S3 server scripts/s3-up.sh DIR started (its daemons' pid files under DIR/run),
# waits until they have exited (the OSD takes a few seconds), then removes what it kept
# under DIR (its objects were in memory: they are gone). Idempotent.
#
#   scripts/s3-down.sh [DIR]      DIR defaults to /tmp/vostok-s3
set -uo pipefail

DIR="${1:-/tmp/vostok-s3}"
[[ -d "$DIR" ]] || exit 0

pids=()
for f in "$DIR"/run/*.pid; do
    [[ -f "$f" ]] || continue
    p=$(cat "$f")
    # Only a process that is one of this cluster's daemons (its command line names DIR's config).
    if [[ "$p" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$DIR/ceph.conf"; then
        kill "$p" 2>/dev/null && pids+=("$p")
    fi
done
for _ in $(seq 1 150); do
    left=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
    ((${#left[@]})) || break
    sleep 0.2
done
for p in "${left[@]}"; do
    printf '[s3-down] %s did not stop within 30 s: killed\n' "$p" >&2
    kill -9 "$p" 2>/dev/null
done
rm -rf "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/log" "$DIR/rgw" "$DIR/ceph.conf" \
    "$DIR/mon.keyring" "$DIR/monmap" "$DIR/env"
rmdir "$DIR" 2>/dev/null || true
exit 0
