"""The portal (`/`) in a real browser: Debian's Chromium driven by Playwright.

A new user finds gaia.dr3_bright, completes a column name, sees an ADQL error at the line and
column `vostok adql check` reports, runs a query, sorts the table, sees the points on the
Aladin Lite view, downloads the whole result as FITS (astropy reads the same rows), and opens
the page's URL again to get the same result. No request leaves the server meanwhile. Over
SAMP (an astropy Web Profile hub and a client standing in for TOPCAT) the page sends a table,
a position and an image, and selects the row the client highlights.

Screenshots of each state go to $VOSTOK_PORTAL_SCREENSHOTS when set
(scripts/portal-screenshots.sh sets it to docs/), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
from astropy.table import Table

CHROMIUM = os.environ.get("VOSTOK_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # WebGL2 (Aladin Lite) on the CPU: SwiftShader.
         "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]

QUERY = ("SELECT TOP 3000 source_id, ra, dec, phot_g_mean_mag, pmra\n"
         "FROM gaia.dr3_bright\nWHERE phot_g_mean_mag < 9\nORDER BY source_id")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run scripts/install-test-deps.sh")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    out = Path(os.environ.get("VOSTOK_PORTAL_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


SAMP_HUB = {"localhost:21012", "127.0.0.1:21012"}


def open_page(browser, base_url, path="/"):
    """A page of the portal, with every request recorded and any to another host (but the
    SAMP Web Profile hub on this machine) refused."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    here = urlparse(base_url).netloc
    outside: list[str] = []
    errors: list[str] = []

    def route(r):
        u = urlparse(r.request.url)
        if u.scheme in ("data", "blob") or u.netloc == here or u.netloc in SAMP_HUB:
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base_url + path)
    return ctx, page, outside, errors


def wait_js(page, expr: str, timeout_s: float = 60):
    """Waits until the JavaScript expression `expr` is truthy in the page (polled with
    evaluate: the page's Content-Security-Policy forbids the eval Playwright's
    wait_for_function uses)."""
    import time
    end = time.monotonic() + timeout_s
    while True:
        if page.evaluate(f"() => !!({expr})"):
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expr}")
        page.wait_for_timeout(200)


def cli_check(query: str) -> tuple[int, int]:
    """Line and column of the error `vostok adql check` reports for `query` (grammar only)."""
    binary = os.environ.get("VOSTOK_BIN")
    assert binary, "VOSTOK_BIN is set by conftest/test.sh"
    p = subprocess.run([binary, "adql", "check", "-"], input=query, capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"at line (\d+), column (\d+)", p.stdout)
    assert m, p.stdout + p.stderr
    return int(m.group(1)), int(m.group(2))


