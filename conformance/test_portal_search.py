"""The portal's name resolver, search forms and asynchronous jobs, against a real server (the
forms in Debian's Chromium driven by Playwright, as in test_portal.py).

* `/portal/api/resolve`: Messier/NGC/common names from the bundled OpenNGC list, catalog
  identifiers (HIP, Gaia DR3 source_id) checked against the raw catalog files, clean JSON
  errors for unknown, missing and over-long names.
* The cone form by object name ("M45"): the ADQL it writes is in the editor, and the rows it
  shows are exactly the brute-force cone over the raw Gaia file; the points are on the sky.
* The image/spectrum form: rows from ivoa.obscore whose footprints meet the circle, the same
  images SIA 2.0 finds there, with DataLink links and footprints on the sky; a band and dates
  keep exactly the rows whose wavelengths and times meet them; spectra alone.
* A query run as an asynchronous job: its phase shown, its result in the table, the job in
  "Your jobs" after a reload, its result opened again from there.
* The DataLink #preview of a selected image or spectrum row, shown in the page.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests

from test_portal import browser, open_page, shots, wait_js  # noqa: F401  (fixtures)
from vostok_helpers import angular_distance_deg, assert_cone_result, parse_votable, tap_sync


def resolve(base_url, name):
    return requests.get(base_url + "/portal/api/resolve", params={"name": name}, timeout=60)


def test_resolve_common_names(base_url):
    m45 = resolve(base_url, "M45")
    assert m45.status_code == 200 and m45.headers["Content-Type"].startswith("application/json")
    body = m45.json()
    assert body["source"] == "OpenNGC" and "Mattia Verga" in body["credit"]
    assert "Pleiades" in body["names"]
    # The Pleiades: 03h47m, +24°07′.
    assert angular_distance_deg(56.87, 24.11, body["ra"], body["dec"]) < 0.1
    for alias in ("m 45", "M045", "messier 45", "  pleiades "):
        other = resolve(base_url, alias).json()
        assert (other["ra"], other["dec"]) == (body["ra"], body["dec"]), alias
    m31 = resolve(base_url, "M 31").json()
    assert m31["object"] == "NGC 224"
    for alias in ("NGC 224", "ngc0224", "Andromeda Galaxy"):
        other = resolve(base_url, alias).json()
        assert (other["ra"], other["dec"]) == (m31["ra"], m31["dec"]), alias
    assert angular_distance_deg(10.6847, 41.2690, m31["ra"], m31["dec"]) < 0.01


def test_resolve_catalog_identifiers(base_url, hip_truth, gaia_truth):
    for name, hip in (("HIP 32349", 32349), ("hip32349", 32349), ("HIP 1", 1)):
        r = resolve(base_url, name)
        assert r.status_code == 200, r.text
        body = r.json()
        i = hip_truth.index[hip]
        assert body["source"] == "hipparcos.hip2" and body["column"] == "hip"
        assert body["ra"] == pytest.approx(hip_truth.ra[i], abs=1e-9)
        assert body["dec"] == pytest.approx(hip_truth.dec[i], abs=1e-9)
    # A Gaia DR3 source id (64 bits: more digits than a double keeps).
    j = int(np.argmax(gaia_truth.ids))
    sid = int(gaia_truth.ids[j])
    assert sid > 2**53
    body = resolve(base_url, f"Gaia DR3 {sid}").json()
    assert body["source"] == "gaia.dr3_bright" and body["object"] == str(sid)
    assert body["ra"] == pytest.approx(gaia_truth.ra[j], abs=1e-9)
    assert body["dec"] == pytest.approx(gaia_truth.dec[j], abs=1e-9)
    # One more than the id is another star or none: never this one.
    nxt = resolve(base_url, f"Gaia DR3 {sid + 1}")
    assert nxt.status_code == 404


def test_resolve_target_names(base_url):
    """A name that is neither in OpenNGC nor a catalog identifier: ObsCore's target_name
    (UCD meta.id;src), whole, without case, spaces or hyphens: "mn lup" is the spectra's
    "MN-Lup"."""
    rows = tap_sync(base_url, "SELECT s_ra, s_dec FROM ivoa.obscore WHERE target_name = 'MN-Lup'",
                    RESPONSEFORMAT="csv").text.splitlines()[1:]
    assert rows
    r = resolve(base_url, "mn lup")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "ivoa.obscore" and body["column"] == "target_name"
    assert (body["ra"], body["dec"]) in [tuple(float(v) for v in row.split(",")) for row in rows]


@pytest.mark.parametrize("name", [
    "No Such Object", "HIP 99999999", "HIP 1 OR 1=1", "HIP 1; DROP TABLE x", "HIP '1'",
    "Gaia DR3 99999999999999999999999", "M 999", "- 1", "1",
])
def test_resolve_unknown_names_are_clean_404s(base_url, name):
    r = resolve(base_url, name)
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "no object named" in r.json()["error"]


def test_resolve_bad_requests(base_url):
    for params in ({}, {"name": "   "}, {"name": "x" * 129}):
        r = requests.get(base_url + "/portal/api/resolve", params=params, timeout=30)
        assert r.status_code == 400, (params, r.text)
        assert "error" in r.json()
    # 128 characters are still looked up.
    assert resolve(base_url, "x" * 128).status_code == 404


def search(page, form, where, radius, done, **choices):
    """Fills the search form `form` ("cone" or "obs"): the position or name, the radius in
    arcmin and the other <select>s by their id's suffix; submits it and waits until `done`
    (JavaScript) holds."""
    page.fill(f"#{form}-where", where)
    page.fill(f"#{form}-radius", radius)
    page.select_option(f"#{form}-unit", "arcmin")
    for name, value in choices.items():
        page.select_option(f"#{form}-{name}", value)
    page.click(f"#{form}-form button[type=submit]")
    wait_js(page, done)


CIRCLE = re.compile(r"CIRCLE\('ICRS', ([-\d.e]+), ([-\d.e]+), ([-\d.e]+)\)")


def test_cone_form_by_object_name(browser, base_url, shots, gaia_truth):
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.locator("#cone-box summary").click()
        wait_js(page, "document.querySelector('#cone-table option[value=\"gaia.dr3_bright\"]')")
        search(page, "cone", "M45", "40", "window.vostokPortal.result && window.vostokPortal.view === 'sky'"
               " && document.getElementById('aladin').dataset.points !== undefined", table="gaia.dr3_bright")
        status = page.inner_text("#cone-status")
        assert "OpenNGC" in status and "Mel 22" in status
        # The equivalent ADQL is in the editor, and it is what ran.
        adql = page.input_value("#editor")
        assert "FROM gaia.dr3_bright" in adql and "CONTAINS(POINT('ICRS', ra, dec)" in adql
        ra, dec, r = (float(x) for x in CIRCLE.search(adql).groups())
        named = resolve(base_url, "M45").json()
        assert ra == pytest.approx(named["ra"], abs=1e-6) and dec == pytest.approx(named["dec"], abs=1e-6)
        assert r == pytest.approx(40 / 60, abs=1e-6)
        cols = page.evaluate("() => window.vostokPortal.result.columns.map(c => c.name)")
        rows = page.evaluate("() => window.vostokPortal.result.rows.map(r => String(r[0]))")
        assert cols[0] == "source_id" and "dist" in cols
        assert_cone_result([int(x) for x in rows], gaia_truth, ra, dec, r, "the portal's cone form")
        # Nearest first.
        dist = page.evaluate(f"() => window.vostokPortal.result.rows.map(r => r[{cols.index('dist')}])")
        assert dist == sorted(dist) and len(dist) > 10
        # On the sky: every row a point.
        assert int(page.locator("#aladin").get_attribute("data-points")) == len(rows)
        assert "search cone" in page.inner_text("#sky-status")
        page.wait_for_timeout(1500)  # let WebGL draw before the screenshot
        page.screenshot(path=str(shots / "portal-cone.png"))
        # The link reproduces it: the query, the sky, the cone.
        link = page.url
        assert "cone=" in link and "view=sky" in link
        ctx2, page2, outside2, errors2 = open_page(browser, base_url, link[len(base_url):])
        try:
            wait_js(page2, "window.vostokPortal.result"
                    " && document.getElementById('aladin').dataset.points !== undefined")
            assert page2.input_value("#editor") == adql
            assert int(page2.locator("#aladin").get_attribute("data-points")) == len(rows)
            assert "search cone" in page2.inner_text("#sky-status")
            assert outside2 == [] and errors2 == []
        finally:
            ctx2.close()

        # A sexagesimal position, no resolver: the same centre to 0.1″.
        search(page, "cone", "03:47:28.6 +24:06:19", "5",
               "document.getElementById('cone-status').textContent.includes('03:47:28.6')"
               " && !document.getElementById('run').disabled")
        ra2, dec2, _ = (float(x) for x in CIRCLE.search(page.input_value("#editor")).groups())
        assert ra2 == pytest.approx(15 * (3 + 47 / 60 + 28.6 / 3600), abs=1e-6)
        assert dec2 == pytest.approx(24 + 6 / 60 + 19 / 3600, abs=1e-6)

        # An unknown name: said in the form, nothing run.
        before = page.input_value("#editor")
        page.fill("#cone-where", "No Such Object")
        page.click("#cone-form button[type=submit]")
        page.locator("#cone-status.bad", has_text="no object named").wait_for()
        assert page.input_value("#editor") == before
        assert outside == [] and errors == []
    finally:
        ctx.close()


def test_image_form_matches_sia(browser, base_url, shots):
    """Images around the Crab Nebula (M1 in OpenNGC): the rows are the images SIA 2.0 finds
    with the same circle; each has a DataLink link; their footprints are drawn."""
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.locator("#obs-box summary").click()
        search(page, "obs", "Crab Nebula", "20", "window.vostokPortal.result && window.vostokPortal.view === 'sky'"
               " && document.getElementById('aladin').dataset.footprints !== undefined", kind="image")
        adql = page.input_value("#editor")
        assert "FROM ivoa.obscore" in adql and "INTERSECTS(s_region" in adql
        ra, dec, r = (float(x) for x in CIRCLE.search(adql).groups())
        cols = page.evaluate("() => window.vostokPortal.result.columns.map(c => c.name)")
        got = page.evaluate(f"() => window.vostokPortal.result.rows.map(r => r[{cols.index('obs_publisher_did')}])")
        kinds = set(page.evaluate(f"() => window.vostokPortal.result.rows.map(r => r[{cols.index('dataproduct_type')}])"))
        assert got and kinds <= {"image", "cube"}
        sia = requests.get(base_url + "/sia/v2/query",
                           params={"POS": f"CIRCLE {ra} {dec} {r}", "MAXREC": 1000}, timeout=60)
        assert sia.status_code == 200
        t = parse_votable(sia.content).get_first_table().to_table()
        want = {str(v) for v, k in zip(t["obs_publisher_did"], t["dataproduct_type"])
                if str(k) in ("image", "cube")}
        assert set(got) == want
        # The DataLink link of the first row answers with its links document.
        link = page.locator(".grid-row").first.locator("a[href^='datalink/links?ID=']")
        href = link.get_attribute("href")
        dl = requests.get(f"{base_url}/{href}", timeout=60)
        assert dl.status_code == 200 and b"access_url" in dl.content
        n_regions = sum(1 for v in page.evaluate(
            f"() => window.vostokPortal.result.rows.map(r => r[{cols.index('s_region')}])") if v)
        assert int(page.locator("#aladin").get_attribute("data-footprints")) == n_regions > 0
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "portal-images.png"))

        # A band and dates narrow the same search: exactly the rows above whose wavelengths
        # meet the infrared band (7e-7 to 1e-3 m) and that were observed in the dates
        # (t_min/t_max in MJD; 2000-01-01 is MJD 51544, 2030-12-31 is MJD 62866).
        every = page.evaluate("() => window.vostokPortal.result.rows")
        idx = {c: cols.index(c) for c in ("obs_publisher_did", "em_min", "em_max", "t_min", "t_max")}

        def kept(row):
            em_min, em_max, t_min, t_max = (row[idx[c]] for c in ("em_min", "em_max", "t_min", "t_max"))
            return (None not in (em_min, em_max, t_min, t_max) and em_min <= 1e-3 and em_max >= 7e-7
                    and t_max >= 51544 and t_min <= 62867)
        want = {row[idx["obs_publisher_did"]] for row in every if kept(row)}
        assert want and len(want) < len(every), "the demo has an infrared image of the Crab, and others"
        page.fill("#obs-from", "2000-01-01")
        page.fill("#obs-to", "2030-12-31")
        search(page, "obs", "Crab Nebula", "20",
               "document.getElementById('editor').value.includes('-- infrared')"
               " && !document.getElementById('run').disabled"
               " && document.getElementById('run-status').textContent === 'Done.'", band="infrared")
        adql = page.input_value("#editor")
        assert "t_max >= 51544" in adql and "t_min <= 62867" in adql
        narrowed = page.evaluate(f"() => window.vostokPortal.result.rows.map(r => r[{cols.index('obs_publisher_did')}])")
        assert set(narrowed) == want
        page.fill("#obs-from", "")
        page.fill("#obs-to", "")
        page.select_option("#obs-band", "")

        # Spectra only, around a spectrum's own position: it is among the rows.
        spec = tap_sync(base_url, "SELECT TOP 1 obs_publisher_did, s_ra, s_dec FROM ivoa.obscore "
                        "WHERE dataproduct_type = 'spectrum' ORDER BY obs_publisher_did",
                        RESPONSEFORMAT="csv").text.splitlines()[1].split(",")
        # (The images' query had no "= 'spectrum'": done once the new query has run.)
        search(page, "obs", f"{spec[1]} {spec[2]}", "1",
               "document.getElementById('editor').value.includes(\"dataproduct_type = 'spectrum'\")"
               " && !document.getElementById('run').disabled"
               " && document.getElementById('run-status').textContent === 'Done.'", kind="spectrum")
        cols = page.evaluate("() => window.vostokPortal.result.columns.map(c => c.name)")
        rows = page.evaluate("() => window.vostokPortal.result.rows")
        assert spec[0].strip('"') in [row[cols.index("obs_publisher_did")] for row in rows]
        assert {row[cols.index("dataproduct_type")] for row in rows} == {"spectrum"}
        assert outside == [] and errors == []
    finally:
        ctx.close()


JOB_QUERY = ("SELECT TOP 500 hip, ra, dec, hpmag\nFROM hipparcos.hip2\n"
             "WHERE hpmag < 6\nORDER BY hip")


def test_async_job_and_the_list_after_a_reload(browser, base_url, shots, hip_truth):
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", JOB_QUERY)
        page.click("#run-async")
        wait_js(page, "document.getElementById('run-status').dataset.phase === 'COMPLETED'"
                " && window.vostokPortal.result && !document.getElementById('run').disabled", 120)
        assert page.inner_text("#run-status").endswith("COMPLETED.")
        job = page.evaluate("() => window.vostokPortal.job")
        assert re.search(r"/tap/async/[^/]+$", job)
        assert "job=" in page.url
        ids = page.evaluate("() => window.vostokPortal.result.rows.map(r => r[0])")
        sync = parse_votable(tap_sync(base_url, JOB_QUERY).content).get_first_table().to_table()
        assert ids == [int(x) for x in sync["hip"]] and len(ids) == 500
        # The VOTable download is the job's own result.
        assert page.get_attribute("#dl-votable", "href") == f"{job}/results/result"
        item = page.locator(f'#jobs li[data-url="{job}"]')
        assert item.locator(".phase").inner_text() == "COMPLETED"
        # A failing job: its phase and its error.
        page.fill("#editor", "SELECT nosuch FROM hipparcos.hip2")
        page.click("#run-async")
        wait_js(page, "document.getElementById('run-status').dataset.phase === 'ERROR'"
                " && !document.getElementById('run').disabled", 120)
        assert "nosuch" in page.inner_text("#run-status")
        assert page.locator("#jobs li").count() == 2
        page.locator("#jobs-box summary").click() if not page.locator("#jobs-box").evaluate("e => e.open") else None
        page.screenshot(path=str(shots / "portal-jobs.png"))

        # After a reload (the same browser's storage), the list is still there, and the first
        # job's result opens from it.
        page.goto(base_url + "/")
        page.locator(f'#jobs li[data-url="{job}"]').wait_for(state="attached")
        assert page.locator("#jobs li").count() == 2
        page.locator("#jobs-box summary").click()
        page.locator(f'#jobs li[data-url="{job}"] button', has_text="Show result").click()
        wait_js(page, "window.vostokPortal.result && window.vostokPortal.job"
                " && document.getElementById('run-status').textContent.endsWith('COMPLETED.')", 120)
        assert page.evaluate("() => window.vostokPortal.result.rows.map(r => r[0])") == ids
        assert page.input_value("#editor") == JOB_QUERY
        # The page's URL opens that result in a fresh page too.
        url = page.url
        assert outside == [] and errors == []
    finally:
        ctx.close()
    ctx, page, outside, errors = open_page(browser, base_url, url[len(base_url):])
    try:
        wait_js(page, "window.vostokPortal.result && window.vostokPortal.job", 120)
        assert page.evaluate("() => window.vostokPortal.result.rows.length") == 500
        assert outside == [] and errors == []
    finally:
        ctx.close()


PREVIEW_QUERY = ("SELECT obs_publisher_did, dataproduct_type, access_url\nFROM ivoa.obscore\n"
                 "ORDER BY dataproduct_type, obs_publisher_did")


def test_datalink_preview_of_the_selected_row(browser, base_url):
    """Selecting an image or spectrum row shows its DataLink #preview PNG in the page (the
    same bytes as the preview URL the DataLink document lists); a row of another table shows
    none."""
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", PREVIEW_QUERY)
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && !document.getElementById('run').disabled", 120)
        rows = page.evaluate("() => window.vostokPortal.result.rows.map(r => [r[0], r[1]])")
        kinds = [k for _, k in rows]
        for kind in ("image", "spectrum"):
            pos = kinds.index(kind)
            did = rows[pos][0]
            # The row at that position of the unsorted table, selected with the keyboard from
            # the first.
            page.evaluate("() => { document.querySelector('#grid .grid-body').scrollTop = 0; }")
            page.locator(".grid-row").first.click()
            for _ in range(pos):
                page.keyboard.press("ArrowDown")
            assert page.evaluate("() => window.vostokPortal.selectedRow") == pos
            wait_js(page, f"document.getElementById('preview').dataset.did === {did!r}"
                    " && !document.getElementById('preview').hidden"
                    " && document.getElementById('preview-img').complete"
                    " && document.getElementById('preview-img').naturalWidth > 0", 120)
            src = page.get_attribute("#preview-img", "src")
            links = requests.get(f"{base_url}/datalink/links", params={"ID": did}, timeout=60).text
            assert re.search(r"<TD>([^<]*)</TD><TD/><TD/><TD>#preview</TD>", links).group(1).replace(
                "&amp;", "&").split("/datalink/")[1] == src.split("/datalink/")[1]
            png = requests.get(src, timeout=60)
            assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert page.get_attribute("#preview-img", "alt") == f"Preview of {did}"
        page.click("#preview-close")
        assert page.locator("#preview").is_hidden()
        # A catalog row has no DataLink: no preview.
        page.fill("#editor", "SELECT TOP 5 hip, ra, dec FROM hipparcos.hip2 ORDER BY hip")
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && window.vostokPortal.result.rows.length === 5")
        page.locator(".grid-row").nth(1).click()
        assert page.locator("#preview").is_hidden()
        assert outside == [] and errors == []
    finally:
        ctx.close()
