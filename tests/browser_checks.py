"""Checks of a report page in a real browser (headless Chromium through Selenium), for any
HTML file: ``chromium()`` starts the browser (the test is skipped where it is missing:
``bash scripts/browser.sh`` installs it), ``assert_fits_without_horizontal_scroll`` loads a
page at a given viewport width and asserts nothing sticks out or is cut off.

    from browser_checks import assert_fits_without_horizontal_scroll, chromium
    drv = chromium()
    try:
        assert_fits_without_horizontal_scroll(drv, "out/report.html", width=1280)
    finally:
        drv.quit()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


def chromium():
    """A headless Chromium WebDriver; skips the calling test when Chromium, chromedriver or
    selenium is missing. Its profile, settings and caches (HOME, the XDG folders, dconf) live
    in a temporary folder, removed by ``quit()``: nothing is written into the home directory."""
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (chrome and driver):
        pytest.skip("headless Chromium not installed (bash scripts/browser.sh)")
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    root = tempfile.mkdtemp(prefix="calibrate-chromium-")
    env = dict(os.environ)
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        env[name] = os.path.join(root, name.lower())
        os.makedirs(env[name], mode=0o700)
    opts.add_argument(f"--user-data-dir={os.path.join(root, 'profile')}")
    try:
        drv = webdriver.Chrome(service=Service(driver, env=env), options=opts)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    quit_driver = drv.quit

    def quit():
        try:
            quit_driver()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    drv.quit = quit
    return drv


# Everything that sticks out of the viewport (right edge past innerWidth, left edge below 0)
# and every element whose content is wider than its box (cut off or scrolled inside it).
_MEASURE = """
const W = document.documentElement.clientWidth;  // the viewport less a vertical scroll bar
const out = [], clipped = [];
const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                   (el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/ +/g, '.') : '');
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;  // not laid out (inside a closed <details>)
  if (r.right > W + 0.5 || r.left < -0.5) out.push([name(el), Math.round(r.left), Math.round(r.right)]);
  if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !['html', 'body'].includes(el.tagName.toLowerCase()))
    clipped.push([name(el), el.scrollWidth, el.clientWidth]);
}
const tables = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect())
  .filter(r => r.width > 0).map(r => Math.round(r.right));
return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, clientWidth: W,
        bodyScrollWidth: document.body.scrollWidth, outside: out.slice(0, 20), n_outside: out.length,
        clipped: clipped.slice(0, 20), n_clipped: clipped.length, table_rights: tables};
"""


def _check(drv, state: str) -> dict:
    m = drv.execute_script(_MEASURE)
    where = f"({state}, window {m['innerWidth']} px)"
    assert m["scrollWidth"] <= m["innerWidth"], f"page scrolls sideways {where}: {m['scrollWidth']} px wide; {m}"
    assert m["n_outside"] == 0, f"{m['n_outside']} elements stick out of the viewport {where}: {m['outside']}"
    assert m["n_clipped"] == 0, f"{m['n_clipped']} elements are wider than their box {where}: {m['clipped']}"
    assert all(r <= m["clientWidth"] for r in m["table_rights"]), f"a table sticks out {where}: {m['table_rights']}"
    return m


def assert_fits_without_horizontal_scroll(driver, path, width: int = 1280, height: int = 900) -> dict:
    """Load the HTML file ``path`` in ``driver`` with a viewport ``width`` px wide and assert
    that the page does not scroll sideways (documentElement.scrollWidth <= innerWidth), that no
    element (every table, figure and text block) has its right edge past the viewport, and
    that no element's content is wider than its box (nothing cut off or scrolled inside).
    Checked with the collapsed sections (``<details>``) closed, then all opened (the printed
    state); they are closed again afterwards. Returns the measures of the opened state."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": int(width), "height": int(height), "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.get(Path(path).resolve().as_uri())
        driver.execute_script("return Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
        assert driver.execute_script("return window.innerWidth") == width
        _check(driver, "collapsed sections closed")
        closed = driver.execute_script(
            "const c = [...document.querySelectorAll('details:not([open])')]; c.forEach(d => d.open = true); "
            "return c.length")
        m = _check(driver, "every section open")
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = false)")
        m["details_closed_at_load"] = closed
        return m
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
