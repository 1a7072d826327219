"""Data products (the demo FITS images and spectra) through real VO clients.

The truth comes from the raw files in data/demo, read with astropy, never from vostok:

* image footprints: ``astropy.wcs.WCS(header).celestial`` applied to a dense sampling of the
  pixel-grid border (pixel edges, 0-based -0.5 .. N-0.5, at least one sample per pixel and 64
  per edge), transformed to ICRS with SkyCoord; an image whose border leaves the projection or
  reaches 89 degrees from its centre is all-sky (matches every position).
  Intersection with a query circle is decided with our own spherical geometry: the circle
  meets the footprint when its centre is inside (point in polygon, in a gnomonic projection
  about the image centre, where the great-circle edges are straight) or when the great-circle
  distance from the centre to the border arcs is <= r. Footprints whose boundary distance is
  within TOL_DEG of r are ambiguous: left out of both sides of the comparison (and counted).
* spectrum positions: RA/DEC keywords (sexagesimal strings in hours), frame from
  RADESYS/RADECSYS/EQUINOX (FK4 for equinoxes before 1984, e.g. Keck's B1950), to ICRS with
  astropy; RA = DEC = 0 means "unknown".
* spectral coverage: linear (UVES, Angstrom) or log-linear (DC-FLAG = 1) WCS, X-shooter's WAVE
  column, Arecibo's FREQ column; observing times: MJD-OBS + EXPTIME.

Clients: pyvo (SIA2Service, SIAService, SSAService, DatalinkResults), STILTS (coneskymatch with
servicetype sia1/sia2/ssa, datalinklint, votlint, taplint stages OBS), xmllint, and Aladin
(headless under xvfb-run) exporting the pixels of an image found through SIA 2.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import http.client
import json
import math
import re
import struct
import subprocess
import urllib.parse
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vostok_helpers import (REPO, SCHEMAS, TimeoutSession, data_files, data_read, http_get,
                            parse_votable, query_status, require_tool, stilts, tap_sync,
                            xmllint_schema)

DEMO = REPO / "data" / "demo"
IMAGES = DEMO / "images"
SPECTRA = DEMO / "spectra"
COLLECTION = "demo"
DID_PREFIX = "ivo://vostok.example/demo?"

# Footprint boundary distances within this of the query radius are ambiguous (0.36 arcsec).
TOL_DEG = 1e-4
# Spectrum positions (header vs server) are compared at this tolerance (0.07 arcsec).
SPEC_TOL_DEG = 2e-5


# --------------------------------------------------------------------------
# Spherical geometry (unit vectors, degrees)
# --------------------------------------------------------------------------


def unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def lonlat(v):
    v = np.asarray(v, dtype=float)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return ra, dec


def ang(a, b):
    """Angle(s) in degrees between unit vectors (broadcasting)."""
    c = np.cross(a, b)
    return np.degrees(np.arctan2(np.linalg.norm(c, axis=-1), np.sum(a * b, axis=-1)))


def offset(centre, toward, dist_deg):
    """The point dist_deg from `centre` along the great circle towards `toward`."""
    t = toward - np.dot(toward, centre) * centre
    t /= np.linalg.norm(t)
    d = math.radians(dist_deg)
    return math.cos(d) * centre + math.sin(d) * t


class Footprint:
    """An image footprint: dense border vertices (unit vectors), centre, or all-sky."""

    def __init__(self, file, hdu, did, verts, centre, allsky, dptype, pixel_deg):
        self.file, self.hdu, self.did = file, hdu, did
        self.verts, self.centre, self.allsky = verts, centre, allsky
        self.dptype, self.pixel_deg = dptype, pixel_deg

    def __repr__(self):
        return f"Footprint({self.did})"

    def _tangent(self):
        c = self.centre
        e = np.cross([0.0, 0.0, 1.0], c)
        if np.linalg.norm(e) < 1e-12:
            e = np.array([1.0, 0.0, 0.0])
        e /= np.linalg.norm(e)
        return c, e, np.cross(c, e)

    def contains(self, p):
        if self.allsky:
            return True
        c, e, n = self._tangent()
        if np.dot(p, c) <= 0:
            return False

        def proj(v):
            d = v @ c
            return np.stack([(v @ e) / d, (v @ n) / d], axis=-1)

        V = proj(self.verts)
        P = proj(p[None, :])[0]
        x, y = V[:, 0], V[:, 1]
        x2, y2 = np.roll(x, -1), np.roll(y, -1)
        crosses = (y > P[1]) != (y2 > P[1])
        dy = np.where(y2 == y, 1e-300, y2 - y)
        xint = x + (P[1] - y) * (x2 - x) / dy
        return bool(np.count_nonzero(crosses & (P[0] < xint)) % 2)

    def edge_distance(self, p):
        """Smallest great-circle distance (deg) from p to the border arcs."""
        A = self.verts
        B = np.roll(A, -1, axis=0)
        n = np.cross(A, B)
        n /= np.linalg.norm(n, axis=1)[:, None]
        s = n @ p
        q = p[None, :] - s[:, None] * n
        q /= np.linalg.norm(q, axis=1)[:, None]
        on_arc = (np.sum(np.cross(A, q) * n, axis=1) >= 0) & (np.sum(np.cross(q, B) * n, axis=1) >= 0)
        d_line = np.degrees(np.arcsin(np.clip(np.abs(s), 0.0, 1.0)))
        d_end = np.minimum(ang(p[None, :], A), ang(p[None, :], B))
        return float(np.min(np.where(on_arc, d_line, d_end)))

    def signed_distance(self, p):
        """Distance from p to the footprint: negative (minus the border distance) inside."""
        if self.allsky:
            return -180.0
        d = self.edge_distance(p)
        return -d if self.contains(p) else d

    def max_distance(self, p):
        """Largest distance from p to the footprint (its farthest border point)."""
        if self.allsky:
            return 180.0
        return float(ang(p[None, :], self.verts).max())

    @property
    def radius(self):
        return self.max_distance(self.centre)


@functools.lru_cache(maxsize=None)
def image_footprints() -> tuple:
    """Footprints of every demo image HDU with a celestial WCS, computed with astropy."""
    from astropy.io import fits
    from astropy.wcs import WCS

    out = []
    for f in sorted(IMAGES.iterdir()):
        recs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(f) as hl:
                for i, hdu in enumerate(hl):
                    if not (hdu.is_image and (hdu.header.get("NAXIS") or 0) >= 2):
                        continue
                    w = WCS(hdu.header)
                    if not w.has_celestial:
                        continue
                    recs.append((i, hdu.header.copy(), w))
        assert recs, f"{f.name}: astropy finds no image HDU with a celestial WCS"
        for i, hd, w in recs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = w.celestial
                n1, n2 = hd[f"NAXIS{w.wcs.lng + 1}"], hd[f"NAXIS{w.wcs.lat + 1}"]
                k1, k2 = max(64, n1), max(64, n2)
                t1 = np.linspace(-0.5, n1 - 0.5, k1, endpoint=False)
                t2 = np.linspace(-0.5, n2 - 0.5, k2, endpoint=False)
                xs = np.concatenate([t1, np.full(k2, n1 - 0.5), (n1 - 1) - t1, np.full(k2, -0.5)])
                ys = np.concatenate([np.full(k1, -0.5), t2, np.full(k1, n2 - 0.5), (n2 - 1) - t2])
                sky = c.pixel_to_world(xs, ys).icrs
                cx, cy = (n1 - 1) / 2, (n2 - 1) / 2
                cen = c.pixel_to_world(cx, cy).icrs
                nb = c.pixel_to_world([cx - 0.5, cx + 0.5], [cy, cy]).icrs
            cv = unit(cen.ra.deg, cen.dec.deg)
            ra, dec = sky.ra.deg, sky.dec.deg
            ok = np.isfinite(ra) & np.isfinite(dec)
            verts = unit(ra[ok], dec[ok])
            allsky = bool((not ok.all()) or ang(cv[None, :], verts).max() >= 89.0)
            pix = float(ang(unit(nb[0].ra.deg, nb[0].dec.deg), unit(nb[1].ra.deg, nb[1].dec.deg)))
            did = DID_PREFIX + "images/" + f.name + (f"#{i}" if len(recs) > 1 else "")
            naxis = hd.get("NAXIS")
            dims = [hd.get(f"NAXIS{k}") for k in range(1, naxis + 1)]
            dptype = "cube" if sum(1 for d in dims if d and d > 1) >= 3 else "image"
            out.append(Footprint(f.name, i, did, verts, cv, allsky, dptype, pix))
    return tuple(out)


def footprint_by_file(name):
    return [fp for fp in image_footprints() if fp.file == name]


class Truth:
    """Expected matches for one query: `yes`, `no`, and `ambiguous` (left out)."""

    def __init__(self):
        self.yes, self.no, self.ambiguous = set(), set(), set()

    def add(self, key, verdict):
        {True: self.yes, False: self.no, None: self.ambiguous}[verdict].add(key)


def circle_truth(ra, dec, r, tol=TOL_DEG) -> Truth:
    p = unit(ra, dec)
    t = Truth()
    for fp in image_footprints():
        d = fp.signed_distance(p)
        t.add(fp.did, None if abs(d - r) <= tol else d <= r)
    return t


def bounded_truth(p, r_in, r_out, tol=TOL_DEG) -> Truth:
    """Truth for a region that holds the circle (p, r_in) and lies inside the circle (p, r_out)
    (a box, a polygon, a RANGE): surely in when the footprint meets the inner circle, surely out
    when it misses the outer one, ambiguous in between."""
    t = Truth()
    for fp in image_footprints():
        d = fp.signed_distance(p)
        if d <= r_in - tol:
            t.add(fp.did, True)
        elif d > r_out + tol:
            t.add(fp.did, False)
        else:
            t.add(fp.did, None)
    return t


def compare(what, got_list, truth: Truth):
    """Returns a problem string or None; `got_list` may hold duplicates (reported)."""
    got = set(got_list)
    problems = []
    dup = [k for k, n in Counter(got_list).items() if n > 1]
    if dup:
        problems.append(f"duplicate rows {sorted(dup)}")
    missing = truth.yes - got
    extra = got - truth.yes - truth.ambiguous
    if missing:
        problems.append(f"missing {sorted(missing)}")
    if extra:
        problems.append(f"unexpected {sorted(extra)}")
    if problems:
        return (f"{what}: expected {len(truth.yes)} ({len(truth.ambiguous)} ambiguous left out), "
                f"got {len(got_list)}: " + "; ".join(problems))
    return None


# --------------------------------------------------------------------------
# Query circles
# --------------------------------------------------------------------------

M1 = (83.6331, 22.0145)
GALACTIC_CENTRE = (266.41683, -29.00781)
MN_LUP = (230.876323, -38.35773)
EMPTY_SKY = (15.0, -75.0)


def circle_cases():
    """(name, ra, dec, r) query circles, derived from the astropy footprints."""
    cases = []
    seen = set()
    for fp in image_footprints():
        if fp.allsky or fp.file in seen:
            continue
        seen.add(fp.file)
        ra, dec = lonlat(fp.centre)
        cases.append((f"centre {fp.file}", float(ra), float(dec), min(0.2 * fp.radius, 0.01)))
        # Beyond the middle of the first edge, at a distance d from the border:
        # a radius of d/2 misses the image, 1.5 d reaches it.
        mid = fp.verts[len(fp.verts) // 8]
        p = offset(fp.centre, mid, float(ang(fp.centre, mid)) + max(0.3 * fp.radius, 0.001))
        d = fp.edge_distance(p)
        pra, pdec = lonlat(p)
        cases.append((f"outside {fp.file} (d={d:.5f}) r=d/2", float(pra), float(pdec), 0.5 * d))
        cases.append((f"outside {fp.file} (d={d:.5f}) r=1.5d", float(pra), float(pdec), 1.5 * d))
        # and tight: 3 TOL (1 arcsec) either side of the border
        if d > 4 * TOL_DEG:
            cases.append((f"outside {fp.file} (d={d:.5f}) r=d-3tol", float(pra), float(pdec), d - 3 * TOL_DEG))
        cases.append((f"outside {fp.file} (d={d:.5f}) r=d+3tol", float(pra), float(pdec), d + 3 * TOL_DEG))
        # Beyond a corner.
        corner = fp.verts[0]
        p = offset(fp.centre, corner, float(ang(fp.centre, corner)) + max(0.2 * fp.radius, 0.0007))
        d = fp.edge_distance(p)
        pra, pdec = lonlat(p)
        cases.append((f"corner {fp.file} (d={d:.5f}) r=0.8d", float(pra), float(pdec), 0.8 * d))
        cases.append((f"corner {fp.file} (d={d:.5f}) r=1.2d", float(pra), float(pdec), 1.2 * d))
    cases += [
        ("M1 / Taurus r=0.01", *M1, 0.01),
        ("M1 / Taurus r=0.1", *M1, 0.1),
        ("Galactic Centre r=0.5", *GALACTIC_CENTRE, 0.5),
        ("Galactic Centre r=5", *GALACTIC_CENTRE, 5.0),
        ("empty sky", *EMPTY_SKY, 1.0),
        ("big r=60 at (200, 30)", 200.0, 30.0, 60.0),
        ("big r=40 at (280, 0)", 280.0, 0.0, 40.0),
    ]
    return cases


# --------------------------------------------------------------------------
# Spectra: positions, wavelengths, times from the headers
# --------------------------------------------------------------------------


def _header_position(hdr):
    from astropy.coordinates import FK4, FK5, ICRS, SkyCoord
    import astropy.units as u
    ra, dec = hdr.get("RA"), hdr.get("DEC")
    if ra is None or dec is None:
        return None
    if isinstance(ra, str):
        s = ra.strip()
        ra_q = s if (":" in s or " " in s) else float(s)
    else:
        ra_q = float(ra)
    dec_q = dec.strip() if isinstance(dec, str) else float(dec)
    if not isinstance(ra_q, str) and not isinstance(dec_q, str) and ra_q == 0 and dec_q == 0:
        return None
    sys_ = (hdr.get("RADESYS") or hdr.get("RADECSYS") or "").strip().upper()
    eq = hdr.get("EQUINOX") or hdr.get("EPOCH")
    if sys_ == "ICRS":
        frame = ICRS()
    elif sys_.startswith("FK4") or (not sys_ and eq is not None and float(eq) < 1984):
        frame = FK4(equinox=f"B{float(eq or 1950):.1f}")
    else:
        frame = FK5(equinox=f"J{float(eq or 2000):.1f}")
    c = SkyCoord(ra_q, dec_q, unit=(u.hourangle if isinstance(ra_q, str) else u.deg, u.deg),
                 frame=frame)
    c = c.icrs
    return float(c.ra.deg), float(c.dec.deg)


@functools.lru_cache(maxsize=None)
def spectra_truth() -> dict:
    """file -> dict(pos=(ra, dec) | None, band=(lo, hi) metres | None, time=(t0, t1) MJD | None)."""
    from astropy.io import fits
    out = {}
    for f in sorted(SPECTRA.iterdir()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(f) as hl:
                pos = None
                for hdu in hl:
                    pos = _header_position(hdu.header)
                    if pos:
                        break
                h0 = hl[0].header
                band = None
                if h0.get("NAXIS") == 1 and h0.get("CRVAL1") is not None:
                    n = h0["NAXIS1"]
                    step = h0.get("CDELT1") or h0.get("CD1_1")
                    x = h0["CRVAL1"] + (np.array([1, n]) - h0.get("CRPIX1", 1.0)) * step
                    if h0.get("DC-FLAG") == 1:
                        x = 10.0 ** x
                    band = (float(x.min()) * 1e-10, float(x.max()) * 1e-10)  # Angstrom
                else:
                    for hdu in hl[1:]:
                        cols = getattr(hdu, "columns", None)
                        if cols is None:
                            continue
                        names = {c.name.upper(): c for c in cols}
                        if "WAVE" in names and (names["WAVE"].unit or "").lower() == "nm":
                            w = np.asarray(hdu.data["WAVE"], dtype=float).ravel()
                            band = (float(np.nanmin(w)) * 1e-9, float(np.nanmax(w)) * 1e-9)
                            break
                        if "FREQ" in names and (names["FREQ"].unit or "").lower() == "mhz":
                            fr = np.asarray(hdu.data["FREQ"], dtype=float).ravel() * 1e6
                            lam = 299792458.0 / fr[fr > 0]
                            band = (float(lam.min()), float(lam.max()))
                            break
                time = None
                mjd = h0.get("MJD-OBS")
                if mjd is not None and 30000 < float(mjd) < 80000:
                    time = (float(mjd), float(mjd) + float(h0.get("EXPTIME") or 0.0) / 86400.0)
        out[f.name] = {"pos": pos, "band": band, "time": time}
    return out


def spectrum_did(name):
    return DID_PREFIX + "spectra/" + name


def ssa_cone_truth(ra, dec, diameter, tol=SPEC_TOL_DEG) -> Truth:
    t = Truth()
    p = unit(ra, dec)
    for name, s in spectra_truth().items():
        if s["pos"] is None:
            t.add(spectrum_did(name), False)
            continue
        d = float(ang(p, unit(*s["pos"])))
        r = diameter / 2
        t.add(spectrum_did(name), None if abs(d - r) <= tol else d <= r)
    return t


# --------------------------------------------------------------------------
# Fixtures and small helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session():
    return TimeoutSession()


@pytest.fixture(scope="module")
def obscore(base_url):
    """All ivoa.obscore rows (through TAP) as dicts keyed by obs_publisher_did."""
    r = tap_sync(base_url, "SELECT * FROM ivoa.obscore", RESPONSEFORMAT="votable")
    assert r.status_code == 200, f"TAP SELECT * FROM ivoa.obscore: HTTP {r.status_code}: {r.text[:2000]}"
    t = parse_votable(r.content).get_first_table().to_table()
    rows = {}
    for row in t:
        d = {}
        for c in t.colnames:
            v = row[c]
            if np.ma.is_masked(v):
                v = None
            elif isinstance(v, bytes):
                v = v.decode()
            d[c] = v
        rows[d["obs_publisher_did"]] = d
    assert rows, "ivoa.obscore is empty"
    return rows


def local_file_of(url, base_url):
    """The data/demo file an access URL of the demo collection points at."""
    prefix = f"{base_url}/data/{COLLECTION}/"
    assert url.startswith(prefix), f"access_url {url!r} does not start with {prefix!r}"
    rel = urllib.parse.unquote(url[len(prefix):])
    return DEMO / rel


def did_of_url(url, base_url):
    """images/<file> of an access URL (SIA 1 has no DID column)."""
    return str(local_file_of(url, base_url).relative_to(DEMO))


def votable_rows(content):
    """(fields, rows as dicts) of the first results table, with astropy."""
    vt = parse_votable(content)
    t = vt.get_first_table()
    fields = t.fields
    arr = t.array
    rows = []
    for rec in arr:
        d = {}
        for f in fields:
            v = rec[f.ID or f.name] if (f.ID or f.name) in arr.dtype.names else rec[f.name]
            if np.ma.is_masked(v):
                v = None
            elif isinstance(v, bytes):
                v = v.decode()
            d[f.name] = v
        rows.append(d)
    return fields, rows


def sia2_query(base_url, params, session=None):
    s = session or TimeoutSession()
    return s.get(f"{base_url}/sia/v2/query", params=params)


def sia2_dids(base_url, params, session=None):
    r = sia2_query(base_url, params, session)
    assert r.status_code == 200, f"SIA2 {params}: HTTP {r.status_code}: {r.text[:1500]}"
    st = query_status(r.content)
    assert st and st[0] in ("OK", "OVERFLOW"), f"SIA2 {params}: QUERY_STATUS {st}: {r.text[:1500]}"
    _, rows = votable_rows(r.content)
    return [row["obs_publisher_did"] for row in rows], r


# --------------------------------------------------------------------------
# 0. The astropy side alone, and the server's footprints against it
# --------------------------------------------------------------------------


def test_astropy_footprints_are_sane():
    """18 image records (HST has 3 image extensions), one all-sky (ROSAT AIT), each footprint
    contains its centre and no vertex lies farther than 60 degrees from it."""
    fps = image_footprints()
    files = {fp.file for fp in fps}
    assert files == {f.name for f in IMAGES.iterdir()}, files
    assert len(fps) == 18, [fp.did for fp in fps]
    assert [fp.file for fp in fps if fp.allsky] == ["rosat_allsky_aitoff.fits"]
    for fp in fps:
        if fp.allsky:
            continue
        assert fp.contains(fp.centre), fp.did
        assert fp.radius < 60, (fp.did, fp.radius)
        # a point just beyond the farthest vertex is outside
        far = fp.verts[np.argmax(ang(fp.centre[None, :], fp.verts))]
        assert not fp.contains(offset(fp.centre, far, fp.radius * 1.05)), fp.did
    assert len([fp for fp in fps if fp.file.startswith("hst_")]) == 3


def _polygon_of(value):
    """(ra, dec) arrays of an s_region: a DALI polygon (double[]) or an STC-S 'Polygon ICRS ...'."""
    if isinstance(value, str):
        words = value.split()
        assert words[0].lower() == "polygon", f"s_region {value[:80]!r} is not a polygon"
        nums = [w for w in words[1:] if not re.fullmatch(r"[A-Za-z_]+", w)]
        value = [float(w) for w in nums]
    arr = np.asarray(value, dtype=float).ravel()
    assert arr.size >= 6 and arr.size % 2 == 0, f"s_region {value!r}"
    return arr[0::2], arr[1::2]


def _polyline_distance(fp, pts):
    """Distance of each point (unit vectors) from the densely sampled astropy border."""
    return np.array([fp.edge_distance(p) for p in pts])


def test_obscore_records_match_files(obscore):
    """Every demo file has its records (one per image HDU, one per spectrum), each with the
    expected DID, dataproduct_type and access_url."""
    want = {fp.did: fp.dptype for fp in image_footprints()}
    for name in spectra_truth():
        want[spectrum_did(name)] = "spectrum"
    got = {did: row.get("dataproduct_type") for did, row in obscore.items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(f"{d}: {got[d]!r} (expected {want[d]!r})" for d in set(want) & set(got)
                   if got[d] != want[d])
    assert not (missing or extra or wrong), (
        f"ivoa.obscore records: missing {missing}; unexpected {extra}; wrong dataproduct_type {wrong}")


def test_obscore_footprints_match_astropy(obscore):
    """s_ra/s_dec is the image centre, s_fov the diameter of the circle about it that holds the
    image, s_region's vertices lie on the astropy border (and the border on the polygon), and
    all-sky images have s_region NULL and s_fov 360."""
    problems = []
    for fp in image_footprints():
        row = obscore.get(fp.did)
        if row is None:
            problems.append(f"{fp.did}: not in ivoa.obscore")
            continue
        tol = max(0.05 * fp.pixel_deg, 3e-6)
        if fp.allsky:
            if row.get("s_region") not in (None, "") or not row.get("s_fov") or abs(row["s_fov"] - 360) > 1e-9:
                problems.append(f"{fp.did}: all-sky, expected s_region NULL and s_fov 360, got "
                                f"s_region={row.get('s_region')!r:.80} s_fov={row.get('s_fov')}")
            continue
        c = unit(row["s_ra"], row["s_dec"])
        if float(ang(c, fp.centre)) > tol:
            problems.append(f"{fp.did}: s_ra/s_dec {row['s_ra']:.7f} {row['s_dec']:.7f} is "
                            f"{ang(c, fp.centre) * 3600:.4f} arcsec from the astropy centre (tol "
                            f"{tol * 3600:.4f})")
        fov = 2 * fp.radius
        if row.get("s_fov") is None or abs(row["s_fov"] - fov) > max(0.01 * fov, 2 * tol):
            problems.append(f"{fp.did}: s_fov {row.get('s_fov')} vs astropy {fov:.6f}")
        if row.get("s_region") in (None, ""):
            problems.append(f"{fp.did}: s_region is NULL")
            continue
        ra, dec = _polygon_of(row["s_region"])
        pts = unit(ra, dec)
        d = _polyline_distance(fp, pts)
        if d.max() > tol:
            i = int(np.argmax(d))
            problems.append(f"{fp.did}: s_region vertex {i} ({ra[i]:.7f} {dec[i]:.7f}) is "
                            f"{d[i] * 3600:.4f} arcsec off the astropy border (tol {tol * 3600:.4f})")
        server_fp = Footprint(fp.file, fp.hdu, fp.did, pts, fp.centre, False, fp.dptype, fp.pixel_deg)
        back = np.array([server_fp.edge_distance(v) for v in fp.verts[:: max(1, len(fp.verts) // 256)]])
        if back.max() > tol:
            problems.append(f"{fp.did}: the astropy border strays {back.max() * 3600:.4f} arcsec from "
                            f"s_region (tol {tol * 3600:.4f}); {len(ra)} vertices")
        if not server_fp.contains(fp.centre):
            problems.append(f"{fp.did}: s_region does not contain the image centre")
    assert not problems, "\n".join(problems)


def test_obscore_spectrum_positions_match_headers(obscore):
    """s_ra/s_dec of each spectrum = its RA/DEC header keywords in ICRS (Keck: B1950 FK4)."""
    problems = []
    for name, s in spectra_truth().items():
        row = obscore.get(spectrum_did(name))
        if row is None:
            problems.append(f"{name}: not in ivoa.obscore")
            continue
        if s["pos"] is None:
            if row.get("s_ra") is not None:
                problems.append(f"{name}: RA = DEC = 0 (unknown), server has {row['s_ra']}, {row['s_dec']}")
            continue
        if row.get("s_ra") is None:
            problems.append(f"{name}: s_ra NULL, header gives {s['pos']}")
            continue
        d = float(ang(unit(row["s_ra"], row["s_dec"]), unit(*s["pos"])))
        if d > SPEC_TOL_DEG / 4:
            problems.append(f"{name}: server {row['s_ra']:.7f} {row['s_dec']:.7f}, astropy "
                            f"{s['pos'][0]:.7f} {s['pos'][1]:.7f} ({d * 3600:.3f} arcsec)")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# 1. Footprint searches: SIA 2 (pyvo), SIA 1 (pyvo), SSA (pyvo)
# --------------------------------------------------------------------------


def test_sia2_pyvo_circles_match_footprints(base_url, session):
    from pyvo.dal import SIA2Service
    svc = SIA2Service(base_url + "/sia/v2", session=session)
    problems, ambiguous, n = [], 0, 0
    for name, ra, dec, r in circle_cases():
        truth = circle_truth(ra, dec, r)
        ambiguous += len(truth.ambiguous)
        res = svc.search(pos=(ra, dec, r))
        got = [str(x) for x in res["obs_publisher_did"]]
        p = compare(f"SIA2 POS=CIRCLE {ra:.6f} {dec:.6f} {r:.6g} [{name}]", got, truth)
        n += 1
        if p:
            problems.append(p)
    print(f"SIA2: {n} circles, {ambiguous} ambiguous (record, circle) pairs left out")
    assert not problems, f"{len(problems)} of {n} circles differ:\n" + "\n".join(problems)


def _sia1_rows(svc, ra, dec, size, intersect=None):
    kw = {"intersect": intersect} if intersect else {}
    res = svc.search(pos=(ra, dec), size=size, **kw)
    acref = [f.name for f in res.fielddescs if (f.ucd or "").upper() == "VOX:IMAGE_ACCESSREFERENCE"]
    assert acref, f"SIA1 result has no VOX:Image_AccessReference column: {[f.ucd for f in res.fielddescs]}"
    return [str(x) for x in res[acref[0]]], res


def _compare_files(what, got_urls, base_url, truth: Truth):
    """SIA1 rows carry no DID: compare per file the number of rows (HST: 3 records, 1 file)."""
    got = Counter(did_of_url(u, base_url) for u in got_urls)
    yes = Counter(did[len(DID_PREFIX):].split("#")[0] for did in truth.yes)
    amb = Counter(did[len(DID_PREFIX):].split("#")[0] for did in truth.ambiguous)
    problems = []
    for f in set(got) | set(yes):
        if not (yes[f] <= got[f] <= yes[f] + amb[f]):
            problems.append(f"{f}: {got[f]} rows, expected {yes[f]}" + (f"(+{amb[f]} ambiguous)" if amb[f] else ""))
    if problems:
        return f"{what}: " + "; ".join(sorted(problems))
    return None


SQRT2 = math.sqrt(2.0)


def test_sia1_pyvo_overlaps_match_footprints(base_url, session):
    """SIA 1 INTERSECT=OVERLAPS (default): the ROI is a SIZE x SIZE box about POS; it holds the
    circle of radius SIZE/2 and lies in the circle of radius SIZE/sqrt(2)(+1%): records between
    the two are ambiguous."""
    from pyvo.dal import SIAService
    svc = SIAService(base_url + "/sia/v1", session=session)
    problems, ambiguous, n = [], 0, 0
    for name, ra, dec, r in circle_cases():
        if r > 20:
            continue
        truth = bounded_truth(unit(ra, dec), r, r * SQRT2 * 1.01)
        ambiguous += len(truth.ambiguous)
        urls, _ = _sia1_rows(svc, ra, dec, 2 * r)
        p = _compare_files(f"SIA1 POS={ra:.6f},{dec:.6f} SIZE={2 * r:.6g} [{name}]", urls, base_url, truth)
        n += 1
        if p:
            problems.append(p)
    print(f"SIA1: {n} boxes, {ambiguous} ambiguous (record, box) pairs left out")
    assert not problems, f"{len(problems)} of {n} boxes differ:\n" + "\n".join(problems)


@pytest.mark.parametrize("intersect", ["CENTER", "COVERS", "ENCLOSED"])
def test_sia1_pyvo_intersect_modes(base_url, session, intersect):
    """CENTER: the image contains POS; COVERS: the image holds the whole ROI; ENCLOSED: the
    image lies inside the ROI (SIA 1.0 section 4.1)."""
    from pyvo.dal import SIAService
    svc = SIAService(base_url + "/sia/v1", session=session)
    cases = [(name, ra, dec, r) for name, ra, dec, r in circle_cases() if r <= 20]
    # boxes that enclose whole images
    for fp in image_footprints():
        if not fp.allsky and fp.radius < 5:
            ra, dec = lonlat(fp.centre)
            cases.append((f"enclosing {fp.file}", float(ra), float(dec), fp.radius * 1.2))
    problems, n = [], 0
    for name, ra, dec, r in cases:
        p = unit(ra, dec)
        t = Truth()
        r_out = r * SQRT2 * 1.01
        for fp in image_footprints():
            d = fp.signed_distance(p)
            if intersect == "CENTER":
                v = None if abs(d) <= TOL_DEG else d <= 0
            elif intersect == "COVERS":
                v = True if (fp.allsky or d <= -(r_out + TOL_DEG)) else (False if d > -(r - TOL_DEG) else None)
            else:  # ENCLOSED
                far = fp.max_distance(p)
                v = True if far <= r - TOL_DEG else (False if far > r_out + TOL_DEG else None)
            t.add(fp.did, v)
        urls, _ = _sia1_rows(svc, ra, dec, 2 * r, intersect=intersect)
        pr = _compare_files(f"SIA1 INTERSECT={intersect} POS={ra:.6f},{dec:.6f} SIZE={2 * r:.6g} [{name}]",
                            urls, base_url, t)
        n += 1
        if pr:
            problems.append(pr)
    assert not problems, f"{len(problems)} of {n} queries differ:\n" + "\n".join(problems)


def _ssa_dids(svc, **kw):
    res = svc.search(**kw)
    col = res.fieldname_with_utype("ssa:Curation.PublisherDID") or "obs_publisher_did"
    return [str(x) for x in res[col]], res


def test_ssa_pyvo_cones_match_headers(base_url, session):
    """SSA POS/SIZE: a spectrum matches when its header position is within SIZE/2 of POS."""
    from pyvo.dal import SSAService
    svc = SSAService(base_url + "/ssa", session=session)
    cases = []
    for name, s in spectra_truth().items():
        if s["pos"]:
            cases.append((f"at {name}", *s["pos"], 0.01))
    cases += [
        ("MN Lup, first epoch, d=0.0008 (splits the UVES epochs)", 230.876323, -38.35773, 0.0008),
        ("MN Lup, last epoch, d=0.0006", 230.876126, -38.3583, 0.0006),
        ("Keck B1950 position as if ICRS, d=0.2 (precession > 0.1)", 15.1391667, 13.0027778, 0.2),
        ("empty sky", *EMPTY_SKY, 2.0),
        ("big d=60 at (0, 0)", 0.0, 0.0, 60.0),
        ("big d=100 at (300, -20)", 300.0, -20.0, 100.0),
    ]
    problems, ambiguous = [], 0
    for name, ra, dec, d in cases:
        truth = ssa_cone_truth(ra, dec, d)
        ambiguous += len(truth.ambiguous)
        got, _ = _ssa_dids(svc, pos=(ra, dec), diameter=d)
        p = compare(f"SSA POS={ra:.7f},{dec:.7f} SIZE={d} [{name}]", got, truth)
        if p:
            problems.append(p)
    print(f"SSA: {len(cases)} cones, {ambiguous} ambiguous left out")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# 2. SIA 2 parameters (truth: the ivoa.obscore rows, through TAP)
# --------------------------------------------------------------------------


def _image_rows(obscore):
    return {d: r for d, r in obscore.items() if r.get("dataproduct_type") in ("image", "cube")}


def _overlap(lo, hi, a, b):
    return lo is not None and hi is not None and lo <= b and hi >= a


def test_sia2_parameters(base_url, obscore, session):
    imgs = _image_rows(obscore)
    assert len(imgs) == 18, sorted(imgs)

    def where(pred):
        return {d for d, r in imgs.items() if pred(r)}

    cases = [
        ({"BAND": "5e-7 6e-7"}, where(lambda r: _overlap(r["em_min"], r["em_max"], 5e-7, 6e-7))),
        ({"BAND": "0.01 0.3"}, where(lambda r: _overlap(r["em_min"], r["em_max"], 0.01, 0.3))),
        ({"BAND": "2.1e-6 +Inf"}, where(lambda r: _overlap(r["em_min"], r["em_max"], 2.1e-6, math.inf))),
        ({"TIME": "54000 55000"}, where(lambda r: _overlap(r["t_min"], r["t_max"], 54000, 55000))),
        ({"TIME": "-Inf 40000"}, where(lambda r: _overlap(r["t_min"], r["t_max"], -math.inf, 40000))),
        ({"DPTYPE": "cube"}, where(lambda r: r["dataproduct_type"] == "cube")),
        ({"DPTYPE": "image"}, where(lambda r: r["dataproduct_type"] == "image")),
        ({"DPTYPE": "spectrum"}, set()),
        ({"COLLECTION": "demo"}, set(imgs)),
        ({"COLLECTION": "nosuch"}, set()),
        ({"INSTRUMENT": "VLA"}, where(lambda r: r["instrument_name"] == "VLA")),
        ({"INSTRUMENT": "ACS"}, where(lambda r: r["instrument_name"] == "ACS")),
        ({"INSTRUMENT": ["ACS", "WFCAM"]}, where(lambda r: r["instrument_name"] in ("ACS", "WFCAM"))),
        ({"FACILITY": "UKIRT"}, where(lambda r: r["facility_name"] == "UKIRT")),
        ({"CALIB": "2"}, where(lambda r: r["calib_level"] == 2)),
        ({"CALIB": "3"}, where(lambda r: r["calib_level"] == 3)),
        ({"FOV": "1 50"}, where(lambda r: r["s_fov"] is not None and 1 <= r["s_fov"] <= 50)),
        ({"ID": DID_PREFIX + "images/vla_nvas_w51.fits"}, {DID_PREFIX + "images/vla_nvas_w51.fits"}),
        ({"ID": [DID_PREFIX + "images/hst_acs_candels_gn_3filters.fits#2",
                 DID_PREFIX + "images/dss_poss1_m1_ned.fits"]},
         {DID_PREFIX + "images/hst_acs_candels_gn_3filters.fits#2", DID_PREFIX + "images/dss_poss1_m1_ned.fits"}),
        ({"FORMAT": "image/fits"}, set(imgs)),
        ({"FORMAT": "application/fits"}, set(imgs)),
    ]
    # Repeated POS: OR-ed.
    c1 = circle_truth(*M1, 0.01)
    c2 = circle_truth(*GALACTIC_CENTRE, 0.5)
    assert not (c1.ambiguous or c2.ambiguous)
    cases.append(({"POS": [f"CIRCLE {M1[0]} {M1[1]} 0.01",
                           f"CIRCLE {GALACTIC_CENTRE[0]} {GALACTIC_CENTRE[1]} 0.5"]}, c1.yes | c2.yes))
    # POS and BAND: AND-ed (the K-band UKIRT image of M1, not the DSS plate, nor ROSAT).
    band_k = where(lambda r: _overlap(r["em_min"], r["em_max"], 2.1e-6, 2.2e-6))
    cases.append(({"POS": f"CIRCLE {M1[0]} {M1[1]} 0.01", "BAND": "2.1e-6 2.2e-6"}, c1.yes & band_k))
    assert c1.yes & band_k == {DID_PREFIX + "images/ukirt_wfcam_k_taurus.fits"}, (c1.yes, band_k)
    # POS and INSTRUMENT: AND-ed.
    cases.append(({"POS": f"CIRCLE {GALACTIC_CENTRE[0]} {GALACTIC_CENTRE[1]} 0.5", "INSTRUMENT": "LAT"},
                  c2.yes & where(lambda r: r["instrument_name"] == "LAT")))
    problems = []
    for params, want in cases:
        got, _ = sia2_dids(base_url, params, session)
        p = compare(f"SIA2 {params}", got, _truth_of(want))
        if p:
            problems.append(p)
    assert not problems, "\n".join(problems)


def _truth_of(ids):
    t = Truth()
    t.yes = set(ids)
    return t


def test_sia2_polygon_and_range(base_url, session):
    """POLYGON (a small triangle) and RANGE positions, with inscribed/circumscribed circles."""
    problems = []
    cases = []
    for (ra, dec, s) in [(M1[0], M1[1], 0.005), (GALACTIC_CENTRE[0], GALACTIC_CENTRE[1], 0.2),
                         (202.4952, 47.2316, 0.5), (EMPTY_SKY[0], EMPTY_SKY[1], 0.5),
                         (280.84, 0.39, 0.001)]:
        # equilateral triangle of circumradius s about (ra, dec) (in the tangent plane)
        cd = math.cos(math.radians(dec))
        verts = [(ra + s * math.sin(math.radians(a)) / cd, dec + s * math.cos(math.radians(a)))
                 for a in (0, 240, 120)]  # counter-clockwise on the sky (east is left)
        pos = "POLYGON " + " ".join(f"{x:.8f} {y:.8f}" for x, y in verts)
        cases.append((pos, bounded_truth(unit(ra, dec), 0.49 * s, 1.02 * s)))
    for (ra1, ra2, de1, de2) in [(266.0, 267.0, -29.5, -28.5), (83.60, 83.66, 22.0, 22.03),
                                 (10.0, 11.0, -80.0, -79.0)]:
        ra, dec = (ra1 + ra2) / 2, (de1 + de2) / 2
        half_h = (de2 - de1) / 2
        half_w = (ra2 - ra1) / 2 * math.cos(math.radians(max(abs(de1), abs(de2))))
        r_in = min(half_h, half_w)
        r_out = float(max(ang(unit(ra, dec), unit(x, y)) for x in (ra1, ra2) for y in (de1, de2))) * 1.01
        cases.append((f"RANGE {ra1} {ra2} {de1} {de2}", bounded_truth(unit(ra, dec), r_in, r_out)))
    for pos, truth in cases:
        got, _ = sia2_dids(base_url, {"POS": pos}, session)
        p = compare(f"SIA2 POS={pos}", got, truth)
        if p:
            problems.append(p)
    assert not problems, "\n".join(problems)


def test_sia2_maxrec_overflow(base_url, session):
    from pyvo.dal import SIA2Service
    got, r = sia2_dids(base_url, {"COLLECTION": "demo", "MAXREC": "3"}, session)
    assert len(got) == 3, got
    st = query_status(r.content)
    assert "OVERFLOW" in st, f"MAXREC=3 of 18: QUERY_STATUS values {st}"
    svc = SIA2Service(base_url + "/sia/v2", session=session)
    res = svc.search(collection="demo", maxrec=3)
    # pyvo 1.9 reads the last QUERY_STATUS (after the table) and does not warn when the
    # truncation is at the maxrec the client asked for
    assert len(res) == 3 and res.status[0] == "OVERFLOW", (len(res), res.status)
    got0, r0 = sia2_dids(base_url, {"COLLECTION": "demo", "MAXREC": "0"}, session)
    assert got0 == [], got0


SIA2_BAD = [
    {"POS": "CIRCLE 10 20"},
    {"POS": "CIRCLE ten 20 1"},
    {"POS": "CIRCLE 10 95 1"},
    {"POS": "CIRCLE 10 20 -1"},
    {"POS": "POLYGON 1 2 3 4"},
    {"POS": "RANGE 1 2 3"},
    {"POS": "BOX 1 2 3 4"},
    {"BAND": "blue"},
    {"BAND": "6e-7 5e-7 4e-7"},
    {"TIME": "yesterday"},
    {"CALIB": "x"},
    {"MAXREC": "-1"},
    {"MAXREC": "many"},
    {"FOV": "1 2 3"},
]


@pytest.mark.parametrize("params", SIA2_BAD, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_sia2_bad_values_are_400_errors(base_url, params):
    r = sia2_query(base_url, params)
    st = query_status(r.content) if r.content.strip().startswith(b"<") else []
    assert r.status_code == 400 and st[:1] == ["ERROR"], (
        f"SIA2 {params}: expected HTTP 400 with QUERY_STATUS=ERROR, got HTTP {r.status_code}, "
        f"QUERY_STATUS {st}: {r.text[:800]}")


def test_sia2_capabilities_and_availability(base_url):
    r = http_get(base_url + "/sia/v2/capabilities")
    assert r.status_code == 200 and b"ivo://ivoa.net/std/SIA#query-2.0" in r.content, r.text[:1000]
    r = http_get(base_url + "/sia/v2/availability")
    assert r.status_code == 200 and b"available>true" in r.content.replace(b" ", b""), r.text[:1000]
    r = http_get(base_url + "/sia/v1/capabilities")
    assert r.status_code == 200 and b"ivo://ivoa.net/std/SIA" in r.content, r.text[:1000]
    r = http_get(base_url + "/ssa/capabilities")
    assert r.status_code == 200 and b"ivo://ivoa.net/std/SSA" in r.content, r.text[:1000]


@pytest.mark.parametrize("service", ["sia/v2", "sia/v1", "ssa", "datalink"])
def test_capabilities_and_availability_validate(base_url, tmp_path, service):
    """VOSI capabilities (with the SIA 1, SSA, TAPRegExt... extension types) and availability of
    each product service validate against the IVOA schemas."""
    for doc in ["capabilities", "availability"]:
        r = http_get(f"{base_url}/{service}/{doc}")
        assert r.status_code == 200, f"{service}/{doc}: HTTP {r.status_code}"
        path = tmp_path / f"{doc}.xml"
        path.write_bytes(r.content)
        p = xmllint_schema(path, SCHEMAS / "local-all-vo.xsd")
        assert p.returncode == 0, f"{service}/{doc} does not validate:\n{p.stderr[-3000:]}"


def test_sia1_errors_are_votables(base_url):
    """SIA 1 errors: HTTP 200 with QUERY_STATUS=ERROR."""
    for params in [{"SIZE": "0.1"}, {"POS": "10,20"}, {"POS": "abc", "SIZE": "1"},
                   {"POS": "10,20", "SIZE": "1", "INTERSECT": "SOMETIMES"}]:
        r = http_get(base_url + "/sia/v1", params=params)
        st = query_status(r.content) if r.content.strip().startswith(b"<") else []
        assert r.status_code == 200 and st[:1] == ["ERROR"], (
            f"SIA1 {params}: HTTP {r.status_code} QUERY_STATUS {st}: {r.text[:600]}")


# --------------------------------------------------------------------------
# 3. SSA: TIME, BAND, errors
# --------------------------------------------------------------------------


def _uves(day_prefix):
    return {spectrum_did(n) for n in spectra_truth() if n.startswith("r.UVES." + day_prefix)}


def test_ssa_time_selects_uves_epochs(base_url, session):
    from astropy.time import Time
    from pyvo.dal import SSAService
    svc = SSAService(base_url + "/ssa", session=session)
    cases = [("2011-08-12T00:00:00", "2011-08-12T12:00:00"),
             ("2011-08-11T00:00:00", "2011-08-14T00:00:00"),
             ("2011-08-13T01:00:00", "2011-08-13T02:00:00"),
             ("2011-08-12T00:30:00", "2011-08-12T01:40:00")]
    problems = []
    for a, b in cases:
        ta, tb = Time(a, scale="utc").mjd, Time(b, scale="utc").mjd
        want = {spectrum_did(n) for n, s in spectra_truth().items()
                if s["time"] and s["time"][0] <= tb and s["time"][1] >= ta}
        amb = {spectrum_did(n) for n, s in spectra_truth().items()
               if s["time"] and (min(abs(s["time"][0] - tb), abs(s["time"][1] - ta)) < 1e-5)}
        t = Truth()
        t.yes, t.ambiguous = want - amb, amb
        r = session.get(base_url + "/ssa", params={"REQUEST": "queryData", "TIME": f"{a}/{b}"})
        assert r.status_code == 200, r.text[:1000]
        _, rows = votable_rows(r.content)
        got = [row["obs_publisher_did"] for row in rows]
        p = compare(f"SSA TIME={a}/{b}", got, t)
        if p:
            problems.append(p)
    # the first case is exactly the four UVES spectra of the night of 08-12 (after midnight)
    want12 = {spectrum_did(n) for n in spectra_truth() if n.startswith("r.UVES.2011-08-12T0")}
    assert len(want12) == 4
    got, _ = _ssa_dids(svc, time=Time(["2011-08-12T00:00:00", "2011-08-12T12:00:00"], scale="utc"))
    if set(got) != want12:
        problems.append(f"pyvo SSA time=2011-08-12T00/12: got {sorted(got)}, expected {sorted(want12)}")
    assert not problems, "\n".join(problems)


def test_ssa_band_selects_by_coverage(base_url, session):
    truth = spectra_truth()
    known = {n: s["band"] for n, s in truth.items()}
    assert known["keck_esi_q0100+13_flux.fits"] and known["vlt_xshooter_xq100_BRJ2349-3712.fits.gz"]
    problems = []
    for lo, hi in [(5.5e-7, 6.0e-7), (4.0e-7, 4.5e-7), (0.2, 0.25), (1.2e-6, 1.3e-6), (1e-3, 1e-2)]:
        t = Truth()
        for n, b in known.items():
            if b is None:
                t.ambiguous.add(spectrum_did(n))  # coverage not derived here (IUE)
            elif min(abs(b[0] - hi), abs(b[1] - lo)) < 1e-3 * lo:
                t.ambiguous.add(spectrum_did(n))
            elif b[0] <= hi and b[1] >= lo:
                t.yes.add(spectrum_did(n))
        r = session.get(base_url + "/ssa", params={"REQUEST": "queryData", "BAND": f"{lo}/{hi}"})
        assert r.status_code == 200, r.text[:1000]
        _, rows = votable_rows(r.content)
        p = compare(f"SSA BAND={lo}/{hi}", [row["obs_publisher_did"] for row in rows], t)
        if p:
            problems.append(p)
    assert not problems, "\n".join(problems)


def test_ssa_errors(base_url):
    for params in [{"POS": "230.87,-38.36", "SIZE": "0.1"},  # no REQUEST
                   {"REQUEST": "queryData", "POS": "230.87", "SIZE": "0.1"},
                   {"REQUEST": "queryData", "BAND": "red"},
                   {"REQUEST": "queryData", "TIME": "not-a-time"},
                   {"REQUEST": "nonsense"}]:
        r = http_get(base_url + "/ssa", params=params)
        st = query_status(r.content) if r.content.strip().startswith(b"<") else []
        assert st[:1] == ["ERROR"], f"SSA {params}: HTTP {r.status_code} QUERY_STATUS {st}: {r.text[:600]}"


def test_ssa_maxrec_and_format(base_url, session):
    r = session.get(base_url + "/ssa", params={"REQUEST": "queryData", "MAXREC": "2"})
    assert r.status_code == 200, r.text[:600]
    _, rows = votable_rows(r.content)
    assert len(rows) == 2 and "OVERFLOW" in query_status(r.content), (len(rows), query_status(r.content))
    r = session.get(base_url + "/ssa", params={"REQUEST": "queryData", "FORMAT": "application/fits",
                                              "POS": f"{MN_LUP[0]},{MN_LUP[1]}", "SIZE": "0.01"})
    assert r.status_code == 200
    _, rows = votable_rows(r.content)
    assert len(rows) == 9, [row["obs_publisher_did"] for row in rows]


# --------------------------------------------------------------------------
# 4. Downloads
# --------------------------------------------------------------------------


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def test_download_every_record(base_url, obscore, session):
    """GET access_url returns the bytes of the data/demo file, with the right content type."""
    problems = []
    urls = {row["access_url"] for row in obscore.values()}
    files = {f.relative_to(DEMO) for d in (IMAGES, SPECTRA) for f in d.iterdir()}
    served = {local_file_of(u, base_url).relative_to(DEMO) for u in urls}
    if files - served:
        problems.append(f"files without an access_url in ivoa.obscore: {sorted(map(str, files - served))}")
    for u in sorted(urls):
        path = local_file_of(u, base_url)
        r = session.get(u)
        if r.status_code != 200:
            problems.append(f"GET {u}: HTTP {r.status_code}")
            continue
        # requests accepts gzip: a stored .fits.gz comes with Content-Encoding: gzip, which
        # requests decodes, so the content is the FITS file.
        stored = path.read_bytes()
        want_bytes = gzip.decompress(stored) if path.name.endswith(".gz") else stored
        if _sha(r.content) != _sha(want_bytes):
            problems.append(f"GET {u}: {len(r.content)} bytes differ from {path} ({len(want_bytes)})")
        ct = r.headers.get("Content-Type", "")
        if not ct.startswith("application/fits"):
            problems.append(f"GET {u}: Content-Type {ct!r}, expected application/fits")
        want_ce = "gzip" if path.name.endswith(".gz") else None
        if r.headers.get("Content-Encoding") != want_ce:
            problems.append(f"GET {u}: Content-Encoding {r.headers.get('Content-Encoding')!r}, "
                            f"expected {want_ce!r}")
    # Files behind the access URLs of the SIA2/SSA records are the same files.
    assert not problems, "\n".join(problems)


def test_download_ranges(base_url, session):
    path = IMAGES / "vla_nvas_w51.fits"
    data = path.read_bytes()
    n = len(data)
    url = f"{base_url}/data/{COLLECTION}/images/{path.name}"
    problems = []
    h = session.head(url)
    if h.status_code != 200 or h.content:
        problems.append(f"HEAD {url}: HTTP {h.status_code}, {len(h.content)} body bytes")
    if h.headers.get("Content-Length") != str(n):
        problems.append(f"HEAD {url}: Content-Length {h.headers.get('Content-Length')!r}, expected {n} "
                        "(the length a GET would send)")
    if h.headers.get("Accept-Ranges") != "bytes":
        problems.append(f"HEAD: Accept-Ranges {h.headers.get('Accept-Ranges')!r}")
    g = session.get(url)
    etag = g.headers.get("ETag")
    assert etag, f"no ETag on GET: {g.headers}"
    if h.headers.get("ETag") != etag:
        problems.append(f"HEAD ETag {h.headers.get('ETag')!r} != GET ETag {etag!r}")
    for rng, (a, b) in [("bytes=0-99", (0, 99)), (f"bytes=1000-{n // 2}", (1000, n // 2)),
                        ("bytes=-500", (n - 500, n - 1)), (f"bytes={n - 2880}-", (n - 2880, n - 1)),
                        (f"bytes={n - 10}-{n + 1000}", (n - 10, n - 1)), ("bytes=0-0", (0, 0))]:
        r = session.get(url, headers={"Range": rng})
        want_cr = f"bytes {a}-{b}/{n}"
        if r.status_code != 206 or r.content != data[a:b + 1] or r.headers.get("Content-Range") != want_cr:
            problems.append(f"Range {rng}: HTTP {r.status_code}, {len(r.content)} bytes "
                            f"(expected {b - a + 1}, same={r.content == data[a:b + 1]}), "
                            f"Content-Range {r.headers.get('Content-Range')!r} (expected {want_cr!r})")
    for rng in (f"bytes={n}-", f"bytes={n + 100}-{n + 200}"):
        r = session.get(url, headers={"Range": rng})
        if r.status_code != 416 or r.headers.get("Content-Range") != f"bytes */{n}":
            problems.append(f"Range {rng}: expected 416 with Content-Range 'bytes */{n}', got HTTP "
                            f"{r.status_code} Content-Range {r.headers.get('Content-Range')!r}")
    r = session.get(url, headers={"Range": "bytes=0-99", "If-Range": '"not-the-etag"'})
    if r.status_code != 200 or r.content != data:
        problems.append(f"If-Range with a wrong ETag: expected 200 + whole file, got {r.status_code}, "
                        f"{len(r.content)} bytes")
    r = session.get(url, headers={"Range": "bytes=0-99", "If-Range": etag})
    if r.status_code != 206 or r.content != data[:100]:
        problems.append(f"If-Range with the right ETag: expected 206 + 100 bytes, got {r.status_code}, "
                        f"{len(r.content)} bytes")
    hr = session.head(url, headers={"Range": "bytes=0-99"})
    if hr.status_code not in (200, 206):
        problems.append(f"HEAD with Range: HTTP {hr.status_code}")
    gz = IMAGES / "fermi_lat_counts_gc.fits.gz"
    # A range of a gzip-encoded representation is a range of the stored (encoded) bytes.
    r = session.get(f"{base_url}/data/{COLLECTION}/images/{gz.name}",
                    headers={"Range": "bytes=0-1", "Accept-Encoding": "gzip"}, stream=True)
    raw = r.raw.read(decode_content=False)
    if r.status_code != 206 or raw != b"\x1f\x8b" or r.headers.get("Content-Encoding") != "gzip":
        problems.append(f"gz Range 0-1: HTTP {r.status_code} {raw[:4]!r} "
                        f"Content-Encoding {r.headers.get('Content-Encoding')!r} (stored gzip bytes expected)")
    assert not problems, "\n".join(problems)


def _raw_get(base_url, raw_path):
    """GET with the path sent exactly as written (no client-side dot-segment removal)."""
    u = urllib.parse.urlsplit(base_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.putrequest("GET", raw_path, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_download_path_traversal(base_url, server):
    secrets = {_sha(p.read_bytes()) for p in [REPO / "Cargo.toml", Path("/etc/passwd")] if p.is_file()}
    index_files = sorted(data_files(server.data_dir, "products/_index"))
    for p in index_files:
        secrets.add(_sha(data_read(server.data_dir, f"products/_index/{p}")))
    paths = [
        "/data/demo/../../etc/passwd",
        "/data/demo/images/../../../../../../etc/passwd",
        "/data/demo/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/data/demo/images/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/data/demo/images/..%2f..%2f..%2fCargo.toml",
        "/data/demo/images/%252e%252e/%252e%252e/etc/passwd",
        "/data/demo/images/..\\..\\..\\etc\\passwd",
        "/data/demo/images/./vla_nvas_w51.fits/..",
        "/data/..%2f..%2fetc/passwd",
        "/data//etc/passwd",
        "/data/demo",
        "/data/demo/",
        "/data/demo/images/",
        "/data/demo/images",
        "/data/_index/demo/obscore.parquet",
        "/data/%5findex/demo/obscore.parquet",
        "/data/_index/demo/headers.parquet",
    ] + [f"/data/_index/{p}" for p in index_files]
    problems = []
    for raw in paths:
        status, body = _raw_get(base_url, raw)
        if status != 404:
            problems.append(f"GET {raw}: HTTP {status} (expected 404), {len(body)} bytes")
        if _sha(body) in secrets:
            problems.append(f"GET {raw}: returned a file from outside the products ({len(body)} bytes)")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# 5. DataLink
# --------------------------------------------------------------------------

DATALINK_IDS = [
    DID_PREFIX + "images/vla_nvas_w51.fits",
    DID_PREFIX + "images/hst_acs_candels_gn_3filters.fits#2",
    DID_PREFIX + "images/cube_hcn_g283.2-1.0.fits.gz",
    DID_PREFIX + "spectra/keck_esi_q0100+13_flux.fits",
    DID_PREFIX + "images/no_such_file.fits",
]


def _links_url(base_url, did):
    return f"{base_url}/datalink/links?ID={urllib.parse.quote(did, safe='')}"


@pytest.mark.parametrize("did", DATALINK_IDS)
def test_datalinklint(base_url, did, tmp_path):
    url = _links_url(base_url, did)
    r = http_get(url)
    assert r.status_code == 200, f"{url}: HTTP {r.status_code}: {r.text[:600]}"
    ct = r.headers.get("Content-Type", "").replace(" ", "")
    assert ct.startswith("application/x-votable+xml") and "content=datalink" in ct, ct
    p = stilts("datalinklint", "format=text", "report=EWISF", "maxrepeat=20", f"votable={url}", timeout=180)
    out = p.stdout + p.stderr
    m = re.search(r"Totals:\s*Errors:\s*(\d+);\s*Warnings:\s*(\d+)", out)
    assert p.returncode == 0 and m, f"datalinklint rc {p.returncode}:\n{out[-4000:]}"
    for line in out.splitlines():
        if line.startswith("W-"):
            print("datalinklint", did, line)
    assert int(m.group(1)) == 0, f"datalinklint on {url}: {m.group(0)}\n{out[-6000:]}"
    _, rows = votable_rows(r.content)
    if "no_such_file" in did:
        assert len(rows) == 1 and (rows[0]["error_message"] or "").startswith("NotFoundFault"), rows
        return
    sem = Counter(row["semantics"] for row in rows)
    assert sem["#this"] == 1 and sem["#preview"] >= 1 and sem["#auxiliary"] >= 1, sem
    assert all(row["ID"] == did for row in rows), rows


def _png_size(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n", f"not a PNG: {b[:16]!r}"
    assert b[12:16] == b"IHDR", b[:32]
    return struct.unpack(">II", b[16:24])


def test_datalink_links_resolve(base_url, obscore, session):
    """For every record: #this is the access_url (same bytes), #preview a PNG <= 512 px,
    #auxiliary the FITS header as text (starts with SIMPLE)."""
    problems, not_simple, first = [], [], ""
    for did, row in sorted(obscore.items()):
        r = session.get(_links_url(base_url, did))
        if r.status_code != 200:
            problems.append(f"links {did}: HTTP {r.status_code}")
            continue
        _, rows = votable_rows(r.content)
        by = {}
        for x in rows:
            by.setdefault(x["semantics"], []).append(x)
        this = by.get("#this", [])
        if len(this) != 1 or this[0]["access_url"] != row["access_url"]:
            problems.append(f"{did}: #this {[(x['access_url']) for x in this]} != access_url {row['access_url']}")
        for x in by.get("#preview", []):
            pr = session.get(x["access_url"])
            try:
                w, h = _png_size(pr.content)
                if pr.status_code != 200 or not (0 < w <= 512 and 0 < h <= 512):
                    problems.append(f"{did}: preview HTTP {pr.status_code}, {w}x{h}")
                if not pr.headers.get("Content-Type", "").startswith("image/png"):
                    problems.append(f"{did}: preview Content-Type {pr.headers.get('Content-Type')}")
            except AssertionError as e:
                problems.append(f"{did}: preview HTTP {pr.status_code}: {e}")
        if not by.get("#preview"):
            problems.append(f"{did}: no #preview link")
        aux = by.get("#auxiliary", [])
        if not aux:
            problems.append(f"{did}: no #auxiliary link")
        for x in aux:
            hr = session.get(x["access_url"])
            if hr.status_code != 200 or not hr.headers.get("Content-Type", "").startswith("text/plain"):
                problems.append(f"{did}: header HTTP {hr.status_code} {hr.headers.get('Content-Type')}")
            elif not hr.text.startswith("SIMPLE  ="):
                not_simple.append(did)
                first = hr.text[:40]
    if not_simple:
        problems.append(f"{len(not_simple)} of {len(obscore)} #auxiliary header texts do not start with "
                        f"'SIMPLE  =' (e.g. {not_simple[0]}: {first!r})")
    assert not problems, "\n".join(problems)


