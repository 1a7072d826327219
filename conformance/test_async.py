"""Asynchronous TAP (UWS 1.1 at /tap/async) through pyvo and plain HTTP, every UWS document
validated against the UWS 1.1 schema with xmllint; then a server of its own, killed with
SIGKILL while jobs are queued and executing, and restarted on the same data folder: every
job is still known, finished results are byte-identical, queued and interrupted jobs complete.

The slow query is a nested-loop join no index helps, MOD(a.hip + b.hip, 7) = 0 over
hipparcos.hip2 x hipparcos.hip2 with a.hip <= N: its cost grows with N, and its answer
comes from numpy over the raw file.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import requests
from pyvo.dal import DALQueryError, TAPService

from vostok_helpers import (SCHEMAS, OwnServer, TimeoutSession, data_copy, data_files, hipparcos,
                            http_get, http_post, on_postgres, parse_votable, query_status,
                            stored_job_ids, tap_sync, without_request_id,
                            xmllint_schema)

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
UWS_XSD = SCHEMAS / "UWS-v1.1.xsd"

QUICK = "SELECT TOP 20 hip, ra, dec FROM hipparcos.hip2 WHERE hip < 1000 ORDER BY hip"
# N for the slow query (see slow_query): ~55 M pairs/s in a debug build, so N = 1000 is ~2 s.
# SLOW_N is only ever stopped (abort, execution duration, sync limit): ~40 s of work.
SLOW_N = int(os.environ.get("VOSTOK_SLOW_N", "20000"))
# RESTART_N runs to completion twice in the restart test: ~8 s of work.
RESTART_N = int(os.environ.get("VOSTOK_RESTART_N", "4000"))


def slow_query(n):
    return ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS a, hipparcos.hip2 AS b "
            f"WHERE a.hip <= {n} AND MOD(a.hip + b.hip, 7) = 0")


def slow_answer(n):
    hips = hipparcos().ids
    per_residue = np.bincount(hips % 7, minlength=7)
    a = hips[hips <= n]
    return int(per_residue[(7 - a % 7) % 7].sum())


def U(tag):
    return f"{{{UWS_NS}}}{tag}"


def validate_uws(content: bytes, tmp_path, name):
    path = tmp_path / f"{name}.xml"
    path.write_bytes(content)
    p = xmllint_schema(path, UWS_XSD)
    assert p.returncode == 0, f"{name} is not valid UWS 1.1:\n{p.stderr[-3000:]}\n{content[:3000]!r}"


def job_doc(url, **params):
    r = http_get(url, params=params)
    assert r.status_code == 200, f"GET {url}: HTTP {r.status_code} {r.text[:500]}"
    assert r.headers["Content-Type"].startswith("text/xml")
    return r, ET.fromstring(r.content)


def phase_of(url):
    r = http_get(url + "/phase")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text.strip()


def create_job(base_url, query, run=False, **params):
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}
    data.update({k.upper(): str(v) for k, v in params.items()})
    if run:
        data["PHASE"] = "RUN"
    r = http_post(base_url + "/tap/async", data=data, allow_redirects=False)
    assert r.status_code == 303, f"job creation: HTTP {r.status_code} {r.text[:500]}"
    loc = r.headers["Location"]
    assert loc.startswith(base_url + "/tap/async/"), loc
    return loc


def wait_phase(url, phases, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        ph = phase_of(url)
        if ph in phases:
            return ph
        assert time.monotonic() < deadline, f"{url} still {ph} after {timeout}s (waiting for {phases})"
        # A blocking wait, as clients do.
        http_get(url, params={"WAIT": "5", "PHASE": ph})


def votable_rows(content):
    vot = parse_votable(content)
    return vot.get_first_table().to_table()


@pytest.fixture(scope="module")
def tap(base_url):
    return TAPService(base_url + "/tap", session=TimeoutSession())


@pytest.fixture(scope="module")
def sync_quick(base_url):
    r = tap_sync(base_url, QUICK)
    assert r.status_code == 200
    return votable_rows(r.content)


# ---------------------------------------------------------------------------------------
# pyvo
# ---------------------------------------------------------------------------------------


def test_pyvo_run_async(tap, sync_quick):
    result = tap.run_async(QUICK)
    t = result.to_table()
    assert list(t["hip"]) == list(sync_quick["hip"])
    assert np.allclose(np.asarray(t["ra"], float), np.asarray(sync_quick["ra"], float))


def test_jobs_are_kept_in_the_configured_database(tap, server):
    """The job database is the one configured: PostgreSQL's uws_jobs table in the
    VOSTOK_TEST_POSTGRES=1 run, the data folder's uws.sqlite otherwise."""
    job = tap.submit_job(QUICK)
    try:
        assert job.job_id in stored_job_ids(server.data_dir), \
            f"job {job.job_id} not in the {'PostgreSQL' if on_postgres() else 'SQLite'} job database"
        assert (server.data_dir / "uws.sqlite").exists() != on_postgres()
    finally:
        job.delete()
    assert job.job_id not in stored_job_ids(server.data_dir)


