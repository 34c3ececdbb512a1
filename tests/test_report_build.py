"""calibrate.report.build (the report assembled from predictions already read) and
``calibrate report --fit-groups ... --group-method METHOD``."""

import csv
import json

import numpy as np
import pytest
from conftest import run_cli

from calibrate._core.validation import InputError
from calibrate.io.readers import Predictions
from calibrate.report.build import ReportOptions, build_report


def _write_groups(path, site):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site"])
        w.writerows([s] for s in site)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Validation and test logits (n, 3) with a per-site, per-class miscalibration (a scale and
    a class bias per site: vector scaling per site fits it), labels and site columns."""
    d = tmp_path_factory.mktemp("grouped")
    rng = np.random.default_rng(11)
    out = {"dir": d}
    for name, n in (("val", 900), ("test", 900)):
        site = rng.choice(["a", "b", "c"], n)
        z = rng.normal(0, 2, (n, 3))
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
        scale = np.select([site == "a", site == "b"], [1.0, 2.5], 0.6)[:, None]
        bias = np.select([site == "a", site == "b"], [0.0, 1.0], -1.0)[:, None] * np.array([1.0, 0.0, -1.0])
        z = z * scale + bias
        np.savez(d / f"{name}.npz", logits=z, labels=y)
        _write_groups(d / f"{name}.csv", site)
        out[name] = (z, y, site)
    return out


def _direct_numbers(probs, y, n_bins=15):
    """(NLL, top-label ECE with n_bins equal-width bins) by a direct loop over the rows."""
    nll = sum(-np.log(probs[i, y[i]]) for i in range(len(y))) / len(y)
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    ece = 0.0
    for b in range(n_bins):
        inside = (conf > b / n_bins) & (conf <= (b + 1) / n_bins)
        if inside.any():
            ece += inside.sum() / len(y) * abs(correct[inside].mean() - conf[inside].mean())
    return nll, ece


def test_report_group_method_vector_equals_grouped_calibrator_vector_fitted_in_python(parts, tmp_path):
    from calibrate.calibrators import GroupedCalibrator, VectorScaling

    d = parts["dir"]
    code, out, err = run_cli("report", d / "test.npz", "--fit-on", d / "val.npz", "--methods", "vector",
                             "--group-by", "site", "--groups", d / "test.csv", "--fit-groups", d / "val.csv",
                             "--group-method", "vector", "--resamples", "20", "-o", tmp_path / "r.html",
                             "--json", tmp_path / "r.json")
    assert code == 0, err
    g = json.loads((tmp_path / "r.json").read_text())["grouped_recalibration"]
    zv, yv, sv = parts["val"]
    zt, yt, st = parts["test"]
    ref = GroupedCalibrator("vector").fit(zv, yv, np.array([f"site={s}" for s in sv], dtype=object))
    assert g["method"] == "vector" and ref.mode_ == "mixture"
    assert g["shrinkage"] == ref.shrinkage_ and g["temperatures"] is None
    np.testing.assert_allclose(g["weights"], ref.weights_, rtol=0, atol=1e-12)
    glob = VectorScaling().fit(zv, yv)
    keys = np.array([f"site={s}" for s in st], dtype=object)
    assert [r["group"] for r in g["groups"]] == ["site=a", "site=b", "site=c"]
    for r in g["groups"]:
        rows = keys == r["group"]
        grouped = _direct_numbers(ref.predict_proba(zt[rows], keys[rows]), yt[rows])
        global_ = _direct_numbers(glob.predict_proba(zt[rows]), yt[rows])
        assert r["n"] == rows.sum()
        assert (r["grouped"]["nll"], r["grouped"]["ece"]) == pytest.approx(grouped, abs=1e-12)
        assert (r["global"]["nll"], r["global"]["ece"]) == pytest.approx(global_, abs=1e-12)
    assert g["overall"]["grouped"]["nll"] == pytest.approx(_direct_numbers(ref.predict_proba(zt, keys), yt)[0],
                                                           abs=1e-12)
    assert "fitting vector per group of site" in err


def test_report_group_method_is_named_in_the_section_text(parts, tmp_path):
    d = parts["dir"]
    code, out, err = run_cli("report", d / "test.npz", "--fit-on", d / "val.npz", "--methods", "temperature",
                             "--group-by", "site", "--groups", d / "test.csv", "--fit-groups", d / "val.csv",
                             "--group-method", "platt", "--resamples", "10", "-o", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "fitted by the platt method" in html and "grouped platt calibrator" in html
    assert "A temperature per group" not in html


@pytest.mark.parametrize("extra,needle", [
    (["--group-method", "nosuch"], "--group-method: invalid choice: 'nosuch'"),
    (["--group-method", ""], "--group-method: invalid choice: ''"),
])
def test_an_unknown_group_method_is_a_one_line_error(parts, tmp_path, extra, needle):
    d = parts["dir"]
    code, out, err = run_cli("report", d / "test.npz", "--fit-on", d / "val.npz", "--methods", "temperature",
                             "--group-by", "site", "--groups", d / "test.csv", "--fit-groups", d / "val.csv",
                             *extra, "-o", tmp_path / "r.html")
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_group_method_without_fit_groups_is_a_one_line_error(parts, tmp_path):
    d = parts["dir"]
    code, out, err = run_cli("report", d / "test.npz", "--fit-on", d / "val.npz", "--methods", "temperature",
                             "--group-method", "vector", "-o", tmp_path / "r.html")
    assert code == 2 and "--group-method vector needs --fit-groups FILE" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_fit_groups_file_is_an_input_never_an_output(parts, tmp_path):
    d = parts["dir"]
    groups = tmp_path / "val_groups.csv"
    groups.write_bytes((d / "val.csv").read_bytes())
    before = groups.read_bytes()
    code, out, err = run_cli("report", d / "test.npz", "--fit-on", d / "val.npz", "--methods", "temperature",
                             "--group-by", "site", "--groups", d / "test.csv", "--fit-groups", groups,
                             "-o", groups)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert groups.read_bytes() == before


# ----------------------------------------------------------------------------- build_report in Python
def _predictions(z, y, path):
    return Predictions(np.asarray(z, dtype=np.float64), y, path, "logits")


def test_build_report_returns_the_html_and_numbers_and_writes_nothing(parts, tmp_path, monkeypatch):
    from calibrate.calibrators import GroupedCalibrator

    monkeypatch.chdir(tmp_path)
    zv, yv, sv = parts["val"]
    zt, yt, st = parts["test"]
    lines = []
    html, pdf, data = build_report(_predictions(zt, yt, "test.npz"), fit_on=_predictions(zv, yv, "val.npz"),
                                   methods=["temperature"], groups={"site": st}, fit_groups={"site": sv},
                                   options=ReportOptions(n_resamples=10), progress=lines.append)
    assert pdf is None and list(tmp_path.iterdir()) == []
    g = data["grouped_recalibration"]
    ref = GroupedCalibrator("temperature").fit(zv, yv, np.array([f"site={s}" for s in sv], dtype=object))
    assert g["method"] == "temperature" and g["weights"] is None
    np.testing.assert_allclose(g["temperatures"], ref.temperatures_, rtol=0, atol=1e-12)
    assert "A temperature per group" in html and "Per-group recalibration" in html
    assert lines[0] == "fitting temperature on val.npz"
    assert lines[1] == "fitting a temperature per group of site on val.npz (shrinkage by 5-fold CV)"


def test_build_report_refuses_fit_groups_without_fit_on(parts):
    zt, yt, st = parts["test"]
    with pytest.raises(InputError, match="--fit-groups FILE needs --group-by"):
        build_report(_predictions(zt, yt, "test.npz"), groups={"site": st}, fit_groups={"site": st})


def test_build_report_refuses_an_unknown_group_method_before_fitting(parts):
    zv, yv, sv = parts["val"]
    zt, yt, st = parts["test"]
    lines = []
    with pytest.raises(InputError, match="--group-method: expected one of .*got 'nosuch'"):
        build_report(_predictions(zt, yt, "test.npz"), fit_on=_predictions(zv, yv, "val.npz"),
                     methods=["temperature"], groups={"site": st}, fit_groups={"site": sv}, group_method="nosuch",
                     progress=lines.append)
    assert lines == []


def test_build_report_refuses_fit_data_of_other_classes(parts):
    zv, yv, _ = parts["val"]
    zt, yt, _ = parts["test"]
    with pytest.raises(InputError, match=r"^val\.npz: has 2 classes, but test\.npz has 3"):
        build_report(_predictions(zt, yt, "test.npz"), fit_on=_predictions(zv[:, :2], np.minimum(yv, 1), "val.npz"),
                     methods=["temperature"])
