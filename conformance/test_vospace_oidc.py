"""VOSpace login through OpenID Connect (`[vospace.oidc]`): JWTs of a configured issuer are
accepted as bearer tokens, checked against the keys the issuer publishes.

A fake issuer runs in this process (http.server on 127.0.0.1: the discovery document
`/.well-known/openid-configuration` and the key set `/jwks`), and a vostok server of its own
(no demo catalogs) is configured with it. Tokens are signed here with `cryptography`.

* A first login provisions the user (home `/NAME`); the user creates, reads, pushes and pulls
  nodes; a second token for the same user is the same user. RS256 and ES256.
* Groups come from the token's `groups` claim: a `groupread` node is readable by members only.
* Refused with 401 (and no user provisioned): expired, another audience, another issuer, signed
  by a key the issuer does not publish, tampered payload, `alg: none`, HS256 keyed with the
  public key, an unknown kid, no `exp`, a name that is no vostok user name.
* vostok's own tokens (`vostok user add`) still work beside JWTs.
* Key rotation: a token with a new kid is refused until a minute after the last fetch of the
  keys (fetches are rate-limited), then the keys are fetched again and it is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from vostok_helpers import OwnServer

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
AUTHORITY = "vostok.example!vospace"
CORE = "ivo://ivoa.net/vospace/core#"
P_TITLE, P_CREATOR = CORE + "title", CORE + "creator"
P_GROUPREAD, P_PUBLIC = CORE + "groupread", CORE + "ispublic"
HTTPGET, HTTPPUT = CORE + "httpget", CORE + "httpput"
GMS = "ivo://vostok.example/gms?"
AUDIENCE = "vostok"
TIMEOUT = (10, 60)
# How long fetched keys protect against refetching (src/vospace/oidc.rs MIN_REFETCH).
MIN_REFETCH = 60


def V(tag):
    return f"{{{VOS_NS}}}{tag}"


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64json(o) -> str:
    return b64(json.dumps(o, separators=(",", ":")).encode())


def rsa_jwk(key, kid):
    n = key.public_key().public_numbers()
    big = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))  # noqa: E731
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": big(n.n), "e": big(n.e)}


def ec_jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
            "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}


def sign(key, claims, kid, alg=None):
    alg = alg or ("ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256")
    signing_input = f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64json(claims)}"
    data = signing_input.encode()
    if alg == "RS256":
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "HS256":  # `key` is the HMAC secret
        sig = hmac.new(key, data, hashlib.sha256).digest()
    else:  # "none"
        sig = b""
    return f"{signing_input}.{b64(sig)}"


class Issuer:
    """A fake OIDC issuer: keys, a discovery document and a JWKS over HTTP."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.next_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Never published: tokens it signs claim kid "k1".
        self.rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = [rsa_jwk(self.rsa, "k1"), ec_jwk(self.ec, "e1")]
        self.jwks_fetches = []  # monotonic times
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif self.path == "/jwks":
                    issuer.jwks_fetches.append(time.monotonic())
                    body = {"keys": list(issuer.published)}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def claims(self, user, **extra):
        now = int(time.time())
        # One subject per person (the login is iss + sub), whatever their tokens' other claims.
        subject = "sub-" + hashlib.sha256(str(user).encode()).hexdigest()[:16]
        c = {"iss": self.url, "aud": AUDIENCE, "sub": subject,
             "preferred_username": user, "groups": [], "iat": now, "nbf": now,
             "exp": now + 3600, "jti": secrets.token_hex(8)}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, user, key=None, kid="k1", **extra):
        return sign(key or self.rsa, self.claims(user, **extra), kid)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer():
    i = Issuer()
    yield i
    i.stop()


@pytest.fixture(scope="module")
def vostok(issuer, tmp_path_factory):
    from conftest import find_binary
    root = tmp_path_factory.mktemp("vostok-oidc")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text(
        "demo = false\n\n"
        "[vospace.oidc]\n"
        f'issuer = "{issuer.url}"\n'
        f'audience = "{AUDIENCE}"\n'
        'groups_claim = "groups"\n')
    s = OwnServer(find_binary(), data, root / "server.log", config=config, ready="/vospace/availability")
    s.start()
    yield s
    s.stop()


# ---------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------


def node_uri(path):
    return f"vos://{AUTHORITY}/{path.strip('/')}"


def node_doc(path, kind="DataNode", props=None):
    props_xml = "".join(f"<vos:property uri={quoteattr(u)}>{escape(v)}</vos:property>"
                        for u, v in (props or {}).items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<vos:node xmlns:vos="{VOS_NS}" '
            f'xmlns:xsi="{XSI_NS}" xsi:type="vos:{kind}" uri={quoteattr(node_uri(path))}>'
            f"<vos:properties>{props_xml}</vos:properties></vos:node>")


