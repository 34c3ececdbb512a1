"""The CIFAR-10 study's group view (calibrate.apps.cifar10.groups) on small saved logits."""
import json

import numpy as np
import pytest

from calibrate.apps.cifar10.data import CLASSES
from calibrate.apps.cifar10.groups import group_view, model_view


@pytest.fixture(scope="module")
def logits_dir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    d = tmp_path / "logits"
    d.mkdir()
    for split, n in (("val", 300), ("test", 400)):
        np.savez(d / f"m_{split}.npz", logits=rng.normal(0, 3, (n, 10)).astype(np.float32),
                 labels=rng.integers(0, 10, n))
    y = rng.integers(0, 10, 50)
    np.savez(d / "shift_m.npz", logits=rng.normal(0, 3, (3, 2, 50, 10)).astype(np.float32), labels=y,
             corruptions=np.array(["fog", "snow", "blur"]), severities=np.array([1, 5]))
    return tmp_path


@pytest.fixture(scope="module")
def view(logits_dir):
    return model_view(logits_dir / "logits", "m", n_resamples=10)


def test_per_class_groups_are_the_predicted_classes_and_equal_the_metrics(logits_dir, view):
    from scipy.special import softmax

    from calibrate.metrics import ece

    _, data = view
    with np.load(logits_dir / "logits" / "m_test.npz") as z:
        p, y = softmax(z["logits"].astype(np.float64), axis=1), z["labels"]
    pred = np.asarray(CLASSES)[p.argmax(1)]
    g = data["per_class"]["uncalibrated"]
    for row in g["groups"]:
        rows = pred == row["values"]["predicted"]
        assert row["n"] == rows.sum()
        assert row["metrics"]["ece"]["estimate"] == pytest.approx(ece(p[rows], y[rows]), abs=1e-12)


def test_per_corruption_groups_are_corruption_by_severity_cells(logits_dir, view):

    _, data = view
    g = data["per_corruption"]["uncalibrated"]
    assert g["n_groups"] == 6 and g["n"] == 300
    with np.load(logits_dir / "logits" / "shift_m.npz") as z:
        zz, y = z["logits"], z["labels"]
    cell = next(r for r in g["groups"] if r["values"] == {"corruption": "snow", "severity": "5"})
    assert cell["metrics"]["accuracy"]["estimate"] == pytest.approx(np.mean(zz[1, 1].argmax(1) == y))


def test_group_view_writes_the_page_and_its_numbers(logits_dir):
    paths = group_view(logits_dir, ["m"], n_resamples=10)
    assert sorted(p.name for p in paths) == ["groups.html", "groups.json"]
    data = json.loads((logits_dir / "groups.json").read_text())
    assert set(data["models"]["m"]) == {"temperature", "per_class", "per_corruption", "per_severity"}
    assert "calibration per predicted class" in (logits_dir / "groups.html").read_text()
