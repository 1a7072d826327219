"""`vostok generate`: the synthetic sky used by the benchmarks.

Checked from outside: the files are a HATS catalog that the `hats` library reads, the same
arguments give byte-identical partition files, the server serves exactly the generated rows,
and cones over TAP return exactly the rows that a brute-force pass over the Parquet files
(read with pyarrow) puts inside them. The density model is checked for what the benchmarks
rely on: the Galactic plane is far denser than the poles.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from vostok_helpers import (SYNTH_ROWS, SYNTH_SEED, SYNTH_TABLE, RawCatalog, assert_cone_result,
                            parse_votable, query_status, tap_sync)


@pytest.fixture(scope="module")
def root(server):
    return server.data_dir / "catalogs" / SYNTH_TABLE


@pytest.fixture(scope="module")
def truth(root) -> RawCatalog:
    t = pq.read_table(root / "dataset", columns=["source_id", "ra", "dec", "b"])
    return RawCatalog(SYNTH_TABLE, "source_id", t["source_id"].to_numpy(),
                      t["ra"].to_numpy(), t["dec"].to_numpy())


def column(content, name):
    table = parse_votable(content).get_first_table().to_table()
    return np.asarray(table[name])


@pytest.mark.local_folder  # reads the generated Parquet files from the data folder
def test_hats_reads_it(root):
    hats = pytest.importorskip("hats")
    cat = hats.read_hats(root)
    assert cat.catalog_info.total_rows == SYNTH_ROWS
    assert len(cat.get_healpix_pixels()) > 4


@pytest.mark.local_folder  # reads the generated Parquet files from the data folder
def test_rows_are_unique_and_all_there(truth):
    assert len(truth.ids) == SYNTH_ROWS
    assert len(np.unique(truth.ids)) == SYNTH_ROWS


@pytest.mark.local_folder  # reads the generated Parquet files from the data folder
def test_deterministic_from_seed(server, root, tmp_path):
    binary = server.proc.args[0]
    for seed, out in ((SYNTH_SEED, tmp_path / "a"), (SYNTH_SEED + 1, tmp_path / "b")):
        subprocess.run([binary, "generate", "--rows", str(SYNTH_ROWS), "--table", SYNTH_TABLE,
                        "--seed", str(seed), "--partition-rows", "8000", "--row-group-rows", "1000",
                        "--data-dir", str(out)], check=True, timeout=600,
                       stdin=subprocess.DEVNULL, capture_output=True)
    served = sorted(p.relative_to(root) for p in (root / "dataset").rglob("Npix=*.parquet"))
    again = tmp_path / "a" / "catalogs" / SYNTH_TABLE
    assert served == sorted(p.relative_to(again) for p in (again / "dataset").rglob("Npix=*.parquet"))
    for rel in served:
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "b" / "catalogs" / SYNTH_TABLE
    some = served[len(served) // 2]
    assert (other / some).read_bytes() != (root / some).read_bytes()


def test_count_over_tap(base_url):
    r = tap_sync(base_url, f"SELECT COUNT(*) AS n FROM {SYNTH_TABLE}")
    assert r.status_code == 200, r.text[:500]
    assert int(column(r.content, "n")[0]) == SYNTH_ROWS


def test_plane_is_denser_than_the_poles(base_url):
    q = (f"SELECT SUM(CASE WHEN ABS(b) < 10 THEN 1 ELSE 0 END) AS plane, "
         f"SUM(CASE WHEN ABS(b) > 60 THEN 1 ELSE 0 END) AS poles FROM {SYNTH_TABLE}")
    r = tap_sync(base_url, q)
    assert r.status_code == 200, r.text[:500]
    plane, poles = int(column(r.content, "plane")[0]), int(column(r.content, "poles")[0])
    # |b| < 10 is 17% of the sky, |b| > 60 is 13%: uniform would give a ratio near 1.3.
    assert plane > 10 * poles, (plane, poles)


@pytest.mark.local_folder  # reads the generated Parquet files from the data folder
@pytest.mark.parametrize("ra0,dec0,r", [(266.4, -28.9, 1.0), (192.9, 27.1, 5.0), (10.0, -40.0, 3.0),
                                        (0.0, 89.9, 2.0)])
def test_cones_match_brute_force(base_url, truth, ra0, dec0, r):
    q = (f"SELECT source_id FROM {SYNTH_TABLE} "
         f"WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r}))")
    resp = tap_sync(base_url, q, MAXREC=SYNTH_ROWS)
    assert resp.status_code == 200, resp.text[:500]
    assert "OK" in query_status(resp.content)
    cone = assert_cone_result(column(resp.content, "source_id"), truth, ra0, dec0, r, "TAP")
    if (ra0, dec0) == (266.4, -28.9):
        assert len(cone.inside) > 20, "the Galactic centre should hold many stars"