def test_pyvo_sia2_service_descriptor_reaches_datalink(base_url, session):
    from pyvo.dal import SIA2Service
    svc = SIA2Service(base_url + "/sia/v2", session=session)
    res = svc.search(pos=(M1[0], M1[1], 0.01))
    assert len(res) >= 2, len(res)
    acc = {str(rec["obs_publisher_did"]): str(rec["access_url"]) for rec in res}
    seen = 0
    for dl in res.iter_datalinks():
        # (DatalinkResults.bysemantics needs the IVOA vocabulary from the network: filter here)
        rows = [r for r in dl if str(r["semantics"]) == "#this"]
        assert len(rows) == 1, [str(r["semantics"]) for r in dl]
        did = str(rows[0]["ID"])
        assert str(rows[0].getdataurl()) == acc[did], (did, rows[0].getdataurl(), acc[did])
        seen += 1
    assert seen == len(res), f"iter_datalinks gave {seen} of {len(res)}"


# --------------------------------------------------------------------------
# 6. STILTS coneskymatch (servicetype sia1, sia2, ssa)
# --------------------------------------------------------------------------


def _positions_csv(tmp_path):
    rows = []
    for fp in image_footprints():
        if fp.file in ("dss_poss1_m1_ned.fits", "vla_nvas_w51.fits", "cfht_megaprime_sa110.fits",
                       "msx_e_galactic_center.fits", "spitzer_sha_1999AQ10.fits") and fp.hdu in (0, 1):
            ra, dec = lonlat(fp.centre)
            rows.append((fp.file, float(ra), float(dec)))
    rows.append(("MN_Lup", *MN_LUP))
    rows.append(("empty", *EMPTY_SKY))
    path = tmp_path / "pos.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "ra", "dec"])
        for r in rows:
            w.writerow([r[0], f"{r[1]:.8f}", f"{r[2]:.8f}"])
    return path, rows


