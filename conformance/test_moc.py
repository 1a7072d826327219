"""`/moc/{schema.table}`: the sky coverage of each served catalog as an IVOA MOC 2.0, read with
CDS's mocpy. The coverage must be exactly the HEALPix cells (at the order vostok picks from the
row count) holding the catalog's rows, computed here from the raw catalog files; ingest writes
it beside the catalog (`moc.fits`); FITS, JSON and MOC-ASCII must describe the same MOC.

`/moc/collection/{name}`: the coverage of a collection of images and spectra, the union of its
products' footprints: every product's position is inside it; a collection of a few pointed
images is a small part of the sky; `/moc/ivoa.obscore` is the union of the collections'.

Coverage is public metadata: an anonymous caller gets what a logged-in user gets (the routes
read no identity).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from astropy import units as u
from mocpy import MOC

import shutil
import subprocess

from vostok_helpers import (GAIA_TABLE, HIP_TABLE, REPO, OwnServer, data_read, parse_votable,
                            raw_catalog, tap_sync)

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


@pytest.mark.parametrize("table", [HIP_TABLE, GAIA_TABLE])
def test_ingest_wrote_the_coverage(server, table, tmp_path):
    """The catalog folder's moc.fits (written by ingest) is the cells holding the rows."""
    path = tmp_path / "moc.fits"
    path.write_bytes(data_read(server.data_dir, f"catalogs/{table}/moc.fits"))
    stored = MOC.load(str(path), format="fits")
    cat = raw_catalog(table)
    assert stored == MOC.from_lonlat(cat.ra * u.deg, cat.dec * u.deg, max_norder=ORDERS[table])


def load(r, tmp_path, name="moc.fits"):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/fits")
    path = tmp_path / name
    path.write_bytes(r.content)
    return MOC.load(str(path), format="fits")


def positions(base_url, collection):
    """(s_ra, s_dec) of the collection's positioned ObsCore records."""
    r = tap_sync(base_url, "SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = "
                 f"'{collection}' AND s_ra IS NOT NULL")
    assert r.status_code == 200, r.text[:500]
    t = parse_votable(r.content).get_first_table().to_table()
    return np.asarray(t["s_ra"], dtype=float), np.asarray(t["s_dec"], dtype=float)


def test_every_demo_product_is_inside_its_collection(base_url, tmp_path):
    served = load(requests.get(f"{base_url}/moc/collection/demo", timeout=120), tmp_path)
    ra, dec = positions(base_url, "demo")
    assert len(ra) > 10
    assert np.all(served.contains_lonlat(ra * u.deg, dec * u.deg))
    for fmt in ("json", "ascii"):
        r = requests.get(f"{base_url}/moc/collection/demo", params={"format": fmt}, timeout=120)
        assert r.status_code == 200
        other = (MOC.from_json({k: list(v) for k, v in r.json().items()}) if fmt == "json"
                 else MOC.from_str(r.text))
        assert other == served


# Pointed images and a spectrum of the demo data (no all-sky map among them).
SMALL = ["images/dss_poss1_m1_ned.fits", "images/vla_first_J105007+304037.fits",
         "images/cfht_megaprime_sa110.fits", "spectra/keck_esi_q0100+13_flux.fits"]


@pytest.fixture(scope="module")
def pointed(server, tmp_path_factory):
    """A server of its own (no demo) with a collection `pointed` of the SMALL products."""
    root = tmp_path_factory.mktemp("vostok-moc")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n")
    folder = root / "pointed"
    folder.mkdir()
    for f in SMALL:
        shutil.copy(REPO / "data" / "demo" / f, folder / f.rsplit("/", 1)[1])
    binary = server.proc.args[0]
    p = subprocess.run([str(binary), "--config", str(config), "ingest", str(folder),
                        "--collection", "pointed", "--data-dir", str(data)],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                       cwd=root)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    s = OwnServer(binary, data, root / "server.log", config=config)
    try:
        s.start(timeout=180)
        yield s
    finally:
        s.stop()


@pytest.mark.local_folder
def test_a_collection_of_pointed_products(pointed, tmp_path):
    base = pointed.base_url
    served = load(requests.get(f"{base}/moc/collection/pointed", timeout=120), tmp_path)
    ra, dec = positions(base, "pointed")
    assert len(ra) == len(SMALL)
    assert np.all(served.contains_lonlat(ra * u.deg, dec * u.deg))
    # Four fields of a degree or less: a tiny part of the sky, more than four cells.
    assert 0 < served.sky_fraction < 1e-3, served.sky_fraction
    assert served.max_order >= 6
    # Each image's footprint (its s_region corners, pulled 1% towards the centre) is inside.
    r = tap_sync(base, "SELECT s_ra, s_dec, s_region FROM ivoa.obscore WHERE s_region IS NOT NULL")
    t = parse_votable(r.content).get_first_table().to_table()
    assert len(t) >= 3
    for row in t:
        words = str(row["s_region"]).split()
        xy = np.array([float(w) for w in words[2:]]).reshape(-1, 2)
        lon = row["s_ra"] + 0.99 * (((xy[:, 0] - row["s_ra"] + 180) % 360) - 180)
        lat = row["s_dec"] + 0.99 * (xy[:, 1] - row["s_dec"])
        assert np.all(served.contains_lonlat(lon * u.deg, lat * u.deg)), row["s_region"]
    # ivoa.obscore's coverage is the union of its collections'.
    whole = load(requests.get(f"{base}/moc/ivoa.obscore", timeout=120), tmp_path, "obscore.fits")
    assert whole == served


@pytest.mark.local_folder
def test_coverage_is_the_same_for_every_caller(pointed):
    """Public metadata: two users and an anonymous caller get the same bytes (a token that
    names no one changes nothing either), for a catalog's and a collection's coverage."""
    tokens = {}
    for name in ("alice", "bob"):
        rc, out = pointed.user_add(name)
        assert rc == 0, out
        tokens[name] = out.split()[-1]
    for path in ("/moc/collection/pointed", "/moc/ivoa.obscore"):
        url = pointed.base_url + path
        anonymous = requests.get(url, timeout=60)
        assert anonymous.status_code == 200
        for token in (*tokens.values(), "not-a-token"):
            r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert r.status_code == 200 and r.content == anonymous.content, (path, r.status_code)


def test_unknown_collections_are_refused(base_url):
    for name in ("nosuch", "_index", "..", "demo%2F..%2Fx"):
        r = requests.get(f"{base_url}/moc/collection/{name}", timeout=30)
        assert r.status_code == 404, (name, r.status_code, r.text)
    r = requests.get(f"{base_url}/moc/collection/demo", params={"format": "png"}, timeout=30)
    assert r.status_code == 400 and "fits, json or ascii" in r.text
