"""HTTP every client relies on: HEAD on every GET resource answers as the GET does, without a
body; CORS preflight; /data files carry their RFC 3230 Digest; a path below a stored file is a
404, never a 5xx."""
import base64
import hashlib

import pytest
import requests

GET_PATHS = ["/", "/tap/availability", "/tap/capabilities", "/tap/tables", "/tap/examples",
             "/ssa", "/sia/v2/query"]


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_mirrors_get(server, path):
    g = requests.get(server.base_url + path, timeout=60)
    h = requests.head(server.base_url + path, timeout=60)
    assert h.status_code == g.status_code, path
    assert h.content == b""
    assert h.headers.get("Content-Type") == g.headers.get("Content-Type")


def test_cors_preflight(server):
    r = requests.options(server.base_url + "/tap/sync", timeout=30,
                         headers={"Origin": "http://example.org",
                                  "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin")


def _a_product(server):
    products = server.data_dir / "products"
    files = sorted(p for p in products.rglob("*.fits*")
                   if p.is_file() and "_index" not in p.parts)
    assert files, "the demo products are ingested"
    return files[0], files[0].relative_to(products).as_posix()


def test_data_digest_on_get_and_head(server):
    f, rel = _a_product(server)
    want = "md5=" + base64.b64encode(hashlib.md5(f.read_bytes()).digest()).decode()
    g = requests.get(f"{server.base_url}/data/{rel}", timeout=60)
    h = requests.head(f"{server.base_url}/data/{rel}", timeout=60)
    assert g.status_code == h.status_code == 200
    assert g.headers.get("Digest") == want
    assert h.headers.get("Digest") == want
    assert h.headers.get("Content-Length") == str(f.stat().st_size)


@pytest.mark.parametrize("suffix", ["/properties", "/x/y", "/"])
def test_path_below_a_file_is_not_found(server, suffix):
    _, rel = _a_product(server)
    r = requests.get(f"{server.base_url}/data/{rel}{suffix}", timeout=30)
    assert r.status_code == 404, r.text
