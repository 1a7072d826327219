"""No 5xx for a mistake: not-found and malformed paths under every route family, with GET and
HEAD, answer a 4xx (or the protocol's in-document error) carrying the protocol's own error
document, never a 5xx and never an empty 404.

1. A table of plausible mistakes with the status and the kind of error document each protocol
   defines for it (DALI VOTable with QUERY_STATUS=ERROR for TAP/SIA 2/SSA/DataLink, SCS 1.03's
   HTTP 200 VOTable, VOSpace's `<Fault>: message` text, plain text for files and VOSI).
2. A crawl: every link of the landing page and of /capabilities, each with mutations (a
   segment appended, a trailing slash, a `..` segment, a doubled slash, an unknown id), all
   sent raw (dot segments kept) with GET and HEAD: no 5xx, HEAD's status is GET's.
"""

from __future__ import annotations

import http.client
import re
import urllib.parse

import pytest
import requests

TIMEOUT = 60
DID = "ivo://vostok.example/demo?images/irsa_sfd_dust_m51.fits"
SPEC = "ivo://vostok.example/demo?spectra/keck_esi_q0100+13_flux.fits"
FILE = "demo/images/irsa_sfd_dust_m51.fits"
q = urllib.parse.quote


def votable_error(r):
    return (b"QUERY_STATUS" in r.content and b'value="ERROR"' in r.content
            and "xml" in r.headers.get("Content-Type", ""))


def text_error(r):
    return r.headers.get("Content-Type", "").startswith("text/plain") and r.text.strip() != ""


def fault(*names):
    def ok(r):
        return text_error(r) and r.text.split(":", 1)[0] in names
    ok.__name__ = f"fault({'|'.join(names)})"
    return ok


def datalink_not_found(r):
    return (b"<VOTABLE" in r.content and b"NotFoundFault" in r.content
            and "content=datalink" in r.headers.get("Content-Type", ""))


