#!/usr/bin/env bash
# The containers end to end: docker/compose.yaml (two vostok servers behind nginx, sharing
# PostgreSQL and an S3 bucket on Ceph's radosgw, and two query workers) started from local
# images, then real clients through nginx and on each server's own port. Run as root on Debian 12; no image registry is
# needed. Steps (each one timed):
#
#   1. install docker.io, debootstrap and Compose if missing; start dockerd if it is not
#      running (and stop it at the end only then)
#   2. the base image local/debian:bookworm: debootstrap --variant=minbase + docker import
#      (skipped when the image exists)
#   3. vostok's image from an already built binary (docker/Dockerfile.runtime; no Rust build
#      in Docker), PostgreSQL's, nginx's and the S3 service's from Debian's packages
#   4. `compose up -d` on free loopback ports, wait until every service is healthy; vostok-1
#      ingested the demo data into the bucket, vostok-2 did not
#   5. conformance/test_docker.py (pyvo: TAP sync, cone search, an async job, a product
#      download, all through nginx); it must run, not skip
#   6. both servers: nginx sends requests to each; a job created on one is read on the other;
#      VOSpace files uploaded through one server (or nginx) are read back through the other
#   6b. the query workers: a crossmatch through nginx is spread over both (the servers' logs
#      name them); `adql explain --analyze` in a server's container shows a task on each; with
#      one worker killed the same query gives the same answer (the server runs it)
#   7. the operator commands of docs/operations.md: config check, pg_dump
#   8. `docker kill` of the server running a job: nginx still answers, the other server takes
#      the job over after its lease and completes it; the killed server started again
#   9. one vostok alone on a local volume (`docker run`, SQLite): a query, the crossmatch of
#      6b (the same answer as with the workers), sqlite3 .backup
#  10. `compose down -v`, remove the vostok image made here
#
#   scripts/docker-test.sh
#
# Environment: VOSTOK_BIN (the binary; default ${CARGO_TARGET_DIR:-target}/debug/vostok),
# VOSTOK_VENV (default ~/.cache/vostok/venv), VOSTOK_COMPOSE (the Compose command; default
# `docker compose` when it works, else `docker-compose`, installed from Debian if missing),
# VOSTOK_DEBIAN_MIRROR (default: the first URIs of /etc/apt/sources.list.d/debian.sources).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
VENV="${VOSTOK_VENV:-$HOME/.cache/vostok/venv}"
BIN="${VOSTOK_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/vostok}"
BASE_IMAGE=local/debian:bookworm

