"""Starts ONE vostok server for the whole session and hands its base URL to the tests.

Binary: $VOSTOK_BIN if set, else `cargo build --message-format=json` (the artifact cargo
reports), else ${CARGO_TARGET_DIR:-target}/debug/vostok.
Data dir: a fresh temporary directory, or $VOSTOK_TEST_DATA_DIR to reuse an ingested one
between local runs. With VOSTOK_TEST_S3=1 (and the VOSTOK_TEST_S3_* settings scripts/s3-up.sh
writes) every server keeps its data in a fresh bucket on that S3 server, its databases in the
data dir (vostok_helpers.storage_config). Readiness: GET /tap/availability answers 200 (up to
$VOSTOK_STARTUP_TIMEOUT seconds, default 300: the first start ingests the demo catalogs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vostok_helpers import (  # noqa: E402
    REPO, SYNTH_ROWS, SYNTH_SEED, SYNTH_TABLE, data_files, gaia, hipparcos, on_s3, storage_config)

STARTUP_TIMEOUT = float(os.environ.get("VOSTOK_STARTUP_TIMEOUT", "300"))

# The container smoke test runs against a compose project scripts/docker-test.sh starts; the
# suite's own run does not collect it (rather than list it as skipped).
collect_ignore = [] if os.environ.get("VOSTOK_DOCKER_URL") else ["test_docker.py"]
BUILD_TIMEOUT = 3600

_server_log: Path | None = None


@dataclass
class Server:
    base_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen

    def log_tail(self, n=200) -> str:
        return log_tail(self.log_path, n)


def log_tail(path: Path, n=200) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no server log: {e})"
    return "\n".join(lines[-n:])


def _cargo_built_binary() -> tuple[Path | None, str]:
    """Ask cargo for the vostok binary (builds it if needed). Returns (path, diagnostics)."""
    env = dict(os.environ)
    try:
        p = subprocess.run(
            ["cargo", "build", "--bin", "vostok", "--message-format=json-render-diagnostics"],
            cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env,
            stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"cargo build failed to run: {e}"
    exe = None
    for line in p.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == "vostok"
                and "bin" in msg.get("target", {}).get("kind", [])):
            exe = Path(msg["executable"])
    if p.returncode != 0:
        return None, p.stderr[-5000:]
    return exe, p.stderr[-2000:]


def find_binary() -> Path:
    env_bin = os.environ.get("VOSTOK_BIN")
    if env_bin:
        path = Path(env_bin)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"VOSTOK_BIN={env_bin} is not an executable file", pytrace=False)
        return path
    exe, diag = _cargo_built_binary()
    if exe and exe.is_file():
        return exe
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    fallback = target / "debug" / "vostok"
    if fallback.is_file():
        print(f"[conftest] cargo build did not give a binary; using existing {fallback}\n{diag}",
              file=sys.stderr)
        return fallback
    pytest.fail(f"no vostok binary: set VOSTOK_BIN or make `cargo build` work.\n{diag}",
                pytrace=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    global _server_log
    binary = find_binary()
    if os.environ.get("VOSTOK_TEST_DATA_DIR"):
        data_dir = Path(os.environ["VOSTOK_TEST_DATA_DIR"]).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        data_dir = tmp_path_factory.mktemp("vostok-data")
    log_path = tmp_path_factory.mktemp("vostok-log") / "server.log"
    _server_log = log_path
    # The data folder itself, or (VOSTOK_TEST_S3=1) a prefix in a bucket and a config file.
    data, config = storage_config(data_dir)
    with_config = [] if config is None else ["--config", str(config)]
    # A small synthetic sky (vostok generate), served beside the demo catalogs.
    if "vostok.toml" not in data_files(data_dir, f"catalogs/{SYNTH_TABLE}"):
        subprocess.run([str(binary), *with_config, "generate", "--rows", str(SYNTH_ROWS),
                        "--table", SYNTH_TABLE, "--seed", str(SYNTH_SEED), "--partition-rows",
                        "8000", "--row-group-rows", "1000", "--data-dir", data],
                       check=True, timeout=600, stdin=subprocess.DEVNULL)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(binary), *with_config, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", data]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("NO_COLOR", "1")
    # The demo catalogs of THIS checkout, whichever checkout the (shared-target) binary was built from.
    env["VOSTOK_DEMO_DIR"] = str(REPO / "data" / "demo")
    from vostok_helpers import metadata_env  # the job database (PostgreSQL when asked for)
    env.update(metadata_env(data_dir))
    with open(log_path, "wb") as log:
        # cwd: an empty temp dir, so no stray ./vostok.toml changes the defaults under test
        proc = subprocess.Popen(cmd, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    print(f"[conftest] started {' '.join(cmd)} (pid {proc.pid}), log {log_path}", file=sys.stderr)

    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no answer yet"
    try:
        while True:
            rc = proc.poll()
            if rc is not None:
                pytest.fail(f"vostok exited with status {rc} before it was ready.\n"
                            f"command: {' '.join(cmd)}\n--- server output ---\n{log_tail(log_path)}",
                            pytrace=False)
            try:
                r = requests.get(base + "/tap/availability", timeout=(2, 10))
                if r.status_code == 200:
                    break
                last = f"HTTP {r.status_code}: {r.text[:300]!r}"
            except requests.RequestException as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(f"vostok not ready after {STARTUP_TIMEOUT:.0f}s (last: {last}).\n"
                            f"command: {' '.join(cmd)}\n--- server output ---\n{log_tail(log_path)}",
                            pytrace=False)
            time.sleep(0.5)
        print(f"[conftest] vostok ready at {base} after "
              f"{STARTUP_TIMEOUT - (deadline - time.monotonic()):.1f}s", file=sys.stderr)
        yield Server(base, data_dir, log_path, proc)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.base_url


@pytest.fixture(scope="session")
def hip_truth():
    return hipparcos()


@pytest.fixture(scope="session")
def gaia_truth():
    return gaia()


def pytest_collection_modifyitems(config, items):
    """With VOSTOK_TEST_S3=1 the tests marked `local_folder` (they read the data folder as
    local files) cannot run: each is reported as skipped, with the reason."""
    if not on_s3():
        return
    why = pytest.mark.skip(reason="local_folder: reads the data folder as local files, and "
                                  "VOSTOK_TEST_S3=1 keeps it in a bucket")
    for item in items:
        if item.get_closest_marker("local_folder"):
            item.add_marker(why)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show the end of the server's log: it is the first thing to read."""
    if exitstatus != 0 and _server_log is not None and _server_log.exists():
        terminalreporter.section("vostok server log (last 80 lines)")
        terminalreporter.write_line(log_tail(_server_log, 80))
