"""OpenCADC's `vcp` (vos 3.7) copies files above its 5 MiB threshold up and back down.

Above 5 MiB the client sends no Content-MD5 and expects the server's `Digest: md5=…`
(RFC 3230) on the PUT response; on the way down it compares the bytes it read with the GET's
Digest. Both copies must exit 0, and the stored node and the file brought back must have the
source's MD5. The 200 MB case is written in chunks (never held in memory) and every local and
stored copy is removed afterwards, also when the test fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

import pytest
import requests

from test_vospace import AUTHORITY, P_LENGTH, P_MD5, VosCli, add_user, node_uri

MIB = 1024 * 1024
CHUNK = 4 * MIB


def write_random(path, size):
    """A file of `size` random bytes, written in chunks; returns its MD5 (hex)."""
    h = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(CHUNK, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def file_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def vuser(server):
    name = f"big{secrets.token_hex(3)}"
    return name, add_user(server.data_dir, name)


def node_props(base_url, token, path):
    import xml.etree.ElementTree as ET
    r = requests.get(f"{base_url}/vospace/nodes/{path}", timeout=60,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    ns = "{http://www.ivoa.net/xml/VOSpace/v2.0}"
    return {p.get("uri"): (p.text or "")
            for p in ET.fromstring(r.content).iter(f"{ns}property")}


# 6 MB: just above the client's 5 MiB MD5 threshold; 200 MB: a real data file.
@pytest.mark.parametrize("size", [6_000_000, 200_000_000], ids=["6MB", "200MB"])
@pytest.mark.timeout(1200)
def test_vcp_up_and_down(base_url, vuser, tmp_path, size):
    name, token = vuser
    vos = VosCli(base_url, token, tmp_path)
    local = tmp_path / "up.bin"
    back = tmp_path / "down.bin"
    rel = f"{name}/f{size}.bin"
    remote = f"vos://{AUTHORITY}/{rel}"
    try:
        want = write_random(local, size)
        # `vcp` exits non-zero on an MD5 mismatch (exit 14 on a missing upload Digest).
        vos("vcp", local, remote, timeout=900)
        props = node_props(base_url, token, rel)
        assert props.get(P_MD5) == want, props
        assert props.get(P_LENGTH) == str(size), props
        local.unlink()

        # The download side: GET (and HEAD) of the node's bytes carry the Digest vcp checks.
        head = requests.head(f"{base_url}/vospace/nodes/{rel}", timeout=60,
                             headers={"Authorization": f"Bearer {token}"})
        assert head.status_code == 200
        vos("vcp", remote, back, timeout=900)
        assert back.stat().st_size == size
        assert file_md5(back) == want
    finally:
        for f in (local, back):
            f.unlink(missing_ok=True)
        requests.delete(f"{base_url}/vospace/nodes/{rel}", timeout=120,
                        headers={"Authorization": f"Bearer {token}"})


def test_download_digest_matches_stored_md5(base_url, vuser, tmp_path):
    """The pull URL a transfer negotiates answers GET and HEAD with the node's MD5 as an RFC 3230
    Digest (base64), the form `vcp` verifies a download against."""
    name, token = vuser
    rel = f"{name}/digest.bin"
    data = os.urandom(6 * MIB + 1)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        r = requests.put(f"{base_url}/vospace/nodes/{rel}", timeout=60, headers=auth,
                         data=f'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
                              f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                              f'xsi:type="vos:DataNode" uri="{node_uri(rel)}"/>')
        assert r.status_code in (200, 201), r.text[:300]
        r = requests.post(f"{base_url}/vospace/synctrans", timeout=60, headers=auth,
                          params={"TARGET": node_uri(rel), "DIRECTION": "pushToVoSpace",
                                  "PROTOCOL": "ivo://ivoa.net/vospace/core#httpput",
                                  "REQUEST": "redirect"}, allow_redirects=False)
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        put = requests.put(r.headers["Location"], data=data, timeout=120, headers=auth)
        assert put.status_code in (200, 201, 204), put.text[:300]
        want = "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
        assert put.headers.get("Digest") == want

        r = requests.post(f"{base_url}/vospace/synctrans", timeout=60, headers=auth,
                          params={"TARGET": node_uri(rel), "DIRECTION": "pullFromVoSpace",
                                  "PROTOCOL": "ivo://ivoa.net/vospace/core#httpget",
                                  "REQUEST": "redirect"}, allow_redirects=False)
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        url = r.headers["Location"]
        g = requests.get(url, timeout=120, headers=auth)
        h = requests.head(url, timeout=60, headers=auth)
        assert g.status_code == h.status_code == 200
        assert g.content == data and h.content == b""
        assert g.headers.get("Digest") == h.headers.get("Digest") == want
        assert h.headers.get("Content-Length") == str(len(data))
    finally:
        requests.delete(f"{base_url}/vospace/nodes/{rel}", timeout=60, headers=auth)
