"""TLS to the PostgreSQL database of the records ([metadata] url, libpq's sslmode).

A private cluster (conformance/pg_oracle.py) with ssl = on, its certificate signed by a
throw-away certificate authority made here with the `openssl` command (for localhost and
127.0.0.1), and a pg_hba.conf that accepts TCP connections over TLS only (`hostssl`; the role
vostok logs in with a password, SCRAM).

* sslmode=verify-full with the authority as `[metadata] ca_file`: `vostok config check` shows
  the TLS in effect, `vostok user add` and `vostok serve` run; an async TAP job and a VOSpace
  node are written, their records are in PostgreSQL, and every connection vostok holds is
  encrypted (pg_stat_ssl).
* Refused at start with a message naming the problem, the password never shown: another
  authority (the certificate is not trusted), sslmode=disable (the server accepts TLS only),
  verify-full to a host name the certificate does not hold (verify-ca, which does not check
  it, connects), a missing ca_file, require against a server whose TLS is off (last: it
  turns TLS off for a moment).
* A client certificate (sslcert, sslkey) logs in a role pg_hba.conf admits by certificate only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import pg_oracle
from conftest import find_binary, free_port
from vostok_helpers import REPO, http_get, http_post

PASSWORD = "Tls-S3cret-pw"
DB = "vostok_tls"
REQUIRE = os.environ.get("VOSTOK_REQUIRE_PG", "") in ("1", "true", "yes")


def _unavailable(reason):
    msg = f"TLS to PostgreSQL NOT TESTED: {reason}"
    print(f"\n[pg-tls] {msg}", file=sys.stderr)
    if REQUIRE:
        pytest.fail(f"{msg} (VOSTOK_REQUIRE_PG=1: PostgreSQL must run here)", pytrace=False)
    pytest.skip(msg)


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr}"


def make_ca(d: Path, name: str):
    """A self-signed certificate authority: d/name.crt, d/name.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=vostok test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d: Path, ca: str, name: str, subject: str, ext: str):
    """name.crt (signed by `ca`, with the extensions `ext`) and name.key."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


class TlsCluster:
    def __init__(self, d: Path):
        self.certs = d

        def configure(data: Path, chown):
            for f in ("server.crt", "server.key", "ca.crt"):
                shutil.copy(d / f, data / f)
                (data / f).chmod(0o600)
                chown(data / f)
            # TLS only over TCP; the superuser (the test's own connections) without a password.
            # In postgresql.conf (not on the command line) so that ALTER SYSTEM can turn it off.
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                           "ssl_ca_file = 'ca.crt'\n")
            (data / "pg_hba.conf").write_text(
                "local all all trust\n"
                "hostssl all postgres 127.0.0.1/32 trust\n"
                "hostssl all vostok_cert 127.0.0.1/32 cert\n"
                "hostssl all all 127.0.0.1/32 scram-sha-256\n")

        self.pg = pg_oracle.Cluster(max_connections=60, configure=configure)
        with self.connect() as c:
            c.execute(f"CREATE ROLE vostok LOGIN PASSWORD '{PASSWORD}'")  # a constant of this file
            c.execute(f"CREATE DATABASE {DB} OWNER vostok")
            # Logs in with a client certificate (CN=vostok_cert) and nothing else.
            c.execute("CREATE ROLE vostok_cert LOGIN")
            c.execute("CREATE DATABASE vostok_cert OWNER vostok_cert")

    def connect(self, dbname="postgres"):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.pg.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=10, sslmode="require")

    def url(self, host="127.0.0.1", **params):
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgres://vostok:{PASSWORD}@{host}:{self.pg.port}/{DB}" + (f"?{q}" if q else "")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("openssl") is None:
        _unavailable("no openssl command to make the certificates with")
    reason = pg_oracle.unavailable_reason()
    if reason:
        _unavailable(reason)
    d = tmp_path_factory.mktemp("pg-tls-certs")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "ca", "server", "/CN=localhost",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    make_cert(d, "ca", "client", "/CN=vostok_cert", "extendedKeyUsage=clientAuth\n")
    c = TlsCluster(d)
    try:
        yield c
    finally:
        c.pg.stop()


def vostok(tmp: Path, url: str, *args, ca_file: Path | None = None):
    """Runs `vostok ARGS` with `url` as [metadata] url (and `ca_file`) in `tmp`."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    config = tmp / "vostok.toml"
    lines = ["[metadata]", f"url = {json.dumps(url)}"]  # a TOML basic string
    if ca_file is not None:
        lines.append(f"ca_file = {json.dumps(str(ca_file))}")
    config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1", VOSTOK_DEMO_DIR=str(REPO / "data" / "demo"))
    env.pop("VOSTOK_METADATA_URL", None)
    env["RUST_LIB_BACKTRACE"] = "0"  # an error's message only
    return [str(find_binary()), "--config", str(config), *args], env


