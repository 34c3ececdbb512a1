"""The multi-label report: its numbers against calibrate.metrics.multilabel and a resample
made by repeating rows, and its pages at L = 5 and L = 200 within bounds."""

import base64
import json
import re
import struct

import numpy as np
import pytest
from conftest import run_cli

from calibrate.calibrators.multilabel import MultiLabelCalibrator
from calibrate.metrics import ece_from_confidences
from calibrate.metrics.multilabel import multilabel_metrics, sigmoid
from calibrate.report.multilabel import (
    WORST_LABELS,
    _draws,
    _Group,
    _prediction_pass,
    label_rows,
    multilabel_report_numbers,
    multilabel_report_sections,
)


def _resampled(x, y, kind, n_bins, w):
    """The report's per-resample numbers for the rows of weights w (r, n)."""
    n, L = x.shape
    g = _Group([w])
    S, sq, nll = _prediction_pass(label_rows(x, kind), kind, y, n, L, n_bins, g)
    return _draws(S, sq, nll, g.W, L, n_bins)


def _data(n=300, L=5, seed=0):
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=(n, L)) * np.linspace(1.0, 3.0, L), -7, 7)
    y = (rng.uniform(size=(n, L)) < sigmoid(z * np.linspace(1.0, 0.3, L))).astype(np.int64)
    return z, y


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_unit_weights_give_the_metrics(kind):
    z, y = _data()
    x = z if kind == "logits" else sigmoid(z)
    m = multilabel_metrics(x, y, kind=kind, n_bins=12)
    d = _resampled(x, y, kind, 12, np.ones((1, z.shape[0])))
    np.testing.assert_allclose(d["ece"][0], m["per_label"]["ece"], rtol=1e-12, atol=1e-15)
    for key in ("brier", "nll"):
        assert d[key][0] == pytest.approx(m["macro"][key], rel=1e-12)
    assert d["micro_ece"][0] == pytest.approx(m["micro"]["ece"], rel=1e-12)


def test_integer_weights_equal_the_metrics_of_repeated_rows():
    z, y = _data(n=200, seed=1)
    counts = np.random.default_rng(5).integers(0, 4, size=200)
    d = _resampled(z, y, "logits", 15, counts[None, :].astype(np.uint8))
    rep = np.repeat(np.arange(200), counts)
    m = multilabel_metrics(z[rep], y[rep], kind="logits")
    np.testing.assert_allclose(d["ece"][0], m["per_label"]["ece"], rtol=1e-12, atol=1e-15)
    for key in ("brier", "nll"):
        assert d[key][0] == pytest.approx(m["macro"][key], rel=1e-12)
    assert d["micro_ece"][0] == pytest.approx(m["micro"]["ece"], rel=1e-12)


def test_report_numbers_estimates_intervals_and_paired_differences():
    z, y = _data(seed=2)
    q = MultiLabelCalibrator("platt").fit(z, y, kind="logits").predict_proba(z, kind="logits")
    num = multilabel_report_numbers({"uncalibrated": (z, "logits"), "platt": (q, "probs")}, y, n_resamples=200,
                                    seed=3)
    m0, m1 = multilabel_metrics(z, y, kind="logits"), multilabel_metrics(q, y, kind="probs")
    for nm, m in (("uncalibrated", m0), ("platt", m1)):
        for avg in ("macro", "micro"):
            for key in ("ece", "brier", "nll"):
                iv = num["metrics"][nm][avg][key]
                assert iv["estimate"] == pytest.approx(m[avg][key], rel=1e-12)
                assert iv["low"] <= iv["high"]
    ece0 = m0["per_label"]["ece"]
    assert num["worst"] == [int(j) for j in np.argsort(-ece0, kind="stable")[:5]]
    assert num["paired"]["platt"]["macro_ece"]["estimate"] == pytest.approx(m1["macro"]["ece"] - m0["macro"]["ece"])
    assert num["bootstrap"]["n_resamples"] == 200


def test_report_numbers_are_seeded():
    z, y = _data(seed=4)
    a = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=50, seed=7)
    b = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=50, seed=7)
    c = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=50, seed=8)
    assert a["metrics"] == b["metrics"]
    assert a["metrics"] != c["metrics"]


def test_the_worst_labels_are_bounded():
    z, y = _data(n=100, L=40, seed=5)
    num = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=20)
    assert len(num["worst"]) == WORST_LABELS
    ece = multilabel_metrics(z, y, kind="logits")["per_label"]["ece"]
    assert min(ece[num["worst"]]) >= np.sort(ece)[-WORST_LABELS]