def transfer_doc(path, direction, protocol):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<vos:transfer xmlns:vos="{VOS_NS}" '
            f'version="2.1"><vos:target>{escape(node_uri(path))}</vos:target>'
            f"<vos:direction>{direction}</vos:direction>"
            f'<vos:protocol uri="{protocol}"/></vos:transfer>')


class Vo:
    def __init__(self, base, token=None):
        self.base, self.token = base, token

    def request(self, method, url, headers=None, **kw):
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        h.update(headers or {})
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, url, headers=h, **kw)

    def url(self, path):
        return f"{self.base}/vospace/nodes/{urllib.parse.quote(path.strip('/'))}"

    def get(self, path, **params):
        return self.request("GET", self.url(path), params=params)

    def put(self, path, kind="DataNode", props=None):
        return self.request("PUT", self.url(path), data=node_doc(path, kind, props).encode(),
                            headers={"Content-Type": "text/xml"})

    def endpoint(self, path, direction, protocol):
        r = self.request("POST", f"{self.base}/vospace/synctrans",
                         data=transfer_doc(path, direction, protocol).encode(),
                         headers={"Content-Type": "text/xml"})
        assert r.status_code == 303, f"synctrans {direction} {path}: {r.status_code} {r.text[:500]}"
        d = self.request("GET", r.headers["Location"])
        assert d.status_code == 200, d.text[:500]
        endpoints = [e.text for e in ET.fromstring(d.content).iter(V("endpoint"))]
        assert endpoints, d.text[:1000]
        return endpoints[0]


def props_of(content: bytes) -> dict:
    root = ET.fromstring(content)
    props = root.find(V("properties"))
    return {p.get("uri"): (p.text or "") for p in (props if props is not None else [])}


def assert_401(r, what):
    assert r.status_code == 401, f"{what}: HTTP {r.status_code} {r.text[:500]}"
    assert r.text.startswith("NotAuthenticated"), f"{what}: {r.text[:500]}"


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------


def test_fake_issuer(issuer):
    d = requests.get(issuer.url + "/.well-known/openid-configuration", timeout=10).json()
    assert d["issuer"] == issuer.url
    keys = requests.get(d["jwks_uri"], timeout=10).json()["keys"]
    assert {k["kid"] for k in keys} == {"k1", "e1"}
    issuer.jwks_fetches.clear()


def test_first_login_provisions_home(vostok, issuer):
    dana = Vo(vostok.base_url, issuer.token("dana"))
    r = dana.get("dana")
    assert r.status_code == 200, f"dana's home after her first login: {r.status_code} {r.text[:500]}"
    assert issuer.jwks_fetches, "the server never fetched the issuer's keys"
    r = dana.put("dana/notes", "ContainerNode", {P_TITLE: "Notes"})
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    r = dana.put("dana/notes/a.txt", props={P_TITLE: "A"})
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    r = dana.get("dana/notes/a.txt", detail="max")
    assert r.status_code == 200, r.text[:500]
    props = props_of(r.content)
    assert props.get(P_TITLE) == "A"
    assert props.get(P_CREATOR, "").endswith("dana"), props
    children = [n.get("uri") for n in ET.fromstring(dana.get("dana/notes").content).iter(V("node"))]
    assert node_uri("dana/notes/a.txt") in children, children


