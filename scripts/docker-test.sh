#!/usr/bin/env bash
# The containers end to end: docker/compose.yaml (vostok, PostgreSQL, nginx) started from
# local images, then real clients through nginx. Run as root on Debian 12; no image registry
# is needed. Steps (each one timed):
#
#   1. install docker.io, debootstrap and Compose if missing; start dockerd if it is not
#      running (and stop it at the end only then)
#   2. the base image local/debian:bookworm: debootstrap --variant=minbase + docker import
#      (skipped when the image exists)
#   3. vostok's image from an already built binary (docker/Dockerfile.runtime; no Rust build
#      in Docker), PostgreSQL's and nginx's from Debian's packages
#   4. `compose up -d` on free loopback ports, wait until every service is healthy
#   5. conformance/test_docker.py (pyvo: TAP sync, cone search, an async job, a product
#      download, all through nginx); it must run, not skip
#   6. the operator commands of docs/operations.md: config check, user add, pg_dump, sqlite3
#   7. a job and a user survive a restart of vostok (record in PostgreSQL, result and
#      vospace.sqlite on the data volume)
#   8. `compose down -v`, remove the vostok image made here
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
step "images: vostok (Dockerfile.runtime around $BIN), PostgreSQL, nginx"
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
cp docker/vostok.toml "$ctx/docker/vostok.toml"
docker build -q -f docker/Dockerfile.runtime -t "$IMAGE" "$ctx" >/dev/null
# the untagged image of the stage that only held the binary
docker image prune -f --filter label=org.vostok.stage=binary >/dev/null
rm -rf "$ctx"
export VOSTOK_IMAGE="$IMAGE"
# PostgreSQL's and nginx's with the classic builder, as compose.yaml names them: its layer cache
# makes an unchanged image a no-op whichever Compose runs (Compose 2 builds through BuildKit and
# rebuilt them every time on Docker 20.10)
docker build -q -t local/vostok-postgres:15 docker/postgres >/dev/null
docker build -q -t local/vostok-nginx:latest docker/nginx >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^($IMAGE|local/vostok-(postgres|nginx)|$BASE_IMAGE)" >&2 || true

# --- 4. up -----------------------------------------------------------------------------------
step "compose up -d, wait until healthy"
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
UP_PORT=$(free_port)
while [[ "$UP_PORT" == "$HTTP_PORT" ]]; do UP_PORT=$(free_port); done
export VOSTOK_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" VOSTOK_UPSTREAM="127.0.0.1:$UP_PORT"
BASE_URL="http://127.0.0.1:$HTTP_PORT"
# The shipped configuration with public_url naming this run's nginx.
sed "s|^public_url = .*|public_url = \"$BASE_URL\"|" docker/vostok.toml >"$WORK/vostok.toml"
grep -qx "public_url = \"$BASE_URL\"" "$WORK/vostok.toml" || die "docker/vostok.toml has no public_url line"
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
            sleep 2
        done
        say "$s healthy"
    done
}
wait_healthy 900 db vostok nginx
curl -fsS -o /dev/null "$BASE_URL/health/ready" || die "$BASE_URL/health/ready does not answer 200"

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

# --- 6. what docs/operations.md tells operators to run -----------------------------------------
step "operator commands: config check, user add, backups (docs/operations.md)"
compose exec -T vostok vostok config check >"$WORK/config.txt"
grep -qx "public_url = \"$BASE_URL\"" "$WORK/config.txt" \
    || die "config check in the container does not show the mounted vostok.toml"
token="$(compose exec -T vostok vostok user add alice | awk 'END { print $NF }')"
[[ -n "$token" ]] || die "vostok user add alice gave no token"
curl -fsS -H "Authorization: Bearer $token" "$BASE_URL/vospace/nodes/alice" >"$WORK/alice.xml"
grep -q 'vos://vostok.example!vospace/alice' "$WORK/alice.xml" || die "no node alice through nginx"
compose exec -T db pg_dump -Fc -h /run/postgresql -U vostok vostok >"$WORK/jobs.dump"
[[ "$(head -c 5 "$WORK/jobs.dump")" == PGDMP ]] || die "pg_dump did not write a custom-format dump"
compose exec -T vostok sqlite3 vostok-data/vospace.sqlite ".backup vostok-data/vospace.backup"
[[ "$(compose exec -T vostok sqlite3 vostok-data/vospace.backup 'PRAGMA integrity_check' | tr -d '\r')" == ok ]] \
    || die "the online backup of vospace.sqlite is not a sound database"
say "config check, user add (node through nginx), pg_dump, sqlite3 .backup: ok"

# --- 7. a job and a user survive a restart ----------------------------------------------------
step "an async job and a VOSpace user survive a restart of vostok (PostgreSQL + data volume)"
job_url="$(curl -fsS -o /dev/null -w '%{redirect_url}' "$BASE_URL/tap/async" \
    --data-urlencode REQUEST=doQuery --data-urlencode LANG=ADQL --data-urlencode PHASE=RUN \
    --data-urlencode RESPONSEFORMAT=csv --data-urlencode "QUERY=SELECT COUNT(*) AS n FROM hipparcos.hip2")"
[[ "$job_url" == "$BASE_URL/tap/async/"* ]] || die "job URL '$job_url' is not on $BASE_URL"
job_id="${job_url##*/}"
phase=""
for _ in $(seq 1 150); do
    phase="$(curl -fsS "$job_url/phase")"
    [[ "$phase" == COMPLETED || "$phase" == ERROR || "$phase" == ABORTED ]] && break
    sleep 2
done
[[ "$phase" == COMPLETED ]] || die "job $job_url: phase $phase"
db_phase() {
    compose exec -T db psql -h /run/postgresql -U vostok -d vostok -Atc \
        "SELECT phase FROM uws_jobs WHERE id = '$job_id'"
}
[[ "$(db_phase)" == COMPLETED ]] || die "job $job_id is not COMPLETED in PostgreSQL's uws_jobs"
say "job $job_id COMPLETED, recorded in PostgreSQL; restarting vostok"
result_before="$(curl -fsS "$job_url/results/result")"
compose stop vostok
compose up -d vostok
wait_healthy 300 vostok
phase="$(curl -fsS "$job_url/phase")"
[[ "$phase" == COMPLETED ]] || die "after the restart job $job_url is in phase '$phase'"
curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$BASE_URL/vospace/nodes/alice" \
    || die "after the restart user alice's node is gone"
[[ "$(curl -fsS "$job_url/results/result")" == "$result_before" ]] \
    || die "after the restart the result of $job_url differs"
# the answer: hip2.dat has one line per star
hip_rows="$(zcat data/demo/hip2.dat.gz | wc -l)"
[[ "$(tr -d '\r' <<<"$result_before")" == "n"$'\n'"$hip_rows" ]] \
    || die "the job's result is not the row count $hip_rows: $result_before"
curl -fsS -o /dev/null -X DELETE "$job_url"
[[ -z "$(db_phase)" ]] || die "job $job_id still in uws_jobs after DELETE"
say "after the restart: same phase, same result; deleted"

# --- 8. down -------------------------------------------------------------------------------
step "compose down -v"
compose down -v --remove-orphans >/dev/null
COMPOSE_UP=""
step_end