def test_assets_are_served_with_types_and_cache_headers(base_url):
    r = requests.get(base_url + "/", timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-cache"
    js = requests.get(base_url + "/portal/portal.js", timeout=30)
    assert js.headers["Content-Type"].startswith("text/javascript")
    again = requests.get(base_url + "/portal/portal.js", timeout=30,
                         headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304
    al = requests.get(base_url + "/portal/vendor/aladin-lite-3.8.2/aladin.js", timeout=30)
    assert al.status_code == 200 and "immutable" in al.headers["Cache-Control"]
    # The bundled libraries are the npm packages' own bytes.
    sums = {}
    for line in (Path(__file__).parent.parent / "portal/vendor/SHA256SUMS").read_text().splitlines():
        h, name = line.split(maxsplit=1)
        sums[name] = h
    import hashlib
    assert hashlib.sha256(al.content).hexdigest() == sums["aladin-lite-3.8.2/aladin.js"]
    assert requests.get(base_url + "/portal/../Cargo.toml", timeout=30).status_code == 404
    assert requests.get(base_url + "/portal/nope.js", timeout=30).status_code == 404


def test_check_endpoint(base_url):
    ok = requests.post(base_url + "/portal/api/check", data="SELECT TOP 1 ra FROM gaia.dr3_bright",
                       timeout=30).json()
    assert ok == {"ok": True}
    bad = requests.post(base_url + "/portal/api/check", data="SELECT TOP 1 nosuch FROM gaia.dr3_bright",
                        timeout=30).json()
    assert bad["ok"] is False and "nosuch" in bad["message"]
    big = requests.post(base_url + "/portal/api/check", data="SELECT 1" + " " * 70000, timeout=30)
    assert big.status_code == 413 and "check_kb" in big.json()["message"]
    assert requests.post(base_url + "/portal/api/check", data="  ", timeout=30).status_code == 400


def test_check_limits_come_from_the_config(tmp_path):
    """`[limits] check_kb` bounds the text the live check reads: with 1 KiB, a valid query
    of 1,000 bytes is checked and one of 1,100 bytes is refused with 413."""
    from conftest import find_binary
    from vostok_helpers import OwnServer
    config = tmp_path / "vostok.toml"
    config.write_text("[limits]\ncheck_kb = 1\nchecks = 2\ncheck_seconds = 5\n")
    s = OwnServer(find_binary(), tmp_path / "data", tmp_path / "server.log", config=config)
    s.start()
    try:
        def query(size):
            q = "SELECT TOP 1 ra FROM gaia.dr3_bright"
            return q + " " * (size - len(q))
        ok = requests.post(s.base_url + "/portal/api/check", data=query(1000), timeout=30)
        assert ok.status_code == 200 and ok.json() == {"ok": True}
        big = requests.post(s.base_url + "/portal/api/check", data=query(1100), timeout=30)
        assert big.status_code == 413 and "1 KiB" in big.json()["message"]
    finally:
        s.stop()


def test_find_ask_look_download(browser, base_url, shots, tmp_path):
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        # Find: the filter keeps gaia.dr3_bright, its columns show units and UCDs.
        page.fill("#filter", "dr3_bright")
        item = page.locator('#tables li[data-table="gaia.dr3_bright"]')
        item.wait_for()
        assert page.locator("#tables li").count() == 1
        item.locator("summary").click()
        cols = item.locator("table.cols")
        assert "phot_g_mean_mag" in cols.inner_text()
        assert "mag" in cols.locator("tr", has_text="phot_g_mean_mag").inner_text()
        page.locator("#examples button").first.wait_for()
        page.screenshot(path=str(shots / "portal-find.png"))

        # Ask: completion of a column name of the table in FROM.
        ed = page.locator("#editor")
        ed.fill("SELECT TOP 5 phot_g\nFROM gaia.dr3_bright")
        ed.evaluate("e => e.setSelectionRange(19, 19)")
        ed.press("Control+Space")
        comp = page.locator("#completions li", has_text="phot_g_mean_mag")
        comp.first.wait_for()
        page.screenshot(path=str(shots / "portal-complete.png"))
        ed.press("Enter")
        assert ed.input_value().startswith("SELECT TOP 5 phot_g_mean_mag\n")

        # Ask: a syntax error, shown live at the line and column adql check reports.
        bad = "SELECT ra, dec\nFROM gaia.dr3_bright\nWHERE phot_g_mean_mag < < 5"
        ed.fill(bad)
        line, col = cli_check(bad)
        check = page.locator("#check.bad", has_text=f"line {line},")
        check.wait_for()
        assert (line, col) == (3, bad.splitlines()[2].index("< 5") + 1)
        assert check.get_attribute("data-line") == str(line)
        assert check.get_attribute("data-column") == str(col)
        assert f"line {line}, column {col}" in check.inner_text()
        assert page.locator("#highlight .err").inner_text().strip() == "<"
        page.screenshot(path=str(shots / "portal-error.png"))

        # Run: the table with units in its header.
        ed.fill(QUERY)
        page.locator("#check.good").wait_for()
        page.click("#run")
        wait_js(page, "window.vostokPortal.result")
        n = page.evaluate("() => window.vostokPortal.result.rows.length")
        assert n > 100
        head = page.locator(".grid-head").inner_text()
        assert "[deg]" in head and "[mag]" in head
        # Virtualised: far fewer row elements than rows.
        assert page.locator(".grid-row").count() < 100

        # Sort by magnitude, both ways.
        mags = np.array(page.evaluate("() => window.vostokPortal.result.rows.map(r => r[3])"), dtype=float)
        hdr = page.locator(".grid-head button", has_text="phot_g_mean_mag")
        hdr.click()
        first = float(page.locator(".grid-row").first.locator(".cell").nth(3).inner_text())
        assert first == pytest.approx(np.nanmin(mags), abs=1e-6)
        assert page.locator(".grid-head [aria-sort=ascending]").count() == 1
        hdr.click()
        first = float(page.locator(".grid-row").first.locator(".cell").nth(3).inner_text())
        assert first == pytest.approx(np.nanmax(mags), abs=1e-6)
        page.screenshot(path=str(shots / "portal-table.png"))

        # Look: the points on the Aladin Lite view.
        page.click("#tab-sky")
        wait_js(page, "document.getElementById('aladin').dataset.points !== undefined")
        assert int(page.locator("#aladin").get_attribute("data-points")) == n
        assert page.locator("#aladin canvas").count() >= 1
        page.wait_for_timeout(1500)  # let WebGL draw before the screenshot
        page.screenshot(path=str(shots / "portal-sky.png"))
        assert "view=sky" in page.url and "run=1" in page.url

        # Download the whole result as FITS: astropy reads the same rows.
        ids = sorted(page.evaluate("() => window.vostokPortal.result.rows.map(r => String(r[0]))"))
        with page.expect_download() as dl:
            page.click("#dl-fits")
        path = tmp_path / "result.fits"
        dl.value.save_as(path)
        t = Table.read(path, format="fits")
        assert len(t) == n
        assert sorted(str(v) for v in t["source_id"]) == ids

        # The URL reproduces the state: the same query runs again on the sky view.
        url = page.url
        assert outside == [], f"requests to other hosts: {outside}"
        assert errors == [], errors
    finally:
        ctx.close()
    ctx, page, outside, errors = open_page(browser, base_url, urlparse(url).path + "?" + urlparse(url).query)
    try:
        wait_js(page, "window.vostokPortal && window.vostokPortal.result")
        assert page.input_value("#editor") == QUERY
        assert page.evaluate("() => window.vostokPortal.result.rows.length") == n
        assert page.locator("#tab-sky").get_attribute("aria-selected") == "true"
        assert outside == [] and errors == []
    finally:
        ctx.close()


def test_sky_shows_the_coverage_of_the_queried_tables(browser, base_url, shots):
    """The sky view draws the coverage (MOC) of the tables the query reads, fetched from
    /moc/{table}, as an Aladin Lite layer; the box beside the view takes it away and back."""
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        query = ("SELECT TOP 500 g.source_id, g.ra, g.dec, h.hip\nFROM gaia.dr3_bright AS g\n"
                 "JOIN hipparcos.hip2 AS h ON 1 = CONTAINS(POINT(g.ra, g.dec), "
                 "CIRCLE(h.ra, h.dec, 0.001))")
        page.fill("#editor", query)
        page.locator("#check.good").wait_for()
        page.click("#run")
        wait_js(page, "window.vostokPortal.result")
        with page.expect_response(lambda r: "/moc/gaia.dr3_bright" in r.url) as got:
            page.click("#tab-sky")
        assert got.value.status == 200
        assert got.value.headers["content-type"].startswith("application/fits")
        wait_js(page, "document.getElementById('aladin').dataset.mocsReady === '2'")
        assert page.locator("#aladin").get_attribute("data-mocs") == \
            "gaia.dr3_bright,hipparcos.hip2"
        assert page.evaluate("() => window.vostokPortal.coverage") == \
            ["gaia.dr3_bright", "hipparcos.hip2"]
        assert "hipparcos.hip2" in page.locator("#sky-moc-status").inner_text()
        page.locator("#view-sky").scroll_into_view_if_needed()
        page.wait_for_timeout(1500)  # let WebGL draw before the screenshot
        page.locator("#view-sky").screenshot(path=str(shots / "portal-moc.png"))
        assert_no_serious_violations_of(page)
        # Off, then on again (fetched again).
        page.uncheck("#sky-moc")
        wait_js(page, "document.getElementById('aladin').dataset.mocs === ''")
        assert page.evaluate("() => window.vostokPortal.coverage") == []
        with page.expect_response(lambda r: "/moc/hipparcos.hip2" in r.url):
            page.check("#sky-moc")
        wait_js(page, "document.getElementById('aladin').dataset.mocsReady === '2'")
        # A query of a table without a position (TAP_SCHEMA) has no coverage to draw.
        page.fill("#editor", "SELECT TOP 3 table_name FROM TAP_SCHEMA.tables")
        page.click("#run")
        wait_js(page, "window.vostokPortal.coverage && window.vostokPortal.coverage.length === 0")
        assert outside == [] and errors == [], (outside, errors)
    finally:
        ctx.close()


def assert_no_serious_violations_of(page):
    """axe-core on a page opened with open_page (whose context keeps the page's CSP), as the
    page's URL shows it, in a context that bypasses it. Aladin Lite's own widgets inside the
    view (vendored unmodified: icon buttons without names) are left out; the page's controls
    around it (the coverage box, the status lines) are checked."""
    ctx = page.context.browser.new_context(viewport={"width": 1400, "height": 900},
                                           bypass_csp=True)
    try:
        copy = ctx.new_page()
        copy.goto(page.url)
        wait_js(copy, "window.vostokPortal && window.vostokPortal.result")
        wait_js(copy, "document.getElementById('aladin').dataset.mocsReady === '2'")
        assert_no_serious_violations(copy, exclude=["#aladin"])
    finally:
        ctx.close()


def test_big_result_pages_smoothly(browser, base_url):
    """100 000 rows: the page keeps only the rows in view, and scrolling to the end shows the
    last ones."""
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", "SELECT TOP 100000 source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright")
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && window.vostokPortal.result.rows.length === 100000",
                120)
        assert page.locator(".grid-row").count() < 100
        body = page.locator(".grid-body")
        body.focus()
        body.press("End")
        last = page.locator(".grid-row.sel")
        last.wait_for()
        assert last.get_attribute("aria-rowindex") == str(100000 + 1)
        assert page.locator(".grid-row").count() < 100
        assert outside == [] and errors == []
    finally:
        ctx.close()


def received(got, page, timeout_s=60):
    """The next SAMP message the stand-in client received, or a failure saying what the page
    said."""
    import queue
    import time
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            return got.get_nowait()
        except queue.Empty:
            # Waiting in the page, not in the queue: Playwright's routing of the page's
            # requests to the hub runs on this thread.
            page.wait_for_timeout(200)
    raise AssertionError("no SAMP message received; the page says: "
                         + page.inner_text("#samp-status"))


@pytest.fixture
def samp_client(tmp_path):
    """A SAMP hub with the Web Profile (astropy, consenting to every page) and a client
    standing in for TOPCAT, subscribed to what the page sends: (client, queue of (mtype,
    params) received)."""
    import queue
    import threading

    from astropy.samp import SAMPHubServer, SAMPIntegratedClient
    from astropy.samp.hub import WebProfileDialog

    class Consent(WebProfileDialog):
        def __init__(self):
            self.polling = True
            WebProfileDialog.__init__(self)

        def show_dialog(self, *args):
            self.consent()

        def poll(self):
            while self.polling:
                self.handle_queue()
                import time
                time.sleep(0.1)

    dialog = Consent()
    hub = SAMPHubServer(web_profile=True, web_profile_dialog=dialog,
                        lockfile=str(tmp_path / "samp"))
    try:
        hub.start()
    except Exception as e:  # the Web Profile's port is fixed
        pytest.fail(f"cannot start a SAMP hub with the Web Profile on port 21012: {e}")
    poller = threading.Thread(target=dialog.poll, daemon=True)
    poller.start()
    got: queue.Queue = queue.Queue()
    client = SAMPIntegratedClient(name="stand-in for TOPCAT")
    try:
        client.connect(hub=hub)
        for mtype in ("table.load.votable", "coord.pointAt.sky", "image.load.fits"):
            client.bind_receive_notification(
                mtype, lambda *args: got.put((args[-3], args[-2])))
        yield client, got
    finally:
        if client.is_connected:
            client.disconnect()
        dialog.stop() if hasattr(dialog, "stop") else None
        dialog.polling = False
        hub.stop()


def test_samp_send_table_and_point_at(browser, base_url, tmp_path, samp_client):
    """The page's "Send table" reaches the stand-in client as table.load.votable with a URL it
    fetches itself and reads as the same rows; "Point at row" as coord.pointAt.sky with the
    selected row's position; a table.highlight.row the client sends back selects that row in
    the page's table."""
    from astropy.io.votable import parse_single_table

    client, got = samp_client
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", QUERY)
        page.click("#run")
        wait_js(page, "window.vostokPortal.result")
        n = page.evaluate("() => window.vostokPortal.result.rows.length")
        page.click("#send-table")
        mtype, params = received(got, page)
        assert mtype == "table.load.votable"
        assert "/tap/sync?" in params["url"]
        r = requests.get(params["url"], timeout=60)
        path = tmp_path / "sent.vot"
        path.write_bytes(r.content)
        t = parse_single_table(str(path)).to_table()
        assert len(t) == n
        ids = sorted(page.evaluate("() => window.vostokPortal.result.rows.map(r => String(r[0]))"))
        assert sorted(str(v) for v in t["source_id"]) == ids

        page.locator(".grid-row").nth(2).click()
        page.click("#send-point")
        mtype, params2 = received(got, page)
        assert mtype == "coord.pointAt.sky"
        row = page.evaluate(
            "() => { const s = window.vostokPortal; const r = s.result.rows[s.selectedRow]; return [r[1], r[2]]; }")
        assert float(params2["ra"]) == pytest.approx(row[0], abs=1e-9)
        assert float(params2["dec"]) == pytest.approx(row[1], abs=1e-9)

        # The client highlights row 1234 of the table it was sent (as TOPCAT does when a row
        # is clicked there): the page selects that row and scrolls to it.
        client.notify_all({"samp.mtype": "table.highlight.row",
                           "samp.params": {"url": params["url"], "table-id": params["table-id"],
                                           "row": "1234"}})
        for _ in range(300):
            if page.evaluate("() => window.vostokPortal.highlighted") == 1234:
                break
            page.wait_for_timeout(200)
        assert page.evaluate("() => window.vostokPortal.highlighted") == 1234
        assert page.evaluate("() => window.vostokPortal.selectedRow") == 1234
        sel = page.locator(".grid-row.sel")
        assert sel.count() == 1 and str(t["source_id"][1234]) in sel.inner_text()
        assert outside == [] and errors == []
    finally:
        ctx.close()


def test_samp_send_image(browser, base_url, samp_client):
    """"Send image" on an image row of ivoa.obscore reaches the client as image.load.fits with
    the row's access_url, which serves the same FITS bytes."""
    client, got = samp_client
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", "SELECT TOP 3 obs_publisher_did, access_url, access_format, s_ra, s_dec\n"
                  "FROM ivoa.obscore WHERE dataproduct_type = 'image' ORDER BY obs_publisher_did")
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && window.vostokPortal.result.rows.length === 3")
        assert page.is_disabled("#send-image")
        page.locator(".grid-row").nth(1).click()
        page.click("#send-image")
        mtype, params = received(got, page)
        assert mtype == "image.load.fits"
        want = page.evaluate("() => { const s = window.vostokPortal; return s.result.rows[s.selectedRow][1]; }")
        assert params["url"] == want
        sent = requests.get(params["url"], timeout=60)
        assert sent.status_code == 200 and sent.content[:9] == b"SIMPLE  ="
        assert sent.content == requests.get(want, timeout=60).content
        assert outside == [] and errors == []
    finally:
        ctx.close()


