"""The publishing registry at /oai (OAI-PMH 2.0, IVOA Registry Interfaces): every verb, every
error case, each answer valid against the OAI-PMH, RegistryInterface, VORegistry, VOResource and
VODataService schemas (xmllint, offline catalog), the TAP record's tableset against
/tap/tables, the records' coverage against the served MOCs (mocpy), datestamps that select with
from/until and survive a restart, and paged lists with resumption tokens (every page
validated)."""

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
        # Queried through TAP too: an auxiliary capability, as DaCHS gives its tables.
        aux = rec.find("capability[@standardID='ivo://ivoa.net/std/TAP#aux']")
        assert aux is not None and aux.find("interface/accessURL").text == f"{base_url}/tap"
        assert aux.find("interface").get("role") == "std"
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


def _stamps(base_url, **args):
    """{identifier: datestamp} of ListIdentifiers (every page), and the error codes."""
    out, errors = {}, []
    args = dict(verb="ListIdentifiers", metadataPrefix="ivo_vor", **args)
    while True:
        root = ET.fromstring(_oai(base_url, **args).content)
        errors += _error(root)
        for h in root.iter(f"{OAI}header"):
            out[h.find(f"{OAI}identifier").text] = h.find(f"{OAI}datestamp").text
        token = root.find(f".//{OAI}resumptionToken")
        if token is None or not token.text:
            return out, errors
        args = dict(verb="ListIdentifiers", resumptionToken=token.text)