say() { printf '[docker-test] %s\n' "$*" >&2; }
die() { printf '[docker-test] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, dockerd, debootstrap)"
[[ -x "$BIN" ]] || die "no vostok binary at $BIN: build it (cargo build) or set VOSTOK_BIN"
[[ -x "$VENV/bin/python" ]] || die "no venv at $VENV: run scripts/install-test-deps.sh"

WORK="$(mktemp -d /tmp/vostok-docker-test.XXXXXX)"
PROJECT="vostoktest$$"
IMAGE="local/vostok:test-$$"
DOCKERD_PID=""
COMPOSE_UP=""
SINGLE=""
TIMES=()
STEP_NAME="" STEP_START=0

cleanup() {
    local rc=$?
    set +e
    [[ $rc -ne 0 && -n "$STEP_NAME" ]] && STEP_NAME="$STEP_NAME (FAILED)"
    step_end
    if [[ -n "$COMPOSE_UP" ]]; then
        if [[ $rc -ne 0 ]]; then
            say "--- compose ps and the end of each service's log ---"
            compose ps >&2
            compose logs --no-color --tail 60 >&2
        fi
        compose down -v --remove-orphans >/dev/null 2>&1 || say "compose down failed"
    fi
    if [[ -n "$SINGLE" ]]; then
        [[ $rc -ne 0 ]] && docker logs --tail 40 "$SINGLE" >&2
        docker rm -f "$SINGLE" >/dev/null 2>&1
        docker volume rm "$SINGLE" >/dev/null 2>&1
    fi
    docker image inspect "$IMAGE" >/dev/null 2>&1 && docker rmi "$IMAGE" >/dev/null
    if [[ -n "$DOCKERD_PID" ]]; then
        say "stopping the dockerd this script started (pid $DOCKERD_PID)"
        kill "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    fi
    rm -rf "$WORK"
    if ((${#TIMES[@]})); then
        say "step times:"
        printf '[docker-test]   %s\n' "${TIMES[@]}" >&2
    fi
    if [[ $rc -eq 0 ]]; then say "all passed"; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT

step() {
    step_end
    STEP_NAME="$1" STEP_START=$(date +%s)
    printf '\n==== docker-test: %s ====\n' "$1" >&2
}
step_end() {
    if [[ -n "$STEP_NAME" ]]; then
        TIMES+=("$(printf '%4d s  %s' $(($(date +%s) - STEP_START)) "$STEP_NAME")")
        STEP_NAME=""
    fi
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 \
        || { apt-get -q -o DPkg::Lock::Timeout=600 update >>"$WORK/apt.log" 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install \
                    -y --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1; } \
        || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install $* failed"; }
}

# --- 1. tools and the daemon ---------------------------------------------------------------
step "install docker.io, debootstrap, Compose if missing; start dockerd"
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ((${#need[@]})); then
    say "apt-get install ${need[*]}"
    apt_install "${need[@]}"
fi
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: $WORK/dockerd.log)"
    dockerd >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -n 30 "$WORK/dockerd.log" >&2; die "dockerd did not start"; }
fi
if [[ -n "${VOSTOK_COMPOSE:-}" ]]; then
    read -r -a COMPOSE <<<"$VOSTOK_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    command -v docker-compose >/dev/null 2>&1 || { say "apt-get install docker-compose"; apt_install docker-compose; }
    COMPOSE=(docker-compose)
fi
say "docker $(docker version -f '{{.Server.Version}}'); compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -n 1))"
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$REPO/docker/compose.yaml" "$@"; }

# --- 2. the base image ---------------------------------------------------------------------
step "base image $BASE_IMAGE (debootstrap + docker import)"
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE exists: kept"
else
    mirror="${VOSTOK_DEBIAN_MIRROR:-}"
    if [[ -z "$mirror" && -f /etc/apt/sources.list.d/debian.sources ]]; then
        mirror="$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
    fi
    mirror="${mirror:-http://deb.debian.org/debian}"
    say "debootstrap --variant=minbase bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # bookworm-updates and bookworm-security too: current packages, and Rust >= 1.94
    # (rustc-web) for docker/Dockerfile's build stage
    cat >"$WORK/rootfs/etc/apt/sources.list" <<EOF
deb ${mirror} bookworm main
deb ${mirror} bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
fi

# --- 3. images -----------------------------------------------------------------------------
step "images: vostok (Dockerfile.runtime around $BIN), PostgreSQL, nginx, S3 (radosgw)"
# The runtime stage is written twice (docker/Dockerfile, docker/Dockerfile.runtime): the same text.
runtime_block() { sed -n '/^# >>> runtime$/,/^# <<< runtime$/p' "$1"; }
[[ -n "$(runtime_block docker/Dockerfile)" ]] || die "docker/Dockerfile has no '# >>> runtime' block"
diff <(runtime_block docker/Dockerfile) <(runtime_block docker/Dockerfile.runtime) >&2 \
    || die "the runtime stages of docker/Dockerfile and docker/Dockerfile.runtime differ"
ctx="$WORK/context"
mkdir -p "$ctx/data" "$ctx/docker"
# only the debug information goes (the symbols stay for backtraces): a far smaller image
objcopy --strip-debug "$BIN" "$ctx/vostok" 2>/dev/null || cp "$BIN" "$ctx/vostok"
cp -r data/demo "$ctx/data/demo"
cp docker/vostok.toml docker/entrypoint.sh "$ctx/docker/"
docker build -q -f docker/Dockerfile.runtime -t "$IMAGE" "$ctx" >/dev/null
# the untagged image of the stage that only held the binary
docker image prune -f --filter label=org.vostok.stage=binary >/dev/null
rm -rf "$ctx"
export VOSTOK_IMAGE="$IMAGE"
# The others with the classic builder, as compose.yaml names them: its layer cache makes an
# unchanged image a no-op whichever Compose runs (Compose 2 builds through BuildKit and rebuilt
# them every time on Docker 20.10)
docker build -q -t local/vostok-postgres:15 docker/postgres >/dev/null
docker build -q -t local/vostok-nginx:latest docker/nginx >/dev/null
docker build -q -t local/vostok-s3:latest docker/s3 >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E "^($IMAGE|local/vostok-(postgres|nginx|s3)|$BASE_IMAGE)" >&2 || true

# --- 4. up -----------------------------------------------------------------------------------
step "compose up -d, wait until healthy"
# A free port below the ephemeral range (32768-): radosgw binds a while after it starts, and
# an ephemeral port may meanwhile be taken by an outgoing connection.
PORTS=()
free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 12000 ))
        [[ " ${PORTS[*]} " == *" $p "* ]] && continue
        "$VENV/bin/python" -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$p" \
            2>/dev/null && break
    done
    PORTS+=("$p")
    echo "$p"
}
free_port >/dev/null; HTTP_PORT=${PORTS[-1]}
free_port >/dev/null; PORT_1=${PORTS[-1]}
free_port >/dev/null; PORT_2=${PORTS[-1]}
free_port >/dev/null; S3_PORT=${PORTS[-1]}
free_port >/dev/null; MON_PORT=${PORTS[-1]}
free_port >/dev/null; WORKER_PORT_1=${PORTS[-1]}
free_port >/dev/null; WORKER_PORT_2=${PORTS[-1]}
rand() { tr -dc "$1" </dev/urandom | head -c "$2" || true; }
export VOSTOK_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
    VOSTOK_UPSTREAM_1="127.0.0.1:$PORT_1" VOSTOK_UPSTREAM_2="127.0.0.1:$PORT_2" \
    VOSTOK_S3_LISTEN="127.0.0.1:$S3_PORT" VOSTOK_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" \
    VOSTOK_S3_MON="127.0.0.1:$MON_PORT" VOSTOK_S3_MEMORY_MB=1024 \
    VOSTOK_S3_ACCESS_KEY="$(rand A-Z0-9 20)" VOSTOK_S3_SECRET_KEY="$(rand a-zA-Z0-9 40)" \
    VOSTOK_WORKER_1="127.0.0.1:$WORKER_PORT_1" VOSTOK_WORKER_2="127.0.0.1:$WORKER_PORT_2" \
    VOSTOK_WORKER_SECRET="$(rand a-zA-Z0-9 32)"
W1="http://127.0.0.1:$WORKER_PORT_1" W2="http://127.0.0.1:$WORKER_PORT_2"
BASE_URL="http://127.0.0.1:$HTTP_PORT"
S1="http://127.0.0.1:$PORT_1" S2="http://127.0.0.1:$PORT_2"
LEASE=5
# The shipped configuration with public_url naming this run's nginx, and a short job lease.
sed "s|^public_url = .*|public_url = \"$BASE_URL\"|" docker/vostok.toml >"$WORK/vostok.toml"
grep -qx "public_url = \"$BASE_URL\"" "$WORK/vostok.toml" || die "docker/vostok.toml has no public_url line"
grep -q '^\[uws\]' "$WORK/vostok.toml" && die "docker/vostok.toml has a [uws] table: set lease_seconds there"
printf '\n[uws]\nlease_seconds = %d\n' "$LEASE" >>"$WORK/vostok.toml"
# Scans of the demo catalogs (a few MB) are large enough to be spread over the workers.
grep -q '^\[distributed\]' "$WORK/vostok.toml" && die "docker/vostok.toml has a [distributed] table: set bytes_per_task there"
printf '\n[distributed]\nbytes_per_task = 262144\n' >>"$WORK/vostok.toml"
export VOSTOK_CONFIG="$WORK/vostok.toml"
COMPOSE_UP=1
compose up -d
healthy() {  # healthy SERVICE: its container reports healthy
    local id
    id="$(compose ps -q "$1")"
    [[ -n "$id" ]] && [[ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")" == healthy ]]
}
wait_healthy() {  # wait_healthy SECONDS SERVICE...
    local deadline=$(($(date +%s) + $1)) s; shift
    for s in "$@"; do
        until healthy "$s"; do
            (($(date +%s) < deadline)) || die "service $s not healthy after the time allowed"
            sleep 1
        done
        say "$s healthy"
    done
}
wait_healthy 900 db s3 worker-1 worker-2 vostok-1 vostok-2 nginx
for u in "$BASE_URL" "$S1" "$S2"; do
    curl -fsS -o /dev/null "$u/health/ready" || die "$u/health/ready does not answer 200"
done
# logs SERVICE: a file holding its log so far (grep -q on a pipe would end `compose logs`
# early, with SIGPIPE, which pipefail reports as a failure)
logs() { compose logs --no-color "$1" >"$WORK/$1.log" 2>&1; echo "$WORK/$1.log"; }
grep -q 'first start: ingesting demo catalog' "$(logs vostok-1)" || die "vostok-1 did not ingest the demo data"
! grep -q 'first start: ingesting' "$(logs vostok-2)" || die "vostok-2 ingested the demo data too"
# vostok-2 started once vostok-1 was serving (it waits for vostok-1's health check)
listening_1="$(grep -m1 'listening on http' "$(logs vostok-1)" | grep -oE '20[0-9]{2}-[0-9-]+T[0-9:.]+Z')"
started_2="$(docker inspect -f '{{.State.StartedAt}}' "$(compose ps -q vostok-2)")"
[[ -n "$listening_1" && "$listening_1" < "$started_2" ]] \
    || die "vostok-2 started at $started_2, vostok-1 listened at '$listening_1'"
say "vostok-1 ingested the demo data and listened at $listening_1; vostok-2 started at $started_2"
# The demo data are objects in the bucket.
s3_objects() {  # s3_objects PREFIX: the number of objects under it
    "$VENV/bin/python" - "$1" <<'PY'
import os, sys
import boto3
from botocore.config import Config
c = boto3.client("s3", endpoint_url=os.environ["VOSTOK_S3_ENDPOINT"], region_name="us-east-1",
                 aws_access_key_id=os.environ["VOSTOK_S3_ACCESS_KEY"],
                 aws_secret_access_key=os.environ["VOSTOK_S3_SECRET_KEY"],
                 config=Config(s3={"addressing_style": "path"}))
print(sum(len(p.get("Contents", [])) for p in
          c.get_paginator("list_objects_v2").paginate(Bucket="vostok", Prefix=sys.argv[1])))
PY
}
n_catalogs="$(s3_objects data/catalogs/)"
n_products="$(s3_objects data/products/)"
((n_catalogs > 0 && n_products > 0)) || die "no catalogs or products in s3://vostok/data/"
say "s3://vostok/data: $n_catalogs catalog objects, $n_products product objects"

# --- 5. clients ------------------------------------------------------------------------------
step "pyvo smoke test through nginx (conformance/test_docker.py)"
VOSTOK_DOCKER_URL="$BASE_URL" "$VENV/bin/python" -m pytest conformance/test_docker.py -v \
    -p no:cacheprovider --junitxml="$WORK/junit.xml"
# every test ran (a skip here would be a test that did not happen)
"$VENV/bin/python" - "$WORK/junit.xml" <<'PY' || die "conformance/test_docker.py did not run every test"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
tests, skipped = int(suite.get("tests")), int(suite.get("skipped"))
print(f"[docker-test] test_docker.py: {tests} tests, {skipped} skipped", file=sys.stderr)
sys.exit(0 if tests > 0 and skipped == 0 else 1)
PY

# --- 6. both servers ---------------------------------------------------------------------------
step "both servers: nginx balances; jobs and VOSpace files written on one are read on the other"
# Requests through nginx: each one's X-Request-Id ends the access-log line of the server that
# answered it.
: >"$WORK/ids"
for _ in $(seq 1 10); do
    curl -fsS -o /dev/null -D - "$BASE_URL/tap/availability" | tr -d '\r' \
        | awk 'tolower($1) == "x-request-id:" { print $2 }' >>"$WORK/ids"
done
[[ "$(wc -l <"$WORK/ids")" == 10 ]] || die "not every answer through nginx has an X-Request-Id"
n1="$(grep -cFf "$WORK/ids" "$(logs vostok-1)" || true)"
n2="$(grep -cFf "$WORK/ids" "$(logs vostok-2)" || true)"
((n1 > 0 && n2 > 0 && n1 + n2 == 10)) || die "10 requests through nginx: $n1 answered by vostok-1, $n2 by vostok-2"
say "10 requests through nginx: $n1 answered by vostok-1, $n2 by vostok-2"

create_job() {  # create_job BASE QUERY: a running async job's URL
    curl -fsS -o /dev/null -w '%{redirect_url}' "$1/tap/async" \
        --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL --data-urlencode PHASE=RUN \
        --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=$2"
}
wait_job() {  # wait_job URL SECONDS: the phase it ended in
    local phase="" deadline=$(($(date +%s) + $2))
    while (($(date +%s) < deadline)); do
        phase="$(curl -fsS "$1/phase" || true)"
        [[ "$phase" == COMPLETED || "$phase" == ERROR || "$phase" == ABORTED ]] && break
        sleep 1
    done
    echo "$phase"
}
on() { echo "$1${2#"$BASE_URL"}"; }  # on BASE URL: URL (a path on nginx) sent to BASE
base_of() { if [[ "$1" == vostok-1 ]]; then echo "$S1"; else echo "$S2"; fi; }
db_phase() {
    compose exec -T db psql -h /run/postgresql -U vostok -d vostok -Atc \
        "SELECT phase FROM uws_jobs WHERE id = '$1'" | tr -d '\r'
}
hip_rows="$(zcat data/demo/hip2.dat.gz | wc -l)"
# a job created on vostok-1, read on vostok-2 (and the reverse), and jobs created through nginx
jobs=("$(create_job "$S1" "SELECT COUNT(*) AS n FROM hipparcos.hip2")"
      "$(create_job "$S2" "SELECT COUNT(*) AS n FROM hipparcos.hip2")")
for _ in 1 2 3 4; do jobs+=("$(create_job "$BASE_URL" "SELECT COUNT(*) AS n FROM hipparcos.hip2")"); done
for url in "${jobs[@]}"; do
    [[ "$url" == "$BASE_URL/tap/async/"* ]] || die "job URL '$url' is not on $BASE_URL (public_url)"
    [[ "$(wait_job "$url" 300)" == COMPLETED ]] || die "job $url did not complete"
    [[ "$(db_phase "${url##*/}")" == COMPLETED ]] || die "job ${url##*/} is not COMPLETED in PostgreSQL's uws_jobs"
    for base in "$S1" "$S2" "$BASE_URL"; do
        [[ "$(curl -fsS "$(on "$base" "$url")/phase")" == COMPLETED ]] || die "$url: not COMPLETED on $base"
        [[ "$(curl -fsS "$(on "$base" "$url")/results/result" | tr -d '\r')" == "n"$'\n'"$hip_rows" ]] \
            || die "$url: the result read on $base is not the row count $hip_rows"
    done
done
printf 'job %s (tap): executing\n' "${jobs[@]##*/}" >"$WORK/executing"
ran1="$(grep -cFf "$WORK/executing" "$(logs vostok-1)" || true)"
ran2="$(grep -cFf "$WORK/executing" "$(logs vostok-2)" || true)"
say "${#jobs[@]} jobs (one created on each server, 4 through nginx): COMPLETED, the same result on both servers and nginx; executed by vostok-1: $ran1, vostok-2: $ran2"
for url in "${jobs[@]}"; do curl -fsS -o /dev/null -X DELETE "$(on "$S2" "$url")"; done
[[ -z "$(db_phase "${jobs[0]##*/}")" ]] || die "job ${jobs[0]##*/} still in uws_jobs after DELETE on vostok-2"

token="$(compose exec -T vostok-1 vostok user add alice 2>"$WORK/user-add.log" | awk 'END { print $NF }')"
[[ -n "$token" ]] || { cat "$WORK/user-add.log" >&2; die "vostok user add alice gave no token"; }
AUTH=(-H "Authorization: Bearer $token")
for base in "$S1" "$S2" "$BASE_URL"; do
    [[ "$(curl -fsS "${AUTH[@]}" "$base/vospace/nodes/alice")" == *'vos://vostok.example!vospace/alice'* ]] \
        || die "no node alice on $base"
done
transfer() {  # transfer BASE push|pull NAME: the data URL the server at BASE negotiates
    local dir=pushToVoSpace proto=httpput
    [[ "$2" == pull ]] && dir=pullFromVoSpace proto=httpget
    curl -fsS -o /dev/null -w '%{redirect_url}' "${AUTH[@]}" "$1/vospace/synctrans" \
        --data-urlencode "TARGET=vos://vostok.example!vospace/alice/$3" \
        --data-urlencode "DIRECTION=$dir" --data-urlencode "PROTOCOL=ivo://ivoa.net/vospace/core#$proto" \
        --data-urlencode REQUEST=redirect
}
# name, server negotiating and receiving the upload, server negotiating and sending it back
for spec in "one.bin $S1 $S2" "two.bin $S2 $S1" "three.bin $BASE_URL $S1" "three.bin $BASE_URL $S2"; do
    read -r name up down <<<"$spec"
    if [[ ! -f "$WORK/$name" ]]; then
        head -c $((3 * 1024 * 1024 + RANDOM)) /dev/urandom >"$WORK/$name"
        put="$(transfer "$up" push "$name")"
        [[ "$put" == "$BASE_URL/vospace/"* ]] || die "upload URL '$put' is not on $BASE_URL"
        curl -fsS -o /dev/null -T "$WORK/$name" "$(on "$up" "$put")"
    fi
    get="$(transfer "$down" pull "$name")"
    curl -fsS -o "$WORK/$name.back" "$(on "$down" "$get")"
    cmp -s "$WORK/$name" "$WORK/$name.back" || die "$name uploaded through $up differs read through $down"
done
n_vospace="$(s3_objects data/vospace/)"
((n_vospace >= 3)) || die "the VOSpace files are not in the bucket ($n_vospace objects under data/vospace/)"
say "VOSpace: uploaded through vostok-1, vostok-2 and nginx, read back the same through the other server(s); $n_vospace objects in s3://vostok/data/vospace/"

# --- 6b. the query workers ---------------------------------------------------------------------
step "query workers: a crossmatch spread over both, explain --analyze, a worker killed"
XMATCH="SELECT COUNT(*) AS n, SUM(h.hip) AS s FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, 2.0/3600))"
tap_csv() {  # tap_csv BASE QUERY: the CSV answer, without carriage returns
    curl -fsS "$1/tap/sync" --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL \
        --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=$2" | tr -d '\r'
}
spread_lines() {  # the servers' log lines naming where tasks ran
    cat "$(logs vostok-1)" "$(logs vostok-2)" | grep -F 'query on the workers: stage' || true
}
before="$(spread_lines | wc -l)"
XMATCH_ANSWER="$(tap_csv "$BASE_URL" "$XMATCH")"
[[ "$XMATCH_ANSWER" =~ ^n,s$'\n'[1-9][0-9]*,[1-9][0-9]*$ ]] || die "the crossmatch through nginx: '$XMATCH_ANSWER'"
spread_lines | tail -n +"$((before + 1))" >"$WORK/spread"
grep -qF "$W1" "$WORK/spread" && grep -qF "$W2" "$WORK/spread" \
    || { cat "$WORK/spread" >&2; die "the crossmatch was not spread over both workers ($W1, $W2)"; }
say "crossmatch through nginx: ${XMATCH_ANSWER//$'\n'/ }; $(wc -l <"$WORK/spread") stages, tasks on both workers"
# explain --analyze in a server's container, with the workers in its configuration (the last
# table of the file the entrypoint wrote is [distributed], above)
compose exec -T vostok-1 bash -c 'cp vostok.toml /tmp/explain.toml && printf "workers = [\"%s\", \"%s\"]\n" "$1" "$2" >>/tmp/explain.toml && vostok --config /tmp/explain.toml adql explain --analyze; rc=$?; rm -f /tmp/explain.toml; exit $rc' \
    explain "$W1" "$W2" <<<"$XMATCH" >"$WORK/explain.txt" 2>"$WORK/explain.err" \
    || { tail -n 20 "$WORK/explain.err" >&2; die "adql explain --analyze failed in vostok-1"; }
sed -n '/^== where the tasks ran/,/^== run/p' "$WORK/explain.txt" >"$WORK/where"
grep -q "^stage [0-9]*: .* on $W1" "$WORK/where" && grep -q "on $W2" "$WORK/where" \
    || { cat "$WORK/explain.txt" >&2; die "explain --analyze does not show tasks on both workers"; }
grep -qx '1 row in [0-9.]* s' "$WORK/explain.txt" || die "explain --analyze did not run the crossmatch"
say "explain --analyze in vostok-1: $(grep -c '^stage ' "$WORK/where") stages; $(grep -m1 '^stage ' "$WORK/where")"
# one worker killed: the servers run the query themselves, with the same answer
docker kill "$(compose ps -q worker-1)" >/dev/null
[[ "$(tap_csv "$BASE_URL" "$XMATCH")" == "$XMATCH_ANSWER" ]] || die "the crossmatch with worker-1 killed differs"
[[ "$(tap_csv "$S1" "$XMATCH")" == "$XMATCH_ANSWER" ]] || die "the crossmatch on vostok-1 with worker-1 killed differs"
grep -qF 'the query workers failed, the query runs here' "$(logs vostok-1)" \
    || die "vostok-1 did not fall back to running the query itself"
compose start worker-1 >/dev/null
wait_healthy 120 worker-1
say "worker-1 killed: the same answer (the server ran it); worker-1 started again"

# --- 7. what docs/operations.md tells operators to run -----------------------------------------
step "operator commands: config check, pg_dump (docs/operations.md)"
for s in vostok-1 vostok-2; do
    compose exec -T "$s" vostok config check >"$WORK/config.txt"
    grep -qx "public_url = \"$BASE_URL\"" "$WORK/config.txt" \
        || die "config check in $s does not show the mounted vostok.toml"
    grep -qx 'data = "s3://vostok/data"' "$WORK/config.txt" || die "config check in $s: data is not the bucket"
    grep -qx "lease_seconds = $LEASE" "$WORK/config.txt" || die "config check in $s: no lease_seconds = $LEASE"
    grep -qF "$VOSTOK_S3_SECRET_KEY" "$WORK/config.txt" && die "config check in $s shows the S3 secret key"
    grep -qF '["aws_secret_access_key", "***"]' "$WORK/config.txt" \
        || die "config check in $s: the S3 secret key is not shown as ***"
done
compose exec -T db pg_dump -Fc -h /run/postgresql -U vostok vostok >"$WORK/records.dump"
[[ "$(head -c 5 "$WORK/records.dump")" == PGDMP ]] || die "pg_dump did not write a custom-format dump"
say "config check (both servers: the mounted file, the bucket, the lease, the S3 secret as ***), user add (above), pg_dump: ok"

# --- 8. a server killed while it runs a job -----------------------------------------------------
step "docker kill (SIGKILL) the server running a job: nginx answers, the other completes the job"
# A self-join sized to run about 12 s on this binary (a debug build runs the one with 200 rows
# of `a` in about 2 s); its answer from the raw file.
slow() { echo "SELECT COUNT(*) AS n FROM hipparcos.hip2 AS a, hipparcos.hip2 AS b WHERE a.hip <= $1 AND MOD(a.hip + b.hip, 7) = 0"; }
t0=$(date +%s%N)
curl -fsS -o /dev/null "$S1/tap/sync" --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL \
    --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=$(slow 200)"
ms=$(( ($(date +%s%N) - t0) / 1000000 + 1 ))
BOUND=$(( 200 * 12000 / ms ))
((BOUND <= 120000)) || BOUND=120000
SLOW="$(slow "$BOUND")"
say "the self-join up to hip 200 took $ms ms: the job's runs up to hip $BOUND"
expected="$(zcat data/demo/hip2.dat.gz | awk -v b="$BOUND" '
    { h = $1 + 0; c[h % 7]++; if (h <= b) a[h % 7]++ }
    END { n = 0; for (r = 0; r < 7; r++) n += a[r] * c[(7 - r) % 7]; print n }')"
job="$(create_job "$BASE_URL" "$SLOW")"
id="${job##*/}"
runner=""
deadline=$(($(date +%s) + 60))
until [[ -n "$runner" ]]; do
    for s in vostok-1 vostok-2; do
        grep -qF "job $id (tap): executing" "$(logs "$s")" && runner="$s"
    done
    [[ -n "$runner" ]] && break
    (($(date +%s) < deadline)) || die "job $id did not start executing"
    sleep 0.5
done
other=vostok-1; [[ "$runner" == vostok-1 ]] && other=vostok-2
[[ "$(curl -fsS "$job/phase")" == EXECUTING ]] || die "job $id is not EXECUTING on $runner (too fast?)"
docker kill "$(compose ps -q "$runner")" >/dev/null
killed=$(date +%s)
say "job $id executing on $runner: SIGKILLed it"
for _ in $(seq 1 10); do
    [[ "$(curl -fsS "$BASE_URL/tap/sync" --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL \
        --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=SELECT COUNT(*) AS n FROM hipparcos.hip2" \
        | tr -d '\r')" == "n"$'\n'"$hip_rows" ]] || die "a query through nginx failed with $runner killed"
done
phase="$(curl -fsS "$job/phase")"
[[ "$phase" == EXECUTING || "$phase" == QUEUED ]] || die "job $id: $phase right after the kill"
say "10 queries through nginx answered with $runner killed"
[[ "$(wait_job "$job" 600)" == COMPLETED ]] || die "job $id did not complete after $runner was killed"
took=$(($(date +%s) - killed))
grep -qF "job $id (tap): the server running it stopped renewing" "$(logs "$other")" \
    || die "$other did not take job $id over"
[[ "$(curl -fsS "$job/results/result" | tr -d '\r')" == "n"$'\n'"$expected" ]] \
    || die "job $id: the result is not $expected"
say "$other took job $id over after the lease ($LEASE s) and completed it $took s after the kill: n = $expected"
compose start "$runner" >/dev/null
wait_healthy 300 "$runner"
[[ "$(curl -fsS "$(on "$(base_of "$runner")" "$job")/results/result" | tr -d '\r')" == "n"$'\n'"$expected" ]] \
    || die "job $id: the restarted $runner does not give its result"
curl -fsS -o /dev/null -X DELETE "$job"
say "$runner started again: healthy, and gives the job's result"

# --- 9. one server alone -------------------------------------------------------------------------
step "one vostok alone: docker run with a local volume (SQLite)"
SINGLE="vostoktest$$-single"
free_port >/dev/null; PORT_S=${PORTS[-1]}
sed "s|^public_url = .*|public_url = \"http://127.0.0.1:$PORT_S\"|" docker/vostok.toml >"$WORK/single.toml"
docker run -d --name "$SINGLE" --network host -v "$SINGLE:/var/lib/vostok/vostok-data" \
    -v "$WORK/single.toml:/etc/vostok/vostok.toml:ro" -e "VOSTOK_HEALTH_ADDR=127.0.0.1:$PORT_S" \
    "$IMAGE" serve --bind "127.0.0.1:$PORT_S" >/dev/null
deadline=$(($(date +%s) + 300))
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT_S/health/ready" 2>/dev/null; do
    [[ "$(docker inspect -f '{{.State.Running}}' "$SINGLE")" == true ]] || die "the single server exited"
    (($(date +%s) < deadline)) || die "the single server is not ready"
    sleep 1
done
[[ "$(curl -fsS "http://127.0.0.1:$PORT_S/tap/sync" --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL \
    --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=SELECT COUNT(*) AS n FROM hipparcos.hip2" \
    | tr -d '\r')" == "n"$'\n'"$hip_rows" ]] || die "the single server's row count is wrong"
single_xmatch="$(tap_csv "http://127.0.0.1:$PORT_S" "$XMATCH")"
[[ "$single_xmatch" == "$XMATCH_ANSWER" ]] \
    || die "the crossmatch: '$single_xmatch' on one server alone, '$XMATCH_ANSWER' with the workers"
docker exec "$SINGLE" vostok user add carol >/dev/null 2>&1 || die "user add on the single server failed"
docker exec "$SINGLE" sqlite3 vostok-data/vospace.sqlite ".backup vostok-data/vospace.backup"
[[ "$(docker exec "$SINGLE" sqlite3 vostok-data/vospace.backup 'PRAGMA integrity_check')" == ok ]] \
    || die "the online backup of vospace.sqlite is not a sound database"
docker exec "$SINGLE" test -f vostok-data/uws.sqlite || die "no uws.sqlite in the single server's volume"
docker rm -f "$SINGLE" >/dev/null
docker volume rm "$SINGLE" >/dev/null
SINGLE=""
say "ready, the row count, the crossmatch (the workers' answer), user add, sqlite3 .backup of vospace.sqlite: ok"

# --- 10. down ------------------------------------------------------------------------------
step "compose down -v"
compose down -v --remove-orphans >/dev/null
COMPOSE_UP=""
step_end