def test_bytes_round_trip(vostok, issuer):
    dana = Vo(vostok.base_url, issuer.token("dana"))
    data = secrets.token_bytes(100_000)
    put = dana.endpoint("dana/notes/b.bin", "pushToVoSpace", HTTPPUT)
    r = requests.put(put, data=data, timeout=TIMEOUT)
    assert r.status_code in (200, 201, 204), f"{r.status_code} {r.text[:500]}"
    get = dana.endpoint("dana/notes/b.bin", "pullFromVoSpace", HTTPGET)
    r = requests.get(get, timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == data


def test_second_token_same_user(vostok, issuer):
    # Another token of the same subject (other jti, times): the same user, no second
    # provisioning.
    again = Vo(vostok.base_url, issuer.token("dana", iat=int(time.time()) - 30))
    r = again.get("dana/notes/a.txt")
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    code, out = vostok.user_add("dana")
    assert code != 0, f"`vostok user add dana` succeeded: dana was not provisioned? {out}"
    # Another subject naming dana is not dana (test_security.py has the whole rename case).
    other = Vo(vostok.base_url, issuer.token("dana", sub="someone-else"))
    assert other.get("dana/notes/a.txt").status_code == 401


def test_es256(vostok, issuer):
    erin = Vo(vostok.base_url, issuer.token("erin", key=issuer.ec, kid="e1"))
    r = erin.put("erin/x.txt")
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    assert erin.get("erin/x.txt").status_code == 200


def test_groups_from_token(vostok, issuer):
    erin = Vo(vostok.base_url, issuer.token("erin", key=issuer.ec, kid="e1"))
    r = erin.put("erin/team.txt", props={P_PUBLIC: "false", P_GROUPREAD: GMS + "team"})
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    member = Vo(vostok.base_url, issuer.token("dana", groups=["other", "team"]))
    r = member.get("erin/team.txt")
    assert r.status_code == 200, f"a member of team: {r.status_code} {r.text[:500]}"
    outsider = Vo(vostok.base_url, issuer.token("dana", groups=["other"]))
    r = outsider.get("erin/team.txt")
    assert r.status_code == 403, f"not a member of team: {r.status_code} {r.text[:500]}"
    assert Vo(vostok.base_url).get("erin/team.txt").status_code == 401


def refused_tokens(issuer):
    """(what, token) pairs, each naming mallory, that must all be refused."""
    now = int(time.time())
    c = issuer.claims
    ok = issuer.token("mallory")
    h, p, s = ok.split(".")
    other_user = b64json(c("dana"))
    public_pem = issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [
        ("expired", issuer.token("mallory", exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
        ("another audience", issuer.token("mallory", aud="someone-else")),
        ("audience list without vostok", issuer.token("mallory", aud=["a", "b"])),
        ("another issuer", issuer.token("mallory", iss=issuer.url + "/other")),
        ("a key the issuer does not publish", issuer.token("mallory", key=issuer.rogue)),
        ("tampered payload", f"{h}.{b64json(c('mallory', groups=['admin']))}.{s}"),
        ("another user's claims, mallory's signature", f"{h}.{other_user}.{s}"),
        ("tampered signature", f"{h}.{p}.{s[:-4]}{'AAAA' if s[-4:] != 'AAAA' else 'BBBB'}"),
        ("alg none", sign(None, c("mallory"), "k1", alg="none")),
        ("HS256 keyed with the public key", sign(public_pem, c("mallory"), "k1", alg="HS256")),
        ("unknown kid", issuer.token("mallory", kid="nope")),
        ("no exp", issuer.token("mallory", exp=None)),
        ("not valid yet", issuer.token("mallory", nbf=now + 3600)),
        ("invalid user name", issuer.token("mallory@example.org")),
        ("RS256 token claiming the EC key", issuer.token("mallory", kid="e1")),
        ("garbage with dots", "a.b.c"),
    ]


def test_refused_tokens(vostok, issuer):
    for what, token in refused_tokens(issuer):
        mallory = Vo(vostok.base_url, token)
        assert_401(mallory.put("mallory/x.txt"), what)
        assert_401(mallory.get("mallory"), what)
    # None of them provisioned mallory.
    code, out = vostok.user_add("mallory")
    assert code == 0, f"mallory was provisioned by a refused token: {out}"


def test_anonymous_and_other_users(vostok, issuer):
    assert Vo(vostok.base_url).put("dana/anon.txt").status_code == 401
    frank = Vo(vostok.base_url, issuer.token("frank"))
    r = frank.put("dana/frank.txt")
    assert r.status_code == 403, f"{r.status_code} {r.text[:500]}"


def test_own_tokens_still_work(vostok):
    code, out = vostok.user_add("olga")
    assert code == 0, out
    olga = Vo(vostok.base_url, out.split()[-1])
    r = olga.put("olga/y.txt")
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    assert_401(Vo(vostok.base_url, "0" * 64).get("olga"), "an unknown vostok token")


def test_key_rotation(vostok, issuer):
    """Last: it waits up to a minute for the refetch rate limit."""
    assert issuer.jwks_fetches, "no fetch of the keys yet"
    issuer.published.append(rsa_jwk(issuer.next_rsa, "k2"))
    fetches = len(issuer.jwks_fetches)
    new = Vo(vostok.base_url, issuer.token("dana", key=issuer.next_rsa, kid="k2"))
    if time.monotonic() - issuer.jwks_fetches[-1] < MIN_REFETCH - 5:
        # Within a minute of the last fetch: no refetch, refused.
        assert_401(new.get("dana"), "a new kid within a minute of the last fetch")
        assert len(issuer.jwks_fetches) == fetches, "the keys were refetched within a minute"
    time.sleep(max(0.0, issuer.jwks_fetches[-1] + MIN_REFETCH + 1 - time.monotonic()))
    r = new.get("dana")
    assert r.status_code == 200, f"a new kid a minute later: {r.status_code} {r.text[:500]}"
    assert len(issuer.jwks_fetches) == fetches + 1
    # The old key is still published and cached.
    assert Vo(vostok.base_url, issuer.token("dana")).get("dana").status_code == 200
    assert len(issuer.jwks_fetches) == fetches + 1
