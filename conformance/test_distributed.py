"""Queries spread over query workers (datafusion-distributed): a server started with
`--workers` and two `vostok worker` processes on loopback, all over one data folder (the
suite's synthetic sky, generated again with the same seed, and the demo catalogs), answer
exactly as the suite's single server does.

* A full-catalog aggregate, a GROUP BY, `ivo_histogram`, an ORDER BY with TOP, a crossmatch
  of the synthetic sky against gaia.dr3_bright (CONTAINS and DISTANCE forms), a spatial
  COUNT, a join with an uncorrelated scalar subquery and self-joins give the single server's
  answer; the ones the distributed planner can cut into stages (the log says so) run on the
  workers, except those holding a function that would not reach the workers unchanged.
* A cone search stays on the server (the fast lane).
* With a shared secret, a worker refuses a server that does not send it (the server then runs
  the query itself), and serves the one that does.
* A worker killed: the next query runs on the server, with the same answer.
* A worker listening beyond the loopback interface without a secret does not start.
* `vostok adql explain` shows the stages a query is cut into; with `--analyze` it runs the
  query and shows each stage's figures and the worker each task ran on. The server's log
  says the same for every query it spreads.
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import _stop, find_binary, free_port, log_tail
from vostok_helpers import REPO, SYNTH_ROWS, SYNTH_SEED, SYNTH_TABLE, _toml, storage_config, tap_sync

STARTUP_S = 300
# Small enough that a scan of the 60,000-row synthetic sky (21 partitions, a few MB) is
# spread over the workers.
BYTES_PER_TASK = 65536

QUERIES = {
    "aggregate": (f"SELECT COUNT(*) AS n, SUM(phot_g_mean_mag) AS g, MIN(ra) AS lo, "
                  f"MAX(dec) AS hi, AVG(parallax) AS p, COUNT(radial_velocity) AS rv FROM {SYNTH_TABLE}"),
    "group_by": (f"SELECT FLOOR(phot_g_mean_mag) AS g, COUNT(*) AS n, AVG(bp_rp) AS c FROM {SYNTH_TABLE} "
                 f"GROUP BY FLOOR(phot_g_mean_mag)"),
    "histogram": f"SELECT ivo_histogram(phot_g_mean_mag, 5, 21, 16) AS h FROM {SYNTH_TABLE}",
    "top": (f"SELECT TOP 7 source_id, phot_g_mean_mag FROM {SYNTH_TABLE} "
            f"ORDER BY phot_g_mean_mag DESC, source_id"),
    "crossmatch": (f"SELECT s.source_id AS s, g.source_id AS g FROM {SYNTH_TABLE} AS s JOIN "
                   f"gaia.dr3_bright AS g ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), "
                   f"CIRCLE('ICRS', s.ra, s.dec, 0.02))"),
    "spatial_count": (f"SELECT COUNT(*) AS n FROM {SYNTH_TABLE} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                      f"CIRCLE('ICRS', 200, -30, 40))"),
    "scalar_subquery": (f"SELECT COUNT(*) AS n FROM {SYNTH_TABLE} WHERE phot_g_mean_mag > "
                        f"(SELECT AVG(phot_g_mean_mag) FROM {SYNTH_TABLE})"),
    # A self-join on a computed key, spread; the same with an integer difference is not
    # (the checked difference carries its place in the ADQL text, which the workers' decoder drops).
    "self_join": (f"SELECT COUNT(*) AS n FROM {SYNTH_TABLE} AS a, {SYNTH_TABLE} AS b "
                  f"WHERE a.phot_g_mean_mag <= 8 AND MOD(a.source_id, 7) = MOD(b.source_id, 7)"),
    "self_join_integer_difference": (f"SELECT COUNT(*) AS n FROM {SYNTH_TABLE} AS a, {SYNTH_TABLE} AS b "
                              f"WHERE a.phot_g_mean_mag <= 8 AND MOD(a.source_id - b.source_id, 7) = 0"),
    # A crossmatch written with DISTANCE: its functions (which name DISTANCE in their errors)
    # are registered under names of their own, so they reach the workers.
    "crossmatch_distance": (f"SELECT s.source_id AS s, g.source_id AS g FROM {SYNTH_TABLE} AS s JOIN "
                            f"gaia.dr3_bright AS g ON DISTANCE(POINT('ICRS', g.ra, g.dec), "
                            f"POINT('ICRS', s.ra, s.dec)) < 0.02"),
}
# Whether each is spread over the workers at this BYTES_PER_TASK and FAST_LANE_MB (None: either
# may be right). An uncorrelated scalar subquery stays on the server (engine/distributed.rs).
SPREAD = {"aggregate": True, "group_by": True, "histogram": True, "top": True, "crossmatch": True,
          "spatial_count": None, "scalar_subquery": False, "self_join": True,
          "self_join_integer_difference": False, "crossmatch_distance": True}
# Why the server keeps a query, as its log says.
KEPT = {"self_join_integer_difference": "the function adql_checked_sub would not reach the workers",
        "scalar_subquery": "the plan holds a ScalarSubqueryExec"}
# The fast lane (never spread) takes queries whose pruned scans read at most this (the
# synthetic sky is 6.4 MB; a 1° cone reads one or two of its 21 partitions).
FAST_LANE_MB = 2


def start(cmd, log: Path, env=None):
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)


def wait_for(proc, log: Path, ready, what):
    deadline = time.monotonic() + STARTUP_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log_tail(log)}", pytrace=False)
        if ready():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {STARTUP_S} s:\n{log_tail(log)}", pytrace=False)
        time.sleep(0.3)


def worker_ready(log: Path):
    return lambda: "query worker listening" in log.read_text(errors="replace")


def server_ready(base):
    def ready():
        try:
            return requests.get(base + "/tap/availability", timeout=5).status_code == 200
        except requests.RequestException:
            return False
    return ready


class Cluster:
    def __init__(self, tmp: Path, secret_server=None, secret_workers=None):
        self.binary = str(find_binary())
        self.dir = tmp
        data_dir = tmp / "data"
        settings = {"distributed": {"bytes_per_task": BYTES_PER_TASK},
                    "limits": {"fast_lane_mb": FAST_LANE_MB}}
        config = tmp / "vostok.toml"
        config.write_text(_toml(settings))
        self.data, cfg = storage_config(data_dir, config)
        self.config = ["--config", str(cfg)]
        self.config_path = Path(cfg)
        subprocess.run([self.binary, *self.config, "generate", "--rows", str(SYNTH_ROWS), "--table",
                        SYNTH_TABLE, "--seed", str(SYNTH_SEED), "--partition-rows", "8000",
                        "--row-group-rows", "1000", "--data-dir", self.data],
                       check=True, timeout=600, stdin=subprocess.DEVNULL, capture_output=True)
        self.procs = []
        self.worker_urls = []
        self.worker_logs = []
        for i in range(2):
            port = free_port()
            log = tmp / f"worker{i}.log"
            env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
            if secret_workers:
                env["VOSTOK_WORKER_SECRET"] = secret_workers
            proc = start([self.binary, *self.config, "worker", "--bind", f"127.0.0.1:{port}",
                          "--data-dir", self.data], log, env)
            self.procs.append(proc)
            wait_for(proc, log, worker_ready(log), f"worker {i}")
            self.worker_urls.append(f"http://127.0.0.1:{port}")
            self.worker_logs.append(log)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log = tmp / "server.log"
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1",
                   VOSTOK_DEMO_DIR=str(REPO / "data" / "demo"))
        env.pop("VOSTOK_WORKER_SECRET", None)
        if secret_server:
            env["VOSTOK_WORKER_SECRET"] = secret_server
        proc = start([self.binary, *self.config, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir",
                      self.data, "--workers", ",".join(self.worker_urls)], self.log, env)
        self.procs.append(proc)
        wait_for(proc, self.log, server_ready(self.base), "the server with workers")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self):
        for p in self.procs:
            _stop(p)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("distributed"))
    yield c
    c.stop()


def rows(r) -> list[tuple]:
    assert r.status_code == 200, r.text[:2000]
    table = list(csv.reader(io.StringIO(r.text)))
    return sorted(tuple(row) for row in table[1:])


def same(a: str, b: str) -> bool:
    """Equal text, or equal numbers to 1e-12 relative (a sum's last bits depend on the order
    its partial sums are added in, on one machine as on several)."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0)


