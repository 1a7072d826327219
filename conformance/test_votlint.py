"""Every VOTable the server writes passes STILTS votlint silently and validates against
the VOTable 1.4 XSD (xmllint, offline, through shared/schemas/catalog.xml).

Documents: TAP results in TABLEDATA and in BINARY2 (chosen columns and all columns of
both catalogs, TAP_SCHEMA.columns, an overflowed and an empty result), a TAP error
document, and Simple Cone Search results (VERB 2 and 3) and an error.

votlint (Debian's STILTS 3.4.7) checks structure and values; it does not check UCD or
unit words here, so astropy's parser (UCD1+ list v1.6, VOUnit) is run as well.
"""

import warnings

import pytest

from vostok_helpers import (GAIA_TABLE, HIP_TABLE, SCHEMAS, http_get, parse_votable, stilts,
                            tap_sync, xmllint_schema)

HIP_Q = (f"SELECT TOP 200 hip, ra, dec, plx, pmra, pmdec, nc, hpmag, b_v, v_i FROM {HIP_TABLE} "
         "WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 3.0))")
GAIA_Q = (f"SELECT TOP 200 source_id, ra, dec, phot_g_mean_mag, pmra, pmdec FROM {GAIA_TABLE} "
          "WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 359.8, 12.5, 1.0))")


def _tap(base_url, q, fmt=None, maxrec=None):
    params = {}
    if fmt:
        params["RESPONSEFORMAT"] = fmt
    if maxrec is not None:
        params["MAXREC"] = maxrec
    return tap_sync(base_url, q, **params)


DOCS = {
    "tap-hip-tabledata": lambda b: _tap(b, HIP_Q, "votable"),
    "tap-hip-all-columns": lambda b: _tap(b, f"SELECT TOP 50 * FROM {HIP_TABLE}", "votable"),
    "tap-gaia-all-columns-b2": lambda b: _tap(b, f"SELECT TOP 50 * FROM {GAIA_TABLE}", "votable/b2"),
    "tap-schema-columns": lambda b: _tap(b, "SELECT * FROM TAP_SCHEMA.columns", "votable"),
    "tap-hip-binary2": lambda b: _tap(b, HIP_Q, "votable/b2"),
    "tap-gaia-tabledata": lambda b: _tap(b, GAIA_Q, "votable"),
    "tap-gaia-binary2": lambda b: _tap(b, GAIA_Q, "application/x-votable+xml;serialization=BINARY2"),
    "tap-overflow-tabledata": lambda b: _tap(b, HIP_Q, "votable", maxrec=5),
    "tap-empty-result": lambda b: _tap(
        b, f"SELECT hip, ra FROM {HIP_TABLE} WHERE hip < 0", "votable"),
    "tap-error": lambda b: _tap(b, f"SELECT hip FRM {HIP_TABLE}"),
    "scs-hip": lambda b: http_get(f"{b}/scs/{HIP_TABLE}",
                                  params={"RA": "56.75", "DEC": "24.12", "SR": "1.0", "VERB": "3"}),
    "scs-gaia": lambda b: http_get(f"{b}/scs/{GAIA_TABLE}",
                                   params={"RA": "0.1", "DEC": "-30", "SR": "0.5", "VERB": "2"}),
    "scs-error": lambda b: http_get(f"{b}/scs/{HIP_TABLE}", params={"RA": "56.75", "SR": "1"}),
}


@pytest.fixture(scope="module", params=sorted(DOCS))
def document(request, base_url, tmp_path_factory):
    name = request.param
    resp = DOCS[name](base_url)
    if "error" in name:
        assert resp.status_code in (200, 400), f"{name}: HTTP {resp.status_code}"
    else:
        assert resp.status_code == 200, f"{name}: HTTP {resp.status_code}: {resp.text[:1000]}"
    path = tmp_path_factory.mktemp("vot") / f"{name}.vot"
    path.write_bytes(resp.content)
    return name, path


def test_votlint_silent(document):
    name, path = document
    p = stilts("votlint", "validate=true", "ucd=true", "unit=true", f"votable={path}", timeout=120)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not out, (
        f"votlint on {name} (rc {p.returncode}) reported:\n{out[:6000]}\n--- document head ---\n"
        f"{path.read_text(errors='replace')[:1500]}")


def test_xmllint_votable_1_4_schema(document):
    name, path = document
    p = xmllint_schema(path, SCHEMAS / "VOTable-v1.4.xsd")
    assert p.returncode == 0, (
        f"{name} does not validate against VOTable-v1.4.xsd (rc {p.returncode}):\n"
        f"{p.stderr[-4000:]}\n--- document head ---\n{path.read_text(errors='replace')[:1500]}")


def test_version_is_1_4_or_lower(document):
    """STILTS 3.4.7 (and TOPCAT 4.8.7) reject VOTable 1.5: stay at 1.4."""
    name, path = document
    root = parse_votable(path.read_bytes())
    assert root.version in ("1.3", "1.4"), f"{name}: VOTable version {root.version}"


# SCS 1.03 requires these UCD1 words, which astropy's UCD1+ check (W06) does not know.
SCS_UCD1 = ("ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN")


def test_astropy_parses_without_warnings(document):
    """astropy's VOTable parser reports no spec violation (W/E codes), SCS's UCD1 words aside."""
    from astropy.io.votable.exceptions import VOWarning
    name, path = document
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_votable(path.read_bytes(), verify="warn")
    problems = [str(w.message) for w in caught if issubclass(w.category, VOWarning)
                and not (w.category.__name__ == "W06" and any(u in str(w.message) for u in SCS_UCD1))]
    assert not problems, f"astropy on {name}:\n" + "\n".join(problems)
