#!/usr/bin/env python3
"""Timings of the portal in headless Chromium (Playwright, Debian's /usr/bin/chromium): first
contentful paint of `/` (three fresh loads), a 100,000-row query from the click on Run to the
table shown, frame times while scrolling that table, a sort by one column, and how many row
elements the page holds. Against a running server:

    ~/.cache/vostok/venv/bin/python scripts/portal-measure.py http://127.0.0.1:8080
"""
import time
from playwright.sync_api import sync_playwright
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
import sys
base = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8080"
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
    for i in range(3):
        ctx = b.new_context(viewport={"width": 1400, "height": 900}); page = ctx.new_page()
        page.goto(base + "/")
        page.wait_for_timeout(500)
        fcp = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
        print("first contentful paint ms", round(fcp))
        ctx.close()
    page = b.new_page(viewport={"width": 1400, "height": 900})
    page.goto(base + "/")
    page.fill("#editor", "SELECT TOP 100000 source_id, ra, dec, phot_g_mean_mag, pmra, pmdec FROM gaia.dr3_bright")
    t0 = time.monotonic()
    page.click("#run")
    while not page.evaluate("() => !!window.vostokPortal.result"):
        page.wait_for_timeout(50)
    print("100k rows: run → table shown s", round(time.monotonic() - t0, 2), page.inner_text("#result-info"))
    frames = page.evaluate("""() => new Promise(res => {
      const b = document.querySelector('.grid-body'); const t = []; let n = 0; let last = performance.now();
      function step(now) { t.push(now - last); last = now; b.scrollTop += 4000; if (++n < 200) requestAnimationFrame(step); else res(t); }
      requestAnimationFrame(step); })""")
    frames = sorted(frames[1:])
    print("scroll frames: median ms", round(frames[len(frames)//2],1), "p95", round(frames[int(len(frames)*0.95)],1), "max", round(frames[-1],1))
    t0 = time.monotonic()
    page.locator(".grid-head button", has_text="phot_g_mean_mag").click()
    page.wait_for_timeout(10)
    print("sort 100k by mag s", round(time.monotonic() - t0, 2))
    print("rows in DOM", page.locator(".grid-row").count())
    b.close()
