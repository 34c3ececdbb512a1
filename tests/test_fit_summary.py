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


# ------------------------------------------------- a fit that ends with a Taylor step
def _record_at(z, y, a0):
    """A record of one pass at a0, keeping the moments at any k (SERIES_MIN_K set to 0)."""
    rec = FS.TemperatureFitRecord()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FS, "SERIES_MIN_K", 0)
        nll_derivative_sums(z, y, a0, 1.0, record=rec)
    return rec


def _forbid_full_pass(monkeypatch):
    def no_pass(*args, **kw):
        raise AssertionError("a pass over all the logits")

    monkeypatch.setattr(FS, "_lse_pass", no_pass)


def _assert_equals_reference(rec, z, y, t, n_bins=15):
    for g, r in zip(rec.summary(n_bins), _reference(z, y, t, n_bins)):
        assert g["nll"] == pytest.approx(r["nll"], abs=TOL, rel=0)
        assert g["ece"] == pytest.approx(r["ece"], abs=TOL, rel=0)


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_a_small_last_step_is_taken_from_the_moment_series_without_a_pass(monkeypatch, k):
    z, y = _logits(500, k, seed=20 + k, dtype=np.float64)
    rec = _record_at(z, y, 0.6)
    _forbid_full_pass(monkeypatch)
    a = 0.6 * (1 + 3e-4)  # a Taylor step of 0.03 %, as a fit that stops after one pass takes
    rec.finish(z, y, a)
    assert rec.rows_recomputed == 0
    _assert_equals_reference(rec, z, y, 1.0 / a)


def test_rows_whose_series_is_not_accurate_are_recomputed_from_their_logits(monkeypatch):
    z, y = _logits(400, 50, seed=30, dtype=np.float64)
    # 40 rows with two close top options and the rest far below: the far mass makes their
    # series too slow for a 1 % step
    z[:40] = np.linspace(-12.0, -30.0, 50)
    z[:40, :2] = [0.0, -0.5]
    rec = _record_at(z, y, 0.5)
    _forbid_full_pass(monkeypatch)
    a = 0.5 * 1.01
    rec.finish(z, y, a)
    assert 0 < rec.rows_recomputed <= 100
    _assert_equals_reference(rec, z, y, 1.0 / a)


def test_few_columns_keep_no_moments_and_take_the_exact_pass():
    z, y = _logits(300, FS.SERIES_MIN_K, seed=35, dtype=np.float64)
    rec = FS.TemperatureFitRecord()
    nll_derivative_sums(z, y, 0.6, 1.0, record=rec)
    assert rec._cum[1] == []
    rec.finish(z, y, 0.6 * (1 + 3e-4))
    assert rec.rows_recomputed == 300
    _assert_equals_reference(rec, z, y, 1.0 / (0.6 * (1 + 3e-4)))


def test_a_step_too_long_for_most_rows_redoes_the_pass():
    z, y = _logits(300, 20, seed=31, dtype=np.float64)
    rec = _record_at(z, y, 0.5)
    rec.finish(z, y, 0.8)
    assert rec.rows_recomputed == 300
    _assert_equals_reference(rec, z, y, 1.0 / 0.8)


def test_a_masked_option_adds_nothing_to_the_series(monkeypatch):
    z, y = _logits(300, 12, seed=32, dtype=np.float64)
    z[:, 3] = -np.inf
    y[y == 3] = 4
    rec = _record_at(z, y, 0.7)
    _forbid_full_pass(monkeypatch)
    a = 0.7 * (1 - 5e-4)
    rec.finish(z, y, a)
    _assert_equals_reference(rec, z, y, 1.0 / a)


def _moments_at(z, a0):
    """(lse0 (n,), (7, n) [m, mu_2..mu_5, mu_4 bound, gap]) of one recorded pass at a0."""
    rec = FS.TemperatureFitRecord()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FS, "SERIES_MIN_K", 0)
        nll_derivative_sums(z, np.zeros(z.shape[0], dtype=int), a0, None, record=rec)
    return np.concatenate(rec._lse[a0]), FS._row_moments(rec._cum[1])