def _time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _fmt(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_datestamps_are_stable_and_filter(base_url, tmp_path):
    first, _ = _stamps(base_url)
    second, _ = _stamps(base_url)
    assert first == second and len(first) > 5
    now = datetime.now(timezone.utc)
    assert all(_time(t) <= now for t in first.values())
    # Identify's earliestDatestamp is the earliest record's.
    ident = ET.fromstring(_oai(base_url, verb="Identify").content)
    assert ident.find(f".//{OAI}earliestDatestamp").text == min(first.values())
    # from and until select by each record's own datestamp, at both granularities.
    for stamp in sorted(set(first.values())):
        t = _time(stamp)
        since = {k for k, v in first.items() if _time(v) >= t}
        upto = {k for k, v in first.items() if _time(v) <= t}
        assert set(_stamps(base_url, **{"from": stamp})[0]) == since
        assert set(_stamps(base_url, until=stamp)[0]) == upto
        day = t.strftime("%Y-%m-%d")
        on_day = {k for k, v in first.items() if v.startswith(day)}
        assert set(_stamps(base_url, **{"from": day, "until": day})[0]) == on_day
    latest, earliest = max(map(_time, first.values())), min(map(_time, first.values()))
    assert _stamps(base_url, **{"from": _fmt(latest + timedelta(seconds=1))}) == \
        ({}, ["noRecordsMatch"])
    assert _stamps(base_url, until=_fmt(earliest - timedelta(seconds=1))) == \
        ({}, ["noRecordsMatch"])
    r = _oai(base_url, verb="ListRecords", metadataPrefix="ivo_vor",
             **{"from": _fmt(latest + timedelta(seconds=1))})
    _valid(r, tmp_path, "no-records")
    # A table's record is no older than its ingest (the hipparcos catalog's files).
    assert _time(first["ivo://vostok.example/scs/hipparcos.hip2"]) >= \
        _time(first["ivo://vostok.example"])


def _moc(text):
    from mocpy import MOC
    return MOC.from_str(text)


def _served_moc(url, tmp_path):
    from mocpy import MOC
    r = requests.get(url, timeout=120)
    assert r.status_code == 200, (url, r.text[:300])
    path = tmp_path / "served.fits"
    path.write_bytes(r.content)
    return MOC.load(str(path), format="fits")


def test_records_carry_coverage(base_url, records, tmp_path):
    """The table and image/spectrum records carry VODataService 1.2 coverage: the MOC at
    order 6 at most, before the tableset, and the full MOC's URL as footprint."""
    for t in ("hipparcos.hip2", "gaia.dr3_bright"):
        rec = records[f"ivo://vostok.example/scs/{t}"]
        children = [c.tag for c in rec]
        assert children.index("coverage") < children.index("tableset")
        assert children.index("capability") < children.index("coverage")
        cov = rec.find("coverage")
        foot = cov.find("footprint")
        assert foot.get("ivo-id") == "ivo://ivoa.net/std/moc"
        assert foot.text == f"{base_url}/moc/{t}"
        # The data's ingest, VOResource 1.2 curation/date (DataCite's "Updated").
        updated = rec.find("curation/date[@role='Updated']")
        assert updated is not None and _time(updated.text) <= _time(rec.get("updated"))
        spatial = _moc(cov.find("spatial").text)
        full = _served_moc(foot.text, tmp_path)
        assert spatial.max_order == min(6, full.max_order)
        assert spatial == (full if full.max_order <= 6 else full.degrade_to_order(6))
    # SIA's is where the images are, SSA's where the spectra are: every product's position is
    # in its service's coverage, and (the demo's all-sky map aside) the spectra are in a small
    # part of the sky.
    from astropy import units as u
    from vostok_helpers import parse_votable, tap_sync
    demo = _served_moc(f"{base_url}/moc/collection/demo", tmp_path)
    for ident, types in (("sia/v2", ("image", "cube")), ("sia/v1", ("image", "cube")),
                         ("ssa", ("spectrum",))):
        cov = records[f"ivo://vostok.example/{ident}"].find("coverage")
        assert cov is not None, ident
        spatial = _moc(cov.find("spatial").text)
        assert spatial.max_order <= 6
        assert cov.find("footprint").text == f"{base_url}/moc/ivoa.obscore"
        listed = ", ".join(f"'{t}'" for t in types)
        r = tap_sync(base_url, "SELECT s_ra, s_dec FROM ivoa.obscore WHERE s_ra IS NOT NULL "
                     f"AND dataproduct_type IN ({listed})")
        t = parse_votable(r.content).get_first_table().to_table()
        assert len(t) > 0, ident
        inside = spatial.contains_lonlat(list(t["s_ra"]) * u.deg, list(t["s_dec"]) * u.deg)
        assert all(inside), ident
        # Within the collection's coverage (at order 6).
        assert spatial.difference(demo.degrade_to_order(6)).empty(), ident
    ssa = _moc(records["ivo://vostok.example/ssa"].find("coverage/spatial").text)
    assert ssa.sky_fraction < 0.01
    for ident in ("tap", "datalink", "vospace", "registry"):
        assert records[f"ivo://vostok.example/{ident}"].find("coverage") is None


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
    ({"verb": "ListIdentifiers", "resumptionToken": "i.1.0.marc21..."}, "badResumptionToken"),
    # Issued before the records changed (their latest datestamp is not 0).
    ({"verb": "ListIdentifiers", "resumptionToken": "i.1.0.ivo_vor..."}, "badResumptionToken"),
    ({"verb": "ListIdentifiers", "resumptionToken": "i.0.0.ivo_vor..."}, "badResumptionToken"),
    ({"verb": "ListIdentifiers", "resumptionToken": "i.1.0.ivo_vor.2020-13-01.."},
     "badResumptionToken"),
    ({"verb": "ListIdentifiers", "resumptionToken": "i.1.0.ivo_vor...other"}, "badResumptionToken"),
    ({"verb": "ListIdentifiers", "resumptionToken": "i.100000.0.ivo_vor..."}, "badResumptionToken"),
    ({"verb": "ListRecords", "resumptionToken": "i.1.0.ivo_vor..."}, "badResumptionToken"),
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


# ---- paging and datestamps across restarts: a server of its own, two records a page --------

PAGE = 2


@pytest.fixture(scope="module")
def paged(server, tmp_path_factory):
    from vostok_helpers import OwnServer
    root = tmp_path_factory.mktemp("vostok-oai")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text(f"demo = false\n\n[registry]\npage_size = {PAGE}\n")
    # Written long ago: the records' datestamps follow the configuration file's changes.
    old = (datetime.now(timezone.utc) - timedelta(days=400)).timestamp()
    import os
    os.utime(config, (old, old))
    s = OwnServer(server.proc.args[0], data, root / "server.log", config=config)
    s.root = root
    try:
        s.start(timeout=180)
        yield s
    finally:
        s.stop()


def _pages(base, tmp_path, verb, **args):
    """Every page of a list (each validated): [(items, token element)]."""
    pages = []
    args = dict(verb=verb, **args)
    item = "header" if verb == "ListIdentifiers" else "record"
    while True:
        root = _valid(_oai(base, **args), tmp_path, f"{verb}-{len(pages)}")
        assert _error(root) == [], _error(root)
        token = root.find(f"{OAI}{verb}/{OAI}resumptionToken")
        items = root.findall(f"{OAI}{verb}/{OAI}{item}")
        pages.append((items, token))
        if token is None or not token.text:
            return pages
        assert len(pages) < 50
        args = dict(verb=verb, resumptionToken=token.text)


def _ids(items):
    return [i.find(f".//{OAI}identifier").text for i in items]


@pytest.mark.parametrize("verb", ["ListIdentifiers", "ListRecords"])
def test_lists_are_paged(paged, tmp_path, verb):
    pages = _pages(paged.base_url, tmp_path, verb, metadataPrefix="ivo_vor")
    ids = [i for items, _ in pages for i in _ids(items)]
    assert len(ids) == len(set(ids)) >= 7
    assert len(pages) == -(-len(ids) // PAGE)
    for n, (items, token) in enumerate(pages):
        assert len(items) == min(PAGE, len(ids) - n * PAGE)
        assert token.get("completeListSize") == str(len(ids))
        assert token.get("cursor") == str(n * PAGE)
    assert pages[-1][1].text is None
    # The same records as the unpaged server would give, in the same order: the authority,
    # the registry, TAP, ...
    assert ids[:3] == ["ivo://vostok.example", "ivo://vostok.example/registry",
                       "ivo://vostok.example/tap"]
    # A token is for its own verb and its own list.
    token = pages[0][1].text
    other = "ListRecords" if verb == "ListIdentifiers" else "ListIdentifiers"
    root = ET.fromstring(_oai(paged.base_url, verb=other, resumptionToken=token).content)
    assert _error(root) == ["badResumptionToken"]
    root = ET.fromstring(_oai(paged.base_url, verb=verb, resumptionToken=token,
                              metadataPrefix="ivo_vor").content)
    assert _error(root) == ["badArgument"]


def test_a_paged_list_keeps_its_query(paged, tmp_path):
    everything, _ = _stamps(paged.base_url)
    oai_dc = _pages(paged.base_url, tmp_path, "ListRecords", metadataPrefix="oai_dc",
                    set="ivo_managed", until=_fmt(datetime.now(timezone.utc)))
    assert all(items[0].find(f".//{DC}title") is not None for items, _ in oai_dc)
    assert [i for items, _ in oai_dc for i in _ids(items)] == list(everything)


def test_datestamps_survive_a_restart_and_from_finds_new_data(paged, tmp_path):
    before, _ = _stamps(paged.base_url)
    # Nothing but the executable and the configuration went into these records.
    assert len(set(before.values())) == 1
    paged.stop()
    paged.start(timeout=180)
    after, _ = _stamps(paged.base_url)
    assert after == before
    # A harvester's next `from` is the last answer's responseDate.
    root = ET.fromstring(_oai(paged.base_url, verb="Identify").content)
    since = root.find(f"{OAI}responseDate").text
    first = ET.fromstring(_oai(paged.base_url, verb="ListIdentifiers",
                               metadataPrefix="ivo_vor").content)
    token = first.find(f".//{OAI}resumptionToken").text
    assert token
    folder = paged.root / "new"
    folder.mkdir()
    import shutil
    import subprocess
    from vostok_helpers import REPO
    shutil.copy(REPO / "data/demo/images/irsa_sfd_dust_m51.fits", folder)
    p = subprocess.run([str(paged.binary), "--config", str(paged.config), "ingest", str(folder),
                        "--collection", "new", "--data-dir", str(paged.data_dir)],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                       cwd=paged.root)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    # A harvest begun before the change starts again.
    root = ET.fromstring(_oai(paged.base_url, verb="ListIdentifiers",
                              resumptionToken=token).content)
    assert _error(root) == ["badResumptionToken"]
    changed, _ = _stamps(paged.base_url, **{"from": since})
    assert set(changed) == {f"ivo://vostok.example/{s}" for s in
                            ("sia/v2", "sia/v1", "ssa", "datalink")}
    # An image only: SSA has no coverage to give.
    rec = ET.fromstring(_oai(paged.base_url, verb="GetRecord", metadataPrefix="ivo_vor",
                             identifier="ivo://vostok.example/ssa").content)
    assert rec.find(f".//{RI}Resource/coverage") is None
    assert all(_time(t) >= _time(since) for t in changed.values())
    # Their records now carry the new collection's coverage.
    rec = ET.fromstring(_oai(paged.base_url, verb="GetRecord", metadataPrefix="ivo_vor",
                             identifier="ivo://vostok.example/sia/v2").content)
    spatial = rec.find(f".//{RI}Resource/coverage/spatial")
    assert spatial is not None
    m51 = (202.48, 47.2)
    from astropy import units as u
    assert _moc(spatial.text).contains_lonlat(m51[0] * u.deg, m51[1] * u.deg)[0]
