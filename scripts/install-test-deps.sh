#!/usr/bin/env bash
# Install what the conformance suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: a second run only checks. Quiet, but any failure stops the script loudly.
#
#   apt:  stilts (pulls a JRE), libxml2-utils (xmllint), aladin xvfb xauth (Aladin run headless
#         by xvfb-run in conformance/test_products.py), postgresql-15 (the second oracle of
#         conformance/test_differential_pg.py: a private cluster started by the test),
#         chromium (the browser conformance/test_portal.py drives), radosgw ceph-mon ceph-osd
#         ceph-common (Ceph's S3 gateway on loopback: scripts/s3-up.sh, the S3 run of scripts/test.sh),
#         nginx (the load balancer in front of three servers in conformance/test_multiprocess.py)
#   venv: pyvo astropy hats pytest pytest-timeout numpy requests pyarrow vos (OpenCADC VOSpace client)
#         psycopg[binary] (PostgreSQL driver) playwright (drives Debian's chromium; no browser
#         download) axe-playwright-python (axe-core accessibility checks) boto3 (reads the test
#         bucket) in ${VOSTOK_VENV:-$HOME/.cache/vostok/venv}
set -euo pipefail

VENV="${VOSTOK_VENV:-$HOME/.cache/vostok/venv}"
PY_PACKAGES=(pyvo astropy hats pytest pytest_timeout numpy requests pyarrow vos psycopg playwright axe_playwright_python prometheus_client boto3)  # import names
PIP_SPECS=(pyvo astropy hats pytest pytest-timeout numpy requests pyarrow vos "psycopg[binary]" playwright axe-playwright-python prometheus-client boto3)

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v stilts  >/dev/null 2>&1 || need_apt+=(stilts)
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
command -v aladin  >/dev/null 2>&1 || need_apt+=(aladin)
command -v xvfb-run >/dev/null 2>&1 || need_apt+=(xvfb)
command -v xauth   >/dev/null 2>&1 || need_apt+=(xauth)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
pg_server_present() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; }
pg_server_present || need_apt+=(postgresql-15)
[[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
for ceph in radosgw ceph-mon ceph-osd; do
    command -v "$ceph" >/dev/null 2>&1 || { need_apt+=(radosgw ceph-mon ceph-osd ceph-common); break; }
done

if ((${#need_apt[@]})); then
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${need_apt[*]}"
    # Another apt/dpkg may hold the lock right now: wait for it instead of failing.
    # apt's own lock timeout covers dpkg's lock; the retry loop covers the rest
    # (lists lock, a transient mirror error), up to ~20 minutes in all.
    APT_OPTS=(-q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    apt_retry() {  # apt_retry LOG ARGS...
        local log=$1; shift
        local i
        for i in $(seq 1 20); do
            if apt-get "${APT_OPTS[@]}" "$@" >"$log" 2>&1; then
                return 0
            fi
            if grep -qiE 'lock|Could not get|Temporary failure' "$log"; then
                log "apt-get $1: busy or transient failure (try $i/20), retrying in 30 s"
                sleep 30
            else
                break
            fi
        done
        tail -n 50 "$log" >&2
        return 1
    }
    log "apt-get update"
    apt_retry /tmp/vostok-apt-update.log update || die "apt-get update failed"
    log "apt-get install ${need_apt[*]}"
    apt_retry /tmp/vostok-apt-install.log install -y --no-install-recommends "${need_apt[@]}" \
        || die "apt-get install ${need_apt[*]} failed"
fi
command -v stilts  >/dev/null 2>&1 || die "stilts not on PATH after install"
command -v xmllint >/dev/null 2>&1 || die "xmllint not on PATH after install"
command -v aladin  >/dev/null 2>&1 || die "aladin not on PATH after install"
command -v xvfb-run >/dev/null 2>&1 || die "xvfb-run not on PATH after install"
command -v xauth   >/dev/null 2>&1 || die "xauth not on PATH after install"
command -v chromium >/dev/null 2>&1 || die "chromium not on PATH after install"
pg_server_present || die "PostgreSQL's initdb/pg_ctl not in /usr/lib/postgresql/*/bin after install"
for ceph in radosgw radosgw-admin ceph-mon ceph-osd ceph; do
    command -v "$ceph" >/dev/null 2>&1 || die "$ceph not on PATH after install"
done
timeout 120 stilts -version >/dev/null 2>&1 || die "stilts is installed but does not run (java?)"

# --- Python venv -----------------------------------------------------------
PYTHON="${VOSTOK_PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || die "python venv creation failed"
fi

if ! "$VENV/bin/python" - "${PY_PACKAGES[@]}" >/dev/null 2>&1 <<'PYEOF'
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
PYEOF
then
    log "pip install ${PIP_SPECS[*]} into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/tmp/vostok-pip.log 2>&1 \
        || { tail -n 50 /tmp/vostok-pip.log >&2; die "pip upgrade failed"; }
    "$VENV/bin/python" -m pip install -q "${PIP_SPECS[@]}" >>/tmp/vostok-pip.log 2>&1 \
        || { tail -n 50 /tmp/vostok-pip.log >&2; die "pip install ${PIP_SPECS[*]} failed"; }
fi

"$VENV/bin/python" - "${PY_PACKAGES[@]}" <<'PYEOF' || die "python packages not importable in $VENV"
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
PYEOF
log "ok: stilts, xmllint, aladin, xvfb-run, chromium, radosgw, PostgreSQL $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')$VENV ($("$VENV/bin/python" -c 'import pyvo, astropy, hats; print("pyvo", pyvo.__version__, "astropy", astropy.__version__, "hats", hats.__version__)'))"
