#!/usr/bin/env bash
# Retakes the portal's screenshots in docs/ (portal-*.png): runs the browser test of the
# portal (and of its search forms and jobs, its VOSpace browser and plot) against a fresh demo server with VOSTOK_PORTAL_SCREENSHOTS=docs. Needs what
# scripts/install-test-deps.sh installs (Chromium, the venv with playwright).
#
#   VOSTOK_BIN=target/debug/vostok scripts/portal-screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VOSTOK_VENV:-$HOME/.cache/vostok/venv}"
VOSTOK_PORTAL_SCREENSHOTS="$PWD/docs" "$VENV/bin/python" -m pytest conformance/test_portal.py \
    conformance/test_portal_search.py conformance/test_portal_space.py -q -p no:cacheprovider \
    -k "find_ask_look or form or async_job or file_browser or plot or coverage"
ls -l docs/portal-*.png
