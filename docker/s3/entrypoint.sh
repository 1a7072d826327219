#!/bin/bash
# Starts a single-node Ceph cluster and its S3 gateway in the foreground, all on loopback:
# a monitor on $VOSTOK_S3_MON, one OSD holding at most $VOSTOK_S3_MEMORY_MB MiB of objects in
# memory, radosgw on $VOSTOK_S3_LISTEN. Then creates the S3 user whose keys are
# $VOSTOK_S3_ACCESS_KEY and $VOSTOK_S3_SECRET_KEY and the bucket $VOSTOK_S3_BUCKET, and writes
# the file `ready` (the health check's). Everything is made anew at each start: the objects of
# a previous run are gone. Stops when any daemon stops.
set -euo pipefail

MON="${VOSTOK_S3_MON:-127.0.0.1:3300}"
LISTEN="${VOSTOK_S3_LISTEN:-127.0.0.1:7480}"
MEMORY_MB="${VOSTOK_S3_MEMORY_MB:-2048}"
BUCKET="${VOSTOK_S3_BUCKET:-vostok}"
ACCESS_KEY="${VOSTOK_S3_ACCESS_KEY:?set VOSTOK_S3_ACCESS_KEY : the access key of the S3 user}"
SECRET_KEY="${VOSTOK_S3_SECRET_KEY:?set VOSTOK_S3_SECRET_KEY : its secret key}"
DIR=/var/lib/vostok-s3

say() { printf '[vostok-s3] %s\n' "$*" >&2; }
die() { printf '[vostok-s3] ERROR: %s\n' "$*" >&2; exit 1; }
for v in "$MON" "$LISTEN"; do
    [[ "$v" =~ ^[0-9.]+:[0-9]+$ ]] || die "not an IPv4 address:port: $v"
done
[[ "$ACCESS_KEY" =~ ^[A-Za-z0-9]+$ && "$SECRET_KEY" =~ ^[A-Za-z0-9/+=]+$ ]] \
    || die "the S3 keys may hold letters, digits and / + = only"
[[ "$BUCKET" =~ ^[a-z0-9][a-z0-9.-]{2,62}$ ]] || die "not a bucket name: $BUCKET"
[[ "$MEMORY_MB" =~ ^[0-9]+$ ]] || die "VOSTOK_S3_MEMORY_MB is not a number: $MEMORY_MB"

rm -rf "$DIR"/{mon,osd,rgw,run,log,ready,ceph.conf,mon.keyring,monmap}
mkdir -p "$DIR"/{mon,osd,rgw,run,log}
FSID="$(cat /proc/sys/kernel/random/uuid)"
cat >"$DIR/ceph.conf" <<CONF
# A one-node cluster: no cephx authentication (every daemon on loopback), one copy of each object.
[global]
fsid = $FSID
mon host = v2:$MON
public addr = ${MON%:*}
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
mon data avail crit = 0
mon data avail warn = 0

[mon.a]
mon data = $DIR/mon

[osd.0]
osd data = $DIR/osd

[client.rgw]
rgw frontends = beast endpoint=$LISTEN
rgw data = $DIR/rgw
CONF
CONF=(-c "$DIR/ceph.conf")
pids=()
stop() {
    say "stopping"
    kill "${pids[@]}" 2>/dev/null || true
    wait || true
    exit 0
}
trap stop TERM INT
# fails with the end of the daemon's log
daemon_died() { tail -n 30 "$DIR/log/$1.log" >&2 2>/dev/null || true; die "$1 stopped"; }

ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --addv a "[v2:$MON]" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon "${CONF[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
ceph-mon "${CONF[@]}" -i a -f &
pids+=($!)
for _ in $(seq 1 60); do
    timeout 10 ceph "${CONF[@]}" --connect-timeout 5 mon stat >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || daemon_died mon.a
    sleep 0.5
done
say "monitor up on $MON"

OSD_UUID="$(cat /proc/sys/kernel/random/uuid)"
[[ "$(timeout 30 ceph "${CONF[@]}" osd new "$OSD_UUID")" == 0 ]] || die "ceph osd new did not give OSD 0"
ceph-osd "${CONF[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" 2>&1 | tail -n 5 >&2
ceph-osd "${CONF[@]}" -i 0 -f &
pids+=($!)
osd_up() { timeout 10 ceph "${CONF[@]}" osd stat 2>/dev/null | grep -q '1 up'; }
for _ in $(seq 1 120); do
    osd_up && break
    kill -0 "${pids[1]}" 2>/dev/null || daemon_died osd.0
    sleep 0.5
done
osd_up || daemon_died osd.0
say "OSD up (memstore, at most $MEMORY_MB MiB)"

radosgw "${CONF[@]}" -n client.rgw -f &
pids+=($!)
for _ in $(seq 1 120); do
    curl -s -o /dev/null --max-time 5 "http://$LISTEN/" && break
    kill -0 "${pids[2]}" 2>/dev/null || daemon_died client.rgw
    sleep 0.5
done
curl -s -o /dev/null --max-time 5 "http://$LISTEN/" || daemon_died client.rgw
radosgw-admin "${CONF[@]}" user create --uid=vostok --display-name=vostok \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
# The bucket, made with a signed S3 request: proves the keys and the endpoint work.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
code="$(curl -sS --max-time 30 -X PUT -H "x-amz-content-sha256: $EMPTY_SHA256" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -w '%{http_code}' -o "$DIR/log/bucket.out" "http://$LISTEN/$BUCKET")" || true
[[ "$code" == 200 ]] || { cat "$DIR/log/bucket.out" >&2; die "creating the bucket $BUCKET: HTTP $code"; }
touch "$DIR/ready"
say "S3 on http://$LISTEN, bucket $BUCKET"

wait -n "${pids[@]}" || true
for i in 0 1 2; do
    kill -0 "${pids[$i]}" 2>/dev/null || { n=(mon.a osd.0 client.rgw); daemon_died "${n[$i]}"; }
done
