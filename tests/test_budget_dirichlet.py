"""The size rule for Dirichlet calibration (calibrate.calibrators._budget): units from
(n, k, penalty grid, folds) only, flagged long, warned about in the API, refused by the CLI."""

import numpy as np
import pytest

from calibrate.calibrators import _budget
from calibrate.calibrators.dirichlet import NEWTON_MAX_PARAMS, DirichletCalibration
from tests.conftest import make_logits, run_cli


def test_the_rule_flags_imagenet_sized_dirichlet_fits():
    assert _budget.fit_size("dirichlet", 20_000, 1_000).long


def test_the_rule_does_not_flag_a_small_dirichlet_fit():
    assert not _budget.fit_size("dirichlet", 5_000, 10).long


def test_units_count_every_cross_validation_fit_and_the_final_one():
    # 192 grid points x (5 - 1) training folds of n rows, then one fit on n rows: 769 fits of n k^2
    size = _budget.fit_size("dirichlet", 1_000, 100)
    assert size.units == 769 * 1_000 * 100 * 100
    assert size.seconds == pytest.approx(size.units * _budget.NS_PER_UNIT["dirichlet"] * 1e-9, rel=1e-12)
    assert _budget.fit_size("dirichlet", 1_000, 100, grid=0).units == 1_000 * 100 * 100


def test_newton_sized_fits_count_the_hessian():
    # k (k + 1) <= 650: Newton steps, each an (n, k (k + 1)) product with itself
    size = _budget.fit_size("dirichlet", 2_000, 25)
    assert size.unit == "dirichlet-newton"
    assert size.units == 769 * 2_000 * float(25 * 26) ** 2
    assert _budget.fit_size("dirichlet", 2_000, 26).unit == ""


def test_the_rule_uses_the_calibrators_defaults():
    cal = DirichletCalibration()
    assert _budget.DIRICHLET_GRID == len(cal.lambdas) * len(cal.mus)
    assert _budget.DIRICHLET_CV == cal.cv
    assert _budget.DIRICHLET_NEWTON_PARAMS == NEWTON_MAX_PARAMS


def test_the_api_warns_about_a_long_dirichlet_fit_and_fits(monkeypatch, capsys):
    z, y = make_logits(n=200, k=3, seed=21)
    monkeypatch.setattr(_budget, "LONG_FIT_SECONDS", 0.0)
    with pytest.warns(_budget.LongFitWarning, match=r"DirichletCalibration on 200 x 3: .*\(1 fit \(fixed penalties\) x n \(k \(k \+ 1\)\)\^2"):
        cal = DirichletCalibration(reg_lambda=1e-2, reg_mu=1e-2).fit(z, y)
    assert "dirichlet fit" in capsys.readouterr().err  # the progress bar, on stderr
    monkeypatch.setattr(_budget, "LONG_FIT_SECONDS", 60.0)
    ref = DirichletCalibration(reg_lambda=1e-2, reg_mu=1e-2).fit(z, y)
    np.testing.assert_array_equal(cal.predict_proba(z), ref.predict_proba(z))


def test_a_short_dirichlet_fit_shows_no_warning(recwarn, capsys):
    z, y = make_logits(n=200, k=3, seed=22)
    DirichletCalibration(reg_lambda=1e-2, reg_mu=1e-2).fit(z, y)
    assert not [w for w in recwarn if issubclass(w.category, _budget.LongFitWarning)]
    assert capsys.readouterr().err == ""


def test_the_cli_refuses_a_long_dirichlet_fit(tmp_path):
    z, y = make_logits(n=300, k=50, seed=23)  # 769 x 300 x 50^2 units: minutes by the rule
    np.savez(tmp_path / "v.npz", logits=z.astype(np.float32), labels=y)
    code, out, err = run_cli("fit", tmp_path / "v.npz", "--method", "dirichlet", "-o", tmp_path / "c.json")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "--method dirichlet on 300 x 50: a long fit by the size rule (769 fits" in lines[0]
    assert lines[0].endswith("or pass --allow-slow to run it anyway")
    assert not (tmp_path / "c.json").exists()
