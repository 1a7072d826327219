"""Every product's download carries its right `Digest: md5=…` (RFC 3230), whenever and however
it was ingested, and never a wrong one:

* a collection ingested (`vostok ingest`) while the server runs: its new index is read on the
  first download;
* a collection ingested before checksums were recorded (no products/_index/<c>/md5.tsv): the
  server computes the MD5 once, keeps it (md5-served.tsv) and gives it again after a restart;
* a stored file replaced in place with other bytes of the same size: the new bytes' digest,
  not the recorded one.

A server of its own (no demo) on a data folder of its own.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess

import pytest
import requests

from vostok_helpers import REPO, OwnServer

# Products ingested from, and replaced in place in, a local data folder.
pytestmark = pytest.mark.local_folder

DEMO = REPO / "data" / "demo"
FILES = ["images/irsa_sfd_dust_m51.fits", "spectra/keck_esi_q0100+13_flux.fits"]


def digest_of(data: bytes) -> str:
    return "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture(scope="module")
def own(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("vostok-digest")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n")
    s = OwnServer(server.proc.args[0], data, root / "server.log", config=config)
    s.root = root
    try:
        s.start(timeout=180)
        yield s
    finally:
        s.stop()


def ingest(s, folder, collection):
    p = subprocess.run([str(s.binary), "--config", str(s.config), "ingest", str(folder),
                        "--collection", collection, "--data-dir", str(s.data_dir)],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                       cwd=s.root)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]


def check(s, collection, name, data):
    url = f"{s.base_url}/data/{collection}/{name}"
    g = requests.get(url, timeout=60)
    h = requests.head(url, timeout=60)
    assert g.status_code == h.status_code == 200, (g.status_code, g.text[:200])
    assert g.content == data
    assert g.headers.get("Digest") == digest_of(data), (url, g.headers)
    assert h.headers.get("Digest") == digest_of(data), (url, h.headers)


def source(tmp, name):
    folder = tmp / name
    folder.mkdir()
    for f in FILES:
        shutil.copy(DEMO / f, folder / f.rsplit("/", 1)[1])
    return folder


def test_ingested_while_running(own, tmp_path):
    folder = source(tmp_path, "live")
    ingest(own, folder, "live")
    for f in folder.iterdir():
        check(own, "live", f.name, f.read_bytes())


def test_collection_without_recorded_checksums(own, tmp_path):
    folder = source(tmp_path, "old")
    ingest(own, folder, "old")
    index = own.data_dir / "products" / "_index" / "old"
    # As a collection ingested before md5.tsv was written.
    (index / "md5.tsv").unlink()
    own.stop()
    own.start(timeout=180)
    for f in folder.iterdir():
        check(own, "old", f.name, f.read_bytes())
    served = (index / "md5-served.tsv").read_text()
    for f in folder.iterdir():
        assert hashlib.md5(f.read_bytes()).hexdigest() in served, served
    computed = own.log.read_text(errors="replace").count("MD5 computed")
    assert computed == len(FILES), own.tail()
    # Kept: a restarted server gives the same digests (without computing them again).
    own.stop()
    own.start(timeout=180)
    for f in folder.iterdir():
        check(own, "old", f.name, f.read_bytes())
    assert own.log.read_text(errors="replace").count("MD5 computed") == computed, own.tail()


def test_file_replaced_in_place_never_gets_the_old_digest(own, tmp_path):
    folder = source(tmp_path, "swap")
    ingest(own, folder, "swap")
    name = FILES[0].rsplit("/", 1)[1]
    stored = own.data_dir / "products" / "swap" / name
    old = stored.read_bytes()
    check(own, "swap", name, old)
    # Same size, other bytes (the last byte of the data changed).
    new = old[:-1] + bytes([old[-1] ^ 0xFF])
    stored.write_bytes(new)
    check(own, "swap", name, new)
