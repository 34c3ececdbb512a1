"""Small things a new user tripped on: one --calibrator for evaluate, integer labels on the
command line, the name of the L2 debiased ECE, Platt's binary summary, paths in reports."""

import json
import os

import numpy as np
import pytest
from conftest import make_logits
from test_cli import assert_clean_error, run

import calibrate
from calibrate import metrics


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("usability")
    z, y = make_logits(n=600, k=4, temperature=2.0, seed=0)
    np.savez(d / "val.npz", logits=z, labels=y)
    z2, y2 = make_logits(n=800, k=4, temperature=2.0, seed=1)
    np.savez(d / "test.npz", logits=z2, labels=y2)
    calibrate.TemperatureScaling().fit(z, y).save(d / "t.json")
    calibrate.PlattScaling().fit(z, y).save(d / "p.json")
    return d


def test_evaluate_refuses_two_calibrators(files):
    r = run("evaluate", files / "test.npz", "--calibrator", files / "t.json", "--calibrator", files / "p.json")
    assert_clean_error(r, "evaluate takes one --calibrator, got 2", "calibrate report")


def test_evaluate_with_one_calibrator_uses_it(files):
    r = run("evaluate", files / "test.npz", "--calibrator", files / "p.json", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    test = np.load(files / "test.npz")
    p = calibrate.load(files / "p.json").predict_proba(test["logits"])
    assert got["ece"] == pytest.approx(metrics.ece(p, test["labels"]), rel=1e-12)


def test_the_l2_debiased_ece_is_named_so(files):
    r = run("evaluate", files / "test.npz", "--json")
    got = json.loads(r.stdout)
    assert "ece_debiased" not in got
    test = np.load(files / "test.npz")
    ref = metrics.ece(metrics.softmax(test["logits"]), test["labels"], 15, norm="l2", debiased=True)
    assert got["ece_l2_debiased"] == pytest.approx(ref, rel=1e-12)


def test_string_labels_on_the_command_line_say_integers(tmp_path):
    z, y = make_logits(n=50, k=3, seed=2)
    np.savez(tmp_path / "s.npz", logits=z, labels=np.array(["a", "b", "c"])[y])
    assert_clean_error(run("fit", tmp_path / "s.npz", "-o", tmp_path / "c.json"), "integer class indices 0..k-1")
    lines = ["c0,c1,c2,label"] + [f"{a},{b},{c},{'xyz'[t]}" for (a, b, c), t in zip(z, y)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    assert_clean_error(run("evaluate", tmp_path / "s.csv"), f"column 'label': {'xyz'[y[0]]!r} is not a number",
                       "labels must be integers 0..k-1")


def test_platt_fit_prints_a_and_b_for_a_binary_problem(tmp_path):
    z, y = make_logits(n=400, k=2, temperature=2.0, seed=3)
    np.savez(tmp_path / "b.npz", logits=z, labels=y)
    r = run("fit", tmp_path / "b.npz", "--method", "platt", "-o", tmp_path / "c.json")
    assert r.returncode == 0, r.stderr
    line = next(s for s in r.stdout.splitlines() if s.startswith("parameters"))
    cal = calibrate.load(tmp_path / "c.json")
    assert line.split(None, 1)[1] == f"a = {cal.a_[0]:.4g}, b = {cal.b_[0]:.4g}"
    assert "mean" not in line


def test_report_shows_paths_relative_to_the_working_directory(files, tmp_path):
    # an absolute path is shown relative to the cwd (under it or not): never the machine's absolute path
    cwd = files.parent
    r = run("report", files / "test.npz", "--fit-on", files / "val.npz", "--methods", "temperature",
            "--resamples", "10", "-o", tmp_path / "r.html", "--json", tmp_path / "r.json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["data"] == f"{files.name}/test.npz"
    assert data["fit_on"] == f"{files.name}/val.npz"
    html = (tmp_path / "r.html").read_text()
    assert f"<dt>data</dt><dd>{files.name}/test.npz</dd>" in html
    assert str(files) not in html and str(tmp_path) not in html  # the command line too
    r = run("report", files / "test.npz", "--calibrator", files / "t.json", "--resamples", "10",
            "-o", tmp_path / "r2.html", "--json", tmp_path / "r2.json", cwd=tmp_path)
    data = json.loads((tmp_path / "r2.json").read_text())
    assert data["data"] == f"../{files.name}/test.npz" and data["fit_on"] == f"../{files.name}/t.json"


def test_display_path():
    from pathlib import Path

    from calibrate.report.html import display_path

    assert display_path("a/b.npz") == "a/b.npz"
    assert display_path(str(Path.cwd() / "x" / "y.npz")) == "x/y.npz"
    assert display_path("/definitely/elsewhere.npz") == os.path.relpath("/definitely/elsewhere.npz", Path.cwd().resolve())
    assert display_path("") == ""
