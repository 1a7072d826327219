#!/usr/bin/env bash
# Starts an S3 server on loopback for the tests: Ceph's RADOS gateway (radosgw) over a
# single-node Ceph cluster (one monitor, one OSD keeping its objects in memory), all on free
# ports of 127.0.0.1, everything under DIR. Needs Debian's radosgw ceph-mon ceph-osd ceph-common
# (scripts/install-test-deps.sh installs them). Stop it with scripts/s3-down.sh DIR.
#
#   scripts/s3-up.sh [DIR]        DIR defaults to /tmp/vostok-s3
#
# When it is up, DIR/env holds (shell syntax, `source DIR/env`):
#   VOSTOK_TEST_S3_ENDPOINT  http://127.0.0.1:PORT
#   VOSTOK_TEST_S3_ACCESS_KEY, VOSTOK_TEST_S3_SECRET_KEY  an S3 user's keys (made at each start)
#   VOSTOK_TEST_S3_REGION    us-east-1
#   VOSTOK_TEST_S3_BUCKET    a bucket that exists (the conformance suite makes its own)
# Idempotent: when the daemons under DIR are running and the gateway answers, it only prints
# DIR/env. A daemon that fails stops the script with the end of its log.
# The OSD holds at most VOSTOK_S3_MEMORY_MB (default 3072) MiB of objects, in memory.
set -euo pipefail

DIR="${1:-/tmp/vostok-s3}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
MEMORY_MB="${VOSTOK_S3_MEMORY_MB:-3072}"
BUCKET=vostok

say() { printf '[s3-up] %s\n' "$*" >&2; }
die() { printf '[s3-up] ERROR: %s\n' "$*" >&2; exit 1; }
# die_with_log NAME MESSAGE: the daemon NAME (mon.a, osd.0, client.rgw) failed.
die_with_log() {
    local log="$DIR/log/$1.log"
    printf '[s3-up] ERROR: %s\n' "$2" >&2
    if [[ -s "$log" ]]; then
        printf '[s3-up] --- last 40 lines of %s (errors: " -1 ") ---\n' "$log" >&2
        tail -n 40 "$log" >&2
        grep -F ' -1 ' "$log" | tail -n 5 >&2 || true
    else
        printf '[s3-up] (%s is empty or missing)\n' "$log" >&2
    fi
    if [[ -s "$DIR/log/$1.out" ]]; then
        printf '[s3-up] --- its output ---\n' >&2
        tail -n 20 "$DIR/log/$1.out" >&2
    fi
    exit 1
}

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl python3; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "$tool not found: run scripts/install-test-deps.sh (apt: radosgw ceph-mon ceph-osd ceph-common)"
done

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Already up?
if [[ -f "$DIR/env" ]] && alive "$DIR/run/mon.a.pid" && alive "$DIR/run/osd.0.pid" \
        && alive "$DIR/run/client.rgw.pid"; then
    # shellcheck disable=SC1091
    ( source "$DIR/env"; curl -s -o /dev/null --max-time 5 "$VOSTOK_TEST_S3_ENDPOINT/" ) && {
        say "already running ($DIR)"
        cat "$DIR/env"
        exit 0
    }
fi
# Whatever a previous start left (dead daemons, half-made cluster): stopped and removed.
"$HERE/s3-down.sh" "$DIR" >/dev/null 2>&1 || true
mkdir -p "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/log" "$DIR/rgw"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MON_PORT=$(free_port)
RGW_PORT=$(free_port)
while [[ "$RGW_PORT" == "$MON_PORT" ]]; do RGW_PORT=$(free_port); done
FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
ACCESS_KEY=$(python3 -c 'import secrets, string; print("".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20)))')
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(20))')

cat >"$DIR/ceph.conf" <<EOF
# A one-machine test cluster made by scripts/s3-up.sh: no authentication, one copy of each object.
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
osd objectstore = memstore
memstore device bytes = $((MEMORY_MB * 1024 * 1024))
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# The monitor's own data is a few MiB: a nearly full disk must not stop it (by default it
# refuses to start below 5% free space).
mon data avail crit = 0
mon data avail warn = 0

[mon.a]
mon data = $DIR/mon

[osd.0]
osd data = $DIR/osd

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
EOF
CONF=(-c "$DIR/ceph.conf")
start=$(date +%s)

# --- monitor ---------------------------------------------------------------------------------
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >"$DIR/log/mkfs.out" 2>&1 \
    || { cat "$DIR/log/mkfs.out" >&2; die "ceph-authtool failed"; }
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$DIR/monmap" >>"$DIR/log/mkfs.out" 2>&1 \
    || { cat "$DIR/log/mkfs.out" >&2; die "monmaptool failed"; }