CONESKY_SR = 0.002


@pytest.mark.parametrize("servicetype", ["sia1", "sia2", "ssa"])
def test_stilts_coneskymatch(base_url, servicetype, tmp_path):
    path, rows = _positions_csv(tmp_path)
    url = {"sia1": f"{base_url}/sia/v1?", "sia2": f"{base_url}/sia/v2/query?", "ssa": f"{base_url}/ssa?"}[servicetype]
    out = tmp_path / "out.csv"
    p = stilts("coneskymatch", f"in={path}", "ifmt=csv", "ra=ra", "dec=dec", f"sr={CONESKY_SR}",
               f"servicetype={servicetype}", f"serviceurl={url}", "find=all", "usefoot=false",
               "parallel=2", "erract=abort", "copycols=name", "ofmt=csv", f"out={out}", timeout=300)
    err = p.stderr
    assert p.returncode == 0, f"coneskymatch {servicetype} rc {p.returncode}:\n{err[-4000:]}"
    bad = [ln for ln in err.splitlines() if re.search(r"error|exception|fail", ln, re.I)]
    assert not bad, f"coneskymatch {servicetype} stderr:\n" + "\n".join(bad[:40])
    with open(out, newline="") as f:
        got = Counter(r["name"] for r in csv.DictReader(f))
    problems = []
    for name, ra, dec in rows:
        if servicetype == "ssa":
            t = ssa_cone_truth(ra, dec, 2 * CONESKY_SR)
            lo, hi = len(t.yes), len(t.yes) + len(t.ambiguous)
        else:
            # sia1: a box of side 2 sr; sia2: a circle of radius sr. Count per record.
            t = (circle_truth(ra, dec, CONESKY_SR) if servicetype == "sia2"
                 else bounded_truth(unit(ra, dec), CONESKY_SR, CONESKY_SR * SQRT2 * 1.01))
            lo, hi = len(t.yes), len(t.yes) + len(t.ambiguous)
        if not (lo <= got[name] <= hi):
            problems.append(f"{name} ({ra:.5f}, {dec:.5f}): {got[name]} rows, expected {lo}..{hi}")
    assert not problems, f"coneskymatch {servicetype}:\n" + "\n".join(problems)


