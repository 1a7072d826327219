"""Several vostok processes sharing one PostgreSQL database, behind a load balancer.

Three servers on loopback share a private PostgreSQL cluster (started here, whatever the
suite's mode: conformance/pg_oracle.py) for their jobs and VOSpace records and one S3 bucket for their data (the
suite's S3 server with VOSTOK_TEST_S3=1, else one started here with scripts/s3-up.sh: a local
data folder is one server's only, by its lock); their VOSpace records are in the same PostgreSQL database.
Debian's nginx balances requests round-robin over them (its configuration in a temporary
folder).

* WAIT on one server returns as soon as another server changes the job's phase (PostgreSQL
  notifications; the poll interval is set long here so that polling cannot pass for them);
  the wake latency is printed.
* PHASE=ABORT sent to one server stops the job where it runs, on another.
* 50 VOSpace uploads go through nginx while one server is SIGKILLed half-way (then started
  again): every file is complete or absent, reads the same through each server, and every
  object stored under vospace/objects/ is a node's.
* 200 async TAP queries with known answers go through nginx while one of the three servers
  is SIGKILLed half-way: every job ends COMPLETED exactly once with the right answer, the
  jobs the dead server was executing are taken over once their lease runs out, and none is
  lost or run twice to completion.
* A server stopped with SIGTERM hands the jobs it runs over: another server runs them again at
  once, not after their lease.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import find_binary, free_port
from pg_oracle import Cluster
from vostok_helpers import (REPO, _s3, _s3_prefix, _toml, hipparcos, http_get, http_post,
                            on_s3, parse_votable, tap_sync)

NGINX = "/usr/sbin/nginx"
JOBS = 200
LEASE_SECONDS = 3
# Long enough that a WAIT answered within a second was woken by a notification, not a poll.
POLL_MS = 4000
# A slow query (a self cross join): tens of seconds, far longer than an abort takes.
SLOW = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS a, hipparcos.hip2 AS b "
        "WHERE a.hip <= 60000 AND MOD(a.hip + b.hip, 7) = 0")


def count_query(bound):
    return f"SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE hip < {bound}"


def first_n(content) -> int:
    table = parse_votable(content).get_first_table().array
    return int(table["n"][0])


# ---------------------------------------------------------------------------------------
# S3, PostgreSQL, three servers, nginx
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_bucket():
    """(boto3 client, bucket, settings): the suite's S3 server, or one started here."""
    import boto3
    from botocore.config import Config
    if on_s3():
        client, bucket = _s3()
        settings = {k: os.environ.get(f"VOSTOK_TEST_S3_{k}", "") for k in
                    ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION")}
        yield client, bucket, settings
        return
    d = Path(tempfile.mkdtemp(prefix="vostok-mp-s3-"))
    try:
        p = subprocess.run(["bash", str(REPO / "scripts" / "s3-up.sh"), str(d)],
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, VOSTOK_S3_MEMORY_MB="1024"))
        assert p.returncode == 0, f"scripts/s3-up.sh failed:\n{p.stderr[-4000:]}"
        settings = {}
        for line in (d / "env").read_text().splitlines():
            k, _, v = line.partition("=")
            if k.startswith("VOSTOK_TEST_S3_"):
                settings[k[len("VOSTOK_TEST_S3_"):]] = v
        client = boto3.client(
            "s3", endpoint_url=settings["ENDPOINT"], aws_access_key_id=settings["ACCESS_KEY"],
            aws_secret_access_key=settings["SECRET_KEY"],
            region_name=settings.get("REGION") or "us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))
        bucket = f"vostok-mp-{secrets.token_hex(4)}"
        client.create_bucket(Bucket=bucket)
        yield client, bucket, settings
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "s3-down.sh"), str(d)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


class Proc:
    """One vostok server of the group."""

    def __init__(self, name, root: Path, config: Path):
        self.name, self.root, self.config = name, root, config
        self.log = root / "server.log"
        self.proc = None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1",
                   VOSTOK_DEMO_DIR=str(REPO / "data" / "demo"))
        env.pop("VOSTOK_METADATA_URL", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(find_binary()), "--config", str(self.config), "serve",
                 "--bind", f"127.0.0.1:{self.port}"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env)

    def wait_ready(self, timeout=240):
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            try:
                if requests.get(self.base_url + "/tap/availability", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.tail()}"
            time.sleep(0.2)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self):
        return self.log.read_text(errors="replace")

    def tail(self, n=60):
        return "\n".join(self.text().splitlines()[-n:])