def test_pyvo_submit_wait_fetch_delete(tap, sync_quick, base_url):
    job = tap.submit_job(QUICK, runid="vostok-test")
    assert job.phase == "PENDING"
    assert job.query == QUICK
    assert job.uws_version == "1.1"
    job.run()
    job.wait(timeout=120)
    assert job.phase == "COMPLETED"
    assert job.result_uri.endswith("/results/result"), job.result_uri
    assert [r.id_ for r in job.results] == ["result"]
    t = job.fetch_result().to_table()
    assert list(t["hip"]) == list(sync_quick["hip"])
    url = job.url
    job.delete()
    assert http_get(url).status_code == 404


@pytest.fixture(scope="module")
def user_tap(server, base_url):
    """pyvo with a user's token: jobs are listed to their owner only (anonymous callers get
    an empty list)."""
    import secrets
    from test_vospace import add_user, vostok_binary
    token = add_user(server.data_dir, f"lister{secrets.token_hex(3)}", binary=vostok_binary())
    session = TimeoutSession()
    session.headers["Authorization"] = f"Bearer {token}"
    return TAPService(base_url + "/tap", session=session)


def test_anonymous_job_list_is_empty(tap):
    job = tap.submit_job(QUICK, runid="anonymous")
    try:
        assert tap.get_job_list() == []
        assert job.phase == "PENDING"  # usable through its own URL
    finally:
        job.delete()


@pytest.mark.parametrize("params", [{"PHASE": "x"}, {"PHASE": "PENDING,NOPE"},
                                    {"AFTER": "yesterday"}, {"LAST": "-1"}],
                         ids=["phase", "phase-list", "after", "last"])
def test_bad_job_list_filters_are_errors_for_everyone(base_url, user_tap, params):
    """A bad filter is a UWS error (400, text) whoever asks, anonymous callers included (their
    list is always empty, but an empty answer to a wrong PHASE would hide the mistake)."""
    for session in (requests, user_tap._session):
        r = session.get(base_url + "/tap/async", params=params, timeout=30)
        assert r.status_code == 400, (params, r.status_code, r.text[:200])
        name = next(iter(params))
        assert name in r.text, r.text[:200]


def test_pyvo_job_list(user_tap):
    tap = user_tap
    jobs = [tap.submit_job(QUICK, runid=f"list-{i}") for i in range(3)]
    try:
        jobs[0].run().wait(timeout=120)
        listed = tap.get_job_list(phases=["PENDING"], last=2)
        assert len(listed) == 2
        assert all(j.phase == "PENDING" for j in listed)
        # The most recently created first.
        assert [j.jobid for j in listed] == [jobs[2].job_id, jobs[1].job_id]
        completed = {j.jobid for j in tap.get_job_list(phases=["COMPLETED"])}
        assert jobs[0].job_id in completed and jobs[1].job_id not in completed
        both = {j.jobid for j in tap.get_job_list(phases=["COMPLETED", "PENDING"])}
        assert {j.job_id for j in jobs} <= both
        created = jobs[0]._job.creationtime
        after = tap.get_job_list(after=created.datetime)
        ids = {j.jobid for j in after}
        assert jobs[0].job_id not in ids and jobs[2].job_id in ids
    finally:
        for j in jobs:
            j.delete()


