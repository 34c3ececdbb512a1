"""The fit summary (NLL and top-label ECE before and after) from a temperature fit's own
passes (calibrate.calibrators.fit_summary) against the metrics on the calibrated
probabilities, and ``calibrate fit``, which prints it."""

import numpy as np
import pytest
from scipy.special import logsumexp

from calibrate.calibrators import TemperatureScaling, VectorScaling
from calibrate.calibrators import fit_summary as FS
from calibrate.calibrators.temperature_solver import fit_temperature_nll, nll_derivative_sums
from calibrate.metrics import ece, nll_from_logits, softmax
from calibrate.metrics.toplabel import nll_ece_in_blocks
from tests.conftest import run_cli

TOL = 1e-12


def _logits(n, k, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += 1.5  # informative, over-confident: the fitted T is finite and above 1
    return z.astype(dtype), y


def _reference(z, y, t, n_bins=15):
    """[before, after] from the calibrate.metrics functions on the probabilities."""
    z64 = np.asarray(z, dtype=np.float64)
    return [{"nll": nll_from_logits(z64 / s, y), "ece": ece(softmax(z64 / s), y, n_bins)} for s in (1.0, t)]


def _fit(z, y, **kw):
    rec = FS.TemperatureFitRecord()
    cal = TemperatureScaling(**kw).fit(z, y, record=rec)
    return cal, rec


@pytest.mark.parametrize("n,k", [(400, 2), (300, 2), (900, 10), (600, 1000)])
def test_summary_equals_the_metrics_on_the_calibrated_probabilities(n, k):
    z, y = _logits(n, k, seed=k)
    cal, rec = _fit(z, y)
    got = rec.summary(15)
    for g, r in zip(got, _reference(z, y, cal.temperature_)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_summary_equals_the_separate_pass(k):
    z, y = _logits(700, k, seed=10 + k)
    cal, rec = _fit(z, y)
    for g, r in zip(rec.summary(7), nll_ece_in_blocks(z, y, 7, calibrators=(None, cal))):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_nll_equals_a_direct_loop():
    z, y = _logits(600, 30, seed=3, dtype=np.float64)
    cal, rec = _fit(z, y)
    a = 1.0 / cal.temperature_
    direct = np.mean([logsumexp(a * z[i]) - a * z[i, y[i]] for i in range(len(y))])
    assert rec.nll(after=True) == pytest.approx(direct, abs=TOL, rel=0)
    direct1 = np.mean([logsumexp(z[i]) - z[i, y[i]] for i in range(len(y))])
    assert rec.nll(after=False) == pytest.approx(direct1, abs=TOL, rel=0)


def test_before_nll_is_the_fits_own():
    z, y = _logits(800, 50, seed=4)
    cal, rec = _fit(z, y)
    assert rec.nll(after=False) == pytest.approx(cal.nll_before_, abs=TOL, rel=0)


def test_record_holds_n_sized_arrays_only():
    z, y = _logits(700, 200, seed=5)
    _, rec = _fit(z, y)
    for arr in (rec.lse_before, rec.lse_after, rec.gap, rec.correct):
        assert arr.shape == (700,)
    assert rec.correct.dtype == bool


def test_memory_mapped_input(tmp_path):
    z, y = _logits(1000, 300, seed=6)
    np.save(tmp_path / "z.npy", z)
    zm = np.load(tmp_path / "z.npy", mmap_mode="r")
    cal, rec = _fit(zm, y)
    for g, r in zip(rec.summary(15), _reference(z, y, cal.temperature_)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_ties_count_the_first_maximum_only():
    rng = np.random.default_rng(7)
    n, k = 600, 5
    z = rng.integers(0, 3, size=(n, k)).astype(np.float64)  # many tied maxima
    y = rng.integers(0, k, n)
    cal, rec = _fit(z, y, bounds=(0.05, 100.0))
    assert np.array_equal(rec.correct, z.argmax(axis=1) == y)
    for g, r in zip(rec.summary(10), _reference(z, y, cal.temperature_, 10)):
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_no_extra_pass_when_the_last_pass_was_at_the_fitted_temperature(monkeypatch):
    z, y = _logits(300, 20, seed=8, dtype=np.float64)
    a = 0.7
    rec = FS.TemperatureFitRecord()
    nll_derivative_sums(z, y, a, 1.0, record=rec)

    def no_pass(*args, **kw):
        raise AssertionError("a pass over the logits")

    monkeypatch.setattr(FS, "_lse_pass", no_pass)
    rec.finish(z, y, a)
    for g, r in zip(rec.summary(15), _reference(z, y, 1.0 / a)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_later_passes_replace_earlier_ones():
    z, y = _logits(300, 20, seed=9, dtype=np.float64)
    rec = FS.TemperatureFitRecord()
    nll_derivative_sums(z, y, 0.5, 1.0, record=rec)
    nll_derivative_sums(z, y, 0.8, None, record=rec)
    rec.finish(z, y, 0.8)
    for g, r in zip(rec.summary(15), _reference(z, y, 1.0 / 0.8)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_finish_without_any_pass_computes_everything():
    z, y = _logits(400, 10, seed=11)
    cal, rec = _fit(z, y, objective="ece", n_bins=10)
    for g, r in zip(rec.summary(15), _reference(z, y, cal.temperature_)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


def test_record_with_another_pass_function_is_refused():
    z, y = _logits(100, 5, seed=12)

    def sums(*a, **kw):
        return nll_derivative_sums(*a, **kw)

    with pytest.raises(ValueError, match="record"):
        fit_temperature_nll(z, y, sums=sums, record=FS.TemperatureFitRecord())


def test_unfinished_record_is_refused():
    with pytest.raises(ValueError, match="not finished"):
        FS.TemperatureFitRecord().summary()


def test_fit_leaves_no_record_on_the_calibrator():
    z, y = _logits(200, 5, seed=13)
    cal, _ = _fit(z, y)
    assert "_record" not in vars(cal)
    assert TemperatureScaling().fit(z, y).temperature_ == cal.temperature_


def test_other_methods_are_summarised_by_a_separate_pass():
    z, y = _logits(500, 6, seed=14)
    cal = VectorScaling()
    got = FS.fit_with_summary(cal, z, y, 15)
    assert got == nll_ece_in_blocks(z, y, 15, calibrators=(None, cal))


def _printed(out):
    lines = {line.split()[0]: line for line in out.splitlines()}
    nll = lines["NLL"].split()
    e = lines["ECE"].split("bins)")[1].split()
    return float(nll[1]), float(nll[3]), float(e[0]), float(e[2])


@pytest.mark.parametrize("method", ["temperature", "vector"])
def test_cli_fit_prints_the_summary(tmp_path, method):
    z, y = _logits(700, 12, seed=15)
    np.savez(tmp_path / "val.npz", logits=z, labels=y)
    code, out, err = run_cli("fit", tmp_path / "val.npz", "--method", method, "-o", tmp_path / "cal.json")
    assert code == 0, err
    from calibrate.calibrators import load

    cal = load(tmp_path / "cal.json")
    m0, m1 = nll_ece_in_blocks(z, y, 15, calibrators=(None, cal))
    assert _printed(out) == tuple(float(f"{v:.4f}") for v in (m0["nll"], m1["nll"], m0["ece"], m1["ece"]))