def run(tmp, url, *args, ca_file=None):
    """`vostok ARGS`: its exit status, standard output, and both outputs together."""
    cmd, env = vostok(tmp, url, *args, ca_file=ca_file)
    p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout, p.stdout + p.stderr


def refused(tmp, url, ca_file=None):
    """`vostok serve` with `url`: it must exit with an error; what it printed."""
    cmd, env = vostok(tmp, url, "serve", "--no-demo", "--bind", f"127.0.0.1:{free_port()}",
                      "--data-dir", str(tmp / "data"), ca_file=ca_file)
    p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env=env)
    out = p.stdout + p.stderr
    assert p.returncode != 0, f"vostok serve started with {url}:\n{out[-3000:]}"
    assert "panicked" not in out, out[-3000:]
    assert PASSWORD not in out, out[-3000:]
    return out


def test_verify_full_keeps_the_records_in_postgresql_over_tls(cluster, tmp_path):
    url = cluster.url(host="localhost", sslmode="verify-full")
    ca = cluster.certs / "ca.crt"
    rc, _, out = run(tmp_path, url, "config", "check", ca_file=ca)
    assert rc == 0, out
    assert (f"# TLS in effect: sslmode=verify-full: TLS; the server's certificate must be signed by "
            f"the certificate authorities in {ca} ([metadata] ca_file) and name the host") in out, out
    assert PASSWORD not in out and "vostok:***@localhost" in out, out

    data = tmp_path / "data"
    rc, stdout, out = run(tmp_path, url, "user", "add", "alice", "--data-dir", str(data), ca_file=ca)
    assert rc == 0, out
    assert PASSWORD not in out, out
    token = stdout.split()[-1]

    cmd, env = vostok(tmp_path, url, ca_file=ca)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd + ["serve", "--no-demo", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data)],
                                cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"vostok exited:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(base + "/tap/availability", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"vostok not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)

        # An async TAP job.
        r = http_post(base + "/tap/async", allow_redirects=False, data={
            "REQUEST": "doQuery", "LANG": "ADQL", "PHASE": "RUN",
            "QUERY": "SELECT TOP 3 table_name FROM tap_schema.tables"})
        assert r.status_code == 303, r.text
        job = r.headers["Location"]
        job_id = job.rstrip("/").rsplit("/", 1)[-1]
        deadline = time.monotonic() + 60
        while (phase := http_get(job + "/phase").text.strip()) not in ("COMPLETED", "ERROR", "ABORTED"):
            assert time.monotonic() < deadline, phase
            http_get(job, params={"WAIT": "5", "PHASE": phase})
        assert phase == "COMPLETED", http_get(job).text
        assert b"TABLEDATA" in http_get(job + "/results/result").content

        # A VOSpace write.
        node = ('<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode" '
                'uri="vos://vostok.example!vospace/alice/over-tls"/>')
        r = requests.put(base + "/vospace/nodes/alice/over-tls", data=node, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "text/xml"})
        assert r.status_code == 201, r.text

        # The records are in PostgreSQL, and vostok's connections to it are all encrypted.
        with cluster.connect(DB) as c:
            assert c.execute("SELECT phase FROM uws_jobs WHERE id = %s", (job_id,)).fetchone() == ("COMPLETED",)
            paths = {r[0] for r in c.execute("SELECT path FROM nodes")}
            assert any(p.endswith("alice/over-tls") for p in paths), paths
            assert c.execute("SELECT count(*) FROM users WHERE name = 'alice'").fetchone() == (1,)
            conns = c.execute(
                "SELECT s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.usename = 'vostok'").fetchall()
            assert conns and all(ssl for ssl, _ in conns), conns
            assert all(v == "TLSv1.3" for _, v in conns), conns
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
    text = log.read_text(errors="replace")
    assert "sslmode=verify-full: TLS" in text, text[-3000:]
    assert PASSWORD not in text


