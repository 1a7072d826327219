"""The portal logged in, in a real browser (Debian's Chromium driven by Playwright): login with
a vostok token (kept in sessionStorage only), and at an OpenID Connect issuer (a stand-in with
authorization code + PKCE), the user's own jobs from the server's job list, the VOSpace file
browser (upload with progress, 50 MB too, list, mkdir, move/rename, download, share with a
group, make public, delete), "Save to my VOSpace" (an async job with DEST; astropy reads the
file), the quick plot (histogram bins and scatter points against numpy), and axe-core on the
logged-in page.

Every effect of the page is checked over HTTP with the users' tokens: a second user and an
anonymous caller see nothing of the first user's files until they are shared or public.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import time

import numpy as np
import pytest
import requests
from astropy.table import Table

from test_portal import assert_no_serious_violations, browser, open_page, shots, wait_js  # noqa: F401
from test_vospace import add_user, vostok_binary
from test_vospace_oidc import AUDIENCE
from vostok_helpers import parse_votable, tap_sync

AUTH = "vostok.example"


@pytest.fixture(scope="module")
def people(server):
    """ann and ben share a group; cy is in none."""
    suffix = secrets.token_hex(3)
    group = f"team{suffix}"
    binary = vostok_binary()
    names = {w: f"{w}{suffix}" for w in ("ann", "ben", "cy")}
    tokens = {
        "ann": add_user(server.data_dir, names["ann"], groups=[group], binary=binary),
        "ben": add_user(server.data_dir, names["ben"], groups=[group], binary=binary),
        "cy": add_user(server.data_dir, names["cy"], binary=binary),
    }
    return names, tokens, group


def api(token=None):
    s = requests.Session()
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def node(base_url, token, path):
    return api(token).get(f"{base_url}/vospace/nodes/{path}", params={"detail": "max"}, timeout=60)


def file_bytes(base_url, token, path):
    r = api(token).get(f"{base_url}/vospace/files/{path}", timeout=60)
    return r.status_code, r.content


def account_ready(page):
    wait_js(page, "document.body.dataset.account === 'ready'", 60)


def login(page, token, name):
    account_ready(page)
    page.fill("#login-token", token)
    page.click("#login-form button[type=submit]")
    wait_js(page, f"document.body.dataset.user === {name!r}"
            f" && document.getElementById('space-list').dataset.path === {name!r}", 60)


def wait_row(page, name, present=True):
    sel = f'#space-list tbody tr[data-name="{name}"]'
    page.locator(sel).wait_for(state="attached" if present else "detached", timeout=60_000)
    return page.locator(sel)


def manage(page, name):
    row = wait_row(page, name)
    if not row.locator("details").evaluate("d => d.open"):
        row.locator("summary").click()
    return row


def status_is(page, text):
    wait_js(page, f"document.getElementById('space-status').textContent === {text!r}", 60)


def test_me_endpoint_two_users_and_anonymous(base_url, people):
    names, tokens, group = people
    anon = api().get(f"{base_url}/portal/api/me", timeout=30)
    assert anon.status_code == 200 and anon.headers["Cache-Control"] == "no-store"
    assert anon.json()["user"] is None and anon.json()["vospace"] is True
    assert anon.json()["authority"] == AUTH
    for w in ("ann", "ben"):
        me = api(tokens[w]).get(f"{base_url}/portal/api/me", timeout=30).json()
        assert me["user"] == names[w]
        assert me["home"] == f"vos://{AUTH}!vospace/{names[w]}"
        assert me["groups"] == [group]
    assert api(tokens["cy"]).get(f"{base_url}/portal/api/me", timeout=30).json()["groups"] == []
    bad = api("0" * 64).get(f"{base_url}/portal/api/me", timeout=30)
    assert bad.status_code == 401 and "error" in bad.json()


def test_anonymous_page_shows_no_space(browser, base_url):
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        account_ready(page)
        assert page.locator("#space-body").is_hidden()
        assert page.locator("#space-anon").is_visible()
        assert page.locator("#save-form").is_hidden()
        assert page.locator("#space-list tbody tr").count() == 0
        assert page.locator("#login-form").is_visible() and page.locator("#who").is_hidden()
        # A wrong token logs no one in.
        page.fill("#login-token", "0" * 64)
        page.click("#login-form button[type=submit]")
        wait_js(page, "document.getElementById('login-status').textContent.startsWith('Not logged in')")
        assert page.locator("#space-body").is_hidden()
        assert page.evaluate("() => sessionStorage.getItem('vostok.token')") is None
        assert outside == [] and errors == []
    finally:
        ctx.close()


def test_file_browser(browser, base_url, people, tmp_path, shots):
    names, tokens, group = people
    ann, ben, cy = names["ann"], names["ben"], names["cy"]
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "sky.bin"
    src.write_bytes(data)
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        login(page, tokens["ann"], ann)
        # The token is in this tab's sessionStorage only: not in localStorage, not in the URL.
        assert page.evaluate("() => sessionStorage.getItem('vostok.token')") == tokens["ann"]
        assert tokens["ann"] not in page.evaluate("() => JSON.stringify(localStorage)")
        assert tokens["ann"] not in page.url
        assert page.locator("#space-anon").is_hidden()

        # Upload, with the progress bar at its end; listed with its size; the stored bytes are
        # the file's.
        page.set_input_files("#space-file", str(src))
        row = wait_row(page, "sky.bin")
        status_is(page, "Uploaded sky.bin.")
        assert page.evaluate("() => { const p = document.getElementById('space-progress');"
                             " return [p.value, p.max, p.hidden]; }") == [len(data), len(data), False]
        assert row.locator("td").nth(1).inner_text() == "3.0 MiB"
        r = node(base_url, tokens["ann"], f"{ann}/sky.bin")
        assert r.status_code == 200 and hashlib.md5(data).hexdigest() in r.text
        assert file_bytes(base_url, tokens["ann"], f"{ann}/sky.bin") == (200, data)

        # Folders: make one, move the file into it under a new name, open it.
        page.fill("#mkdir-name", "plates")
        page.click("#mkdir-form button[type=submit]")
        assert wait_row(page, "plates").get_attribute("data-type") == "ContainerNode"
        assert node(base_url, tokens["ann"], f"{ann}/plates").status_code == 200
        row = manage(page, "sky.bin")
        row.locator("input[id^=mv-]").fill("plates/m45.bin")
        row.locator("form", has=page.locator("input[id^=mv-]")).locator("button").click()
        wait_row(page, "sky.bin", present=False)
        status_is(page, "Moved sky.bin to plates/m45.bin.")
        assert node(base_url, tokens["ann"], f"{ann}/sky.bin").status_code == 404
        page.locator('#space-list tr[data-name="plates"] button.link').click()
        wait_js(page, f"document.getElementById('space-list').dataset.path === '{ann}/plates'")
        wait_row(page, "m45.bin")
        assert file_bytes(base_url, tokens["ann"], f"{ann}/plates/m45.bin") == (200, data)
        # A rename in place.
        row = manage(page, "m45.bin")
        row.locator("input[id^=mv-]").fill("plates/pleiades.bin")
        row.locator("form", has=page.locator("input[id^=mv-]")).locator("button").click()
        wait_row(page, "pleiades.bin")
        wait_row(page, "m45.bin", present=False)

        # Download: the same bytes.
        with page.expect_download() as dl:
            page.locator('#space-list tr[data-name="pleiades.bin"] button.link').click()
        assert open(dl.value.path(), "rb").read() == data

        # Private: the other users and anonymous callers cannot read it.
        path = f"{ann}/plates/pleiades.bin"
        for t in (tokens["ben"], tokens["cy"], None):
            assert file_bytes(base_url, t, path)[0] in (401, 403, 404)
            assert node(base_url, t, f"{ann}/plates").status_code in (401, 403, 404)

        # Share the folder and the file for reading with ann's group: ben (in it) reads the
        # file, cy (not in it) and anonymous callers still do not.
        page.locator("#space-crumbs button", has_text=ann).click()
        row = manage(page, "plates")
        row.locator("input[id^=gr-]").fill(group)
        row.locator("form", has=page.locator("input[id^=gr-]")).locator("button").click()
        status_is(page, "Sharing of plates changed.")
        wait_js(page, f"document.querySelector('#space-list tr[data-name=\"plates\"] td.shared')"
                f".textContent === 'read: {group}'")
        page.locator('#space-list tr[data-name="plates"] button.link').click()
        row = manage(page, "pleiades.bin")
        row.locator("input[id^=gr-]").fill(group)
        row.locator("form", has=page.locator("input[id^=gr-]")).locator("button").click()
        status_is(page, "Sharing of pleiades.bin changed.")
        assert node(base_url, tokens["ann"], path).text.count(f"ivo://{AUTH}/gms?{group}") == 1
        assert file_bytes(base_url, tokens["ben"], path) == (200, data)
        assert file_bytes(base_url, tokens["cy"], path)[0] in (401, 403, 404)
        assert file_bytes(base_url, None, path)[0] in (401, 403, 404)
        # Write for the group: ben may then replace a property of it.
        row = manage(page, "pleiades.bin")
        row.locator("input[id^=gw-]").fill(group)
        row.locator("form", has=page.locator("input[id^=gw-]")).locator("button").click()
        status_is(page, "Sharing of pleiades.bin changed.")
        writers = re.findall(r'core#groupwrite"[^>]*>([^<]*)<', node(base_url, tokens["ann"], path).text)
        assert writers == [f"ivo://{AUTH}/gms?{group}"]
        # Public: anyone reads it (the folder too, so that its path can be reached).
        for name in ("pleiades.bin",):
            row = manage(page, name)
            row.locator("input[type=checkbox]").check()
            status_is(page, f"{name} is public.")
        page.locator("#space-crumbs button", has_text=ann).click()
        row = manage(page, "plates")
        row.locator("input[type=checkbox]").check()
        status_is(page, "plates is public.")
        assert file_bytes(base_url, None, path) == (200, data)
        assert file_bytes(base_url, tokens["cy"], path) == (200, data)
        page.screenshot(path=str(shots / "portal-space.png"), full_page=True)
        assert outside == [] and errors == []
    finally:
        ctx.close()

    # ben, logged in, sees his own (empty) home, none of ann's names, and cannot list ann's
    # home through the API the page uses either.
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        login(page, tokens["ben"], ben)
        wait_js(page, "document.querySelector('#space-list tbody td.muted')")
        assert page.locator("#space-list tbody tr[data-name]").count() == 0
        assert ann not in page.inner_text("#space")
        status = page.evaluate(f"""async () => (await fetch('vospace/nodes/{ann}/plates?detail=max', {{
            headers: {{ Authorization: 'Bearer ' + sessionStorage.getItem('vostok.token') }} }})).status""")
        assert status == 200  # public now, and shared with ben's group
        before = page.evaluate(f"""async () => (await fetch('vospace/nodes/{ann}', {{
            headers: {{ Authorization: 'Bearer ' + sessionStorage.getItem('vostok.token') }} }})).status""")
        assert before in (403, 404)
        # Log out: no token kept, no space shown.
        page.click("#logout")
        wait_js(page, "document.body.dataset.user === ''")
        assert page.evaluate("() => sessionStorage.getItem('vostok.token')") is None
        assert page.locator("#space-body").is_hidden()
        assert outside == [] and errors == []
    finally:
        ctx.close()

    # ann deletes the file and the folder; the nodes are gone.
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        login(page, tokens["ann"], ann)
        # A reload keeps the login (sessionStorage lives as long as the tab).
        page.reload()
        wait_js(page, f"document.getElementById('space-list').dataset.path === {ann!r}", 60)
        page.locator('#space-list tr[data-name="plates"] button.link').click()
        row = manage(page, "pleiades.bin")
        row.get_by_role("button", name="Delete pleiades.bin").click()
        wait_row(page, "pleiades.bin", present=False)
        assert node(base_url, tokens["ann"], path).status_code == 404
        page.locator("#space-crumbs button", has_text=ann).click()
        row = manage(page, "plates")
        row.get_by_role("button", name="Delete plates").click()
        wait_row(page, "plates", present=False)
        assert node(base_url, tokens["ann"], f"{ann}/plates").status_code == 404
        assert outside == [] and errors == []
    finally:
        ctx.close()


SAVE_QUERY = "SELECT TOP 200 hip, ra, dec, hpmag\nFROM hipparcos.hip2\nWHERE hpmag < 7\nORDER BY hip"


def test_jobs_are_the_users_and_save_to_vospace(browser, base_url, people, shots):
    names, tokens, group = people
    ann = names["ann"]
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        login(page, tokens["ann"], ann)
        page.fill("#editor", SAVE_QUERY)
        page.fill("#save-path", "bright.fits")
        page.click("#save-run")
        wait_js(page, f"document.getElementById('save-status').dataset.saved === '{ann}/bright.fits'", 180)
        assert page.inner_text("#save-status") == f"Saved to vos://{AUTH}!vospace/{ann}/bright.fits."
        job = page.get_attribute("#save-status", "data-job")
        wait_row(page, "bright.fits")
        # The file is the query's result: astropy reads the same rows.
        code, content = file_bytes(base_url, tokens["ann"], f"{ann}/bright.fits")
        assert code == 200
        saved = Table.read(io.BytesIO(content), format="fits")
        truth = parse_votable(tap_sync(base_url, SAVE_QUERY).content).get_first_table().to_table()
        assert len(saved) == len(truth) == 200
        assert list(saved["hip"]) == list(truth["hip"])
        assert np.allclose(saved["hpmag"], truth["hpmag"])
        # The job is ann's: listed by the server for her token, not for ben's nor anonymously.
        listed = api(tokens["ann"]).get(f"{base_url}/tap/async", timeout=30).text
        assert job.split("/")[-1] in listed
        assert job.split("/")[-1] not in api(tokens["ben"]).get(f"{base_url}/tap/async", timeout=30).text
        assert api().get(job, timeout=30).status_code == 404
        # A job of hers run in the page: its VOTable download is fetched with the token.
        page.click("#run-async")
        wait_js(page, "document.getElementById('run-status').dataset.phase === 'COMPLETED'"
                " && window.vostokPortal.result && !document.getElementById('run').disabled", 120)
        job2 = page.evaluate("() => window.vostokPortal.job")
        assert job2 != job and api().get(job2, timeout=30).status_code == 404
        with page.expect_download() as dl:
            page.click("#dl-votable")
        got = Table.read(dl.value.path(), format="votable")
        assert list(got["hip"]) == list(truth["hip"])
        assert outside == [] and errors == []
    finally:
        ctx.close()

    # Another browser (no shared storage), logged in as ann: the job is in the list, from the
    # server; ben's list does not have it.
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        assert page.evaluate("() => localStorage.getItem('vostok.jobs')") is None
        login(page, tokens["ann"], ann)
        page.locator(f'#jobs li[data-url="{job}"]').wait_for(state="attached", timeout=60_000)
        assert page.locator(f'#jobs li[data-url="{job}"] .phase').text_content() == "COMPLETED"
        assert "hipparcos.hip2" in page.locator(f'#jobs li[data-url="{job}"] code').text_content()
        assert page.locator(f'#jobs li[data-url="{job2}"] .phase').text_content() == "COMPLETED"
        page.locator("#jobs-box summary").click()
        page.locator(f'#jobs li[data-url="{job2}"] button', has_text="Show result").click()
        wait_js(page, "window.vostokPortal.result && document.getElementById('run-status')"
                ".textContent.endsWith('COMPLETED.')", 120)
        assert page.evaluate("() => window.vostokPortal.result.rows.length") == 200
        # The saving job's result is FITS: said so, not shown as a table.
        page.locator(f'#jobs li[data-url="{job}"] button', has_text="Show result").click()
        wait_js(page, "document.getElementById('run-status').textContent.includes('not a VOTable')", 120)
        page.click("#logout")
        wait_js(page, "document.body.dataset.user === ''")
        wait_js(page, f"!document.querySelector('#jobs li[data-url=\"{job}\"]')")
        login(page, tokens["ben"], names["ben"])
        wait_js(page, "document.getElementById('jobs-help').textContent.includes('as the server lists them')")
        assert page.locator(f'#jobs li[data-url="{job}"]').count() == 0
        assert page.locator(f'#jobs li[data-url="{job2}"]').count() == 0
        assert outside == [] and errors == []
    finally:
        ctx.close()


PLOT_QUERY = "SELECT TOP 500 hip, ra, dec, hpmag, plx\nFROM hipparcos.hip2\nWHERE hpmag < 6\nORDER BY hip"


def test_plot_histogram_and_scatter(browser, base_url, shots):
    truth = parse_votable(tap_sync(base_url, PLOT_QUERY).content).get_first_table().to_table()
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        page.fill("#editor", PLOT_QUERY)
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && !document.getElementById('run').disabled", 120)
        page.click("#tab-plot")
        page.select_option("#plot-x", label="hpmag")
        page.select_option("#plot-y", value="")
        page.fill("#plot-bins", "12")
        page.press("#plot-bins", "Enter")
        wait_js(page, "document.getElementById('plot').dataset.bins === '12'")
        assert page.locator("#plot rect.bar").count() == 12
        counts = page.evaluate("() => window.vostokPortal.plot.counts")
        mag = np.asarray(truth["hpmag"], dtype=float)
        expected, _ = np.histogram(mag, bins=12)
        assert counts == expected.tolist() and sum(counts) == 500
        assert page.inner_text("#plot-status") == "500 values in 12 bins."
        # A scatter of two columns: one point per row with both values.
        page.select_option("#plot-x", label="ra")
        page.select_option("#plot-y", label="dec")
        wait_js(page, "document.getElementById('plot').dataset.kind === 'scatter'")
        assert page.get_attribute("#plot", "data-points") == "500"
        d = page.get_attribute("#plot path.points", "d")
        assert d.count("M") == 500
        assert "view=plot" in page.url
        page.locator("#look").screenshot(path=str(shots / "portal-plot.png"))
        assert outside == [] and errors == []
    finally:
        ctx.close()


def test_accessibility_logged_in(browser, base_url, people):
    """axe-core on the logged-in page with the VOSpace browser showing a folder and a file's
    Manage box open, and the plot view: no serious or critical violation. (The page's
    Content-Security-Policy is bypassed here only: axe is injected as an inline script.)"""
    names, tokens, group = people
    cy = names["cy"]
    requests.put(f"{base_url}/vospace/nodes/{cy}/box", headers={
        "Authorization": f"Bearer {tokens['cy']}", "Content-Type": "text/xml"},
        data=(f'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
              f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode" '
              f'uri="vos://{AUTH}!vospace/{cy}/box"/>'), timeout=30).raise_for_status()
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    try:
        page = ctx.new_page()
        page.goto(base_url + "/")
        login(page, tokens["cy"], cy)
        manage(page, "box")
        page.fill("#editor", PLOT_QUERY)
        page.click("#run")
        wait_js(page, "window.vostokPortal.result && !document.getElementById('run').disabled", 120)
        page.click("#tab-plot")
        wait_js(page, "document.getElementById('plot').dataset.kind === 'histogram'")
        assert_no_serious_violations(page)
    finally:
        ctx.close()


# ---------------------------------------------------------------------------------------
# Login at an OpenID Connect issuer: authorization code + PKCE in the browser
# ---------------------------------------------------------------------------------------


class CodeIssuer:
    """A fake OpenID Connect issuer with a login that consents at once: discovery, keys, an
    authorization endpoint answering with a code (302 back to the page) and a token endpoint
    that gives a signed access token for the code only with the right PKCE verifier. The
    discovery document and the token endpoint allow the page's cross-origin reads (CORS)."""

    def __init__(self, user):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlencode, urlparse

        from cryptography.hazmat.primitives.asymmetric import rsa

        from test_vospace_oidc import rsa_jwk
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.user = user
        self.codes = {}  # code -> the authorization request's parameters
        self.exchanges = []  # (code, verifier, status)
        me = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Access-Control-Allow-Origin", "*")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                u = urlparse(self.path)
                if u.path == "/.well-known/openid-configuration":
                    self.answer(200, {"issuer": me.url, "jwks_uri": me.url + "/jwks",
                                      "authorization_endpoint": me.url + "/authorize",
                                      "token_endpoint": me.url + "/token",
                                      "code_challenge_methods_supported": ["S256"]})
                elif u.path == "/jwks":
                    self.answer(200, {"keys": [rsa_jwk(me.key, "k1")]})
                elif u.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(u.query).items()}
                    code = secrets.token_urlsafe(16)
                    me.codes[code] = q
                    back = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", back)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.answer(404, {"error": "not_found"})

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
                req = me.codes.pop(form.get("code"), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                ok = (req is not None and req["code_challenge_method"] == "S256"
                      and req["code_challenge"] == challenge
                      and form.get("redirect_uri") == req["redirect_uri"]
                      and form.get("client_id") == req["client_id"] == AUDIENCE
                      and form.get("grant_type") == "authorization_code")
                me.exchanges.append((form.get("code"), verifier, ok))
                if not ok:
                    self.answer(400, {"error": "invalid_grant"})
                    return
                self.answer(200, {"access_token": me.token(), "token_type": "Bearer",
                                  "expires_in": 3600})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self):
        from test_vospace_oidc import sign
        now = int(time.time())
        return sign(self.key, {"iss": self.url, "aud": AUDIENCE, "sub": "sub-" + self.user,
                               "preferred_username": self.user, "iat": now, "nbf": now,
                               "exp": now + 3600}, "k1")

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_login_at_the_issuer_with_pkce(browser, tmp_path):
    """With `[vospace.oidc]` configured, "Log in at …" leaves for the issuer's authorization
    endpoint with an S256 code challenge, comes back with a code, exchanges it (with the
    verifier) at the token endpoint, and the server accepts the access token: the user is
    provisioned and their home opens; the code is gone from the address, the token is only
    in sessionStorage."""
    from urllib.parse import parse_qs, urlparse

    from conftest import find_binary
    from vostok_helpers import OwnServer

    user = f"oidc{secrets.token_hex(3)}"
    issuer = CodeIssuer(user)
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "vostok.toml"
    config.write_text(f'demo = false\n\n[vospace.oidc]\nissuer = "{issuer.url}"\naudience = "{AUDIENCE}"\n')
    server = OwnServer(find_binary(), data, tmp_path / "server.log", config=config,
                       ready="/vospace/availability")
    server.start()
    try:
        base = server.base_url
        page_csp = requests.get(base + "/", timeout=30).headers["Content-Security-Policy"]
        assert f"connect-src 'self' data: blob: http://localhost:21012 http://127.0.0.1:21012 {issuer.url};" in page_csp
        me = requests.get(base + "/portal/api/me", timeout=30).json()
        assert me["oidc"] == {"issuer": issuer.url, "client_id": AUDIENCE}
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        seen, errors = [], []
        here = {urlparse(base).netloc, urlparse(issuer.url).netloc}

        def route(r):
            u = urlparse(r.request.url)
            seen.append(r.request.url)
            if u.scheme in ("data", "blob") or u.netloc in here:
                r.continue_()
            else:
                r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(base + "/?query=SELECT+1+AS+x")
            account_ready(page)
            button = page.locator("#login-issuer")
            assert button.is_visible()
            assert button.inner_text() == f"Log in at {urlparse(issuer.url).netloc}"
            button.click()
            # The page leaves for the issuer and comes back: polled through the navigations.
            from playwright.sync_api import Error as PlaywrightError
            end = time.monotonic() + 60
            while True:
                try:
                    if page.evaluate(f"() => document.body.dataset.user === {user!r} && document"
                                     f".getElementById('space-list').dataset.path === {user!r}"):
                        break
                except PlaywrightError as e:
                    if "navigation" not in str(e):
                        raise
                assert time.monotonic() < end, "the login at the issuer did not finish"
                page.wait_for_timeout(200)
            # The authorization request: a code challenge, never the verifier.
            auth = [u for u in seen if u.startswith(issuer.url + "/authorize")]
            assert len(auth) == 1
            q = {k: v[0] for k, v in parse_qs(urlparse(auth[0]).query).items()}
            assert q["response_type"] == "code" and q["client_id"] == AUDIENCE
            assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
            assert q["redirect_uri"] == base + "/"
            assert [ok for _, _, ok in issuer.exchanges] == [True]
            # The address is the page's again (no code), with the query it had.
            assert "code=" not in page.url and "state=" not in page.url
            assert page.input_value("#editor") == "SELECT 1 AS x"
            token = page.evaluate("() => sessionStorage.getItem('vostok.token')")
            assert token and token.count(".") == 2
            assert token not in page.evaluate("() => JSON.stringify(localStorage)")
            # The server knows the user: their home exists, and the token opens it.
            r = requests.get(f"{base}/vospace/nodes/{user}", timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            # A code replayed (or a wrong verifier) is refused by the issuer.
            replay = requests.post(issuer.url + "/token", data={
                "grant_type": "authorization_code", "code": issuer.exchanges[0][0],
                "code_verifier": issuer.exchanges[0][1], "redirect_uri": base + "/",
                "client_id": AUDIENCE}, timeout=30)
            assert replay.status_code == 400
            assert errors == []
        finally:
            ctx.close()
    finally:
        server.stop()
        issuer.stop()


def test_upload_50_mb_with_progress(browser, base_url, people, tmp_path):
    """A 50 MB file uploaded from the page: the progress bar moves during the upload (more
    than the final update) and ends full; the stored file has the file's MD5."""
    names, tokens, group = people
    cy = names["cy"]
    src = tmp_path / "big.bin"
    digest = hashlib.md5()
    with open(src, "wb") as f:
        for _ in range(50):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            f.write(chunk)
    ctx, page, outside, errors = open_page(browser, base_url)
    try:
        login(page, tokens["cy"], cy)
        page.set_input_files("#space-file", str(src))
        wait_row(page, "big.bin")
        status_is(page, "Uploaded big.bin.")
        value, top, updates = page.evaluate(
            "() => { const p = document.getElementById('space-progress');"
            " return [p.value, p.max, Number(p.dataset.updates)]; }")
        assert value == top == 50 * 1024 * 1024
        assert updates > 2
        r = node(base_url, tokens["cy"], f"{cy}/big.bin")
        assert r.status_code == 200 and digest.hexdigest() in r.text
        assert wait_row(page, "big.bin").locator("td").nth(1).inner_text() == "50.0 MiB"
        assert outside == [] and errors == []
    finally:
        ctx.close()
