"""HTTP every client relies on: HEAD on every GET resource answers as the GET does, without a
body; CORS preflight; /data files carry their RFC 3230 Digest; a path below a stored file is a
404, never a 5xx."""
import base64
import hashlib

import pytest
import requests

from vostok_helpers import data_files, data_read

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
    files = sorted(name for name in data_files(server.data_dir, "products")
                   if ".fits" in name and not name.startswith("_index/"))
    assert files, "the demo products are ingested"
    return data_read(server.data_dir, f"products/{files[0]}"), files[0]


def test_data_digest_on_get_and_head(server):
    data, rel = _a_product(server)
    want = "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
    g = requests.get(f"{server.base_url}/data/{rel}", timeout=60)
    h = requests.head(f"{server.base_url}/data/{rel}", timeout=60)
    assert g.status_code == h.status_code == 200
    assert g.headers.get("Digest") == want
    assert h.headers.get("Digest") == want
    assert h.headers.get("Content-Length") == str(len(data))


@pytest.mark.parametrize("suffix", ["/properties", "/x/y", "/"])
def test_path_below_a_file_is_not_found(server, suffix):
    _, rel = _a_product(server)
    r = requests.get(f"{server.base_url}/data/{rel}{suffix}", timeout=30)
    assert r.status_code == 404, r.text


HEADERS = ("Content-Type", "Content-Length", "Digest", "ETag", "Content-Disposition")


def assert_head_like_get(url, headers=None):
    g = requests.get(url, timeout=60, headers=headers)
    h = requests.head(url, timeout=60, headers=headers)
    assert h.status_code == g.status_code, (url, g.status_code, h.status_code)
    assert h.content == b"", url
    for name in HEADERS:
        if name == "Content-Length" and "Content-Length" not in g.headers:
            continue  # a streamed (chunked) GET; its HEAD may not know the length
        assert h.headers.get(name) == g.headers.get(name), (url, name, g.headers, h.headers)
    return g


@pytest.mark.parametrize("path", [
    "/scs/hipparcos.hip2?RA=10&DEC=10&SR=1",
    "/scs/gaia.dr3_bright?RA=10&DEC=10&SR=0.5&RESPONSEFORMAT=csv",
    "/scs/hipparcos.hip2/capabilities",
    "/scs/hipparcos.hip2/availability",
    "/scs/nosuch/availability",
    "/scs/hipparcos.hip2?RA=x&DEC=10&SR=1",
    "/datalink/capabilities",
    "/datalink/availability",
    "/datalink/links?ID=ivo%3A%2F%2Fvostok.example%2Fdemo%3Fimages%2Firsa_sfd_dust_m51.fits",
    "/datalink/links?ID=ivo%3A%2F%2Fnosuch%2Fx",
    "/datalink/links",
    "/datalink/preview?ID=ivo%3A%2F%2Fvostok.example%2Fdemo%3Fimages%2Firsa_sfd_dust_m51.fits",
    "/datalink/header?ID=ivo%3A%2F%2Fvostok.example%2Fdemo%3Fimages%2Firsa_sfd_dust_m51.fits",
    "/vospace/capabilities",
    "/vospace/nodes/",
    "/vospace/nodes/nosuch",
])
def test_head_mirrors_get_on_services(server, path):
    assert_head_like_get(server.base_url + path)


def test_head_on_vospace_node_and_data(server):
    """A node document, the node's bytes (/vospace/files/...) and a negotiated pull URL: HEAD
    answers with GET's status and headers, the bytes' Digest included."""
    import secrets

    from test_vospace import add_user, node_uri
    name = f"head{secrets.token_hex(3)}"
    auth = {"Authorization": f"Bearer {add_user(server.data_dir, name)}"}
    base = server.base_url
    rel = f"{name}/h.bin"
    data = b"HEAD mirrors GET\n" * 1000
    r = requests.put(f"{base}/vospace/nodes/{rel}", timeout=60, headers=auth,
                     data=f'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
                          f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                          f'xsi:type="vos:DataNode" uri="{node_uri(rel)}"/>')
    assert r.status_code in (200, 201), r.text[:300]
    r = requests.post(f"{base}/vospace/synctrans", timeout=60, headers=auth, allow_redirects=False,
                      params={"TARGET": node_uri(rel), "DIRECTION": "pushToVoSpace",
                              "PROTOCOL": "ivo://ivoa.net/vospace/core#httpput",
                              "REQUEST": "redirect"})
    assert requests.put(r.headers["Location"], data=data, timeout=60,
                        headers=auth).status_code in (200, 201, 204)
    want = "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
    assert_head_like_get(f"{base}/vospace/nodes/{rel}", auth)
    assert_head_like_get(f"{base}/vospace/nodes/{name}?detail=max", auth)
    g = assert_head_like_get(f"{base}/vospace/files/{rel}", auth)
    assert g.status_code == 200 and g.content == data and g.headers.get("Digest") == want
    r = requests.post(f"{base}/vospace/synctrans", timeout=60, headers=auth, allow_redirects=False,
                      params={"TARGET": node_uri(rel), "DIRECTION": "pullFromVoSpace",
                              "PROTOCOL": "ivo://ivoa.net/vospace/core#httpget",
                              "REQUEST": "redirect"})
    g = assert_head_like_get(r.headers["Location"], auth)
    assert g.status_code == 200 and g.content == data and g.headers.get("Digest") == want
    # Someone else's node: the same refusal for HEAD as for GET.
    assert_head_like_get(f"{base}/vospace/nodes/{rel}")
    assert_head_like_get(f"{base}/vospace/files/{rel}")
    requests.delete(f"{base}/vospace/nodes/{rel}", timeout=60, headers=auth)