@pytest.fixture(scope="module")
def group(server, s3_bucket, tmp_path_factory):
    """(three servers, the nginx base URL, a psycopg connection to the job database)."""
    assert Path(NGINX).is_file(), (f"{NGINX} is missing: scripts/install-test-deps.sh installs "
                                   f"Debian's nginx")
    client, bucket, settings = s3_bucket
    root = tmp_path_factory.mktemp("vostok-multiprocess")
    prefix = "multiprocess-" + _s3_prefix(root)
    # The catalogs of the suite's server, copied into the bucket (no ingest).
    if on_s3():
        src = f"{_s3_prefix(server.data_dir)}/catalogs/"
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=src):
            for o in page.get("Contents", []):
                client.copy_object(Bucket=bucket, Key=f"{prefix}/catalogs/{o['Key'][len(src):]}",
                                   CopySource={"Bucket": bucket, "Key": o["Key"]})
    else:
        base = Path(server.data_dir) / "catalogs"
        for f in base.rglob("*"):
            if f.is_file():
                client.upload_file(str(f), bucket, f"{prefix}/catalogs/{f.relative_to(base).as_posix()}")

    pg = Cluster(max_connections=100)
    try:
        with pg.connect() as c:
            c.execute('CREATE DATABASE "vostok_multiprocess"')
        url = f"postgres://postgres@127.0.0.1:{pg.port}/vostok_multiprocess"
        procs = []
        for name in ("a", "b", "c"):
            d = root / name
            d.mkdir()
            config = d / "vostok.toml"
            config.write_text(_toml({
                "data": f"s3://{bucket}/{prefix}",
                "storage_options": [
                    ["aws_endpoint", settings["ENDPOINT"]],
                    ["aws_allow_http", "true"],
                    ["aws_region", settings.get("REGION") or "us-east-1"],
                    ["aws_access_key_id", settings["ACCESS_KEY"]],
                    ["aws_secret_access_key", settings["SECRET_KEY"]],
                    ["aws_virtual_hosted_style_request", "false"]],
                "metadata": {"url": url, "connections": 4},
                "uws": {"max_running": 2, "lease_seconds": LEASE_SECONDS, "poll_ms": POLL_MS,
                        "max_active_anonymous": 1000},
            }))
            procs.append(Proc(name, d, config))
        # The first one alone (it migrates the empty job database), then the others at once.
        procs[0].start()
        procs[0].wait_ready()
        for p in procs[1:]:
            p.start()
        for p in procs[1:]:
            p.wait_ready()

        ngx = root / "nginx"
        ngx.mkdir()
        ngx.chmod(0o777)  # its workers run as nobody when the test runs as root
        port = free_port()
        upstreams = "\n".join(f"    server 127.0.0.1:{p.port} max_fails=1 fail_timeout=30s;"
                              for p in procs)
        # As root, its workers would run as nobody, who cannot enter pytest's temporary folder
        # to buffer a request's body there (uploads failed with 500).
        as_root = "user root;" if os.geteuid() == 0 else ""
        (ngx / "nginx.conf").write_text(f"""
{as_root}
worker_processes 1;
daemon off;
pid {ngx}/nginx.pid;
error_log {ngx}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {ngx}/body;
  proxy_temp_path {ngx}/proxy;
  fastcgi_temp_path {ngx}/fastcgi;
  uwsgi_temp_path {ngx}/uwsgi;
  scgi_temp_path {ngx}/scgi;
  upstream vostok {{
{upstreams}
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location / {{
      proxy_pass http://vostok;
      proxy_set_header Host $http_host;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 180s;
      proxy_next_upstream error timeout;
    }}
  }}
}}
""")
        nginx = subprocess.Popen([NGINX, "-p", str(ngx), "-c", str(ngx / "nginx.conf"),
                                  "-e", str(ngx / "error.log")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        lb = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert nginx.poll() is None, (ngx / "error.log").read_text(errors="replace")
                try:
                    if requests.get(lb + "/tap/availability", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "nginx does not answer"
                time.sleep(0.2)
            import psycopg
            with psycopg.connect(url, autocommit=True) as db:
                yield procs, lb, db
        finally:
            nginx.terminate()
            try:
                nginx.wait(timeout=20)
            except subprocess.TimeoutExpired:
                nginx.kill()
            for p in procs:
                p.stop()
    finally:
        pg.stop()


def create(base, query, run=False, **params):
    data = {"LANG": "ADQL", "QUERY": query, **{k.upper(): str(v) for k, v in params.items()}}
    if run:
        data["PHASE"] = "RUN"
    r = http_post(base + "/tap/async", data=data, allow_redirects=False)
    assert r.status_code == 303, f"{r.status_code}: {r.text[:500]}"
    return r.headers["Location"]


def phase(url):
    r = http_get(url + "/phase")
    assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return r.text.strip()


def job_id(url):
    return url.rstrip("/").rsplit("/", 1)[1]


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------
# The tests (in this order: the last one kills a server)
# ---------------------------------------------------------------------------------------


def test_wait_wakes_on_a_change_made_by_another_server(group):
    procs, lb, _db = group
    latencies = {}
    # Cross-process for sure: the change is made on one server, the WAIT is on another
    # (directly, then through nginx, which may pick any of them).
    for waiter, changer in [(procs[1], procs[0]), (procs[2], procs[1]), (procs[0], procs[2]),
                            (None, procs[0]), (None, procs[1])]:
        url = create(changer.base_url, count_query(10))
        jid = job_id(url)
        base = lb if waiter is None else waiter.base_url
        got = {}

        def wait():
            r = http_get(f"{base}/tap/async/{jid}", params={"WAIT": "30", "PHASE": "PENDING"})
            got["at"] = time.monotonic()
            got["response"] = r

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(1.0)  # the WAIT is blocked by now
        assert "at" not in got, "the WAIT returned before any change"
        changed = time.monotonic()
        r = http_post(f"{changer.base_url}/tap/async/{jid}/phase", data={"PHASE": "RUN"},
                      allow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        t.join(40)
        assert "at" in got, "the WAIT did not return"
        assert got["response"].status_code == 200
        assert "<uws:phase>PENDING</uws:phase>" not in got["response"].text
        where = "nginx" if waiter is None else waiter.name
        latencies[f"{where}<-{changer.name}"] = got["at"] - changed
    print("WAIT wake latency after a change on another server (s):",
          {k: round(v, 3) for k, v in latencies.items()})
    slow = {k: v for k, v in latencies.items() if v > 1.5}
    assert not slow, f"WAIT woke late (poll interval {POLL_MS} ms): {slow}"


def runner_of(procs, jid):
    """The server whose log says it executes job `jid`."""
    for p in procs:
        if f"job {jid} (tap): executing" in p.text():
            return p
    return None


def test_abort_on_one_server_stops_the_job_running_on_another(group):
    procs, lb, _db = group
    url = create(lb, SLOW, run=True)
    jid = job_id(url)
    wait_for("the slow job executing", lambda: phase(url) == "EXECUTING", 60)
    runner = wait_for("a log naming the server running it", lambda: runner_of(procs, jid), 10)
    other = next(p for p in procs if p is not runner)
    t0 = time.monotonic()
    r = http_post(f"{other.base_url}/tap/async/{jid}/phase", data={"PHASE": "ABORT"},
                  allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    assert phase(url) == "ABORTED"
    wait_for(f"{runner.name} stopping job {jid}",
             lambda: f"job {jid}: stopped" in runner.text(), 10)
    took = time.monotonic() - t0
    print(f"aborted on {other.name}, stopped on {runner.name} after {took:.2f} s")
    assert took < 3, f"the job ran on for {took:.1f} s after its abort"
    assert phase(url) == "ABORTED"


UPLOADS = 50
PUSH = "ivo://ivoa.net/vospace/core#httpput"
PULL = "ivo://ivoa.net/vospace/core#httpget"


def test_vospace_uploads_through_nginx_survive_a_server_killed_half_way(group, s3_bucket):
    """50 VOSpace uploads spread by nginx over the three servers (one VOSpace in PostgreSQL),
    one server SIGKILLed half-way and started again: every file is complete or absent, no
    stored object is left that no node refers to, and every server reads what any wrote."""
    procs, lb, db = group
    client, bucket, _ = s3_bucket
    victim = procs[2]
    user = "mp" + secrets.token_hex(3)
    add = subprocess.run([str(find_binary()), "--config", str(procs[0].config), "user", "add", user],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         cwd=procs[0].root, env={k: v for k, v in os.environ.items()
                                                 if k != "VOSTOK_METADATA_URL"})
    assert add.returncode == 0, add.stderr[-2000:]
    auth = {"Authorization": f"Bearer {add.stdout.split()[-1]}"}
    home = requests.get(f"{lb}/vospace/nodes/{user}", headers=auth, timeout=30)
    assert home.status_code == 200, home.text[:300]
    uri = re.search(r'uri="(vos://[^"]+)"', home.text).group(1)
    rng = np.random.default_rng(50)
    files = {f"{user}/f{i:02d}.bin": rng.bytes(int(rng.choice([1, 64, 700, 6000])) * 1024)
             for i in range(UPLOADS)}

    def push(path):
        try:
            r = requests.post(f"{lb}/vospace/synctrans", headers=auth, allow_redirects=False,
                              timeout=60, params={"TARGET": f"{uri}/{path.split('/', 1)[1]}",
                                                  "DIRECTION": "pushToVoSpace", "PROTOCOL": PUSH,
                                                  "REQUEST": "redirect"})
            if r.status_code != 303:
                return path, f"negotiation {r.status_code}"
            put = requests.put(r.headers["Location"], data=files[path], timeout=120)
            return path, put.status_code
        except requests.RequestException as e:
            return path, f"{type(e).__name__}"

    paths = list(files)
    outcome = {}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(push, p) for p in paths]
        # Half-way: the victim dies, uploads of its in hand.
        deadline = time.monotonic() + 60
        while sum(f.done() for f in futures) < UPLOADS // 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.kill()
        killed_after = sum(f.done() for f in futures)
        for f in futures:
            path, status = f.result()
            outcome[path] = status
    # Started again: its recovery sweeps what the killed process left.
    victim.start()
    victim.wait_ready()

    ok = {p for p, st in outcome.items() if st in (200, 201, 204)}
    assert len(ok) >= UPLOADS // 2, outcome
    # Every file, read through each server: complete, or absent (never a part, never another's).
    partial = {}
    for p in paths:
        for srv in procs:
            r = requests.get(f"{srv.base_url}/vospace/nodes/{p}", headers=auth, timeout=30)
            if r.status_code == 404:
                assert p not in ok, f"{p} was stored (HTTP {outcome[p]}) but {srv.name} has no node"
                continue
            assert r.status_code == 200, r.text[:300]
            t = requests.post(f"{srv.base_url}/vospace/synctrans", headers=auth,
                              allow_redirects=False, timeout=60,
                              params={"TARGET": f"{uri}/{p.split('/', 1)[1]}",
                                      "DIRECTION": "pullFromVoSpace", "PROTOCOL": PULL,
                                      "REQUEST": "redirect"})
            got = requests.get(t.headers["Location"], timeout=120) if t.status_code == 303 else None
            body = got.content if got is not None and got.status_code == 200 else b""
            if p in ok:
                assert body == files[p], f"{p} read through {srv.name}: {len(body)} bytes"
            elif body not in (b"", files[p]):
                partial[p] = len(body)
    assert not partial, f"files neither complete nor absent: {partial}"
    # No object left in the bucket that no node refers to.
    prefix = re.search(r"s3://[^/]+/(\S+)", procs[0].config.read_text()).group(1).rstrip('"')
    stored = set()
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/vospace/objects/"):
        stored |= {o["Key"][len(prefix) + 1:] for o in page.get("Contents", [])}
    referenced = {r[0] for r in db.execute("SELECT object_key FROM nodes WHERE object_key IS NOT NULL")}
    assert stored == referenced, (sorted(stored - referenced)[:5], sorted(referenced - stored)[:5])
    print(f"{UPLOADS} uploads through nginx; {victim.name} SIGKILLed after {killed_after}; "
          f"{len(ok)} stored, {UPLOADS - len(ok)} failed ({sorted(set(map(str, outcome.values())))}); "
          f"{len(stored)} objects, each a node's")


def test_jobs_through_nginx_survive_a_server_killed_half_way(group):
    procs, lb, db = group
    hips = np.sort(hipparcos().ids)
    rng = np.random.default_rng(18)
    bounds = sorted(set(int(b) for b in rng.integers(1, 120_000, size=10 * JOBS)))[:JOBS]
    rng.shuffle(bounds)
    truth = {b: int(np.searchsorted(hips, b, side="left")) for b in bounds}
    # The answers known from the raw file are the service's own, synchronously.
    for b in bounds[:3]:
        r = tap_sync(lb, count_query(b))
        assert r.status_code == 200, r.text[:300]
        assert first_n(r.content) == truth[b]

    victim = procs[1]
    submitted = {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda ib: (ib[1], create(lb, count_query(ib[1]), run=True,
                                                          RUNID=f"mp-{ib[0]}")),
                              enumerate(bounds[: JOBS // 2])))
        submitted.update({url: b for b, url in first})
        # Half-way: the victim dies with jobs in hand.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = victim.text()
            started = set(re.findall(r"job (\S+) \(tap\): executing", text))
            ended = set(re.findall(r"job (\S+): (?:completed|error|stopped)", text))
            if started - ended:
                break
            time.sleep(0.05)
        victim.kill()
        text = victim.text()
        started = set(re.findall(r"job (\S+) \(tap\): executing", text))
        ended = set(re.findall(r"job (\S+): (?:completed|error|stopped)", text))
        executing_at_kill = started - ended
        killed_at = time.monotonic() - t0
        rest = list(pool.map(lambda ib: (ib[1], create(lb, count_query(ib[1]), run=True,
                                                         RUNID=f"mp-{ib[0] + JOBS // 2}")),
                             enumerate(bounds[JOBS // 2:])))
        submitted.update({url: b for b, url in rest})
    assert len(submitted) == JOBS

    pending = set(submitted)
    deadline = time.monotonic() + 150
    while pending:
        for url in list(pending):
            if phase(url) in ("COMPLETED", "ERROR", "ABORTED"):
                pending.discard(url)
        assert time.monotonic() < deadline, (
            f"{len(pending)} jobs not finished, e.g. {sorted(pending)[:3]}; "
            + "\n".join(f"--- {p.name}\n{p.tail(30)}" for p in procs))
        if pending:
            time.sleep(0.5)
    all_done = time.monotonic() - t0

    wrong = {}
    for url, b in submitted.items():
        ph = phase(url)
        if ph != "COMPLETED":
            wrong[url] = ph
            continue
        r = http_get(url + "/results/result")
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
        n = first_n(r.content)
        if n != truth[b]:
            wrong[url] = f"n={n}, expected {truth[b]}"
    assert not wrong, f"{len(wrong)} jobs wrong: {dict(list(wrong.items())[:5])}"

    # In the database: each job once, none left claimed.
    ours = {job_id(u) for u in submitted}
    rows = db.execute("SELECT id, phase, claimed_by FROM uws_jobs WHERE run_id LIKE 'mp-%'"
                      ).fetchall()
    assert {r[0] for r in rows} == ours and len(rows) == JOBS
    assert {r[1] for r in rows} == {"COMPLETED"}
    assert all(r[2] is None for r in rows)
    # Completed once: no job's completion is logged twice (by two servers, or twice by one).
    logs = "".join(p.text() for p in procs)
    completions = re.findall(r"job (\S+): completed", logs)
    twice = {j for j in completions if completions.count(j) > 1 and j in ours}
    assert not twice, f"jobs completed more than once: {sorted(twice)[:5]}"
    # What the victim was executing was taken over by the others, and ran again to the end.
    survivors = "".join(p.text() for p in procs if p is not victim)
    taken = set(re.findall(r"job (\S+) \(tap\): the server running it stopped renewing", survivors))
    assert executing_at_kill <= taken, (executing_at_kill, taken)
    per_server = {p.name: len(re.findall(r"job \S+: completed", p.text())) for p in procs}
    print(f"{JOBS} jobs through nginx; server {victim.name} SIGKILLed at {killed_at:.1f} s "
          f"executing {len(executing_at_kill)} job(s), taken over: {len(taken)}; all COMPLETED "
          f"after {all_done:.1f} s; completions per server: {per_server}")


def test_a_stopping_server_hands_its_running_jobs_over_at_once(group):
    procs, lb, _db = group
    alive = [p for p in procs if p.alive()]
    assert len(alive) >= 2, "the servers the earlier tests left running"
    url = create(lb, SLOW, run=True)
    jid = job_id(url)
    wait_for("the slow job executing", lambda: phase(url) == "EXECUTING", 60)
    runner = wait_for("a log naming the server running it", lambda: runner_of(alive, jid), 10)
    other = next(p for p in alive if p is not runner)
    runner.stop()  # SIGTERM: it hands its running jobs over as it stops
    stopped = time.monotonic()
    assert f"job {jid}: handed over as the server stops" in runner.text(), runner.tail()
    wait_for(f"{other.name} running job {jid}",
             lambda: f"job {jid} (tap): executing" in other.text(), 30)
    took = time.monotonic() - stopped
    print(f"{runner.name} stopped (SIGTERM); {other.name} ran its job after {took:.2f} s")
    # Not the lease running out, nor polling: the release is announced.
    assert took < min(LEASE_SECONDS, POLL_MS / 1000) - 0.5, f"taken over after {took:.1f} s"
    r = http_post(f"{other.base_url}/tap/async/{jid}/phase", data={"PHASE": "ABORT"},
                  allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    assert phase(f"{other.base_url}/tap/async/{jid}") == "ABORTED"
