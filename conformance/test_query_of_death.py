"""Queries of death (issue 14): hostile queries and requests against a server of the test's
own with tight limits. Each must end, within a bounded time, with a clear error — the
protocol's error document (a VOTable with QUERY_STATUS=ERROR for TAP), a fitting HTTP status
(400, 413, 429, 503 with Retry-After) and a message naming the limit met — or with a correct,
bounded answer: never a 500, a hang, a dropped connection or a dead server.

The server (`vostok.toml` of its own, the demo catalogs, and a `bomb` collection):

    [tap]    sync_timeout = 10
    [limits] query_memory_mb = 256, planning_seconds = 5, decompressed_mb = 64
             (sync_queries = 8, sync_queue_ms = 2000, heavy_queries = 1, previews = 2: defaults)

Around every case the test measures the server process itself (/proc/<pid>): its CPU time
(utime + stime) and its peak resident memory (VmHWM, reset through /proc/<pid>/clear_refs
before the case). After every case:

* the process is alive, `/tap/availability` answers 200 and a TAP cone search
  (`1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 0.5))` on hipparcos.hip2)
  returns exactly the brute-force ids (the radius is 0.5°, not 0.1°: no Hipparcos star lies
  within 0.1° of that centre, and an empty answer proves little);
* the server's CPU use returns to idle (under 10 % of a core over 1 s), having spent at most
  SETTLE_CPU_S seconds of CPU after the answer: an answer that says "stopped" while the work
  goes on is not an answer, and such work holds the slow lane (heavy_queries = 1) against the
  next user. The work left is counted in CPU seconds of the server process, not in seconds of
  the clock, so that other programs busy on the same machine do not change the verdict;
* the peak resident memory grew by at most MAX_GROWTH_MB during the case (query_memory_mb is
  256: a few times that, never gigabytes).

The cases (numbered as in the issue):

 1  every row of gaia.dr3_bright sorted by a computed expression, MAXREC at the hard limit:
    482,176 rows, every source_id once, in order
 2  `SELECT COUNT(*) FROM gaia.dr3_bright AS a, hipparcos.hip2 AS b`: stopped at sync_timeout
 3  a ~1.2e9-row generator (TAP_SCHEMA.columns four times × TAP_SCHEMA.tables, a condition
    that keeps COUNT(*) from being answered from the table statistics), counted
 4  the cross join ORDER BY an expression of both sides (the issue's original killer)
 5  `WHERE NOT (NOT (… hip = 1))` 45 levels deep: refused at once (nested too deeply)
 6  350 chained `1+1+…+1`: refused at once (nested too deeply)
 7  100 nested subqueries `SELECT * FROM (SELECT * FROM (…) AS t0) AS t1 …`
 8  `hip IN (1, 2, …, 100000)` in a POST: the brute-force count, or a planning/time limit
 9  a 100,000-vertex POLYGON in CONTAINS: the count of a brute-force band, or a limit
10  POLYGONs with NaN, infinite, out-of-range, antipodal and degenerate coordinates
11a ivo_histogram with 10⁹ bins: refused
11b ivo_histogram with 10⁶ bins per group over ~120 groups (~1 GB of counters): refused,
    bounded by query_memory_mb, or answered without gigabytes
11c ivo_string_agg of 2.8e7 joined values into one ~560 MB string: refused (query_memory_mb)
12  GROUP BY a.source_id, b.hip over the cross join (the memory pool)
13  a UNION of 500 SELECTs: the brute-force ids, or a limit
14a a 15 MiB query of comments; 14b a 15 MiB query of whitespace; 14c a body over the
    16 MiB limit (413 or 400, an error document naming the size)
15  an async job with the cross join and EXECUTIONDURATION=5: ERROR naming the execution
    duration, within bounds, and the work stops
16  30 heavy sync queries at once (a crossmatch count): 200 with the brute-force answer or
    503 + Retry-After naming sync_queries / heavy_queries; some 503; no 500; all end
17  a client sends a heavy sync query and disconnects after 1 s: the server's CPU use is
    idle again within DISCONNECT_SETTLE_CPU_S CPU seconds (the query was cancelled)
18  a gzip bomb product (a FITS header + zeros, 256 MiB decompressed, ~260 KB stored),
    ingested with `vostok ingest --collection bomb`: /datalink/preview and /datalink/header
    answer 413 naming decompressed_mb, quickly
19  20 previews of the largest demo image at once: PNGs or 503 + Retry-After, no 500
20  SIGTERM while the cross join ORDER BY runs (a second server on the same data): the
    process exits within 10 s

`pytest -s` prints a table of every case (HTTP status, seconds, peak memory, settle time in
seconds and in CPU seconds, the first 200 characters of the error or a summary of the answer, pass/fail). The whole
file takes 4–6 minutes on 2 cores. The server's address space is capped (RLIMIT_AS 16 GiB) so
that a memory weakness kills the server — a failed case — rather than the shared machine.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from conftest import find_binary
from vostok_helpers import GAIA_ROWS, HIP_ROWS, OwnServer, gaia, hipparcos

SYNC_TIMEOUT = 10
PLANNING_SECONDS = 5
QUERY_MEMORY_MB = 256
DECOMPRESSED_MB = 64
SYNC_QUEUE_S = 2
CONFIG = f"""\
demo = true

[tap]
sync_timeout = {SYNC_TIMEOUT}

