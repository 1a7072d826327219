#!/usr/bin/env bash
# Fuzzes the ADQL front end (adql::parse → adql::plan → execution on small in-memory tables,
# fuzz/fuzz_targets/adql.rs) with cargo-fuzz / libFuzzer for a bounded time. Exits non-zero
# if an input panics, aborts, hangs (> 10 s), exceeds 4 GiB RSS or, with
# FUZZ_SANITIZER=address, leaks or corrupts memory; the input is saved under
# fuzz/artifacts/adql/ of the build copy (FUZZ_SRC_DIR, below) and printed.
#
#   scripts/fuzz.sh            fuzz for 120 s
#   scripts/fuzz.sh 600        fuzz for 600 s
#
# Works with the stable toolchain: cargo-fuzz needs nightly-only rustc flags (-Zsanitizer,
# and it passes -Cpasses=sancov-module which stable accepts), so RUSTC_BOOTSTRAP=1 is set.
#
# Environment:
#   FUZZ_TARGET_DIR   build dir, outside the repo so CI runs reuse it
#                     (default ~/.cache/vostok/fuzz-target, or fuzz-target-<sanitizer>)
#   FUZZ_CORPUS_DIR   the growing corpus, kept between runs (default ~/.cache/vostok/fuzz-corpus)
#   FUZZ_SANITIZER    none (default: fastest build and run) or address (ASan + leak checks;
#                     also works on stable here, a longer build)
#   FUZZ_CONFORMANCE  ADQL corpora (*.jsonl with a "query" field) whose queries seed the run
#                     (default ../shared/conformance/adql; skipped if absent). They are GPL/LGPL:
#                     they are written to a cache dir at run time, never into the repository.
#   FUZZ_SRC_DIR      where the sources are copied to be built (default ~/.cache/vostok/fuzz-src):
#                     the fuzz crate is a workspace of its own, so the vendored DataFusion crates
#                     (../vendor) are outside it and cargo names them by absolute path; building
#                     from one fixed path lets a run from any clone reuse the last build
#   FUZZ_BUILD_ONLY=1 build the target and stop
#   FUZZ_CMIN_ABOVE   minimise the kept corpus (cargo fuzz cmin) when it has more files (20000)
#   FUZZ_SKIP_REGRESSIONS=1  do not replay fuzz/regressions/* first (while a known one is unfixed)
#   VOSTOK_FUZZ_EXECUTE=0  plan only, do not execute plans
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
DURATION="${1:-120}"
if ! [[ "$DURATION" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]" >&2
    exit 2
fi
CACHE="$HOME/.cache/vostok"
SANITIZER="${FUZZ_SANITIZER:-none}"
if [[ "$SANITIZER" == none ]]; then
    TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
else
    # One build dir per sanitizer: switching would otherwise rebuild everything each time.
    TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target-$SANITIZER}"
fi
CORPUS="${FUZZ_CORPUS_DIR:-$CACHE/fuzz-corpus}"
CONFORMANCE="${FUZZ_CONFORMANCE:-$REPO/../shared/conformance/adql}"
TARGET=adql
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# cargo-fuzz passes nightly-only flags; this lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
# A panic's backtrace in the log (libfuzzer-sys aborts after the panic hook).
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz.sh] installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The same flags for build and run, so that run does not rebuild.
#   -a: debug assertions and overflow checks (also in DataFusion: its internal invariants)
#   --codegen-units 16: cargo-fuzz's default of 1 makes the cold build several times longer
SRC="${FUZZ_SRC_DIR:-$CACHE/fuzz-src}"
BUILD_FLAGS=(--fuzz-dir "$SRC/fuzz" --target-dir "$TARGET_DIR" -s "$SANITIZER" -a --codegen-units 16)

echo "[fuzz.sh] building fuzz target '$TARGET' (sanitizer: $SANITIZER, target dir: $TARGET_DIR)"
# The vendored DataFusion crates are not rebuilt in a fresh clone when they did not change.
bash scripts/vendor-mtimes.sh prepare "$TARGET_DIR"
# A copy at a fixed path, file times kept (cargo compares them with the last build's).
rm -rf "$SRC"
mkdir -p "$SRC"
tar -C "$REPO" --exclude=./.git --exclude=./fuzz/artifacts --exclude=./target -cf - . |
    tar -C "$SRC" -xpf -
