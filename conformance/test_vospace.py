"""VOSpace 2.1 at /vospace, driven by plain HTTP (requests, http.client for raw paths) and by
OpenCADC's `vos` command-line client; every XML document the server returns is validated
with xmllint against the IVOA schemas (VOSpace 2.1, UWS 1.1, VOSI).

* Protocol: VOSI capabilities/availability, protocols/views/properties; nodes (create, get
  with detail=min|max|properties, paging with limit+uri, property set/delete, recursive
  delete), link nodes, sync transfers (transfer document and REQUEST=redirect forms, both
  directions, byte-identical, MD5 and length properties), Content-MD5 mismatch, async
  move/copy/push/pull (UWS), every fault with its HTTP status.
* The `vos` client: vmkdir vcp vls vmv vln vcat vtag vlock vchmod vrm vrmdir, each effect
  checked over HTTP.
* Access control: owner/group member/other user/anonymous x private/group/public nodes x
  read/list/write/create/set-property/delete, printed as a table on failure; path tricks
  (dot segments raw and encoded, encoded slashes, double slashes), links to private nodes,
  transfers at other users' nodes, foreign authorities.
* Quota: a user with --quota 1000000 cannot store more; nothing is kept.
* Crash: a server of its own SIGKILLed during large slow uploads and moves, three times;
  every file is complete with the right MD5 or absent/previous, acknowledged writes survive,
  no orphan objects in <data>/vospace/objects.

Users are created with `vostok user add` (the server's binary, the server's data dir); names
get a random suffix so a reused data dir (VOSTOK_TEST_DATA_DIR) does not clash.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
import requests

from vostok_helpers import (HTTP_TIMEOUT, SCHEMAS, OwnServer, data_copy, data_files, metadata_env,
                            run_tool, storage_config, xmllint_schema)

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
ALL_VO_XSD = SCHEMAS / "local-all-vo.xsd"

AUTHORITY = "vostok.example!vospace"
CORE = "ivo://ivoa.net/vospace/core#"
P_LENGTH, P_DATE, P_CTIME, P_MTIME = (CORE + p for p in ("length", "date", "ctime", "mtime"))
P_MD5, P_TYPE, P_CREATOR = CORE + "MD5", CORE + "type", CORE + "creator"
P_GROUPREAD, P_GROUPWRITE, P_PUBLIC = CORE + "groupread", CORE + "groupwrite", CORE + "ispublic"
P_TITLE, P_DESCRIPTION = CORE + "title", CORE + "description"
P_LOCKED = "ivo://cadc.nrc.ca/vospace/core#islocked"
HTTPGET, HTTPPUT = CORE + "httpget", CORE + "httpput"
GMS = "ivo://vostok.example/gms?"

SUFFIX = secrets.token_hex(3)


def V(tag):
    return f"{{{VOS_NS}}}{tag}"


def U(tag):
    return f"{{{UWS_NS}}}{tag}"


def node_uri(path, authority=AUTHORITY):
    """The node URI of a path (names percent-encoded, as URIs need)."""
    return f"vos://{authority}/{urllib.parse.quote(path.strip('/'))}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ---------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------


def vostok_binary():
    from conftest import find_binary
    return find_binary()


def add_user(data_dir, name, quota=None, groups=(), binary=None):
    """`vostok user add NAME`; returns the token (the last word it prints)."""
    data, config = storage_config(data_dir)
    cmd = [str(binary or vostok_binary())]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += ["user", "add", name]
    if quota is not None:
        cmd += ["--quota", str(quota)]
    for g in groups:
        cmd += ["--group", g]
    cmd += ["--data-dir", data]
    # cwd: the data dir, so no stray ./vostok.toml changes the defaults
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, cwd=data_dir,
                       env=dict(os.environ, **metadata_env(data_dir)))
    assert p.returncode == 0, (f"{' '.join(cmd)} failed ({p.returncode}):\n"
                               f"stdout: {p.stdout}\nstderr: {p.stderr}")
    words = (p.stdout.strip() or p.stderr.strip()).split()
    assert words, f"{' '.join(cmd)} printed nothing"
    return words[-1]


# ---------------------------------------------------------------------------------------
# XML documents
# ---------------------------------------------------------------------------------------


def node_doc(path, kind="DataNode", props=None, target=None, authority=AUTHORITY):
    """A node document; a property value None is sent as xsi:nil="true" (delete it)."""
    parts = [f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
             f'xsi:type="vos:{kind}" uri={quoteattr(node_uri(path, authority))}>']
    parts.append("<vos:properties>")
    for uri, value in (props or {}).items():
        if value is None:
            parts.append(f'<vos:property uri={quoteattr(uri)} xsi:nil="true"/>')
        else:
            parts.append(f"<vos:property uri={quoteattr(uri)}>{escape(value)}</vos:property>")
    parts.append("</vos:properties>")
    if kind == "LinkNode":
        parts.append(f"<vos:target>{escape(target)}</vos:target>")
    parts.append("</vos:node>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts)


def transfer_doc(target, direction, protocols=(), keep_bytes=None, extra=""):
    parts = [f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">',
             f"<vos:target>{escape(target)}</vos:target>",
             f"<vos:direction>{escape(direction)}</vos:direction>"]
    for p in protocols:
        parts.append(f'<vos:protocol uri="{p}"/>')
    if keep_bytes is not None:
        parts.append(f"<vos:keepBytes>{'true' if keep_bytes else 'false'}</vos:keepBytes>")
    parts.append(extra)
    parts.append("</vos:transfer>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts)


@dataclass
class NodeInfo:
    uri: str
    type: str
    props: dict
    children: list
    child_props: dict
    target: str | None
    busy: str | None
    root: ET.Element = field(repr=False)

    @property
    def md5(self):
        return self.props.get(P_MD5)

    @property
    def length(self):
        v = self.props.get(P_LENGTH)
        return None if v is None else int(v)


def parse_node(content: bytes) -> NodeInfo:
    root = ET.fromstring(content)
    assert root.tag == V("node"), f"not a vos:node document: {content[:500]!r}"

    def props_of(el):
        out = {}
        ps = el.find(V("properties"))
        for p in (ps if ps is not None else []):
            if p.get(f"{{{XSI_NS}}}nil") == "true":
                continue
            out[p.get("uri")] = p.text or ""
        return out

    children, child_props = [], {}
    nodes = root.find(V("nodes"))
    for c in (nodes if nodes is not None else []):
        children.append(c.get("uri"))
        child_props[c.get("uri")] = props_of(c)
    tgt = root.find(V("target"))
    return NodeInfo(root.get("uri"), root.get(f"{{{XSI_NS}}}type"), props_of(root), children,
                    child_props, tgt.text if tgt is not None else None, root.get("busy"), root)


_doc_counter = itertools.count()


LISTS_NS = "urn:local:vostok-test:vospace-lists"
# VOSpace-v2.1.xsd declares the global elements protocols/views/properties with the flat list
# types (ProtocolList, ...), while the standard's responses (and its own GetProtocolsResponse,
# GetViewsResponse, GetPropertiesResponse types) have <accepts>/<provides>(/<contains>): those
# documents are validated against the Get*Response types, their root renamed into this
# helper namespace.
LISTS_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:vos="{VOS_NS}"
    targetNamespace="{LISTS_NS}" elementFormDefault="qualified">
  <xs:import namespace="{VOS_NS}" schemaLocation="{(SCHEMAS / 'local-VOSpace-v2.1-with-node.xsd').as_uri()}"/>
  <xs:element name="protocols" type="vos:GetProtocolsResponse"/>
  <xs:element name="views" type="vos:GetViewsResponse"/>
  <xs:element name="properties" type="vos:GetPropertiesResponse"/>
</xs:schema>
"""