[limits]
query_memory_mb = {QUERY_MEMORY_MB}
planning_seconds = {PLANNING_SECONDS}
decompressed_mb = {DECOMPRESSED_MB}
"""

# Time a refused or stopped query may take beyond the limits that bound it.
SLACK_S = 10
# A query bounded by planning and the sync time limit answers within this.
QUERY_BOUND_S = PLANNING_SECONDS + SYNC_TIMEOUT + SLACK_S
# A refusal "at once" (nesting, bad arguments).
AT_ONCE_S = 3
# After an answer the server spends at most this many CPU seconds before it is idle again.
SETTLE_CPU_S = 5
# After a client disconnects, its query stops within this many CPU seconds.
DISCONNECT_SETTLE_CPU_S = 4
# Idle: the server process used at most this fraction of a core over IDLE_WINDOW_S.
IDLE_FRACTION = 0.10
IDLE_WINDOW_S = 1.0
# How long to wait for idle (after a case, and before the next one) before giving up.
IDLE_CAP_S = 45
# Peak resident memory may grow by at most this much during a case.
MAX_GROWTH_MB = 3 * QUERY_MEMORY_MB
# The server's address space cap, protecting the shared machine.
AS_LIMIT = 16 << 30
# SIGTERM: the process exits within this.
SIGTERM_EXIT_S = 10

# The health cone (module doc: why 0.5 deg).
CONE = (56.75, 24.12, 0.5)
CONE_QUERY = ("SELECT hip FROM hipparcos.hip2 WHERE "
              "1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {}, {}, {}))".format(*CONE))

# What an error message must name, per limit.
TIMEOUT_RE = r"sync_timeout|allowed to synchronous queries"
MEMORY_RE = r"query_memory_mb|needs more memory"
PLANNING_RE = r"planning_seconds|planning took longer"
NESTED_RE = r"nested too deeply"
BUSY_RE = r"\[limits\] (sync_queries|heavy_queries)"
LIMITS_RE = "|".join([TIMEOUT_RE, MEMORY_RE, PLANNING_RE, BUSY_RE])

CROSS_COUNT = "SELECT COUNT(*) AS n FROM gaia.dr3_bright AS a, hipparcos.hip2 AS b"
CROSS_ORDER = ("SELECT a.source_id, b.hip FROM gaia.dr3_bright AS a, hipparcos.hip2 AS b "
               "ORDER BY a.ra - b.ra")
GENERATOR = ("SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns AS a, TAP_SCHEMA.columns AS b, "
             "TAP_SCHEMA.columns AS c, TAP_SCHEMA.columns AS d, TAP_SCHEMA.tables AS t "
             "WHERE a.column_index + b.column_index + c.column_index + d.column_index >= 0")
XMATCH = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g "
          "ON 1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, 3.0/3600))")
XMATCH_PAIRS = 101_837  # README, conformance/test_xmatch.py: the brute-force pair count

CLK = os.sysconf("SC_CLK_TCK")
RESULTS: list[dict] = []


# ---------------------------------------------------------------------------------------
# The server and what is measured of it
# ---------------------------------------------------------------------------------------


def fits_card(key, value=None):
    text = key if value is None else f"{key:<8}= {value:>20}"
    return text.ljust(80)[:80]


def write_bomb(path, side=16384):
    """A valid FITS image (BITPIX 8, side × side bytes of zeros: 256 MiB) with a TAN WCS, so
    that ingest gives it an ObsCore record with a position; gzipped (~260 KB)."""
    cards = [("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "2"), ("NAXIS1", str(side)),
             ("NAXIS2", str(side)), ("CTYPE1", "'RA---TAN'"), ("CTYPE2", "'DEC--TAN'"),
             ("CRVAL1", "150.0"), ("CRVAL2", "2.0"), ("CRPIX1", f"{side / 2 + 0.5}"),
             ("CRPIX2", f"{side / 2 + 0.5}"), ("CDELT1", "-0.0001"), ("CDELT2", "0.0001"),
             ("RADESYS", "'ICRS'"), ("EQUINOX", "2000.0"), ("OBJECT", "'bomb'"),
             ("DATE-OBS", "'2020-01-01T00:00:00'")]
    header = "".join(fits_card(k, v) for k, v in cards) + fits_card("END")
    header = header.encode("ascii")
    header += b" " * (-len(header) % 2880)
    zeros = b"\0" * (1 << 24)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        for _ in range(side * side // len(zeros)):
            f.write(zeros)


class Probe:
    """CPU time and peak memory of the server process."""

    def __init__(self, pid):
        self.pid = pid

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime

    def _status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) // 1024 if m else None

    def rss_mb(self):
        return self._status("VmRSS")

    def peak_mb(self):
        return self._status("VmHWM")

    def reset_peak(self):
        """Resets VmHWM to the current RSS; False when the kernel does not allow it."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def wait_idle(self, cap=IDLE_CAP_S):
        """Waits until the process used at most IDLE_FRACTION of a core over IDLE_WINDOW_S;
        returns the monotonic time that idle window started and the process's CPU time then
        (None when the process is gone), or None after `cap` seconds."""
        t0 = time.monotonic()
        try:
            samples = [(t0, self.cpu())]
        except OSError:
            return t0, None  # the process is gone
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            try:
                c = self.cpu()
            except OSError:
                return now, None  # the process is gone: idle indeed (the health check says more)
            samples.append((now, c))
            old = [s for s in samples if now - s[0] >= IDLE_WINDOW_S]
            if old:
                t_old, c_old = old[-1]
                if c - c_old <= IDLE_FRACTION * (now - t_old):
                    return t_old, c_old
            if now - t0 > cap:
                return None


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """The server with tight limits, the demo data and the bomb collection."""
    root = tmp_path_factory.mktemp("vostok-qod")
    data, bombs = root / "data", root / "bomb-src"
    bombs.mkdir()
    write_bomb(bombs / "bomb.fits.gz")
    config = root / "vostok.toml"
    config.write_text(CONFIG)
    binary = find_binary()
    p = subprocess.run([str(binary), "--config", str(config), "ingest", str(bombs),
                        "--collection", "bomb", "--data-dir", str(data)],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                       cwd=root)
    assert p.returncode == 0 and "1 ObsCore records" in p.stdout, (
        f"vostok ingest of the bomb failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
    s = OwnServer(binary, data, root / "server.log", config=config)
    s.start()
    try:
        resource.prlimit(s.proc.pid, resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    except (OSError, ValueError) as e:  # not fatal: the cap only protects the machine
        print(f"[qod] could not cap the server's address space: {e}")
    s.probe = Probe(s.proc.pid)
    s.binary = binary
    s.root = root
    yield s
    s.stop()


@pytest.fixture(scope="module", autouse=True)
def report():
    """Prints the table of every case at the end of the module (pytest -s shows it)."""
    yield
    if not RESULTS:
        return
    lines = ["", "=" * 100, "queries of death: per-case results", "=" * 100,
             f"{'case':<5} {'status':<16} {'secs':>7} {'peakMB':>7} {'growMB':>7} "
             f"{'settle':>7} {'cpu':>5}  verdict  | what / answer"]
    for r in RESULTS:
        settle = r.get("settle")
        settle_s = "-" if settle is None else ("never" if settle == "never" else f"{settle:.1f}")
        secs = r.get("secs")
        lines.append(
            f"{r['case']:<5} {str(r.get('status', '-')):<16} "
            f"{'-' if secs is None else f'{secs:.2f}':>7} {str(r.get('peak', '-')):>7} "
            f"{str(r.get('growth', '-')):>7} {settle_s:>7} {str(r.get('settle_cpu', '-')):>5}  "
            f"{r['verdict']:<7}  | {r['what']}")
        lines.append(f"{'':<5} answer: {r.get('excerpt', '')[:200]}")
        for p in r.get("problems", []):
            lines.append(f"{'':<5} PROBLEM: {p[:400]}")
    lines.append("=" * 100)
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------
# Requests and their checks
# ---------------------------------------------------------------------------------------


def tap_post(base, query, timeout, **params):
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    data.update({k.upper(): str(v) for k, v in params.items()})
    return requests.post(base + "/tap/sync", data=data, timeout=(10, timeout))


def error_message(content: bytes):
    """The text of the INFO QUERY_STATUS=ERROR of a VOTable, or None (not a VOTable, or no
    such INFO)."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "VOTABLE":
        return None
    for el in root.iter():
        if (el.tag.rsplit("}", 1)[-1] == "INFO" and (el.get("name") or "").upper() == "QUERY_STATUS"
                and (el.get("value") or "").upper() == "ERROR"):
            return (el.text or "").strip()
    return None


def check_error(r, pattern, problems, what="the answer", votable=True):
    """An error answer: a fitting status, the error document (a VOTable with
    QUERY_STATUS=ERROR when `votable`), Retry-After on a 503, a message matching `pattern`.
    Returns the message (or the body's start)."""
    body = r.content[:4000]
    msg = error_message(r.content) if votable else r.text.strip()
    if r.status_code not in (400, 413, 429, 503):
        problems.append(f"{what}: HTTP {r.status_code}, expected 400/413/429/503; "
                        f"body {body[:300]!r}")
    if votable and msg is None:
        problems.append(f"{what}: HTTP {r.status_code} is not a VOTable error document "
                        f"(Content-Type {r.headers.get('Content-Type')!r}, body {body[:300]!r})")
        msg = r.text.strip()
    if r.status_code == 503:
        ra = r.headers.get("Retry-After", "")
        if not ra.strip().isdigit():
            problems.append(f"{what}: 503 without a Retry-After in seconds ({ra!r})")
    if not re.search(pattern, msg or "", re.I):
        problems.append(f"{what}: the message does not name the limit met (expected /{pattern}/): "
                        f"{(msg or '')[:300]!r}")
    return msg or ""


def csv_rows(r):
    """The data lines of a CSV answer, and a trailing `# ERROR:` line's message if any."""
    lines = r.text.splitlines()
    err = next((ln for ln in lines if ln.startswith("# ERROR")), None)
    return [ln for ln in lines[1:] if ln and not ln.startswith("#")], err


class Case:
    """One case: waits for an idle server, measures it, runs the health checks afterwards,
    records the row of the table and fails with every problem found."""

    def __init__(self, srv, case, what):
        self.srv, self.case, self.what = srv, case, what
        self.problems: list[str] = []
        self.rec = {"case": case, "what": what, "status": "-", "secs": None, "excerpt": ""}
        self.answered = None
        self.cpu_answered = None

    def __enter__(self):
        if self.srv.proc.poll() is not None:
            pytest.fail(f"case {self.case}: the server is dead before the case (exit status "
                        f"{self.srv.proc.returncode}): an earlier case killed it", pytrace=False)
        p = self.srv.probe
        if p.wait_idle(cap=60) is None:
            self.problems.append("the server was still busy from the previous case after 60 s")
        self.rss0 = p.rss_mb()
        self.peak_ok = p.reset_peak()
        self.t0 = time.monotonic()
        return self

    def answer(self, status, excerpt, t_answer=None):
        """Records the answer: its status, when it came, what it said."""
        self.answered = t_answer or time.monotonic()
        self.cpu_answered = self._cpu()
        self.rec["status"] = status
        self.rec["secs"] = round(self.answered - self.t0, 2)
        self.rec["excerpt"] = " ".join(str(excerpt).split())[:200]

    def _cpu(self):
        try:
            return self.srv.probe.cpu()
        except OSError:
            return None

    def bound(self, seconds, what="the answer"):
        secs = (self.answered or time.monotonic()) - self.t0
        if secs > seconds:
            self.problems.append(f"{what} took {secs:.1f} s, more than the {seconds} s allowed")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not isinstance(exc, AssertionError):
            self.problems.append(f"the client failed: {exc_type.__name__}: {exc}")
        elif exc_type is not None:
            self.problems.append(str(exc))
        if self.answered is None:
            self.answered = time.monotonic()
            self.cpu_answered = self._cpu()
            self.rec["secs"] = round(self.answered - self.t0, 2)
        if getattr(self, "skip_health", False):
            self.rec["settle"] = None
        elif self.srv.proc.poll() is not None:
            health(self.srv, self.problems)  # says that it died
            self.rec["settle"] = None
        else:
            health(self.srv, self.problems)
            idle = self.srv.probe.wait_idle()
            if idle is None:
                self.rec["settle"] = "never"
                self.problems.append(
                    f"the server kept using CPU for more than {IDLE_CAP_S} s after the answer "
                    "(the work was not stopped)")
            else:
                t_idle, cpu_idle = idle
                self.rec["settle"] = round(max(0.0, t_idle - self.answered), 1)
                if cpu_idle is not None and self.cpu_answered is not None:
                    spent = cpu_idle - self.cpu_answered
                    self.rec["settle_cpu"] = round(spent, 1)
                    limit = getattr(self, "settle_limit", SETTLE_CPU_S)
                    if spent > limit:
                        self.problems.append(
                            f"the server spent {spent:.1f} s of CPU after the answer before it "
                            f"was idle (more than {limit} s: the work was not stopped)")
        if self.peak_ok and self.srv.proc.poll() is None:
            peak = self.srv.probe.peak_mb()
            self.rec["peak"] = peak
            self.rec["growth"] = peak - self.rss0
            if peak - self.rss0 > MAX_GROWTH_MB:
                self.problems.append(
                    f"peak resident memory grew by {peak - self.rss0} MiB during the case "
                    f"({self.rss0} -> {peak} MiB), more than {MAX_GROWTH_MB} MiB "
                    f"(query_memory_mb = {QUERY_MEMORY_MB})")
        self.rec["problems"] = list(self.problems)
        self.rec["verdict"] = "FAIL" if self.problems else "pass"
        RESULTS.append(self.rec)
        assert not self.problems, (f"case {self.case} ({self.what}):\n  - "
                                   + "\n  - ".join(self.problems))
        return True  # an AssertionError inside is reported through the problems


def health(srv, problems):
    """The server is alive, /tap/availability answers 200, the cone search is right."""
    if srv.proc.poll() is not None:
        problems.append(f"the server died (exit status {srv.proc.returncode}):\n"
                        + srv.tail(30))
        return
    try:
        t = time.monotonic()
        r = requests.get(srv.base_url + "/tap/availability", timeout=(5, 10))
        if r.status_code != 200 or b"true" not in r.content:
            problems.append(f"/tap/availability: HTTP {r.status_code} {r.text[:200]!r}")
        r = tap_post(srv.base_url, CONE_QUERY, 15, RESPONSEFORMAT="csv")
        secs = time.monotonic() - t
        if r.status_code != 200:
            problems.append(f"cone search after the case: HTTP {r.status_code} "
                            f"{(error_message(r.content) or r.text)[:300]!r}")
            return
        rows, err = csv_rows(r)
        got = sorted(int(x) for x in rows)
        truth = hipparcos().cone(*CONE)
        if err or set(got) - truth.ties != truth.inside or len(got) != len(set(got)):
            problems.append(f"cone search after the case is wrong: got {got}, expected "
                            f"{sorted(truth.inside)} (+ties {sorted(truth.ties)}) {err or ''}")
        if secs > 15:
            problems.append(f"availability + cone search after the case took {secs:.1f} s")
    except requests.RequestException as e:
        problems.append(f"the server does not answer after the case: {e!r}")


def query_case(srv, case, what, query, ok_200, pattern=LIMITS_RE, bound=QUERY_BOUND_S,
               timeout=None, **params):
    """A TAP sync query that must give a correct answer (`ok_200(response, problems)` returns
    a summary) or an error document naming a limit (`pattern`)."""
    with Case(srv, case, what) as c:
        try:
            r = tap_post(srv.base_url, query, timeout or bound + 30, **params)
        except requests.RequestException as e:
            c.answer("no answer", repr(e))
            c.problems.append(f"no HTTP answer: {e!r} (a hang or a dropped connection)")
            return c
        if r.status_code == 200:
            c.answer(200, ok_200(r, c.problems))
        else:
            msg = check_error(r, pattern, c.problems)
            c.answer(r.status_code, msg)
        c.bound(bound)
    return c


# ---------------------------------------------------------------------------------------
# 1–4: sorts and cross joins
# ---------------------------------------------------------------------------------------

SORT_EXPR = "SIN(RADIANS(ra)) * COS(RADIANS(dec)) + phot_g_mean_mag * pmra"


@pytest.mark.timeout(240)
def test_01_sort_every_gaia_row_by_an_expression(tight):
    def ok(r, problems):
        import pandas as pd
        import io
        rows, err = csv_rows(r)
        if err:
            problems.append(f"the result ends with an error after its rows: {err[:300]}")
            return err
        d = pd.read_csv(io.StringIO(r.text), comment="#")
        ids = d["source_id"].to_numpy()
        if len(d) != GAIA_ROWS or len(set(ids.tolist())) != GAIA_ROWS:
            problems.append(f"{len(d)} rows ({len(set(ids.tolist()))} distinct source_id), "
                            f"expected every one of the {GAIA_ROWS} rows once")
        elif set(ids.tolist()) != set(gaia().ids.tolist()):
            problems.append("the source_ids are not those of the raw catalog")
        k = d["k"].to_numpy(dtype=float)
        finite = k[~np.isnan(k)]
        bad = int(np.sum(np.diff(finite) > 1e-9 * np.maximum(1, np.abs(finite[1:]))))
        if bad:
            problems.append(f"not sorted by the expression (descending): {bad} increases")
        return f"{len(d)} rows, sorted by k descending: first k {k[0]:.6g}, last k {k[-1]:.6g}"

    query_case(tight, "1", "every gaia.dr3_bright row sorted by a computed expression, "
               "MAXREC=10000000 (hard limit)",
               f"SELECT source_id, ra, dec, {SORT_EXPR} AS k FROM gaia.dr3_bright "
               f"ORDER BY {SORT_EXPR} DESC",
               ok, bound=QUERY_BOUND_S, timeout=180, MAXREC=10_000_000, RESPONSEFORMAT="csv")


def count_ok(expected):
    def ok(r, problems):
        rows, err = csv_rows(r)
        if err or len(rows) != 1 or int(rows[0]) != expected:
            problems.append(f"COUNT(*) = {rows[:3]} {err or ''}, expected {expected}")
        return f"count {rows[:1]}"
    return ok


@pytest.mark.timeout(180)
def test_02_cross_join_counted(tight):
    query_case(tight, "2", "COUNT(*) of gaia.dr3_bright x hipparcos.hip2 (no condition)",
               CROSS_COUNT, count_ok(GAIA_ROWS * HIP_ROWS),
               pattern="|".join([TIMEOUT_RE, MEMORY_RE, BUSY_RE]),
               bound=SYNC_TIMEOUT + SLACK_S, RESPONSEFORMAT="csv")


@pytest.mark.timeout(180)
def test_03_generator_of_a_billion_rows(tight):
    counts = []
    for t in ("TAP_SCHEMA.columns", "TAP_SCHEMA.tables"):
        r = tap_post(tight.base_url, f"SELECT COUNT(*) AS n FROM {t}", 30, RESPONSEFORMAT="csv")
        assert r.status_code == 200, r.text[:300]
        counts.append(int(csv_rows(r)[0][0]))
    ncol, ntab = counts
    assert ncol ** 4 * ntab > 10 ** 9, (ncol, ntab)
    query_case(tight, "3", f"COUNT(*) over TAP_SCHEMA.columns^4 x TAP_SCHEMA.tables "
               f"({ncol}^4 x {ntab} = {ncol ** 4 * ntab:.2e} rows) with a condition",
               GENERATOR, count_ok(ncol ** 4 * ntab),
               pattern="|".join([TIMEOUT_RE, MEMORY_RE, BUSY_RE]),
               bound=SYNC_TIMEOUT + SLACK_S, RESPONSEFORMAT="csv")


@pytest.mark.timeout(180)
def test_04_cross_join_order_by(tight):
    def ok(r, problems):
        # 10 rows of 5.7e10 in order and the OVERFLOW: accepted as it comes (no truth here).
        if b'value="OVERFLOW"' not in r.content:
            problems.append("a 200 without QUERY_STATUS=OVERFLOW (MAXREC=10 of 5.7e10 rows)")
        return f"200, {len(r.content)} bytes"

    query_case(tight, "4", "the cross join ORDER BY a.ra - b.ra (MAXREC=10)", CROSS_ORDER, ok,
               pattern="|".join([TIMEOUT_RE, MEMORY_RE, BUSY_RE]),
               bound=SYNC_TIMEOUT + SLACK_S, MAXREC=10)


# ---------------------------------------------------------------------------------------
# 5–7: nesting
# ---------------------------------------------------------------------------------------


def refused_only(r, problems):
    problems.append(f"answered 200 ({len(r.content)} bytes): expected a refusal")
    return r.text[:200]


@pytest.mark.timeout(120)
def test_05_not_nested_45_levels(tight):
    q = ("SELECT hip FROM hipparcos.hip2 WHERE " + "NOT (" * 45 + "hip = 1" + ")" * 45)
    query_case(tight, "5", "WHERE NOT (NOT (... hip = 1)) 45 levels", q, refused_only,
               pattern=NESTED_RE, bound=AT_ONCE_S)


@pytest.mark.timeout(120)
def test_06_chain_of_350_operators(tight):
    q = "SELECT hip FROM hipparcos.hip2 WHERE hip = " + "+".join(["1"] * 351)
    query_case(tight, "6", "hip = 1+1+...+1 (350 operators)", q, refused_only,
               pattern=NESTED_RE, bound=AT_ONCE_S)


@pytest.mark.timeout(120)
def test_07_subqueries_100_deep(tight):
    q = "SELECT hip FROM hipparcos.hip2 WHERE hip < 100"
    for i in range(100):
        q = f"SELECT * FROM ({q}) AS t{i}"
    truth = sorted(i for i in hipparcos().ids.tolist() if i < 100)

    def ok(r, problems):
        rows, err = csv_rows(r)
        got = sorted(int(x) for x in rows)
        if err or got != truth:
            problems.append(f"rows {got[:10]}… {err or ''}, expected {truth[:10]}…")
        return f"{len(got)} rows"

    query_case(tight, "7", "100 nested subqueries SELECT * FROM (SELECT * FROM (...) AS t0) AS t1",
               q, ok, pattern=NESTED_RE + "|" + PLANNING_RE, bound=AT_ONCE_S,
               RESPONSEFORMAT="csv")


# ---------------------------------------------------------------------------------------
# 8–11: huge arguments
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_08_in_list_of_100000_values(tight):
    q = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE hip IN ("
         + ",".join(str(i) for i in range(1, 100_001)) + ")")
    ids = hipparcos().ids
    expected = int(np.sum((ids >= 1) & (ids <= 100_000)))
    query_case(tight, "8", f"hip IN (1..100000), {len(q) / 1e6:.1f} MB query (POST)", q,
               count_ok(expected), RESPONSEFORMAT="csv")


@pytest.mark.timeout(240)
def test_09_polygon_of_100000_vertices(tight):
    ra0, dec0, a = 56.75, 24.12, 0.5
    n = 100_000
    cosd = math.cos(math.radians(dec0))
    verts = ",".join(f"{ra0 + a * math.cos(t) / cosd:.9f},{dec0 + a * math.sin(t):.9f}"
                     for t in (2 * math.pi * i / n for i in range(n)))
    q = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE "
         f"1=CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {verts}))")
    h = hipparcos()
    rho = np.hypot((h.ra - ra0) * cosd, h.dec - dec0)  # the ellipse the vertices lie on
    lo, hi = int(np.sum(rho < a - 0.002)), int(np.sum(rho <= a + 0.002))

    def ok(r, problems):
        rows, err = csv_rows(r)
        if err or len(rows) != 1 or not lo <= int(rows[0]) <= hi:
            problems.append(f"COUNT(*) = {rows[:3]} {err or ''}, expected {lo}..{hi}")
        return f"count {rows[:1]} (brute force {lo}..{hi})"

    query_case(tight, "9", f"CONTAINS(POINT, POLYGON of {n} vertices), {len(q) / 1e6:.1f} MB",
               q, ok, pattern=LIMITS_RE + r"|vertices", timeout=180, RESPONSEFORMAT="csv")


ABSURD_POLYGONS = [
    ("NaN vertex (0.0/0.0)", "POLYGON('ICRS', 0.0/0.0, 0, 10, 10, 20, 0)"),
    ("infinite vertex (1e300*1e300)", "POLYGON('ICRS', 1e300*1e300, 0, 10, 10, 20, 0)"),
    ("latitude 1e308", "POLYGON('ICRS', 1e308, 1e308, 0, 0, 10, 10)"),
    ("latitudes ±95", "POLYGON('ICRS', 10, 95, 20, -95, 30, 10)"),
    ("longitude 1e308", "POLYGON('ICRS', 1e308, 10, 0, 0, 10, 10)"),
    ("NaN in STC-S", "REGION('Polygon ICRS NaN NaN 1 1 2 2')"),
    ("all vertices equal", "POLYGON('ICRS', 10, 10, 10, 10, 10, 10)"),
    ("antipodal vertices", "POLYGON('ICRS', 0, 0, 180, 0, 0, 0.0000001)"),
    ("self-intersecting bow tie", "POLYGON('ICRS', 0, 0, 10, 10, 10, 0, 0, 10)"),
    ("SQRT(-1) vertex", "POLYGON('ICRS', SQRT(-1), 0, 10, 10, 20, 0)"),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("label,poly", ABSURD_POLYGONS, ids=[a for a, _ in ABSURD_POLYGONS])
def test_10_polygon_with_absurd_coordinates(tight, label, poly):
    def ok(r, problems):
        rows, err = csv_rows(r)
        if err or len(rows) != 1 or not 0 <= int(rows[0]) <= HIP_ROWS:
            problems.append(f"COUNT(*) = {rows[:3]} {err or ''}: not a bounded count")
        return f"count {rows[:1]}"

    idx = [a for a, _ in ABSURD_POLYGONS].index(label)
    query_case(tight, f"10{chr(ord('a') + idx)}", f"POLYGON with {label}",
               "SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE "
               f"1=CONTAINS(POINT('ICRS', ra, dec), {poly})",
               ok, pattern=r"POLYGON|REGION|latitude|finite|vertices|vertex|antipodal|"
                           r"not understood|square root|cross",
               bound=AT_ONCE_S + 2, RESPONSEFORMAT="csv")


@pytest.mark.timeout(120)
def test_11a_histogram_of_a_billion_bins(tight):
    query_case(tight, "11a", "ivo_histogram(hpmag, 0, 15, 1000000000)",
               "SELECT ivo_histogram(hpmag, 0, 15, 1000000000) AS h FROM hipparcos.hip2",
               refused_only, pattern=r"nbins|bins|" + MEMORY_RE, bound=AT_ONCE_S,
               RESPONSEFORMAT="csv")


@pytest.mark.timeout(240)
def test_11b_histograms_of_a_million_bins_per_group(tight):
    groups = int(np.sum(hipparcos().ids < 120))

    def ok(r, problems):
        rows, err = csv_rows(r)
        if err:
            if not re.search(LIMITS_RE, err):
                problems.append(f"the result ends with an error not naming a limit: {err[:300]}")
            return err
        if len(rows) != 3:
            problems.append(f"{len(rows)} rows, expected MAXREC=3")
        return f"{len(rows)} rows"

    query_case(tight, "11b", f"ivo_histogram with 10^6 bins per group, GROUP BY hip over "
               f"{groups} groups (~{groups * 8} MB of counters)",
               "SELECT hip, ivo_histogram(hpmag, 0, 15, 1000000) AS h FROM hipparcos.hip2 "
               "WHERE hip < 120 GROUP BY hip", ok, MAXREC=3, RESPONSEFORMAT="csv")


@pytest.mark.timeout(180)
def test_11c_string_agg_of_28_million_values(tight):
    # 482,176 Gaia ids × 59 Hipparcos rows joined into one string: ~560 MB, above the pool.
    def refused_only(r, problems):
        problems.append("answered 200: one string of ~560 MB cannot be built within "
                        f"query_memory_mb = {QUERY_MEMORY_MB}")
        return r.text[:200]

    query_case(tight, "11c", "ivo_string_agg over 2.8e7 joined rows (one ~560 MB string)",
               "SELECT COUNT(*) AS n FROM (SELECT ivo_string_agg(CAST(a.source_id AS VARCHAR), "
               "',') AS s FROM gaia.dr3_bright AS a JOIN hipparcos.hip2 AS b ON b.hip < 60) "
               "AS t WHERE t.s LIKE '%x%'", refused_only,
               pattern="|".join([TIMEOUT_RE, MEMORY_RE, BUSY_RE]),
               bound=SYNC_TIMEOUT + SLACK_S, RESPONSEFORMAT="csv")


# ---------------------------------------------------------------------------------------
# 12–14: the memory pool, set operations, huge texts
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_12_group_by_over_the_cross_join(tight):
    def ok(r, problems):
        problems.append("answered 200: 5.7e10 groups cannot be computed within the limits")
        return r.text[:200]

    query_case(tight, "12", "GROUP BY a.source_id, b.hip over the cross join (5.7e10 groups)",
               "SELECT a.source_id, b.hip, COUNT(*) AS n FROM gaia.dr3_bright AS a, "
               "hipparcos.hip2 AS b GROUP BY a.source_id, b.hip", ok,
               pattern="|".join([TIMEOUT_RE, MEMORY_RE, BUSY_RE]),
               bound=SYNC_TIMEOUT + SLACK_S, MAXREC=10)


@pytest.mark.timeout(180)
def test_13_union_of_500_selects(tight):
    q = " UNION ".join(f"SELECT hip, ra FROM hipparcos.hip2 WHERE hip = {i}"
                       for i in range(1, 501))
    truth = sorted(i for i in hipparcos().ids.tolist() if 1 <= i <= 500)

    def ok(r, problems):
        rows, err = csv_rows(r)
        got = sorted(int(x.split(",")[0]) for x in rows)
        if err or got != truth:
            problems.append(f"{len(got)} rows {got[:8]}… {err or ''}, expected the {len(truth)} "
                            f"hip ids 1..500 of the raw catalog")
        return f"{len(got)} rows (brute force {len(truth)})"

    query_case(tight, "13", "a UNION of 500 SELECTs", q, ok, RESPONSEFORMAT="csv")


BODY_LIMIT = 16 << 20


def raw_form_post(base, encoded_query: bytes, timeout):
    """POSTs an already url-encoded QUERY (so that the body size is exactly known)."""
    body = b"REQUEST=doQuery&LANG=ADQL&RESPONSEFORMAT=csv&QUERY=" + encoded_query
    return requests.post(base + "/tap/sync", data=body, timeout=(10, timeout),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}), len(body)


@pytest.mark.timeout(180)
def test_14a_query_of_15_mib_of_comments(tight):
    head = urllib.parse.quote_plus("SELECT COUNT(*) AS n FROM hipparcos.hip2\n").encode()
    line = b"--" + b"x" * 75 + b"%0A"  # "--xxx…\n" url-encoded: 80 bytes
    enc = head + line * ((15 * 1024 * 1024 - 200) // len(line))
    with Case(tight, "14a", "a 15 MiB query text: one SELECT and 15 MiB of -- comments") as c:
        r, size = raw_form_post(tight.base_url, enc, QUERY_BOUND_S + 30)
        c.what += f" (body {size} bytes)"
        if r.status_code == 200:
            summary = count_ok(HIP_ROWS)(r, c.problems)
            c.answer(200, summary)
        else:
            c.answer(r.status_code, check_error(r, LIMITS_RE + r"|too large|size", c.problems))
        c.bound(QUERY_BOUND_S)


@pytest.mark.timeout(180)
def test_14b_query_of_15_mib_of_whitespace(tight):
    head = urllib.parse.quote_plus("SELECT COUNT(*) AS n").encode()
    tail = urllib.parse.quote_plus(" FROM hipparcos.hip2").encode()
    enc = head + b"+" * (15 * 1024 * 1024 - 200) + tail  # "+" is a space, url-encoded
    with Case(tight, "14b", "a 15 MiB query text: SELECT, 15 MiB of spaces, FROM") as c:
        r, size = raw_form_post(tight.base_url, enc, QUERY_BOUND_S + 30)
        c.what += f" (body {size} bytes)"
        if r.status_code == 200:
            c.answer(200, count_ok(HIP_ROWS)(r, c.problems))
        else:
            c.answer(r.status_code, check_error(r, LIMITS_RE + r"|too large|size", c.problems))
        c.bound(QUERY_BOUND_S)


@pytest.mark.timeout(120)
def test_14c_body_over_16_mib(tight):
    head = urllib.parse.quote_plus("SELECT COUNT(*) AS n FROM hipparcos.hip2\n").encode()
    line = b"--" + b"x" * 75 + b"%0A"
    enc = head + line * ((BODY_LIMIT + (1 << 20)) // len(line))
    with Case(tight, "14c", "a body of 17 MiB (over the 16 MiB limit)") as c:
        r, size = raw_form_post(tight.base_url, enc, 60)
        c.what += f" ({size} bytes)"
        if r.status_code not in (400, 413):
            c.problems.append(f"HTTP {r.status_code}, expected 413 (or 400)")
        # The message must say what the limit is (16 MiB), not only that there is one.
        c.answer(r.status_code, check_error(r, r"16 ?MiB|16777216|\d+ bytes", c.problems,
                                            what=f"the {r.status_code}"))
        c.bound(AT_ONCE_S + 5)


# ---------------------------------------------------------------------------------------
# 15: an asynchronous job past its execution duration
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_15_async_job_past_its_execution_duration(tight):
    base = tight.base_url
    with Case(tight, "15", "async job: the cross join COUNT(*), EXECUTIONDURATION=5") as c:
        r = requests.post(base + "/tap/async", timeout=(10, 30), allow_redirects=False,
                          data={"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": CROSS_COUNT,
                                "EXECUTIONDURATION": "5", "PHASE": "RUN"})
        assert r.status_code == 303, f"job creation: HTTP {r.status_code} {r.text[:300]!r}"
        job = urllib.parse.urljoin(base + "/tap/async", r.headers["Location"])
        phase, doc = "PENDING", ""
        deadline = time.monotonic() + 5 + SLACK_S + 30
        while phase in ("PENDING", "QUEUED", "EXECUTING") and time.monotonic() < deadline:
            doc = requests.get(job, params={"WAIT": "10", "PHASE": phase},
                               timeout=(10, 30)).text
            m = re.search(r"<uws:phase>(\w+)</uws:phase>", doc)
            phase = m.group(1) if m else "?"
        ed = re.search(r"<uws:executionDuration>(\d+)<", doc)
        err = requests.get(job + "/error", timeout=(10, 30))
        msg = error_message(err.content) or err.text
        c.answer(phase, msg)
        if phase != "ERROR":
            c.problems.append(f"the job is {phase}, expected ERROR (document: {doc[:500]!r})")
        if not ed or ed.group(1) != "5":
            c.problems.append(f"executionDuration is {ed and ed.group(1)}, not the 5 asked")
        if not re.search(r"execution ?duration", msg or "", re.I):
            c.problems.append(f"the job's error does not name its execution duration: {msg[:300]!r}")
        c.bound(5 + SLACK_S, "the job's end")
        requests.delete(job, timeout=(10, 30), allow_redirects=False)


# ---------------------------------------------------------------------------------------
# 16–17: concurrency and a disconnecting client
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_16_thirty_heavy_sync_queries_at_once(tight):
    def one(_):
        t = time.monotonic()
        try:
            r = tap_post(tight.base_url, XMATCH, SYNC_QUEUE_S + SYNC_TIMEOUT + SLACK_S + 30,
                         RESPONSEFORMAT="csv")
            return r, time.monotonic() - t, None
        except requests.RequestException as e:
            return None, time.monotonic() - t, e

    with Case(tight, "16", "30 concurrent heavy sync queries (hip2 x gaia crossmatch "
                           "COUNT(*), a join: slow lane)") as c:
        with ThreadPoolExecutor(30) as ex:
            got = list(ex.map(one, range(30)))
        statuses, excerpt = {}, ""
        for r, secs, e in got:
            if e is not None:
                c.problems.append(f"a request got no answer after {secs:.1f} s: {e!r}")
                statuses["none"] = statuses.get("none", 0) + 1
                continue
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                count_ok(XMATCH_PAIRS)(r, c.problems)
            else:
                m = check_error(r, LIMITS_RE, c.problems, what=f"a {r.status_code}")
                if r.status_code == 503 and not excerpt:
                    excerpt = m
            if secs > SYNC_QUEUE_S + SYNC_TIMEOUT + SLACK_S:
                c.problems.append(f"a request took {secs:.1f} s")
        c.answer(" ".join(f"{k}x{v}" for k, v in sorted(statuses.items(), key=str)),
                 f"503: {excerpt}" if excerpt else "no 503")
        if not statuses.get(503):
            c.problems.append(f"no 503 among 30 heavy queries at once ({statuses}): "
                              "sync_queries = 8 / heavy_queries = 1 admitted them all?")
        if statuses.get(500):
            c.problems.append(f"{statuses[500]} answers were 500")
        c.problems[:] = list(dict.fromkeys(c.problems))  # one line per distinct problem
        c.bound(SYNC_QUEUE_S + SYNC_TIMEOUT + SLACK_S + 10, "the 30 answers")


@pytest.mark.timeout(180)
def test_17_client_disconnects_after_one_second(tight):
    host, port = tight.base_url.rsplit("/", 1)[1].split(":")
    body = urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL",
                                   "QUERY": GENERATOR}).encode()
    with Case(tight, "17", "heavy sync query (the generator of case 3), client gone after 1 s") as c:
        c.settle_limit = DISCONNECT_SETTLE_CPU_S
        probe = tight.probe
        cpu0 = probe.cpu()
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: %s\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: %d\r\n\r\n" % (host.encode(), len(body)) + body)
        time.sleep(1.0)
        s.close()
        busy = probe.cpu() - cpu0
        # "answered" = the moment the client left: from then on the query must stop.
        c.answer("client gone", f"the server used {busy:.2f} s CPU in the query's first second")
        if busy < 0.2:
            c.problems.append(f"the query hardly ran before the disconnect ({busy:.2f} s CPU): "
                              "the case proves nothing")


# ---------------------------------------------------------------------------------------
# 18–19: products
# ---------------------------------------------------------------------------------------


def one_value(base, query):
    r = tap_post(base, query, 30, RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text[:300]
    rows, _ = csv_rows(r)
    return rows


@pytest.mark.timeout(180)
def test_18_decompression_bomb(tight):
    rows = one_value(tight.base_url, "SELECT obs_publisher_did FROM ivoa.obscore "
                                     "WHERE obs_collection = 'bomb'")
    assert len(rows) == 1, f"the bomb's ObsCore record: {rows}"
    did = rows[0].strip('"')
    for sub, path in (("18a", "preview"), ("18b", "header")):
        with Case(tight, sub, f"/datalink/{path} of a gzip bomb (256 MiB of zeros, "
                              f"decompressed_mb = {DECOMPRESSED_MB})") as c:
            r = requests.get(f"{tight.base_url}/datalink/{path}", params={"ID": did},
                             timeout=(10, 60))
            if r.status_code != 413:
                c.problems.append(f"HTTP {r.status_code}, expected 413")
            c.answer(r.status_code, check_error(r, r"decompressed_mb", c.problems,
                                                votable=False))
            c.bound(5)


@pytest.mark.timeout(180)
def test_19_twenty_previews_at_once(tight):
    rows = one_value(tight.base_url,
                     "SELECT TOP 1 obs_publisher_did, access_estsize FROM ivoa.obscore "
                     "WHERE obs_collection = 'demo' AND dataproduct_type = 'image' "
                     "ORDER BY access_estsize DESC")
    did, size = rows[0].rsplit(",", 1)
    did = did.strip('"')

    def one(_):
        t = time.monotonic()
        try:
            r = requests.get(f"{tight.base_url}/datalink/preview", params={"ID": did},
                             timeout=(10, 60))
            return r, time.monotonic() - t, None
        except requests.RequestException as e:
            return None, time.monotonic() - t, e

    with Case(tight, "19", f"20 concurrent /datalink/preview of {did} ({size} kB)") as c:
        with ThreadPoolExecutor(20) as ex:
            got = list(ex.map(one, range(20)))
        statuses, excerpt = {}, ""
        for r, secs, e in got:
            if e is not None:
                c.problems.append(f"a preview got no answer after {secs:.1f} s: {e!r}")
                continue
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                if not r.content.startswith(b"\x89PNG\r\n\x1a\n"):
                    c.problems.append(f"a 200 that is not a PNG: {r.content[:40]!r}")
            elif r.status_code == 503:
                excerpt = excerpt or check_error(r, r"previews", c.problems, votable=False)
            else:
                c.problems.append(f"HTTP {r.status_code}: {r.text[:300]!r}")
        c.answer(" ".join(f"{k}x{v}" for k, v in sorted(statuses.items())),
                 f"503: {excerpt}" if excerpt else "all rendered")
        if not statuses.get(200):
            c.problems.append("no preview was rendered at all")
        c.problems[:] = list(dict.fromkeys(c.problems))
        c.bound(30, "the 20 previews")


# ---------------------------------------------------------------------------------------
# 20: SIGTERM during a long query (last: it stops the servers)
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_20_sigterm_during_a_heavy_query(tight):
    tight.stop()  # one server per data folder: the second one takes the same data
    assert tight.proc.poll() is not None
    s = OwnServer(tight.binary, tight.data_dir, tight.root / "server-sigterm.log",
                  config=tight.config)
    s.start()
    try:
        resource.prlimit(s.proc.pid, resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    except (OSError, ValueError):
        pass
    s.probe = Probe(s.proc.pid)
    client = {}

    def run():
        t = time.monotonic()
        try:
            r = tap_post(s.base_url, CROSS_ORDER, 60, MAXREC=10)
            client["outcome"] = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            client["outcome"] = type(e).__name__
        client["end"] = time.monotonic()
        client["secs"] = client["end"] - t

    with Case(s, "20", "SIGTERM 3 s into the cross join ORDER BY (a second server, same data)") as c:
        c.skip_health = True
        th = threading.Thread(target=run, daemon=True)
        cpu0 = s.probe.cpu()
        th.start()
        time.sleep(3)
        busy = s.probe.cpu() - cpu0
        t_term = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(timeout=30)
            exited = time.monotonic() - t_term
        except subprocess.TimeoutExpired:
            rc, exited = None, None
            s.proc.kill()
            s.proc.wait(timeout=30)
        th.join(timeout=30)
        c.answer(f"exit {rc}", f"exited {exited if exited is None else round(exited, 2)} s "
                               f"after SIGTERM; the client: {client.get('outcome', 'still waiting')}"
                               f" (its query had used {busy:.1f} s CPU)",
                 t_answer=t_term + (exited or 30))
        c.rec["secs"] = None if exited is None else round(exited, 2)
        if exited is None or exited > SIGTERM_EXIT_S:
            c.problems.append(f"the server did not exit within {SIGTERM_EXIT_S} s of SIGTERM "
                              f"({'still running after 30 s' if exited is None else f'{exited:.1f} s'})")
        if "end" not in client:
            c.problems.append("the client's connection did not end within 30 s of the exit")
        if busy < 0.5:
            c.problems.append(f"the query hardly ran before SIGTERM ({busy:.2f} s CPU)")