def test_the_recorded_moments_equal_a_direct_computation():
    rng = np.random.default_rng(33)
    z = rng.normal(size=(40, 30)) * 3.0
    lse0, rows = _moments_at(z, 0.7)
    zs = z - z.max(axis=1, keepdims=True)
    p = np.exp(0.7 * zs - logsumexp(0.7 * zs, axis=1, keepdims=True))
    m = (p * zs).sum(axis=1)
    c = zs - m[:, None]
    assert np.allclose(lse0, logsumexp(0.7 * zs, axis=1), rtol=0, atol=1e-13)
    assert np.allclose(rows[0], m, rtol=1e-12, atol=1e-13)
    for r in range(2, 6):
        assert np.allclose(rows[r - 1], (p * c**r).sum(axis=1), rtol=1e-9, atol=1e-10)
    mu4 = (p * c**4).sum(axis=1)
    assert np.all(rows[5] >= mu4) and np.allclose(rows[5], mu4, rtol=1e-9)
    assert np.all(rows[6] >= -zs.min(axis=1))
    span = np.maximum(rows[6] + rows[0], -rows[0])
    assert np.all((p * c**6).sum(axis=1) <= rows[5] * span**2)


def test_a_far_option_with_little_mass_is_caught_by_the_bound():
    # two close options and a far one: the first terms of the series hide it, mu_6 does not
    z = np.array([[0.0, -0.6, -18.0, -40.0, -48.0]])
    lse0, rows = _moments_at(z, 1.0)
    d = -0.05
    lse, bad = FS.moment_series(lse0, rows, d)
    assert abs(lse[0] - logsumexp((1.0 + d) * z[0])) > FS.ROW_ATOL  # the series alone is off here
    assert bad.tolist() == [0]


def test_a_row_with_one_option_holding_all_the_mass_is_exact():
    z = np.array([[0.0, -800.0, -900.0], [0.0, -1.0, -2.0]])
    lse0, rows = _moments_at(z, 1.0)
    lse, bad = FS.moment_series(lse0, rows, 1e-3)
    assert 0 not in bad
    assert lse[0] == pytest.approx(0.0, abs=1e-300)


def test_a_fit_that_stops_after_one_pass_needs_no_other_pass(monkeypatch):
    from calibrate.io.examples import imagenet_shaped_logits

    z, y = imagenet_shaped_logits(4000, 200, seed=1)
    rec = FS.TemperatureFitRecord()
    _forbid_full_pass(monkeypatch)
    cal = TemperatureScaling().fit(z, y, record=rec)
    assert cal.n_iter_ == 1 and rec.rows_recomputed < 400
    _assert_equals_reference(rec, z, y, cal.temperature_)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.sampled_from([2, 3, 10, 200]), scale=st.floats(0.1, 20.0),
       step=st.floats(-0.05, 0.05), kind=st.sampled_from(["t", "normal", "integers"]))
def test_a_row_taken_from_its_series_is_within_the_bound(seed, k, scale, step, kind):
    rng = np.random.default_rng(seed)
    draw = {"t": lambda: rng.standard_t(3, size=(60, k)), "normal": lambda: rng.normal(size=(60, k)),
            "integers": lambda: rng.integers(0, 4, size=(60, k)).astype(float)}
    z = draw[kind]() * scale
    lse0, rows = _moments_at(z, 1.0)
    lse, bad = FS.moment_series(lse0, rows, step)
    exact = logsumexp((1.0 + step) * (z - z.max(axis=1, keepdims=True)), axis=1)
    good = np.setdiff1d(np.arange(60), bad)
    assert np.all(np.abs(lse[good] - exact[good]) <= FS.ROW_ATOL + 1e-15 * (1.0 + np.abs(exact[good])))


def test_an_absent_option_before_the_top_one_is_never_its_arg_max():
    # ragged choices (language-model logs): option 0 absent in every row, so a -inf logit
    # comes before the top one; the summary's correct-flags must match the arg-max of z
    z, y = _logits(500, 6, seed=34)
    z[:, 0] = -np.inf
    y[y == 0] = 1
    cal, rec = _fit(z, y)
    assert np.array_equal(rec.correct, z.argmax(axis=1) == y)
    _assert_equals_reference(rec, z, y, cal.temperature_)
