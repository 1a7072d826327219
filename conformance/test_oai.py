"""The publishing registry at /oai (OAI-PMH 2.0, IVOA Registry Interfaces): every verb, every
error case, each answer valid against the OAI-PMH, RegistryInterface, VORegistry, VOResource and
VODataService schemas (xmllint, offline catalog), and the TAP record's tableset against
/tap/tables."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
import requests

from vostok_helpers import SCHEMAS, xmllint_schema

OAI = "{http://www.openarchives.org/OAI/2.0/}"
RI = "{http://www.ivoa.net/xml/RegistryInterface/v1.0}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
DC = "{http://purl.org/dc/elements/1.1/}"
VS_TABLES = "{http://www.ivoa.net/xml/VOSITables/v1.0}tableset"


def _oai(base_url, post=False, **args):
    if post:
        r = requests.post(f"{base_url}/oai", data=args, timeout=60)
    else:
        r = requests.get(f"{base_url}/oai", params=args, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/xml"), r.headers
    return r


def _valid(r, tmp_path, name):
    path = tmp_path / f"{name}.xml"
    path.write_bytes(r.content)
    p = xmllint_schema(path, SCHEMAS / "local-all-vo.xsd")
    assert p.returncode == 0, f"{name} does not validate:\n{p.stderr[-3000:]}"
    return ET.fromstring(r.content)


def _error(root):
    errors = root.findall(f"{OAI}error")
    return [e.get("code") for e in errors]


@pytest.fixture(scope="module")
def records(base_url):
    root = ET.fromstring(_oai(base_url, verb="ListRecords", metadataPrefix="ivo_vor").content)
    out = {}
    for rec in root.iter(f"{OAI}record"):
        ident = rec.find(f"{OAI}header/{OAI}identifier").text
        out[ident] = rec.find(f"{OAI}metadata/{RI}Resource")
    return out


def test_identify(base_url, tmp_path):
    root = _valid(_oai(base_url, verb="Identify"), tmp_path, "identify")
    ident = root.find(f"{OAI}Identify")
    assert ident.find(f"{OAI}baseURL").text == f"{base_url}/oai"
    assert ident.find(f"{OAI}protocolVersion").text == "2.0"
    assert ident.find(f"{OAI}granularity").text == "YYYY-MM-DDThh:mm:ssZ"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        ident.find(f"{OAI}earliestDatestamp").text)
    reg = ident.find(f"{OAI}description/{RI}Resource")
    assert reg.get(XSI_TYPE) == "vg:Registry"
    harvest = [c for c in reg.findall("capability")
               if c.get("standardID") == "ivo://ivoa.net/std/Registry"]
    assert len(harvest) == 1 and harvest[0].get(XSI_TYPE) == "vg:Harvest"
    assert harvest[0].find("interface/accessURL").text == f"{base_url}/oai"
    assert reg.find("managedAuthority").text == "vostok.example"
    # The same registry record is harvested.
    again = _oai(base_url, verb="GetRecord", metadataPrefix="ivo_vor",
                 identifier=reg.find("identifier").text)
    assert ET.fromstring(again.content).find(f".//{RI}Resource/identifier").text == \
        reg.find("identifier").text


def test_post_form_is_the_same_as_get(base_url):
    get = ET.fromstring(_oai(base_url, verb="ListIdentifiers", metadataPrefix="oai_dc").content)
    post = ET.fromstring(_oai(base_url, post=True, verb="ListIdentifiers",
                              metadataPrefix="oai_dc").content)
    ids = lambda root: [e.text for e in root.iter(f"{OAI}identifier")]  # noqa: E731
    assert ids(get) == ids(post) and len(ids(get)) > 5


def test_list_metadata_formats(base_url, tmp_path):
    root = _valid(_oai(base_url, verb="ListMetadataFormats"), tmp_path, "formats")
    prefixes = [e.text for e in root.iter(f"{OAI}metadataPrefix")]
    assert prefixes == ["ivo_vor", "oai_dc"]
    root = _valid(_oai(base_url, verb="ListMetadataFormats", identifier="ivo://vostok.example/tap"),
                  tmp_path, "formats-id")
    assert [e.text for e in root.iter(f"{OAI}metadataPrefix")] == ["ivo_vor", "oai_dc"]


def test_list_sets(base_url, tmp_path):
    root = _valid(_oai(base_url, verb="ListSets"), tmp_path, "sets")
    assert [e.text for e in root.iter(f"{OAI}setSpec")] == ["ivo_managed"]


def test_list_identifiers_and_records_agree(base_url, tmp_path, records):
    root = _valid(_oai(base_url, verb="ListIdentifiers", metadataPrefix="ivo_vor", set="ivo_managed"),
                  tmp_path, "identifiers")
    headers = root.findall(f"{OAI}ListIdentifiers/{OAI}header")
    assert [h.find(f"{OAI}identifier").text for h in headers] == list(records)
    assert all(h.find(f"{OAI}setSpec").text == "ivo_managed" for h in headers)
    _valid(_oai(base_url, verb="ListRecords", metadataPrefix="ivo_vor"), tmp_path, "records")
    root = _valid(_oai(base_url, verb="ListRecords", metadataPrefix="oai_dc"), tmp_path, "records-dc")
    dc_ids = [e.text for e in root.iter(f"{DC}identifier")]
    assert dc_ids == list(records)


def test_the_records_and_their_types(base_url, records):
    types = {k: v.get(XSI_TYPE) for k, v in records.items()}
    assert types["ivo://vostok.example"] == "vg:Authority"
    assert types["ivo://vostok.example/registry"] == "vg:Registry"
    assert types["ivo://vostok.example/tap"] == "vs:CatalogService"
    tables = [n.text for n in ET.fromstring(requests.get(f"{base_url}/tap/tables", timeout=60)
                                            .content).iter("name")]
    for t in ("hipparcos.hip2", "gaia.dr3_bright"):
        assert t in tables
        rec = records[f"ivo://vostok.example/scs/{t}"]
        cap = rec.find("capability[@standardID='ivo://ivoa.net/std/ConeSearch']")
        assert cap is not None and cap.get(XSI_TYPE) == "cs:ConeSearch"
        assert cap.find("interface/accessURL").text.startswith(f"{base_url}/scs/{t}")
        assert [e.text for e in rec.findall("tableset/schema/table/name")] == [t]
    standards = {
        "ivo://vostok.example/sia/v2": "ivo://ivoa.net/std/SIA#query-2.0",
        "ivo://vostok.example/sia/v1": "ivo://ivoa.net/std/SIA",
        "ivo://vostok.example/ssa": "ivo://ivoa.net/std/SSA",
        "ivo://vostok.example/datalink": "ivo://ivoa.net/std/DataLink#links-1.1",
        "ivo://vostok.example/vospace": "ivo://ivoa.net/std/VOSpace/v2.0#nodes",
    }
    for ident, std in standards.items():
        ids = [c.get("standardID") for c in records[ident].findall("capability")]
        assert std in ids, (ident, ids)
    tap = records["ivo://vostok.example/tap"]
    cap = tap.find("capability[@standardID='ivo://ivoa.net/std/TAP']")
    assert cap.get(XSI_TYPE) == "tr:TableAccess"
    assert cap.find("interface/accessURL").text == f"{base_url}/tap"
    for rec in records.values():
        assert rec.find("curation/publisher").text
        assert rec.find("curation/contact/email").text
        assert rec.find("content/subject").text
        assert rec.get("created") == rec.get("updated")


def test_the_tap_tableset_is_tap_tables(base_url, records):
    vosi = ET.fromstring(requests.get(f"{base_url}/tap/tables", timeout=60).content)
    assert vosi.tag == VS_TABLES

    def columns(tableset):
        out = {}
        for t in tableset.iter("table"):
            out[t.find("name").text] = [
                (c.find("name").text, c.find("dataType").text,
                 getattr(c.find("unit"), "text", None), getattr(c.find("ucd"), "text", None),
                 getattr(c.find("description"), "text", None))
                for c in t.findall("column")]
        return out

    served = columns(vosi)
    published = columns(records["ivo://vostok.example/tap"].find("tableset"))
    assert list(published) == list(served) and len(served) >= 4
    assert published == served


def test_datestamps_are_stable_and_filter(base_url, tmp_path):
    def stamps(**args):
        root = ET.fromstring(_oai(base_url, verb="ListIdentifiers", metadataPrefix="ivo_vor",
                                  **args).content)
        return [e.text for e in root.iter(f"{OAI}datestamp")], _error(root)

    first, _ = stamps()
    second, _ = stamps()
    assert first == second and len(set(first)) == 1
    stamp = datetime.strptime(first[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    assert stamps(**{"from": first[0], "until": first[0]})[0] == first
    assert stamps(**{"from": stamp.strftime("%Y-%m-%d"),
                     "until": stamp.strftime("%Y-%m-%d")})[0] == first
    later = fmt(stamp + timedelta(seconds=1))
    earlier = fmt(stamp - timedelta(seconds=1))
    assert stamps(**{"from": later}) == ([], ["noRecordsMatch"])
    assert stamps(until=earlier) == ([], ["noRecordsMatch"])
    assert stamps(until=(stamp - timedelta(days=1)).strftime("%Y-%m-%d")) == ([], ["noRecordsMatch"])
    r = _oai(base_url, verb="ListRecords", metadataPrefix="ivo_vor", **{"from": later})
    _valid(r, tmp_path, "no-records")


ERRORS = [
    ({}, "badVerb"),
    ({"verb": "Frobnicate"}, "badVerb"),
    ({"verb": "Identify", "set": "ivo_managed"}, "badArgument"),
    ({"verb": "ListRecords"}, "badArgument"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor", "colour": "red"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2020-13-01"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2020-01-01T00:00:00"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2020-01-01",
      "until": "2030-01-01T00:00:00Z"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "2030-01-01",
      "until": "2020-01-01"}, "badArgument"),
    ({"verb": "GetRecord", "metadataPrefix": "ivo_vor"}, "badArgument"),
    ({"verb": "GetRecord", "identifier": "ivo://vostok.example/tap"}, "badArgument"),
    ({"verb": "ListRecords", "resumptionToken": "x", "metadataPrefix": "ivo_vor"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "metadataPrefix": "marc21", "identifier": "ivo://vostok.example/tap"},
     "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "metadataPrefix": "ivo_vor", "identifier": "ivo://vostok.example/nope"},
     "idDoesNotExist"),
    ({"verb": "ListMetadataFormats", "identifier": "ivo://elsewhere/tap"}, "idDoesNotExist"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor", "set": "other"}, "noRecordsMatch"),
    ({"verb": "ListIdentifiers", "resumptionToken": "abc"}, "badResumptionToken"),
    ({"verb": "ListRecords", "resumptionToken": "abc"}, "badResumptionToken"),
    ({"verb": "ListSets", "resumptionToken": "abc"}, "badResumptionToken"),
]


@pytest.mark.parametrize("args,code", ERRORS, ids=[f"{c}-{i}" for i, (_, c) in enumerate(ERRORS)])
def test_errors(base_url, tmp_path, args, code):
    root = _valid(_oai(base_url, **args), tmp_path, "error")
    assert _error(root) == [code]
    request = root.find(f"{OAI}request")
    assert request.text == f"{base_url}/oai"
    # After badVerb and badArgument the request element holds the base URL only.
    if code in ("badVerb", "badArgument"):
        assert request.attrib == {}
    else:
        assert request.get("verb") == args["verb"]


def test_repeated_arguments_are_errors(base_url, tmp_path):
    r = requests.get(f"{base_url}/oai?verb=ListRecords&metadataPrefix=ivo_vor&metadataPrefix=oai_dc",
                     timeout=60)
    assert _error(_valid(r, tmp_path, "repeat")) == ["badArgument"]
    r = requests.get(f"{base_url}/oai?verb=Identify&verb=Identify", timeout=60)
    assert _error(_valid(r, tmp_path, "repeat-verb")) == ["badVerb"]


def test_get_record_in_both_formats(base_url, tmp_path):
    for prefix in ("ivo_vor", "oai_dc"):
        r = _oai(base_url, verb="GetRecord", metadataPrefix=prefix,
                 identifier="ivo://vostok.example/tap")
        root = _valid(r, tmp_path, f"get-{prefix}")
        assert root.find(f"{OAI}GetRecord/{OAI}record/{OAI}header/{OAI}identifier").text == \
            "ivo://vostok.example/tap"
    assert root.find(f".//{DC}title").text.endswith("TAP service")