@pytest.mark.parametrize("name", list(QUERIES))
def test_the_answer_is_the_single_servers(base_url, cluster, name):
    query = QUERIES[name]
    before_text = len(cluster.log_text())
    before = cluster.log_text().count("query spread over the workers")
    got = rows(tap_sync(cluster.base, query, RESPONSEFORMAT="csv", MAXREC=1_000_000))
    spread = cluster.log_text().count("query spread over the workers") - before
    if name in KEPT:
        assert KEPT[name] in cluster.log_text()[before_text:], (name, log_tail(cluster.log, 20))
    want = rows(tap_sync(base_url, query, RESPONSEFORMAT="csv", MAXREC=1_000_000))
    assert len(got) == len(want), (name, len(got), len(want))
    assert len(want) > 0, name
    bad = [(g, w) for g, w in zip(got, want)
           if len(g) != len(w) or not all(same(x, y) for x, y in zip(g, w))]
    assert not bad, (name, bad[:5])
    print(f"\n[distributed] {name}: {len(got)} rows, spread over the workers: {bool(spread)}")
    if SPREAD[name] is not None:
        assert bool(spread) == SPREAD[name], (name, spread, log_tail(cluster.log, 40))


def test_an_asynchronous_job_is_spread_too(cluster):
    r = requests.post(cluster.base + "/tap/async", data={
        "REQUEST": "doQuery", "LANG": "ADQL", "PHASE": "RUN", "RESPONSEFORMAT": "csv",
        "QUERY": f"SELECT COUNT(*) AS n, MAX(phot_g_mean_mag) AS m FROM {SYNTH_TABLE}"},
        allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text[:500]
    job = r.headers["Location"]
    if job.startswith("/"):
        job = cluster.base + job
    phase = requests.get(job + "/phase", params={"WAIT": "60"}, timeout=90).text.strip()
    deadline = time.monotonic() + 60
    while phase in ("QUEUED", "EXECUTING") and time.monotonic() < deadline:
        phase = requests.get(job + "/phase", params={"WAIT": "10"}, timeout=30).text.strip()
    assert phase == "COMPLETED", (phase, log_tail(cluster.log, 40))
    result = requests.get(job + "/results/result", timeout=30)
    table = list(csv.reader(io.StringIO(result.text)))
    assert table[1][0] == str(SYNTH_ROWS), table


def test_a_cone_search_stays_on_the_server(cluster):
    before = cluster.log_text().count("query spread over the workers")
    r = requests.get(cluster.base + f"/scs/{SYNTH_TABLE}", params={"RA": 10, "DEC": 10, "SR": 1},
                     timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert cluster.log_text().count("query spread over the workers") == before


def test_a_worker_refuses_a_server_without_its_secret(tmp_path):
    """The workers refuse the server's stages; the server then runs the query itself."""
    c = Cluster(tmp_path, secret_server=None, secret_workers="s3cret-one")
    try:
        got = rows(tap_sync(c.base, QUERIES["aggregate"], RESPONSEFORMAT="csv"))
        assert got[0][0] == str(SYNTH_ROWS), got
        log = c.log_text()
        assert "query spread over the workers" in log
        assert "the query workers failed, the query runs here" in log and "secret" in log, \
            log_tail(c.log, 40)
    finally:
        c.stop()


def test_a_query_runs_on_the_server_when_a_worker_is_gone(tmp_path):
    c = Cluster(tmp_path)
    try:
        want = rows(tap_sync(c.base, QUERIES["group_by"], RESPONSEFORMAT="csv"))
        c.procs[0].kill()
        c.procs[0].wait(timeout=30)
        before = len(c.log_text())
        got = rows(tap_sync(c.base, QUERIES["group_by"], RESPONSEFORMAT="csv"))
        assert got == want
        log = c.log_text()
        assert "the query workers failed, the query runs here" in log, log_tail(c.log, 40)
        # The log does not say the workers ran the query the server ran instead.
        assert "query on the workers: stage" not in log[before:], log_tail(c.log, 40)
        print("\n[distributed] worker gone:", [l for l in log.splitlines() if "workers failed" in l][-1][-300:])
    finally:
        c.stop()


def test_a_worker_serves_a_server_with_its_secret(tmp_path):
    c = Cluster(tmp_path, secret_server="s3cret-two", secret_workers="s3cret-two")
    try:
        got = rows(tap_sync(c.base, QUERIES["aggregate"], RESPONSEFORMAT="csv"))
        assert got[0][0] == str(SYNTH_ROWS), got
        assert "query spread over the workers" in c.log_text()
    finally:
        c.stop()


def test_a_worker_beyond_the_loopback_interface_needs_a_secret(tmp_path):
    binary = str(find_binary())
    env = dict(os.environ)
    env.pop("VOSTOK_WORKER_SECRET", None)
    p = subprocess.run([binary, "worker", "--bind", f"0.0.0.0:{free_port()}", "--data-dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "needs [distributed] secret" in p.stderr, p.stderr[-2000:]


def test_explain_shows_the_stages(cluster, tmp_path):
    config = explain_config(cluster, tmp_path)
    explain = [cluster.binary, "--config", str(config), "adql", "explain", "--data-dir", cluster.data]
    p = subprocess.run(explain, input=QUERIES["group_by"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    part = out[out.index("== on the query workers"):out.index("== HEALPix pruning")]
    assert "DistributedExec" in part and "[Stage 1]" in part and "Stage 2 ── tasks=2" in part, part
    assert "--analyze runs it" in part, part
    p = subprocess.run(explain, input=QUERIES["scalar_subquery"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "none: the plan holds a ScalarSubqueryExec; it runs here" in p.stdout, p.stdout


def explain_config(cluster, tmp_path) -> Path:
    import tomllib
    settings = tomllib.loads(cluster.config_path.read_text())
    settings["distributed"]["workers"] = cluster.worker_urls
    config = tmp_path / "explain.toml"
    config.write_text(_toml(settings))
    return config


def test_explain_analyze_shows_which_worker_ran_each_task(base_url, cluster, tmp_path):
    config = explain_config(cluster, tmp_path)
    p = subprocess.run([cluster.binary, "--config", str(config), "adql", "explain", "--analyze",
                        "--data-dir", cluster.data], input=QUERIES["group_by"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    # Each stage with the figures of its run: rows out of each operator.
    stages = out[out.index("== on the query workers"):out.index("== where the tasks ran")]
    assert "Stage 2 ── tasks=2" in stages and "output_rows=" in stages, stages
    where = out[out.index("== where the tasks ran"):out.index("== run")].splitlines()[1:]
    where = [line for line in where if line.strip()]
    assert [line.split(":")[0] for line in where] == ["stage 1", "stage 2"], where
    for line in where:
        # two tasks per stage, one on each worker
        assert line.startswith(("stage 1: 2 tasks: ", "stage 2: 2 tasks: ")), line
        ran_on = sorted(part.split(" on ")[1] for part in line.split(": ", 2)[2].split(", "))
        assert ran_on == sorted(cluster.worker_urls), (line, cluster.worker_urls)
    # The rows it counted are the single server's.
    want = rows(tap_sync(base_url, QUERIES["group_by"], RESPONSEFORMAT="csv"))
    run = out[out.index("== run"):].splitlines()[1]
    assert len(want) > 1 and run.startswith(f"{len(want)} rows in "), run


def test_explain_analyze_runs_a_query_that_stays_here(cluster, tmp_path):
    config = explain_config(cluster, tmp_path)
    p = subprocess.run([cluster.binary, "--config", str(config), "adql", "explain", "--analyze",
                        "--data-dir", cluster.data], input=QUERIES["scalar_subquery"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "== where the tasks ran" not in out
    ran = out[out.index("== physical plan, run"):]
    assert "output_rows=" in ran and "\n1 row in " in ran, ran


def test_the_log_says_which_worker_ran_each_task(cluster):
    before = len(cluster.log_text())
    got = rows(tap_sync(cluster.base, QUERIES["histogram"], RESPONSEFORMAT="csv"))
    assert len(got) == 1
    lines = [line for line in cluster.log_text()[before:].splitlines()
             if "query on the workers: stage" in line]
    assert lines, log_tail(cluster.log, 40)
    named = {url for url in cluster.worker_urls if any(url + "," in line or line.endswith(url)
                                                      for line in lines)}
    assert named == set(cluster.worker_urls), lines


def test_a_job_whose_worker_dies_while_it_streams_runs_again_here(base_url, tmp_path):
    """A worker killed after the job's first rows arrived: the job runs again on the server
    (its result is stored only once whole) and COMPLETES with every row."""
    c = Cluster(tmp_path)
    try:
        join = (f"FROM {SYNTH_TABLE} AS a JOIN {SYNTH_TABLE} AS b "
                f"ON MOD(a.source_id, 5000) = MOD(b.source_id, 5000) WHERE a.phot_g_mean_mag < 18")
        want = rows(tap_sync(base_url, f"SELECT COUNT(*) AS n {join}", RESPONSEFORMAT="csv"))
        n = int(want[0][0])
        assert n > 200_000, n
        before = len(c.log_text())
        r = requests.post(c.base + "/tap/async", data={
            "REQUEST": "doQuery", "LANG": "ADQL", "PHASE": "RUN", "RESPONSEFORMAT": "votable",
            "MAXREC": str(n + 1), "QUERY": f"SELECT a.source_id AS a, b.source_id AS b {join}"},
            allow_redirects=False, timeout=30)
        assert r.status_code == 303, r.text[:500]
        job = r.headers["Location"]
        if job.startswith("/"):
            job = c.base + job
        # The server logs where the tasks ran once the first rows came back.
        deadline = time.monotonic() + 120
        while "query on the workers: stage" not in c.log_text()[before:]:
            assert time.monotonic() < deadline, log_tail(c.log, 40)
            time.sleep(0.05)
        c.procs[0].kill()
        c.procs[0].wait(timeout=30)
        phase = ""
        deadline = time.monotonic() + 300
        while phase not in ("COMPLETED", "ERROR", "ABORTED") and time.monotonic() < deadline:
            phase = requests.get(job + "/phase", params={"WAIT": "10"}, timeout=30).text.strip()
        assert phase == "COMPLETED", (phase, requests.get(job + "/error", timeout=30).text[:2000],
                                      log_tail(c.log, 40))
        body = requests.get(job + "/results/result", timeout=120).content
        assert body.count(b"<TR>") == n, (body.count(b"<TR>"), n)
        log = c.log_text()[before:]
        assert "the query workers failed while it ran, it runs again here" in log, log_tail(c.log, 40)
    finally:
        c.stop()