# --------------------------------------------------------------------------
# 7. taplint OBS
# --------------------------------------------------------------------------


def test_taplint_obscore(base_url):
    from vostok_helpers import taplint_accepted  # MUPM: see ACCEPTED_TAPLINT there
    p = stilts("taplint", f"tapurl={base_url}/tap", "stages=TME TMS CAP OBS", "report=EWF",
               "format=json", "maxrepeat=20", "truncate=1000", timeout=600)
    assert p.returncode == 0, f"taplint exited {p.returncode}\nstderr:\n{p.stderr[-4000:]}"
    report = json.loads(p.stdout)
    codes = {s.get("code") for s in report.get("sections", [])}
    assert "OBS" in codes, f"taplint did not run OBS: {sorted(codes)}"
    bad, warn = [], []
    for sec in report.get("sections", []):
        for r in sec.get("reports", []):
            line = f"{sec.get('code')} {r.get('level')} {r.get('code')}: {r.get('text')}"
            if r.get("level") in ("ERROR", "FAILURE") and not taplint_accepted(r):
                bad.append(line)
            elif r.get("level") == "WARNING":
                warn.append(line)
    for w in warn:
        print("taplint", w)
    print(f"taplint totals: {report.get('totals')}")
    assert not bad, f"taplint (TME TMS CAP OBS): {len(bad)} errors/failures:\n" + "\n".join(bad)