def test_sections_are_only_multilabel_ones_and_provenance():
    z, y = _data(seed=6)
    cal = MultiLabelCalibrator("temperature").fit(z, y, kind="logits")
    sections, subtitle, data = multilabel_report_sections(z, y, {"temperature": cal}, kind="logits", n_resamples=50)
    ids = [s["id"] for s in sections]
    assert ids == ["summary", "multilabel-metrics", "multilabel-worst", "multilabel-labels", "calibrators",
                   "provenance"]
    assert "L = 5 labels" in subtitle
    p = sigmoid(z)
    assert data["per_label"]["uncalibrated"]["ece"] == pytest.approx(
        [ece_from_confidences(p[:, j], y[:, j], 15) for j in range(5)], rel=1e-12)


# ----------------------------------------------------------------------------- pages
def _images(html):
    out = []
    for b in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', html):
        out.append(struct.unpack(">II", base64.b64decode(b)[16:24]))
    return out


def _report(tmp_path, L, *extra, n=300, methods="platt,isotonic"):
    zv, yv = _data(n=n, L=L, seed=10)
    zt, yt = _data(n=n, L=L, seed=11)
    val, test = tmp_path / "val.npz", tmp_path / "test.npz"
    np.savez(val, logits=zv, labels=yv)
    np.savez(test, logits=zt, labels=yt)
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    code, out, err = run_cli("report", test, "--multilabel", "--fit-on", val, "--methods", methods,
                             "--resamples", "100", "-o", html, "--json", js, *extra)
    assert code == 0, err
    return html.read_text(), json.loads(js.read_text()), out


def test_report_at_5_labels(tmp_path):
    html, data, out = _report(tmp_path, 5)
    imgs = _images(html)
    assert 1 <= len(imgs) <= 2
    assert all(w <= 1200 and h <= 700 for w, h in imgs)
    assert 'id="multilabel-worst"' in html and 'id="reliability"' not in html and 'id="classes"' not in html
    assert "filter by label" not in html  # every label in a plain table
    assert data["L"] == 5 and len(data["per_label"]["isotonic"]["ece"]) == 5
    assert set(data["metrics"]) == {"uncalibrated", "platt", "isotonic"}
    assert "uncalibrated   macro ECE" in out


def test_report_at_200_labels_is_bounded(tmp_path):
    html, data, _ = _report(tmp_path, 200, n=200, methods="isotonic")
    imgs = _images(html)
    assert 1 <= len(imgs) <= 2
    assert all(w <= 1200 and h <= 700 for w, h in imgs)
    assert "filter by label" in html
    assert len(data["worst_labels"]) == WORST_LABELS
    assert len(data["per_label"]["isotonic"]["nll"]) == 200
    worst = html.split('id="multilabel-worst"')[1].split("</section>")[0]
    assert worst.count("<tr") == WORST_LABELS + 1


def test_report_pdf_is_written_with_the_html(tmp_path):
    html, data, _ = _report(tmp_path, 3, "--pdf", tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert data["pdf"] == "r.pdf"


def test_report_refuses_single_label_options(tmp_path):
    z, y = _data(n=50, L=3)
    path = tmp_path / "d.npz"
    np.savez(path, logits=z, labels=y)
    code, out, err = run_cli("report", path, "--multilabel", "--conformal", "0.1", "-o", tmp_path / "r.html")
    assert code == 2 and "--conformal does not apply to multi-label" in err
    code, out, err = run_cli("report", path, "--multilabel", "--fit-on", path, "--methods", "vector",
                             "-o", tmp_path / "r.html")
    assert code == 2 and "'vector'" in err
    assert not (tmp_path / "r.html").exists()


def test_intervals_do_not_depend_on_the_resample_block_size(monkeypatch):
    import calibrate.report.multilabel as ml

    z, y = _data(n=120, L=20, seed=9)
    a = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=60, seed=2)
    monkeypatch.setattr(ml, "RESAMPLE_BLOCK_BYTES", 8 * 20 * 15 * 7)  # 7 resamples a block
    b = multilabel_report_numbers({"u": (z, "logits")}, y, n_resamples=60, seed=2)
    for avg in ("macro", "micro"):
        for key in ("ece", "brier", "nll"):
            for q in ("estimate", "low", "high"):
                assert b["metrics"]["u"][avg][key][q] == pytest.approx(a["metrics"]["u"][avg][key][q], rel=1e-12)