start=$(date +%s)
cargo fuzz build "${BUILD_FLAGS[@]}" "$TARGET"
bash scripts/vendor-mtimes.sh record "$TARGET_DIR"
echo "[fuzz.sh] build took $(($(date +%s) - start)) s"
if [[ "${FUZZ_BUILD_ONLY:-0}" == 1 ]]; then
    exit 0
fi

ARTIFACTS="$SRC/fuzz/artifacts/$TARGET"
mkdir -p "$ARTIFACTS"
marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT

report_failure() {
    echo "[fuzz.sh] FAILED (exit $1): $2. New artifacts:" >&2
    find "$ARTIFACTS" -type f -newer "$marker" | while read -r f; do
        echo "--- $f" >&2
        python3 -c 'import sys; print(repr(open(sys.argv[1], "rb").read()))' "$f" >&2 || true
    done
    echo "[fuzz.sh] reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD_FLAGS[*]} $TARGET <input>" >&2
}

# Known bad inputs first: each must now run without panic or hang.
shopt -s nullglob
regressions=("$REPO"/fuzz/regressions/*)
if [[ ${#regressions[@]} -gt 0 && "${FUZZ_SKIP_REGRESSIONS:-0}" != 1 ]]; then
    echo "[fuzz.sh] replaying ${#regressions[@]} regression inputs"
    status=0
    # Regression inputs may be long (the server takes 16 MiB request bodies).
    VOSTOK_FUZZ_MAX_LEN=16777216 cargo fuzz run "${BUILD_FLAGS[@]}" "$TARGET" "${regressions[@]}" -- \
        -timeout=10 -rss_limit_mb=4096 || status=$?
    if [[ $status -ne 0 ]]; then
        report_failure "$status" "a regression input panicked or hung (the last 'Running:' line above)"
        exit "$status"
    fi
fi

# Seeds: the hand-written ones and the external corpora's queries.
mkdir -p "$CORPUS"
# The kept corpus only grows; past FUZZ_CMIN_ABOVE files (default 20000) keep only the inputs
# that add coverage, so loading it does not eat the time budget.
n_corpus=$(find "$CORPUS" -type f | wc -l)
if [[ $n_corpus -gt ${FUZZ_CMIN_ABOVE:-20000} ]]; then
    echo "[fuzz.sh] minimising the corpus ($n_corpus inputs)"
    cargo fuzz cmin "${BUILD_FLAGS[@]}" "$TARGET" "$CORPUS" -- -timeout=10 -rss_limit_mb=4096
    echo "[fuzz.sh] corpus now $(find "$CORPUS" -type f | wc -l) inputs"
fi
CORPORA=("$CORPUS" "$REPO/fuzz/seeds")
if compgen -G "$CONFORMANCE/*.jsonl" >/dev/null; then
    CONF_SEEDS="$CACHE/fuzz-conformance-seeds"
    rm -rf "$CONF_SEEDS"
    mkdir -p "$CONF_SEEDS"
    python3 - "$CONF_SEEDS" "$CONFORMANCE"/*.jsonl <<'PY'
import hashlib, json, os, sys
out, n = sys.argv[1], 0
for path in sys.argv[2:]:
    for line in open(path, encoding="utf-8"):
        try:
            q = json.loads(line).get("query")
        except ValueError:
            continue
        if isinstance(q, str) and q:
            data = q.encode("utf-8")
            with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
                f.write(data)
            n += 1
print(f"[fuzz.sh] {n} seed queries from {len(sys.argv) - 2} conformance files")
PY
    CORPORA+=("$CONF_SEEDS")
else
    echo "[fuzz.sh] no conformance corpora under $CONFORMANCE; hand-written seeds only"
fi

echo "[fuzz.sh] fuzzing for $DURATION s"
status=0
cargo fuzz run "${BUILD_FLAGS[@]}" "$TARGET" "${CORPORA[@]}" -- \
    -max_total_time="$DURATION" \
    -timeout=10 \
    -rss_limit_mb=4096 \
    -max_len=4096 \
    -dict="$REPO/fuzz/adql.dict" \
    -print_final_stats=1 || status=$?

if [[ $status -ne 0 ]]; then
    report_failure "$status" "crash, timeout or out of memory while fuzzing"
    exit "$status"
fi
echo "[fuzz.sh] OK: no crash, hang or OOM in $DURATION s; corpus $(find "$CORPUS" -type f | wc -l) inputs in $CORPUS"