class Validator:
    """Writes every XML document to a file and validates it with xmllint + local-all-vo.xsd."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.lists_xsd = folder / "vospace-lists.xsd"
        self.lists_xsd.write_text(LISTS_XSD)

    def list_doc(self, content: bytes, name: str):
        """A protocols/views/properties response: see LISTS_XSD."""
        root = ET.fromstring(content)
        assert root.tag in (V("protocols"), V("views"), V("properties")), root.tag
        root.tag = f"{{{LISTS_NS}}}{root.tag.rsplit('}', 1)[1]}"
        path = self.folder / f"{next(_doc_counter):04d}-{name}.xml"
        path.write_bytes(ET.tostring(root, encoding="utf-8"))
        p = xmllint_schema(path, self.lists_xsd)
        assert p.returncode == 0, (f"{name} does not match VOSpace 2.1's Get*Response type:\n"
                                   f"{p.stderr[-3000:]}\n--- document ---\n{content[:3000]!r}")

    def __call__(self, content: bytes, name: str):
        self.count += 1
        path = self.folder / f"{next(_doc_counter):04d}-{name}.xml"
        path.write_bytes(content)
        p = xmllint_schema(path, ALL_VO_XSD)
        assert p.returncode == 0, (f"{name} is not valid against {ALL_VO_XSD.name}:\n"
                                   f"{p.stderr[-3000:]}\n--- document ---\n{content[:3000]!r}")


def is_xml(r):
    return r.headers.get("Content-Type", "").split(";")[0].strip() in (
        "text/xml", "application/xml", "application/x-votable+xml")


# ---------------------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------------------


class Vo:
    """One actor (a token, or anonymous) talking to /vospace."""

    def __init__(self, base, token=None, header="bearer", name="?", validate=None):
        self.base, self.token, self.header, self.name = base, token, header, name
        self.validate = validate

    def auth(self):
        if not self.token:
            return {}
        if self.header == "bearer":
            return {"Authorization": f"Bearer {self.token}"}
        return {"X-CADC-DelegationToken": self.token}

    def request(self, method, url, headers=None, **kw):
        h = self.auth()
        h.update(headers or {})
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        r = requests.request(method, url, headers=h, **kw)
        if self.validate and r.content and is_xml(r) and r.status_code < 400:
            self.validate(r.content, f"{method}-{urllib.parse.urlsplit(url).path.split('/')[2]}")
        return r

    def nodes_url(self, path):
        return f"{self.base}/vospace/nodes/{urllib.parse.quote(path.strip('/'))}"

    # nodes
    def get_node(self, path, **params):
        return self.request("GET", self.nodes_url(path), params=params)

    def node(self, path, **params) -> NodeInfo:
        r = self.get_node(path, **params)
        assert r.status_code == 200, f"{self.name}: GET node {path}: {r.status_code} {r.text[:500]}"
        return parse_node(r.content)

    def exists(self, path):
        r = self.get_node(path, detail="max")
        assert r.status_code in (200, 404), f"GET {path}: {r.status_code} {r.text[:300]}"
        return r.status_code == 200

    def put_node(self, path, kind="DataNode", props=None, target=None, authority=AUTHORITY):
        return self.request("PUT", self.nodes_url(path),
                            data=node_doc(path, kind, props, target, authority).encode(),
                            headers={"Content-Type": "text/xml"})

    def mkdir(self, path, props=None):
        r = self.put_node(path, "ContainerNode", props)
        assert r.status_code == 201, f"{self.name}: create container {path}: {r.status_code} {r.text[:500]}"
        return r

    def set_props(self, path, props, kind="DataNode"):
        return self.request("POST", self.nodes_url(path), data=node_doc(path, kind, props).encode(),
                            headers={"Content-Type": "text/xml"})

    def delete(self, path):
        return self.request("DELETE", self.nodes_url(path))

    # sync transfers
    def synctrans(self, target, direction, protocols=(HTTPGET,), keep_bytes=None):
        return self.request("POST", f"{self.base}/vospace/synctrans",
                            data=transfer_doc(target, direction, protocols, keep_bytes).encode(),
                            headers={"Content-Type": "text/xml"})

    def negotiate(self, path, direction, protocol):
        """Transfer document form; returns (transfer id, endpoint URLs)."""
        r = self.synctrans(node_uri(path), direction, [protocol])
        assert r.status_code == 303, (f"{self.name}: synctrans {direction} {path}: "
                                      f"HTTP {r.status_code} {r.text[:500]}")
        loc = r.headers["Location"]
        assert loc.startswith(self.base + "/vospace/xfer/"), loc
        d = self.request("GET", loc)
        assert d.status_code == 200, f"GET {loc}: {d.status_code} {d.text[:500]}"
        root = ET.fromstring(d.content)
        assert root.tag == V("transfer"), d.text[:500]
        assert root.findtext(V("target")) == node_uri(path)
        assert root.findtext(V("direction")) == direction
        endpoints = [e.text for e in root.iter(V("endpoint"))]
        assert endpoints, f"no endpoint in {d.text[:1000]}"
        return loc.rsplit("/", 1)[1], endpoints

    def push(self, path, data, headers=None):
        tid, endpoints = self.negotiate(path, "pushToVoSpace", HTTPPUT)
        r = requests.put(endpoints[0], data=data, headers=headers or {}, timeout=HTTP_TIMEOUT)
        assert r.status_code in (200, 201, 204), (f"{self.name}: PUT {endpoints[0]} ({path}): "
                                                  f"{r.status_code} {r.text[:500]}")
        return tid

    def pull(self, path):
        tid, endpoints = self.negotiate(path, "pullFromVoSpace", HTTPGET)
        r = requests.get(endpoints[0], timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"{self.name}: GET {endpoints[0]} ({path}): {r.status_code}"
        return r.content

    def redirect(self, path, direction, target=None):
        """Parameter form with REQUEST=redirect: the 303 response."""
        proto = HTTPPUT if direction == "pushToVoSpace" else HTTPGET
        return self.request("POST", f"{self.base}/vospace/synctrans", params={
            "TARGET": target or node_uri(path), "DIRECTION": direction, "PROTOCOL": proto,
            "REQUEST": "redirect"})

    def push_redirect(self, path, data, headers=None):
        """Returns (negotiation response, PUT response or None)."""
        r = self.redirect(path, "pushToVoSpace")
        if r.status_code != 303:
            return r, None
        return r, requests.put(r.headers["Location"], data=data, headers=headers or {},
                               timeout=HTTP_TIMEOUT)

    def pull_redirect(self, path):
        r = self.redirect(path, "pullFromVoSpace")
        if r.status_code != 303:
            return r, None
        return r, requests.get(r.headers["Location"], timeout=HTTP_TIMEOUT)

    # async transfers
    def async_transfer(self, doc, run=True):
        r = self.request("POST", f"{self.base}/vospace/transfers", data=doc.encode(),
                         headers={"Content-Type": "text/xml"})
        if r.status_code != 303:
            return r, None
        job = r.headers["Location"]
        assert job.startswith(self.base + "/vospace/transfers/"), job
        if run:
            p = self.request("POST", job + "/phase", data={"PHASE": "RUN"})
            assert p.status_code == 303, f"RUN {job}: {p.status_code} {p.text[:300]}"
        return r, job

    def phase(self, job):
        r = self.request("GET", job + "/phase")
        assert r.status_code == 200, f"GET {job}/phase: {r.status_code} {r.text[:300]}"
        return r.text.strip()

    def wait(self, job, phases=("COMPLETED", "ERROR", "ABORTED"), timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            ph = self.phase(job)
            if ph in phases:
                return ph
            assert time.monotonic() < deadline, f"{job} still {ph} after {timeout}s"
            time.sleep(0.1)

    def move(self, src, dest, keep_bytes=False):
        _, job = self.async_transfer(transfer_doc(node_uri(src), node_uri(dest),
                                                  keep_bytes=keep_bytes))
        assert job, f"{self.name}: move {src} -> {dest} not accepted"
        return job, self.wait(job)


def assert_fault(r, status, *names):
    """The response is the fault: HTTP status and a text/plain body starting with its name."""
    text = r.text.strip()
    assert r.status_code == status and any(text.startswith(n) for n in names), (
        f"{r.request.method} {r.request.url}: expected HTTP {status} {'/'.join(names)}, "
        f"got HTTP {r.status_code} {text[:300]!r}")
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type")


def raw_request(base, method, raw_path, headers=None, body=None):
    """A request whose path goes on the wire exactly as given (no dot-segment removal)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, raw_path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@dataclass
class Users:
    tokens: dict
    names: dict

    def name(self, who):
        return self.names[who]


@pytest.fixture(scope="module")
def users(server):
    names = {w: f"{w}{SUFFIX}" for w in ("alice", "bob", "carol", "proto", "vuser", "quser")}
    groups = {"bob": ["g1"], "proto": ["pg"]}
    quotas = {"quser": 1_000_000}
    tokens = {}
    binary = vostok_binary()
    for who, n in names.items():
        tokens[who] = add_user(server.data_dir, n, quota=quotas.get(who),
                               groups=groups.get(who, ()), binary=binary)
    return Users(tokens, names)


@pytest.fixture(scope="module")
def validate(tmp_path_factory):
    return Validator(tmp_path_factory.mktemp("vospace-docs"))


def client(base, users, who, validate=None, header="bearer"):
    if who == "anon":
        return Vo(base, None, name="anon", validate=validate)
    return Vo(base, users.tokens[who], header=header, name=who, validate=validate)


@pytest.fixture(scope="module")
def proto(base_url, users, validate):
    c = client(base_url, users, "proto", validate)
    c.home = users.name("proto")
    return c


# ---------------------------------------------------------------------------------------
# 1. Protocol suite
# ---------------------------------------------------------------------------------------