# (path, status, what the body must be)
CASES = [
    # files
    ("/data/nosuch", 404, text_error),
    ("/data/demo/nosuch.fits", 404, text_error),
    (f"/data/{FILE}/properties", 404, text_error),
    (f"/data/{FILE}/", 404, text_error),
    ("/data/%2e%2e/etc/passwd", 404, text_error),
    ("/data/demo/images/..%2f..%2fx", 404, text_error),
    ("/data/_index/demo/md5.tsv", 404, text_error),
    ("/data/", 404, text_error),
    # DataLink
    ("/datalink/links", 400, votable_error),
    ("/datalink/links?ID=ivo://nosuch/x", 200, datalink_not_found),
    ("/datalink/links?ID=" + q("ivo://vostok.example/demo?nosuch.fits"), 200, datalink_not_found),
    ("/datalink/links?ID=" + q("ivo://vostok.example/demo?../../etc/passwd"), 200,
     datalink_not_found),
    ("/datalink/links?ID=" + q(DID) + "&RESPONSEFORMAT=text/csv", 400, votable_error),
    # an HDU the file does not have is no product (ObsCore lists the HDUs it serves)
    ("/datalink/links?ID=" + q(DID + "#7"), 200, datalink_not_found),
    ("/datalink/links?ID=" + q(SPEC + "#5"), 200, datalink_not_found),
    ("/datalink/preview", 400, text_error),
    ("/datalink/preview?ID=" + q("ivo://vostok.example/demo?nosuch.fits"), 404,
     fault("NotFoundFault")),
    ("/datalink/preview?ID=" + q(DID + "#7"), 404, fault("NotFoundFault")),
    ("/datalink/preview?ID=" + q(DID + "#x"), 404, fault("NotFoundFault")),
    ("/datalink/preview?ID=" + q(SPEC + "#5"), 404, fault("NotFoundFault")),
    ("/datalink/header?ID=" + q(DID + "#99"), 404, fault("NotFoundFault")),
    ("/datalink/header?ID=" + q("ivo://vostok.example/demo?images"), 404, fault("NotFoundFault")),
    ("/datalink/nosuch", 404, text_error),
    # cone search (SCS 1.03: errors in an HTTP 200 VOTable)
    ("/scs/nosuch", 200, votable_error),
    ("/scs/nosuch.table?RA=1&DEC=1&SR=1", 200, votable_error),
    ("/scs/tap_schema.tables?RA=1&DEC=1&SR=1", 200, votable_error),
    ("/scs/gaia.dr3_bright?RA=x&DEC=1&SR=1", 200, votable_error),
    ("/scs/gaia.dr3_bright?RA=1&DEC=1&SR=1e300", 200, votable_error),
    ("/scs/gaia.dr3_bright?RA=1&DEC=1&SR=1&VERB=x", 200, votable_error),
    ("/scs/gaia.dr3_bright?RA=1&DEC=1&SR=1&RESPONSEFORMAT=nosuch", 200, votable_error),
    ("/scs/nosuch/capabilities", 404, text_error),
    ("/scs/nosuch/availability", 404, text_error),
    ("/scs/gaia.dr3_bright/nosuch", 404, text_error),
    ("/scs", 404, text_error),
    # SSA (DALI errors in an HTTP 200 VOTable, as SSA 1.1 has them)
    ("/ssa?REQUEST=nosuch", 200, votable_error),
    ("/ssa?REQUEST=queryData&POS=x", 200, votable_error),
    ("/ssa?REQUEST=queryData&TIME=x", 200, votable_error),
    ("/ssa?REQUEST=queryData&BAND=x", 200, votable_error),
    ("/ssa?REQUEST=queryData&MAXREC=x", 200, votable_error),
    ("/ssa/nosuch", 404, text_error),
    # SIA
    ("/sia/v2/query?POS=CIRCLE", 400, votable_error),
    ("/sia/v2/query?POS=RANGE%201%202%203", 400, votable_error),
    ("/sia/v2/query?BAND=x", 400, votable_error),
    ("/sia/v2/query?TIME=x", 400, votable_error),
    ("/sia/v2/query?MAXREC=x", 400, votable_error),
    ("/sia/v2/nosuch", 404, text_error),
    ("/sia/v1?POS=x", 200, votable_error),
    ("/sia/v1?POS=1,1&SIZE=x", 200, votable_error),
    ("/sia/nosuch", 404, text_error),
    # TAP
    ("/tap/sync?LANG=ADQL", 400, votable_error),
    ("/tap/sync?LANG=ADQL&QUERY=SELECT", 400, votable_error),
    ("/tap/sync?LANG=x&QUERY=SELECT+1", 400, votable_error),
    ("/tap/sync?LANG=ADQL&QUERY=SELECT+*+FROM+nosuch", 400, votable_error),
    ("/tap/sync?LANG=ADQL&QUERY=SELECT+1&FORMAT=nosuch", 400, votable_error),
    ("/tap/sync?LANG=ADQL&QUERY=SELECT+1&MAXREC=x", 400, votable_error),
    ("/tap/sync?LANG=ADQL&QUERY=SELECT+1&UPLOAD=bad", 400, votable_error),
    ("/tap/tables/nosuch", 404, text_error),
    ("/tap/tables/nosuch.x", 404, text_error),
    ("/tap/async/nosuch", 404, text_error),
    ("/tap/async/nosuch/phase", 404, text_error),
    ("/tap/async/nosuch/results/result", 404, text_error),
    ("/tap/async/nosuch/x/y/z", 404, text_error),
    ("/tap/nosuch", 404, text_error),
    ("/tap/examples/x", 404, text_error),
    # VOSpace
    ("/vospace/nodes/nosuch", 404, fault("NodeNotFound")),
    ("/vospace/nodes/nosuch/x/y", 404, fault("NodeNotFound")),
    ("/vospace/nodes/%2e%2e/x", 400, fault("InvalidURI")),
    ("/vospace/nodes/?limit=x", 400, fault("InvalidArgument")),
    ("/vospace/nodes/?detail=x", 400, fault("InvalidArgument")),
    ("/vospace/nodes/?uri=x", 400, fault("InvalidURI")),
    ("/vospace/data/nosuch", 404, fault("NodeNotFound")),
    ("/vospace/xfer/nosuch", 404, fault("NodeNotFound")),
    ("/vospace/files/nosuch", 404, fault("NodeNotFound")),
    ("/vospace/synctrans", 400, fault("InvalidArgument")),
    ("/vospace/synctrans?TARGET=x&DIRECTION=pullFromVoSpace", 400, fault("InvalidURI")),
    ("/vospace/synctrans?TARGET=" + q("vos://vostok.example!vospace/nosuch")
     + "&DIRECTION=pullFromVoSpace&PROTOCOL=" + q("ivo://ivoa.net/vospace/core#httpget"),
     404, fault("NodeNotFound")),
    ("/vospace/transfers/nosuch", 404, text_error),
    ("/vospace/nosuch", 404, text_error),
    # the root
    ("/nosuch", 404, text_error),
    ("/capabilities/x", 404, text_error),
]


