"""/tap/examples (DALI examples, XHTML+RDFa): every worked query is accepted by STILTS's own
ADQL parser (`stilts tapquery parse=true`) and by `vostok adql check`, runs through /tap/sync,
and gives a non-empty answer; the document is well-formed XHTML with the RDFa DALI asks for."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import find_binary
from vostok_helpers import http_get, stilts, tap_sync

XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def examples(base_url):
    r = http_get(base_url + "/tap/examples")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/xhtml+xml")
    root = ET.fromstring(r.content)
    body = root.find(f"{XHTML}body")
    assert body is not None and body.get("vocab") == "http://www.ivoa.net/rdf/examples#"
    out = {}
    for div in root.iter(f"{XHTML}div"):
        if div.get("typeof") != "example":
            continue
        ex_id = div.get("id")
        assert div.get("resource") == f"#{ex_id}"
        props = {}
        for el in div.iter():
            if el.get("property"):
                props.setdefault(el.get("property"), []).append("".join(el.itertext()))
        assert len(props.get("name", [])) == 1 and len(props.get("query", [])) == 1, ex_id
        assert props.get("table"), ex_id
        out[ex_id] = props["query"][0]
    return out


def test_a_dozen_examples_declared_in_capabilities(base_url, examples):
    assert len(examples) >= 12, sorted(examples)
    caps = http_get(base_url + "/tap/capabilities").text
    assert 'standardID="ivo://ivoa.net/std/DALI#examples"' in caps
    assert f"{base_url}/tap/examples</accessURL>" in caps


def test_every_example_parses_in_stilts_and_vostok_and_runs(base_url, examples):
    for ex_id, query in examples.items():
        ours = subprocess.run([str(find_binary()), "adql", "check"], input=query,
                              capture_output=True, text=True, timeout=60)
        assert ours.stdout.strip() == "ok", f"{ex_id}: vostok adql check: {ours.stdout}"
        # STILTS parses the query itself (against the service's declared tables and UDFs)
        # before running it; omode=count prints the number of rows.
        p = stilts("tapquery", f"tapurl={base_url}/tap", f"adql={query}", "parse=true",
                   "sync=true", "maxrec=100000", "omode=count", timeout=300)
        assert p.returncode == 0, f"{ex_id}: stilts tapquery parse=true failed:\n{p.stderr[-2000:]}"
        r = tap_sync(base_url, query, RESPONSEFORMAT="csv", MAXREC="100000")
        assert r.status_code == 200, f"{ex_id}: {r.text[:500]}"
        assert len(r.text.strip().splitlines()) >= 2, f"{ex_id} returned no rows"


def test_stilts_parser_and_vostok_agree_on_a_non_adql_query(base_url):
    # The other direction: what STILTS's parser refuses, vostok refuses too.
    query = "SELECT TOP 3 hip FROM hipparcos.hip2 LIMIT 3"
    p = stilts("tapquery", f"tapurl={base_url}/tap", f"adql={query}", "parse=true",
               "sync=true", "omode=count", timeout=300)
    assert p.returncode != 0
    ours = subprocess.run([str(find_binary()), "adql", "check"], input=query,
                          capture_output=True, text=True, timeout=60)
    assert ours.returncode == 1