def test_vosi_capabilities(base_url, validate):
    r = requests.get(base_url + "/vospace/capabilities", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and is_xml(r), (r.status_code, r.headers)
    validate(r.content, "capabilities")
    root = ET.fromstring(r.content)
    caps = {}
    for c in root.iter():
        if c.tag.rsplit("}", 1)[-1] == "capability":
            urls = [a.text.strip() for a in c.iter() if a.tag.rsplit("}", 1)[-1] == "accessURL"]
            caps.setdefault(c.get("standardID"), []).extend(urls)
    vs = base_url + "/vospace"
    expected = {
        "ivo://ivoa.net/std/VOSpace/v2.0#nodes": vs + "/nodes",
        "ivo://ivoa.net/std/VOSpace#sync-2.1": vs + "/synctrans",
        "ivo://ivoa.net/std/VOSpace/v2.0#transfers": vs + "/transfers",
        "ivo://ivoa.net/std/VOSI#availability": vs + "/availability",
        "ivo://ivoa.net/std/VOSI#capabilities": vs + "/capabilities",
    }
    for sid, url in expected.items():
        assert sid in caps, f"capability {sid} missing; have {sorted(caps)}"
        assert url in caps[sid], f"{sid}: accessURL {caps[sid]}, expected {url}"


def test_vosi_availability_and_lists(base_url, validate):
    r = requests.get(base_url + "/vospace/availability", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and is_xml(r)
    validate(r.content, "availability")
    root = ET.fromstring(r.content)
    avail = [e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "available"]
    assert avail == ["true"], r.text
    for what, elems in (("protocols", ("accepts", "provides")), ("views", ("accepts", "provides")),
                        ("properties", ("accepts", "provides", "contains"))):
        r = requests.get(f"{base_url}/vospace/{what}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and is_xml(r), (what, r.status_code, r.text[:300])
        validate.list_doc(r.content, what)
        root = ET.fromstring(r.content)
        assert root.tag == V(what), root.tag
        assert [c.tag for c in root] == [V(e) for e in elems], (what, [c.tag for c in root])
    protos = ET.fromstring(requests.get(base_url + "/vospace/protocols", timeout=30).content)
    accepts = {p.get("uri") for p in protos.find(V("accepts"))}
    provides = {p.get("uri") for p in protos.find(V("provides"))}
    assert HTTPPUT in accepts and HTTPGET in provides, (accepts, provides)
    props = ET.fromstring(requests.get(base_url + "/vospace/properties", timeout=30).content)
    contains = {p.get("uri") for p in props.find(V("contains"))}
    assert {P_LENGTH, P_DATE, P_MD5} <= contains, contains


def test_node_create_get_details(proto):
    home = proto.home
    top = proto.node(home, detail="max")
    assert top.type == "vos:ContainerNode" and top.uri == node_uri(home)
    d = f"{home}/details"
    r = proto.mkdir(d, {P_DESCRIPTION: "a container", "ivo://example.org/custom#k": "v"})
    created = parse_node(r.content)
    assert created.uri == node_uri(d) and created.type == "vos:ContainerNode"
    r = proto.put_node(f"{d}/empty.dat", props={P_TITLE: "Empty"})
    assert r.status_code == 201, r.text
    data = b"hello vospace\n" * 100
    proto.push(f"{d}/a.txt", data)
    for detail in ("min", "max", "properties"):
        n = proto.node(d, detail=detail)
        # VOSpace 2.1: detail=properties gives the node and its properties, no child elements.
        if detail != "properties":
            assert sorted(n.children) == [node_uri(f"{d}/a.txt"), node_uri(f"{d}/empty.dat")], (
                detail, n.children)
        if detail != "min":
            assert n.props.get(P_DESCRIPTION) == "a container", (detail, n.props)
            assert n.props.get("ivo://example.org/custom#k") == "v"
            assert P_DATE in n.props, f"detail={detail}: no core#date (the vos client needs it)"
    mx = proto.node(d, detail="max")
    for uri, props in mx.child_props.items():
        assert P_DATE in props, f"child {uri} has no core#date with detail=max: {props}"
    a = proto.node(f"{d}/a.txt", detail="max")
    assert a.type == "vos:DataNode"
    assert a.md5 == md5_hex(data) and a.length == len(data), a.props
    for p in (P_CTIME, P_MTIME, P_DATE, P_CREATOR):
        assert p in a.props, (p, a.props)
    e = proto.node(f"{d}/empty.dat", detail="max")
    assert e.type == "vos:DataNode" and e.props.get(P_TITLE) == "Empty"
    assert e.length in (None, 0) and e.md5 is None, e.props
    # The container alone: limit=0 (what `vls` asks first).
    assert proto.node(d, limit=0).children == []
    # X-CADC-DelegationToken works like the bearer token.
    cadc = Vo(proto.base, proto.token, header="cadc", name="proto-cadc")
    assert cadc.node(f"{d}/a.txt").md5 == md5_hex(data)


def test_container_paging(proto):
    d = f"{proto.home}/paging"
    proto.mkdir(d)
    names = [f"c{i:02d}" for i in range(25)]
    for n in names:
        r = proto.put_node(f"{d}/{n}")
        assert r.status_code == 201, r.text
    full = proto.node(d).children
    assert sorted(full) == sorted(node_uri(f"{d}/{n}") for n in names), full
    pages, after = [], None
    for _ in range(10):
        params = {"limit": 10, "detail": "min"}
        if after:
            params["uri"] = after
        page = proto.node(d, **params).children
        assert len(page) <= 10, page
        if not page:
            break
        pages.append(page)
        after = page[-1]
        if len(page) < 10:
            break
    got = [u for p in pages for u in p]
    assert [len(p) for p in pages] == [10, 10, 5], [len(p) for p in pages]
    assert len(set(got)) == 25 and set(got) == set(full), (
        f"paging with limit=10 and uri=<last> (start after) gave {got}")
    assert got == full, "pages out of the order of the full listing"


def test_properties_update(proto):
    path = f"{proto.home}/props.txt"
    proto.push(path, b"x" * 1000)
    before = proto.node(path)
    custom = "ivo://example.org/vostok-test#colour"
    r = proto.set_props(path, {P_TITLE: "T1", P_DESCRIPTION: "D1", custom: "blue"})
    assert r.status_code == 200, r.text
    assert parse_node(r.content).props.get(custom) == "blue"
    n = proto.node(path)
    assert (n.props.get(P_TITLE), n.props.get(P_DESCRIPTION), n.props.get(custom)) == (
        "T1", "D1", "blue")
    # Change one, delete one (xsi:nil), leave the third alone.
    r = proto.set_props(path, {P_TITLE: "T2", P_DESCRIPTION: None})
    assert r.status_code == 200, r.text
    n = proto.node(path)
    assert n.props.get(P_TITLE) == "T2" and P_DESCRIPTION not in n.props, n.props
    assert n.props.get(custom) == "blue"
    assert n.md5 == before.md5 and n.length == 1000
    # Read-only properties: ignored or refused, never changed.
    r = proto.set_props(path, {P_LENGTH: "5", P_MD5: "0" * 32, P_CREATOR: "ivo://x?evil"})
    assert r.status_code in (200, 400, 403), (r.status_code, r.text)
    if r.status_code != 200:
        assert r.text.startswith(("PermissionDenied", "InvalidArgument")), r.text
    n = proto.node(path)
    assert n.length == 1000 and n.md5 == md5_hex(b"x" * 1000), n.props
    assert n.props.get(P_CREATOR) == before.props.get(P_CREATOR)
    # Properties on a container too.
    r = proto.set_props(proto.home + "/paging", {P_TITLE: "pages"}, kind="ContainerNode")
    assert r.status_code == 200, r.text
    assert proto.node(proto.home + "/paging", limit=0).props.get(P_TITLE) == "pages"


def test_recursive_delete(proto):
    d = f"{proto.home}/tree"
    proto.mkdir(d)
    proto.mkdir(f"{d}/sub")
    proto.mkdir(f"{d}/sub/deeper")
    proto.push(f"{d}/a", b"a")
    proto.push(f"{d}/sub/b", b"bb")
    proto.push(f"{d}/sub/deeper/c", b"ccc")
    r = proto.delete(d)
    assert r.status_code == 204, (r.status_code, r.text)
    for p in (d, f"{d}/a", f"{d}/sub", f"{d}/sub/b", f"{d}/sub/deeper/c"):
        assert_fault(proto.get_node(p), 404, "NodeNotFound")
    r = proto.delete(d)
    assert_fault(r, 404, "NodeNotFound")


def test_link_nodes(proto):
    d = f"{proto.home}/links"
    proto.mkdir(d)
    proto.mkdir(f"{d}/dir")
    data = os.urandom(5000)
    proto.push(f"{d}/dir/f.bin", data)
    r = proto.put_node(f"{d}/to-file", "LinkNode", target=node_uri(f"{d}/dir/f.bin"))
    assert r.status_code == 201, r.text
    r = proto.put_node(f"{d}/to-dir", "LinkNode", target=node_uri(f"{d}/dir"))
    assert r.status_code == 201, r.text
    r = proto.put_node(f"{d}/to-web", "LinkNode", target="http://example.org/somewhere")
    assert r.status_code == 201, r.text
    ln = proto.node(f"{d}/to-file")
    assert ln.type == "vos:LinkNode" and ln.target == node_uri(f"{d}/dir/f.bin")
    assert proto.node(f"{d}/to-web").target == "http://example.org/somewhere"
    listing = proto.node(d)
    assert sorted(listing.children) == sorted(node_uri(f"{d}/{n}") for n in (
        "dir", "to-file", "to-dir", "to-web"))
    # A path through a link node: LinkFound.
    assert_fault(proto.get_node(f"{d}/to-dir/f.bin"), 400, "LinkFound")
    assert_fault(proto.put_node(f"{d}/to-dir/new.txt"), 400, "LinkFound")
    # Reading the link's target through the link (sync pull on the link node) gives the bytes.
    r, got = proto.pull_redirect(f"{d}/to-file")
    assert r.status_code == 303 and got is not None and got.status_code == 200, (
        r.status_code, r.text[:300])
    assert got.content == data
    # Deleting the link leaves the target.
    assert proto.delete(f"{d}/to-file").status_code == 204
    assert proto.node(f"{d}/dir/f.bin").md5 == md5_hex(data)


def test_sync_push_pull(proto, validate):
    path = f"{proto.home}/sync/data.bin"
    proto.mkdir(f"{proto.home}/sync")
    data = os.urandom(3 * 1024 * 1024 + 17)
    tid = proto.push(path, data)
    # The job the vos client checks.
    job = f"{proto.base}/vospace/transfers/{tid}"
    r = proto.request("GET", job)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    root = ET.fromstring(r.content)
    assert root.tag == U("job") and root.findtext(U("phase")) in ("COMPLETED", "EXECUTING"), r.text
    assert proto.phase(job) in ("COMPLETED", "EXECUTING")
    n = proto.node(path)
    assert n.md5 == md5_hex(data) and n.length == len(data), n.props
    assert proto.pull(path) == data
    # Overwrite with new content, declared by Content-MD5.
    data2 = os.urandom(100_000)
    proto.push(path, data2, headers={"Content-MD5": md5_b64(data2)})
    n = proto.node(path)
    assert n.md5 == md5_hex(data2) and n.length == len(data2)
    assert proto.pull(path) == data2
    # The data endpoint is pre-authorised: no credential needed, but only for that transfer.
    _, endpoints = proto.negotiate(path, "pullFromVoSpace", HTTPGET)
    r = requests.get(endpoints[0], timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.content == data2
    r = requests.get(proto.base + "/vospace/data/nosuchtransfer", timeout=HTTP_TIMEOUT)
    assert r.status_code in (403, 404), r.status_code
    # An empty file.
    proto.push(f"{proto.home}/sync/empty", b"")
    e = proto.node(f"{proto.home}/sync/empty")
    assert e.length == 0 and e.md5 in (None, md5_hex(b"")), e.props
    assert proto.pull(f"{proto.home}/sync/empty") == b""


def test_sync_redirect_form(proto):
    proto.mkdir(f"{proto.home}/redir")
    path = f"{proto.home}/redir/r.bin"
    data = os.urandom(200_000)
    r, put = proto.push_redirect(path, data)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(proto.base + "/vospace/data/")
    assert put.status_code in (200, 201, 204), (put.status_code, put.text[:300])
    n = proto.node(path)
    assert n.md5 == md5_hex(data) and n.length == len(data)
    r, got = proto.pull_redirect(path)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(proto.base + "/vospace/data/")
    assert got.status_code == 200 and got.content == data
    # The Content-Type of the upload becomes core#type, and is served back.
    csv = b"a,b\n1,2\n"
    r, put = proto.push_redirect(f"{proto.home}/redir/t.csv", csv,
                                 headers={"Content-Type": "text/csv"})
    assert put.status_code in (200, 201, 204), put.text
    assert proto.node(f"{proto.home}/redir/t.csv").props.get(P_TYPE) == "text/csv"
    r, got = proto.pull_redirect(f"{proto.home}/redir/t.csv")
    assert got.content == csv and got.headers["Content-Type"].startswith("text/csv")
    # Pull of a node that does not exist: a fault, no redirect.
    r = proto.redirect(f"{proto.home}/redir/none", "pullFromVoSpace")
    assert_fault(r, 404, "NodeNotFound")


def test_write_integrity_checks(proto):
    """A declared Content-MD5 or length that does not match: 412, the old content stays."""
    proto.mkdir(f"{proto.home}/integrity")
    path = f"{proto.home}/integrity/f.bin"
    old = os.urandom(50_000)
    proto.push(path, old)
    new = os.urandom(60_000)
    _, endpoints = proto.negotiate(path, "pushToVoSpace", HTTPPUT)
    r = requests.put(endpoints[0], data=new, headers={"Content-MD5": md5_b64(b"something else")},
                     timeout=HTTP_TIMEOUT)
    assert_fault(r, 412, "TransferFailed")
    n = proto.node(path)
    assert n.md5 == md5_hex(old) and n.length == len(old), n.props
    assert proto.pull(path) == old
    # The same for a new node: nothing appears with content.
    new_path = f"{proto.home}/integrity/new.bin"
    r, put = proto.push_redirect(new_path, new, headers={"Content-MD5": md5_b64(b"x")})
    assert r.status_code == 303
    assert_fault(put, 412, "TransferFailed")
    g = proto.get_node(new_path)
    assert g.status_code == 404 or parse_node(g.content).md5 is None, g.text[:500]
    # A body cut short (Content-Length 100000, 40000 bytes sent, connection closed): not stored.
    _, endpoints = proto.negotiate(path, "pushToVoSpace", HTTPPUT)
    u = urllib.parse.urlsplit(endpoints[0])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("PUT", u.path + (f"?{u.query}" if u.query else ""))
    conn.putheader("Content-Length", "100000")
    conn.endheaders()
    conn.send(os.urandom(40_000))
    time.sleep(0.3)
    conn.sock.close()
    time.sleep(0.5)
    n = proto.node(path)
    assert n.md5 == md5_hex(old) and n.length == len(old), f"truncated upload stored: {n.props}"
    assert proto.pull(path) == old


def test_async_move_and_copy(proto, validate):
    h = f"{proto.home}/async"
    proto.mkdir(h)
    proto.mkdir(f"{h}/dir")
    proto.mkdir(f"{h}/dir/sub")
    a, b = os.urandom(10_000), os.urandom(20_000)
    proto.push(f"{h}/dir/a", a)
    proto.push(f"{h}/dir/sub/b", b)
    proto.mkdir(f"{h}/dest")

    # Rename a file (destination does not exist).
    job, phase = proto.move(f"{h}/dir/a", f"{h}/a-renamed")
    assert phase == "COMPLETED", proto.request("GET", job).text
    validate(proto.request("GET", job).content, "move-job")
    assert not proto.exists(f"{h}/dir/a")
    assert proto.node(f"{h}/a-renamed").md5 == md5_hex(a)

    # Move a container into an existing container: it lands inside it.
    job, phase = proto.move(f"{h}/dir", f"{h}/dest")
    assert phase == "COMPLETED", proto.request("GET", job).text
    assert not proto.exists(f"{h}/dir")
    assert proto.node(f"{h}/dest/dir/sub/b").md5 == md5_hex(b)
    assert proto.pull(f"{h}/dest/dir/sub/b") == b

    # Copy (keepBytes true): both exist, same bytes; the copy is independent.
    job, phase = proto.move(f"{h}/a-renamed", f"{h}/a-copy", keep_bytes=True)
    assert phase == "COMPLETED", proto.request("GET", job).text
    assert proto.node(f"{h}/a-renamed").md5 == md5_hex(a)
    assert proto.node(f"{h}/a-copy").md5 == md5_hex(a)
    proto.push(f"{h}/a-copy", b"changed")
    assert proto.pull(f"{h}/a-renamed") == a
    job, phase = proto.move(f"{h}/dest/dir", f"{h}/dir-copy", keep_bytes=True)
    assert phase == "COMPLETED", proto.request("GET", job).text
    assert proto.pull(f"{h}/dir-copy/sub/b") == b and proto.pull(f"{h}/dest/dir/sub/b") == b

    # A container into itself (or its own descendant): ERROR, nothing moved.
    for dest in (f"{h}/dest", f"{h}/dest/dir/sub"):
        job, phase = proto.move(f"{h}/dest", dest)
        assert phase == "ERROR", f"move {h}/dest -> {dest}: {phase}"
        r = proto.request("GET", job)
        validate(r.content, "move-error-job")
        summary = ET.fromstring(r.content).find(U("errorSummary"))
        assert summary is not None and summary.findtext(U("message")), r.text
        e = proto.request("GET", job + "/error")
        assert e.status_code == 200 and e.text.strip(), (e.status_code, e.text)
        assert proto.node(f"{h}/dest/dir/sub/b").md5 == md5_hex(b)

    # Move onto an existing data node, or of a missing source: ERROR.
    job, phase = proto.move(f"{h}/nosuch", f"{h}/x")
    assert phase == "ERROR"
    assert "NodeNotFound" in proto.request("GET", job + "/error").text
    job, phase = proto.move(f"{h}/a-copy", f"{h}/a-renamed")
    assert phase == "ERROR", "moving onto an existing data node must fail (DuplicateNode)"
    assert proto.pull(f"{h}/a-renamed") == a and proto.pull(f"{h}/a-copy") == b"changed"

    # The UWS documents of a move job.
    for sub in ("", "/results", "/parameters"):
        r = proto.request("GET", job + sub)
        if sub == "/parameters" and r.status_code == 404:
            continue
        assert r.status_code == 200, (sub, r.status_code, r.text[:300])
        validate(r.content, f"move-job{sub.replace('/', '-')}")


def test_async_push_and_pull(proto, validate):
    h = f"{proto.home}/asyncxfer"
    proto.mkdir(h)
    data = os.urandom(123_456)
    for direction, proto_uri in (("pushToVoSpace", HTTPPUT), ("pullFromVoSpace", HTTPGET)):
        r, job = proto.async_transfer(transfer_doc(node_uri(f"{h}/f.bin"), direction, [proto_uri]))
        assert job, (direction, r.status_code, r.text[:300])
        # A client may read the endpoints as soon as the job is EXECUTING: transferDetails is
        # recorded before the job turns EXECUTING.
        phase = proto.wait(job, ("EXECUTING", "COMPLETED", "ERROR"))
        assert phase in ("EXECUTING", "COMPLETED"), proto.request("GET", job).text
        res = proto.request("GET", job + "/results")
        assert res.status_code == 200
        validate(res.content, "async-results")
        hrefs = {x.get("id"): x.get(f"{{{XLINK_NS}}}href") for x in ET.fromstring(res.content)}
        assert hrefs.get("transferDetails") == job + "/results/transferDetails", hrefs
        det = proto.request("GET", hrefs["transferDetails"], allow_redirects=True)
        assert det.status_code == 200, det.text[:300]
        validate(det.content, "transferDetails")
        endpoints = [e.text for e in ET.fromstring(det.content).iter(V("endpoint"))]
        assert endpoints, det.text
        if direction == "pushToVoSpace":
            put = requests.put(endpoints[0], data=data, timeout=HTTP_TIMEOUT)
            assert put.status_code in (200, 201, 204), put.text
            assert proto.node(f"{h}/f.bin").md5 == md5_hex(data)
        else:
            got = requests.get(endpoints[0], timeout=HTTP_TIMEOUT)
            assert got.status_code == 200 and got.content == data
        assert proto.wait(job, ("COMPLETED", "ERROR")) == "COMPLETED"


def test_special_names(proto):
    """Names with spaces, reserved and non-ASCII characters: percent-encoded in request paths
    and node URIs, created, listed, written, read and deleted like any other."""
    d = f"{proto.home}/names"
    proto.mkdir(d)
    names = ["with space.txt", "plus+sign.txt", "percent%.txt", "hash#.txt", "question?.txt",
             "ünïcødé.txt", "amp&eq=semi;.txt", "tilde~(paren)'.txt", "comma,at@.txt"]
    problems = []
    for n in names:
        path = f"{d}/{n}"
        r = proto.put_node(path)
        if r.status_code != 201:
            problems.append(f"{n!r}: PUT {r.request.url} -> {r.status_code} {r.text.strip()[:150]}")
            continue
        got_uri = parse_node(r.content).uri
        if urllib.parse.unquote(got_uri) != urllib.parse.unquote(node_uri(path)):
            problems.append(f"{n!r}: created node has uri {got_uri}")
        data = f"content of {n}".encode()
        try:
            proto.push(path, data)
            if proto.pull(path) != data:
                problems.append(f"{n!r}: pulled bytes differ")
            if proto.node(path).md5 != md5_hex(data):
                problems.append(f"{n!r}: MD5 property wrong")
        except AssertionError as e:
            problems.append(f"{n!r}: transfer failed: {str(e)[:200]}")
    raw = proto.node(d).children
    for u in raw:
        parts = urllib.parse.urlsplit(u)
        if parts.query or parts.fragment or " " in u:
            problems.append(f"listed node URI {u!r} is not a valid URI (unencoded ' ', '?' or '#')")
    listed = {urllib.parse.unquote(u) for u in raw}
    for n in names:
        if urllib.parse.unquote(node_uri(f"{d}/{n}")) not in listed:
            problems.append(f"{n!r}: not in the listing {sorted(listed)}")
    for n in names:
        if proto.exists(f"{d}/{n}"):
            r = proto.delete(f"{d}/{n}")
            if r.status_code != 204:
                problems.append(f"{n!r}: DELETE -> {r.status_code} {r.text[:100]}")
    # Nothing else appeared (e.g. "question" from a '?' taken as a query).
    left = proto.node(d).children
    if left:
        problems.append(f"left over after deleting them all: {left}")
    assert not problems, "\n".join(problems)


def test_faults(proto, users, base_url):
    h = proto.home
    proto.mkdir(f"{h}/faults")
    proto.push(f"{h}/faults/f", b"data")
    anon = Vo(base_url, None, name="anon")
    bad = Vo(base_url, "not-a-token-" + secrets.token_hex(8), name="bad-token")
    carol = client(base_url, users, "carol")
    checks = [
        ("GET missing node", proto.get_node(f"{h}/faults/missing"), 404, ["NodeNotFound"]),
        ("DELETE missing node", proto.delete(f"{h}/faults/missing"), 404, ["NodeNotFound"]),
        ("POST props on missing node", proto.set_props(f"{h}/faults/missing", {P_TITLE: "t"}),
         404, ["NodeNotFound"]),
        ("PUT under a missing container", proto.put_node(f"{h}/faults/nodir/x"), 404,
         ["ContainerNotFound"]),
        ("PUT an existing node", proto.put_node(f"{h}/faults/f"), 409, ["DuplicateNode"]),
        ("PUT in another user's home", carol.put_node(f"{h}/faults/carol.txt"), 403,
         ["PermissionDenied"]),
        ("GET another user's private node", carol.get_node(f"{h}/faults/f"), 403,
         ["PermissionDenied"]),
        ("PUT anonymously", anon.put_node(f"{h}/faults/anon.txt"), 401, ["NotAuthenticated"]),
        ("GET private node anonymously", anon.get_node(f"{h}/faults/f"), 401,
         ["NotAuthenticated", "PermissionDenied"]),
        ("bad token", bad.get_node(f"{h}/faults/f"), 401, ["NotAuthenticated"]),
        ("bad token on a public resource", bad.get_node(""), 401, ["NotAuthenticated"]),
        ("PUT with another authority", proto.put_node(f"{h}/faults/auth.txt",
                                                      authority="elsewhere.org!vospace"),
         400, ["InvalidURI"]),
        ("PUT with a body URI that is not the path",
         proto.request("PUT", proto.nodes_url(f"{h}/faults/one"),
                       data=node_doc(f"{h}/faults/two").encode(),
                       headers={"Content-Type": "text/xml"}), 400, ["InvalidURI", "InvalidArgument"]),
        ("PUT malformed XML", proto.request("PUT", proto.nodes_url(f"{h}/faults/bad.xml"),
                                            data=b"<vos:node oops", headers={"Content-Type": "text/xml"}),
         400, ["InvalidArgument"]),
        ("PUT an unknown node type", proto.put_node(f"{h}/faults/s", "FooNode"), 400,
         ["TypeNotSupported"]),
        ("GET with limit=abc", proto.get_node(f"{h}/faults", limit="abc"), 400, ["InvalidArgument"]),
        ("GET with detail=bogus", proto.get_node(f"{h}/faults", detail="bogus"), 400,
         ["InvalidArgument"]),
        ("synctrans with an unknown direction", proto.synctrans(node_uri(f"{h}/faults/f"),
                                                                "sideways"), 400,
         ["InvalidArgument", "InvalidURI"]),
        ("synctrans pull of a missing node",
         proto.synctrans(node_uri(f"{h}/faults/missing"), "pullFromVoSpace"), 404,
         ["NodeNotFound"]),
        ("synctrans with an unknown protocol",
         proto.synctrans(node_uri(f"{h}/faults/f"), "pullFromVoSpace", ["ivo://x/y#ftp"]), 400,
         ["ProtocolNotSupported", "InvalidArgument"]),
        ("synctrans with a non-vos target",
         proto.synctrans("http://example.org/x", "pullFromVoSpace"), 400, ["InvalidURI"]),
        ("PUT a data node under a data node", proto.put_node(f"{h}/faults/f/child"), 404,
         ["ContainerNotFound", "NodeNotFound"]),
    ]
    problems = []
    for what, r, status, names in checks:
        text = r.text.strip()
        ok = (r.status_code == status and any(text.startswith(n) for n in names)
              and r.headers.get("Content-Type", "").startswith("text/plain"))
        if not ok:
            problems.append(f"{what}: {r.request.method} {r.request.url} expected {status} "
                            f"{'/'.join(names)}, got {r.status_code} "
                            f"[{r.headers.get('Content-Type')}] {text[:200]!r}")
    assert not problems, "\n".join(problems)
    assert not proto.exists(f"{h}/faults/carol.txt") and not proto.exists(f"{h}/faults/anon.txt")
    assert not proto.exists(f"{h}/faults/one") and not proto.exists(f"{h}/faults/two")


# ---------------------------------------------------------------------------------------
# 2. The vos client
# ---------------------------------------------------------------------------------------


class VosCli:
    def __init__(self, base_url, token, root: Path):
        self.token = token
        self.home = root / "home"
        reg = self.home / ".config" / "cadc-registry"
        reg.mkdir(parents=True)
        # resourceID ivo://vostok.example/vospace <-> node URIs vos://vostok.example!vospace/...
        (reg / "resource-caps").write_text(
            f"ivo://vostok.example/vospace = {base_url}/vospace/capabilities\n")
        self.config = root / "vos-config"
        self.config.write_text("[vos]\nresourceID = ivo://vostok.example/vospace lvos\n")
        self.bin = Path(os.environ.get("VOSTOK_VENV", Path.home() / ".cache/vostok/venv")) / "bin"
        self.log = []

    def __call__(self, cmd, *args, check=True, timeout=120):
        exe = shutil.which(cmd) or str(self.bin / cmd)
        assert Path(exe).exists(), f"the vos client ({cmd}) is not installed: scripts/install-test-deps.sh"
        full = [exe, "-d", "--token", self.token, *map(str, args)]
        env = {"HOME": str(self.home), "VOSPACE_CONFIG_FILE": str(self.config)}
        p = run_tool(full, timeout=timeout, env=env, cwd=self.home)
        self.log.append((full, p))
        if check:
            assert p.returncode == 0, (
                f"`{cmd} {' '.join(map(str, args))}` failed ({p.returncode}).\n"
                f"stdout: {p.stdout[-2000:]}\nstderr (debug, the HTTP requests it made):\n"
                f"{p.stderr[-6000:]}")
        return p


def test_vos_client(base_url, users, tmp_path):
    name = users.name("vuser")
    api = client(base_url, users, "vuser")
    vos = VosCli(base_url, users.tokens["vuser"], tmp_path)
    root = f"vos://{AUTHORITY}/{name}"

    p = vos("vls", "-l", root)
    vos("vmkdir", f"{root}/d1")
    assert api.node(f"{name}/d1").type == "vos:ContainerNode"
    # The short form (lvos:) resolves through the config file.
    vos("vmkdir", f"lvos:{name}/d2")
    assert api.node(f"{name}/d2").type == "vos:ContainerNode"

    data = os.urandom(2 * 1024 * 1024 + 3)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    vos("vcp", local, f"{root}/d1/f.bin")
    n = api.node(f"{name}/d1/f.bin")
    assert n.md5 == md5_hex(data) and n.length == len(data), n.props
    back = tmp_path / "back.bin"
    vos("vcp", f"{root}/d1/f.bin", back)
    assert back.read_bytes() == data

    p = vos("vls", "-l", f"{root}/d1")
    assert "f.bin" in p.stdout and str(len(data)) in p.stdout, p.stdout
    p = vos("vls", root)
    assert {"d1", "d2"} <= set(p.stdout.split()), p.stdout

    vos("vmv", f"{root}/d1/f.bin", f"{root}/d2/g.bin")
    assert not api.exists(f"{name}/d1/f.bin")
    assert api.node(f"{name}/d2/g.bin").md5 == md5_hex(data)

    vos("vln", f"{root}/d2/g.bin", f"{root}/d1/link")
    ln = api.node(f"{name}/d1/link")
    assert ln.type == "vos:LinkNode" and ln.target == f"{root}/d2/g.bin", (ln.type, ln.target)

    # A core property by its short name (vos expands it), and a custom one by its URI.
    custom = "ivo://example.org/vostok-test#quality"
    vos("vtag", f"{root}/d2/g.bin", "title=good", f"{custom}=fine")
    props = api.node(f"{name}/d2/g.bin").props
    assert props.get(P_TITLE) == "good" and props.get(custom) == "fine", props
    p = vos("vtag", f"{root}/d2/g.bin", "title")
    assert "good" in p.stdout
    vos("vtag", f"{root}/d2/g.bin", "title", custom, "--remove")
    props = api.node(f"{name}/d2/g.bin").props
    assert P_TITLE not in props and custom not in props, props

    vos("vlock", "--lock", f"{root}/d2/g.bin")
    assert api.node(f"{name}/d2/g.bin").props.get(P_LOCKED) == "true"
    # Locked: no delete, no new content (CADC's semantics), even for the owner.
    r = api.delete(f"{name}/d2/g.bin")
    assert r.status_code in (403, 409) and r.text.startswith(("NodeLocked", "PermissionDenied")), (
        r.status_code, r.text[:200])
    r, put = api.push_redirect(f"{name}/d2/g.bin", b"overwrite a locked node")
    assert put is None or put.status_code >= 400, "a locked node was overwritten"
    assert api.node(f"{name}/d2/g.bin").md5 == md5_hex(data)
    vos("vlock", "--unlock", f"{root}/d2/g.bin")
    assert api.node(f"{name}/d2/g.bin").props.get(P_LOCKED) in (None, "false")

    vos("vchmod", "o+r", f"{root}/d2/g.bin")
    assert api.node(f"{name}/d2/g.bin").props.get(P_PUBLIC) == "true"
    assert Vo(base_url, None).pull(f"{name}/d2/g.bin") == data
    vos("vchmod", "o-r", f"{root}/d2/g.bin")
    assert api.node(f"{name}/d2/g.bin").props.get(P_PUBLIC) in (None, "false")
    vos("vchmod", "g+r", f"{root}/d2/g.bin", "g1")
    assert "g1" in api.node(f"{name}/d2/g.bin").props.get(P_GROUPREAD, "")

    # A small file and vcp over an existing node (new content).
    data2 = b"second version\n"
    local.write_bytes(data2)
    vos("vcp", local, f"{root}/d2/g.bin")
    assert api.node(f"{name}/d2/g.bin").md5 == md5_hex(data2)
    # vcat (vos 3.7) ignores --token (its _cat() builds a Client without it): it reads
    # anonymously, so only a public node can be cat.
    vos("vchmod", "o+r", f"{root}/d2/g.bin")
    p = vos("vcat", f"{root}/d2/g.bin")
    assert p.stdout.startswith(data2.decode()), p.stdout
    vos("vchmod", "o-r", f"{root}/d2/g.bin")
    p = vos("vcat", f"{root}/d2/g.bin", check=False)
    assert p.returncode != 0 and "NotAuthenticated" in p.stderr, (p.returncode, p.stderr[-500:])

    vos("vrm", f"{root}/d1/link")
    assert not api.exists(f"{name}/d1/link") and api.exists(f"{name}/d2/g.bin")
    vos("vrm", f"{root}/d2/g.bin")
    assert not api.exists(f"{name}/d2/g.bin")
    vos("vrmdir", f"{root}/d1")
    vos("vrmdir", f"{root}/d2")
    assert not api.exists(f"{name}/d1") and not api.exists(f"{name}/d2")
    # An error the client must report: a missing node.
    p = vos("vls", f"{root}/nosuch", check=False)
    assert p.returncode != 0


# ---------------------------------------------------------------------------------------
# 3. Access control
# ---------------------------------------------------------------------------------------

ALLOW, DENY, EITHER = "allow", "deny", "either"


@pytest.fixture(scope="module")
def acl(base_url, users):
    """alice's nodes under /alice/acl. Her home and acl/ are made public (listable) at the end,
    so each node's own permissions decide (not the ancestors')."""
    alice = client(base_url, users, "alice")
    h = f"{users.name('alice')}/acl"
    alice.mkdir(h)
    private = {P_PUBLIC: "false"}
    nodes = {
        "priv": (f"{h}/priv.txt", "DataNode", private),
        "pdir": (f"{h}/pdir", "ContainerNode", private),
        "pdir/f": (f"{h}/pdir/f.txt", "DataNode", private),
        "gread": (f"{h}/gread.txt", "DataNode", {P_PUBLIC: "false", P_GROUPREAD: GMS + "g1"}),
        "gwrite": (f"{h}/gwrite", "ContainerNode", {P_PUBLIC: "false", P_GROUPWRITE: GMS + "g1"}),
        "gwrite/f": (f"{h}/gwrite/f.txt", "DataNode", {P_PUBLIC: "false",
                                                       P_GROUPWRITE: GMS + "g1"}),
        "pub": (f"{h}/pub.txt", "DataNode", {P_PUBLIC: "true"}),
    }
    content = {}
    for key, (path, kind, props) in nodes.items():
        r = alice.put_node(path, kind, props)
        assert r.status_code == 201, (key, r.status_code, r.text)
        if kind == "DataNode":
            content[key] = f"alice's {key} {secrets.token_hex(8)}".encode()
            alice.push(path, content[key])
    for p in (users.name("alice"), h):
        r = alice.set_props(p, {P_PUBLIC: "true"}, kind="ContainerNode")
        assert r.status_code == 200, r.text
    return {"alice": alice, "h": h, "nodes": nodes, "content": content}


def test_path_tricks(acl, base_url, users):
    alice = acl["alice"]
    bob = client(base_url, users, "bob")
    secret = acl["content"]["priv"]
    priv = acl["nodes"]["priv"][0]
    a, b = users.name("alice"), users.name("bob")
    bob_auth = {"Authorization": f"Bearer {users.tokens['bob']}"}
    problems = []

    rel = priv[len(a) + 1:]  # acl/priv.txt
    tricks = [
        f"/vospace/nodes/{b}/../{a}/{rel}",
        f"/vospace/nodes/{b}/./../{a}/{rel}",
        f"/vospace/nodes/{b}/%2e%2e/{a}/{rel}",
        f"/vospace/nodes/{b}/%2E%2E/{a}/{rel}",
        f"/vospace/nodes/{b}%2F..%2F{a}%2F{rel.replace('/', '%2F')}",
        f"/vospace/nodes/{b}/..%2F{a}/{rel}",
        f"/vospace/nodes//{a}//{rel}",
        f"/vospace/nodes/{a}/acl/./priv.txt",
        f"/vospace/nodes/{a}/acl/pdir/../priv.txt",
    ]
    for raw in tricks:
        for method in ("GET", "DELETE"):
            st, body, _ = raw_request(base_url, method, raw + ("?detail=max" if method == "GET" else ""),
                                      headers=bob_auth)
            if st < 300 or st >= 500 or acl["content"]["priv"][:20] in body:
                problems.append(f"bob {method} {raw}: HTTP {st} {body[:200]!r}")
            if not alice.exists(priv):
                problems.append(f"bob {method} {raw} deleted alice's private node")
                return
        # Data through a trick path in a transfer target.
        target = f"vos://{AUTHORITY}" + raw[len("/vospace/nodes"):]
        r = bob.redirect(None, "pullFromVoSpace", target=target)
        if r.status_code == 303:
            got = requests.get(r.headers["Location"], timeout=HTTP_TIMEOUT)
            if secret in got.content:
                problems.append(f"bob pulled alice's private bytes with TARGET={target}")
        elif r.status_code < 400 or r.status_code >= 500:
            problems.append(f"bob pull TARGET={target}: HTTP {r.status_code} {r.text[:200]!r}")
    # Creating through trick paths does not land in alice's space.
    for raw in (f"/vospace/nodes/{b}/../{a}/acl/evil1", f"/vospace/nodes/{b}/%2e%2e/{a}/acl/evil2",
                f"/vospace/nodes/{b}%2F..%2F{a}%2Facl%2Fevil3"):
        body = node_doc(urllib.parse.unquote(raw[len("/vospace/nodes/"):])).encode()
        st, resp, _ = raw_request(base_url, "PUT", raw,
                                  headers={**bob_auth, "Content-Type": "text/xml"}, body=body)
        if st < 300 or st >= 500:
            problems.append(f"bob PUT {raw}: HTTP {st} {resp[:200]!r}")
    for n in ("evil1", "evil2", "evil3"):
        if alice.exists(f"{a}/acl/{n}"):
            problems.append(f"bob created {a}/acl/{n}")
    # Alice herself with double slashes: her node, or a clean 400, never a 500.
    st, body, _ = raw_request(base_url, "GET", f"/vospace/nodes//{a}//acl//priv.txt",
                              headers={"Authorization": f"Bearer {users.tokens['alice']}"})
    if st not in (200, 400):
        problems.append(f"alice GET with double slashes: HTTP {st} {body[:200]!r}")

    # A link in bob's space to alice's private node.
    r = bob.put_node(f"{b}/to-alice", "LinkNode", target=node_uri(priv))
    if r.status_code == 201:
        g = bob.get_node(f"{b}/to-alice", detail="max")
        if g.status_code != 200:
            problems.append(f"bob GET his own link node: HTTP {g.status_code}")
        else:
            info = parse_node(g.content)
            if info.target != node_uri(priv):
                problems.append(f"link target shown as {info.target}")
            alice_md5 = alice.node(priv).md5
            if alice_md5 and alice_md5.encode() in g.content:
                problems.append("bob's link node shows the MD5 of alice's private node")
            if secret in g.content:
                problems.append("bob's link node shows alice's private bytes")
        r2, got = bob.pull_redirect(f"{b}/to-alice")
        if got is not None and secret in got.content:
            problems.append("bob read alice's private bytes through his link node")
        elif got is None and r2.status_code not in (400, 403, 404):
            problems.append(f"pull through the link: HTTP {r2.status_code} {r2.text[:200]!r}")
        tdoc = bob.synctrans(node_uri(f"{b}/to-alice"), "pullFromVoSpace")
        if tdoc.status_code == 303:
            d = bob.request("GET", tdoc.headers["Location"])
            for ep in ET.fromstring(d.content).iter(V("endpoint")) if d.status_code == 200 else []:
                if secret in requests.get(ep.text, timeout=HTTP_TIMEOUT).content:
                    problems.append("bob read alice's private bytes through his link (transfer doc)")
        # Writing through the link must not change alice's node.
        bob.push_redirect(f"{b}/to-alice", b"overwritten by bob")
        if alice.pull(priv) != secret:
            problems.append("bob overwrote alice's private node through his link")
    elif r.status_code not in (400, 403):
        problems.append(f"bob creating a link to alice's node: HTTP {r.status_code} {r.text[:200]!r}")

    # Transfers aimed at alice's private node.
    r = bob.synctrans(node_uri(priv), "pullFromVoSpace")
    if r.status_code != 403:
        problems.append(f"bob sync pull alice's private node: HTTP {r.status_code}, expected 403")
    r = bob.synctrans(node_uri(priv), "pushToVoSpace", [HTTPPUT])
    if r.status_code != 403:
        problems.append(f"bob sync push to alice's private node: HTTP {r.status_code}, expected 403")
    r, put = bob.push_redirect(priv, b"bob again")
    if put is not None and put.status_code < 300:
        problems.append("bob's redirect push to alice's private node succeeded")
    bob.push(f"{b}/mine.txt", b"bob's own")
    for src, dest, keep in ((priv, f"{b}/stolen", False), (priv, f"{b}/copied", True),
                            (f"{b}/mine.txt", f"{a}/acl/planted", False),
                            (f"{b}/mine.txt", f"{a}/acl/planted-copy", True)):
        r, job = bob.async_transfer(transfer_doc(node_uri(src), node_uri(dest), keep_bytes=keep))
        if job:
            ph = bob.wait(job)
            if ph != "ERROR":
                problems.append(f"bob's {'copy' if keep else 'move'} {src} -> {dest}: {ph}")
        elif r.status_code not in (400, 403):
            problems.append(f"bob's transfer {src} -> {dest}: HTTP {r.status_code}")
    if not alice.exists(priv) or alice.pull(priv) != secret:
        problems.append("alice's private node changed after bob's transfers")
    for p in (f"{b}/stolen", f"{b}/copied"):
        if bob.exists(p):
            problems.append(f"{p} exists after a refused transfer")
    for p in (f"{a}/acl/planted", f"{a}/acl/planted-copy"):
        if alice.exists(p):
            problems.append(f"{p} exists after a refused transfer")
    if not bob.exists(f"{b}/mine.txt"):
        problems.append("bob's file vanished in a refused move")

    # Another authority.
    r = bob.put_node(f"{b}/other-auth", authority="evil.example!vospace")
    if r.status_code != 400 or not r.text.startswith("InvalidURI"):
        problems.append(f"PUT with another authority: HTTP {r.status_code} {r.text[:100]!r}")
    for direction in ("pullFromVoSpace", "pushToVoSpace"):
        r = bob.synctrans(f"vos://evil.example!vospace/{b}/mine.txt", direction, [HTTPGET, HTTPPUT])
        if r.status_code != 400 or not r.text.startswith("InvalidURI"):
            problems.append(f"synctrans {direction} at another authority: HTTP {r.status_code} "
                            f"{r.text[:100]!r}")
    r, job = bob.async_transfer(transfer_doc(node_uri(f"{b}/mine.txt"),
                                             f"vos://evil.example!vospace/{b}/moved"))
    if job and bob.wait(job) != "ERROR":
        problems.append("move to another authority did not fail")
    assert not problems, "\n".join(problems)


def test_access_matrix(acl, base_url, users):
    alice = acl["alice"]
    nodes, content = acl["nodes"], acl["content"]
    actors = {w: client(base_url, users, w) for w in ("alice", "bob", "carol", "anon")}
    rows = []  # (actor, node, op, expected, status, outcome, ok, note)

    def record(actor, key, op, expected, status, allowed, note=""):
        if expected == EITHER:
            ok = True
        elif expected == ALLOW:
            ok = allowed
        else:
            ok = (not allowed) and status in ((401, 403) if actor == "anon" else (403,))
        rows.append((actor, key, op, expected, status, ALLOW if allowed else DENY, ok, note))

    def can_read(actor, key):
        if actor == "alice" or key == "pub":
            return ALLOW
        if actor == "bob" and key in ("gread", "gwrite", "gwrite/f"):
            return ALLOW  # group read; group write implies read (as CADC's services do)
        return DENY

    def can_write(actor, key):
        if actor == "alice":
            return ALLOW
        if actor == "bob" and key in ("gwrite", "gwrite/f"):
            return ALLOW
        return DENY

    data_keys = [k for k, v in nodes.items() if v[1] == "DataNode"]
    cont_keys = [k for k, v in nodes.items() if v[1] == "ContainerNode"]

    # Reads.
    for actor, c in actors.items():
        for key in data_keys:
            path = nodes[key][0]
            r, got = c.pull_redirect(path)
            allowed = got is not None and got.status_code == 200 and got.content == content[key]
            st = r.status_code if got is None else got.status_code
            leak = got is not None and content[key] in got.content and not allowed
            record(actor, key, "read data", can_read(actor, key), st, allowed or leak)
        for key in nodes:
            path = nodes[key][0]
            r = c.get_node(path, detail="max", limit=0)
            record(actor, key, "read metadata", can_read(actor, key), r.status_code,
                   r.status_code == 200)
        for key in cont_keys:
            r = c.get_node(nodes[key][0], detail="min")
            record(actor, key, "list", can_read(actor, key), r.status_code, r.status_code == 200)

    # Writes: data, properties, new children.
    for actor, c in actors.items():
        for key in data_keys:
            path = nodes[key][0]
            new = f"{actor} was here {secrets.token_hex(4)}".encode()
            r, put = c.push_redirect(path, new)
            st = r.status_code if put is None else put.status_code
            now = alice.pull(path)
            allowed = now == new
            if allowed:
                content[key] = new
            else:
                assert now == content[key], f"{actor}'s refused write changed {key}"
            record(actor, key, "write data", can_write(actor, key), st, allowed)
        for key in nodes:
            path, kind, _ = nodes[key]
            title = f"title by {actor}"
            r = c.set_props(path, {P_TITLE: title}, kind=kind)
            now = alice.node(path, limit=0).props.get(P_TITLE)
            record(actor, key, "set property", can_write(actor, key), r.status_code, now == title)
        for key in cont_keys:
            child = f"{nodes[key][0]}/child-{actor}"
            r = c.put_node(child)
            created = alice.exists(child)
            record(actor, key, "create child", can_write(actor, key), r.status_code, created)

    # Deletes (last): a node's deletion needs write permission on its parent container.
    for actor in ("carol", "anon", "bob", "alice"):
        c = actors[actor]
        targets = [("priv", nodes["priv"][0]), ("gread", nodes["gread"][0]),
                   ("pub", nodes["pub"][0]), ("pdir/f", nodes["pdir"][0] + "/f.txt"),
                   ("gwrite/f", nodes["gwrite/f"][0]),
                   ("gwrite/child-alice", nodes["gwrite"][0] + "/child-alice")]
        if actor == "bob":
            targets.append(("gwrite/child-bob", nodes["gwrite"][0] + "/child-bob"))
        for key, path in targets:
            if not alice.exists(path):
                continue
            r = c.delete(path)
            gone = not alice.exists(path)
            if key.startswith("gwrite/"):
                expected = ALLOW if actor in ("alice", "bob") else DENY
            else:
                expected = ALLOW if actor == "alice" else DENY
            record(actor, key, "delete", expected, r.status_code, gone)
        # The group-write container itself: its parent is alice's only.
        r = c.delete(nodes["gwrite"][0])
        record(actor, "gwrite", "delete", ALLOW if actor == "alice" else DENY, r.status_code,
               not alice.exists(nodes["gwrite"][0]),
               note="parent acl/ is not group-writable")

    bad = [row for row in rows if not row[6]]
    table = "\n".join(f"{'' if ok else '!!'}{a:6} {k:20} {op:14} expected {e:6} got {o:6} "
                      f"HTTP {st} {note}" for a, k, op, e, st, o, ok, note in rows)
    print(table)
    assert not bad, f"{len(bad)} access-control cells wrong (marked !!):\n{table}"


# ---------------------------------------------------------------------------------------
# 5. Quota
# ---------------------------------------------------------------------------------------


def count_objects(data_dir: Path):
    """The objects under vospace/objects of the data folder (local or in the bucket)."""
    return len(data_files(data_dir, "vospace/objects"))


def test_quota(base_url, users, server):
    q = client(base_url, users, "quser")
    home = users.name("quser")
    first = os.urandom(600_000)
    q.push(f"{home}/first.bin", first)
    usage = q.node(home, limit=0).length
    objects = count_objects(server.data_dir)

    over = os.urandom(500_000)
    # Declared length (Content-Length): refused.
    r, put = q.push_redirect(f"{home}/over.bin", over)
    failure = put if put is not None else r
    assert_fault(failure, 413, "QuotaExceeded")
    g = q.get_node(f"{home}/over.bin")
    assert g.status_code == 404 or parse_node(g.content).md5 is None, g.text[:300]
    # Streamed (chunked, no length): refused once past the quota.
    r, put = q.push_redirect(f"{home}/over2.bin", iter([over[i:i + 65536]
                                                        for i in range(0, len(over), 65536)]))
    failure = put if put is not None else r
    assert_fault(failure, 413, "QuotaExceeded")
    g = q.get_node(f"{home}/over2.bin")
    assert g.status_code == 404 or parse_node(g.content).md5 is None, g.text[:300]
    # Overwriting the first file with more than the quota: refused, old content stays.
    r, put = q.push_redirect(f"{home}/first.bin", os.urandom(1_100_000))
    failure = put if put is not None else r
    assert_fault(failure, 413, "QuotaExceeded")
    assert q.pull(f"{home}/first.bin") == first
    assert q.node(home, limit=0).length == usage
    assert count_objects(server.data_dir) == objects, "an object was left behind"
    # Within the quota it still works.
    small = os.urandom(300_000)
    q.push(f"{home}/small.bin", small)
    assert q.node(f"{home}/small.bin").md5 == md5_hex(small)


# ---------------------------------------------------------------------------------------
# 4. Crash: SIGKILL during uploads and moves
# ---------------------------------------------------------------------------------------


class BigUpload:
    """A deterministic large body, sent slowly from a generator; its MD5 known in advance."""

    CHUNK = 1024 * 1024

    def __init__(self, mib, delay):
        self.mib, self.delay = mib, delay
        self.base = os.urandom(self.CHUNK)
        h = hashlib.md5()
        for i in range(mib):
            h.update(self.chunk(i))
        self.md5 = h.hexdigest()
        self.acked = False
        self.error = None
        self.thread = None

    def chunk(self, i):
        return i.to_bytes(8, "big") + self.base[8:]

    def body(self):
        for i in range(self.mib):
            yield self.chunk(i)
            time.sleep(self.delay)

    def start(self, vo, path):
        def run():
            try:
                r, put = vo.push_redirect(path, self.body())
                self.acked = put is not None and put.status_code in (200, 201, 204)
                if not self.acked:
                    self.error = f"{r.status_code} {put.status_code if put is not None else ''}"
            except Exception as e:  # the server was killed
                self.error = repr(e)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


def walk(vo, path):
    """Every node under path: {path: NodeInfo}."""
    out = {}
    n = vo.node(path, detail="max")
    out[path] = n
    if n.type == "vos:ContainerNode":
        prefix = node_uri("")
        for child in n.children:
            out.update(walk(vo, child[len(prefix):]))
    return out


def test_crash_consistency(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("vostok-vospace-crash")
    data = root / "data"
    data.mkdir()
    if data_files(server.data_dir, "catalogs"):
        data_copy(server.data_dir, data, "catalogs")
    binary = vostok_binary()
    s = OwnServer(binary, data, root / "server.log", ready="/vospace/availability")
    s.start()
    try:
        name = "crash" + SUFFIX
        token = add_user(data, name, binary=binary)  # while the server runs
        vo = lambda: Vo(s.base_url, token, name="crash")  # noqa: E731 (the port changes)
        c = vo()
        # Stored before any crash: must survive everything.
        c.mkdir(f"{name}/keep")
        kept = {}
        for i in range(5):
            b = os.urandom(1000 + i * 300_000)
            c.push(f"{name}/keep/f{i}", b)
            kept[f"{name}/keep/f{i}"] = md5_hex(b)
        c.mkdir(f"{name}/new")
        c.mkdir(f"{name}/mv")
        c.mkdir(f"{name}/cp")
        # A big file copied (keepBytes true) in each round: copying bytes takes time.
        big = BigUpload(64, 0)
        r, put = c.push_redirect(f"{name}/big", big.body())
        assert put is not None and put.status_code in (200, 201, 204), (r.status_code, put)
        kept[f"{name}/big"] = big.md5
        # path -> set of acceptable MD5s (None: absent or without content).
        expect = {}
        moves = []  # (job url or None, {src file: dst file}, md5 by src)

        # (delay before the kill, MiB per upload, seconds between 1 MiB chunks)
        # (delay before the kill, MiB of the 3 uploads, seconds between 1 MiB chunks): killed
        # early in the uploads, when some have finished and others not, and just after
        # everything was acknowledged.
        rounds = [(0.4, (64, 64, 64), 0.02), (1.0, (8, 48, 128), 0.01), (None, (8, 8, 8), 0.0)]
        for rnd, (delay, mib, pace) in enumerate(rounds):
            c = vo()
            # A container of three files to move.
            src = f"{name}/mv/src{rnd}"
            c.mkdir(src)
            files = {}
            for j in range(3):
                b = os.urandom(100_000 + j)
                c.push(f"{src}/m{j}", b)
                files[f"{src}/m{j}"] = md5_hex(b)
            # Then, all at once: two new files, an overwrite of a kept file, the copy, the move.
            ups = []
            for k in range(2):
                ups.append((BigUpload(mib[k], pace), f"{name}/new/r{rnd}-{k}", {None}))
            path = f"{name}/keep/f{rnd}"
            ups.append((BigUpload(mib[2], pace), path, {kept.pop(path)}))
            for u, path, _ in ups:
                u.start(c, path)
            _, copy_job = c.async_transfer(transfer_doc(node_uri(f"{name}/big"),
                                                        node_uri(f"{name}/cp/c{rnd}"),
                                                        keep_bytes=True))
            assert copy_job, "copy not accepted"
            _, job = c.async_transfer(transfer_doc(node_uri(src), node_uri(f"{name}/mv/dst{rnd}"),
                                                   keep_bytes=False))
            assert job, "move not accepted"
            moves.append((job, src, f"{name}/mv/dst{rnd}", files))
            if delay is None:
                # Wait until everything is acknowledged, then kill at once.
                for u, _, _ in ups:
                    u.thread.join(timeout=120)
                    assert u.acked, f"upload failed without a crash: {u.error}\n{s.tail()}"
                assert c.wait(job) == "COMPLETED"
                assert c.wait(copy_job) == "COMPLETED"
            else:
                time.sleep(delay)
            acked_moves = {job for job, *_ in moves if _phase_or_none(c, job) == "COMPLETED"}
            copied = _phase_or_none(c, copy_job) == "COMPLETED"
            s.kill()
            expect[f"{name}/cp/c{rnd}"] = {big.md5} if copied else {None, big.md5}
            for u, path, accept in ups:
                u.thread.join(timeout=60)
                assert not u.thread.is_alive()
                print(f"round {rnd + 1}: upload {path} ({u.mib} MiB) acknowledged: {u.acked} "
                      f"({u.error or 'ok'})")
                expect[path] = {u.md5} if u.acked else accept | {u.md5}
                if path.startswith(f"{name}/keep/"):
                    kept[path] = None  # checked through expect
            if rnd == 0:
                assert not any(u.acked for u, _, _ in ups), (
                    "the first kill came after the uploads finished: slow them down")
            s.start()
            c = vo()
            # Check everything after this restart.
            problems = []
            for path, md5 in kept.items():
                if md5 is None:
                    continue
                n = c.get_node(path)
                if n.status_code != 200 or parse_node(n.content).md5 != md5:
                    problems.append(f"{path} (stored before the crash) changed: {n.status_code}")
            for path, accept in expect.items():
                g = c.get_node(path, detail="max")
                got = parse_node(g.content).md5 if g.status_code == 200 else None
                if got not in accept:
                    problems.append(f"{path}: MD5 {got}, expected one of {accept} "
                                    f"(HTTP {g.status_code})")
                elif got is not None and md5_hex(c.pull(path)) != got:
                    problems.append(f"{path}: bytes do not match the MD5 property {got}")
                elif g.status_code == 200:
                    n = parse_node(g.content)
                    if got is None and n.length not in (None, 0):
                        problems.append(f"{path}: length {n.length} without an MD5 (partial?)")
            for job, src, dst, files in moves:
                for f, md5 in files.items():
                    moved = dst + f[len(src):]
                    at_src, at_dst = c.exists(f), c.exists(moved)
                    if at_src == at_dst:
                        problems.append(f"move {src} -> {dst}: {f} at source {at_src}, "
                                        f"at destination {at_dst}")
                        continue
                    if job in acked_moves and at_src:
                        problems.append(f"move {src} -> {dst} was COMPLETED before the kill, "
                                        f"but {f} is still at the source")
                    here = f if at_src else moved
                    if c.node(here).md5 != md5 or md5_hex(c.pull(here)) != md5:
                        problems.append(f"{here}: content changed by the interrupted move")
            # Orphans: objects on disk vs DataNodes with content (allow a little time for a
            # startup sweep).
            deadline = time.monotonic() + 15
            while True:
                tree = walk(c, name)
                md5s = [n.md5 for n in tree.values()
                        if n.type == "vos:DataNode" and n.md5 is not None]
                nobj = count_objects(data)
                # One object per DataNode with content (copies may share one: at least one per
                # distinct content).
                if len(set(md5s)) <= nobj <= len(md5s) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            print(f"round {rnd + 1}: copy completed before the kill: {copied}; moves "
                  f"completed: {len(acked_moves)}; {nobj} objects, {len(md5s)} DataNodes with "
                  f"content; states: " + ", ".join(
                      f"{p.rsplit('/', 1)[1]}={'absent' if c.get_node(p).status_code == 404 else c.node(p).md5}"
                      for p in expect))
            if not len(set(md5s)) <= nobj <= len(md5s):
                problems.append(f"{nobj} objects in {data / 'vospace' / 'objects'} but "
                                f"{len(md5s)} DataNodes with content ({len(set(md5s))} distinct)")
            leftovers = [(str(p.relative_to(data)), p.stat().st_size)
                         for p in (data / "vospace").rglob("*")
                         if p.is_file() and "objects" not in p.relative_to(data / "vospace").parts
                         and p.stat().st_size > 1024 * 1024]
            if leftovers:
                problems.append(f"large files left outside vospace/objects: {leftovers[:10]}")
            assert not problems, (f"after SIGKILL #{rnd + 1} (delay {delay}s):\n"
                                  + "\n".join(problems) + f"\n--- server log ---\n{s.tail()}")
            # The next round's moves start from a clean list; kept files stay checked.
            for path, accept in list(expect.items()):
                g = c.get_node(path, detail="max")
                now = parse_node(g.content).md5 if g.status_code == 200 else None
                expect[path] = {now}
            moves = [(None, *m[1:]) for m in moves]
    finally:
        s.stop()


def _phase_or_none(vo, job):
    if job is None:
        return None
    try:
        return vo.phase(job)
    except AssertionError:
        return None