@pytest.mark.parametrize("path,status,doc", CASES, ids=[c[0][:70] for c in CASES])
def test_mistake_gets_the_protocols_error(base_url, path, status, doc):
    g = requests.get(base_url + path, timeout=TIMEOUT)
    assert g.status_code == status, (path, g.status_code, g.text[:300])
    assert doc(g), (path, doc.__name__, g.headers.get("Content-Type"), g.text[:300])
    h = requests.head(base_url + path, timeout=TIMEOUT)
    assert h.status_code == g.status_code, (path, h.status_code)
    assert h.content == b""
    assert h.headers.get("Content-Type") == g.headers.get("Content-Type")


def raw(base_url, method, path):
    u = urllib.parse.urlsplit(base_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Content-Type") or ""
    finally:
        c.close()


def links_of(base_url):
    """Every same-server link of the landing page and the capabilities index, as paths."""
    paths = {"/", "/capabilities", f"/data/{FILE}", "/datalink/links?ID=" + q(DID),
             "/datalink/preview?ID=" + q(DID), "/datalink/header?ID=" + q(DID),
             "/tap/async", "/tap/tables/ivoa.obscore", "/vospace/nodes/"}
    for page in ("/", "/capabilities"):
        text = requests.get(base_url + page, timeout=TIMEOUT).text
        for url in re.findall(r'(?:href|>)\s*=?\s*"?(http://127\.0\.0\.1:\d+[^"<\s]*|/[^"<\s]*)',
                              text):
            u = urllib.parse.urlsplit(url.replace("&amp;", "&"))
            if u.path.startswith("/") and u.path.isascii() and u.query.isascii():
                paths.add(u.path + (f"?{u.query}" if u.query else ""))
    return sorted(paths)


def mutations(path):
    p, _, query = path.partition("?")
    tail = f"?{query}" if query else ""
    yield path
    yield p.rstrip("/") + "/nosuch" + tail
    yield p + "/" + tail
    yield p + "//" + tail
    yield p.rstrip("/") + "/../nosuch" + tail
    yield p.rstrip("/") + "/%2e%2e/%2e%2e/etc/passwd"
    yield p.rstrip("/") + "/%ff%00"
    if query:
        yield p + "?" + "&".join(f"{k}=%ff" for k in re.findall(r"([^&=]+)=", query))


def test_crawl_never_5xx(base_url):
    links = links_of(base_url)
    assert len(links) > 15, links  # the landing page links every service
    bad = []
    seen = set()
    for link in links:
        for path in mutations(link):
            if path in seen:
                continue
            seen.add(path)
            gs, gbody, gtype = raw(base_url, "GET", path)
            hs, hbody, _ = raw(base_url, "HEAD", path)
            if gs >= 500 or hs >= 500:
                bad.append((path, gs, hs, gbody[:200]))
            elif hs != gs or hbody:
                bad.append((path, "HEAD differs", gs, hs))
            elif gs >= 400 and not gbody.strip():
                bad.append((path, gs, "empty error body", gtype))
    assert not bad, "\n".join(map(str, bad))
