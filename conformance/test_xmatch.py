"""Positional crossmatch joins (hipparcos.hip2 x gaia.dr3_bright) return exactly the pairs a
brute-force computation finds, and run as a HEALPix-bucketed hash join, not a nested loop.

The positions are fetched through TAP (CSV, shortest round-trip decimals: the very doubles the
server holds); the truth is computed in numpy: gaia sorted by declination, every hip2 star
compared with the gaia stars within its radius in declination (a declination strip: every
right ascension, so RA 0/360 and the poles need no special case), with Vincenty's great-circle
formula in float64. Pairs whose distance lies within 1e-9 deg of the radius are ties (in or
out is rounding, not correctness) and are left out of the comparison; everything else must
match exactly: no pair missing, none extra, no duplicates.

The plan is checked with `vostok adql explain` over the server's data folder (TAP has no
EXPLAIN): the join must be a HashJoinExec on xmatch_pixel / xmatch_cone_pixels keys.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import time

import numpy as np
import pytest

from vostok_helpers import (BOUNDARY_TOL_DEG, GAIA_ROWS, GAIA_TABLE, HIP_ROWS, HIP_TABLE, REPO,
                            angular_distance_deg, storage_config, tap_sync)

BIG_MAXREC = 10_000_000
RADIUS_DEG = 3.0 / 3600
RADIUS_ADQL = "3.0/3600"

QUERIES = {
    "contains-on": (
        f"SELECT h.hip, g.source_id FROM {HIP_TABLE} AS h JOIN {GAIA_TABLE} AS g "
        f"ON 1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, {RADIUS_ADQL}))"),
    "distance-on": (
        f"SELECT h.hip, g.source_id FROM {HIP_TABLE} AS h JOIN {GAIA_TABLE} AS g "
        f"ON DISTANCE(POINT('ICRS', h.ra, h.dec), POINT('ICRS', g.ra, g.dec)) < {RADIUS_ADQL}"),
    "contains-where-comma": (
        f"SELECT h.hip, g.source_id FROM {HIP_TABLE} AS h, {GAIA_TABLE} AS g "
        f"WHERE CONTAINS(POINT(g.ra, g.dec), CIRCLE(h.ra, h.dec, {RADIUS_ADQL})) = 1"),
}


def fetch_csv(base_url, query, dtype, expect_rows=None):
    """Runs a TAP query (CSV) and returns a structured numpy array."""
    r = tap_sync(base_url, query, RESPONSEFORMAT="csv", MAXREC=BIG_MAXREC)
    assert r.status_code == 200, f"{query}: HTTP {r.status_code}: {r.text[:500]}"
    a = np.genfromtxt(io.StringIO(r.text), delimiter=",", names=True, dtype=dtype)
    a = np.atleast_1d(a)
    if expect_rows is not None:
        assert len(a) == expect_rows, f"{query}: {len(a)} rows, {expect_rows} expected"
    return a


@pytest.fixture(scope="module")
def positions(base_url):
    hip = fetch_csv(base_url, f"SELECT hip, ra, dec FROM {HIP_TABLE}",
                    [("hip", "i8"), ("ra", "f8"), ("dec", "f8")], HIP_ROWS)
    gaia = fetch_csv(base_url, f"SELECT source_id, ra, dec FROM {GAIA_TABLE}",
                     [("source_id", "i8"), ("ra", "f8"), ("dec", "f8")], GAIA_ROWS)
    return hip, gaia


@pytest.fixture(scope="module")
def truth(positions):
    """(pairs surely within the radius, pairs within 1e-9 deg of it) as sets of (hip, source_id)."""
    hip, gaia = positions
    h_ok = np.isfinite(hip["ra"]) & np.isfinite(hip["dec"])
    g_ok = np.isfinite(gaia["ra"]) & np.isfinite(gaia["dec"])
    hip, gaia = hip[h_ok], gaia[g_ok]
    order = np.argsort(gaia["dec"], kind="stable")
    g_dec = gaia["dec"][order]
    # Declination strip of each hip star: every gaia star with |dec_g - dec_h| <= r (+ margin).
    margin = RADIUS_DEG + 1e-6
    lo = np.searchsorted(g_dec, hip["dec"] - margin, side="left")
    hi = np.searchsorted(g_dec, hip["dec"] + margin, side="right")
    counts = hi - lo
    h_idx = np.repeat(np.arange(len(hip)), counts)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    g_idx = order[starts + np.arange(counts.sum())]
    d = angular_distance_deg(hip["ra"][h_idx], hip["dec"][h_idx],
                             gaia["ra"][g_idx], gaia["dec"][g_idx])
    inside = d < RADIUS_DEG - BOUNDARY_TOL_DEG
    ties = np.abs(d - RADIUS_DEG) <= BOUNDARY_TOL_DEG
    pair = lambda m: set(zip(hip["hip"][h_idx[m]].tolist(), gaia["source_id"][g_idx[m]].tolist()))
    return pair(inside), pair(ties)


def test_brute_force_is_sane(positions, truth):
    """The declination-strip brute force agrees with a full scan for a sample of stars,
    including every star near RA 0/360 or a pole."""
    hip, gaia = positions
    inside, _ = truth
    assert len(inside) > 50_000, len(inside)
    by_hip = {}
    for h, s in inside:
        by_hip.setdefault(h, set()).add(s)
    rng = np.random.default_rng(5)
    sample = rng.choice(len(hip), 300, replace=False)
    edges = np.flatnonzero((hip["ra"] < 0.1) | (hip["ra"] > 359.9) | (np.abs(hip["dec"]) > 89.0))
    assert len(edges) > 10, len(edges)
    for i in np.concatenate((sample, edges)):
        d = angular_distance_deg(hip["ra"][i], hip["dec"][i], gaia["ra"], gaia["dec"])
        want = set(gaia["source_id"][d < RADIUS_DEG - BOUNDARY_TOL_DEG].tolist())
        h = int(hip["hip"][i])
        assert by_hip.get(h, set()) == want, (h, want, by_hip.get(h))


@pytest.mark.parametrize("form", list(QUERIES))
def test_crossmatch_equals_brute_force(base_url, truth, form):
    query = QUERIES[form]
    inside, ties = truth
    t0 = time.monotonic()
    r = tap_sync(base_url, query, RESPONSEFORMAT="csv", MAXREC=BIG_MAXREC)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, f"{form}: HTTP {r.status_code}: {r.text[:1000]}"
    got = np.atleast_1d(np.genfromtxt(io.StringIO(r.text), delimiter=",", names=True,
                                      dtype=[("hip", "i8"), ("source_id", "i8")]))
    pairs = list(zip(got["hip"].tolist(), got["source_id"].tolist()))
    got_set = set(pairs)
    print(f"\n[xmatch {form}] {len(pairs)} pairs in {elapsed:.2f} s "
          f"(truth: {len(inside)} + {len(ties)} boundary ties)")
    problems = []
    if len(got_set) != len(pairs):
        problems.append(f"{len(pairs) - len(got_set)} duplicate pairs")
    missing = inside - got_set
    extra = got_set - inside - ties
    if missing:
        problems.append(f"{len(missing)} pairs missing, e.g. {sorted(missing)[:10]}")
    if extra:
        problems.append(f"{len(extra)} pairs outside the radius returned, e.g. {sorted(extra)[:10]}")
    assert not problems, f"{form}: {len(pairs)} rows, {len(inside)} expected; " + "; ".join(problems)


def explain(server, query):
    binary = server.proc.args[0]
    env = dict(os.environ)
    env["VOSTOK_DEMO_DIR"] = str(REPO / "data" / "demo")
    env.setdefault("NO_COLOR", "1")
    data, config = storage_config(server.data_dir)
    with_config = [] if config is None else ["--config", str(config)]
    p = subprocess.run([binary, *with_config, "adql", "explain", "-", "--data-dir", data],
                       input=query, capture_output=True, text=True, timeout=300, env=env,
                       cwd=server.log_path.parent)
    assert p.returncode == 0, f"vostok adql explain failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.mark.parametrize("form", list(QUERIES))
def test_plan_is_a_healpix_hash_join(server, form):
    out = explain(server, QUERIES[form])
    # xmatch_pixel / xmatch_cone_pixels, or their variants whose errors name DISTANCE or
    # CIRCLE (xmatch_pixel_of_distance, …)
    assert re.search(r"xmatch_pixel(_of_\w+)?\(", out) and re.search(r"xmatch_cone_pixels(_of_\w+)?\(", out), out
    assert "HashJoinExec" in out, out
    assert "NestedLoopJoinExec" not in out and "CrossJoinExec" not in out, out
