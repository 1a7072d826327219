"""DataLink #preview PNGs a person can read, reached as pyvo reaches them (SIA 2 / SSA result
→ getdatalink() → #preview):

* a spectrum: axis tick labels and titles are drawn outside the plot box (dark pixels left of
  and below the box, where a plot without text has none);
* an image with a celestial WCS: the scale bar (bottom left) and the N/E compass (top right)
  in the overlay colour; the all-sky ROSAT map (no meaningful single scale) has none.

The PNGs are decoded here with zlib alone (8-bit RGB/RGBA/grey+alpha, every PNG filter).
"""

from __future__ import annotations

import struct
import zlib

import pytest
import pyvo
import requests

OVERLAY = (255, 214, 0, 255)


def decode_png(data: bytes):
    """(width, height, channels, rows of bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, (depth, interlace)
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * channels
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, channels, rows


def pixel(rows, channels, x, y):
    return tuple(rows[y][x * channels:(x + 1) * channels])


def preview_of(record):
    links = record.getdatalink()
    urls = [r.access_url for r in links if r.semantics == "#preview"]
    assert urls, "no #preview link"
    r = requests.get(urls[0], timeout=120)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png", r.text[:200]
    return decode_png(r.content)


@pytest.fixture(scope="module")
def crab_images(base_url):
    return {str(r["obs_publisher_did"]).rsplit("/", 1)[-1]: r
            for r in pyvo.dal.SIA2Service(base_url + "/sia/v2").search(pos=(83.633, 22.0145, 0.05))}


def test_image_preview_has_scale_bar_and_compass(crab_images):
    dss = next(r for did, r in crab_images.items() if "dss_poss1_m1" in did)
    w, h, ch, rows = preview_of(dss)
    assert ch == 4, "an image with a WCS is RGBA (the overlay is coloured)"

    def overlay_in(x0, x1, y0, y1):
        return sum(pixel(rows, ch, x, y) == OVERLAY for x in range(x0, x1) for y in range(y0, y1))

    assert overlay_in(0, w // 2, h // 2, h) > 20, "no scale bar bottom left"
    assert overlay_in(w // 2, w, 0, h // 2) > 20, "no compass top right"


def test_all_sky_map_has_no_scale_bar(crab_images):
    rosat = next(r for did, r in crab_images.items() if "rosat_allsky" in did)
    w, h, ch, rows = preview_of(rosat)
    assert ch == 2, "grey + alpha: no overlay on an all-sky map"


def test_spectrum_preview_has_labels(base_url):
    ssa = pyvo.dal.SSAService(base_url + "/ssa")
    spectra = ssa.search(pos=(230.876, -38.358), diameter=0.01)
    assert len(spectra) > 0
    w, h, ch, rows = preview_of(spectra[0])
    assert ch == 3

    def dark(x0, x1, y0, y1):
        return sum(max(pixel(rows, ch, x, y)) < 80 for x in range(x0, x1) for y in range(y0, y1))

    # The box's left edge: the first column (from the left, mid-height) that is dark for most
    # of the height.
    left = next(x for x in range(w) if dark(x, x + 1, h // 8, h - h // 4) > h // 2)
    bottom = next(y for y in range(h - 1, 0, -1) if dark(left + 5, w - 5, y, y + 1) > w // 2)
    assert left > 20 and bottom < h - 15, (left, bottom)
    assert dark(0, left - 2, 0, h) > 100, "no y tick labels or title left of the box"
    assert dark(left, w, bottom + 2, h) > 100, "no x tick labels or title below the box"
