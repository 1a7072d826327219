"""The catalogs vostok ingests are real HATS catalogs, as LSDB's `hats` library reads them.

For DIR/catalogs/hipparcos.hip2 and DIR/catalogs/gaia.dr3_bright (DIR = the server's
--data-dir): hats.read_hats opens the root and reports the raw row count and the
partitions of partition_info.csv; each partition is the file
dataset/Norder=K/Dir=D/Npix=N.parquet (D = N // 10000 * 10000); every row's _healpix_29
is the order-29 nested index of its (ra, dec) as hats computes it, lies inside its
partition's pixel, and files are sorted by it; dataset/_metadata counts every row; the
rows are the raw file's rows (same ids, positions within 1e-9 deg).
"""

import csv
from pathlib import Path

import hats
import numpy as np
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
from hats.pixel_math.spatial_index import compute_spatial_index

from vostok_helpers import GAIA_ROWS, GAIA_TABLE, HIP_ROWS, HIP_TABLE, raw_catalog

# The hats library reads the catalogs as files of the server's data folder.
pytestmark = pytest.mark.local_folder

CATALOGS = [(HIP_TABLE, HIP_ROWS, "hip"), (GAIA_TABLE, GAIA_ROWS, "source_id")]
IDS = [c[0] for c in CATALOGS]


@pytest.fixture(scope="module", params=CATALOGS, ids=IDS)
def cat(request, server):
    table, nrows, id_col = request.param
    root = Path(server.data_dir) / "catalogs" / table
    assert root.is_dir(), f"no HATS catalog directory {root}"
    return table, nrows, id_col, root


def partitions_from_csv(root):
    with open(root / "partition_info.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "partition_info.csv has no partitions"
    assert {"Norder", "Npix"} <= set(rows[0]), f"partition_info.csv columns {list(rows[0])}"
    return sorted((int(r["Norder"]), int(r["Npix"])) for r in rows)


def partition_path(root, order, pix):
    return root / "dataset" / f"Norder={order}" / f"Dir={pix // 10000 * 10000}" / f"Npix={pix}.parquet"


def test_layout(cat):
    _, _, _, root = cat
    for rel in ["hats.properties", "partition_info.csv", "dataset/_metadata",
                "dataset/_common_metadata"]:
        assert (root / rel).is_file(), f"missing {root / rel}"


def test_read_hats(cat):
    table, nrows, id_col, root = cat
    c = hats.read_hats(root)
    info = c.catalog_info
    assert info.total_rows == nrows, f"hats_nrows {info.total_rows}, raw file has {nrows}"
    assert str(info.catalog_type).lower().endswith("object"), info.catalog_type
    assert info.ra_column == "ra" and info.dec_column == "dec", (info.ra_column, info.dec_column)
    pixels = sorted((p.order, p.pixel) for p in c.get_healpix_pixels())
    assert pixels == partitions_from_csv(root)
    names = set(c.schema.names)
    assert {id_col, "ra", "dec", "_healpix_29"} <= names, sorted(names)


def test_partition_files(cat):
    _, nrows, _, root = cat
    parts = partitions_from_csv(root)
    expected = {partition_path(root, o, p) for o, p in parts}
    missing = sorted(str(p) for p in expected if not p.is_file())
    assert not missing, f"partition files missing: {missing[:10]}"
    found = set((root / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
    assert found == expected, f"unlisted partition files: {sorted(map(str, found - expected))[:10]}"
    total = sum(pq.read_metadata(p).num_rows for p in expected)
    assert total == nrows, f"partition files hold {total} rows, raw file {nrows}"
    md = pq.read_metadata(root / "dataset" / "_metadata")
    assert md.num_rows == nrows, f"_metadata counts {md.num_rows} rows, raw file {nrows}"


def test_healpix_index_and_sorting(cat):
    _, _, _, root = cat
    problems = []
    for order, pix in partitions_from_csv(root):
        t = pq.read_table(partition_path(root, order, pix), columns=["_healpix_29", "ra", "dec"])
        h = t["_healpix_29"].to_numpy()
        if len(h) == 0:
            problems.append(f"Norder={order} Npix={pix}: empty partition")
            continue
        if np.any(np.diff(h) < 0):
            problems.append(f"Norder={order} Npix={pix}: not sorted by _healpix_29")
        outside = np.count_nonzero((h >> (2 * (29 - order))) != pix)
        if outside:
            problems.append(f"Norder={order} Npix={pix}: {outside} rows whose _healpix_29 is outside the pixel")
        want = compute_spatial_index(t["ra"].to_numpy(), t["dec"].to_numpy())
        wrong = np.count_nonzero(want != h)
        if wrong:
            problems.append(f"Norder={order} Npix={pix}: {wrong} rows whose _healpix_29 is not "
                            f"hats' order-29 index of (ra, dec)")
    assert not problems, "\n".join(problems[:30])


def test_rows_match_raw_file(cat):
    table, nrows, id_col, root = cat
    ds = pds.dataset(sorted(str(p) for p in (root / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet")),
                     format="parquet")
    t = ds.to_table(columns=[id_col, "ra", "dec"])
    ids = t[id_col].to_numpy().astype(np.int64)
    assert len(ids) == nrows and len(np.unique(ids)) == nrows, "ids missing or duplicated"
    raw = raw_catalog(table)
    order = np.argsort(ids)
    raw_order = np.argsort(raw.ids)
    assert np.array_equal(ids[order], raw.ids[raw_order]), "id sets differ from the raw file"
    np.testing.assert_allclose(t["ra"].to_numpy()[order], raw.ra[raw_order], rtol=0, atol=1e-9,
                               err_msg=f"{table}: ra differs from the raw file (degrees)")
    np.testing.assert_allclose(t["dec"].to_numpy()[order], raw.dec[raw_order], rtol=0, atol=1e-9,
                               err_msg=f"{table}: dec differs from the raw file (degrees)")