# --------------------------------------------------------------------------
# 8. votlint / xmllint on the product protocols' responses
# --------------------------------------------------------------------------

VOT_DOCS = {
    "sia2-m1": ("/sia/v2/query", {"POS": f"CIRCLE {M1[0]} {M1[1]} 0.1"}),
    "sia2-all": ("/sia/v2/query", {"COLLECTION": "demo"}),
    "sia2-overflow": ("/sia/v2/query", {"COLLECTION": "demo", "MAXREC": "2"}),
    "sia2-empty": ("/sia/v2/query", {"POS": f"CIRCLE {EMPTY_SKY[0]} {EMPTY_SKY[1]} 0.1", "DPTYPE": "cube"}),
    "sia2-error": ("/sia/v2/query", {"POS": "CIRCLE 1 2"}),
    "sia1-m1": ("/sia/v1", {"POS": f"{M1[0]},{M1[1]}", "SIZE": "0.2"}),
    "sia1-metadata": ("/sia/v1", {"FORMAT": "METADATA"}),
    "sia1-error": ("/sia/v1", {"POS": "1"}),
    "ssa-mnlup": ("/ssa", {"REQUEST": "queryData", "POS": f"{MN_LUP[0]},{MN_LUP[1]}", "SIZE": "0.01"}),
    "ssa-all": ("/ssa", {"REQUEST": "queryData"}),
    "ssa-error": ("/ssa", {"POS": "1,2"}),
    "datalink-image": ("/datalink/links", {"ID": DID_PREFIX + "images/vla_nvas_w51.fits"}),
    "datalink-multi": ("/datalink/links", {"ID": [DID_PREFIX + "images/vla_nvas_w51.fits",
                                                   DID_PREFIX + "spectra/sdss_J220248.31+123656.3.fits"]}),
    "datalink-unknown": ("/datalink/links", {"ID": DID_PREFIX + "images/nope.fits"}),
}