def test_pyvo_error_job(tap, base_url):
    job = tap.submit_job("SELECT nosuchcolumn FROM hipparcos.hip2")
    job.run().wait(timeout=120)
    assert job.phase == "ERROR"
    with pytest.raises(DALQueryError, match="(?i)nosuchcolumn"):
        job.raise_if_error()
    r = http_get(job.url + "/error")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-votable+xml")
    assert query_status(r.content) == ["ERROR"]
    assert b"nosuchcolumn" in r.content.lower()
    job.delete()


def test_pyvo_destruction_and_execution_duration(tap):
    import datetime
    job = tap.submit_job(QUICK)
    try:
        when = datetime.datetime(2031, 1, 2, 3, 4, 5, 678000)
        job.destruction = when
        # Capped: at most max_destruction (30 days) after creation.
        assert job.destruction.datetime <= (job._job.creationtime.datetime
                                            + datetime.timedelta(days=30, seconds=1))
        near = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) \
            + datetime.timedelta(days=2)
        job.destruction = near
        assert abs((job.destruction.datetime - near).total_seconds()) < 0.01
        job.execution_duration = 120
        assert job.execution_duration.sec == 120
    finally:
        job.delete()


def test_pyvo_run_async_with_upload(tap):
    from astropy.table import Table
    mine = Table({"id": [1, 2, 3], "hip": [5, 7, 11]})
    res = tap.run_async("SELECT m.id, h.hip, h.ra FROM TAP_UPLOAD.mine AS m "
                        "JOIN hipparcos.hip2 AS h ON h.hip = m.hip ORDER BY m.id",
                        uploads={"mine": mine})
    t = res.to_table()
    assert list(t["id"]) == [1, 2, 3] and list(t["hip"]) == [5, 7, 11]


def test_pyvo_upload_to_pending_job(tap):
    from astropy.table import Table
    job = tap.submit_job("SELECT COUNT(*) AS n, SUM(x) AS s FROM TAP_UPLOAD.later")
    try:
        job.upload(later=Table({"x": [1.5, 2.5, 4.0]}))
        job.run().wait(timeout=120)
        assert job.phase == "COMPLETED", job._job.errorsummary
        t = job.fetch_result().to_table()
        assert int(t["n"][0]) == 3 and float(t["s"][0]) == 8.0
    finally:
        job.delete()


# ---------------------------------------------------------------------------------------
# UWS over plain HTTP
# ---------------------------------------------------------------------------------------


