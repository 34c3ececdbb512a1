"""Reports and commands at large k (ImageNet's 1,000 classes): bounded figures and panels,
the class-wise ranking, the page in a real browser, and the CLI computing only what it prints."""

import base64
import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from browser_checks import assert_fits_without_horizontal_scroll, chromium

import calibrate
from calibrate import metrics
from calibrate.io.examples import imagenet_shaped_logits
from calibrate.report import classes as rc

N, K = 2000, 1000


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    d = tmp_path_factory.mktemp("largek")
    z, y = imagenet_shaped_logits(N, K, seed=1)
    zv, yv = imagenet_shaped_logits(N, K, seed=2)
    np.savez(d / "test.npz", logits=z, labels=y)
    np.savez(d / "val.npz", logits=zv, labels=yv)
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "report", str(d / "test.npz"), "--fit-on",
                        str(d / "val.npz"), "--methods", "temperature", "--resamples", "100", "-o",
                        str(d / "report.html"), "--json", str(d / "report.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d, z, y


def _pngs(html):
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        raw = base64.b64decode(b64)
        out.append(struct.unpack(">II", raw[16:24]))
    return out


def test_report_at_k_1000_has_bounded_images(large):
    d, _, _ = large
    html = (d / "report.html").read_text()
    sizes = _pngs(html)
    assert 3 <= len(sizes) <= 10
    for w, h in sizes:
        assert w <= 2000 and h <= 1600, (w, h)
    assert sum(h for _, h in sizes) <= 8000
    assert "--classes all" in html and "per_class" in html  # the page says how to see what was left out


def test_class_ranking_equals_per_class_ece_computed_directly(large):
    d, z, y = large
    data = json.loads((d / "report.json").read_text())
    p = metrics.softmax(z)
    direct = np.array([metrics.ece_from_confidences(p[:, j], (y == j).astype(int), 15) for j in range(K)])
    got = np.array([r["ece[uncalibrated]"] for r in data["per_class"]])
    np.testing.assert_allclose(got, direct, rtol=1e-9, atol=1e-15)
    expect = sorted(range(K), key=lambda j: (-direct[j], j))
    shown = data["classes_shown"]
    n_top = len(shown["largest_ece"])
    assert shown["largest_ece"] == expect[:n_top]
    assert len(shown["shown"]) <= rc.CLASS_PANELS
    assert len(data["per_class"]) == K  # the JSON holds every class
    # the intervals of the classes shown contain their estimates
    for j, c in shown["intervals"]["uncalibrated"].items():
        assert c["estimate"] == pytest.approx(direct[int(j)], rel=1e-9, abs=1e-15)
        assert c["low"] <= c["high"]


def test_select_classes_and_intervals_small():
    z, y = imagenet_shaped_logits(600, 50, seed=3)
    p = metrics.softmax(z)
    cn = rc.class_numbers(p, y, 15)
    assert cn["classwise_ece"] == pytest.approx(metrics.classwise_ece(p, y, 15), rel=1e-12)
    sel = rc.select_classes(cn["ece"], cn["support"])
    assert len(sel["shown"]) == rc.CLASS_PANELS and len(set(sel["shown"])) == rc.CLASS_PANELS
    iv = rc.class_ece_intervals(p, y, sel["shown"], 15, n_resamples=50, seed=0)
    for j in sel["shown"]:
        assert iv[j]["estimate"] == pytest.approx(cn["ece"][j], rel=1e-9, abs=1e-15)


@pytest.mark.browser
def test_large_k_report_fits_1280_px_in_a_real_browser(large):
    d, _, _ = large
    drv = chromium()
    try:
        assert_fits_without_horizontal_scroll(drv, d / "report.html", width=1280)
        # the searchable table filters in the page
        drv.execute_script("document.querySelectorAll('details').forEach(x => x.open = true)")
        box = drv.find_element("css selector", "input.table-filter")
        box.send_keys("999")
        shown = drv.execute_script(
            "return [...document.querySelector('table.sortable').tBodies[0].rows].filter(r => r.style.display !== 'none')"
            ".map(r => r.cells[0].textContent)")
        assert shown == ["999"]
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        drv.quit()


def test_fit_summary_is_top_label_only_and_matches_metrics(tmp_path):
    z, y = imagenet_shaped_logits(500, 300, seed=4)
    from calibrate.metrics.toplabel import nll_ece_in_blocks

    cal = calibrate.TemperatureScaling().fit(z, y)
    before, after = nll_ece_in_blocks(z, y, 15, calibrators=(None, cal))
    p0, p1 = metrics.softmax(z), cal.predict_proba(z, kind="logits")
    assert before["ece"] == pytest.approx(metrics.ece(p0, y, 15), abs=1e-12)
    assert after["ece"] == pytest.approx(metrics.ece(p1, y, 15), abs=1e-12)
    assert before["nll"] == pytest.approx(metrics.nll_from_logits(z, y), rel=1e-12)
    assert after["nll"] == pytest.approx(cal.nll_after_, rel=1e-9)


def test_evaluate_classwise_only_at_small_k_or_when_asked(tmp_path):
    z, y = imagenet_shaped_logits(300, 150, seed=5)
    np.savez(tmp_path / "d.npz", logits=z, labels=y)
    run = [sys.executable, "-m", "calibrate.cli", "evaluate", str(tmp_path / "d.npz"), "--json"]
    plain = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    assert "classwise_ece" not in plain and "brier_calibration" not in plain
    asked = json.loads(subprocess.run(run + ["--classwise"], capture_output=True, text=True, check=True).stdout)
    assert asked["classwise_ece"] == pytest.approx(metrics.classwise_ece(metrics.softmax(z), y), rel=1e-12)
    text = subprocess.run(run[:-1], capture_output=True, text=True, check=True).stdout
    assert "--classwise" in text