def test_a_certificate_another_authority_signed_is_refused(cluster, tmp_path):
    other = cluster.certs / "other-ca.crt"
    out = refused(tmp_path, cluster.url(sslmode="verify-full", sslrootcert=other))
    assert "is not signed by the certificate authorities in" in out and str(other) in out, out[-3000:]


def test_sslmode_disable_is_refused_by_a_server_accepting_tls_only(cluster, tmp_path):
    out = refused(tmp_path, cluster.url(sslmode="disable"))
    assert "no pg_hba.conf entry" in out and "no encryption" in out, out[-3000:]
    assert "hostssl" in out, out[-3000:]


def test_a_host_name_the_certificate_does_not_hold_is_refused_by_verify_full(cluster, tmp_path):
    ca = cluster.certs / "ca.crt"
    # Connected to 127.0.0.1 under another name (hostaddr: no name lookup).
    out = refused(tmp_path, cluster.url(host="db.invalid", hostaddr="127.0.0.1", sslmode="verify-full"),
                  ca_file=ca)
    assert "does not name the host" in out and "db.invalid" in out, out[-3000:]
    # verify-ca checks the chain only.
    rc, _, out = run(tmp_path, cluster.url(host="db.invalid", hostaddr="127.0.0.1", sslmode="verify-ca"),
                  "user", "add", "carol", "--data-dir", str(tmp_path / "data"), ca_file=ca)
    assert rc == 0, out


def test_an_unreadable_ca_file_is_named(cluster, tmp_path):
    out = refused(tmp_path, cluster.url(sslmode="verify-full"), ca_file=tmp_path / "nosuch.pem")
    assert "[metadata] ca_file" in out and "nosuch.pem" in out and "cannot read" in out, out[-3000:]


def test_a_client_certificate_logs_in(cluster, tmp_path):
    certs = cluster.certs
    url = (f"postgres://vostok_cert@localhost:{cluster.pg.port}/vostok_cert?sslmode=verify-full"
           f"&sslrootcert={certs / 'ca.crt'}&sslcert={certs / 'client.crt'}&sslkey={certs / 'client.key'}")
    rc, _, out = run(tmp_path, url, "user", "add", "dave", "--data-dir", str(tmp_path / "data"))
    assert rc == 0, out
    with cluster.connect("vostok_cert") as c:
        assert c.execute("SELECT count(*) FROM users WHERE name = 'dave'").fetchone() == (1,)
    # Without it, the cert line of pg_hba.conf refuses the role.
    out = refused(tmp_path, url.split("&sslcert=")[0])
    assert "vostok_cert" in out and "certificate" in out, out[-3000:]


def test_require_is_refused_by_a_server_without_tls(cluster, tmp_path):
    import psycopg
    with cluster.connect() as c:
        c.execute("ALTER SYSTEM SET ssl = off")
        c.execute("SELECT pg_reload_conf()")
    try:
        # The reload takes effect for new connections once the server has read it.
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=cluster.pg.port, user="postgres", dbname="postgres",
                                sslmode="require", connect_timeout=5).close()
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "ssl = off did not take effect"
            time.sleep(0.2)
        out = refused(tmp_path, cluster.url(sslmode="require"))
        assert "server does not support TLS" in out and "ssl = off" in out, out[-3000:]
    finally:
        with psycopg.connect(host=str(cluster.pg.dir), port=cluster.pg.port, user="postgres",
                             dbname="postgres", autocommit=True) as c:
            c.execute("ALTER SYSTEM RESET ssl")
            c.execute("SELECT pg_reload_conf()")

