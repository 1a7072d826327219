#!/usr/bin/env bash
# Keeps cargo from rebuilding the vendored DataFusion crates (vendor/, vendor/README.md) in a
# fresh clone. cargo decides whether a path dependency changed by its files' modification
# times, and a clone gives every file the time of the clone: without this, each CI run (a fresh
# clone with a persistent target dir) would rebuild DataFusion from the patched crates up.
#
#   scripts/vendor-mtimes.sh prepare TARGET_DIR   before a build: if the vendor tree is the
#       one the last build into TARGET_DIR recorded, give its files a fixed old time (cargo
#       then finds them unchanged); otherwise leave them fresh, so that they are rebuilt
#   scripts/vendor-mtimes.sh record TARGET_DIR    after a successful build: record the tree
#
# The tree is named by git's hash of vendor/ at HEAD. A vendor/ with uncommitted changes is
# never touched and never recorded (cargo then sees the edits by their times, as usual).
set -euo pipefail

cd "$(dirname "$0")/.."
action="${1:-}"
target="${2:-}"
if [[ -z "$action" || -z "$target" ]]; then
    echo "usage: scripts/vendor-mtimes.sh prepare|record TARGET_DIR" >&2
    exit 2
fi
stamp="$target/.vostok-vendor-tree"

tree=""
if [[ -d vendor ]] && tree="$(git rev-parse -q --verify HEAD:vendor 2>/dev/null)"; then
    if [[ -n "$(git status --porcelain --untracked-files=all -- vendor)" ]]; then
        tree=""
    fi
fi

case "$action" in
prepare)
    if [[ -z "$tree" ]]; then
        # What this build makes of vendor/ is no recorded tree.
        rm -f "$stamp"
        echo "[vendor-mtimes] vendor/ is not committed as is: file times left alone"
    elif [[ -f "$stamp" && "$(cat "$stamp")" == "$tree" ]]; then
        # Older than any build output: cargo finds the vendored crates unchanged.
        find vendor -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +
        echo "[vendor-mtimes] vendor tree $tree was built into $target: file times set to 2000-01-01"
    else
        # Until this build succeeds, no tree is known to be built there.
        rm -f "$stamp"
        echo "[vendor-mtimes] vendor tree $tree is new to $target: the vendored crates are rebuilt"
    fi
    ;;
record)
    if [[ -n "$tree" ]]; then
        mkdir -p "$target"
        printf '%s\n' "$tree" >"$stamp"
    fi
    ;;
*)
    echo "usage: scripts/vendor-mtimes.sh prepare|record TARGET_DIR" >&2
    exit 2
    ;;
esac
