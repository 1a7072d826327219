"""Text outside ASCII in a published catalog reaches clients unchanged.

VOTable `char` is ASCII and a result's FIELD is written before its first value, so ingest
decides from the content: a string column holding a non-ASCII character is declared
`unicodeChar` (in TAP_SCHEMA and in every result's FIELD), and its text arrives intact in
TABLEDATA and BINARY2 (astropy's parser, STILTS votlint). An ASCII-only string column stays
`char`. The catalog is ingested with `vostok ingest` from a CSV file the test writes.
"""

import subprocess

import pytest

from conftest import find_binary
from vostok_helpers import OwnServer, parse_votable, stilts, storage_config, tap_sync

ROWS = [
    ("M31", "Andromeda", 10.68, 41.27),
    ("M45", "Pl\u00e9iades \u2013 Taureau", 56.75, 24.12),
    ("NGC 7000", "N\u00e9buleuse \u00ab Am\u00e9rique du Nord \u00bb", 314.75, 44.52),
    ("M42", "\u7375\u6237\u5ea7\u5927\u661f\u4e91", 83.82, -5.39),
    ("NGC 104", None, 6.02, -72.08),
]

META = """[table]
schema = "uni"
name = "places"
description = "Named places on the sky, with names in several scripts"
ra = "ra"
dec = "dec"
id = "name"

[source]
path = "places.csv"
format = "csv"

[[columns]]
name = "name"
type = "string"

[[columns]]
name = "place"
type = "string"

[[columns]]
name = "ra"
type = "float64"
unit = "deg"

[[columns]]
name = "dec"
type = "float64"
unit = "deg"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("vostok-unicode")
    src, data = root / "src", root / "data"
    src.mkdir()
    lines = ["name,place,ra,dec"]
    for name, place, ra, dec in ROWS:
        lines.append(f'{name},{"" if place is None else place},{ra},{dec}')
    (src / "places.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (src / "places.toml").write_text(META, encoding="utf-8")
    binary = find_binary()
    data_arg, config = storage_config(data, None)
    cmd = [str(binary)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += ["ingest", str(src / "places.toml"), "--data-dir", data_arg]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL, cwd=root)
    assert p.returncode == 0, f"vostok ingest failed:\n{p.stdout}\n{p.stderr}"
    s = OwnServer(binary, data, root / "server.log")
    s.start()
    yield s
    s.stop()


def _places(server, fmt):
    r = tap_sync(server.base_url, "SELECT name, place FROM uni.places ORDER BY ra",
                 RESPONSEFORMAT=fmt)
    assert r.status_code == 200, r.text[:2000]
    return r


def test_tap_schema_declares_the_column_unicode_char(server):
    r = tap_sync(server.base_url,
                 "SELECT column_name, datatype FROM TAP_SCHEMA.columns "
                 "WHERE table_name = 'uni.places' ORDER BY column_name",
                 RESPONSEFORMAT="votable")
    assert r.status_code == 200, r.text[:2000]
    t = parse_votable(r.content).get_first_table().to_table()
    got = {str(n): str(d) for n, d in zip(t["column_name"], t["datatype"])}
    assert got == {"dec": "double", "name": "char", "place": "unicodeChar", "ra": "double"}


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_text_arrives_unchanged(server, fmt):
    r = _places(server, fmt)
    table = parse_votable(r.content).get_first_table()
    fields = {f.name: f.datatype for f in table.fields}
    assert fields == {"name": "char", "place": "unicodeChar"}
    t = table.to_table()
    expected = sorted(ROWS, key=lambda row: row[2])
    assert [str(v) for v in t["name"]] == [row[0] for row in expected]
    # VOTable writes a null string as an empty value (no distinct null for char/unicodeChar).
    assert [str(v) for v in t["place"].filled("")] == [row[1] or "" for row in expected]


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_votlint_accepts_the_result(server, fmt, tmp_path):
    path = tmp_path / "places.vot"
    path.write_bytes(_places(server, fmt).content)
    p = stilts("votlint", "validate=true", f"votable={path}", timeout=120)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not out, f"votlint reported:\n{out[:4000]}"


def test_the_missing_place_is_null(server):
    r = tap_sync(server.base_url, "SELECT name FROM uni.places WHERE place IS NULL",
                 RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text[:2000]
    assert r.content.decode("utf-8").split("\n")[:2] == ["name", "NGC 104"]


def test_queries_compare_the_true_text(server):
    r = tap_sync(server.base_url,
                 "SELECT name FROM uni.places WHERE place LIKE 'Pl\u00e9iades%'",
                 RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text[:2000]
    assert r.content.decode("utf-8").split() == ["name", "M45"]