def assert_no_serious_violations(page, exclude=None):
    """axe-core (through axe-playwright-python) on the page as it is: no serious or critical
    violation (the page's context must bypass its Content-Security-Policy: axe is injected as
    an inline script). `exclude`: CSS selectors of parts left out."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        pytest.fail("axe-playwright-python is not installed: run scripts/install-test-deps.sh")
    context = {"include": [["body"]], "exclude": [[sel] for sel in exclude]} if exclude else None
    results = Axe().run(page, context=context)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}: " + ", ".join(
            str(n["target"]) for n in v["nodes"][:5]) for v in bad)


def test_accessibility_no_serious_violations(browser, base_url):
    """axe-core (through axe-playwright-python) on the page with a result in the table, the
    columns of a table, the search forms and the job list open: no serious or critical
    violation. (The page's
    Content-Security-Policy is bypassed here only: axe is injected as an inline script.)"""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    try:
        page = ctx.new_page()
        page.goto(base_url + "/")
        page.locator('#tables li[data-table="gaia.dr3_bright"] summary').click()
        page.fill("#editor", QUERY)
        page.click("#run")
        wait_js(page, "window.vostokPortal.result")
        # The search forms and the job list open too.
        for box in ("#cone-box", "#obs-box", "#jobs-box"):
            page.locator(f"{box} summary").click()
        assert_no_serious_violations(page)
    finally:
        ctx.close()
