"""`calibrate report`: one self-contained HTML file and a JSON file with the same numbers,
checked as a file and in a real browser (headless Chromium)."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser_checks import assert_fits_without_horizontal_scroll, chromium
from conftest import make_logits

import calibrate
from calibrate import metrics

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    z, y = make_logits(n=1500, k=4, temperature=2.5, seed=0)
    np.savez(d / "val.npz", logits=z, labels=y)
    z2, y2 = make_logits(n=2000, k=4, temperature=2.5, seed=1)
    np.savez(d / "test.npz", logits=z2, labels=y2)
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "report", str(d / "test.npz"), "--fit-on", str(d / "val.npz"),
                        "--methods", "temperature,isotonic", "--resamples", "200", "-o", str(d / "report.html"),
                        "--json", str(d / "report.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d


def test_writes_the_html_and_the_json_named(report):
    assert (report / "report.html").exists() and (report / "report.json").exists()


def test_html_is_self_contained(report):
    html = (report / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    assert re.findall(r"<script[^>]*>", html) == ["<script>"] * len(scripts)  # inline only, no src
    assert all("fetch" not in js and "XMLHttpRequest" not in js and "http" not in js for js in scripts)
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) >= 2
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_numbers_are_the_metrics(report):
    data = json.loads((report / "report.json").read_text())
    f, v = np.load(report / "test.npz"), np.load(report / "val.npz")
    cal = calibrate.TemperatureScaling().fit(v["logits"], v["labels"])
    p = cal.predict_proba(f["logits"])
    m = data["metrics"]
    assert set(m) == {"uncalibrated", "temperature", "isotonic"}
    assert m["temperature"]["ece"]["estimate"] == pytest.approx(metrics.ece(p, f["labels"]), abs=1e-12)
    assert m["uncalibrated"]["nll"]["estimate"] == pytest.approx(metrics.nll_from_logits(f["logits"], f["labels"]))
    for key in ("ece", "ece_mass", "ece_l2", "ece_l2_debiased", "mce", "classwise_ece", "nll", "brier", "accuracy"):
        c = m["temperature"][key]
        assert c["low"] <= c["high"]
    assert set(data["paired_differences_vs_uncalibrated"]) == {"temperature", "isotonic"}
    assert len(data["per_class"]) == 4
    assert "report" in data["command"] and data["environment"]["packages"]["numpy"]
    assert data["wall_seconds"] > 0


def test_html_shows_the_same_numbers(report):
    html = (report / "report.html").read_text()
    data = json.loads((report / "report.json").read_text())
    assert f"{data['metrics']['temperature']['ece']['estimate']:.4f}" in html


def test_report_with_saved_calibrator(report, tmp_path):
    subprocess.run([sys.executable, "-m", "calibrate.cli", "fit", str(report / "val.npz"), "-o", str(tmp_path / "c.json")], check=True,
                   capture_output=True)
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "report", str(report / "test.npz"), "--calibrator",
                        str(tmp_path / "c.json"), "--resamples", "50", "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert set(json.loads((tmp_path / "r.json").read_text())["metrics"]) == {"uncalibrated", "temperature"}


def test_report_bad_combination_is_a_clean_error(report, tmp_path):
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "report", str(report / "test.npz"), "--methods", "temperature",
                        "-o", str(tmp_path / "r.html")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("calibrate: error: --methods needs --fit-on")


def _chromium():
    return chromium()


@pytest.mark.browser
def test_report_in_a_real_browser(report):
    drv = _chromium()
    try:
        drv.get((report / "report.html").as_uri())
        assert drv.title == "Calibration report"
        h1 = drv.find_element("tag name", "h1").text
        assert h1 == "Calibration report"
        tables = drv.find_elements("tag name", "table")
        assert len(tables) >= 3
        first = tables[0].text
        assert "temperature" in first and "ECE" in first
        imgs = drv.find_elements("tag name", "img")
        assert len(imgs) >= 2
        for img in imgs:
            ok = drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0 && arguments[0].naturalHeight > 0", img)
            assert ok, img.get_attribute("alt")
            assert img.size["width"] > 100 and img.size["height"] > 100
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "report_screenshot.png"
        assert drv.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        drv.quit()


def test_report_sections_lead_and_collapsed(report):
    html = (report / "report.html").read_text()
    assert re.search(r'<section id="summary" class="lead">', html)
    for sid in ("classes", "calibrators", "provenance"):
        assert re.search(rf'<details class="collapsed" id="{sid}">\s*<summary><h2>', html), sid
    assert "@media print" in html and "beforeprint" in html


@pytest.mark.browser
def test_report_fits_a_1280_px_window_and_prints_every_section(report):
    drv = _chromium()
    try:
        m = assert_fits_without_horizontal_scroll(drv, report / "report.html", width=1280)
        assert m["details_closed_at_load"] == 3 and m["table_rights"]
        ids = drv.execute_script("return [...document.querySelectorAll('details')].map(d => d.id + ':' + d.open)")
        assert ids == ["classes:false", "calibrators:false", "provenance:false"]
        # a closed section is not shown; the print event opens them all, afterprint closes them again
        shown = "return document.querySelector('#classes table').checkVisibility()"
        assert drv.execute_script(shown) is False
        drv.execute_script("window.dispatchEvent(new Event('beforeprint'))")
        assert drv.execute_script("return [...document.querySelectorAll('details')].every(d => d.open)")
        assert drv.execute_script(shown) is True
        drv.execute_script("window.dispatchEvent(new Event('afterprint'))")
        assert drv.execute_script("return [...document.querySelectorAll('details')].every(d => !d.open)")
        media = drv.execute_script(
            "return [...document.styleSheets].flatMap(s => [...s.cssRules]).filter(r => r.media)"
            ".map(r => r.media.mediaText)")
        assert "print" in media
        # a click on a summary opens its section
        drv.find_element("css selector", "#provenance > summary").click()
        assert drv.execute_script("return document.getElementById('provenance').open")
    finally:
        drv.quit()


@pytest.mark.browser
def test_a_very_wide_table_is_split_to_fit(tmp_path):
    from calibrate.report.html import render_html

    header = ["prediction"] + [f"a rather long column name {j}" for j in range(40)]
    rows = [{"cells": [{"text": f"row {i}"}] + [{"text": f"{i * j / 7:.4f}", "ci": "[0.1234, 0.5678]"}
                                               for j in range(40)]} for i in range(5)]
    long_text = {"header": ["name", "parameters"],
                 "rows": [{"cells": [{"text": "x"}, {"text": "word " * 300 + "/a/very/long/path/" * 30}]}]}
    sections = [{"id": "t", "title": "Wide", "tables": [{"header": header, "rows": rows, "caption": "wide"},
                                                       long_text],
                 "summary": [("command", "calibrate report " + "/x" * 400)], "pre": "y" * 3000}]
    (tmp_path / "wide.html").write_text(render_html("Wide", sections))
    drv = _chromium()
    try:
        m = assert_fits_without_horizontal_scroll(drv, tmp_path / "wide.html", width=1280)
        assert len(m["table_rights"]) > 2  # split into several tables
        texts = drv.execute_script("return [...document.querySelectorAll('td')].map(td => td.textContent)")
        for r in rows:  # every cell is still shown
            for c in r["cells"][1:]:
                assert c["text"] + c["ci"] in texts
    finally:
        drv.quit()
