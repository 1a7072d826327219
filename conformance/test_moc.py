"""`/moc/{schema.table}`: the sky coverage of each served catalog as an IVOA MOC 2.0, read with
CDS's mocpy. The coverage must be exactly the HEALPix cells (at the order vostok picks from the
row count) holding the catalog's rows, computed here from the raw catalog files; FITS, JSON
and MOC-ASCII must describe the same MOC. Catalog coverage is public metadata: an anonymous
caller gets what a logged-in user gets (the route reads no identity).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from astropy import units as u
from mocpy import MOC

from vostok_helpers import GAIA_TABLE, HIP_TABLE, raw_catalog

# The order vostok picks: about one row per cell of the whole sky, between 3 and 10.
ORDERS = {HIP_TABLE: 6, GAIA_TABLE: 7}


def fetch(base_url, table, fmt=None):
    params = {"format": fmt} if fmt else {}
    r = requests.get(f"{base_url}/moc/{table}", params=params, timeout=120)
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("table", [HIP_TABLE, GAIA_TABLE])
def test_the_coverage_is_the_cells_holding_the_rows(base_url, table, tmp_path):
    r = fetch(base_url, table)
    assert r.headers["Content-Type"].startswith("application/fits")
    path = tmp_path / "cov.fits"
    path.write_bytes(r.content)
    served = MOC.load(str(path), format="fits")
    order = ORDERS[table]
    assert served.max_order == order
    cat = raw_catalog(table)
    truth = MOC.from_lonlat(cat.ra * u.deg, cat.dec * u.deg, max_norder=order)
    assert served == truth, (f"{table}: served {served.sky_fraction:.5f} of the sky, "
                             f"the rows cover {truth.sky_fraction:.5f}")
    assert np.all(served.contains_lonlat(cat.ra * u.deg, cat.dec * u.deg))


@pytest.mark.parametrize("table", [HIP_TABLE, GAIA_TABLE])
def test_fits_json_and_ascii_agree(base_url, table, tmp_path):
    path = tmp_path / "cov.fits"
    path.write_bytes(fetch(base_url, table).content)
    fits = MOC.load(str(path), format="fits")
    js = fetch(base_url, table, "json")
    assert js.headers["Content-Type"].startswith("application/json")
    assert MOC.from_json({k: list(v) for k, v in js.json().items()}) == fits
    ascii_ = fetch(base_url, table, "ascii")
    assert ascii_.headers["Content-Type"].startswith("text/plain")
    assert MOC.from_str(ascii_.text) == fits
    # Case does not matter in the table name; the format's neither.
    assert fetch(base_url, table.upper(), "JSON").json() == js.json()


def test_unknown_tables_and_formats_are_refused(base_url):
    r = requests.get(f"{base_url}/moc/nosuch.table", timeout=30)
    assert r.status_code == 404 and "nosuch.table" in r.text
    r = requests.get(f"{base_url}/moc/{HIP_TABLE}", params={"format": "png"}, timeout=30)
    assert r.status_code == 400 and "fits, json or ascii" in r.text