def test_every_uws_document_validates(base_url, tmp_path):
    url = create_job(base_url, QUICK, RUNID="validate-me", MAXREC=5)
    validate_uws(job_doc(url)[0].content, tmp_path, "job-pending")
    validate_uws(http_get(url + "/parameters").content, tmp_path, "parameters")
    validate_uws(http_get(url + "/results").content, tmp_path, "results-empty")
    r = http_post(url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == url
    wait_phase(url, {"COMPLETED"})
    validate_uws(job_doc(url)[0].content, tmp_path, "job-completed")
    results = http_get(url + "/results")
    validate_uws(results.content, tmp_path, "results")
    root = ET.fromstring(results.content)
    res = root.findall(U("result"))
    assert len(res) == 1 and res[0].get("id") == "result"
    assert res[0].get(f"{{{XLINK_NS}}}href") == url + "/results/result"

    err = create_job(base_url, "SELECT FROM WHERE", run=True)
    wait_phase(err, {"ERROR"})
    _, doc = job_doc(err)
    validate_uws(http_get(err).content, tmp_path, "job-error")
    summary = doc.find(U("errorSummary"))
    assert summary is not None and summary.get("type") == "fatal"
    assert summary.find(U("message")).text

    ab = create_job(base_url, QUICK)
    http_post(ab + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert phase_of(ab) == "ABORTED"
    validate_uws(http_get(ab).content, tmp_path, "job-aborted")

    for params, name in [({}, "list"), ({"PHASE": "COMPLETED"}, "list-completed"),
                         ({"LAST": "2"}, "list-last"), ({"LAST": "0"}, "list-empty")]:
        r = http_get(base_url + "/tap/async", params=params)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
        validate_uws(r.content, tmp_path, name)
    for u in (url, err, ab):
        requests.delete(u, allow_redirects=False, timeout=30)


def test_job_resources(base_url):
    url = create_job(base_url, QUICK, RUNID="res", RESPONSEFORMAT="csv", MAXREC=5)
    _, doc = job_doc(url)
    assert doc.get("version") == "1.1"
    assert doc.find(U("jobId")).text == url.rsplit("/", 1)[1]
    assert doc.find(U("runId")).text == "res"
    params = {p.get("id"): p.text for p in doc.find(U("parameters"))}
    assert params["query"] == QUICK and params["maxrec"] == "5"
    assert phase_of(url) == "PENDING"
    assert http_get(url + "/quote").status_code == 200
    assert http_get(url + "/owner").text == ""
    assert http_get(url + "/executionduration").text == doc.find(U("executionDuration")).text
    assert http_get(url + "/destruction").text == doc.find(U("destruction")).text
    assert http_get(url + "/results/result").status_code == 404
    assert http_get(url + "/error").status_code == 404
    # Parameters can change while PENDING.
    r = http_post(url + "/parameters", data={"MAXREC": "3"}, allow_redirects=False)
    assert r.status_code == 303
    r = http_post(url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False)
    assert r.status_code == 303
    wait_phase(url, {"COMPLETED"})
    r = http_get(url + "/results/result")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0] == "hip,ra,dec" and len(lines) == 4, r.text
    # Not while COMPLETED.
    for sub, data in [("/parameters", {"MAXREC": "7"}), ("/executionduration",
                                                         {"EXECUTIONDURATION": "10"})]:
        r = http_post(url + sub, data=data, allow_redirects=False)
        assert r.status_code == 409, (sub, r.status_code, r.text)
    r = http_post(url + "/phase", data={"PHASE": "SUSPEND"}, allow_redirects=False)
    assert r.status_code == 400
    assert http_get(base_url + "/tap/async/nosuchjob").status_code == 404
    assert http_get(base_url + "/tap/async/nosuchjob/phase").status_code == 404
    requests.delete(url, allow_redirects=False, timeout=30)


def test_overflow_as_in_sync(base_url):
    url = create_job(base_url, "SELECT hip FROM hipparcos.hip2 WHERE hip < 1000", run=True,
                     MAXREC=7)
    wait_phase(url, {"COMPLETED"})
    r = http_get(url + "/results/result")
    assert query_status(r.content) == ["OK", "OVERFLOW"]
    assert len(votable_rows(r.content)) == 7
    requests.delete(url, allow_redirects=False, timeout=30)


def test_delete_redirects_to_an_empty_list(base_url):
    for how in ("DELETE", "POST"):
        url = create_job(base_url, QUICK)
        if how == "DELETE":
            r = requests.delete(url, allow_redirects=False, timeout=30)
        else:
            r = http_post(url, data={"ACTION": "DELETE"}, allow_redirects=False)
        assert r.status_code == 303, (how, r.status_code, r.text)
        # STILTS wants a 303; a client following it (old pyvo, astropy/pyvo#535) gets the job
        # list filtered to nothing, not every job of the service.
        loc = r.headers["Location"]
        assert loc == base_url + "/tap/async?LAST=0"
        listed = ET.fromstring(http_get(loc).content)
        assert listed.tag == U("jobs") and len(listed) == 0
        assert http_get(url).status_code == 404
        again = requests.delete(url, allow_redirects=False, timeout=30)
        assert again.status_code == 404


def test_wait_returns_at_once_on_a_finished_job(base_url):
    url = create_job(base_url, QUICK, run=True)
    wait_phase(url, {"COMPLETED"})
    t0 = time.monotonic()
    _, doc = job_doc(url, WAIT="5")
    assert time.monotonic() - t0 < 1.5
    assert doc.find(U("phase")).text == "COMPLETED"
    # PHASE names the phase the client saw: another phase returns at once too.
    t0 = time.monotonic()
    job_doc(url, WAIT="5", PHASE="EXECUTING")
    assert time.monotonic() - t0 < 1.5
    requests.delete(url, allow_redirects=False, timeout=30)


def test_wait_on_executing_job_returns_on_phase_change(base_url):
    """A slow job limited to 2 s of execution: WAIT=5 returns when it turns to ERROR."""
    url = create_job(base_url, slow_query(SLOW_N), EXECUTIONDURATION=2)
    assert http_get(url + "/executionduration").text == "2"
    http_post(url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False)
    deadline = time.monotonic() + 60
    # One read of the phase per round: reading it twice raced with the job starting.
    while (phase := phase_of(url)) != "EXECUTING":
        assert phase == "QUEUED", phase
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    _, doc = job_doc(url, WAIT="5", PHASE="EXECUTING")
    waited = time.monotonic() - t0
    assert doc.find(U("phase")).text == "ERROR", ET.tostring(doc)
    assert waited < 4.5, f"WAIT took {waited:.1f}s: it did not return on the phase change"
    msg = doc.find(U("errorSummary")).find(U("message")).text
    assert "execution duration of 2 s" in msg
    requests.delete(url, allow_redirects=False, timeout=30)


def test_abort_an_executing_job(base_url):
    url = create_job(base_url, slow_query(SLOW_N), run=True)
    deadline = time.monotonic() + 60
    while phase_of(url) != "EXECUTING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = http_post(url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert r.status_code == 303
    assert phase_of(url) == "ABORTED"
    _, doc = job_doc(url)
    assert doc.find(U("endTime")).text
    assert not list(doc.find(U("results")))
    # The pool is free again: a quick job completes.
    quick = create_job(base_url, QUICK, run=True)
    assert wait_phase(quick, {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED"
    for u in (url, quick):
        requests.delete(u, allow_redirects=False, timeout=30)


def test_capabilities_declare_async_limits(base_url):
    r = http_get(base_url + "/tap/capabilities")
    root = ET.fromstring(r.content)
    tap_cap = [c for c in root.iter("capability")
               if c.get("standardID") == "ivo://ivoa.net/std/TAP"][0]
    names = [c.tag for c in tap_cap]
    assert "retentionPeriod" in names and "executionDuration" in names
    assert names.index("retentionPeriod") < names.index("executionDuration") < names.index(
        "outputLimit")
    ed = tap_cap.find("executionDuration")
    assert ed.find("default").text == "3600" and ed.find("hard").text == "14400"


# ---------------------------------------------------------------------------------------
# A server of our own: restart, sync timeout, destruction
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server(server, tmp_path_factory):
    """max_running=1, a 3 s sync limit, cleanup every second; the catalogs of the shared
    server copied (no ingest)."""
    from conftest import find_binary
    root = tmp_path_factory.mktemp("vostok-restart")
    data = root / "data"
    data.mkdir()
    data_copy(server.data_dir, data, "catalogs")
    config = root / "vostok.toml"
    config.write_text("[tap]\nsync_timeout = 3\n\n[uws]\nmax_running = 1\ncleanup_interval = 1\n")
    s = OwnServer(find_binary(), data, root / "server.log", config=config)
    s.start()
    yield s
    s.stop()


def test_sync_timeout_points_to_async(own_server):
    t0 = time.monotonic()
    r = tap_sync(own_server.base_url, slow_query(SLOW_N * 2))
    took = time.monotonic() - t0
    assert r.status_code == 400, r.text[:500]
    assert query_status(r.content) == ["ERROR"]
    assert b"/tap/async" in r.content and b"3 s" in r.content
    assert took < 15, f"the sync limit is 3 s but the answer took {took:.1f}s"


def test_destruction_deletes_job_and_files(own_server):
    base = own_server.base_url
    url = create_job(base, QUICK, run=True)
    wait_phase(url, {"COMPLETED"})
    job_id = url.rsplit("/", 1)[1]
    folder = f"jobs/{job_id}"
    assert data_files(own_server.data_dir, folder), "the job has no files"
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    r = http_post(url + "/destruction", data={"DESTRUCTION": soon}, allow_redirects=False)
    assert r.status_code == 303
    assert http_get(url + "/destruction").text.startswith(soon)
    deadline = time.monotonic() + 20
    while http_get(url).status_code != 404:
        assert time.monotonic() < deadline, "the job outlived its destruction time"
        time.sleep(0.5)
    assert not data_files(own_server.data_dir, folder), "the job's files outlived it"


def test_jobs_survive_sigkill(own_server):
    s = own_server
    base = s.base_url
    # Finished jobs: completed (csv and votable), error, aborted; one left pending.
    done_vot = create_job(base, QUICK, run=True, RUNID="done-vot")
    done_csv = create_job(base, QUICK, run=True, RESPONSEFORMAT="csv")
    failed = create_job(base, "SELECT nosuch FROM hipparcos.hip2", run=True)
    for u in (done_vot, done_csv):
        assert wait_phase(u, {"COMPLETED", "ERROR"}) == "COMPLETED"
    assert wait_phase(failed, {"COMPLETED", "ERROR"}) == "ERROR"
    aborted = create_job(base, QUICK)
    http_post(aborted + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    pending = create_job(base, QUICK, RUNID="still-pending")
    before = {u: http_get(u + "/results/result").content for u in (done_vot, done_csv)}
    error_before = without_request_id(http_get(failed + "/error"))

    # The slow job holds the only place in the pool; two more queue behind it.
    n = RESTART_N
    slow = create_job(base, slow_query(n), run=True)
    deadline = time.monotonic() + 60
    while phase_of(slow) != "EXECUTING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    queued = [create_job(base, QUICK, run=True, MAXREC=i + 3) for i in range(2)]
    # One with an inline upload: its table is kept with the job, not in the request.
    r = http_post(base + "/tap/async", files={"t1": ("t1.csv", "a,b\n1,2\n3,4\n5,6\n", "text/csv")},
                  data={"LANG": "ADQL", "QUERY": "SELECT SUM(a * b) AS s FROM TAP_UPLOAD.up",
                        "UPLOAD": "up,param:t1", "PHASE": "RUN"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    uploaded = r.headers["Location"]
    assert [phase_of(u) for u in (*queued, uploaded)] == ["QUEUED"] * 3
    assert phase_of(slow) == "EXECUTING", "the slow query finished too soon: raise VOSTOK_RESTART_N"

    s.kill()
    s.start()
    # Job URLs carry the old port: ask the new one.
    moved = lambda u: s.base_url + "/tap/async/" + u.rsplit("/", 1)[1]  # noqa: E731
    all_jobs = [done_vot, done_csv, failed, aborted, pending, slow, *queued]
    # Anonymous jobs are not listed: each is looked up by its URL.
    known = {u.rsplit("/", 1)[1] for u in all_jobs if http_get(moved(u)).status_code == 200}
    assert {u.rsplit("/", 1)[1] for u in all_jobs} <= known

    assert phase_of(moved(done_vot)) == "COMPLETED"
    assert phase_of(moved(done_csv)) == "COMPLETED"
    for u in (done_vot, done_csv):
        after = http_get(moved(u) + "/results/result").content
        assert after == before[u], f"{u}: result changed across the restart"
    assert phase_of(moved(failed)) == "ERROR"
    assert without_request_id(http_get(moved(failed) + "/error")) == error_before
    assert phase_of(moved(aborted)) == "ABORTED"
    assert phase_of(moved(pending)) == "PENDING"
    _, doc = job_doc(moved(pending))
    assert doc.find(U("runId")).text == "still-pending"
    assert phase_of(moved(slow)) in ("QUEUED", "EXECUTING")

    # The interrupted job runs again, then the queued ones.
    assert wait_phase(moved(slow), {"COMPLETED", "ERROR"}, timeout=600) == "COMPLETED", \
        http_get(moved(slow)).text
    t = votable_rows(http_get(moved(slow) + "/results/result").content)
    assert int(t["n"][0]) == slow_answer(n)
    for i, u in enumerate(queued):
        assert wait_phase(moved(u), {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED"
        rows = votable_rows(http_get(moved(u) + "/results/result").content)
        assert len(rows) == i + 3
    assert wait_phase(moved(uploaded), {"COMPLETED", "ERROR"}, timeout=120) == "COMPLETED", \
        http_get(moved(uploaded)).text
    t = votable_rows(http_get(moved(uploaded) + "/results/result").content)
    assert int(t["s"][0]) == 1 * 2 + 3 * 4 + 5 * 6
    assert "job(s) were executing when the server stopped" in s.tail(400)