@pytest.fixture(scope="module", params=sorted(VOT_DOCS))
def product_document(request, base_url, tmp_path_factory):
    name = request.param
    path_, params = VOT_DOCS[name]
    r = http_get(base_url + path_, params=params)
    if "error" in name:
        assert r.status_code in (200, 400), f"{name}: HTTP {r.status_code}"
    else:
        assert r.status_code == 200, f"{name}: HTTP {r.status_code}: {r.text[:1000]}"
    p = tmp_path_factory.mktemp("pvot") / f"{name}.vot"
    p.write_bytes(r.content)
    return name, p


def test_product_votlint_silent(product_document):
    name, path = product_document
    p = stilts("votlint", "validate=true", "ucd=true", "unit=true", f"votable={path}", timeout=120)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not out, (
        f"votlint on {name} (rc {p.returncode}):\n{out[:6000]}\n--- head ---\n"
        f"{path.read_text(errors='replace')[:1500]}")


# UCD1 words of SIA 1.0 results, which astropy's UCD1+ check (W06) does not know.
SIA1_UCD1 = ("VOX:", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN", "INST_ID", "VOX_")


def test_product_astropy_parses_without_warnings(product_document):
    """astropy's VOTable parser reports no spec violation (W/E codes: UCD syntax, units, ...),
    SIA 1's UCD1 words aside."""
    from astropy.io.votable.exceptions import VOWarning
    name, path = product_document
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_votable(path.read_bytes(), verify="warn")
    problems = sorted({str(w.message) for w in caught if issubclass(w.category, VOWarning)
                       and not (w.category.__name__ == "W06" and any(u in str(w.message) for u in SIA1_UCD1))})
    assert not problems, f"astropy on {name}:\n" + "\n".join(problems)


def test_product_votable_schema(product_document):
    name, path = product_document
    p = xmllint_schema(path, SCHEMAS / "VOTable-v1.4.xsd")
    assert p.returncode == 0, f"{name} vs VOTable-v1.4.xsd:\n{p.stderr[-4000:]}"


# --------------------------------------------------------------------------
# 9. Aladin (headless): an image found through SIA 2 loads, and its pixels export unchanged
# --------------------------------------------------------------------------

ALADIN_TIMEOUT = 180


def test_aladin_loads_sia2_image(base_url, session, tmp_path):
    """Aladin (Debian 12.001, `-nogui` under xvfb-run) loads the UKIRT image that SIA 2 finds
    on M1 and exports its plane as FITS: the exported pixels equal the original's.

    Aladin's `load http://...` resolves URLs through its GLU dictionary, which `-local` turns
    off (Glu.getURL returns null without network) and which, without `-local`, waits for
    aladin.u-strasbg.fr; so the file is fetched from access_url here and loaded from disk.
    The SIA 2 VOTable itself is loaded as well and exported as a table."""
    from astropy.io import fits
    xvfb = require_tool("xvfb-run")
    aladin = require_tool("aladin")
    from pyvo.dal import SIA2Service
    res = SIA2Service(base_url + "/sia/v2", session=session).search(pos=(M1[0], M1[1], 0.005), instrument="WFCAM")
    urls = [str(u) for u in res["access_url"]]
    assert len(urls) == 1 and urls[0].endswith("ukirt_wfcam_k_taurus.fits"), urls
    r = session.get(urls[0])
    assert r.status_code == 200
    img = tmp_path / "ukirt_wfcam_k_taurus.fits"
    img.write_bytes(r.content)
    vot = tmp_path / "sia2.xml"
    vot.write_bytes(sia2_query(base_url, {"POS": f"CIRCLE {M1[0]} {M1[1]} 0.1"}).content)
    out_fits, out_png, out_tab = tmp_path / "exported.fits", tmp_path / "view.png", tmp_path / "sia2.tsv"
    script = "\n".join([
        f"load {img}", "sync", f"export ukirt_wfcam_k_taurus {out_fits}", f"save {out_png}",
        f"load {vot}", "sync", f"export sia2 {out_tab}", "quit", ""])
    p = subprocess.run([xvfb, "-a", aladin, "-nogui", "-local", "-noreleasetest", "-nolog", "-nosamp",
                        "-noplugin"], input=script, capture_output=True, text=True, timeout=ALADIN_TIMEOUT,
                       cwd=tmp_path)
    log = f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    assert out_fits.is_file() and out_fits.stat().st_size > 2880, f"Aladin exported no FITS.\n{log}"
    with fits.open(out_fits) as a, fits.open(img) as b:
        got = np.asarray(a[0].data, dtype=float)
        want = np.asarray(b[1].data, dtype=float)
    assert got.shape == want.shape and np.array_equal(got, want), f"exported pixels differ.\n{log}"
    assert out_png.is_file() and out_png.stat().st_size > 1000, f"no view PNG.\n{log}"
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the SIA 2 result as an Aladin table plane: one row per record (with s_ra/s_dec)
    n_rows = len(sia2_dids(base_url, {"POS": f"CIRCLE {M1[0]} {M1[1]} 0.1"})[0])
    if out_tab.is_file():
        lines = [ln for ln in out_tab.read_text(errors="replace").splitlines() if ln and not ln.startswith("#")]
        print(f"Aladin exported the SIA2 table: {len(lines)} lines for {n_rows} records")
    else:
        print(f"Aladin did not export the SIA2 VOTable as a table plane.\n{log}")
