"""The README's examples give the output it shows: every `curl` example in a ```console block
is run against the demo server and its output compared with the README's (after the host is
replaced), and the demo table's row counts are checked with TAP."""

from __future__ import annotations

import re
import subprocess

import pytest

from vostok_helpers import REPO, parse_votable, tap_sync

README = REPO / "README.md"
README_BASE = "http://127.0.0.1:8080"


def console_examples():
    """(command, expected output lines) of each `$ curl …` in the README's console blocks."""
    text = README.read_text()
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            cmd = lines[i][2:]
            i += 1
            # Continuation lines: a trailing backslash, or an open double quote.
            while cmd.endswith("\\") or cmd.count('"') % 2 == 1:
                cmd = (cmd[:-1] if cmd.endswith("\\") else cmd + "\n") + lines[i]
                i += 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            while expected and not expected[-1].strip():
                expected.pop()
            if cmd.startswith("curl "):
                out.append((cmd, expected))
    return out


EXAMPLES = console_examples()


def test_readme_has_curl_examples():
    assert len(EXAMPLES) >= 4, EXAMPLES


def _norm(line):
    # Floats to 12 significant digits: the last digits of a sum may differ between runs.
    return re.sub(r"-?\d+\.\d+(?:[eE][-+]?\d+)?", lambda m: f"{float(m.group()):.12g}", line)


@pytest.mark.parametrize("cmd,expected", EXAMPLES, ids=[c[:60] for c, _ in EXAMPLES])
def test_readme_curl_example(base_url, cmd, expected):
    run = cmd.replace(README_BASE, base_url)
    assert run != cmd, f"example does not use {README_BASE}: {cmd}"
    p = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    got = p.stdout.rstrip("\n").splitlines()
    assert [_norm(x) for x in got] == [_norm(x) for x in expected], (
        f"README example\n{cmd}\nprints:\n" + "\n".join(got) + "\nREADME shows:\n" + "\n".join(expected))


def test_readme_demo_row_counts(base_url):
    text = README.read_text()
    rows = re.findall(r"^\| `([a-z_0-9]+\.[a-z_0-9]+)` \| ([\d,]+) \|", text, re.M)
    assert len(rows) >= 4, rows
    for table, n in rows:
        r = tap_sync(base_url, f"SELECT COUNT(*) AS n FROM {table}")
        assert r.status_code == 200, r.text[:500]
        got = int(parse_votable(r.content).get_first_table().array["n"][0])
        assert got == int(n.replace(",", "")), f"README says {table} has {n} rows, the server {got}"
