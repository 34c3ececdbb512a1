"""`calibrate report`: one self-contained HTML file and a JSON file with the same numbers,
checked as a file and in a real browser (headless Chromium)."""

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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
    assert "<link" not in html and "<script" not in html
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

    return webdriver.Chrome(service=Service(driver), options=opts)


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
