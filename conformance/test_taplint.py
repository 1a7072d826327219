"""The IVOA TAP validator, STILTS taplint, finds no ERROR and no FAILURE.

taplint runs once (module fixture); each stage is then its own test, so the pytest
report says which part of TAP failed. Warnings do not fail the suite: they are raised
as TaplintWarning, so they appear in pytest's warnings summary (and the CI log).

Stages (STILTS 3.4.7): TMV /tables vs XSD, TME /tables content, TMS TAP_SCHEMA content,
TMC /tables vs TAP_SCHEMA, CPV capabilities vs XSD, CAP TAP/TAPRegExt content of
capabilities, AVV availability vs XSD, QGE sync GET queries, QPO sync POST queries,
MDQ result columns vs declared metadata, EXA the DALI examples (STILTS parses each query
with its own ADQL parser), UPL table uploads (TAP_UPLOAD), QAS queries run as asynchronous
jobs (/tap/async), UWS the job operations (create, parameters, phase, abort, delete, run).
"""

import json
import warnings

import pytest

from vostok_helpers import ACCEPTED_TAPLINT as ACCEPTED, stilts, taplint_accepted as accepted

STAGES = ["TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "MDQ", "UPL", "QAS", "UWS",
          "EXA"]


@pytest.fixture(scope="module")
def taplint_report(base_url):
    p = stilts("taplint", f"tapurl={base_url}/tap", f"stages={' '.join(STAGES)}",
               "report=EWF", "format=json", "maxrepeat=20", "truncate=1000", timeout=600)
    assert p.returncode == 0, f"taplint exited {p.returncode}\nstderr:\n{p.stderr[-4000:]}"
    try:
        report = json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError(f"taplint output is not JSON ({e}):\n{p.stdout[:4000]}\n{p.stderr[-2000:]}")
    print(f"taplint totals: {report.get('totals')}")
    return report


def reports_of(report, code):
    out = []
    for sec in report.get("sections", []):
        if sec.get("code") == code:
            out.extend(sec.get("reports", []))
    return out


def fmt(r):
    err = r.get("error") or {}
    detail = f" [{err.get('class', '')}: {err.get('errmsg', '')}]" if err else ""
    return f"{r.get('level')} {r.get('code')}: {r.get('text')}{detail}"


def check(report, code):
    reps = reports_of(report, code)
    for r in reps:
        if r.get("level") == "WARNING":
            print("taplint", code, fmt(r))
    bad = [r for r in reps if r.get("level") in ("ERROR", "FAILURE") and not accepted(r)]
    assert not bad, f"taplint stage {code}: {len(bad)} errors/failures:\n" + "\n".join(map(fmt, bad))


def test_taplint_ran_all_stages(taplint_report):
    codes = {s.get("code") for s in taplint_report.get("sections", [])}
    missing = [s for s in STAGES if s not in codes]
    assert not missing, f"taplint did not run stages {missing} (ran {sorted(codes)})"


def test_taplint_preparation(taplint_report):
    check(taplint_report, "PRE")


@pytest.mark.parametrize("stage", STAGES)
def test_taplint_stage(taplint_report, stage):
    check(taplint_report, stage)


class TaplintWarning(UserWarning):
    """A taplint WARNING: shown in pytest's warnings summary, does not fail the suite."""


def test_taplint_totals(taplint_report):
    totals = taplint_report.get("totals", {})
    for sec in taplint_report.get("sections", []):
        for r in sec.get("reports", []):
            if r.get("level") == "WARNING":
                print("taplint", sec.get("code"), fmt(r))
                warnings.warn(f"taplint {sec.get('code')} {fmt(r)}", TaplintWarning)
    n_accepted = sum(1 for sec in taplint_report.get("sections", [])
                     for r in sec.get("reports", [])
                     if r.get("level") == "ERROR" and accepted(r))
    assert n_accepted <= 1, f"taplint accepted errors {n_accepted}"
    assert totals.get("ERROR", 0) == n_accepted and totals.get("FAILURE", 0) == 0, (
        f"taplint totals {totals} ({n_accepted} accepted: {ACCEPTED})")