timeout 120 ceph-mon "${CONF[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" >"$DIR/log/mon.a.out" 2>&1 \
    || die_with_log mon.a "ceph-mon --mkfs failed"
ceph-mon "${CONF[@]}" -i a >>"$DIR/log/mon.a.out" 2>&1 || die_with_log mon.a "ceph-mon did not start"
for _ in $(seq 1 60); do
    timeout 10 ceph "${CONF[@]}" --connect-timeout 5 mon stat >/dev/null 2>&1 && break
    alive "$DIR/run/mon.a.pid" || { sleep 0.5; alive "$DIR/run/mon.a.pid" || die_with_log mon.a "ceph-mon exited"; }
    sleep 0.5
done
timeout 10 ceph "${CONF[@]}" --connect-timeout 5 mon stat >/dev/null 2>&1 \
    || die_with_log mon.a "the monitor does not answer on 127.0.0.1:$MON_PORT"

# --- object storage daemon ---------------------------------------------------------------------
OSD_UUID=$(python3 -c 'import uuid; print(uuid.uuid4())')
OSD_ID=$(timeout 30 ceph "${CONF[@]}" osd new "$OSD_UUID" 2>>"$DIR/log/osd.0.out") \
    || die_with_log mon.a "ceph osd new failed"
[[ "$OSD_ID" == 0 ]] || die "expected OSD id 0, got '$OSD_ID'"
timeout 120 ceph-osd "${CONF[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/osd.0.out" 2>&1 \
    || die_with_log osd.0 "ceph-osd --mkfs failed"
ceph-osd "${CONF[@]}" -i 0 >>"$DIR/log/osd.0.out" 2>&1 || die_with_log osd.0 "ceph-osd did not start"
for _ in $(seq 1 120); do
    timeout 10 ceph "${CONF[@]}" osd stat -f json 2>/dev/null \
        | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("num_up_osds") == 1 else 1)' \
        && break
    alive "$DIR/run/osd.0.pid" || { sleep 0.5; alive "$DIR/run/osd.0.pid" || die_with_log osd.0 "ceph-osd exited"; }
    sleep 0.5
done
timeout 10 ceph "${CONF[@]}" osd stat -f json 2>/dev/null \
    | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("num_up_osds") == 1 else 1)' \
    || die_with_log osd.0 "the OSD did not come up within 60 s"

# --- RADOS gateway (S3) ------------------------------------------------------------------------
timeout 120 radosgw "${CONF[@]}" -n client.rgw >"$DIR/log/client.rgw.out" 2>&1 || die_with_log client.rgw "radosgw did not start"
ENDPOINT="http://127.0.0.1:$RGW_PORT"
for _ in $(seq 1 120); do
    curl -s -o /dev/null --max-time 5 "$ENDPOINT/" && break
    alive "$DIR/run/client.rgw.pid" || { sleep 0.5; alive "$DIR/run/client.rgw.pid" || die_with_log client.rgw "radosgw exited"; }
    sleep 0.5
done
curl -s -o /dev/null --max-time 5 "$ENDPOINT/" || die_with_log client.rgw "radosgw does not answer on $ENDPOINT within 60 s"
timeout 60 radosgw-admin "${CONF[@]}" user create --uid=vostok-test --display-name="vostok tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$DIR/log/user.out" 2>&1 \
    || { cat "$DIR/log/user.out" >&2; die_with_log client.rgw "radosgw-admin user create failed"; }
# A bucket, made with a signed S3 request: proves the keys and the endpoint work.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
if ! out=$(curl -sS --max-time 30 -X PUT -H "x-amz-content-sha256: $EMPTY_SHA256" \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -w '%{http_code}' -o "$DIR/log/bucket.out" "$ENDPOINT/$BUCKET") || [[ "$out" != 200 ]]; then
    cat "$DIR/log/bucket.out" >&2 2>/dev/null || true
    die_with_log client.rgw "creating the bucket $BUCKET failed (HTTP ${out:-none})"
fi

cat >"$DIR/env" <<EOF
VOSTOK_TEST_S3_ENDPOINT=$ENDPOINT
VOSTOK_TEST_S3_ACCESS_KEY=$ACCESS_KEY
VOSTOK_TEST_S3_SECRET_KEY=$SECRET_KEY
VOSTOK_TEST_S3_REGION=us-east-1
VOSTOK_TEST_S3_BUCKET=$BUCKET
EOF
say "S3 ready at $ENDPOINT after $(($(date +%s) - start)) s (bucket $BUCKET; settings in $DIR/env)"
cat "$DIR/env"
